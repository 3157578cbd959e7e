"""The Faust app of ``idgraph worker``: one consuming task over every input topic.

The consuming task is transport only. Faust's consumer fetches and its conductor delivers
every message of the input topics into one channel's buffer (flow control, pausing a
partition whose buffer is full, rebalances: all Faust's). The task takes batches straight
from that buffer (:func:`idgraph.stream.delivery.take_batch`: up to ``stream.batch_size``
events; from an empty buffer it waits at most ``stream.batch_within_seconds`` after the
first event, and what queued during the previous batch goes at once), not through
a Faust stream: an agent's stream costs tens of microseconds per event on the event loop,
which shares the engine thread's GIL, and stops filling while a batch is handled. Each
batch goes to :class:`idgraph.stream.delivery.BatchDelivery` (stored on the engine's
thread, so the event loop keeps fetching, buffering the next batch and heartbeating; dead
letters sent; outbox published), under :func:`idgraph.stream.delivery.settle`, which
acknowledges it when, and only when, every step is done. Faust commits acknowledged
offsets every ``stream.commit_interval_seconds``. A batch that fails for an unexpected
reason is not acknowledged and stops the worker (the group redelivers it elsewhere or on
restart); the store and broker being unavailable are retried, not failures.

Delivery: at-least-once from Kafka, exactly-once in effect. A crash (even SIGKILL) or a
rebalance redelivers what was processed since the last commit; the engine applies an event
ID once, so nothing is applied twice and nothing acknowledged is lost. Faust's
``exactly_once`` guarantee is not used: it needs Kafka transactions, which the local
broker (tansu) lacks, and the engine's idempotence does not need them. Dead letters and
change messages are at-least-once (:mod:`idgraph.stream.delivery` says how each step is
retried and when acknowledgements are withheld).

Segments: the profile changes of a batch and the segment membership changes they cause
are in the same outbox; profile changes go to ``P.profile-changes``, membership changes to
``P.segment-changes``. A timer (``segments.tick_seconds``) runs the segment work no event
triggers on the engine's thread (memberships whose deadline passed, new definitions
evaluated over the stored profiles: :meth:`idgraph.engine.Engine.segment_step`), at most
half a second of it per tick so batches are not held up, then publishes what it changed.

Metrics: :class:`idgraph.stream.metrics.WorkerMetrics`, updated by the delivery; after each
batch, the lag of the partitions it had messages of (the consumer's high watermark of the
partition, as the last fetch response gave it: no request to the broker). Served on
``metrics.host:metrics.port`` when the port is set (:mod:`idgraph.core.metrics_endpoint`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import faust

from idgraph.core.errors import BackendError
from idgraph.core.metrics_endpoint import MetricsSettings, start_endpoint
from idgraph.engine import Engine
from idgraph.stream.delivery import BatchDelivery, WorkerStats, settle, take_batch
from idgraph.stream.events import RawEvent
from idgraph.stream.metrics import WorkerMetrics
from idgraph.stream.processor import BatchProcessor
from idgraph.stream.publish import BatchedTopic
from idgraph.stream.settings import StreamSettings
from idgraph.stream.topics import ssl_context

log = logging.getLogger(__name__)

_SEGMENT_WORK_SECONDS = 0.5
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
    soon as data arrives, tansu waits the full time, which is then the floor of freshness.

    And a cheaper hand-over of each fetched message: Faust's drain loop passes every
    message to its streams through ``wait_first(callback(message),
    suspend_flow.wait())``, four tasks and an ``asyncio.wait`` per message (15% of a
    worker's CPU in its profile), so that a rebalance suspending the flow interrupts a
    callback blocked on a full stream buffer. :meth:`Consumer.wait_first` awaits the
    callback directly while the flow is not suspended (Faust's path otherwise). A callback
    that blocks and then sees the flow suspended waits for the flow to resume (or the
    fetcher to be stopped, which cancels it) instead: its message is then delivered late,
    and delivery is at-least-once with idempotent processing anyway."""
    from faust.transport.drivers import aiokafka as faust_kafka
    from mode.services import WaitResults

    class ConsumerThread(faust_kafka.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport):
            consumer = super()._create_worker_consumer(transport)
            consumer._fetch_max_wait_ms = fetch_max_wait_ms  # read by start()
            return consumer

    class Consumer(faust_kafka.Consumer):
        def _new_consumer_thread(self) -> ConsumerThread:
            return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

        async def wait_first(self, *coros, timeout=None):
            if (len(coros) == 2 and timeout is None and not self.suspend_flow.is_set()
                    and _is_flow_wait(coros[1])):
                coros[1].close()  # the drain loop's per-message call (docstring above)
                result = await coros[0]
                return WaitResults([coros[0]], [result], False)
            return await super().wait_first(*coros, timeout=timeout)

    class Transport(faust_kafka.Transport):
        pass

    Transport.Consumer = Consumer
    return Transport


def _is_flow_wait(awaitable: object) -> bool:
    """Whether ``awaitable`` is a coroutine of ``Event.wait`` (``suspend_flow.wait()``)."""
    return getattr(awaitable, "__qualname__", "") == "Event.wait"


def _raw(event: faust.types.EventT) -> RawEvent:
    m = event.message
    headers = m.headers or []
    if isinstance(headers, dict):
        headers = list(headers.items())
    return RawEvent(m.topic, m.partition, m.offset, m.key, m.value,
                    [(k, bytes(v or b"")) for k, v in headers])


class StreamWorker:
    """Builds the Faust app around one engine; :meth:`run` blocks until stopped (serving
    its metrics meanwhile when ``metrics.port`` is set)."""

    def __init__(self, cfg: StreamSettings, engine: Engine,
                 stats_file: Path | None = None,
                 metrics: MetricsSettings | None = None) -> None:
        self.cfg = cfg
        self.engine = engine
        self.stats = WorkerStats(pid=os.getpid(), started_at=time.time())
        self.metrics_settings = metrics or MetricsSettings()
        self.metrics = WorkerMetrics()
        self.metrics.watch_turns(engine.session.status)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="idgraph-engine")
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
            # the buffer holds the next batch while the engine stores this one
            stream_buffer_maxsize=max(4096, 2 * cfg.batch_size),
            topic_replication_factor=cfg.replication_factor,
        )
        app.transport = _transport_class(cfg.fetch_max_wait_ms)(app.conf.broker_consumer, app)
        raw = {"key_serializer": "raw", "value_serializer": "raw"}
        self.inputs = app.topic(*cfg.input_topics, **raw)
        self.delivery = BatchDelivery(
            BatchProcessor(engine, cfg), engine.store,
            dead_letters=app.topic(cfg.dead_letter_topic, **raw),
            changes=BatchedTopic(app.topic(cfg.profile_changes_topic, **raw)),
            segment_changes=BatchedTopic(app.topic(cfg.segment_changes_topic, **raw)),
            publish_changes=cfg.publish_changes, run_blocking=self._run_blocking,
            stats=self.stats, stats_file=stats_file, metrics=self.metrics)
        # iterating the topic subscribes it: the conductor delivers into this channel
        self._channel = self.inputs.__aiter__()
        app.task(self._resolve)
        app.timer(engine.settings.segments.tick_seconds, name="idgraph.segments")(
            self._segment_tick)

    async def _run_blocking(self, fn, *args):
        """``fn(*args)`` on the engine's thread (the store and graph are not thread-safe;
        the event loop keeps fetching and heartbeating meanwhile)."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    # ------------------------------------------------------------------ consuming

    async def _resolve(self) -> None:
        """Batches from the channel's buffer, one at a time, until the worker stops."""
        buffer = self._channel.queue
        while True:
            events = await take_batch(buffer, self.cfg.batch_size,
                                      self.cfg.batch_within_seconds, self._admit)
            batch = [_raw(e) for e in events]
            await settle(events, self.delivery.handle(batch), STOP_GRACE_SECONDS)
            self.metrics.set_lag(batch, self._highwater)

    def _admit(self, event: faust.types.EventT) -> bool:
        """What Faust's own stream does with each event it takes (``faust/streams.py``): an
        event delivered while the flow is suspended (a rebalance under way) or fetched in an
        earlier consumer generation is dropped unacknowledged: after the rebalance the
        consumer fetches it again from the committed offset, in the partition's new owner.
        An admitted event is tracked as unacknowledged, so a rebalance waits for the batch
        in hand to be acknowledged (``Consumer.wait_empty``) before it commits and lets the
        partitions go."""
        app, message = self.app, event.message
        if (not app.flow_control.is_active()
                or message.generation_id != app.consumer_generation_id):
            return False
        if not message.tracked:
            message.tracked = True
            app.consumer.track_message(message)
        return True

    def _highwater(self, topic: str, partition: int) -> int | None:
        """The offset the partition's next message will get, as the consumer last heard
        it (None before it knows, or once the partition is no longer assigned to it)."""
        try:
            return self.app.consumer.highwater(faust.types.TP(topic, partition))
        except Exception:  # noqa: BLE001 - a metric is left as it was, never fails a batch
            return None

    async def _segment_tick(self) -> None:
        """Segment work no event triggers (module docstring); a backend error is logged and
        the work is tried again at the next tick (each round is one atomic write)."""

        def rounds() -> int:
            done, started = 0, time.monotonic()
            while time.monotonic() - started < _SEGMENT_WORK_SECONDS:
                step = self.engine.segment_step()
                done += step
                if not step:
                    break
            return done

        try:
            done = await self._run_blocking(rounds)
        except BackendError as exc:
            log.warning("segment work not stored (%s); trying again at the next tick", exc)
            return
        if done and self.cfg.publish_changes:
            try:
                await self.delivery.send_changes()
            except Exception as exc:  # noqa: BLE001 - the outbox keeps them for the next send
                log.warning("segment changes not published (%s); they wait in the outbox",
                            type(exc).__name__)

    # ------------------------------------------------------------------ running

    def run(self, keep_logging: bool = False) -> None:
        """Run until SIGINT/SIGTERM; a graceful stop finishes the batch in hand.

        ``keep_logging``: leave the logging the caller set up (``idgraph worker`` with
        ``log.format = "json"``: :mod:`idgraph.core.logs`) to Faust, mode and aiokafka too;
        else Faust replaces the root logger's handlers with its own text format on standard
        output, at the root logger's level (or INFO)."""
        from faust.worker import Worker

        # mode's Worker._setup_logging clears the root handlers and installs its own (and
        # Faust a progress spinner's); override_logging=False skips all of it.
        worker = Worker(self.app, loglevel=logging.getLogger().level or logging.INFO,
                        quiet=True, redirect_stdouts=False, override_logging=not keep_logging)
        # No terminal spinner: it writes cursor escapes to standard output even when that
        # is a log file, and at WARNING and above it would set the root logger to DEBUG.
        worker.spinner = None
        endpoint = start_endpoint(self.metrics_settings, self.metrics.registry)
        if endpoint is not None:
            log.info("metrics on http://%s:%d/metrics", self.metrics_settings.host,
                     endpoint.port)
        try:
            worker.execute_from_commandline()
        finally:
            if endpoint is not None:
                endpoint.close()
            self._pool.shutdown(wait=True)
