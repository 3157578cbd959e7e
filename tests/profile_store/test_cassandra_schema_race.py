"""Writers on several machines starting at once on a new cluster create the same schema
together; every one of them must open (issue 19: the three-machine test found a worker
that died with "create table failed: ... ServerError", Cassandra 2.1's "Column family ID
mismatch" for concurrent ``CREATE TABLE IF NOT EXISTS``).

Real cluster (``cassandra_cluster``): four threads, each with its own connection, open the
store and the writer turns of one fresh keyspace prefix at the same moment.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from cassandra_testing import cassandra_settings, drop_keyspaces, fresh_prefix

from idgraph.coordination.cassandra_backend.turns import CassandraWriterTurns
from idgraph.profile_store import create_store

pytestmark = pytest.mark.slow

WRITERS = 4


def test_writers_opening_a_new_cluster_at_once_all_open(cassandra_cluster, tmp_path):
    prefix = fresh_prefix("race")
    settings = cassandra_settings(cassandra_cluster, prefix)
    start = threading.Barrier(WRITERS)

    def open_writer(i: int) -> str:
        start.wait()
        turns = CassandraWriterTurns(settings, wait_seconds=60, lease_seconds=3)
        try:
            store = create_store("cassandra", tmp_path / str(i), ["eu", "us"],
                                 cassandra=settings)
            store.close()
        finally:
            turns.close()
        return "opened"

    try:
        with ThreadPoolExecutor(WRITERS) as pool:
            assert list(pool.map(open_writer, range(WRITERS))) == ["opened"] * WRITERS
    finally:
        drop_keyspaces(cassandra_cluster, prefix)
