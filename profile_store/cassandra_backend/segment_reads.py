"""Reads of the segment tables of the served regions (the store's ``SegmentReader``
methods, and what planning a batch reads of them). The tables and how writes keep them
consistent: :mod:`.segments`.

Orders. Members are returned in profile-ID order (UTF-8 byte order, which is code-point
order: Cassandra's ``text`` order and SQLite's), merged over every shard of every served
region. Due memberships come earliest deadline first (ties by region, segment, profile
ID). Change-log entries come oldest first across regions: by the time of their row's
UUID, then region, then their place in the row. :meth:`SegmentReads.profile_ids_after`
lists a region's live profile IDs in *token order* (Murmur3 of the partition key): a
stable total order, not lexicographic, in which ``after`` is the last ID a previous call
returned (two IDs with the same 64-bit token, a ~1e-8 chance among millions, would make
the second one be skipped).

Deadlines. ``due_memberships(now, limit)`` reads the buckets from the region's low-water
bucket (``meta`` ``deadline_low``) to the later of ``now``'s and the clock's next hour,
each up to ``limit`` rows with ``next_change <= now``, and merges them (a bucket may hold
deadlines older than the one before it: see :func:`.segments.deadline_bucket`). A writable
store raises the low-water bucket past the buckets it found empty, never above the hour
before the current one (writers whose clocks lag file into that one).

The change log. ``segment_changes_after`` reads each served region's ``segment_log_last``
(one read per region: an idle region costs nothing more), and, where that is past the
cursor's position, the region's hourly buckets from the position's (at the earliest the
first one the TTL may have left) up to the last row's, in order, until ``limit`` changes
are found; then merges the regions, returns the oldest ``limit`` and moves each region's
position past what it returned. A region's rows become visible in UUID order
(:mod:`.segments`), so a position never passes a change that shows up later.

The change log by time. ``segment_log(since, segment, profile_id)`` reads every bucket
of every served region that logged a change, from ``since``'s (at the earliest the first
one the TTL may have left) to the region's last row's, a few hours' buckets of every
region at a time, and gives their changes in time order (the time of the row's UUID, when
it was logged). The log has no index by segment or profile: each row's cell is searched
for the JSON-quoted segment name and profile ID before it is parsed, so a row without
them costs its read and its decompression only. A profile's changes therefore cost a
read of the whole retained log of the served regions (as an erasure's scan,
:mod:`.erasure`); a segment's activity the buckets of its window.
"""

from __future__ import annotations

import time
import uuid
import zlib
from collections.abc import Iterable, Iterator

import orjson

from idgraph.profile_store.cassandra_backend import schema as q
from idgraph.profile_store.cassandra_backend.clock import uuid_seconds
from idgraph.profile_store.cassandra_backend.connection import NamedCall, Statements, chunks
from idgraph.profile_store.cassandra_backend.segments import (
    DEADLINE_BUCKET_SECONDS,
    DEADLINE_LOW,
    LOG_BUCKET_SECONDS,
    SEGMENT_LOG_LAST,
    Position,
    StoredMembership,
    decode_cursor,
    decode_log,
    decode_position,
    encode_cursor,
    log_bucket,
    membership_from_doc,
)
from idgraph.profile_store.segment_state import Membership, SegmentBuild, SegmentChange

IN_CHUNK = 100  # profile IDs per IN query (as the store's other IN reads)
PROFILE_SCAN_SLACK = 32  # extra rows per profile scan: aliases share the table and are skipped
LOG_SCAN_CALLS = 16  # change-log bucket partitions read at a time by segment_log


class SegmentReads:
    """The segment tables of a store serving ``regions`` (module docstring); a writable
    one keeps the deadline low-water buckets; change-log rows live ``log_ttl`` seconds."""

    def __init__(self, statements: Statements, regions: frozenset[str], writable: bool,
                 log_ttl: int) -> None:
        self._db = statements
        self._regions = sorted(regions)
        self._writable = writable
        self._log_ttl = log_ttl

    def open(self) -> None:
        """Give each served region without one its deadline low-water bucket: the hour
        before the current one (a writable store, when it opens)."""
        rows = self._meta(DEADLINE_LOW, "open (segments)")
        low = int(time.time() // DEADLINE_BUCKET_SECONDS) - 1
        calls = [(r, "meta_put", (r, DEADLINE_LOW, str(low)))
                 for r, value in rows.items() if value is None]
        if calls:
            self._db.run(calls, "open (segments)")

    def _meta(self, name: str, operation: str) -> dict[str, str | None]:
        results = self._db.run([(r, "meta", (r, name)) for r in self._regions], operation)
        return {r: (rows[0][0] if rows else None)
                for r, rows in zip(self._regions, results, strict=True)}

    # ------------------------------------------------------------------ planning

    def membership_calls(self, profile_ids: Iterable[str]) -> list[NamedCall]:
        """Reads of the stored membership rows of ``profile_ids`` in every served region
        (:meth:`stored_memberships` parses their results)."""
        ids = sorted(set(profile_ids))
        return [(r, "memberships_in", (r, chunk)) for r in self._regions
                for chunk in chunks(ids, IN_CHUNK)]

    @staticmethod
    def stored_memberships(calls: list[NamedCall], results: list
                           ) -> dict[tuple[str, str], StoredMembership]:
        out: dict[tuple[str, str], StoredMembership] = {}
        for (region, _, _), rows in zip(calls, results, strict=True):
            for pid, segment, member, next_change, bucket, doc in rows:
                out[(segment, pid)] = StoredMembership(region, bool(member), next_change or 0.0,
                                                       bucket or 0, doc)
        return out

    def log_last_calls(self, regions: Iterable[str]) -> list[NamedCall]:
        """Reads of the last change-log position of ``regions`` (:meth:`log_last` parses)."""
        return [(r, "meta", (r, SEGMENT_LOG_LAST)) for r in sorted(regions)]

    @staticmethod
    def log_last(calls: list[NamedCall], results: list) -> dict[str, Position]:
        return {region: decode_position(rows[0][0])
                for (region, _, _), rows in zip(calls, results, strict=True)
                if rows and rows[0][0]}

    # ------------------------------------------------------------------ memberships

    def memberships(self, profile_ids: Iterable[str]) -> dict[str, list[Membership]]:
        calls = self.membership_calls(profile_ids)
        if not calls:
            return {}
        out: dict[str, list[Membership]] = {}
        for rows in self._db.run(calls, "read memberships"):
            for *_, doc in rows:
                m = membership_from_doc(doc)
                out.setdefault(m.profile_id, []).append(m)
        for rows in out.values():
            rows.sort(key=lambda m: m.segment)
        return dict(sorted(out.items()))

    def segment_members(self, segment: str, after: str, limit: int) -> list[Membership]:
        """Members above ``after`` in profile-ID order: each shard of each region is read
        from its own place, a page at a time, until the first ``limit`` of the merge are
        known (every shard still open has read past them)."""
        if limit <= 0:
            return []
        page = max(8, -(-2 * limit // q.MEMBER_SHARDS))
        places = {(r, shard): after for r in self._regions for shard in range(q.MEMBER_SHARDS)}
        found: list[tuple[str, bytes]] = []
        while True:
            keys = sorted(places)
            results = self._db.run(
                [(r, "members_from", (r, segment, shard, places[(r, shard)], page))
                 for r, shard in keys], "read segment members")
            for key, rows in zip(keys, results, strict=True):
                found.extend((pid, doc) for pid, doc in rows)
                if len(rows) < page:
                    del places[key]
                else:
                    places[key] = rows[-1][0]
            found.sort(key=lambda row: row[0])
            if places:
                cut = min(places.values())
                known = [row for row in found if row[0] <= cut]
            else:
                known = found
            if len(known) >= limit or not places:
                return [membership_from_doc(doc) for _, doc in known[:limit]]
            page = min(limit, page * 2)

    def count_segment(self, segment: str) -> dict[str, int]:
        keys = [(r, shard) for r in self._regions for shard in range(q.MEMBER_SHARDS)]
        results = self._db.run([(r, "count_members", (r, segment, shard)) for r, shard in keys],
                               "count segment members")
        out: dict[str, int] = {}
        for (region, _), rows in zip(keys, results, strict=True):
            out[region] = out.get(region, 0) + (rows[0][0] if rows else 0)
        return {r: n for r, n in out.items() if n}

    def due_memberships(self, now: float, limit: int) -> list[Membership]:
        if limit <= 0:
            return []
        lows = self._meta(DEADLINE_LOW, "read due memberships")
        wall = int(time.time() // DEADLINE_BUCKET_SECONDS)
        due = int(now // DEADLINE_BUCKET_SECONDS)
        last = max(due, wall) + 1
        keys = [(r, b) for r, low in lows.items() if low is not None
                for b in range(int(low), last + 1)]
        found: list[tuple[float, str, str, str, bytes]] = []
        nonempty: dict[str, int] = {}
        for part in chunks(keys, 1000):
            results = self._db.run([(r, "deadlines_due", (r, b, now, limit)) for r, b in part],
                                   "read due memberships")
            for (region, b), rows in zip(part, results, strict=True):
                if rows:
                    nonempty[region] = min(b, nonempty.get(region, b))
                found.extend((nc, region, segment, pid, doc) for nc, segment, pid, doc in rows)
        if self._writable:
            self._raise_deadline_lows(lows, nonempty, min(due, wall - 1))
        found.sort(key=lambda row: row[:4])
        return [membership_from_doc(row[4]) for row in found[:limit]]

    def _raise_deadline_lows(self, lows: dict[str, str | None], nonempty: dict[str, int],
                             ceiling: int) -> None:
        """Buckets below ``due``'s hold only due rows: those that returned none are empty."""
        calls = []
        for region, low in lows.items():
            if low is None:
                continue
            new = min(nonempty.get(region, ceiling), ceiling)
            if new > int(low):
                calls.append((region, "meta_put", (region, DEADLINE_LOW, str(new))))
        if calls:
            self._db.run(calls, "read due memberships")

    # ------------------------------------------------------------------ the change log

    def segment_log_position(self) -> str:
        lasts = self._meta(SEGMENT_LOG_LAST, "read segment log")
        return encode_cursor({r: decode_position(v or "") for r, v in lasts.items()})

    def segment_changes_after(self, cursor: str, limit: int
                              ) -> tuple[list[SegmentChange], str]:
        positions = decode_cursor(cursor, self._regions)
        if limit <= 0:
            return [], encode_cursor(positions)
        lasts = self._meta(SEGMENT_LOG_LAST, "read segment log")
        entries: list[tuple[int, str, int, uuid.UUID, SegmentChange]] = []
        for region in self._regions:
            last = decode_position(lasts[region] or "")
            if _nothing_after(positions[region], last):
                continue
            entries.extend(self._region_changes(region, positions[region], last, limit))
        entries.sort(key=lambda e: e[:3])
        out: list[SegmentChange] = []
        for _, region, index, log_id, change in entries:
            if len(out) >= limit:
                break
            positions[region] = (log_id, index + 1)
            if change is not None:  # an erased change's place: passed, not returned
                out.append(change)
        return out, encode_cursor(positions)

    def _region_changes(self, region: str, position: Position, last: Position, limit: int
                        ) -> list[tuple[int, str, int, uuid.UUID, SegmentChange | None]]:
        """A region's changes after ``position``, oldest first: at least ``limit`` of them
        unless the region has fewer, with the places of erased ones (None) among them."""
        after, returned = position
        now = time.time()
        oldest = int((now - self._log_ttl) // LOG_BUCKET_SECONDS) - 1  # older rows expired
        start = oldest if after is None else max(oldest, log_bucket(after))
        end = max(int(now // LOG_BUCKET_SECONDS) + 1,
                  log_bucket(last[0]) if last[0] is not None else 0)
        out: list[tuple[int, str, int, uuid.UUID, SegmentChange | None]] = []
        real = 0
        for bucket in range(start, end + 1):
            if after is not None and bucket == log_bucket(after):
                call = (region, "segment_log_from", (region, bucket, after, limit + 1))
            else:
                call = (region, "segment_log", (region, bucket, limit + 1))
            for log_id, n, blob in self._db.run([call], "read segment log")[0]:
                skip = returned if log_id == after else 0
                if (after is not None and log_id.time < after.time) or skip >= (n or 0):
                    continue
                changes = decode_log(blob, region, log_id)
                out.extend((log_id.time, region, i, log_id, changes[i])
                           for i in range(skip, len(changes)))
                real += sum(c is not None for c in changes[skip:])
            if real >= limit:
                break
        return out

    def segment_log(self, since: float, segment: str, profile_id: str
                    ) -> Iterator[tuple[float, SegmentChange]]:
        """Changes logged at or after ``since`` (module docstring, The change log by time)."""
        now = time.time()
        oldest = int((now - self._log_ttl) // LOG_BUCKET_SECONDS) - 1  # older rows expired
        start = max(oldest, int(since // LOG_BUCKET_SECONDS))
        ends: dict[str, int] = {}
        for region, value in self._meta(SEGMENT_LOG_LAST, "read segment log").items():
            last = decode_position(value or "")[0]
            if last is not None:  # a region that never logged a change has no rows
                ends[region] = max(int(now // LOG_BUCKET_SECONDS) + 1, log_bucket(last))
        needles = [orjson.dumps(profile_id)] if profile_id else []
        if segment:
            needles.append(b'"segment":' + orjson.dumps(segment))
        regions = sorted(ends)
        step = max(1, LOG_SCAN_CALLS // max(1, len(regions)))  # whole buckets per round
        end = max(ends.values(), default=start - 1)
        for first in range(start, end + 1, step):
            keys = [(r, b) for b in range(first, min(first + step, end + 1))
                    for r in regions if b <= ends[r]]
            results = self._db.run([(r, "segment_log_bucket", (r, b)) for r, b in keys],
                                   "read segment log")
            found: list[tuple[int, str, int, float, SegmentChange]] = []
            for (region, _), rows in zip(keys, results, strict=True):
                for log_id, _n, blob, _ttl in rows:
                    at = uuid_seconds(log_id)
                    if blob is None or at < since:
                        continue
                    if needles:  # a cheap test before parsing: the row names them all
                        raw = zlib.decompress(blob)
                        if not all(n in raw for n in needles):
                            continue
                    found.extend((log_id.time, region, i, at, c)
                                 for i, c in enumerate(decode_log(blob, region, log_id))
                                 if c is not None and (not segment or c.segment == segment)
                                 and (not profile_id or c.profile_id == profile_id))
            found.sort(key=lambda e: e[:3])
            for *_, at, change in found:
                yield at, change

    # ------------------------------------------------------------------ builds, profile IDs

    def profile_ids_after(self, region: str, after: str, limit: int) -> list[str]:
        if region not in self._regions or limit <= 0:
            return []
        out: list[str] = []
        place = after
        while len(out) < limit:
            n = limit - len(out) + PROFILE_SCAN_SLACK
            if place:
                call = (region, "profile_ids_after", (region, place, n))
            else:
                call = (region, "profile_ids_first", (n,))
            rows = self._db.run([call], "read profile IDs")[0]
            out.extend(pid for pid, updated_at in rows if updated_at is not None)
            if len(rows) < n:
                break
            place = rows[-1][0]
        return out[:limit]

    def segment_builds(self) -> list[SegmentBuild]:
        results = self._db.run([(r, "segment_builds", (r,)) for r in self._regions],
                               "read segment builds")
        builds = [SegmentBuild(**orjson.loads(doc)) for rows in results for (doc,) in rows]
        builds.sort(key=lambda b: (b.segment, b.region))
        return builds


def _nothing_after(position: Position, last: Position) -> bool:
    """Whether the region's last row (as ``meta`` says) is at or before ``position``."""
    if last[0] is None:
        return True
    if position[0] is None:
        return False
    return last[0].time < position[0].time or (last[0] == position[0] and last[1] <= position[1])
