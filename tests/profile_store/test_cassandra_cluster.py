"""Failure, residency and atomicity tests of the Cassandra store on the real cluster.

The cluster (``cassandra_cluster`` in conftest.py) has node 0 (127.0.0.1) in dc1, where
the ``eu`` keyspace is replicated, and node 1 (127.0.0.2) in dc2, where ``us`` is.

- With dc2's node stopped, EU profiles are written and read at LOCAL_QUORUM.
- An EU profile's rows exist only in dc1 and only in the EU keyspace, even when written
  by a writer whose local data centre is dc2 (checked on each node and on disk).
- The consistency level sent with every request is the configured one (the driver's
  messages), and the server applies it (its Unavailable error names the level).
- A write interrupted after its commit point is completed by the next operation or the
  next open; one interrupted before it is hidden; redelivered events count once.
- Anonymous profiles get a TTL and expire; a profile that becomes known loses it.
- A driver error in a seam method is a BackendError naming the seam and the method (or,
  for a region's statement, the operation and the region), never a key; a missing driver
  names the extra to install.
"""

from __future__ import annotations

import sys
import time
import uuid

import pytest
from cassandra_testing import (
    admin_session,
    cassandra_settings,
    drop_keyspaces,
    fresh_prefix,
    truncate_keyspaces,
)
from store_builders import links, rec, seed

from idgraph.core.errors import BackendError, ConfigError
from idgraph.profile_store.base import ProfileChange, ProfileHead, StoreBatch
from idgraph.profile_store.cassandra_backend import CassandraProfileStore

pytestmark = pytest.mark.slow

REGIONS = ["eu", "us"]
DC1, DC2 = 0, 1  # node indices


@pytest.fixture(scope="module")
def module_prefix(cassandra_cluster):
    """Keyspaces eu, us and global for this module (created once, dropped at the end)."""
    prefix = fresh_prefix("f")
    CassandraProfileStore(cassandra_settings(cassandra_cluster, prefix), REGIONS).close()
    yield prefix
    drop_keyspaces(cassandra_cluster, prefix)


@pytest.fixture
def open_store(cassandra_cluster, module_prefix):
    """``open_store(regions, readonly=False, **settings)``: a store on emptied keyspaces."""
    truncate_keyspaces(cassandra_cluster, module_prefix)
    opened = []

    def factory(regions=REGIONS, readonly=False, **overrides):
        store = CassandraProfileStore(
            cassandra_settings(cassandra_cluster, module_prefix, **overrides), regions,
            readonly=readonly)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


def record_levels(store) -> list[str]:
    """Consistency level of every request ``store`` sends from now on (as sent)."""
    from cassandra import ConsistencyLevel

    levels: list[str] = []

    def on_request(future):
        level = getattr(future.message, "consistency_level", None)
        if level is not None:  # PREPARE messages carry none
            levels.append(ConsistencyLevel.value_to_name[level])

    store.session.add_request_init_listener(on_request)
    return levels


# -- a data centre down -------------------------------------------------------------------


def test_with_dc2_down_eu_profiles_are_written_and_read_at_local_quorum(cassandra_cluster,
                                                                         open_store):
    writer = open_store()
    seed(writer, rec("crm:1", "peu", "eu", ["email:1@x.eu"], 1.0),
         rec("crm:2", "pus", "us", ["email:2@x.com"], 2.0), events=["e1", "e2"])
    cassandra_cluster.stop_node(DC2)
    try:
        eu = open_store(["eu"])  # opens while dc2 is down
        levels = record_levels(eu)
        update = rec("crm:1", "peu", "eu", ["email:1@x.eu", "phone:+3312"], 3.0, first=1.0,
                     events=2)
        new = rec("crm:3", "pnew", "eu", ["email:3@x.eu"], 3.0)
        eu.write(StoreBatch(
            records=[update, new], identifier_links=links(update, new),
            heads=[ProfileHead("peu", "eu", 20.0), ProfileHead("pnew", "eu", 20.0)],
            processed_event_ids=["e3", "e4"],
            changes=[ProfileChange("updated", "peu", [], "eu", 3.0)]))
        assert eu.get_profile("peu").records == [update]
        assert [m.profile_id for m in eu.lookup("phone:+3312")] == ["peu"]
        assert eu.get_records(["crm:3"]) == {"crm:3": new}
        assert eu.unprocessed(["e1", "e3", "e4", "e5"]) == {"e5"}
        assert [c.profile_id for c in eu.pending_changes(10)] == ["peu"]
        assert [h.kind for h in eu.history("peu")] == ["created"]
        assert levels and set(levels) == {"LOCAL_QUORUM"}

        # a store of every region answers what dc1 alone can prove, and names the region
        # it cannot reach otherwise
        assert writer.get_profile("peu").head == ProfileHead("peu", "eu", 20.0)
        assert writer.get_records(["crm:1"]).keys() == {"crm:1"}
        with pytest.raises(BackendError, match="region 'us' failed: NoHostAvailable"):
            writer.get_profile("pus")
        with pytest.raises(BackendError, match="region 'us'"):
            writer.lookup("email:1@x.eu")  # another region may also hold it

        # the server applies the configured level: QUORUM of the global keyspace (one
        # replica per data centre) needs both, and the server's Unavailable says QUORUM
        quorum = open_store(["eu"], readonly=True, consistency="QUORUM")
        with pytest.raises(BackendError, match=r"consistency QUORUM needs 2 replica\(s\), "
                                               r"1 alive"):
            quorum.unprocessed(["e1"])
        assert quorum.get_profile("peu") is not None  # eu keyspace: a quorum of 1 in dc1
    finally:
        cassandra_cluster.start_node(DC2)
    us = open_store(["us"], readonly=True)
    assert us.get_profile("pus").head.region == "us"


# -- residency on the nodes ------------------------------------------------------------


def test_eu_rows_are_stored_only_in_dc1_and_only_in_the_eu_keyspace(cassandra_cluster,
                                                                    open_store):
    marker = uuid.uuid4().hex
    writer = open_store(local_datacenter="dc2")  # the writer sits in the other data centre
    coordinators: list[tuple[str, str]] = []

    def on_request(future):
        keyspace = getattr(future.query, "keyspace", None)
        future.add_callback(lambda _rows: coordinators.append(
            (keyspace, future.coordinator_host.address)))

    writer.session.add_request_init_listener(on_request)
    eu_key, eu_email = f"crm:eu{marker}", f"email:eu{marker}@x.eu"
    seed(writer, rec(eu_key, f"peu{marker}", "eu", [eu_email], 1.0, given_name=f"Eu{marker}"),
         rec(f"crm:us{marker}", f"pus{marker}", "us", [f"email:us{marker}@x.com"], 1.0))
    # a US profile merged into the EU one: its rows move to eu and leave us
    moved = rec(f"crm:mv{marker}", f"pmv{marker}", "us", [f"email:mv{marker}@x.com"], 1.0)
    seed(writer, moved)
    moved.profile_id, moved.home_region = f"peu{marker}", "eu"
    writer.write(StoreBatch(
        records=[moved], identifier_links=links(moved),
        heads=[ProfileHead(f"peu{marker}", "eu", 30.0)],
        reassign=[(f"pmv{marker}", f"peu{marker}")], regions=[(f"peu{marker}", "eu")],
        aliases={f"pmv{marker}": f"peu{marker}"}))
    eu_ks, us_ks = writer.keyspace("eu"), writer.keyspace("us")
    global_ks = writer.keyspace(None)

    # every statement of a region keyspace was coordinated in that region's data centre
    assert {ks: hosts for ks, hosts in _by_keyspace(coordinators).items()} == {
        eu_ks: {"127.0.0.1"}, us_ks: {"127.0.0.2"}, global_ks: {"127.0.0.2"}}

    # the driver's token map: the EU keys' only replica is the dc1 node
    lookup = writer.session.prepare(
        f"SELECT doc FROM {eu_ks}.records WHERE region = ? AND record_key = ?")
    routing_key = lookup.bind(("eu", eu_key)).routing_key
    replicas = writer.session.cluster.metadata.get_replicas(eu_ks, routing_key)
    assert [h.address for h in replicas] == ["127.0.0.1"]

    # each node on its own: dc1's answers at ONE; dc2 has no replica of the EU keyspace,
    # so even LOCAL_ONE (a replica in the coordinator's data centre) is unavailable there
    query = f"SELECT doc FROM {eu_ks}.records WHERE region = 'eu' AND record_key = %s"
    with admin_session(cassandra_cluster, ["127.0.0.1"], "ONE") as dc1:
        (doc,), = dc1.execute(query, [eu_key])
        assert f"Eu{marker}".encode() in doc
    from cassandra import Unavailable
    from cassandra.cluster import NoHostAvailable

    with admin_session(cassandra_cluster, ["127.0.0.2"], "LOCAL_ONE") as dc2:
        with pytest.raises(NoHostAvailable) as caught:
            dc2.execute(query, [eu_key])
        (err,) = caught.value.errors.values()
        assert isinstance(err, Unavailable) and err.alive_replicas == 0

    # on disk (data, commit log, hints, batch log): the dc2 node never held the EU
    # profile's bytes, while the dc1 node's files show them (so the search can find them)
    assert cassandra_cluster.files_containing(DC1, f"Eu{marker}".encode())
    assert cassandra_cluster.files_containing(DC2, f"Eu{marker}".encode()) == []
    assert cassandra_cluster.files_containing(DC2, f"eu{marker}".encode()) == []

    # no row of the us or global keyspaces names the EU profile (the moved one included)
    with admin_session(cassandra_cluster) as session:
        for ks in (us_ks, global_ks):
            for table in session.cluster.metadata.keyspaces[ks].tables:
                for row in session.execute(f"SELECT * FROM {ks}.{table}"):
                    text = repr(row)
                    assert f"eu{marker}" not in text and f"mv{marker}" not in text, (ks, table)


def _by_keyspace(pairs: list[tuple[str, str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for ks, host in pairs:
        if ks is not None:
            out.setdefault(ks, set()).add(host)
    return out


def test_a_keyspace_replicated_elsewhere_is_refused(cassandra_cluster, open_store):
    with pytest.raises(ConfigError, match="region_datacenters.eu"):
        open_store(["eu"], region_datacenters={"eu": {"dc2": 1}, "us": {"dc2": 1}})


# -- the consistency level sent ----------------------------------------------------------


@pytest.mark.parametrize("level", ["LOCAL_ONE", "QUORUM"])
def test_every_request_carries_the_configured_consistency(open_store, level):
    store = open_store(consistency=level)
    levels = record_levels(store)
    seed(store, rec("crm:1", "p1", "eu", ["email:1@x.eu"]),
         rec("crm:2", "p2", "us", ["email:2@x.com"]), events=["e1"])
    store.get_profile("p1")
    store.lookup("email:2@x.com")
    store.unprocessed(["e1"])
    store.counts()
    assert len(levels) > 10 and set(levels) == {level}


# -- atomicity ----------------------------------------------------------------------------


def _merge_batch() -> tuple[StoreBatch, list]:
    bridge = rec("crm:3", "p1", "eu", ["email:1@x.eu", "email:2@x.com"], 3.0)
    moved = rec("crm:2", "p1", "eu", ["email:2@x.com"], 2.0)
    batch = StoreBatch(
        records=[bridge, moved], identifier_links=links(bridge, moved),
        heads=[ProfileHead("p1", "eu", 30.0)], reassign=[("p2", "p1")],
        regions=[("p1", "eu")], aliases={"p2": "p1"}, processed_event_ids=["m1", "m2"],
        changes=[ProfileChange("merged", "p1", ["p2"], "eu", 3.0)])
    return batch, [bridge, moved]


def _seed_two(store) -> None:
    seed(store, rec("crm:1", "p1", "eu", ["email:1@x.eu"], 1.0),
         rec("crm:2", "p2", "us", ["email:2@x.com"], 2.0), events=["e1", "e2"])


def _crash_after(store, monkeypatch, fraction: float) -> None:
    """Make the store's next apply (its journal's step 3) write ``fraction`` of each
    region's rows, then die."""
    original = store._journal.apply

    def crash(plan):
        original({r: m[:int(len(m) * fraction)] for r, m in plan.items()})
        raise RuntimeError("simulated crash while applying the batch")

    monkeypatch.setattr(store._journal, "apply", crash)


def _assert_merged(store) -> None:
    stored = store.get_profile("p2")
    assert stored.head == ProfileHead("p1", "eu", 30.0) and stored.aliases == ["p2"]
    assert [(r.record_key, r.home_region) for r in stored.records] == [
        ("crm:1", "eu"), ("crm:2", "eu"), ("crm:3", "eu")]
    assert [m.profile_id for m in store.lookup("email:2@x.com")] == ["p1"]
    assert store.unprocessed(["m1", "m2"]) == set()
    assert [c.kind for c in store.pending_changes(10)] == ["merged"]
    assert store.counts() == {"profiles": 1, "records": 3, "identifiers": 4, "aliases": 1,
                              "processed_events": 4}


def _journal_rows(cluster, store) -> int:
    with admin_session(cluster) as session:
        return sum(len(list(session.execute(f"SELECT * FROM {store.keyspace(r)}.journal")))
                   for r in REGIONS) + len(list(session.execute(
                       f"SELECT * FROM {store.keyspace(None)}.batches")))


def test_a_write_interrupted_after_its_commit_is_completed_by_the_next_operation(
        cassandra_cluster, open_store, monkeypatch):
    store = open_store()
    _seed_two(store)
    _crash_after(store, monkeypatch, 0.5)
    batch, _ = _merge_batch()
    with pytest.raises(RuntimeError, match="simulated crash"):
        store.write(batch)
    monkeypatch.undo()
    reader = open_store(readonly=True)  # another process sees the half-applied batch
    assert reader.unprocessed(["m1", "m2"]) == {"m1", "m2"}
    assert _journal_rows(cassandra_cluster, store) > 0
    assert store.unprocessed(["m1", "m2"]) == set()  # the writer finished it first
    _assert_merged(store)
    _assert_merged(reader)
    assert _journal_rows(cassandra_cluster, store) == 0


def test_a_write_interrupted_after_its_commit_is_completed_when_reopened(
        cassandra_cluster, open_store, monkeypatch):
    store = open_store()
    _seed_two(store)
    _crash_after(store, monkeypatch, 0.3)
    batch, _ = _merge_batch()
    with pytest.raises(RuntimeError):
        store.write(batch)
    store.close()  # the process is gone
    _assert_merged(open_store())
    assert _journal_rows(cassandra_cluster, store) == 0


def test_a_write_interrupted_before_its_commit_is_hidden(cassandra_cluster, open_store,
                                                         monkeypatch):
    store = open_store()
    _seed_two(store)
    original = store._journal.begin

    def crash(*args):
        original(*args)  # pending row, in-flight pointers and journals all written
        raise RuntimeError("simulated crash before the commit point")

    monkeypatch.setattr(store._journal, "begin", crash)
    batch, _ = _merge_batch()
    with pytest.raises(RuntimeError):
        store.write(batch)
    store.close()
    assert _journal_rows(cassandra_cluster, store) > 0
    again = open_store()
    assert again.unprocessed(["m1", "m2"]) == {"m1", "m2"}  # delivered again, applied once
    assert again.get_profile("p2").head == ProfileHead("p2", "us", 10.0)
    assert again.pending_changes(10) == []
    assert _journal_rows(cassandra_cluster, store) == 0
    again.write(batch)  # the redelivery
    _assert_merged(again)


def test_redelivery_after_a_crash_mid_write_counts_each_event_once(cassandra_cluster,
                                                                   tmp_path, monkeypatch):
    """The engine's path: a crash in the store write, the batch delivered again."""
    from idgraph.engine import Engine
    from idgraph.generator import generate
    from idgraph.settings import Settings
    events = generate(n_records=600, seed=5).events
    first, second = events[:300], events[300:]
    prefix = fresh_prefix("r")
    try:
        settings = Settings(data_dir=tmp_path / "cassandra", profile_store_backend="cassandra",
                            cassandra=cassandra_settings(cassandra_cluster, prefix),
                            privacy={"suppression_key": "test-suppression-key-" + "k" * 16})
        with Engine(settings) as engine:
            engine.ingest_payloads(first)
            _crash_after(engine.store, monkeypatch, 0.5)
            with pytest.raises(RuntimeError):
                engine.ingest_payloads(second)
            monkeypatch.undo()
            again = engine.ingest_payloads(second)  # redelivered
            assert again.events_applied == 0 and again.duplicate_events == again.events_received
            crashed = {k: (r.event_count, r.profile_id)
                       for k, r in engine.store.get_records(engine.store.record_profiles()).items()}
    finally:
        drop_keyspaces(cassandra_cluster, prefix)
    with Engine(Settings(data_dir=tmp_path / "sqlite")) as engine:
        engine.ingest_payloads(first)
        engine.ingest_payloads(second)
        clean = {k: (r.event_count, r.profile_id)
                 for k, r in engine.store.get_records(engine.store.record_profiles()).items()}
    assert crashed == clean


# -- anonymous profiles -------------------------------------------------------------------


def _ttls(cluster, store, region: str, key: str) -> tuple:
    ks = store.keyspace(region)
    with admin_session(cluster) as session:
        (doc_ttl, idx_ttl), = session.execute(
            f"SELECT TTL(doc), TTL(idx) FROM {ks}.records WHERE region = %s AND record_key = %s",
            [region, key])
        idents = [t for (t,) in session.execute(
            f"SELECT TTL(linked) FROM {ks}.identifiers WHERE region = %s AND identifier = %s",
            [region, "device:d1"])]
    return doc_ttl, idx_ttl, idents


def test_anonymous_profiles_get_a_ttl_and_lose_it_when_known(cassandra_cluster, open_store):
    store = open_store(anonymous_ttl_seconds=600)
    seed(store, rec("segment:a1", "panon", "eu", ["device:d1", "cookie:c1"], 1.0),
         rec("crm:1", "pknown", "eu", ["email:1@x.eu", "device:d2"], 1.0))
    doc_ttl, idx_ttl, idents = _ttls(cassandra_cluster, store, "eu", "segment:a1")
    assert 0 < doc_ttl <= 600 and 0 < idx_ttl <= 600 and idents and all(idents)
    assert _ttls(cassandra_cluster, store, "eu", "crm:1")[:2] == (None, None)

    # a login: an email joins the anonymous profile; every row of it loses the TTL
    login = rec("segment:a2", "panon", "eu", ["device:d1", "email:2@x.eu"], 2.0)
    store.write(StoreBatch(records=[login], identifier_links=links(login),
                           heads=[ProfileHead("panon", "eu", 20.0)]))
    assert _ttls(cassandra_cluster, store, "eu", "segment:a1") == (None, None, [None, None])


def test_anonymous_profiles_expire_together(cassandra_cluster, open_store):
    store = open_store(anonymous_ttl_seconds=3)
    started = time.monotonic()  # the TTL counts from each write, which may be slow
    seed(store, rec("segment:a1", "panon", "eu", ["device:d1"], 1.0),
         rec("crm:1", "pknown", "eu", ["email:1@x.eu"], 1.0))
    store.write(StoreBatch(aliases={"pold": "panon"}))
    assert store.get_profile("pold").head.profile_id == "panon"

    def expired() -> bool:
        return (store.get_profile("panon") is None and store.get_profile("pold") is None
                and store.lookup("device:d1") == [] and store.history("panon") == []
                and store.get_records(["segment:a1"]) == {})

    deadline = time.monotonic() + 30
    while not expired():
        assert time.monotonic() < deadline, "anonymous profile rows still there after 30 s"
        time.sleep(0.25)
    # gone by its TTL, not at once: Cassandra keeps expiry times in whole seconds (a write
    # at X.9 s with a 3 s TTL expires at X+3), so up to a second early
    assert time.monotonic() - started >= 1.5
    assert store.get_profile("pknown") is not None
    assert store.counts()["records"] == 1


# -- driver errors --------------------------------------------------------------------------


def test_a_driver_error_in_a_seam_method_names_the_seam_and_the_method_not_the_values(
        open_store):
    """The session is shut down underneath the store: the driver then fails every request
    (NoHostAvailable, each host's pool shut down). A statement not prepared yet fails as
    the method prepares it, and the seam's boundary names the method; one already prepared
    fails when the runner sends it, and the store names the operation and the region."""
    from cassandra.cluster import NoHostAvailable

    key = "crm:jane.doe@example.com"
    seed(open_store(), rec(key, "p1", "eu", ["email:jane.doe@example.com"], 1.0))
    reader = open_store(readonly=True)  # prepares nothing when it opens
    assert reader.get_heads(["p1"]).keys() == {"p1"}  # prepares ids_in only
    reader.session.shutdown()

    with pytest.raises(BackendError) as err:
        reader.get_records([key])
    assert str(err.value).startswith("profile store: get_records failed: NoHostAvailable (")
    assert isinstance(err.value.__cause__, NoHostAvailable)
    assert "jane" not in str(err.value)
    with pytest.raises(BackendError, match=r"^profile store: lookup failed: NoHostAvailable"):
        reader.lookup("email:jane.doe@example.com")

    with pytest.raises(BackendError) as err:
        reader.get_heads(["p1", "jane.doe@example.com"])
    assert str(err.value).startswith(
        "profile store: read profiles in region 'eu' failed: NoHostAvailable (")
    assert "jane" not in str(err.value)


def test_a_missing_driver_names_the_extra_to_install(monkeypatch, tmp_path):
    """The store's module imports the driver (its errors are declared at the seam's
    boundary when the class is made); the package imports that module on first use."""
    from idgraph.profile_store import create_store

    monkeypatch.setitem(sys.modules, "cassandra", None)  # what `import cassandra` meets
    monkeypatch.delitem(sys.modules, "idgraph.profile_store.cassandra_backend.store")
    with pytest.raises(ConfigError, match=r"pip install 'idgraph\[cassandra\]'"):
        create_store("cassandra", tmp_path, ["eu"])
