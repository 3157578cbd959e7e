"""The synchronous half of a worker: one batch of consumed messages -> the engine.

Kept apart from Faust so it is tested without a broker. :mod:`idgraph.stream.delivery` runs
:meth:`BatchProcessor.process` on the engine's thread, sends the dead letters it returns, and
only then lets the consumer acknowledge the batch.
"""

from __future__ import annotations

import logging
import sys
import uuid
from dataclasses import dataclass, field

from idgraph.core.errors import BackendError
from idgraph.engine import Engine, IngestResult
from idgraph.stream.events import EventRejected, RawEvent, decode
from idgraph.stream.settings import StreamSettings

log = logging.getLogger(__name__)


@dataclass(slots=True)
class DeadEvent:
    """A consumed message that will not be processed, and why (the reason holds no values
    from the payload)."""

    event: RawEvent
    reason: str
    system: str | None = None


@dataclass(slots=True)
class BatchOutcome:
    result: IngestResult = field(default_factory=IngestResult)
    dead: list[DeadEvent] = field(default_factory=list)


class BatchProcessor:
    """Decodes a batch, ingests what decodes, and names every event it cannot process.

    Contract: when :meth:`process` returns, every event of the batch is either durable in
    the engine (applied now or earlier: idempotent by event ID) or listed in
    ``outcome.dead``. A :class:`BackendError` (store or graph unavailable) propagates: the
    caller retries the whole batch, which is safe because processing is idempotent. Any
    other failure is isolated to the events that cause it by retrying them one by one.
    """

    def __init__(self, engine: Engine, settings: StreamSettings) -> None:
        self.engine = engine
        self.max_bytes = settings.max_event_bytes
        self.systems = {settings.input_topic(kind): systems
                        for kind, systems in settings.source_topics.items()}

    def process(self, events: list[RawEvent]) -> BatchOutcome:
        outcome = BatchOutcome()
        decoded: list[tuple[RawEvent, tuple[str, object]]] = []
        for ev in events:
            systems = self.systems.get(ev.topic)
            if systems is None:
                outcome.dead.append(DeadEvent(ev, f"topic {ev.topic} is not an input topic"))
                continue
            try:
                decoded.append((ev, decode(ev, systems, self.max_bytes)))
            except EventRejected as exc:
                outcome.dead.append(DeadEvent(ev, str(exc)))
        if not decoded:
            return outcome
        try:
            self._ingest(decoded, outcome)
        except BackendError:
            raise
        except Exception:
            log.exception("batch of %d events failed; retrying them one by one", len(decoded))
            outcome.result = IngestResult()
            for one in decoded:
                try:
                    self._ingest([one], outcome)
                except BackendError:
                    raise
                except Exception as exc:
                    ev, (system, _payload) = one
                    ref = uuid.uuid4().hex[:12]
                    log.exception("event %s[%d]@%d failed (ref %s)", ev.topic, ev.partition,
                                  ev.offset, ref)
                    outcome.dead.append(DeadEvent(
                        ev, f"processing failed: {type(exc).__name__} (log ref {ref})", system))
        return outcome

    def _ingest(self, decoded: list[tuple[RawEvent, tuple[str, object]]],
                outcome: BatchOutcome) -> None:
        """Ingest ``decoded`` in one writer turn (whatever ``ingest_batch_size`` says: a
        meeting's payload may give several records); the payloads the adapters reject
        become dead letters."""
        items = [item for _ev, item in decoded]
        result = self.engine.ingest_payloads(items, batch_size=sys.maxsize)
        for d in result.dead_letters:
            n = int(d.position.removeprefix("item "))  # the index in ``items``
            ev, (system, _payload) = decoded[n]
            outcome.dead.append(DeadEvent(ev, d.reason, system))
        result.dead_letters = []
        outcome.result.add(result)
