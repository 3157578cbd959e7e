"""The worker's Faust agent without a broker: a batch the store refuses is retried until it is
stored, and only then counted; other errors are not retried."""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest

from idgraph.core.errors import BackendError
from idgraph.engine import Engine
from idgraph.generator import generate
from idgraph.settings import Settings
from idgraph.stream.app import StreamWorker
from idgraph.stream.events import RawEvent
from idgraph.stream.produce import topic_of_system
from idgraph.stream.settings import StreamSettings

ITEMS = generate(n_records=60, seed=8).events


@pytest.fixture()
def worker(tmp_path):
    """A worker over a real engine; no dead letters or change messages to send, so no broker
    is needed. Its pauses between retries are recorded instead of slept."""
    settings = Settings(data_dir=tmp_path / "d", stream=StreamSettings(publish_changes=False))
    with Engine(settings) as engine:
        w = StreamWorker(settings.stream, engine)
        w.pauses = []

        async def pause(seconds: float) -> None:
            w.pauses.append(seconds)
            if len(w.pauses) > 50:
                raise AssertionError("retried without end")

        w._sleep = pause
        try:
            yield w
        finally:
            w._pool.shutdown(wait=True)


def _batch() -> list[RawEvent]:
    topics = topic_of_system(Settings().stream)
    return [RawEvent(topics[system], 0, n, None, orjson.dumps(payload),
                     [("source", system.encode())])
            for n, (system, payload) in enumerate(ITEMS)]


def test_a_batch_is_retried_while_the_store_is_unavailable_then_stored_once(
        worker, monkeypatch, caplog):
    store = worker.engine.store
    real_write, real_process = store.write, worker.processor.process
    refusals: list[int] = []
    attempts: list[str] = []

    def flaky_write(store_batch):
        if len(refusals) < 3:
            refusals.append(1)
            raise BackendError("profile store: disk I/O error")
        return real_write(store_batch)

    def process(events):
        outcome = real_process(events)  # raises while the store refuses
        attempts.append("stored")
        return outcome

    monkeypatch.setattr(store, "write", flaky_write)
    monkeypatch.setattr(worker.processor, "process", process)
    batch = _batch()
    with caplog.at_level(logging.WARNING, logger="idgraph.stream.app"):
        asyncio.run(worker._handle(batch))
    assert len(refusals) == 3 and attempts == ["stored"]
    assert worker.pauses == [0.5, 1.0, 2.0]  # doubling from 0.5 s
    st = worker.stats
    assert st.retries == 3 and st.batches == 1 and st.events_consumed == len(batch)
    assert st.events_applied == store.counts()["processed_events"] > 0
    assert st.duplicate_events == 0 and st.dead_letters == 0
    assert [r.getMessage() for r in caplog.records] == [
        f"batch of {len(batch)} events not stored (profile store: disk I/O error); "
        f"retrying in {pause:.1f} s" for pause in (0.5, 1.0, 2.0)]
    monkeypatch.undo()
    asyncio.run(worker._handle(batch))  # redelivered: nothing is applied twice
    assert worker.stats.duplicate_events == st.events_applied
    assert store.counts()["processed_events"] == st.events_applied


def test_the_pause_between_retries_stops_growing_at_30_seconds(worker, monkeypatch):
    refusals = 9

    def process(batch):
        if len(worker.pauses) < refusals:
            raise BackendError("graph: write failed after 3 attempt(s): ConstraintError")
        return real_process(batch)

    real_process = worker.processor.process
    monkeypatch.setattr(worker.processor, "process", process)
    asyncio.run(worker._handle(_batch()))
    assert worker.pauses == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert worker.stats.retries == refusals and worker.stats.batches == 1


def test_an_error_other_than_an_unavailable_backend_is_not_retried(worker, monkeypatch):
    calls: list[int] = []

    def broken(batch):
        calls.append(len(batch))
        raise RuntimeError("decoder bug")

    monkeypatch.setattr(worker.processor, "process", broken)
    with pytest.raises(RuntimeError, match="decoder bug"):
        asyncio.run(worker._handle(_batch()))
    assert len(calls) == 1
    assert worker.pauses == [] and worker.stats.retries == 0 and worker.stats.batches == 0
