"""Writer turns across machines (:mod:`idgraph.coordination.cassandra_backend.turns`) on the
real two-data-centre Cassandra cluster the suite starts: two instances are two machines.

One writer at a time; the next learns what the previous wrote; a turn left open (a crash)
makes the next writer reconcile; a writer that dies holding the lease blocks the others
for at most the lease; the lease is renewed while a turn runs; and a writer paused
(SIGSTOP) past its lease, while another took the turn and wrote, cannot commit when it
wakes: the store's fence refuses its token.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from idgraph.coordination import schema_created
from idgraph.coordination.cassandra_backend.turns import CassandraWriterTurns
from idgraph.core.errors import BackendError
from idgraph.profile_store import create_store
from idgraph.profile_store.cassandra_backend import schema as q
from tests.profile_store.cassandra_testing import (
    admin_session,
    cassandra_settings,
    drop_keyspaces,
    fresh_prefix,
)
from tests.profile_store.store_builders import rec, seed

pytestmark = pytest.mark.slow

WRITER = Path(__file__).with_name("fenced_writer.py")
REGIONS = ["eu", "us"]  # dc1 and dc2 of the test cluster
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def settings(cassandra_cluster):
    prefix = fresh_prefix("wt")
    cfg = cassandra_settings(cassandra_cluster, prefix)
    CassandraWriterTurns(cfg, REGIONS).close()  # creates the tables
    create_store("cassandra", Path("."), ["eu"], cassandra=cfg).close()
    yield cfg
    drop_keyspaces(cassandra_cluster, prefix)


@pytest.fixture
def machine(settings, cassandra_cluster):
    """``machine(**kw)``: a new writer (another machine) on an empty lease and feed."""
    ks = q.global_keyspace(settings.keyspace_prefix)
    with admin_session(cassandra_cluster, consistency="ALL") as session:
        for table in ("writer_lease", "writer_turns", "writer_fence"):
            session.execute(f"TRUNCATE {ks}.{table}")
        for region in REGIONS:
            region_ks = q.region_keyspace(settings.keyspace_prefix, region)
            session.execute(f"TRUNCATE {region_ks}.writer_turn_keys")
    made: list[CassandraWriterTurns] = []

    def make(regions=REGIONS, **kw) -> CassandraWriterTurns:
        made.append(CassandraWriterTurns(settings, regions, **kw))
        return made[-1]

    yield make
    for m in made:
        m.close()


def _in_thread(fn):
    """Run ``fn`` in a thread; returns (thread, result list)."""
    out: list = []
    t = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    t.start()
    return t, out


def test_one_writer_at_a_time_and_the_next_learns_what_the_first_wrote(machine):
    a, b = machine(), machine()
    first = a.begin()
    assert first.token == 1 and not first.crashed and first.foreign_turns == 0
    waiting, got = _in_thread(b.begin)
    time.sleep(1.0)
    assert got == []  # b waits while a holds the turn
    a.end({"crm:hubspot:1": "eu", "segment:anon:9": "us"})
    waiting.join(20)
    (second,) = got
    assert second.token == 2 and not second.crashed
    assert second.record_keys == {"crm:hubspot:1", "segment:anon:9"}
    assert second.foreign_turns == 1
    b.end({})
    third = a.begin()  # a learns b's turn (which wrote nothing)
    assert (third.token, third.foreign_turns, third.record_keys) == (3, 1, set())
    a.end({})


def test_a_turn_left_open_makes_the_next_writer_reconcile(machine):
    a, b = machine(), machine()
    a.begin()
    a.abort()  # released, the turn left open: its writer failed inside it
    catch = b.begin()
    assert catch.crashed and catch.record_keys is None and catch.token == 2
    b.end({"k": "eu"})
    again = a.begin()  # the open turn was closed by the reconciling writer
    assert not again.crashed and again.record_keys == {"k"}
    a.end({})


def test_a_forget_makes_the_feed_say_unknown(machine):
    a, b = machine(), machine()
    a.begin()
    a.end({"sendgrid:ann@x.io": "eu", "crm:hubspot:2": "us"})
    b.begin()
    assert b.erase({"sendgrid:ann@x.io"}) == 1  # the turn naming it is rewritten
    b.end({"crm:hubspot:3": "us"})
    catch = a.begin()  # b's turn names nothing: a rebuilds
    assert catch.record_keys is None and not catch.crashed
    a.end({})


def _feed_rows(cluster, settings) -> dict[str, list[tuple]]:
    """Every row of the feed: the global keyspace's and each region's key lists."""
    prefix = settings.keyspace_prefix
    with admin_session(cluster, consistency="ALL") as session:
        rows = {"global": [tuple(r) for t in ("writer_lease", "writer_turns")
                           for r in session.execute(f"SELECT * FROM "
                                                    f"{q.global_keyspace(prefix)}.{t}")]}
        for region in REGIONS:
            rows[region] = [tuple(r) for r in session.execute(
                f"SELECT turn, record_keys FROM {q.region_keyspace(prefix, region)}"
                ".writer_turn_keys")]
    return rows


def test_the_feed_keeps_each_record_key_in_its_home_regions_keyspace_only(
        machine, settings, cassandra_cluster):
    """Residency: the global keyspace (replicated to every data centre) names no record
    key; each key is in its record's region only; a reader gets them all back."""
    a, b = machine(), machine()
    a.begin()
    a.end({"sendgrid:ann@x.io": "eu", "crm:hubspot:5": "us", "segment:anon:1": "eu"})
    rows = _feed_rows(cassandra_cluster, settings)
    assert not any(k in repr(rows["global"]) for k in ("ann@x.io", "hubspot:5", "anon:1"))
    assert [(t, json.loads(k)) for t, k in rows["eu"]] == [
        (1, ["segment:anon:1", "sendgrid:ann@x.io"])]
    assert [(t, json.loads(k)) for t, k in rows["us"]] == [(1, ["crm:hubspot:5"])]
    catch = b.begin()
    assert catch.record_keys == {"sendgrid:ann@x.io", "crm:hubspot:5", "segment:anon:1"}
    b.end({})


def test_a_writer_learns_the_keys_of_the_regions_it_writes_only(machine):
    """A writer of the US records reads the US list of a turn that wrote both regions
    (it never contacts the EU keyspace, and holds no EU record to refresh)."""
    a, us_only = machine(), machine(regions=["us"])
    a.begin()
    a.end({"sendgrid:ann@x.io": "eu", "crm:hubspot:5": "us"})
    assert us_only.begin().record_keys == {"crm:hubspot:5"}
    us_only.end({})


def test_a_key_of_an_unknown_region_makes_the_turn_unknown_and_is_kept_nowhere(
        machine, settings, cassandra_cluster):
    a, b = machine(), machine()
    a.begin()
    a.end({"crm:hubspot:6": "eu", "sendgrid:bob@x.io": "apac"})  # apac: not a's region
    rows = _feed_rows(cassandra_cluster, settings)
    assert "bob@x.io" not in repr(rows) and "hubspot:6" not in repr(rows)
    catch = b.begin()
    assert catch.record_keys is None and catch.foreign_turns == 1 and not catch.crashed
    b.end({})


def test_a_missing_key_list_makes_the_catch_up_unknown(machine, settings, cassandra_cluster):
    """A region's list gone (its TTL expired) while the turn's row names the region: the
    reader cannot know the keys, so it rebuilds rather than miss them."""
    a, b = machine(), machine()
    a.begin()
    a.end({"crm:hubspot:7": "eu", "crm:hubspot:8": "us"})
    with admin_session(cassandra_cluster, consistency="ALL") as session:
        session.execute(f"DELETE FROM {q.region_keyspace(settings.keyspace_prefix, 'us')}"
                        ".writer_turn_keys WHERE name = 'writers' AND turn = 1")
    assert b.begin().record_keys is None
    b.end({})


def test_a_forget_deletes_the_key_lists_naming_the_key(machine, settings, cassandra_cluster):
    a, b = machine(), machine()
    for keys in ({"sendgrid:cy@x.io": "eu"}, {"crm:hubspot:9": "us"},
                 {"sendgrid:cy@x.io": "eu", "crm:hubspot:10": "eu"}):
        a.begin()
        a.end(keys)
    b.begin()
    assert b.erase({"sendgrid:cy@x.io"}) == 2
    b.end({"crm:hubspot:11": "us"})
    rows = _feed_rows(cassandra_cluster, settings)
    assert "cy@x.io" not in repr(rows)
    assert [t for t, _ in rows["eu"]] == [] and [t for t, _ in rows["us"]] == [2]


def test_the_lease_is_renewed_while_a_turn_runs(machine):
    a, b = machine(lease_seconds=1.0), machine(wait_seconds=1.0)
    a.begin()
    time.sleep(2.5)  # over twice the lease
    with pytest.raises(BackendError, match="another writer held the turn"):
        b.begin()
    assert a.renewals >= 3 and not a.lost.is_set()
    held = a.status()
    assert (held.holding, held.turn, held.lost) == (True, 1, 0) and held.renewals >= 3
    a.end({})
    assert not a.status().holding and a.status().turn == 1
    assert b.begin().token == 2
    b.end({})


def _writer(settings, lease: float, record_key: str, failpoints: str = ""):
    spec = {"cassandra": settings.model_dump(mode="json", exclude={"password"}),
            "lease_seconds": lease, "record_key": record_key, "profile_id": "p-" + record_key}
    env = {**os.environ, "IDGRAPH_FAILPOINTS": failpoints, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(WRITER)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    proc.stdin.write(json.dumps(spec))
    proc.stdin.close()
    return proc


def _state(pid: int) -> str:
    """The process state letter from /proc (T: stopped)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_writer_killed_holding_the_lease_blocks_the_others_at_most_the_lease(
        machine, settings):
    """The hand-over after a SIGKILL takes the lease (2 s) and no more than a second
    beyond; the next writer reconciles the dead writer's open turn."""
    b = machine()
    dead = _writer(settings, 2.0, "crm:hubspot:7", "journal.begun=kill")
    assert dead.wait(60) == -signal.SIGKILL, dead.stderr.read()[-2000:]
    died = time.monotonic()
    catch = b.begin()
    waited = time.monotonic() - died
    assert waited < 2.0 + 1.0, waited
    assert catch.crashed and catch.token == 2
    b.end({})


def test_a_writer_paused_past_its_lease_cannot_commit_after_another_wrote(
        machine, settings):
    """SIGSTOP after the writer journaled its batch, before the commit point; another
    writer takes the turn once the lease expired and writes; SIGCONT: the paused writer's
    commit is refused by the store's fence, and its record never appears."""
    stalled = _writer(settings, 1.5, "crm:hubspot:stale", "journal.begun=stop")
    _wait(lambda: _state(stalled.pid) == "T", 60, "the writer to stop itself")
    b = machine(lease_seconds=5.0)
    catch = b.begin()  # waits out the stalled writer's lease
    assert catch.token == 2
    store = create_store("cassandra", Path("."), ["eu"], cassandra=settings)
    try:
        store.fence(catch.token)
        seed(store, rec("crm:hubspot:fresh", "p-fresh", "eu", ["email:b@x.io"]))
    finally:
        store.close()
    b.end({"crm:hubspot:fresh": "eu"})

    os.kill(stalled.pid, signal.SIGCONT)
    assert stalled.wait(60) == 3, (stalled.stdout.read(), stalled.stderr.read()[-2000:])
    out = stalled.stdout.read()
    assert "turn 1" in out and "refused" in out and "lost its turn" in out
    reader = create_store("cassandra", Path("."), ["eu"], cassandra=settings)  # recovers
    try:
        stored = reader.get_records(["crm:hubspot:stale", "crm:hubspot:fresh"])
        assert sorted(stored) == ["crm:hubspot:fresh"]
    finally:
        reader.close()


def test_a_store_refuses_a_token_older_than_one_a_commit_carried(machine, settings):
    """Without pauses: the fence alone. A commit with turn 5, then one with turn 4, is
    refused; one with turn 5 again (the same turn's next batch) and 6 pass."""
    machine()  # empties the fence
    store = create_store("cassandra", Path("."), ["eu"], cassandra=settings)
    try:
        store.fence(5)
        seed(store, rec("crm:hubspot:a", "p-a", "eu", ["email:a@y.io"]))
        store.fence(4)
        with pytest.raises(BackendError, match="turn 5 of another writer"):
            seed(store, rec("crm:hubspot:b", "p-b", "eu", ["email:b@y.io"]))
        for token, key in ((5, "c"), (6, "d")):
            store.fence(token)
            seed(store, rec(f"crm:hubspot:{key}", f"p-{key}", "eu", [f"email:{key}@y.io"]))
        assert sorted(store.get_records([f"crm:hubspot:{k}" for k in "abcd"])) == [
            "crm:hubspot:a", "crm:hubspot:c", "crm:hubspot:d"]
    finally:
        store.close()


def test_a_writer_killed_after_its_fenced_commit_has_its_batch_finished_by_recovery(
        machine, settings):
    """Killed between the fence transaction and the batch row's update: the batch row
    still says pending, but the fence row names the batch, so the next store's recovery
    finishes it instead of discarding it (journal.fenced; the journal crash tests kill an
    engine there too)."""
    machine()  # empties the lease and the fence
    dead = _writer(settings, 1.0, "crm:hubspot:landed", "journal.fenced=kill")
    assert dead.wait(60) == -signal.SIGKILL, dead.stderr.read()[-2000:]
    assert "turn 1" in dead.stdout.read()
    reader = create_store("cassandra", Path("."), ["eu"], cassandra=settings)  # recovers
    try:
        assert list(reader.get_records(["crm:hubspot:landed"])) == ["crm:hubspot:landed"]
    finally:
        reader.close()


def test_idgraph_schema_creates_the_coordination_tables_before_any_writer(
        cassandra_cluster, tmp_path):
    """A worker refuses to start before ``idgraph schema`` ran (workers creating tables
    at once break them); ``idgraph schema`` (run once, before writers start) creates
    the lease, the feed, the fence and the models in the global keyspace, and the feed's
    key lists and the reviews (they name records) in every region's keyspace only."""
    prefix = fresh_prefix("sc")
    cfg = cassandra_settings(cassandra_cluster, prefix)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "IDGRAPH_PROFILE_STORE_BACKEND": "cassandra",
           "IDGRAPH_CASSANDRA": json.dumps(cfg.model_dump(mode="json", exclude={"password"})),
           "IDGRAPH_PRIVACY__SUPPRESSION_KEY": "schema-test-key-" + "s" * 20}
    try:
        early = subprocess.run([sys.executable, "-m", "idgraph.cli", "worker", "--data-dir",
                                str(tmp_path / "w")], env=env, capture_output=True,
                               text=True, timeout=300, check=False)
        assert early.returncode != 0
        assert "run `idgraph schema` once" in early.stderr, early.stderr[-3000:]
        assert not schema_created("cassandra", cfg)
        out = subprocess.run([sys.executable, "-m", "idgraph.cli", "schema", "--data-dir",
                              str(tmp_path / "d")], env=env, capture_output=True, text=True,
                             timeout=300, check=False)
        assert out.returncode == 0, out.stderr[-3000:]
        assert "coordination cassandra" in out.stdout
        assert schema_created("cassandra", cfg)
        with admin_session(cassandra_cluster) as session:
            keyspaces = session.cluster.metadata.keyspaces
            tables = set(keyspaces[q.global_keyspace(prefix)].tables)
            in_regions = {r: set(keyspaces[q.region_keyspace(prefix, r)].tables)
                          for r in ("eu", "uk", "us", "apac")}
        assert {"writer_lease", "writer_turns", "writer_fence", "batches"} <= tables
        assert any("model" in t for t in tables)
        assert not any("review" in t or "keys" in t for t in tables)
        for region_tables in in_regions.values():
            assert {"writer_turn_keys", "reviews", "reviews_by_record"} <= region_tables
    finally:
        drop_keyspaces(cassandra_cluster, prefix)
