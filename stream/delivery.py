"""The order a consumed batch passes through, and when it may be acknowledged.

Kept apart from Faust (:mod:`idgraph.stream.app` wires it to a consumer and topics) so every
step is tested without a broker. A batch goes through four steps, each finished before the
next starts:

1. **stored**: :class:`~idgraph.stream.processor.BatchProcessor` applies it on the engine's
   thread. While the store or graph is unavailable (:class:`BackendError`) the same batch
   is processed again (idempotent by event ID) after pauses of 0.5 s doubling to 30 s; any
   other error propagates at once.
2. **dead letters sent**: every event the processor could not take goes to the dead-letter
   topic with its reason; the step waits until the broker has each, retried (same pauses)
   while the broker refuses. At-least-once: a retry after a partial failure sends some
   again.
3. **changes published**: what waits in the store's outbox (profile and segment membership
   changes) is sent, then removed from the outbox, in rounds of at most 5,000; retried
   while the broker refuses. At-least-once (a change carries a ``change_id``).
4. **acknowledged**: only now may the consumer acknowledge the batch.

The consumer side: :func:`take_batch` takes a batch from the consumer's buffer (what Faust's
conductor delivered to the input topics' channel) without Faust's per-event stream path, and
:func:`settle` acknowledges it once every step has finished, and only then. A batch whose
steps did not all finish (an unexpected error, or a stop while the batch is in hand that
outlasts ``grace`` seconds) is never acknowledged: its offsets are never committed by this
process, and the group redelivers it.

Failpoints (:mod:`idgraph.core.failpoints`) mark the steps: ``stream.batch.stored``,
``stream.dead_letters.send`` (before each send), ``stream.changes.sent``,
``stream.batch.acknowledged``.

Metrics (:class:`~idgraph.stream.metrics.WorkerMetrics`) are updated with the stats: a
batch once it has passed every step (its duration measured from :meth:`BatchDelivery.handle`
called, i.e. taken, to then), each retry by its step, changes once the broker has them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

from idgraph.core.errors import BackendError
from idgraph.core.failpoints import failpoint
from idgraph.profile_store.segment_state import SegmentChange
from idgraph.stream.events import (
    RawEvent,
    change_message,
    dead_letter_headers,
    segment_change_message,
)
from idgraph.stream.metrics import WorkerMetrics
from idgraph.stream.processor import BatchOutcome, BatchProcessor

log = logging.getLogger(__name__)

#: Changes taken from the outbox per round.
CHANGES_PER_ROUND = 5000
#: Pauses between retries of a batch the store or graph refused, or of sends the broker
#: refused: 0.5 s, doubling, at most 30 s.
RETRY_WAIT = wait_exponential(multiplier=0.5, max=30.0)


class Topic(Protocol):
    """Where messages go (a Faust topic): ``send`` returns once the message is queued, with
    an awaitable that completes when the broker has it (or raises when it refused it)."""

    async def send(self, *, key: bytes | None, value: bytes,
                   headers: list[tuple[str, bytes]] | None = None) -> Awaitable[Any]: ...


class BatchTopic(Protocol):
    """Where a round of changes goes (:class:`idgraph.stream.publish.BatchedTopic` over a
    Faust topic): ``send_many`` returns once the broker has every message, or raises."""

    async def send_many(self, messages: Sequence[tuple[bytes | None, bytes]]) -> None: ...


class Outbox(Protocol):
    """The store's outbox of changes to publish (:class:`idgraph.profile_store.ProfileStore`)."""

    def pending_changes(self, limit: int) -> list: ...

    def ack_changes(self, change_ids: list[str]) -> None: ...


class Event(Protocol):
    """A consumed event as Faust's conductor delivers it (its ``ack`` releases the message:
    once every event of a partition up to an offset is acknowledged, Faust commits it)."""

    def ack(self) -> bool: ...


class Buffer(Protocol):
    """The consumer's buffer of delivered events (a Faust channel's queue)."""

    async def get(self) -> Any: ...

    def get_nowait(self) -> Any: ...

    def empty(self) -> bool: ...


@dataclass(slots=True)
class WorkerStats:
    """Cumulative counters of one worker process (written to ``--stats-file``)."""

    pid: int = 0
    started_at: float = 0.0
    batches: int = 0
    events_consumed: int = 0
    events_applied: int = 0
    duplicate_events: int = 0
    suppressed_events: int = 0
    """Events dropped because they carry a forgotten person's identifier."""
    dead_letters: int = 0
    changes_published: int = 0
    retries: int = 0
    last_batch_at: float = 0.0

    def save(self, path: Path) -> None:
        """Write atomically (readers never see half a file)."""
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".stats-")
        with os.fdopen(fd, "w") as fh:
            json.dump(asdict(self), fh)
        os.replace(tmp, path)


async def take_batch(buffer: Buffer, limit: int, within: float,
                     admit: Callable[[Any], bool] = lambda event: True) -> list:
    """The next batch, at most ``limit`` events in the buffer's order.

    From an empty buffer: waits as long as it takes for a first event, then takes what
    arrives within ``within`` seconds of it (a quiet stream is delayed by at most
    ``within``). From a buffer that already holds events, they queued while the previous
    batch was handled and have waited already: it takes what is buffered and returns at
    once. So a busy stream's batches grow with the lag, up to ``limit``, and shrink to
    what arrived during one batch when the worker keeps up, without a wait.

    ``admit(event)`` is asked once per event as it is taken: an event it refuses is
    dropped, unacknowledged (the worker's: a message fetched before the latest rebalance,
    which the consumer fetches again from the committed offset)."""
    waiting = buffer.empty()
    events: list = []
    while not events:
        first = await buffer.get()
        if admit(first):
            events.append(first)
    clock = asyncio.get_running_loop().time
    deadline = clock() + within
    while len(events) < limit:
        if not buffer.empty():
            event = buffer.get_nowait()
        elif not waiting:
            break  # what queued during the previous batch is taken: no window on top
        else:
            try:  # a timeout at or below zero times out at once
                event = await asyncio.wait_for(buffer.get(), deadline - clock())
            except TimeoutError:
                break
        if admit(event):
            events.append(event)
    return events


async def settle(events: Sequence[Event], work: Awaitable[None], grace: float) -> None:
    """Run ``work`` (the batch's steps) to its end, then acknowledge ``events``. If ``work``
    fails, nothing is acknowledged and the error propagates. If the caller is cancelled
    (the worker stops), ``work`` is shielded and given ``grace`` seconds to finish: finished,
    ``events`` are acknowledged; unfinished or failed, it is cancelled and nothing is. The
    cancellation propagates either way."""
    task = asyncio.ensure_future(work)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        done, _ = await asyncio.wait([task], timeout=grace)
        if not done or task.cancelled() or task.exception() is not None:
            task.cancel()
            log.warning("stopping with a batch of %d events not finished; it is not "
                        "acknowledged and will be redelivered", len(events))
        else:
            _acknowledge(events)
        raise
    except Exception:
        log.exception("a batch of %d events failed; it is not acknowledged and will be "
                      "redelivered", len(events))
        raise
    _acknowledge(events)


def _acknowledge(events: Sequence[Event]) -> None:
    for event in events:
        event.ack()


class BatchDelivery:
    """Steps 1-3 of the module docstring for one batch at a time (:meth:`handle`).

    ``run_blocking(fn, *args)`` runs a blocking call off the event loop (the engine's one
    thread); ``sleep`` is the pause between retries. ``stats`` is updated once a batch has
    passed every step (and saved to ``stats_file`` when given); ``stats.retries`` counts
    each retry of any step. ``metrics`` (a new :class:`WorkerMetrics` by default) are
    updated at the same moments; ``clock`` (seconds) times a batch for them.
    """

    def __init__(self, processor: BatchProcessor, outbox: Outbox, *, dead_letters: Topic,
                 changes: BatchTopic, segment_changes: BatchTopic, publish_changes: bool,
                 run_blocking: Callable[..., Awaitable[Any]], stats: WorkerStats,
                 stats_file: Path | None = None, metrics: WorkerMetrics | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.processor = processor
        self.outbox = outbox
        self.dead_letters = dead_letters
        self.changes = changes
        self.segment_changes = segment_changes
        self.publish_changes = publish_changes
        self.run_blocking = run_blocking
        self.stats = stats
        self.stats_file = stats_file
        self.metrics = metrics or WorkerMetrics()
        self.sleep = sleep
        self.clock = clock

    async def handle(self, batch: list[RawEvent]) -> None:
        """Store the batch, deliver its dead letters, publish the outbox; returns when all
        three are done."""
        started = self.clock()
        outcome = await self._retrying(
            lambda: self.run_blocking(self.processor.process, batch), BackendError,
            f"batch of {len(batch)} events not stored", "store")
        failpoint("stream.batch.stored")
        await self._retrying(lambda: self.send_dead_letters(outcome), Exception,
                             "dead letters not delivered", "dead_letters")
        for d in outcome.dead:
            log.warning("dead-lettered %s[%d]@%d: %s", d.event.topic, d.event.partition,
                        d.event.offset, d.reason)
        if self.publish_changes:
            await self._retrying(self.send_changes, Exception,
                                 "profile changes not delivered", "changes")
        st, r = self.stats, outcome.result
        st.batches += 1
        st.events_consumed += len(batch)
        st.events_applied += r.events_applied
        st.duplicate_events += r.duplicate_events
        st.suppressed_events += r.suppressed_events
        st.dead_letters += len(outcome.dead)
        st.last_batch_at = time.time()
        if self.stats_file is not None:
            st.save(self.stats_file)
        self.metrics.batch_done(len(batch), self.clock() - started, outcome)
        failpoint("stream.batch.acknowledged")

    async def send_dead_letters(self, outcome: BatchOutcome) -> None:
        """Send every dead letter, then wait until the broker has each."""
        sends = []
        for d in outcome.dead:
            failpoint("stream.dead_letters.send")
            sends.append(await self.dead_letters.send(
                key=d.event.key, value=d.event.value or b"",
                headers=dead_letter_headers(d.event, d.reason, d.system)))
        for fut in sends:
            await fut

    async def send_changes(self) -> None:
        """Send what waits in the outbox, round by round; a round is removed from the
        outbox only once the broker has every message of it."""
        while True:
            pending = await self.run_blocking(self.outbox.pending_changes, CHANGES_PER_ROUND)
            if not pending:
                return
            segment_messages = [segment_change_message(c) for c in pending
                                if isinstance(c, SegmentChange)]
            profile_messages = [change_message(c) for c in pending
                                if not isinstance(c, SegmentChange)]
            await asyncio.gather(self.changes.send_many(profile_messages),
                                 self.segment_changes.send_many(segment_messages))
            failpoint("stream.changes.sent")
            await self.run_blocking(self.outbox.ack_changes, [c.change_id for c in pending])
            self.stats.changes_published += len(pending)
            self.metrics.changes_sent(pending)
            if len(pending) < CHANGES_PER_ROUND:
                return

    async def _retrying(self, attempt_once: Callable[[], Awaitable[Any]],
                        retry_on: type[BaseException], message: str, step: str) -> Any:
        """``attempt_once()`` until it succeeds, retrying errors of ``retry_on`` after the
        pauses of :data:`RETRY_WAIT`; each retry counted (in the metrics by ``step``) and
        logged. Retrying the store
        and graph (``retry_on`` BackendError), the error's text is logged (theirs hold no
        values of events); retrying sends, only the error's type (a broker error may quote
        a message)."""
        def count_and_log(state: RetryCallState) -> None:
            self.stats.retries += 1
            self.metrics.retries.labels(step).inc()
            exc = state.outcome.exception()
            cause = exc if retry_on is BackendError else type(exc).__name__
            log.warning("%s (%s); retrying in %.1f s", message, cause, state.upcoming_sleep)

        # no stop: retried until it succeeds (so tenacity's ``reraise``, which applies
        # when retrying stops, never does); an error not of ``retry_on`` propagates as is
        retrying = AsyncRetrying(retry=retry_if_exception_type(retry_on), wait=RETRY_WAIT,
                                 before_sleep=count_and_log, sleep=self.sleep)
        async for attempt in retrying:
            with attempt:
                result = await attempt_once()
        return result
