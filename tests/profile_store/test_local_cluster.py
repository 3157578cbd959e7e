"""The local two-data-centre Cassandra cluster, checked with cassandra-driver (protocol v3).

Also the ways to prove where a row lives, which the Cassandra store's residency test
builds on:

- replication (configuration): the driver's token map
  (``cluster.metadata.get_replicas``) names only nodes of the keyspace's data centres;
- per node, over CQL: a node outside those data centres, used as the only coordinator
  (``WhiteListRoundRobinPolicy``), answers ``LOCAL_ONE`` with Unavailable: its data
  centre holds no replica. ``ONE`` is no proof: that coordinator fetches the row from
  the other data centre and returns it;
- physically (local cluster only): the row's bytes are in the files of the owning node
  (its commit log, memory-mapped, right after the write) and in no file of the other,
  and ``nodetool cfstats`` counts the write on the owning node only.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from cassandra import ConsistencyLevel, Unavailable
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.policies import (
    DCAwareRoundRobinPolicy,
    FallthroughRetryPolicy,
    RoundRobinPolicy,
    TokenAwarePolicy,
    WhiteListRoundRobinPolicy,
)
from cassandra.query import SimpleStatement

from idgraph.devservers.cassandra_cluster import PROTOCOL_VERSION, LocalCassandraCluster

pytestmark = pytest.mark.slow


@contextmanager
def connect(cc, *, only: str | None = None, local_dc: str | None = None,
            ) -> Iterator[tuple[Cluster, Session]]:
    """A driver session: coordinated by node ``only`` alone, DC-aware for ``local_dc``, or
    (neither given) connected to every node.

    Retries are off (FallthroughRetryPolicy) so Unavailable reaches the test as is.
    """
    points = list(cc.contact_points)
    if only is not None:
        policy = WhiteListRoundRobinPolicy([only])
        points = [only]
    elif local_dc is not None:
        policy = TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=local_dc))
    else:
        # DC-aware policies ignore remote hosts: the driver never connects to them, so
        # their ``is_up`` stays None
        policy = RoundRobinPolicy()
    profile = ExecutionProfile(load_balancing_policy=policy, request_timeout=20,
                               retry_policy=FallthroughRetryPolicy())
    cluster = Cluster(points, port=cc.port, protocol_version=PROTOCOL_VERSION,
                      execution_profiles={EXEC_PROFILE_DEFAULT: profile})
    try:
        yield cluster, cluster.connect()
    finally:
        cluster.shutdown()


def node_datacenters(cc) -> dict[str, str]:
    """IP -> data centre of every node, as the cluster itself reports it."""
    with connect(cc) as (cluster, _):
        return {h.address: h.datacenter for h in cluster.metadata.all_hosts()}


@contextmanager
def keyspace(session: Session, replication: dict[str, int]) -> Iterator[str]:
    """A fresh NetworkTopologyStrategy keyspace with an uncompressed table ``t``."""
    name = f"lc_{uuid.uuid4().hex[:12]}"
    dcs = ", ".join(f"'{dc}': {rf}" for dc, rf in replication.items())
    session.execute(f"CREATE KEYSPACE {name} WITH replication = "
                    f"{{'class': 'NetworkTopologyStrategy', {dcs}}}")
    # uncompressed, so a flushed SSTable holds the value's bytes as they are
    session.execute(f"CREATE TABLE {name}.t (k text PRIMARY KEY, v text) "
                    "WITH compression = {'sstable_compression': ''}")
    try:
        yield name
    finally:
        session.execute(f"DROP KEYSPACE {name}")


def write(session: Session, ks: str, k: str, v: str, cl: int) -> None:
    stmt = session.prepare(f"INSERT INTO {ks}.t (k, v) VALUES (?, ?)")
    stmt.consistency_level = cl
    session.execute(stmt, (k, v))


def read(session: Session, ks: str, k: str, cl: int) -> str | None:
    stmt = SimpleStatement(f"SELECT v FROM {ks}.t WHERE k = %s", consistency_level=cl)
    row = session.execute(stmt, (k,)).one()
    return None if row is None else row.v


def test_two_nodes_in_two_datacentres_are_up(cassandra_cluster) -> None:
    cc = cassandra_cluster
    assert len(cc.datacenters) >= 2, f"need two data centres, got {cc.datacenters}"
    with connect(cc) as (cluster, _):
        hosts = cluster.metadata.all_hosts()
        assert all(h.is_up for h in hosts), [(h.address, h.is_up) for h in hosts]
        by_ip = {h.address: h.datacenter for h in hosts}
    assert set(cc.datacenters) <= set(by_ip.values())
    if isinstance(cc, LocalCassandraCluster):
        assert by_ip == dict(cc.nodes) == {"127.0.0.1": "dc1", "127.0.0.2": "dc2"}
    for ip, dc in by_ip.items():  # each node answers itself and names its data centre
        with connect(cc, only=ip) as (_, session):
            local = session.execute(
                "SELECT data_center, release_version FROM system.local WHERE key = 'local'"
            ).one()
            peers = {r.peer for r in session.execute("SELECT peer FROM system.peers")}
        assert local.data_center == dc
        assert peers == set(by_ip) - {ip}
        if isinstance(cc, LocalCassandraCluster):
            assert local.release_version == "2.1.0"


def test_a_row_replicated_to_dc1_only_lives_on_the_dc1_node_only(cassandra_cluster) -> None:
    cc = cassandra_cluster
    home_dc, other_dc = cc.datacenters[:2]
    dcs = node_datacenters(cc)
    home = [ip for ip, dc in dcs.items() if dc == home_dc]
    other = [ip for ip, dc in dcs.items() if dc == other_dc]
    assert home and other, dcs
    key, canary = f"k-{uuid.uuid4().hex}", f"canary-{uuid.uuid4().hex}"

    with connect(cc, local_dc=home_dc) as (cluster, session), \
            keyspace(session, {home_dc: 1}) as ks:
        write(session, ks, key, canary, ConsistencyLevel.LOCAL_QUORUM)

        # configuration: the token map puts every replica in the home data centre
        cluster.refresh_schema_metadata()
        replicas = {h.address for h in cluster.metadata.get_replicas(ks, key.encode())}
        assert replicas and replicas <= set(home), replicas

        for ip in home:  # readable through each home node, in its own data centre
            with connect(cc, only=ip) as (_, s):
                assert read(s, ks, key, ConsistencyLevel.LOCAL_ONE) == canary
        for ip in other:
            with connect(cc, only=ip) as (_, s):
                # its data centre has no replica to answer from ...
                with pytest.raises(Unavailable):
                    read(s, ks, key, ConsistencyLevel.LOCAL_ONE)
                # ... while ONE is served from the home data centre: not a residency proof
                assert read(s, ks, key, ConsistencyLevel.ONE) == canary

        if isinstance(cc, LocalCassandraCluster):  # physically: which node stored it
            needle = canary.encode()
            for i, (ip, dc) in enumerate(cc.nodes):
                found = cc.files_containing(i, needle)
                stats = cc.nodetool(i, "cfstats", f"{ks}.t")
                local_writes = int(re.search(r"Local write count: (\d+)", stats).group(1))
                if dc == home_dc:
                    assert found, f"{ip} ({dc}) should hold the row"
                    assert all("commitlog" in p.parts for p in found), found
                    assert local_writes == 1
                else:
                    assert found == [], f"{ip} ({dc}) holds the row: {found}"
                    assert local_writes == 0


def test_writes_in_dc1_go_on_while_dc2_is_down(cassandra_cluster) -> None:
    cc = cassandra_cluster
    if not cc.can_control_nodes:
        pytest.skip("the cluster was not started by the tests: nodes cannot be stopped")
    home_dc, other_dc = cc.datacenters[:2]
    down = [i for i, (_, dc) in enumerate(cc.nodes) if dc == other_dc]
    with connect(cc, local_dc=home_dc) as (_, session), \
            keyspace(session, {home_dc: 1, other_dc: 1}) as ks:
        write(session, ks, "before", "1", ConsistencyLevel.EACH_QUORUM)
        for i in down:
            cc.stop_node(i)
        try:
            assert not any(cc.is_running(i) for i in down)
            write(session, ks, "during", "2", ConsistencyLevel.LOCAL_QUORUM)
            assert read(session, ks, "during", ConsistencyLevel.LOCAL_QUORUM) == "2"
            # the coordinator really sees the other data centre down
            with pytest.raises(Unavailable):
                write(session, ks, "each", "3", ConsistencyLevel.EACH_QUORUM)
        finally:
            for i in down:
                cc.start_node(i)
        assert all(cc.is_running(i) for i in down)
        write(session, ks, "after", "4", ConsistencyLevel.EACH_QUORUM)
        for i in down:
            with connect(cc, only=cc.nodes[i][0]) as (_, s):
                assert read(s, ks, "before", ConsistencyLevel.LOCAL_ONE) == "1"
                assert read(s, ks, "after", ConsistencyLevel.LOCAL_ONE) == "4"
