"""The change outbox: the profile changes and segment membership changes a store has
written and not yet seen acknowledged.

Contract (what :meth:`Outbox.pending` and :meth:`Outbox.ack` give the seam's
``pending_changes`` and ``ack_changes``). A change notification is a row of its region's
``outbox`` table, written in the same atomic batch as the profile rows it describes (the
planner emits it, :mod:`.plan`, under the ID :meth:`Outbox.new_change` gives; the batch
goes through :mod:`.journal`), so a change is pending exactly when its batch has landed.
Changes of a region the store does not serve are never written. A change's ID is
``REGION:TIMEUUID``: unique across regions and ordered by time. A row's ``change`` is
the change's :func:`~idgraph.profile_store.base.dump_change` doc (a profile change or a
segment change), read back with ``load_change``. :meth:`Outbox.pending` returns the
oldest ones of the served regions first, merged; :meth:`Outbox.ack` deletes the given
ones and ignores IDs it does not know or that name a region it does not serve.

Erasure. A batch that erases profiles (``StoreBatch.erased_profiles``) deletes, in the same
journaled write, every outbox row whose change names one of them (:mod:`.erasure` finds
them by reading the buckets :meth:`Outbox.pending` reads), before the batch's own changes
(its ``deleted`` change among them) are written.

Buckets. Rows are filed in hourly buckets (the hour of the change's UUID): a partition per
region and hour. A region's ``meta`` row ``outbox_low`` is the oldest bucket that may hold
entries: a writable store sets it to the current hour when it first opens the region,
readers read the buckets from it up to the next hour, and a writable store raises it past
the empty ones it read (never above the previous hour: writers' clocks may lag).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable

from idgraph.profile_store.base import ProfileChange, load_change
from idgraph.profile_store.cassandra_backend.clock import uuid_seconds
from idgraph.profile_store.cassandra_backend.connection import Statements
from idgraph.profile_store.segment_state import SegmentChange

BUCKET_SECONDS = 3600
OUTBOX_LOW = "outbox_low"  # the ``meta`` row naming a region's oldest bucket in use


def bucket_of(change: uuid.UUID) -> int:
    """The hourly bucket a change is filed under."""
    return int(uuid_seconds(change)) // BUCKET_SECONDS


class Outbox:
    """The outbox of a store serving ``regions`` (module docstring); ``next_uuid`` gives
    time UUIDs above every one the store made."""

    def __init__(self, statements: Statements, regions: frozenset[str],
                 next_uuid: Callable[[], uuid.UUID], writable: bool) -> None:
        self._db = statements
        self._regions = regions
        self._next_uuid = next_uuid
        self._writable = writable

    def open(self) -> None:
        """Give each served region without one its low-water bucket: the current hour
        (a writable store, when it opens)."""
        regions = sorted(self._regions)
        rows = self._db.run([(r, "meta", (r, OUTBOX_LOW)) for r in regions], "open (outbox)")
        now = int(time.time()) // BUCKET_SECONDS
        calls = [(r, "meta_put", (r, OUTBOX_LOW, str(now)))
                 for r, res in zip(regions, rows, strict=True) if not res]
        if calls:
            self._db.run(calls, "open (outbox)")

    def new_change(self) -> tuple[int, uuid.UUID]:
        """(bucket, change UUID) of the next change written (the planner's
        ``new_change_id``)."""
        u = self._next_uuid()
        return bucket_of(u), u

    def pending(self, limit: int) -> list[ProfileChange | SegmentChange]:
        """Up to ``limit`` unacknowledged changes of the served regions, oldest first."""
        if limit <= 0:
            return []
        regions = sorted(self._regions)
        lows = self._db.run([(r, "meta", (r, OUTBOX_LOW)) for r in regions], "outbox read")
        now = int(time.time()) // BUCKET_SECONDS
        found: list[tuple[uuid.UUID, str, bytes]] = []
        for region, low in zip(regions, lows, strict=True):
            if not low:
                continue
            bucket, first = int(low[0][0]), None
            got = 0
            while bucket <= now + 1 and got < limit:
                rows = self._db.run([(region, "outbox", (region, bucket, limit - got))],
                                    "outbox read")[0]
                if rows and first is None:
                    first = bucket
                found.extend((u, region, doc) for u, doc in rows)
                got += len(rows)
                bucket += 1
            # buckets below the first one holding entries are empty; keep an hour's margin
            # for writers whose clocks lag
            low_now = min(first if first is not None else bucket, now - 1)
            if self._writable and low_now > int(low[0][0]):
                self._db.run([(region, "meta_put", (region, OUTBOX_LOW, str(low_now)))],
                             "outbox read")
        found.sort(key=lambda f: (f[0].time, f[0].bytes))
        return [load_change(doc, f"{region}:{u}") for u, region, doc in found[:limit]]

    def ack(self, change_ids: Iterable[str]) -> None:
        """Delete the given changes (IDs not known, or of a region not served, are
        ignored)."""
        calls = []
        for change_id in change_ids:
            region, _, text = str(change_id).partition(":")
            if region not in self._regions:
                continue  # unknown or another region's: ignored
            try:
                u = uuid.UUID(text)
            except ValueError:
                continue
            calls.append((region, "outbox_delete", (region, bucket_of(u), u)))
        self._db.run(calls, f"outbox ack of {len(calls)}")
