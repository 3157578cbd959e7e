"""Fixtures of the coordination contract tests: the global and region keyspaces of one
prefix on the session's real Cassandra cluster (``cassandra_cluster`` in
``tests/conftest.py``, which fails rather than skips when it cannot start), created once
(Cassandra 2.1 takes seconds per keyspace) and emptied before each test that uses it."""

from __future__ import annotations

import pytest

from tests.profile_store.cassandra_testing import (
    cassandra_settings,
    drop_keyspaces,
    fresh_prefix,
    truncate_keyspaces,
)

REVIEW_REGIONS = ["eu", "uk", "us", "apac"]
"""The regions of the test deployment, strictest first (as the default region policy
orders them): what a writer opens the review queue for."""


@pytest.fixture(scope="session")
def coordination_prefix(request):
    """A keyspace prefix whose global keyspace has the model registry's tables and whose
    region keyspaces (every region of :data:`REVIEW_REGIONS`) the review queue's."""
    from idgraph.coordination.cassandra_backend import (
        CassandraModelRegistry,
        CassandraReviewQueue,
    )

    cluster = request.getfixturevalue("cassandra_cluster")
    prefix = fresh_prefix("co")
    settings = cassandra_settings(cluster, prefix)
    CassandraReviewQueue(settings, REVIEW_REGIONS).close()
    CassandraModelRegistry(settings).close()
    yield prefix
    drop_keyspaces(cluster, prefix)


@pytest.fixture()
def empty_cassandra(request):
    """Settings of the coordination keyspace, emptied first."""
    cluster = request.getfixturevalue("cassandra_cluster")
    prefix = request.getfixturevalue("coordination_prefix")
    truncate_keyspaces(cluster, prefix)
    return cassandra_settings(cluster, prefix)
