"""The event stream every source builder appends to, and its assembly into a dataset.

Contract: an :class:`EventStream` owns the dataset's one ``random.Random`` (shared by every
builder, so the order in which builders run and draw is part of the output for a seed), the
event-time window ``[t0, end)`` in integer epoch milliseconds, and the queued payloads, each
with the ``(record key, person id)`` pairs of the identity records the adapters will make of
it. :meth:`EventStream.finish` orders them by event time (stably: same-time events keep the
order they were queued in, which keeps creates before updates) and cuts the latest ones until
at most ``n_records`` records remain. Times are rendered by :class:`Clock` in the sources'
ISO 8601 forms.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from operator import itemgetter

__all__ = ["DAY_MS", "HOUR_MS", "MIN_MS", "SOURCES", "Clock", "EventStream", "Owners"]

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MIN_MS = 60_000

#: The source kinds, in the order ``SyntheticDataset.counts`` lists them.
SOURCES = ("salesforce", "hubspot", "sendgrid", "segment", "google_calendar")

#: ``(record key, person id)`` of every record a payload yields.
Owners = tuple[tuple[str, str], ...]


class Clock:
    """ISO 8601 text of integer epoch milliseconds, caching the ``YYYY-MM-DDTHH:`` prefix."""

    __slots__ = ("_hours",)

    def __init__(self) -> None:
        self._hours: dict[int, str] = {}

    def _prefix(self, hour: int) -> str:
        text = self._hours.get(hour)
        if text is None:
            dt = datetime(1970, 1, 1) + timedelta(hours=hour)
            text = self._hours[hour] = dt.strftime("%Y-%m-%dT%H:")
        return text

    def z(self, ms: int) -> str:
        """``2024-05-01T10:00:00.123Z`` (Segment, HubSpot, Calendar)."""
        hour, rem = divmod(ms, HOUR_MS)
        m, rem = divmod(rem, MIN_MS)
        return f"{self._prefix(hour)}{m:02d}:{rem // 1000:02d}.{rem % 1000:03d}Z"

    def sf(self, ms: int) -> str:
        """``2024-05-01T10:00:00.000+0000`` (Salesforce)."""
        hour, rem = divmod(ms, HOUR_MS)
        m, rem = divmod(rem, MIN_MS)
        return f"{self._prefix(hour)}{m:02d}:{rem // 1000:02d}.{rem % 1000:03d}+0000"


class EventStream:
    """Queued ``(event ms, source, payload, owners)`` items over one time window."""

    def __init__(
        self,
        rng: random.Random,
        start: datetime,
        days: int,
        email_key: Callable[[str], str],
    ) -> None:
        self.rng = rng
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        self.t0 = int(start.timestamp() * 1000)
        self.span = days * DAY_MS
        self.end = self.t0 + self.span
        self.clock = Clock()
        self.items: list[tuple[int, str, dict, Owners]] = []
        self._email_key_fn = email_key
        self._email_keys: dict[str, str] = {}

    # ---- records ----------------------------------------------------------------------

    def email_key(self, email: str) -> str:
        """``email`` normalised as record keys spell it (memoised)."""
        k = self._email_keys.get(email)
        if k is None:
            k = self._email_keys[email] = self._email_key_fn(email)
        return k

    def emit(self, ms: int, source: str, payload: dict, key: str, person_id: str) -> None:
        """Queue a payload that yields one record, ``key``, owned by ``person_id``."""
        self.items.append((ms, source, payload, ((key, person_id),)))

    def add(self, ms: int, source: str, payload: dict, owners: Owners) -> None:
        """Queue a payload that yields one record per ``owners`` pair (possibly none)."""
        self.items.append((ms, source, payload, owners))

    def n_records(self) -> int:
        """Records queued so far."""
        return sum(len(item[3]) for item in self.items)

    # ---- draws ------------------------------------------------------------------------

    def when(self, lo: float = 0.0, hi: float = 1.0) -> int:
        """A time in [lo, hi) of the window (fractions), in ms."""
        return self.t0 + int(self.span * (lo + (hi - lo) * self.rng.random()))

    def ri(self, lo: int, hi: int | None = None) -> int:
        """Like ``randrange(lo, hi)`` (or ``randrange(lo)``) but a few times faster."""
        if hi is None:
            lo, hi = 0, lo
        return lo + int(self.rng.random() * (hi - lo))

    def created_before(self, ms: int) -> int:
        """CreatedDate of a CRM record first seen at ``ms``: then, or up to two years earlier."""
        if self.rng.random() < 0.6:
            return ms
        return ms - self.ri(DAY_MS, 700 * DAY_MS)

    # ---- assembly ---------------------------------------------------------------------

    def finish(
        self, n_records: int
    ) -> tuple[list[tuple[str, dict]], dict[str, str], dict[str, int]]:
        """(events in time order, record key -> person id, records per source)."""
        items = self.items
        items.sort(key=itemgetter(0))  # stable: same-time events keep their causal order
        # Tiny datasets can overshoot (a few people already make a dozen records): drop the
        # latest events. Cutting at a time keeps every invariant (creates before updates,
        # the device owner's identify before a household member's).
        total = sum(len(item[3]) for item in items)
        while total > n_records and len(items) > 1:
            total -= len(items.pop()[3])
        events: list[tuple[str, dict]] = []
        truth: dict[str, str] = {}
        counts = {s: 0 for s in SOURCES}
        for _, src, payload, owners in items:
            events.append((src, payload))
            counts[src] += len(owners)
            for key, pid in owners:
                truth[key] = pid
        return events, truth, counts
