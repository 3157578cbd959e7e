"""The steps a consumed batch passes (:mod:`idgraph.stream.delivery`), without a broker: a
real engine stores the batch; the topics are in-memory stand-ins for the broker that can
refuse sends and that deliver a message only when its send completes.

What is checked: a batch is retried while the store or graph refuses and is then stored
once; dead letters and profile changes are sent, retried while the broker refuses, and the
outbox is emptied only after the broker has every message; the stats count a batch only
when all its steps are done; :func:`settle` acknowledges a batch once its steps finished and
never one whose steps did not (a failure, or a stop that outlasts the grace period);
:func:`take_batch` takes at most the limit, in order, waits for a first event as long as it
takes and then at most the window.
The Prometheus metrics are updated at the same moments as the stats: a batch's counters,
its size and duration and its dead letters by reason class; retries by step; changes by
kind, and no label value is ever a reason's text or an event's value.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest

from idgraph.core import failpoints
from idgraph.core.errors import BackendError
from idgraph.core.metrics_endpoint import idgraph_version
from idgraph.engine import Engine
from idgraph.generator import generate
from idgraph.profile_store.base import ProfileChange
from idgraph.profile_store.segment_state import SegmentChange
from idgraph.resolver import adapters
from idgraph.settings import Settings
from idgraph.stream import delivery
from idgraph.stream.delivery import BatchDelivery, WorkerStats, settle, take_batch
from idgraph.stream.events import OFFSET, REASON, SOURCE, RawEvent
from idgraph.stream.metrics import DEAD_LETTER_CLASSES, RETRY_STEPS, WorkerMetrics
from idgraph.stream.processor import BatchProcessor
from idgraph.stream.produce import topic_of_system
from idgraph.stream.settings import StreamSettings

ITEMS = generate(n_records=60, seed=8).events
TICK = 0.25
LOGGER = "idgraph.stream.delivery"


class BrokerRefused(Exception):
    """What the in-memory topic raises for a refused send (a broker error)."""


class MemoryTopic:
    """A topic on an in-memory broker. ``send`` queues the message and returns a future; the
    broker *has* the message (it is in :attr:`delivered`) when that future completes, one
    loop turn later. The first ``refuse`` sends are refused (their futures raise)."""

    def __init__(self, name: str, journal: list, refuse: int = 0) -> None:
        self.name = name
        self.journal = journal
        self.refuse = refuse
        self.delivered: list[tuple[bytes | None, bytes, dict]] = []

    async def send(self, *, key, value, headers=None):
        fut = asyncio.get_running_loop().create_future()
        refused = self.refuse > 0
        self.refuse -= refused

        def complete() -> None:
            if refused:
                fut.set_exception(BrokerRefused(f"{self.name}: not leader for partition"))
            else:
                self.delivered.append((key, value, dict(headers or [])))
                self.journal.append(("delivered", self.name, key))
                fut.set_result(None)

        asyncio.get_running_loop().call_soon(complete)
        return fut

    async def send_many(self, messages):
        """A round (the changes' topics): returns once the broker has all, or raises."""
        futures = [await self.send(key=key, value=value) for key, value in messages]
        await asyncio.gather(*futures)


class Rig:
    """A :class:`BatchDelivery` over a real engine and in-memory topics; pauses between
    retries are recorded instead of slept; ``journal`` orders deliveries and outbox acks.
    Its clock advances by :data:`TICK` seconds at each reading (a batch then takes one
    tick)."""

    def __init__(self, engine: Engine, cfg: StreamSettings, stats_file=None) -> None:
        self.engine = engine
        self.journal: list = []
        self.pauses: list[float] = []
        self.dead = MemoryTopic("dead-letters", self.journal)
        self.changes = MemoryTopic("profile-changes", self.journal)
        self.segments = MemoryTopic("segment-changes", self.journal)
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.stats = WorkerStats()
        self.metrics = WorkerMetrics()
        self.readings: list[float] = []
        real_ack = engine.store.ack_changes

        def ack(ids):
            self.journal.append(("acked", len(ids)))
            real_ack(ids)

        engine.store.ack_changes = ack
        self.delivery = BatchDelivery(
            BatchProcessor(engine, cfg), engine.store, dead_letters=self.dead,
            changes=self.changes, segment_changes=self.segments,
            publish_changes=cfg.publish_changes, run_blocking=self.run_blocking,
            stats=self.stats, stats_file=stats_file, metrics=self.metrics, sleep=self.pause,
            clock=self.clock)

    def clock(self) -> float:
        self.readings.append(1000.0 + TICK * len(self.readings))
        return self.readings[-1]

    def metric(self, name: str, **labels: str) -> float:
        """A sample's value (a counter's ``_total``, a histogram's ``_sum``...)."""
        value = self.metrics.registry.get_sample_value(name, labels)
        assert value is not None, f"no sample {name} {labels}"
        return value

    def retries(self) -> dict[str, float]:
        return {step: self.metric("idgraph_worker_retries_total", step=step)
                for step in RETRY_STEPS}

    async def run_blocking(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)
        if len(self.pauses) > 50:
            raise AssertionError("retried without end")

    def handle(self, batch) -> None:
        asyncio.run(self.delivery.handle(batch))


@pytest.fixture()
def make_rig(tmp_path):
    made: list[tuple[Rig, Engine]] = []

    def make(publish_changes: bool = True, stats_file=None) -> Rig:
        cfg = StreamSettings(publish_changes=publish_changes)
        settings = Settings(data_dir=tmp_path / f"d{len(made)}", stream=cfg)
        engine = Engine(settings, publish_changes=publish_changes)
        rig = Rig(engine, cfg, stats_file)
        made.append((rig, engine))
        return rig

    yield make
    for rig, engine in made:
        rig.pool.shutdown(wait=True)
        engine.close()


@pytest.fixture()
def rig(make_rig) -> Rig:
    """No change messages: only the batch and its dead letters."""
    return make_rig(publish_changes=False)


def _batch(items=ITEMS, poison: int = 0) -> list[RawEvent]:
    """The events of ``items`` on their topics, then ``poison`` undecodable ones."""
    topics = topic_of_system(Settings().stream)
    good = [RawEvent(topics[system], 0, n, None, orjson.dumps(payload),
                     [("source", system.encode())])
            for n, (system, payload) in enumerate(items)]
    bad = [RawEvent("idgraph.events.crm", 1, n, f"k{n}".encode(), b"{oops",
                    [("source", b"hubspot"), ("trace", b"t")]) for n in range(poison)]
    return good + bad


@pytest.fixture()
def arm(monkeypatch):
    """Arm failpoints in this process (as ``IDGRAPH_FAILPOINTS`` would at start-up)."""
    def arm_(spec: str) -> None:
        monkeypatch.setattr(failpoints, "_ARMED", failpoints._parse(spec))
        monkeypatch.setattr(failpoints, "_hits", {})
    return arm_


# -- step 1: stored, retried while a backend refuses ------------------------------------------


def test_a_batch_is_retried_while_the_store_is_unavailable_then_stored_once(
        rig, monkeypatch, caplog):
    store = rig.engine.store
    real_write, real_process = store.write, rig.delivery.processor.process
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
    monkeypatch.setattr(rig.delivery.processor, "process", process)
    batch = _batch()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        rig.handle(batch)
    assert len(refusals) == 3 and attempts == ["stored"]
    assert rig.pauses == [0.5, 1.0, 2.0]  # doubling from 0.5 s
    st = rig.stats
    assert st.retries == 3 and st.batches == 1 and st.events_consumed == len(batch)
    assert rig.retries() == {"store": 3, "dead_letters": 0, "changes": 0}
    assert st.events_applied == store.counts()["processed_events"] > 0
    assert st.duplicate_events == 0 and st.dead_letters == 0
    assert [r.getMessage() for r in caplog.records] == [
        f"batch of {len(batch)} events not stored (profile store: disk I/O error); "
        f"retrying in {pause:.1f} s" for pause in (0.5, 1.0, 2.0)]
    monkeypatch.undo()
    rig.handle(batch)  # redelivered: nothing is applied twice
    assert rig.stats.duplicate_events == st.events_applied
    assert store.counts()["processed_events"] == st.events_applied


def test_the_pause_between_retries_stops_growing_at_30_seconds(rig, monkeypatch):
    refusals = 9
    real_process = rig.delivery.processor.process

    def process(batch):
        if len(rig.pauses) < refusals:
            raise BackendError("graph: write failed after 3 attempt(s): ConstraintError")
        return real_process(batch)

    monkeypatch.setattr(rig.delivery.processor, "process", process)
    rig.handle(_batch())
    assert rig.pauses == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert rig.stats.retries == refusals and rig.stats.batches == 1


def test_an_error_other_than_an_unavailable_backend_is_not_retried(rig, monkeypatch):
    calls: list[int] = []

    def broken(batch):
        calls.append(len(batch))
        raise RuntimeError("decoder bug")

    monkeypatch.setattr(rig.delivery.processor, "process", broken)
    with pytest.raises(RuntimeError, match="decoder bug"):
        rig.handle(_batch(poison=2))
    assert len(calls) == 1
    assert rig.pauses == [] and rig.stats.retries == 0 and rig.stats.batches == 0
    assert rig.dead.delivered == []  # nothing after a failed step
    assert rig.metric("idgraph_worker_events_consumed_total") == 0
    assert rig.metric("idgraph_worker_batch_size_events_count") == 0


# -- step 2: dead letters ---------------------------------------------------------------------


def test_dead_letters_carry_the_event_and_its_reason_and_are_counted(rig, caplog):
    batch = _batch(ITEMS[:5], poison=3)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        rig.handle(batch)
    assert [(k, v) for k, v, _h in rig.dead.delivered] == [
        (e.key, e.value) for e in batch[5:]]
    for (_k, _v, headers), event in zip(rig.dead.delivered, batch[5:], strict=True):
        assert headers[REASON].startswith(b"invalid JSON")
        assert headers["trace"] == b"t"  # the event's own headers are kept
        assert headers[OFFSET] == str(event.offset).encode()
    assert rig.stats.dead_letters == 3 and rig.stats.batches == 1
    assert rig.stats.events_consumed == 8 and rig.stats.retries == 0
    assert [r.getMessage() for r in caplog.records] == [
        f"dead-lettered idgraph.events.crm[1]@{n}: " + headers[REASON].decode()
        for n, (_k, _v, headers) in enumerate(rig.dead.delivered)]


def test_a_dead_letter_names_the_system_the_adapter_rejected_and_keeps_a_tombstone(rig):
    """An event the adapter rejects carries its source system; an empty message (a
    tombstone) goes to the dead-letter topic as an empty value, not as nothing."""
    crm = topic_of_system(Settings().stream)["hubspot"]
    batch = [RawEvent(crm, 2, 5, b"a", b'{"properties": {}}', [("source", b"hubspot")]),
             RawEvent(crm, 2, 6, b"b", None, [("source", b"hubspot")])]
    rig.handle(batch)
    (k1, v1, h1), (k2, v2, h2) = sorted(rig.dead.delivered, key=lambda m: m[0])
    assert (k1, v1, h1[REASON], h1[SOURCE]) == (
        b"a", b'{"properties": {}}', b"hubspot: field 'id': missing", b"hubspot")
    assert (k2, v2, SOURCE in h2) == (b"b", b"", False)
    assert h2[REASON].startswith(b"empty message")


def test_a_refused_dead_letter_is_sent_again_until_the_broker_has_it(rig, caplog):
    rig.dead.refuse = 3  # both sends of the first attempt, the first of the second
    batch = _batch(ITEMS[:3], poison=2)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        rig.handle(batch)
    keys = [k for k, _v, _h in rig.dead.delivered]
    # at-least-once: an attempt sends every dead letter; a refused one is sent again
    assert keys == [b"k1", b"k0", b"k1"]
    assert set(keys) == {e.key for e in batch[3:]}
    assert rig.pauses == [0.5, 1.0] and rig.stats.retries == 2
    assert rig.retries() == {"store": 0, "dead_letters": 2, "changes": 0}
    assert rig.stats.batches == 1 and rig.stats.dead_letters == 2
    retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    # the error's type only: a broker error may quote a message
    assert retries == ["dead letters not delivered (BrokerRefused); retrying in 0.5 s",
                       "dead letters not delivered (BrokerRefused); retrying in 1.0 s"]


def test_a_batch_waits_for_its_dead_letters_before_it_is_counted(rig, monkeypatch):
    seen: list[int] = []
    real_send = rig.dead.send

    async def send(**kw):
        seen.append(rig.stats.batches)  # the batch is not counted while its letters go out
        return await real_send(**kw)

    monkeypatch.setattr(rig.dead, "send", send)
    rig.handle(_batch(ITEMS[:2], poison=2))
    assert seen == [0, 0] and rig.stats.batches == 1
    assert len(rig.dead.delivered) == 2  # each send's future was awaited


# -- step 3: changes --------------------------------------------------------------------------


def test_changes_are_published_and_the_outbox_emptied_after_the_broker_has_them(make_rig):
    rig = make_rig(publish_changes=True)
    rig.handle(_batch())
    store = rig.engine.store
    assert store.pending_changes(10) == []
    sent = [orjson.loads(v) for _k, v, _h in rig.changes.delivered]
    assert len(sent) == rig.stats.changes_published > 0
    assert rig.metric("idgraph_worker_changes_published_total", kind="profile") == len(sent)
    assert rig.metric("idgraph_worker_changes_published_total", kind="segment") == 0
    assert "created" in {m["kind"] for m in sent} <= {"created", "updated", "merged"}
    assert [k.decode() for k, _v, _h in rig.changes.delivered] == [m["profile_id"] for m in sent]
    assert len({m["change_id"] for m in sent}) == len(sent)
    # the outbox is acknowledged once, after the last message reached the broker
    assert rig.journal[-1] == ("acked", len(sent))
    assert all(entry[0] == "delivered" for entry in rig.journal[:-1])


def test_changes_the_broker_refused_stay_in_the_outbox_and_are_sent_again(make_rig, caplog):
    rig = make_rig(publish_changes=True)
    rig.changes.refuse = 1
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        rig.handle(_batch(ITEMS[:10]))
    ids = [orjson.loads(v)["change_id"] for _k, v, _h in rig.changes.delivered]
    n = len(set(ids))
    # the first attempt sent the round; the broker refused its first message, so nothing
    # was removed from the outbox and the whole round went out again
    assert n > 1 and len(ids) == 2 * n - 1
    assert ids[:n - 1] == ids[n:] and len(set(ids[n - 1:])) == n
    assert [e for e in rig.journal if e[0] == "acked"] == [("acked", n)]
    assert rig.stats.changes_published == n
    assert rig.engine.store.pending_changes(10) == []
    assert rig.pauses == [0.5] and rig.stats.retries == 1
    assert rig.retries() == {"store": 0, "dead_letters": 0, "changes": 1}
    assert rig.metric("idgraph_worker_changes_published_total", kind="profile") == n
    assert [r.getMessage() for r in caplog.records] == [
        "profile changes not delivered (BrokerRefused); retrying in 0.5 s"]


def test_without_publish_changes_the_outbox_is_left_alone(rig):
    rig.handle(_batch())
    assert rig.changes.delivered == [] and rig.stats.changes_published == 0
    assert not any(entry[0] == "acked" for entry in rig.journal)


class ListOutbox:
    """An outbox holding given changes (the store's contract: oldest first, up to limit)."""

    def __init__(self, changes: list) -> None:
        self.changes = list(changes)
        self.acked: list[list[str]] = []

    def pending_changes(self, limit: int) -> list:
        return self.changes[:limit]

    def ack_changes(self, change_ids: list[str]) -> None:
        self.acked.append(list(change_ids))
        self.changes = [c for c in self.changes if c.change_id not in set(change_ids)]


@pytest.mark.parametrize("total", [3, 4, 8])
def test_the_outbox_goes_out_in_rounds_and_membership_changes_to_their_topic(
        rig, monkeypatch, total):
    """Rounds of at most CHANGES_PER_ROUND (4 here): a full round is followed by another
    look at the outbox; profile changes and segment membership changes go to their own
    topics, keyed by profile ID."""
    monkeypatch.setattr(delivery, "CHANGES_PER_ROUND", 4)
    changes = [
        ProfileChange("updated", f"p{n}", [], "eu", 1.0, change_id=f"c{n}") if n % 2 else
        SegmentChange(f"p{n}", "Recent openers", 1, "entered", 1.0, "event", ["c"], "eu",
                      change_id=f"c{n}")
        for n in range(total)]
    outbox = ListOutbox(changes)
    rig.delivery.outbox = outbox
    asyncio.run(rig.delivery.send_changes())
    assert outbox.changes == []
    assert outbox.acked == [[f"c{n}" for n in range(i, min(i + 4, total))]
                            for i in range(0, total, 4)]
    assert [k for k, _v, _h in rig.changes.delivered] == [
        f"p{n}".encode() for n in range(total) if n % 2]
    assert [(k, orjson.loads(v)["segment"]) for k, v, _h in rig.segments.delivered] == [
        (f"p{n}".encode(), "Recent openers") for n in range(total) if not n % 2]
    assert rig.stats.changes_published == total
    assert rig.metric("idgraph_worker_changes_published_total", kind="profile") == total // 2
    assert rig.metric("idgraph_worker_changes_published_total", kind="segment") == (
        total - total // 2)


# -- stats ------------------------------------------------------------------------------------


def test_the_stats_file_is_written_after_each_batch(tmp_path, make_rig):
    path = tmp_path / "stats.json"
    rig = make_rig(publish_changes=False, stats_file=path)
    batch = _batch(ITEMS[:20], poison=1)
    rig.handle(batch)
    saved = orjson.loads(path.read_bytes())
    assert saved["batches"] == 1 and saved["events_consumed"] == 21
    assert saved["dead_letters"] == 1 and saved["events_applied"] == rig.stats.events_applied > 0
    assert saved["last_batch_at"] > 0
    rig.handle(batch)  # redelivered: the counters add up
    saved = orjson.loads(path.read_bytes())
    assert saved["batches"] == 2 and saved["events_consumed"] == 42
    assert saved["dead_letters"] == 2 and saved["events_applied"] == rig.stats.events_applied
    assert saved["duplicate_events"] == rig.stats.events_applied
    rig.handle(batch)
    assert rig.stats.duplicate_events == 2 * rig.stats.events_applied


def test_events_of_a_forgotten_person_are_counted_as_suppressed_at_each_delivery(rig):
    batch = _batch()
    rig.handle(batch)
    person = next(r for s, p in ITEMS for r in adapters.adapt(s, p) if r.identifiers)
    rig.engine.forget(identifier=person.identifiers[0].key, reason="test")
    rig.handle(batch)  # redelivered after the forget: that person's events are dropped
    once = rig.stats.suppressed_events
    assert once > 0
    rig.handle(batch)  # suppressed events are never marked processed: counted again
    assert rig.stats.suppressed_events == 2 * once


# -- metrics ----------------------------------------------------------------------------------


def _dead_letter_batch(rig: Rig) -> tuple[list[RawEvent], dict[str, int]]:
    """Valid events and one or more dead letters of every reason class, and how many of
    each; personal data in the rejected payloads (an email) must reach no label."""
    topics = topic_of_system(Settings().stream)
    crm, device = topics["hubspot"], topics["segment"]
    valid = _batch(ITEMS[:6])
    too_big = b'{"email": "big@example.org", "pad": "' + b"x" * 300_000 + b'"}'
    bad = [
        RawEvent(crm, 1, 0, b"k0", b'{"email": "json@example.org"', [("source", b"hubspot")]),
        RawEvent(crm, 1, 1, b"k1", b'{"email": "json2@example.org"', [("source", b"hubspot")]),
        RawEvent(crm, 1, 2, b"k2", b'{"id": "x"}', [("source", b"marketo")]),
        RawEvent(device, 1, 3, b"k3", too_big, []),
        RawEvent(crm, 1, 4, b"k4", None, [("source", b"hubspot")]),
        RawEvent(crm, 1, 5, b"k5", b'{"properties": {"email": "shape@example.org"}}',
                 [("source", b"hubspot")]),
        RawEvent("elsewhere.events", 0, 6, b"k6", b"{}", []),
    ]
    expected = dict.fromkeys(DEAD_LETTER_CLASSES, 0)
    expected.update(invalid_json=2, unknown_source=1, oversized=1, empty=1, invalid_payload=1,
                    not_input_topic=1)
    return valid + bad, expected


def test_metrics_count_a_batch_and_its_dead_letters_by_the_class_of_their_reason(rig):
    batch, expected = _dead_letter_batch(rig)
    rig.handle(batch)
    st = rig.stats
    assert st.dead_letters == sum(expected.values()) == len(rig.dead.delivered)
    assert {name: rig.metric("idgraph_worker_dead_letters_total", reason=name)
            for name in DEAD_LETTER_CLASSES} == expected
    assert rig.metric("idgraph_worker_events_consumed_total") == len(batch)
    assert rig.metric("idgraph_worker_events_applied_total") == st.events_applied > 0
    assert rig.metric("idgraph_worker_duplicate_events_total") == 0
    assert rig.metric("idgraph_worker_batch_size_events_count") == 1
    assert rig.metric("idgraph_worker_batch_size_events_sum") == len(batch)
    assert rig.metric("idgraph_worker_batch_duration_seconds_count") == 1
    # read when handle was called and once every step was done: one tick apart
    assert rig.metric("idgraph_worker_batch_duration_seconds_sum") == TICK
    assert rig.retries() == {"store": 0, "dead_letters": 0, "changes": 0}
    rig.handle(batch)  # redelivered: applied nothing, dead-lettered again
    assert rig.metric("idgraph_worker_duplicate_events_total") == st.events_applied
    assert rig.metric("idgraph_worker_events_applied_total") == st.events_applied
    assert rig.metric("idgraph_worker_events_consumed_total") == 2 * len(batch)
    assert rig.metric("idgraph_worker_dead_letters_total", reason="invalid_json") == 4
    assert rig.metric("idgraph_worker_batch_duration_seconds_sum") == 2 * TICK
    assert rig.metric("idgraph_worker_batch_duration_seconds_bucket", le="0.25") == 2
    assert rig.metric("idgraph_worker_batch_duration_seconds_bucket", le="0.1") == 0


def test_metrics_label_values_hold_no_reason_text_and_no_event_value(rig):
    from prometheus_client import generate_latest

    batch, _expected = _dead_letter_batch(rig)
    rig.handle(batch)
    text = generate_latest(rig.metrics.registry).decode()
    for leak in ("example.org", "marketo", "hubspot", "invalid JSON", "field 'id'", "k0"):
        assert leak not in text
    allowed = {"reason": set(DEAD_LETTER_CLASSES), "step": set(RETRY_STEPS),
               "kind": {"profile", "segment"}, "version": {idgraph_version()}}
    seen: dict[str, set[str]] = {}
    for metric in rig.metrics.registry.collect():
        for sample in metric.samples:
            for name, value in sample.labels.items():
                seen.setdefault(name, set()).add(value)
    buckets = seen.pop("le")
    assert all(float(b) > 0 for b in buckets)  # "+Inf" included
    assert seen == allowed  # every class, step and kind has a series from the start


def test_an_event_that_fails_processing_is_counted_as_processing_failed(rig, monkeypatch):
    real = rig.engine.ingest_payloads

    def ingest(items, **kw):
        if any(p.get("properties", {}).get("lastname") == "Boom" for _s, p in items
               if isinstance(p, dict)):
            raise RuntimeError("adapter bug")
        return real(items, **kw)

    monkeypatch.setattr(rig.engine, "ingest_payloads", ingest)
    crm = topic_of_system(Settings().stream)["hubspot"]
    boom = RawEvent(crm, 3, 0, b"b", orjson.dumps({"id": "1", "properties": {
        "lastname": "Boom"}}), [("source", b"hubspot")])
    rig.handle([*_batch(ITEMS[:3]), boom])
    assert rig.metric("idgraph_worker_dead_letters_total", reason="processing_failed") == 1
    assert rig.stats.dead_letters == 1


def test_a_delivery_without_metrics_given_keeps_its_own(rig):
    d = rig.delivery
    alone = BatchDelivery(d.processor, d.outbox, dead_letters=rig.dead, changes=rig.changes,
                          segment_changes=rig.segments, publish_changes=False,
                          run_blocking=rig.run_blocking, stats=WorkerStats(), sleep=rig.pause)
    assert isinstance(alone.metrics, WorkerMetrics) and alone.metrics is not rig.metrics
    assert alone.clock is time.monotonic
    asyncio.run(alone.handle(_batch(ITEMS[:4], poison=1)))
    assert alone.metrics.registry.get_sample_value(
        "idgraph_worker_events_consumed_total") == 5
    assert rig.metric("idgraph_worker_events_consumed_total") == 0


# -- failpoints mark the steps in order -------------------------------------------------------


def test_a_fault_after_the_batch_is_stored_leaves_its_dead_letters_unsent(rig, arm):
    arm("stream.batch.stored=fail")
    with pytest.raises(failpoints.InjectedFault):
        rig.handle(_batch(ITEMS[:5], poison=1))
    assert rig.engine.store.counts()["processed_events"] > 0
    assert rig.dead.delivered == [] and rig.stats.batches == 0
    assert rig.metric("idgraph_worker_events_applied_total") == 0
    assert rig.metric("idgraph_worker_dead_letters_total", reason="invalid_json") == 0


def test_a_fault_before_a_dead_letter_is_sent_is_retried(rig, arm, caplog):
    arm("stream.dead_letters.send=fail@2")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        rig.handle(_batch(ITEMS[:5], poison=2))
    assert "dead letters not delivered (InjectedFault); retrying in 0.5 s" in [
        r.getMessage() for r in caplog.records]
    assert [k for k, _v, _h in rig.dead.delivered] == [b"k0", b"k0", b"k1"]
    assert rig.stats.retries == 1 and rig.stats.batches == 1
    assert rig.retries() == {"store": 0, "dead_letters": 1, "changes": 0}


def test_a_fault_after_changes_are_sent_keeps_them_in_the_outbox_for_another_round(
        make_rig, arm):
    rig = make_rig(publish_changes=True)
    arm("stream.changes.sent=fail@1")
    rig.handle(_batch(ITEMS[:5]))
    ids = [orjson.loads(v)["change_id"] for _k, v, _h in rig.changes.delivered]
    half = len(ids) // 2
    assert ids[:half] == ids[half:] and half > 0  # all sent twice, acknowledged once
    assert [e for e in rig.journal if e[0] == "acked"] == [("acked", half)]
    assert rig.stats.changes_published == half


def test_a_fault_at_the_last_step_comes_after_the_batch_is_counted(rig, arm):
    arm("stream.batch.acknowledged=fail")
    with pytest.raises(failpoints.InjectedFault):
        rig.handle(_batch(ITEMS[:5], poison=1))
    assert rig.stats.batches == 1 and len(rig.dead.delivered) == 1
    assert rig.metric("idgraph_worker_dead_letters_total", reason="invalid_json") == 1


# -- settle: when a batch is acknowledged ----------------------------------------------------


class Event:
    """A delivered event as the conductor hands it over: acknowledged once, or never."""

    def __init__(self) -> None:
        self.acks = 0

    def ack(self) -> bool:
        self.acks += 1
        return True


def refs(events) -> list[int]:
    """Per event, the references left on its message (1 delivered, 0 acknowledged)."""
    return [1 - e.acks for e in events]


def test_a_batch_whose_steps_finish_is_acknowledged():
    events = [Event(), Event()]
    done: list[bool] = []

    async def work():
        await asyncio.sleep(0)
        done.append(True)

    asyncio.run(settle(events, work(), grace=1.0))
    assert done == [True] and refs(events) == [0, 0]


def test_a_failed_batch_is_not_acknowledged_and_the_error_propagates(caplog):
    events = [Event(), Event()]

    async def work():
        raise RuntimeError("store bug")

    with caplog.at_level(logging.ERROR, logger=LOGGER), pytest.raises(RuntimeError):
        asyncio.run(settle(events, work(), grace=1.0))
    assert refs(events) == [1, 1]
    assert [r.getMessage() for r in caplog.records] == [
        "a batch of 2 events failed; it is not acknowledged and will be redelivered"]


async def _stop_during(events, work, grace: float, after: float = 0.01):
    """Run ``settle`` as the agent does and cancel it (the worker stops) after ``after`` s."""
    agent = asyncio.ensure_future(settle(events, work, grace))
    await asyncio.sleep(after)
    agent.cancel()
    with pytest.raises(asyncio.CancelledError):
        await agent


def test_a_stop_lets_the_batch_in_hand_finish_within_the_grace_period():
    events = [Event(), Event()]
    finished: list[bool] = []

    async def work():
        await asyncio.sleep(0.05)  # outlives the stop, not the grace period
        finished.append(True)

    asyncio.run(_stop_during(events, work(), grace=5.0))
    assert finished == [True] and refs(events) == [0, 0]


def test_a_stop_that_outlasts_the_grace_period_leaves_the_batch_unacknowledged(caplog):
    events = [Event(), Event(), Event()]
    state: list[str] = []

    async def work():
        try:
            await asyncio.sleep(10)
            state.append("finished")
        except asyncio.CancelledError:
            state.append("cancelled")
            raise

    async def run():
        await _stop_during(events, work(), grace=0.05)
        await asyncio.sleep(0)  # the cancelled work sees its cancellation

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        asyncio.run(run())
    assert state == ["cancelled"] and refs(events) == [1, 1, 1]
    assert [r.getMessage() for r in caplog.records] == [
        ("stopping with a batch of 3 events not finished; it is not acknowledged and will "
         "be redelivered")]


def test_a_stop_during_which_the_batch_fails_leaves_it_unacknowledged():
    events = [Event()]

    async def work():
        await asyncio.sleep(0.05)
        raise BackendError("profile store: disk I/O error")

    asyncio.run(_stop_during(events, work(), grace=5.0))
    assert refs(events) == [1]


# -- take_batch: what one batch takes from the consumer's buffer -------------------------------


def test_a_busy_buffer_gives_full_batches_in_order_without_waiting():
    async def run():
        buffer: asyncio.Queue = asyncio.Queue()
        for n in range(7):
            buffer.put_nowait(n)
        started = time.monotonic()
        first = await take_batch(buffer, limit=3, within=5.0)
        second = await take_batch(buffer, limit=3, within=5.0)
        return first, second, buffer.qsize(), time.monotonic() - started

    first, second, left, took = asyncio.run(run())
    assert (first, second, left) == ([0, 1, 2], [3, 4, 5], 1)
    assert took < 1.0  # a full batch never waits for the window


def test_events_buffered_during_the_last_batch_go_at_once_without_the_window():
    """They waited while the previous batch was handled: no window on top of that."""
    async def run():
        buffer: asyncio.Queue = asyncio.Queue()
        for n in range(3):
            buffer.put_nowait(n)
        started = time.monotonic()
        batch = await take_batch(buffer, limit=100, within=2.0)
        return batch, time.monotonic() - started

    batch, took = asyncio.run(run())
    assert batch == [0, 1, 2] and took < 1.0


def test_a_quiet_buffer_waits_for_the_first_event_then_at_most_the_window():
    """Refused events ("x": fetched before a rebalance) neither start a batch nor count."""
    async def run():
        buffer: asyncio.Queue = asyncio.Queue()
        taking = asyncio.ensure_future(
            take_batch(buffer, limit=100, within=0.2, admit=lambda e: e != "x"))
        await asyncio.sleep(0.3)  # longer than the window: still waiting for a first event
        assert not taking.done()
        buffer.put_nowait("x")  # refused: still waiting
        await asyncio.sleep(0.3)
        assert not taking.done()
        buffer.put_nowait("a")
        first_at = time.monotonic()
        for late in ("x", "b"):  # within the window of "a": same batch, "x" dropped
            await asyncio.sleep(0.05)
            buffer.put_nowait(late)
        batch = await taking
        waited = time.monotonic() - first_at
        buffer.put_nowait("c")  # after it: the next batch
        return batch, waited, await take_batch(buffer, limit=100, within=0.01)

    batch, waited, later = asyncio.run(run())
    assert batch == ["a", "b"] and later == ["c"]
    assert 0.15 <= waited < 1.0  # the window after the first event, not more


def test_a_batch_that_fills_within_the_window_goes_without_waiting_it_out():
    async def run():
        buffer: asyncio.Queue = asyncio.Queue()
        taking = asyncio.ensure_future(take_batch(buffer, limit=3, within=5.0))
        await asyncio.sleep(0.05)
        buffer.put_nowait(0)
        await asyncio.sleep(0.05)
        started = time.monotonic()
        for n in range(1, 5):
            buffer.put_nowait(n)
        batch = await taking
        return batch, time.monotonic() - started, buffer.qsize()

    batch, took, left = asyncio.run(run())
    assert batch == [0, 1, 2] and left == 2 and took < 1.0


def test_events_the_worker_does_not_admit_are_dropped_and_not_counted():
    async def run():
        buffer: asyncio.Queue = asyncio.Queue()
        for n in range(8):
            buffer.put_nowait(n)
        seen: list[int] = []

        def admit(n: int) -> bool:  # odd ones: fetched before a rebalance
            seen.append(n)
            return n % 2 == 0

        batch = await take_batch(buffer, limit=3, within=0.01, admit=admit)
        return batch, seen, buffer.qsize()

    batch, seen, left = asyncio.run(run())
    assert batch == [0, 2, 4] and seen == [0, 1, 2, 3, 4] and left == 3
