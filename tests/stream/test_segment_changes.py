"""Segment membership changes through a real worker and broker: SendGrid opens make
profiles enter ``Recent openers``; with no new event they leave on time (the worker's
segment tick), and every change reaches ``P.segment-changes`` with its cause."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from idgraph.engine.segment_definitions import SegmentDefinitions
from idgraph.profile_store import create_store
from idgraph.profile_store.sqlite_backend.segment_catalog import SqliteSegmentCatalog
from idgraph.settings import Settings
from tests.stream.conftest import wait_for
from tests.stream.fault_harness import produce
from tests.stream.fault_harness import stream_settings as _stream_settings

pytestmark = pytest.mark.slow

WINDOW_SECONDS = 60  # the segment's window: "opened in the last minute"


def _open(email: str, n: int, at: float) -> tuple[str, dict]:
    return ("sendgrid", {"email": email, "event": "open", "timestamp": int(at),
                         "sg_event_id": f"open-{n}", "sg_message_id": f"m{n}.filter"})


def read_topic(env: dict[str, str], topic: str, want: int, timeout: float = 60) -> list:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    cfg = _stream_settings(env)

    async def run() -> list:
        consumer = AIOKafkaConsumer(bootstrap_servers=cfg.bootstrap, group_id=None,
                                    auto_offset_reset="earliest")
        await consumer.start()
        try:
            consumer.assign([TopicPartition(topic, p) for p in range(cfg.partitions)])
            out: list = []
            deadline = time.monotonic() + timeout
            while len(out) < want and time.monotonic() < deadline:
                for msgs in (await consumer.getmany(timeout_ms=200)).values():
                    out.extend(msgs)
            return out
        finally:
            await consumer.stop()

    return asyncio.run(run())


def test_changes_reach_the_topic_and_memberships_leave_on_time(stream_env, workers, tmp_path):
    data = tmp_path / "data"
    catalog = SqliteSegmentCatalog(data / "profiles.sqlite")
    settings = Settings(data_dir=data)
    store = create_store("sqlite", data, settings.regions.regions)  # creates the schema
    SegmentDefinitions(store, catalog).apply(
        "Recent openers", f'event("open").within({WINDOW_SECONDS // 60}m)', "test")
    store.close()
    catalog.close()

    worker = workers("w", data)
    now = time.time()
    # two people open now; a third opened long ago (never a member)
    produce(stream_env, [_open("ann@x.io", 1, now), _open("bob@x.io", 2, now - 20),
                         _open("old@x.io", 3, now - 3600)])
    cfg = _stream_settings(stream_env)
    entered = read_topic(stream_env, cfg.segment_changes_topic, 2)
    docs = [orjson.loads(m.value) for m in entered]
    assert sorted((d["change"], d["cause"]) for d in docs) == [("entered", "event")] * 2
    assert all(d["segment"] == "Recent openers" and d["idempotency_key"] for d in docs)
    assert {m.key.decode() for m in entered} == {d["profile_id"] for d in docs}

    # no more events: both leave once their open is a minute old, by the worker's tick
    exits = read_topic(stream_env, cfg.segment_changes_topic, 4, timeout=WINDOW_SECONDS + 30)
    exited = [(m, orjson.loads(m.value)) for m in exits
              if orjson.loads(m.value)["change"] == "exited"]
    assert sorted(d["cause"] for _m, d in exited) == ["time", "time"]
    for m, d in exited:
        # "at" is the deadline that passed; the exit was on the topic within a second and
        # a half of it (a 0.25 s tick, the write, the publish)
        published = m.timestamp / 1000
        assert d["at"] <= published < d["at"] + 1.5, (published - d["at"])
    wait_for(lambda: worker.stats().get("events_applied", 0) == 3, 30, "the opens", [worker])
    assert worker.stop() == 0
