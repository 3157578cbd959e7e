"""The in-process buffer of audit events (:class:`AuditBuffer`): profile reads batched per
caller off the request path (:mod:`idgraph.auth.audit` states the contract)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Self

from idgraph.auth.audit import (
    MAX_RESOURCES,
    AuditEvent,
    AuditLog,
)
from idgraph.core.errors import ConfigError

logger = logging.getLogger(__name__)


# --- the in-process buffer ---------------------------------------------------------------

@dataclass
class _Reads:
    """The reads of one (actor, role, action, region, outcome) since the last flush."""

    key: tuple[str, str, str, str, str]
    counts: dict[str, int] = field(default_factory=dict)  # resource -> reads
    request_id: str | None = None  # the reads' request ID while they share one, else ""

    def add(self, resource: str, request_id: str) -> None:
        self.counts[resource] = self.counts.get(resource, 0) + 1
        self.request_id = request_id if self.request_id in (None, request_id) else ""

    def events(self) -> list[AuditEvent]:
        """One event per MAX_RESOURCES distinct resources (sorted), counting their reads."""
        actor, role, action, region, outcome = self.key
        names = sorted(self.counts)
        chunks = [names[i:i + MAX_RESOURCES] for i in range(0, len(names), MAX_RESOURCES)]
        return [AuditEvent(actor, role, action, chunk[0] if len(chunk) == 1 else "", region,
                           self.request_id or "", outcome,
                           count=sum(self.counts[r] for r in chunk), resources=tuple(chunk))
                for chunk in chunks]


class AuditBuffer:
    """Buffers audit events in memory for an :class:`AuditLog`: recording is O(1) and
    never waits on disk. A daemon thread writes them every ``flush_seconds`` (sooner once
    ``max_pending`` records wait) and calls :meth:`AuditLog.checkpoint_if_due`. Reads are
    aggregated into one entry per (actor, role, action, region, outcome) per flush, with
    ``count`` reads of ``resources`` (distinct, sorted, at most MAX_RESOURCES per entry).
    A failed write is logged (no entry content) and retried at the next flush; while the
    log cannot be written, at most ``100 * max_pending`` records wait and later ones are
    counted and written as one ``audit.dropped`` entry."""

    def __init__(self, log: AuditLog, flush_seconds: float = 1.0,
                 max_pending: int = 1000) -> None:
        if flush_seconds <= 0 or max_pending < 1:
            raise ConfigError("auth.audit_flush_seconds must be > 0 and max_pending >= 1")
        self._log, self._flush_seconds, self._max_pending = log, flush_seconds, max_pending
        self._lock = threading.Lock()  # guards what records touch
        self._flush_lock = threading.Lock()  # one flush at a time, in order
        self._pending: list[AuditEvent | _Reads] = []
        self._groups: dict[tuple[str, str, str, str, str], _Reads] = {}
        self._records = self._dropped = 0
        self._unwritten: list[AuditEvent] = []  # a failed flush's events, written first
        self._closed = False
        self._wake, self._stopping = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-buffer", daemon=True)
        self._thread.start()

    def record_read(self, actor: str, role: str, action: str, resource: str, region: str,
                    request_id: str = "", outcome: str = "ok") -> None:
        """Note one read of ``resource`` (a keyed hash for a person)."""
        key = (actor, role, action, region, outcome)
        with self._lock:
            if self._accepting():
                group = self._groups.get(key)
                if group is None:
                    group = self._groups[key] = _Reads(key)
                    self._pending.append(group)
                group.add(resource, request_id)

    def record(self, event: AuditEvent) -> None:
        """Note an ordinary event, written at the next flush in the order recorded."""
        with self._lock:
            if self._accepting():
                self._pending.append(event)

    def flush(self) -> int:
        """Write everything recorded so far (synchronously); returns the entries written.
        The log's error is raised, the events kept for the next flush."""
        with self._flush_lock:
            with self._lock:
                pending, self._pending, self._groups = self._pending, [], {}
                events, self._unwritten = self._unwritten, []
                dropped, self._dropped, self._records = self._dropped, 0, 0
            for item in pending:
                events += item.events() if isinstance(item, _Reads) else [item]
            if dropped:
                events.append(AuditEvent("audit", "system", "audit.dropped", outcome="failed",
                                         reason="the audit buffer was full", count=dropped))
            if not events:
                return 0
            try:
                self._log.append_many(events)
            except BaseException:
                with self._lock:
                    self._unwritten = events + self._unwritten
                raise
            return len(events)

    def close(self) -> None:
        """Stop the thread, flush (raising the log's error) and close the log, which
        writes its final checkpoint. Later records are dropped; closing twice does nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stopping.set()
        self._wake.set()
        self._thread.join()
        try:
            self.flush()
        finally:
            self._log.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accepting(self) -> bool:
        """Count one record, waking the thread at max_pending; False (dropped) when closed
        or full. The caller holds the lock."""
        if self._closed:
            return False
        if self._records + len(self._unwritten) >= 100 * self._max_pending:
            self._dropped += 1
            return False
        self._records += 1
        if self._records == self._max_pending:
            self._wake.set()
        return True

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._flush_seconds)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self.flush()
                self._log.checkpoint_if_due()
            except Exception as exc:  # noqa: BLE001 -- logged and retried, never into a request
                detail = f": {exc.strerror}" if isinstance(exc, OSError) else ""
                logger.error("audit buffer: writing %s failed (%s%s); retrying in %.1f s",
                             self._log.directory, type(exc).__name__, detail,
                             self._flush_seconds)
