"""The segment rows of a batch (memberships, their two indexes, the change log, builds),
planned with the profile rows (:mod:`.plan`), and the codecs of the change log and its
cursor. Pure: no I/O.

Memberships. ``memberships`` ``((region, profile_id), segment)`` is the row of record,
in the profile's home region. Beside it, in the same atomic batch:

* ``segment_members`` ``((region, segment, shard), profile_id)``: a row per *member*
  (``member`` true), the shard being :func:`member_shard` of the profile ID; a segment's
  members in profile-ID order are the merge of its shards.
* ``segment_deadlines`` ``((region, bucket), next_change, segment, profile_id)``: a row
  per pending deadline (``next_change`` > 0), filed under :func:`deadline_bucket`: the hour
  the deadline falls in or, for a deadline already past when written, the hour of the
  write. So every entry of bucket ``B`` falls due before ``B`` ends, and a reader scanning
  from the region's low-water bucket (``meta`` ``deadline_low``, :mod:`.segment_reads`) to
  the current hour finds every due row, however far in the past its deadline was.
  The bucket used is kept in the membership row (``deadline_bucket``): replacing or
  removing a row deletes its old index entries by their exact key in the same batch.

A batch's memberships are applied to the stored rows the store read for them (every
served region; a (segment, profile) pair is stored in one region at most, as in SQLite,
where it is the primary key): removals first (a removal deletes the pair wherever it is
stored among the served regions), then upserts; the result is diffed against the stored
rows, with at most one mutation per row, so the batch's single write timestamp never
makes a deletion and a write of the same row collide. A pair that moves region is
deleted from the old region's keyspace (with its index rows) and written to the new one.

Anonymous profiles (``anonymous_ttl_seconds``): membership rows (and their index rows)
are written with the TTL of the profile's head, and rewritten whenever the planner
rewrites every row of the profile (:meth:`.plan._Planner.rewrite_all`), so they expire
with it.

The change log. A batch's membership changes of one region are one ``segment_log`` row
``((region, bucket), log_id)`` (``n`` changes, compressed JSON), written with a TTL
(``cassandra.segment_log_ttl_seconds``): one row is one write, so a reader sees all of a
batch's changes of a region or none. ``log_id`` is a time UUID above the region's
previous row, whoever wrote it: the planner reads the region's last row ID (``meta``
``segment_log_last``, written in the same batch with a write timestamp taken from the
row's UUID) and the store's clock gives a UUID past it (:meth:`.clock.Clock.next_uuid`).
So, with writers that take turns on a region (the engine's writer turns, the journal
finishing or recovering a batch before the next), a region's rows become visible in
``log_id`` order, and a per-region position never passes a row that appears later, even
when the writers' clocks disagree. ``StoreBatch.segment_log_before`` is ignored: the TTL
drops old rows.

Erasure (``StoreBatch.erased_profiles``, :mod:`.erasure`): every membership row of an
erased profile is removed before the batch's removals and upserts (so a membership the
batch writes again is one write, not a deletion and a write colliding at one timestamp);
a change-log row naming one is rewritten with ``null`` in the place of each of its changes
(:func:`erase_from_log`; readers skip them, the other changes keep their index, so change
IDs and cursor positions stay valid) and the row's remaining TTL, or deleted when none of
its changes is left.

The cursor (:func:`encode_cursor`): ``REGION=LOG_ID:N`` for every served region, sorted
and comma-separated, ``LOG_ID`` the time UUID of the region's last row read and ``N`` how
many of its changes were returned; ``REGION=`` when none was (read from the start of
what the log retains). The empty string is a cursor at the start of every region.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import orjson

from idgraph.profile_store.base import StoreBatch
from idgraph.profile_store.cassandra_backend import schema as q
from idgraph.profile_store.cassandra_backend.clock import UUID_EPOCH, uuid_seconds
from idgraph.profile_store.segment_state import Membership, SegmentChange

DEADLINE_BUCKET_SECONDS = 3600
LOG_BUCKET_SECONDS = 3600
DEADLINE_LOW = "deadline_low"
"""``meta`` row: the oldest deadline bucket of the region that may hold entries."""
SEGMENT_LOG_LAST = "segment_log_last"
"""``meta`` row: ``LOG_ID:N`` of the region's last change-log row."""

Position = tuple[uuid.UUID | None, int]
"""A region's place in the change log: (last row read or None, changes of it returned)."""

Emit = Callable[..., None]


@dataclass(slots=True)
class StoredMembership:
    """A ``memberships`` row as read (what planning needs to replace or delete it)."""

    region: str
    member: bool
    next_change: float
    deadline_bucket: int
    doc: bytes


def member_shard(profile_id: str) -> int:
    """The ``segment_members`` shard of a profile (stable across processes)."""
    return zlib.crc32(profile_id.encode()) % q.MEMBER_SHARDS


def deadline_bucket(next_change: float, written_at: float) -> int:
    """The hour bucket a deadline is filed under when written at ``written_at``: its own
    hour, or the write's when it is already past (module docstring)."""
    return int(max(next_change, written_at) // DEADLINE_BUCKET_SECONDS)


def log_bucket(log_id: uuid.UUID) -> int:
    """The hour bucket of a change-log row."""
    return int(uuid_seconds(log_id)) // LOG_BUCKET_SECONDS


def uuid_micros(u: uuid.UUID) -> int:
    """A version-1 UUID's time in microseconds since 1970 (a write timestamp)."""
    return (u.time - UUID_EPOCH) // 10


def membership_from_doc(doc: bytes) -> Membership:
    return Membership(**orjson.loads(doc))


# -- the change log ------------------------------------------------------------------------


def encode_log(changes: list[SegmentChange]) -> bytes:
    """A change-log row's ``changes`` cell."""
    return zlib.compress(orjson.dumps(changes), 1)


def decode_log(blob: bytes, region: str, log_id: uuid.UUID) -> list[SegmentChange | None]:
    """The changes of a change-log row, each with its ID ``REGION:LOG_ID:INDEX``; None in
    the place of an erased one (:func:`erase_from_log`)."""
    out: list[SegmentChange | None] = []
    for i, fields in enumerate(orjson.loads(zlib.decompress(blob))):
        if fields is None:
            out.append(None)
            continue
        fields["change_id"] = f"{region}:{log_id}:{i}"
        out.append(SegmentChange(**fields))
    return out


def json_needles(ids: Iterable[str]) -> list[bytes]:
    """Each ID as the JSON string orjson writes for it (quotes included): a doc that
    does not contain one does not name it (a cheap test before parsing)."""
    return [orjson.dumps(i) for i in sorted(set(ids))]


def erase_from_log(blob: bytes, ids: frozenset[str], needles: list[bytes]
                   ) -> tuple[bytes | None, int] | None:
    """A change-log row's ``changes`` cell with the changes of profiles ``ids`` replaced
    by ``null`` (so the others keep their index: change IDs and readers' positions stay
    valid), and how many real changes are left; None when the row names none of ``ids``
    (``needles``: :func:`json_needles` of them). The cell is None when nothing is left."""
    raw = zlib.decompress(blob)
    if not any(n in raw for n in needles):
        return None
    changes = orjson.loads(raw)
    kept = [c if c is None or c.get("profile_id") not in ids else None for c in changes]
    if kept == changes:
        return None
    left = sum(c is not None for c in kept)
    return (zlib.compress(orjson.dumps(kept), 1) if left else None), left


def encode_position(position: Position) -> str:
    log_id, n = position
    return "" if log_id is None else f"{log_id}:{n}"


def decode_position(text: str) -> Position:
    """A position as :func:`encode_position` wrote it; ValueError when it is not one."""
    if not text:
        return None, 0
    log_id_text, sep, n_text = text.partition(":")
    if not sep or not n_text.isdigit():
        raise ValueError("not a change-log position")
    log_id = uuid.UUID(log_id_text)
    if log_id.version != 1:
        raise ValueError("not a change-log position")
    return log_id, int(n_text)


def encode_cursor(positions: dict[str, Position]) -> str:
    """The cursor of per-region positions (module docstring)."""
    return ",".join(f"{region}={encode_position(positions[region])}"
                    for region in sorted(positions))


def decode_cursor(cursor: str, regions: Iterable[str]) -> dict[str, Position]:
    """Per-region positions of ``cursor``; ValueError unless it names exactly
    ``regions`` (what a store serving them gives), or is empty (every region's start)."""
    wanted = set(regions)
    if cursor == "":
        return {region: (None, 0) for region in wanted}
    positions: dict[str, Position] = {}
    try:
        for part in cursor.split(","):
            region, sep, text = part.partition("=")
            if not sep or region in positions:
                raise ValueError
            positions[region] = decode_position(text)
    except ValueError:
        raise ValueError("not a change-log cursor of this store") from None
    if set(positions) != wanted:
        raise ValueError("not a change-log cursor of this store (it names other regions)")
    return positions


# -- planning ------------------------------------------------------------------------------


def diff_segments(batch: StoreBatch, stored: dict[tuple[str, str], StoredMembership],
                  log_last: dict[str, Position], regions: frozenset[str], ts: int,
                  emit: Emit, ttl_of: Callable[[str], int], rewrite_all: Callable[[str], bool],
                  new_log_id: Callable[[uuid.UUID | None], uuid.UUID], log_ttl: int,
                  erased: frozenset[str] = frozenset()) -> None:
    """Emit the mutations of ``batch``'s segment rows (module docstring).

    ``stored``: the membership rows of every (segment, profile ID) the batch names, of the
    erased profiles, and of the profiles whose rows are all rewritten, found in the served
    regions; ``log_last``: the last change-log position of each served region with
    changes in the batch; ``erased``: profile IDs whose every membership goes first
    (``StoreBatch.erased_profiles``); ``emit(region, code, *values)`` raises
    ResidencyError for an unserved region."""
    _diff_memberships(batch, stored, ts, emit, ttl_of, rewrite_all, erased)
    _log(batch, log_last, regions, ts, emit, new_log_id, log_ttl)
    builds = {(b.region, b.segment): b for b in batch.segment_builds}
    for (region, segment), build in sorted(builds.items()):
        emit(region, q.PUT_BUILD, region, segment, orjson.dumps(build), ts)


def _diff_memberships(batch: StoreBatch, stored: dict[tuple[str, str], StoredMembership],
                      ts: int, emit: Emit, ttl_of: Callable[[str], int],
                      rewrite_all: Callable[[str], bool], erased: frozenset[str]) -> None:
    present = {key for key in stored if key[1] not in erased}  # an erasure goes first
    for _region, segment, pid in batch.removed_memberships:
        present.discard((segment, pid))
    upserts: dict[tuple[str, str], Membership] = {}
    for m in batch.memberships:
        upserts[(m.segment, m.profile_id)] = m
        present.add((m.segment, m.profile_id))
    written_at = ts / 1e6
    for key in sorted(set(stored) | present):
        segment, pid = key
        old = stored.get(key)
        if key not in present:
            if old is not None:
                _delete(old, segment, pid, ts, emit)
            continue
        new = upserts.get(key)
        if new is not None:
            region, member, next_change = new.region, new.member, new.next_change
            doc = orjson.dumps(new)
        elif old is not None and rewrite_all(pid):
            region, member, next_change, doc = old.region, old.member, old.next_change, old.doc
        else:
            continue  # stored and untouched
        ttl = ttl_of(pid)
        same_region = old is not None and old.region == region
        if old is not None and not same_region:
            emit(old.region, q.DEL_MEMBERSHIP, ts, old.region, pid, segment)
        same_deadline = same_region and old is not None and old.next_change == next_change
        bucket = 0
        if next_change > 0:
            bucket = old.deadline_bucket if same_deadline and old is not None else \
                deadline_bucket(next_change, written_at)
        emit(region, q.PUT_MEMBERSHIP, region, pid, segment, member, next_change, bucket, doc,
             ttl, ts)
        if old is not None and old.member and not (same_region and member):
            emit(old.region, q.DEL_MEMBER, ts, old.region, segment, member_shard(pid), pid)
        if member:
            emit(region, q.PUT_MEMBER, region, segment, member_shard(pid), pid, doc, ttl, ts)
        if old is not None and old.next_change > 0 and not same_deadline:
            emit(old.region, q.DEL_DEADLINE, ts, old.region, old.deadline_bucket,
                 old.next_change, segment, pid)
        if next_change > 0:
            emit(region, q.PUT_DEADLINE, region, bucket, next_change, segment, pid, doc, ttl,
                 ts)


def _delete(old: StoredMembership, segment: str, pid: str, ts: int, emit: Emit) -> None:
    emit(old.region, q.DEL_MEMBERSHIP, ts, old.region, pid, segment)
    if old.member:
        emit(old.region, q.DEL_MEMBER, ts, old.region, segment, member_shard(pid), pid)
    if old.next_change > 0:
        emit(old.region, q.DEL_DEADLINE, ts, old.region, old.deadline_bucket, old.next_change,
             segment, pid)


def _log(batch: StoreBatch, log_last: dict[str, Position], regions: frozenset[str], ts: int,
         emit: Emit, new_log_id: Callable[[uuid.UUID | None], uuid.UUID], log_ttl: int) -> None:
    by_region: dict[str, list[SegmentChange]] = {}
    for change in batch.segment_changes:
        if change.region in regions:  # like the outbox: another region's is never read here
            by_region.setdefault(change.region, []).append(change)
    for region, changes in sorted(by_region.items()):
        log_id = new_log_id(log_last.get(region, (None, 0))[0])
        emit(region, q.PUT_SEGMENT_LOG, region, log_bucket(log_id), log_id, len(changes),
             encode_log(changes), log_ttl, ts)
        emit(region, q.PUT_SEGMENT_LOG_LAST, uuid_micros(log_id),
             encode_position((log_id, len(changes))), region, SEGMENT_LOG_LAST)
