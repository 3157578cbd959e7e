"""One machine as if three (issue 19): three ``idgraph worker`` processes, each with its
own empty data dir, share nothing but the broker, the Neo4j graph (the suite's ArcadeDB
Bolt server) and Cassandra (the suite's two-node, two-data-centre cluster): their writer
turns are a lease with a fencing token in Cassandra, and the store's commits and the
graph's writes are fenced by the turn's token.

A generated stream arrives in waves while the workers are disturbed:

1. one worker is SIGKILLed mid-stream and a replacement (a fresh data dir) starts;
2. another stops itself (SIGSTOP, failpoint ``journal.begun``: inside its turn, its batch
   journaled, before the store's commit point) for longer than ``writer_lease_seconds``
   while the others go on; then SIGCONT. It must find it lost its turn: the store
   refuses its commit ("lost its turn"), and the batch is retried in a new turn;
3. dc2's Cassandra node is stopped for a while (the lease's Paxos has no quorum: the
   writers wait and retry), then started again.

The group then drains the topics, and what the distributed backends hold, read through
the engine's readers, must equal one in-process engine's (embedded backends) fed the
same events: the same events processed, each record's event counter (nothing applied
twice, nothing lost), the same grouping of known records into profiles, each profile
with the same records equal in every field but the IDs, the IDs of one-record profiles
(derived from the record's key), and every stored profile equal to its graph component.
Where an anonymous device record lands is not compared: it depends on arrival order
across partitions even without faults (:mod:`tests.stream.fault_harness`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from idgraph.graph import create_graph_view
from idgraph.profile_store import create_store
from idgraph.resolver.linking import LinkPlanner
from idgraph.settings import Settings, load_settings, write_settings_file
from tests.graph.conftest import bolt_server, neo4j_reset, neo4j_settings  # noqa: F401
from tests.profile_store.cassandra_testing import (
    cassandra_settings,
    drop_keyspaces,
    fresh_prefix,
)
from tests.stream.conftest import wait_for
from tests.stream.fault_harness import (
    committed_offsets,
    end_offsets,
    make_workload,
    produce,
    store_state,
)

pytestmark = pytest.mark.slow

SEED = 20261219
RECORDS = 2400  # ~2,250 events
WAVES = 4
ROOT = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 3.0
PAUSE_SECONDS = 6.0  # the paused worker's stop: twice the lease
OUTAGE_SECONDS = 8.0  # dc2's node down
DRAIN_TIMEOUT = 150.0


def _stopped(pid: int) -> bool:
    """Whether process ``pid`` is stopped (state T in /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] in ("T", "t")


def _consumed(ws) -> int:
    return sum(w.stats().get("events_consumed", 0) for w in ws)


def test_three_workers_on_neo4j_and_cassandra_equal_one_embedded_engine(
        workers, stream_env, broker, cassandra_cluster, neo4j_settings, tmp_path):  # noqa: F811
    workload = make_workload(SEED, RECORDS, 0, tmp_path / "reference")
    items = workload.items
    prefix = fresh_prefix("three")
    stream = load_settings(stream_env["IDGRAPH_CONFIG"]).stream.model_copy(
        update={"batch_size": 40, "commit_interval_seconds": 0.5})
    settings = Settings(
        data_dir=tmp_path / "unused", graph_backend="neo4j", profile_store_backend="cassandra",
        neo4j=neo4j_settings, cassandra=cassandra_settings(cassandra_cluster, prefix),
        writer_lease_seconds=LEASE_SECONDS,
        privacy={"suppression_key": "three-machines-key-" + "k" * 16},
        segments={"tick_seconds": 5.0}, stream=stream)
    config = write_settings_file(settings, tmp_path / "three-machines.toml")

    def start(name: str, **env: str):
        data_dir = tmp_path / f"{name}-data"  # each machine its own, empty
        return workers(name, data_dir, IDGRAPH_CONFIG=str(config), **env)

    log: list[str] = []

    def say(line: str) -> None:
        log.append(f"{time.strftime('%H:%M:%S')} {line}")

    t0 = time.monotonic()
    node_stopped = False
    try:
        # the schema first, as the README says (workers refuse to start without it):
        # writers creating the same tables at once leave Cassandra 2.1's nodes with
        # different table IDs ("Column family ID mismatch"; a node restarted later refuses
        # the lease's Paxos)
        made = subprocess.run([sys.executable, "-m", "idgraph.cli", "schema", "--config",
                               str(config), "--data-dir", str(tmp_path / "schema-data")],
                              capture_output=True, text=True, timeout=300, check=False,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert made.returncode == 0, made.stderr[-3000:]
        a = start("a")
        wait_for(lambda: "Worker]: Ready" in a.log_path.read_text(errors="replace"), 90,
                 "a to join the group", [a])
        # b stops itself inside its 3rd store write: batch journaled, turn held
        b = start("b", IDGRAPH_FAILPOINTS="journal.begun=stop@3")
        c = start("c")
        live = [a, b, c]
        waves = [items[n * len(items) // WAVES:(n + 1) * len(items) // WAVES]
                 for n in range(WAVES)]

        # wave 0: a is killed mid-stream, a2 replaces it
        produce(stream_env, waves[0])
        say(f"wave 0: {len(waves[0])} events")
        wait_for(lambda: a.stats().get("batches", 0) >= 2, 120, "a's second batch", live)
        a.kill()
        done = _consumed(live)
        say(f"  killed a after {a.stats().get('batches')} batches ({done} events consumed)")
        a2 = start("a2")
        live = [a2, b, c]

        # wave 1: b stops itself in its turn; the others take the turn meanwhile. Half the
        # wave arrives while b is stopped, so the others have work that needs the turn
        # whatever they had finished before b stopped (else b's turn is never taken and
        # its commit is rightly accepted)
        half = len(waves[1]) // 2
        produce(stream_env, waves[1][:half])
        say(f"wave 1: {len(waves[1])} events")
        wait_for(lambda: _stopped(b.proc.pid), 120, "b to stop itself inside a turn", live)
        others_before = _consumed([a2, c])
        produce(stream_env, waves[1][half:])
        time.sleep(PAUSE_SECONDS)
        os.kill(b.proc.pid, signal.SIGCONT)
        say(f"  b stopped for {PAUSE_SECONDS} s; the others consumed "
            f"{_consumed([a2, c]) - others_before} events meanwhile")
        wait_for(lambda: "lost its turn" in b.log_path.read_text(errors="replace"), 60,
                 "b to find it lost its turn", live)

        # wave 2: dc2's node down for a while, then back
        produce(stream_env, waves[2])
        say(f"wave 2: {len(waves[2])} events")
        before = _consumed(live)
        wait_for(lambda: _consumed(live) > before, 60, "wave 2 to be consumed", live)
        cassandra_cluster.stop_node(1)
        node_stopped = True
        say("  dc2's node stopped")
        time.sleep(OUTAGE_SECONDS)
        cassandra_cluster.start_node(1)
        node_stopped = False
        say("  dc2's node started again")

        # wave 3, then drain
        produce(stream_env, waves[3])
        say(f"wave 3: {len(waves[3])} events; draining")
        ends = end_offsets(stream_env)
        assert sum(ends.values()) == len(items)

        def drained() -> bool:
            done = committed_offsets(stream_env)
            return all(done.get(tp, 0) >= end for tp, end in ends.items())

        wait_for(drained, DRAIN_TIMEOUT, "the group to commit every input message", live)
        say(f"drained after {time.monotonic() - t0:.0f} s")
        for w in live:
            assert w.stop(timeout=60) == 0, w.log_tail()
    finally:
        if node_stopped:
            cassandra_cluster.start_node(1)

    try:
        got, graph_mismatch, ids = _distributed_state(settings)
    finally:
        drop_keyspaces(cassandra_cluster, prefix)
    want = workload.expected
    b_log = b.log_path.read_text(errors="replace")
    report = "\n".join(log) + "\n--- b\n" + "\n".join(
        line for line in b_log.splitlines() if "turn" in line or "retrying" in line)

    # fencing: b's commit in the turn it lost was refused, and b went on (it retried,
    # and applied events after that)
    assert "lost its turn" in b_log and "retrying" in b_log, report
    assert b.stats().get("events_applied", 0) > 0, report
    # nothing lost, nothing applied twice
    assert got.processed == want.processed, report
    twice = sorted(k for k, n in got.record_events.items() if n > want.record_events.get(k, 0))
    lost = sorted(k for k, n in want.record_events.items() if got.record_events.get(k, 0) < n)
    assert not twice, f"{len(twice)} records applied twice, e.g. {twice[:3]}\n{report}"
    assert not lost, f"{len(lost)} records missing events, e.g. {lost[:3]}\n{report}"
    assert got.record_events == want.record_events, report
    # the same people, and each profile with the same records equal in every field
    assert got.known_partition() == want.known_partition(), report
    same = [k for k in want.profiles if k in got.profiles]
    assert len(same) > 0.9 * len(want.profiles), report
    differ = [k for k in same if got.profiles[k] != want.profiles[k]]
    assert not differ, f"{len(differ)} profiles differ, e.g. {sorted(differ[0])}\n{report}"
    # one-record profiles keep the ID derived from their record (graph/ids.py)
    want_ids = _reference_ids(tmp_path / "reference")
    singles = {keys: pid for keys, pid in want_ids.items() if len(keys) == 1 and keys in ids}
    assert singles and all(ids[k] == pid for k, pid in singles.items()), report
    # the store agrees with the graph
    assert not graph_mismatch, f"{len(graph_mismatch)} profiles differ from their graph " \
        f"component, e.g. {graph_mismatch[:3]}\n{report}"
    print(report)


def _distributed_state(settings: Settings):
    """The checker's view of the Cassandra store, the profiles that differ from their
    Neo4j component, and each profile's ID by its record keys (read-only readers)."""
    store = create_store("cassandra", settings.data_dir, settings.regions.regions,
                         readonly=True, cassandra=settings.cassandra)
    graph = create_graph_view("neo4j", settings.data_dir,
                              LinkPlanner(settings.linking).shareable_types(),
                              neo4j=settings.neo4j)
    try:
        state = store_state(store, settings)
        groups: dict[str, set[str]] = {}
        for key, pid in store.record_profiles().items():
            groups.setdefault(pid, set()).add(key)
        mismatch = [pid for pid, keys in groups.items() if set(graph.records_of(pid)) != keys]
        ids = {frozenset(keys): pid for pid, keys in groups.items()}
        return state, mismatch, ids
    finally:
        graph.close()
        store.close()


def _reference_ids(data_dir: Path) -> dict[frozenset[str], str]:
    settings = Settings(data_dir=data_dir)
    store = create_store("sqlite", data_dir, settings.regions.regions, readonly=True)
    try:
        groups: dict[str, set[str]] = {}
        for key, pid in store.record_profiles().items():
            groups.setdefault(pid, set()).add(key)
        return {frozenset(keys): pid for pid, keys in groups.items()}
    finally:
        store.close()
