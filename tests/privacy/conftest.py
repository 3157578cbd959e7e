"""Fixtures of the privacy tests: the real Cassandra cluster of the profile-store tests
(``cassandra_cluster``, in ``tests/conftest.py``, one per session: a cluster that cannot
start fails the tests using it, never skips them; the same environment variables point it
at a cluster started elsewhere) and a keyspace prefix whose global
keyspace holds the Cassandra ledger's tables.
"""

from __future__ import annotations

import pytest

from tests.profile_store.cassandra_testing import cassandra_settings, drop_keyspaces, fresh_prefix


@pytest.fixture(scope="session")
def privacy_prefix(request):
    """A keyspace prefix whose global keyspace has the ledger's tables (created once per
    session, ~3 s on Cassandra 2.1; dropped at the end). Tests truncate it first."""
    from idgraph.privacy.cassandra_backend import CassandraPrivacyLedger

    cluster = request.getfixturevalue("cassandra_cluster")
    prefix = fresh_prefix("pv")
    CassandraPrivacyLedger(cassandra_settings(cluster, prefix)).close()
    yield prefix
    drop_keyspaces(cluster, prefix)
