"""Failure tests of ``idgraph worker`` against a real broker (tansu), with real worker
processes. Events are produced by an independent aiokafka client; the end state is read
from the store and the graph's link log, and compared with the same events ingested by one
engine in process.

What "exactly once in effect" means here: every valid event is recorded as processed, and
every record's event counter equals the number of its events in the stream: an event
applied twice would count twice, a lost one would be missing. Profile counters are folded
from those records and checked too, and the store's profiles equal the graph's components
(no half-applied batch).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import orjson
import pytest

from idgraph.engine import Engine
from idgraph.engine.queries import ProfileQueries
from idgraph.generator import generate
from idgraph.graph import create_graph
from idgraph.profile_store import create_store
from idgraph.resolver.linking import LinkPlanner
from idgraph.resolver.normalize import Normalizer
from idgraph.settings import Settings
from idgraph.stream.events import OFFSET, PARTITION, REASON, TOPIC
from tests.stream.conftest import wait_for
from tests.stream.fault_harness import processed, produce, stream_settings

pytestmark = pytest.mark.slow

ITEMS = generate(n_records=4000, seed=17).events


@dataclass
class Expected:
    processed: int
    record_events: dict[str, int]


@pytest.fixture(scope="module")
def expected(tmp_path_factory) -> Expected:
    with Engine(Settings(data_dir=tmp_path_factory.mktemp("reference"))) as engine:
        engine.ingest_payloads(ITEMS)
        records = engine.store.get_records(engine.store.record_profiles())
        return Expected(engine.store.counts()["processed_events"],
                        {k: r.event_count for k, r in records.items()})


def assert_exactly_once(data_dir, expected: Expected) -> None:
    settings = Settings(data_dir=data_dir)
    store = create_store("sqlite", data_dir, settings.regions.regions, readonly=True)
    graph = create_graph("networkx", data_dir, LinkPlanner(settings.linking).shareable_types(),
                         read_only=True)
    try:
        assert store.counts()["processed_events"] == expected.processed
        assignment = store.record_profiles()
        records = store.get_records(assignment)
        assert {k: r.event_count for k, r in records.items()} == expected.record_events
        groups: dict[str, set[str]] = {}
        for key, pid in assignment.items():
            groups.setdefault(pid, set()).add(key)
        queries = ProfileQueries(store, Normalizer(settings.normalization), settings.survivorship)
        for pid, keys in groups.items():
            assert queries.get_profile(pid).event_count == sum(
                expected.record_events[k] for k in keys)
            assert set(graph.records_of(pid)) == keys
    finally:
        store.close()
        graph.close()


def test_sigkill_mid_stream_then_restart_applies_every_event_once(
        stream_env, workers, tmp_path, expected):
    produce(stream_env, ITEMS)
    data = tmp_path / "data"
    # small batches, and no offset commit before the kill: the restarted worker must be
    # handed every event again and apply only the ones the killed worker had not stored
    opts = {"IDGRAPH_STREAM__BATCH_SIZE": "100", "IDGRAPH_STREAM__COMMIT_INTERVAL_SECONDS": "3600"}
    first = workers("first", data, **opts)
    wait_for(lambda: processed(data) >= expected.processed // 4, 90, "a quarter of the stream",
             [first])
    first.kill()
    at_kill = processed(data)
    assert 0 < at_kill < expected.processed, "the kill must land in the middle of the stream"

    second = workers("restarted", data, **opts)
    wait_for(lambda: processed(data) == expected.processed, 120, "every event", [second])
    wait_for(lambda: second.stats().get("events_consumed", 0) >= len(ITEMS), 60,
             "the redelivered stream", [second])
    stats = second.stats()
    assert stats["duplicate_events"] > 0, "the restart really was handed events again"
    assert stats["events_applied"] == expected.processed - at_kill
    assert stats["dead_letters"] == 0
    second.stop()
    assert_exactly_once(data, expected)


def test_a_batch_failing_unexpectedly_stops_the_worker_unacknowledged(
        stream_env, workers, tmp_path, expected):
    """A batch whose delivery fails for a reason no step retries (an injected fault at the
    last step, after it was stored and its changes sent) is not acknowledged: the consuming
    task fails, the worker stops with an error instead of going on past an uncommittable
    offset, and a restarted worker is handed the batch again and applies nothing twice."""
    produce(stream_env, ITEMS)
    data = tmp_path / "data"
    opts = {"IDGRAPH_STREAM__BATCH_SIZE": "500"}
    first = workers("failing", data, IDGRAPH_FAILPOINTS="stream.batch.acknowledged=fail@2",
                    **opts)
    wait_for(lambda: not first.alive(), 120, "the worker to stop after its failed batch")
    assert first.proc.returncode != 0, first.log_tail()
    assert "it is not acknowledged and will be redelivered" in first.log_path.read_text()
    at_stop = processed(data)
    assert 0 < at_stop < expected.processed, "the failure must land mid-stream"

    second = workers("restarted", data, **opts)
    wait_for(lambda: processed(data) == expected.processed, 120, "every event", [second])
    # the stats file is written once a batch's changes are published, after its store commit
    wait_for(lambda: second.stats().get("events_applied", 0) >= expected.processed - at_stop,
             60, "the restarted worker's counters", [second])
    stats = second.stats()
    assert stats["duplicate_events"] > 0, "the failed batch really was handed again"
    assert stats["events_applied"] == expected.processed - at_stop
    second.stop()
    assert_exactly_once(data, expected)


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_two_workers_one_stopped_mid_stream(stream_env, workers, tmp_path, expected, stop):
    data = tmp_path / "data"
    thirds = [ITEMS[i::3] for i in range(3)]
    produce(stream_env, thirds[0])
    opts = {"IDGRAPH_STREAM__BATCH_SIZE": "100"}
    a = workers("a", data, **opts)
    b = workers("b", data, **opts)
    wait_for(lambda: a.stats().get("events_applied", 0) > 0 and
             b.stats().get("events_applied", 0) > 0, 120, "both workers to apply events", [a, b])
    produce(stream_env, thirds[1])
    if stop == "sigterm":
        assert b.stop() == 0  # graceful: finishes its batch, commits, leaves the group
    else:
        b.kill()
    produce(stream_env, thirds[2])
    wait_for(lambda: processed(data) == expected.processed, 120, "every event", [a])
    if stop == "sigterm":
        # a worker writes its counters just after the batch is stored
        wait_for(lambda: a.stats()["events_applied"] + b.stats()["events_applied"]
                 >= expected.processed, 30, "the workers' counters", [a])
        applied = a.stats()["events_applied"] + b.stats()["events_applied"]
        assert applied == expected.processed  # each event applied by exactly one worker
    a.stop()
    assert_exactly_once(data, expected)


def test_poison_messages_are_dead_lettered_and_the_worker_goes_on(
        stream_env, workers, tmp_path, expected):
    from aiokafka import AIOKafkaConsumer, TopicPartition

    data = tmp_path / "data"
    big = b'{"type": "identify", "pad": "' + b"x" * 300_000 + b'"}'
    poison = [
        ("crm", b"{not json", [("source", b"hubspot")], "invalid JSON"),
        ("crm", b'{"id": "77"}', [("source", b"marketo")], "unknown source 'marketo'"),
        ("crm", b'{"properties": {"email": "x@y.org"}}', [("source", b"hubspot")],
         "hubspot: field 'id': missing"),
        ("device", big, [], f"oversized payload: {len(big)} bytes"),
    ]
    half = len(ITEMS) // 2
    worker = workers("w", data)
    produce(stream_env, ITEMS[:half], raw=[(k, v, h) for k, v, h, _ in poison])
    produce(stream_env, ITEMS[half:])
    wait_for(lambda: processed(data) == expected.processed, 120, "every valid event", [worker])
    # poison adds nothing to the store: its batch may come after the last valid event's
    wait_for(lambda: worker.stats().get("dead_letters", 0) >= len(poison), 60,
             "every poison message", [worker])
    assert worker.alive()
    assert worker.stats()["dead_letters"] == len(poison)

    cfg = stream_settings(stream_env)

    async def read_dead_letters():
        consumer = AIOKafkaConsumer(bootstrap_servers=cfg.bootstrap, group_id=None,
                                    auto_offset_reset="earliest", max_partition_fetch_bytes=4_000_000,
                                    fetch_max_bytes=8_000_000)
        await consumer.start()
        try:
            consumer.assign([TopicPartition(cfg.dead_letter_topic, p) for p in range(4)])
            out = []
            for _ in range(50):
                for msgs in (await consumer.getmany(timeout_ms=200)).values():
                    out.extend(msgs)
                if len(out) >= len(poison):
                    break
            return out
        finally:
            await consumer.stop()

    letters = asyncio.run(read_dead_letters())
    assert len(letters) == len(poison)
    by_value = {m.value: m for m in letters}
    for kind, value, headers, reason in poison:
        m = by_value[value]  # the original payload, byte for byte
        h = dict(m.headers)
        assert h[REASON].decode().startswith(reason), h[REASON]
        assert h[TOPIC].decode() == cfg.input_topic(kind)
        assert int(h[PARTITION]) in range(4) and int(h[OFFSET]) >= 0
        for name, original in headers:
            assert h[name] == original
    assert_exactly_once(data, expected)
    assert worker.stop() == 0


def test_worker_fails_clearly_when_the_broker_is_unreachable(stream_env, workers, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    w = workers("nobroker", tmp_path / "data",
                IDGRAPH_STREAM__BROKERS=orjson.dumps([f"kafka://127.0.0.1:{port}"]).decode())
    assert w.proc.wait(60) == 1
    assert f"kafka: cannot reach 127.0.0.1:{port}" in w.log_path.read_text()


def test_backfill_replays_files_through_the_topics_once(stream_env, workers, tmp_path):
    import subprocess
    import sys

    from idgraph.generator import generate as gen
    from idgraph.generator import write_source_files
    from idgraph.resolver.adapters.files import iter_payloads
    from tests.stream.conftest import ROOT

    dataset = gen(n_records=1500, seed=23)
    paths = write_source_files(dataset, tmp_path / "export")
    with Engine(Settings(data_dir=tmp_path / "reference")) as engine:
        for system, path in paths.items():
            engine.ingest_payloads((system, p) for p in iter_payloads(system, path))
        records = engine.store.get_records(engine.store.record_profiles())
        expected_here = Expected(engine.store.counts()["processed_events"],
                                 {k: r.event_count for k, r in records.items()})

    def backfill() -> None:
        for system, path in paths.items():
            out = subprocess.run(
                [sys.executable, "-m", "idgraph.cli", "backfill", "--source", system, str(path)],
                check=False, cwd=ROOT, env=stream_env, capture_output=True, text=True,
                timeout=120)
            assert out.returncode == 0, out.stderr
            assert out.stdout.startswith("produced ")

    data = tmp_path / "data"
    worker = workers("w", data)
    backfill()
    wait_for(lambda: processed(data) == expected_here.processed, 120, "the backfill", [worker])
    backfill()  # replaying history again applies nothing
    wait_for(lambda: worker.stats().get("duplicate_events", 0) >= expected_here.processed, 120,
             "the replay to be consumed", [worker])
    assert worker.stats()["events_applied"] == expected_here.processed
    assert_exactly_once(data, expected_here)
