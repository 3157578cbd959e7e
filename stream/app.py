"""The Faust app of ``idgraph worker``: one agent over every input topic.

The agent is transport only. It takes batches (``take_events``: up to
``stream.batch_size`` events, waiting at most ``stream.batch_within_seconds``), runs the
:class:`idgraph.stream.processor.BatchProcessor` in a thread (so the event loop keeps fetching
and heartbeating), sends the batch's dead letters, publishes the profile changes waiting
in the store's outbox, and only then lets Faust acknowledge the batch. Faust commits
acknowledged offsets every ``stream.commit_interval_seconds``.

Delivery: at-least-once from Kafka, exactly-once in effect. A crash (even SIGKILL) or a
rebalance redelivers what was processed since the last commit; the engine applies an event
ID once, so nothing is applied twice and nothing acknowledged is lost. Faust's
``exactly_once`` guarantee is not used: it needs Kafka transactions, which the local
broker (tansu) lacks, and the engine's idempotence does not need them.
Dead letters and change messages are at-least-once; change messages carry a
``change_id`` to deduplicate on. A send the broker refuses is retried (0.5 s doubling to
30 s) while the batch waits unacknowledged. Faust acknowledges a ``take_events`` batch in
a ``finally``, even when the agent fails or is cancelled; so a batch whose dead letters or
changes are not delivered when the worker stops (or that fails in an unforeseen way) has
its acknowledgements *withheld* (:func:`_withhold`): its offsets are never committed and
the batch is redelivered, to this worker's successor or to another member of the group.

Failpoints (:mod:`idgraph.core.failpoints`) mark the steps a batch passes:
``stream.batch.stored``, ``stream.dead_letters.send``, ``stream.changes.sent``,
``stream.batch.acknowledged``; the crash tests kill or fail the worker at each.

Segments: the profile changes of a batch and the segment membership changes they cause
are in the same outbox; profile changes go to ``P.profile-changes``, membership changes to
``P.segment-changes``. A timer (``segments.tick_seconds``) runs the segment work no event
triggers on the engine's thread (memberships whose deadline passed, new definitions
evaluated over the stored profiles: :meth:`idgraph.engine.Engine.segment_step`), at most
half a second of it per tick so batches are not held up, then publishes what it changed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import faust
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

from idgraph.core.errors import BackendError
from idgraph.core.failpoints import failpoint
from idgraph.engine import Engine
from idgraph.profile_store.segment_state import SegmentChange
from idgraph.stream.events import (
    RawEvent,
    change_message,
    dead_letter_headers,
    segment_change_message,
)
from idgraph.stream.processor import BatchOutcome, BatchProcessor
from idgraph.stream.settings import StreamSettings
from idgraph.stream.topics import ssl_context

log = logging.getLogger(__name__)

_CHANGES_PER_ROUND = 5000
_SEGMENT_WORK_SECONDS = 0.5
#: Pauses between retries of a batch the store or graph refused, or of sends the broker
#: refused: 0.5 s, doubling, at most 30 s.
_BATCH_RETRY_WAIT = wait_exponential(multiplier=0.5, max=30.0)
#: How long a stopping worker lets the batch in hand finish before withholding its acks.
STOP_GRACE_SECONDS = 10.0


def broker_credentials(cfg: StreamSettings) -> faust.types.auth.CredentialsT | None:
    """Faust credentials for ``cfg.security_protocol`` (None: plaintext)."""
    context = ssl_context(cfg)
    if cfg.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=cfg.sasl_username,
            password=cfg.sasl_password.get_secret_value() if cfg.sasl_password else "",
            mechanism=cfg.sasl_mechanism, ssl_context=context)
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def _transport_class(fetch_max_wait_ms: int) -> type:
    """Faust's aiokafka transport with the consumer's fetch wait set (Faust hard-codes
    1500 ms). A broker may hold a fetch that long before answering; real Kafka answers as
    soon as data arrives, tansu waits the full time, which is then the floor of freshness."""
    from faust.transport.drivers import aiokafka as faust_kafka

    class ConsumerThread(faust_kafka.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport):
            consumer = super()._create_worker_consumer(transport)
            consumer._fetch_max_wait_ms = fetch_max_wait_ms  # read by start()
            return consumer

    class Consumer(faust_kafka.Consumer):
        def _new_consumer_thread(self) -> ConsumerThread:
            return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    class Transport(faust_kafka.Transport):
        pass

    Transport.Consumer = Consumer
    return Transport


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


def _withhold(events: list[faust.types.EventT]) -> None:
    """Keep Faust from acknowledging ``events``: one more reference on each message, so the
    acknowledgement ``take_events`` makes in its ``finally`` does not reach zero. Their
    offsets are then never committed by this process; the group redelivers them."""
    for event in events:
        event.message.incref()


def _raw(event: faust.types.EventT) -> RawEvent:
    m = event.message
    headers = m.headers or []
    if isinstance(headers, dict):
        headers = list(headers.items())
    return RawEvent(m.topic, m.partition, m.offset, m.key, m.value,
                    [(k, bytes(v or b"")) for k, v in headers])


class StreamWorker:
    """Builds the Faust app around one engine; :meth:`run` blocks until stopped."""

    def __init__(self, cfg: StreamSettings, engine: Engine,
                 stats_file: Path | None = None) -> None:
        self.cfg = cfg
        self.engine = engine
        self.processor = BatchProcessor(engine, cfg)
        self.stats = WorkerStats(pid=os.getpid(), started_at=time.time())
        self.stats_file = stats_file
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="idgraph-engine")
        self._sleep = asyncio.sleep  # the pause between batch retries (tests replace it)
        self.app = app = faust.App(
            cfg.consumer_group,
            broker=cfg.brokers,
            broker_credentials=broker_credentials(cfg),
            datadir=str(engine.settings.data_dir / "faust"),
            web_enabled=False,
            autodiscover=False,
            broker_session_timeout=cfg.session_timeout_seconds,
            broker_heartbeat_interval=cfg.heartbeat_interval_seconds,
            broker_commit_interval=cfg.commit_interval_seconds,
            consumer_auto_offset_reset="earliest",
            producer_max_request_size=max(1_048_576, 2 * cfg.max_event_bytes),
            topic_partitions=cfg.partitions,
            topic_replication_factor=cfg.replication_factor,
        )
        app.transport = _transport_class(cfg.fetch_max_wait_ms)(app.conf.broker_consumer, app)
        raw = {"key_serializer": "raw", "value_serializer": "raw"}
        self.inputs = app.topic(*cfg.input_topics, **raw)
        self.dead_letters = app.topic(cfg.dead_letter_topic, **raw)
        self.changes = app.topic(cfg.profile_changes_topic, **raw)
        self.segment_changes = app.topic(cfg.segment_changes_topic, **raw)
        app.agent(self.inputs, name="idgraph.resolve")(self._resolve)
        app.timer(engine.settings.segments.tick_seconds, name="idgraph.segments")(
            self._segment_tick)

    # ------------------------------------------------------------------ the agent

    async def _resolve(self, stream: faust.StreamT) -> None:
        async for events in stream.take_events(self.cfg.batch_size,
                                               within=self.cfg.batch_within_seconds):
            batch = [_raw(e) for e in events]
            task = asyncio.ensure_future(self._handle(batch))
            try:
                # shielded: once the engine has the batch, finish it (dead letters and
                # changes included) before Faust acknowledges it, even when stopping
                await asyncio.shield(task)
            except asyncio.CancelledError:
                done, _ = await asyncio.wait([task], timeout=STOP_GRACE_SECONDS)
                if not done or task.exception() is not None:
                    task.cancel()
                    _withhold(events)
                    log.warning("stopping with a batch of %d events not finished; it is "
                                "not acknowledged and will be redelivered", len(batch))
                raise
            except Exception:
                _withhold(events)
                log.exception("a batch of %d events failed; it is not acknowledged and "
                              "will be redelivered", len(batch))
                raise

    async def _handle(self, batch: list[RawEvent]) -> None:
        """Store the batch, deliver its dead letters, publish the outbox; returns when all
        three are done (each retried while its backend or the broker refuses)."""
        outcome = await self._process(batch)
        failpoint("stream.batch.stored")
        await self._retrying("dead letters", lambda: self._send_dead_letters(outcome))
        for d in outcome.dead:
            log.warning("dead-lettered %s[%d]@%d: %s", d.event.topic, d.event.partition,
                        d.event.offset, d.reason)
        if self.cfg.publish_changes:
            await self._retrying("profile changes", self._publish_changes)
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
        failpoint("stream.batch.acknowledged")

    async def _send_dead_letters(self, outcome: BatchOutcome) -> None:
        """Send every dead letter and wait until the broker has each (at-least-once: a
        retry after a partial failure sends some again)."""
        sends = []
        for d in outcome.dead:
            failpoint("stream.dead_letters.send")
            sends.append(await self.dead_letters.send(
                key=d.event.key, value=d.event.value or b"",
                headers=dead_letter_headers(d.event, d.reason, d.system)))
        for fut in sends:
            await fut

    async def _retrying(self, what: str, send) -> None:
        """Await ``send()`` until it succeeds, after pauses of 0.5 s doubling to 30 s; each
        retry is counted in ``stats.retries`` and logged (the error's type only: a broker
        error may quote a message)."""
        def count_and_log(state: RetryCallState) -> None:
            self.stats.retries += 1
            log.warning("%s not delivered (%s); retrying in %.1f s", what,
                        type(state.outcome.exception()).__name__, state.upcoming_sleep)

        retrying = AsyncRetrying(retry=retry_if_exception_type(Exception),
                                 wait=_BATCH_RETRY_WAIT, before_sleep=count_and_log,
                                 sleep=self._sleep, reraise=True)
        async for attempt in retrying:
            with attempt:
                await send()

    async def _process(self, batch: list[RawEvent]) -> BatchOutcome:
        """Process ``batch`` on the engine's thread. While the store or graph is unavailable
        (:class:`BackendError`) nothing of the batch is acknowledged: the same batch is
        retried (idempotent) until it goes through, after pauses of 0.5 s doubling up to
        30 s; each retry is counted in ``stats.retries`` and logged. Any other error
        propagates at once."""
        loop = asyncio.get_running_loop()

        def count_and_log(state: RetryCallState) -> None:
            # the error's text only: a BackendError holds no values of events
            self.stats.retries += 1
            log.warning("batch of %d events not stored (%s); retrying in %.1f s",
                        len(batch), state.outcome.exception(), state.upcoming_sleep)

        retrying = AsyncRetrying(retry=retry_if_exception_type(BackendError),
                                 wait=_BATCH_RETRY_WAIT, before_sleep=count_and_log,
                                 sleep=self._sleep, reraise=True)
        async for attempt in retrying:
            with attempt:
                outcome: BatchOutcome = await loop.run_in_executor(
                    self._pool, self.processor.process, batch)
        return outcome

    async def _publish_changes(self) -> None:
        """Send what waits in the outbox, then remove it (at-least-once)."""
        store = self.engine.store
        loop = asyncio.get_running_loop()
        while True:
            # store calls run on the engine's thread: they write, and the loop must keep
            # fetching and heartbeating meanwhile
            pending = await loop.run_in_executor(self._pool, store.pending_changes,
                                                 _CHANGES_PER_ROUND)
            if not pending:
                return
            futures = []
            for change in pending:
                if isinstance(change, SegmentChange):
                    key, value = segment_change_message(change)
                    futures.append(await self.segment_changes.send(key=key, value=value))
                else:
                    key, value = change_message(change)
                    futures.append(await self.changes.send(key=key, value=value))
            for fut in futures:
                await fut
            failpoint("stream.changes.sent")
            await loop.run_in_executor(self._pool, store.ack_changes,
                                       [c.change_id for c in pending])
            self.stats.changes_published += len(pending)
            if len(pending) < _CHANGES_PER_ROUND:
                return

    async def _segment_tick(self) -> None:
        """Segment work no event triggers (module docstring); a backend error is logged and
        the work is tried again at the next tick (each round is one atomic write)."""
        loop = asyncio.get_running_loop()

        def rounds() -> int:
            done, started = 0, time.monotonic()
            while time.monotonic() - started < _SEGMENT_WORK_SECONDS:
                step = self.engine.segment_step()
                done += step
                if not step:
                    break
            return done

        try:
            done = await loop.run_in_executor(self._pool, rounds)
        except BackendError as exc:
            log.warning("segment work not stored (%s); trying again at the next tick", exc)
            return
        if done and self.cfg.publish_changes:
            try:
                await self._publish_changes()
            except Exception as exc:  # noqa: BLE001 - the outbox keeps them for the next send
                log.warning("segment changes not published (%s); they wait in the outbox",
                            type(exc).__name__)

    # ------------------------------------------------------------------ running

    def run(self) -> None:
        """Run until SIGINT/SIGTERM; a graceful stop finishes the batch in hand."""
        from faust.worker import Worker

        worker = Worker(self.app, loglevel=logging.getLogger().level or logging.INFO,
                        quiet=True, redirect_stdouts=False)
        try:
            worker.execute_from_commandline()
        finally:
            self._pool.shutdown(wait=True)
