"""Prometheus metrics of one stream worker (``idgraph worker``), in a registry of its own.

:class:`~idgraph.stream.delivery.BatchDelivery` updates them once a batch has passed every
step (the same moment as :class:`~idgraph.stream.delivery.WorkerStats`), counts retries by
step and published changes as they happen; :mod:`idgraph.stream.app` sets the consumer lag
after each batch and serves the registry (:mod:`idgraph.core.metrics_endpoint`).

Label values come from closed sets (a dead letter's reason *class*, a retried step, a kind
of change) or from the configuration (input topic names and partition numbers): never a
reason's text, a key or any value of an event.

=========================================  =========  ===================================
metric                                     type       labels
=========================================  =========  ===================================
``idgraph_worker_events_consumed_total``   counter
``idgraph_worker_events_applied_total``    counter
``idgraph_worker_duplicate_events_total``  counter    (redelivered, applied before)
``idgraph_worker_suppressed_events_total`` counter    (a forgotten person's)
``idgraph_worker_dead_letters_total``      counter    ``reason``: :data:`DEAD_LETTER_CLASSES`
``idgraph_worker_batch_duration_seconds``  histogram  (taken to ready for acknowledgement)
``idgraph_worker_batch_size_events``       histogram
``idgraph_worker_retries_total``           counter    ``step``: :data:`RETRY_STEPS`
``idgraph_worker_changes_published_total`` counter    ``kind``: ``profile``, ``segment``
``idgraph_worker_consumer_lag_messages``   gauge      ``topic``, ``partition``
``idgraph_worker_info``                    info       ``version``
``idgraph_writer_holds_turn``              gauge      (1 while this worker holds the turn)
``idgraph_writer_turn``                    gauge      (its last turn's number, the token)
``idgraph_writer_lease_renewals``          gauge      (renewals so far, Cassandra turns)
``idgraph_writer_turns_lost``              gauge      (turns another writer took over)
=========================================  =========  ===================================

The writer gauges are read when scraped (:meth:`WorkerMetrics.watch_turns`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from idgraph.coordination.base import TurnStatus
from idgraph.core.metrics_endpoint import idgraph_version
from idgraph.profile_store.segment_state import SegmentChange
from idgraph.stream.events import RawEvent
from idgraph.stream.processor import BatchOutcome

#: Why an event was dead-lettered, by the start of its reason (the reasons of
#: :func:`idgraph.stream.events.decode` and :class:`idgraph.stream.processor.BatchProcessor`);
#: any other reason is an adapter's (the payload's shape: ``invalid_payload``).
_REASON_PREFIXES = (
    ("invalid JSON", "invalid_json"),
    ("unknown source", "unknown_source"),
    ("oversized payload", "oversized"),
    ("empty message", "empty"),
    ("processing failed", "processing_failed"),
    ("topic ", "not_input_topic"),
)
DEAD_LETTER_CLASSES = (*(name for _prefix, name in _REASON_PREFIXES), "invalid_payload")
"""Every value of the ``reason`` label of ``idgraph_worker_dead_letters_total``."""
RETRY_STEPS = ("store", "dead_letters", "changes")
"""Every value of the ``step`` label of ``idgraph_worker_retries_total``."""
CHANGE_KINDS = ("profile", "segment")

#: Seconds from a batch taken to its acknowledgement allowed (a batch of 2,000 events
#: takes ~0.1-1 s; a retried one up to minutes).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                    60.0, 120.0)
SIZE_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000)


def dead_letter_class(reason: str) -> str:
    """The class of a dead letter's reason (one of :data:`DEAD_LETTER_CLASSES`)."""
    for prefix, name in _REASON_PREFIXES:
        if reason.startswith(prefix):
            return name
    return "invalid_payload"


class WorkerMetrics:
    """The metrics of one worker process, in :attr:`registry` (a new one by default)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry if registry is not None else CollectorRegistry()
        self.events_consumed = Counter(
            "idgraph_worker_events_consumed", "Events taken from the input topics and "
            "finished (stored or dead-lettered; a redelivered event counts again).",
            registry=r)
        self.events_applied = Counter(
            "idgraph_worker_events_applied", "Events applied to the graph and the store.",
            registry=r)
        self.duplicate_events = Counter(
            "idgraph_worker_duplicate_events", "Events already applied before (redelivered).",
            registry=r)
        self.suppressed_events = Counter(
            "idgraph_worker_suppressed_events", "Events dropped because they carry a "
            "forgotten person's identifier.", registry=r)
        self.dead_letters = Counter(
            "idgraph_worker_dead_letters", "Events sent to the dead-letter topic, by the "
            "class of their reason.", ["reason"], registry=r)
        self.batch_duration = Histogram(
            "idgraph_worker_batch_duration_seconds", "Time from a batch taken to every step "
            "done (stored, dead letters and changes sent; then it is acknowledged).",
            buckets=DURATION_BUCKETS, registry=r)
        self.batch_size = Histogram(
            "idgraph_worker_batch_size_events", "Events per batch.", buckets=SIZE_BUCKETS,
            registry=r)
        self.retries = Counter(
            "idgraph_worker_retries", "Retries of a batch's steps while the store, the graph "
            "or the broker refused.", ["step"], registry=r)
        self.changes_published = Counter(
            "idgraph_worker_changes_published", "Profile and segment membership changes "
            "the broker has (then removed from the outbox).", ["kind"], registry=r)
        self.consumer_lag = Gauge(
            "idgraph_worker_consumer_lag_messages", "Messages of an input partition after "
            "the last one this worker finished (the partition's high watermark minus the "
            "next offset), set after each batch that had messages of the partition.",
            ["topic", "partition"], registry=r)
        Info("idgraph_worker", "This worker.", registry=r).info(
            {"version": idgraph_version()})
        for name in DEAD_LETTER_CLASSES:  # every series exists from the start, at 0
            self.dead_letters.labels(name)
        for step in RETRY_STEPS:
            self.retries.labels(step)
        for kind in CHANGE_KINDS:
            self.changes_published.labels(kind)

    def watch_turns(self, status: Callable[[], TurnStatus]) -> None:
        """Report the writer's turns (``status()``, read at each scrape): whether it holds
        the turn, its last turn's number, lease renewals and turns lost."""
        r = self.registry
        turn_doc = "The number (fencing token) of this worker's last turn."
        renewals_doc = "Renewals of the writers' lease by this worker so far."
        lost_doc = ("Turns another writer took over while this worker held them (it "
                    "stalled past its lease).")
        for name, doc, read in (
                ("idgraph_writer_holds_turn", "1 while this worker holds the writers' turn.",
                 lambda: float(status().holding)),
                ("idgraph_writer_turn", turn_doc, lambda: float(status().turn)),
                ("idgraph_writer_lease_renewals", renewals_doc,
                 lambda: float(status().renewals)),
                ("idgraph_writer_turns_lost", lost_doc, lambda: float(status().lost))):
            Gauge(name, doc, registry=r).set_function(read)

    def batch_done(self, size: int, seconds: float, outcome: BatchOutcome) -> None:
        """A batch of ``size`` events passed every step in ``seconds``."""
        r = outcome.result
        self.batch_size.observe(size)
        self.batch_duration.observe(seconds)
        self.events_consumed.inc(size)
        self.events_applied.inc(r.events_applied)
        self.duplicate_events.inc(r.duplicate_events)
        self.suppressed_events.inc(r.suppressed_events)
        for d in outcome.dead:
            self.dead_letters.labels(dead_letter_class(d.reason)).inc()

    def changes_sent(self, changes: Iterable[object]) -> None:
        """``changes`` (profile and segment membership changes) are on the broker."""
        segment = profile = 0
        for change in changes:
            if isinstance(change, SegmentChange):
                segment += 1
            else:
                profile += 1
        self.changes_published.labels("profile").inc(profile)
        self.changes_published.labels("segment").inc(segment)

    def set_lag(self, batch: Iterable[RawEvent],
                highwater: Callable[[str, int], int | None]) -> None:
        """Set the lag of each partition ``batch`` has messages of: ``highwater(topic,
        partition)`` (the offset the next message will get; None when not known) minus
        one past the batch's last offset there, at least 0."""
        last: dict[tuple[str, int], int] = {}
        for ev in batch:
            key = (ev.topic, ev.partition)
            last[key] = max(last.get(key, ev.offset), ev.offset)
        for (topic, partition), offset in last.items():
            end = highwater(topic, partition)
            if end is not None:
                self.consumer_lag.labels(topic, str(partition)).set(max(0, end - offset - 1))
