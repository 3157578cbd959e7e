"""The worker's batch processing against a real engine (no broker): what is applied, what
is dead-lettered, and how failures are contained."""

from __future__ import annotations

import logging
import re

import orjson
import pytest

from idgraph.core.errors import BackendError
from idgraph.engine import Engine
from idgraph.generator import generate
from idgraph.resolver import adapters
from idgraph.settings import Settings
from idgraph.stream.events import RawEvent
from idgraph.stream.processor import BatchProcessor
from idgraph.stream.produce import topic_of_system


@pytest.fixture()
def engine(tmp_path):
    with Engine(Settings(data_dir=tmp_path / "d")) as e:
        yield e


def raw_events(items, start_offset=0) -> list[RawEvent]:
    topics = topic_of_system(Settings().stream)
    return [RawEvent(topics[system], 0, start_offset + n, None, orjson.dumps(payload),
                     [("source", system.encode())])
            for n, (system, payload) in enumerate(items)]


def test_valid_events_apply_once_and_poison_is_named(engine):
    items = generate(n_records=300, seed=4).events
    good = raw_events(items)
    poison = [
        RawEvent("idgraph.events.crm", 1, 7, b"k", b"{oops", [("source", b"hubspot")]),
        RawEvent("idgraph.events.crm", 1, 8, None, b'{"properties": {}}', [("source", b"hubspot")]),
        RawEvent("idgraph.events.crm", 1, 9, None, b"{}", [("source", b"marketo")]),
        RawEvent("idgraph.events.device", 1, 10, None, b"[" + b"1," * 200_000 + b"1]", []),
        RawEvent("other.topic", 0, 0, None, b"{}", []),
    ]
    batch = good[:100] + poison + good[100:]
    records = sum(len(adapters.adapt(s, p)) for s, p in items)  # a meeting: one per person
    processor = BatchProcessor(engine, Settings().stream)
    outcome = processor.process(batch)
    assert outcome.result.events_applied == records
    reasons = {(d.event.partition, d.event.offset): d.reason for d in outcome.dead}
    assert reasons[(1, 7)].startswith("invalid JSON")
    assert reasons[(1, 8)] == "hubspot: field 'id': missing"
    # the adapter's rejection names its system; the undecodable ones have none
    systems = {(d.event.partition, d.event.offset): d.system for d in outcome.dead}
    assert systems == {(1, 7): None, (1, 8): "hubspot", (1, 9): None, (1, 10): None,
                       (0, 0): None}
    assert reasons[(1, 9)].startswith("unknown source 'marketo'")
    assert reasons[(1, 10)].startswith("oversized payload")
    assert reasons[(0, 0)] == "topic other.topic is not an input topic"
    assert len(outcome.dead) == len(poison)
    again = processor.process(batch)  # redelivered after a crash or a rebalance
    assert again.result.events_applied == 0
    assert again.result.duplicate_events == records
    assert len(again.dead) == len(poison)
    assert engine.store.counts()["processed_events"] == records


def test_a_batch_is_one_writer_turn_whatever_the_ingest_batch_size(tmp_path, monkeypatch,
                                                                     caplog):
    """The processor hands the engine the whole batch at once: one writer turn (and one
    durable write) per consumed batch, even when ``ingest_batch_size`` is smaller, and no
    error is logged for a healthy batch."""
    items = generate(n_records=80, seed=7).events
    turns: list[int] = []
    with Engine(Settings(data_dir=tmp_path / "d", ingest_batch_size=5)) as engine:
        real_turn = engine._ingest_turn

        def turn(records):
            turns.append(len(records))
            return real_turn(records)

        monkeypatch.setattr(engine, "_ingest_turn", turn)
        with caplog.at_level(logging.WARNING):
            outcome = BatchProcessor(engine, Settings().stream).process(raw_events(items))
    records = sum(len(adapters.adapt(s, p)) for s, p in items)
    assert turns == [records] and outcome.result.events_applied == records
    assert caplog.records == [] and outcome.dead == []


def test_an_event_that_breaks_the_engine_is_isolated(engine, monkeypatch, caplog):
    items = generate(n_records=50, seed=5).events
    batch = raw_events(items)
    real = adapters.ADAPTERS["segment"]
    victim = next(i for i, (s, _p) in enumerate(items) if s == "segment")

    def buggy(payload, normalizer):
        if payload == items[victim][1]:
            raise RuntimeError("adapter bug")  # not an InvalidPayloadError
        return real(payload, normalizer)

    monkeypatch.setitem(adapters.ADAPTERS, "segment", buggy)
    with caplog.at_level(logging.ERROR, logger="idgraph.stream.processor"):
        outcome = BatchProcessor(engine, Settings().stream).process(batch)
    assert [(d.event.offset, d.system) for d in outcome.dead] == [(victim, "segment")]
    ref = re.fullmatch(r"processing failed: RuntimeError \(log ref ([0-9a-f]{12})\)",
                       outcome.dead[0].reason).group(1)
    topic = batch[victim].topic
    # the log says where (and the reference the dead letter quotes), never the payload
    assert [r.getMessage() for r in caplog.records] == [
        f"batch of {len(batch)} events failed; retrying them one by one",
        f"event {topic}[0]@{victim} failed (ref {ref})"]
    records = sum(len(real(p, engine.normalizer)) if s == "segment" else
                  len(adapters.adapt(s, p)) for s, p in items)
    assert outcome.result.events_applied == records - len(real(items[victim][1], engine.normalizer))


def test_an_unavailable_store_fails_the_whole_batch_for_a_retry(engine, monkeypatch):
    batch = raw_events(generate(n_records=50, seed=6).events)

    def down(_batch):
        raise BackendError("profile store: disk I/O error")

    monkeypatch.setattr(engine.store, "write", down)
    processor = BatchProcessor(engine, Settings().stream)
    with pytest.raises(BackendError):
        processor.process(batch)
    monkeypatch.undo()
    outcome = processor.process(batch)  # the retry goes through, nothing lost
    assert outcome.result.events_applied > 0 and not outcome.dead
    assert outcome.result.events_applied == engine.store.counts()["processed_events"]
