"""Fixtures of the auth tests: a key store of each backend (SQLite in the test's temp dir;
Cassandra's global keyspace on the session's real cluster, ``cassandra_cluster`` in
``tests/conftest.py``, which fails rather than skips when it cannot start)."""

from __future__ import annotations

import pytest

from tests.profile_store.cassandra_testing import (
    cassandra_settings,
    drop_keyspaces,
    fresh_prefix,
    truncate_keyspaces,
)


@pytest.fixture(scope="session")
def auth_prefix(request):
    """A keyspace prefix whose global keyspace has the key store's tables."""
    from idgraph.auth.cassandra_backend import CassandraKeyStore

    cluster = request.getfixturevalue("cassandra_cluster")
    prefix = fresh_prefix("au")
    CassandraKeyStore(cassandra_settings(cluster, prefix)).close()
    yield prefix
    drop_keyspaces(cluster, prefix)


@pytest.fixture(params=["sqlite", "cassandra"])
def store_factory(request, tmp_path):
    """``store_factory()`` opens a key store of the test's backend on one database shared
    by every store the test opens (as several server processes share it), empty first."""
    opened = []
    if request.param == "cassandra":
        from idgraph.auth.cassandra_backend import CassandraKeyStore

        cluster = request.getfixturevalue("cassandra_cluster")
        prefix = request.getfixturevalue("auth_prefix")
        truncate_keyspaces(cluster, prefix)

        def open_store():
            return CassandraKeyStore(cassandra_settings(cluster, prefix))
    else:
        from idgraph.auth.sqlite_backend import SqliteKeyStore

        def open_store():
            return SqliteKeyStore(tmp_path / "auth.sqlite")

    def make():
        store = open_store()
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()
