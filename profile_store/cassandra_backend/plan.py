"""Turn a :class:`StoreBatch` into the exact rows to write and delete, region by region.

Pure (no I/O): the store reads a :class:`Snapshot` of the stored rows a batch touches,
this module applies the batch to that snapshot in memory, in the order the seam defines
(``reassign``, ``regions`` moves, deletions, then upserts: the SQLite backend's order), and
diffs the result against the snapshot. The diff is a list of mutations per region
(:mod:`.schema` statement codes with their bind values), all carrying one write
timestamp, with at most one mutation per row: a row that moves region is deleted from the
old region's keyspace and written to the new one's.

Where rows live. Every row of a live profile sits in its home region's keyspace: its head,
its records, their identifier index rows, the membership links, the alias rows pointing
to it and the history of its ID and of its aliases. A row of a profile that changes home
(a ``regions`` move, a merge into a profile of another region, a split part whose home
differs) moves with it, so the store reads all of such a profile's rows first
(:func:`profiles_to_load`).

Segment rows (memberships, their indexes, the change log, builds) are planned by
:mod:`.segments` from the membership rows the store read (:attr:`Snapshot.memberships`),
in the same diff and with the same timestamp.

Erasure (``StoreBatch.erased_profiles``, ``erased_event_ids``): the store reads the rows
naming the erased IDs into :attr:`Snapshot.erasure` (:mod:`.erasure`: alias rows both
ways, history, memberships, change-log and outbox rows, and the event IDs' hashes); the
planner applies the erasure to its state before anything else of the batch, so a row the
batch writes again is one write, and emits the deletions (and change-log rewrites) in the
same diff, at the batch's timestamp, to be journaled with the rest.

Anonymous profiles (``ttl > 0``): a profile none of whose records carries an identifier
of a non-shareable type (only devices, advertising IDs, cookies) is anonymous; all its
rows are rewritten with the TTL whenever it changes, so they expire together, that TTL
after its last change. A profile that becomes known has every row rewritten without a
TTL. The head stores the verdict (``anonymous``: 1 anonymous, 0 known, -1 not judged
because no TTL was configured) so a known profile that only gains records need not be
read in full.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import orjson

from idgraph.core.errors import BackendError, ResidencyError
from idgraph.profile_store.base import StoreBatch, dump_change, dump_record, encode_related
from idgraph.profile_store.cassandra_backend import schema as q
from idgraph.profile_store.cassandra_backend.clock import Clock
from idgraph.profile_store.cassandra_backend.segments import (
    Position,
    StoredMembership,
    diff_segments,
    erase_from_log,
    json_needles,
)
from idgraph.profile_store.survivorship import identifier_type

KNOWN, ANONYMOUS, UNJUDGED = 0, 1, -1

Mutation = tuple[str, tuple]
"""(statement code of :data:`schema.MUTATIONS`, bind values in marker order)."""


@dataclass(slots=True)
class StoredRow:
    """A ``records`` row as read: where it is, and (when loaded in full) its content."""

    region: str
    profile_id: str
    idx: dict[str, bool]
    doc: bytes | None = None
    """None when only the location was read."""
    last_seen: float = 0.0


@dataclass(slots=True)
class HistoryRow:
    seq: int
    kind: str
    subject: str
    related: bytes
    at: float


LogRow = tuple[str, int, uuid.UUID, int, bytes, int]
"""A change-log row as read: (region, bucket, log_id, n, changes, remaining TTL or 0)."""


@dataclass
class Erasure:
    """The stored rows naming the IDs a batch erases (:mod:`.erasure` reads them), besides
    the alias and membership rows, which are in :attr:`Snapshot.aliases` and
    :attr:`Snapshot.memberships` like any other."""

    ids: frozenset[str] = frozenset()
    """The erased profile IDs."""
    history: list[tuple[str, str, HistoryRow]] = field(default_factory=list)
    """(region, profile ID of the partition, row): every row of the IDs' partitions and
    every row whose subject is one of them."""
    log: list[LogRow] = field(default_factory=list)
    """Change-log rows holding a change of one of them."""
    outbox: list[tuple[str, int, uuid.UUID]] = field(default_factory=list)
    """(region, bucket, change ID) of outbox rows whose change names one of them."""
    event_hashes: list[bytes] = field(default_factory=list)
    """Hashes of the erased processed event IDs (the ``processed_events`` keys)."""


@dataclass
class Snapshot:
    """The stored rows a batch touches, found by reading every served region.

    An ID or record key is stored in one region at most (the writes keep it so), so the
    maps are keyed by it and carry the region.
    """

    heads: dict[str, tuple[str, float, int]] = field(default_factory=dict)
    """profile ID -> (region, updated_at, anonymous verdict)."""
    aliases: dict[str, tuple[str, str]] = field(default_factory=dict)
    """alias -> (region, live profile ID)."""
    records: dict[str, StoredRow] = field(default_factory=dict)
    history: dict[str, tuple[str, list[HistoryRow]]] = field(default_factory=dict)
    """profile ID -> (region, its history rows), for the profiles read in full."""
    loaded: set[str] = field(default_factory=set)
    """Profiles whose every row was read (records with content, aliases, history and,
    with a TTL, memberships)."""
    memberships: dict[tuple[str, str], StoredMembership] = field(default_factory=dict)
    """(segment, profile ID) -> its stored membership row, for the profiles
    :func:`membership_ids` names (and the loaded ones, with a TTL)."""
    segment_log_last: dict[str, Position] = field(default_factory=dict)
    """Region -> its last change-log position, for the regions the batch logs changes of."""
    erasure: Erasure = field(default_factory=Erasure)
    """The rows naming the batch's erased IDs (empty when it erases none)."""


def ids_of(batch: StoreBatch) -> tuple[set[str], set[str]]:
    """(profile IDs, record keys) whose stored state planning ``batch`` needs."""
    pids: set[str] = {h.profile_id for h in batch.heads}
    for a, s in batch.reassign:
        pids.update((a, s))
    pids.update(p for p, _ in batch.regions)
    pids.update(batch.deleted_profiles)
    pids.update(batch.aliases)
    pids.update(batch.aliases.values())
    pids.update(batch.removed_aliases)
    for h in batch.history:
        pids.add(h.profile_id)
        pids.update(h.related_ids)
    pids.update(r.profile_id for r in batch.records if r.profile_id)
    pids.update(membership_ids(batch))  # their heads give the TTL of their rows
    pids.update(erased_ids(batch))  # alias rows naming them (as the alias)
    keys: set[str] = {r.record_key for r in batch.records}
    keys.update(batch.deleted_records)
    keys.update(k for _, k in batch.unlinked)
    keys.update(k for _, k, _ in batch.identifier_links)
    pids.discard("")
    return pids, keys


def membership_ids(batch: StoreBatch) -> set[str]:
    """Profiles whose stored membership rows planning ``batch`` needs."""
    pids = {m.profile_id for m in batch.memberships}
    pids.update(pid for _, _, pid in batch.removed_memberships)
    pids.update(erased_ids(batch))
    return pids


def erased_ids(batch: StoreBatch) -> frozenset[str]:
    """The profile IDs ``batch`` erases."""
    return frozenset(pid for _, pid in batch.erased_profiles if pid)


def log_regions(batch: StoreBatch, regions: frozenset[str]) -> set[str]:
    """Served regions ``batch`` logs segment changes of (their last position is read)."""
    return {c.region for c in batch.segment_changes if c.region in regions}


def old_region(snap: Snapshot, pid: str) -> str | None:
    """Region where the rows of ``pid`` are stored now (its head's, else its alias row's)."""
    if pid in snap.heads:
        return snap.heads[pid][0]
    if pid in snap.aliases:
        return snap.aliases[pid][0]
    return None


def profiles_to_load(batch: StoreBatch, snap: Snapshot, ttl: int) -> dict[str, str]:
    """Profiles (ID -> region they are stored in) whose every row planning must see.

    Those whose rows change key or region: both sides of a merge, profiles moved to
    another region, heads whose home differs from where they are stored. With a TTL also
    every changed head whose anonymous verdict may change: all but known profiles that
    lose no record and no identifier.
    """
    wanted: set[str] = set()
    for a, s in batch.reassign:
        wanted.update((a, s))
    wanted.update(p for p, _ in batch.regions)
    for h in batch.heads:
        region = old_region(snap, h.profile_id)
        if region is not None and region != h.region:
            wanted.add(h.profile_id)
    if ttl > 0:
        losing: set[str] = set()  # profiles losing a record or an identifier
        for key in [*batch.deleted_records, *(k for _, k in batch.unlinked)]:
            if key in snap.records:
                losing.add(snap.records[key].profile_id)
        for r in batch.records:
            row = snap.records.get(r.record_key)
            if row is not None and row.profile_id != r.profile_id:
                losing.add(row.profile_id)
        for h in batch.heads:
            head = snap.heads.get(h.profile_id)
            if head is None or head[2] != KNOWN or h.profile_id in losing:
                wanted.add(h.profile_id)
    return {p: r for p in sorted(wanted) if (r := old_region(snap, p)) is not None}


@dataclass(slots=True)
class _Rec:
    region: str
    profile_id: str
    last_seen: float
    doc: bytes | None
    idx: dict[str, bool]
    written: bool = False
    identifiers: Iterable[str] = ()


def _is_known(identifiers: Iterable[str], shareable: frozenset[str]) -> bool:
    for key in identifiers:
        t = identifier_type(key)
        if t not in shareable and t.split(":", 1)[0] not in shareable:
            return True
    return False


def _idx_blob(idx: dict[str, bool]) -> bytes:
    return orjson.dumps(idx, option=orjson.OPT_SORT_KEYS)


class _Planner:
    """One batch's simulation and diff (see the module docstring)."""

    def __init__(self, batch: StoreBatch, snap: Snapshot, regions: frozenset[str], ts: int,
                 ttl: int, shareable: frozenset[str],
                 new_change_id: Callable[[], tuple[int, object]],
                 new_log_id: Callable[[uuid.UUID | None], uuid.UUID], log_ttl: int) -> None:
        self.batch, self.snap, self.regions, self.ts = batch, snap, regions, ts
        self.ttl, self.shareable, self.new_change_id = ttl, shareable, new_change_id
        self.new_log_id, self.log_ttl = new_log_id, log_ttl
        self.out: dict[str, list[Mutation]] = {}
        self.heads: dict[str, tuple[str, float, int] | None] = dict(snap.heads)
        self.aliases: dict[str, str | None] = {a: t for a, (_, t) in snap.aliases.items()}
        self.records: dict[str, _Rec | None] = {
            k: _Rec(r.region, r.profile_id, r.last_seen, r.doc, dict(r.idx))
            for k, r in snap.records.items()}
        self.judged: set[str] = set()
        self.old_verdict: dict[str, int] = {p: h[2] for p, h in snap.heads.items()}

    # ------------------------------------------------------------------ simulation

    def simulate(self) -> None:
        b = self.batch
        erased = self.snap.erasure.ids
        if erased:  # first: alias rows naming an erased ID, as the alias or as the target
            for alias, target in self.aliases.items():
                if alias in erased or target in erased:
                    self.aliases[alias] = None
        for absorbed, survivor in b.reassign:
            for rec in self.records.values():
                if rec is not None and rec.profile_id == absorbed:
                    rec.profile_id = survivor
            for alias, target in self.aliases.items():
                if target == absorbed:
                    self.aliases[alias] = survivor
            self.heads[absorbed] = None
        for pid, region in b.regions:
            for rec in self.records.values():
                if rec is not None and rec.profile_id == pid:
                    rec.region = region
        for pid in b.deleted_profiles:
            self.heads[pid] = None
        for key in b.deleted_records:
            self.records[key] = None
        for ident, key in b.unlinked:
            rec = self.records.get(key)
            if rec is not None:
                rec.idx.pop(ident, None)
        for alias in b.removed_aliases:
            self.aliases[alias] = None
        for alias, target in b.aliases.items():
            self.aliases[alias] = target
            self.heads[alias] = None
        for h in b.heads:
            self.heads[h.profile_id] = (h.region, h.updated_at, UNJUDGED)
        for r in b.records:
            old = self.records.get(r.record_key)
            self.records[r.record_key] = _Rec(
                r.home_region, r.profile_id, r.last_seen, dump_record(r),
                old.idx if old is not None else {}, written=True, identifiers=r.identifiers)
        for ident, key, linked in b.identifier_links:
            rec = self.records.get(key)
            if rec is not None:  # a link to a record stored nowhere has no region: dropped
                rec.idx[ident] = linked
        self._judge()

    def _judge(self) -> None:
        """The anonymous verdict of every head of the batch (with a TTL configured)."""
        if self.ttl <= 0:
            return
        members: dict[str, list[_Rec]] = {}
        for rec in self.records.values():
            if rec is not None:
                members.setdefault(rec.profile_id, []).append(rec)
        for h in self.batch.heads:
            pid = h.profile_id
            old = self.snap.heads.get(pid)
            if pid in self.snap.loaded or old_region(self.snap, pid) is None:
                recs = members.get(pid, [])
                anonymous = bool(recs) and not any(
                    _is_known(self._identifiers(r), self.shareable) for r in recs)
                verdict = ANONYMOUS if anonymous else KNOWN
                self.judged.add(pid)
            else:
                verdict = old[2] if old is not None else KNOWN
            self.heads[pid] = (h.region, h.updated_at, verdict)

    @staticmethod
    def _identifiers(rec: _Rec) -> Iterable[str]:
        if rec.written:
            return rec.identifiers
        if rec.doc is None:
            raise BackendError("profile store: write: a record of a profile being judged "
                               "anonymous was not read in full (internal error)")
        return orjson.loads(rec.doc)["identifiers"].keys()

    # ------------------------------------------------------------------ placement

    def _live(self, pid: str) -> str:
        for _ in range(3):  # aliases point one hop to a live ID; tolerate a stale chain
            target = self.aliases.get(pid)
            if target is None:
                return pid
            pid = target
        return pid

    def home(self, pid: str) -> str | None:
        """Home region of the live profile ``pid`` resolves to after the batch."""
        live = self._live(pid)
        head = self.heads.get(live)
        if head is not None:
            return head[0]
        head = self.heads.get(pid)
        return head[0] if head is not None else None

    def ttl_of(self, live: str) -> int:
        head = self.heads.get(live)
        if self.ttl > 0 and head is not None and head[2] == ANONYMOUS:
            return self.ttl
        return 0

    def rewrite_all(self, live: str) -> bool:
        """Every row of ``live`` is written again (its TTL changes or must be renewed)."""
        if live not in self.judged:
            return False
        head = self.heads.get(live)
        return (head is not None and head[2] == ANONYMOUS) or \
            self.old_verdict.get(live) == ANONYMOUS

    def emit(self, region: str, code: str, *values: object) -> None:
        if region not in self.regions:
            raise ResidencyError(
                f"profile store: write: region {region!r} is not served by this store "
                f"(serves {sorted(self.regions)})")
        self.out.setdefault(region, []).append((code, values))

    # ------------------------------------------------------------------ diff

    def diff(self) -> dict[str, list[Mutation]]:
        self._diff_heads()
        self._diff_aliases()
        self._diff_records()
        self._diff_history()
        self._outbox()
        diff_segments(self.batch, self.snap.memberships, self.snap.segment_log_last,
                      self.regions, self.ts, self.emit, self.ttl_of, self.rewrite_all,
                      self.new_log_id, self.log_ttl, self.snap.erasure.ids)
        self._erase_logs()
        return self.out

    def _diff_heads(self) -> None:
        ts, written = self.ts, {h.profile_id for h in self.batch.heads}
        for pid in sorted(set(self.snap.heads) | set(self.heads)):
            old, new = self.snap.heads.get(pid), self.heads.get(pid)
            if new is None:
                if old is not None:
                    self.emit(old[0], q.DEL_HEAD, ts, old[0], pid)
                continue
            moved = old is not None and old[0] != new[0]
            if moved:
                self.emit(old[0], q.DEL_HEAD, ts, old[0], pid)
            if pid in written or moved or old is None or old[2] != new[2] or \
                    self.rewrite_all(pid):
                self.emit(new[0], q.PUT_HEAD, self.ttl_of(pid), ts, new[1], new[2], new[0], pid)

    def _diff_aliases(self) -> None:
        ts = self.ts
        for alias in sorted(set(self.snap.aliases) | set(self.aliases)):
            old = self.snap.aliases.get(alias)
            target = self.aliases.get(alias)
            if target is None:
                if old is not None:
                    self.emit(old[0], q.DEL_ALIAS, ts, old[0], alias)
                    self.emit(old[0], q.DEL_LINK, ts, old[0], old[1], "a", alias)
                continue
            live = self._live(target)
            region = self.home(target) or (old[0] if old is not None else None)
            if region is None:
                continue  # an alias of a profile stored nowhere cannot be placed
            if old is not None and (old[0], old[1]) == (region, target) and \
                    not self.rewrite_all(live):
                continue
            if old is not None and old[0] != region:
                self.emit(old[0], q.DEL_ALIAS, ts, old[0], alias)
            if old is not None and (old[0], old[1]) != (region, target):
                self.emit(old[0], q.DEL_LINK, ts, old[0], old[1], "a", alias)
            ttl = self.ttl_of(live)
            self.emit(region, q.PUT_ALIAS, ttl, ts, target, region, alias)
            self.emit(region, q.PUT_LINK, region, target, "a", alias, ttl, ts)

    def _diff_records(self) -> None:
        ts = self.ts
        for key in sorted(set(self.snap.records) | set(self.records)):
            old, new = self.snap.records.get(key), self.records.get(key)
            if new is None:
                if old is not None:
                    self.emit(old.region, q.DEL_RECORD, ts, old.region, key)
                    self.emit(old.region, q.DEL_LINK, ts, old.region, old.profile_id, "r", key)
                    for ident in old.idx:
                        self.emit(old.region, q.DEL_IDENT, ts, old.region, ident, key)
                continue
            rewrite = self.rewrite_all(new.profile_id)
            ttl = self.ttl_of(new.profile_id)
            region_moved = old is not None and old.region != new.region
            moved = old is None or (old.region, old.profile_id) != (new.region, new.profile_id)
            old_idx = old.idx if old is not None else {}
            if region_moved:
                self.emit(old.region, q.DEL_RECORD, ts, old.region, key)
            if new.written or moved or rewrite:
                if new.doc is None:
                    raise BackendError("profile store: write: a record to move was not read "
                                       "in full (internal error)")
                self.emit(new.region, q.PUT_RECORD, new.region, key, new.profile_id,
                          new.last_seen, new.doc, _idx_blob(new.idx), ttl, ts)
            elif new.idx != old_idx:
                self.emit(new.region, q.PUT_RECORD_IDX, ttl, ts, _idx_blob(new.idx),
                          new.region, key)
            if moved and old is not None:
                self.emit(old.region, q.DEL_LINK, ts, old.region, old.profile_id, "r", key)
            if moved or rewrite:
                self.emit(new.region, q.PUT_LINK, new.region, new.profile_id, "r", key, ttl, ts)
            for ident, linked in sorted(new.idx.items()):
                if region_moved or rewrite or ident not in old_idx or old_idx[ident] != linked:
                    self.emit(new.region, q.PUT_IDENT, new.region, ident, key, linked, ttl, ts)
            for ident in sorted(old_idx):
                if region_moved or ident not in new.idx:
                    self.emit(old.region, q.DEL_IDENT, ts, old.region, ident, key)

    def _diff_history(self) -> None:
        ts = self.ts
        erased = {(region, pid, row.seq, row.kind, row.subject)
                  for region, pid, row in self.snap.erasure.history}
        written: set[tuple[str, str, int, str, str]] = set()
        rows: dict[tuple[str, int, str, str], tuple[bytes, float]] = {}
        for h in self.batch.history:
            related = encode_related(h)
            for pid in dict.fromkeys([h.profile_id, *h.related_ids]):
                rows.setdefault((pid, h.seq, h.kind, h.profile_id), (related, h.at))
        loaded: set[tuple[str, int, str, str]] = set()
        for pid, (region, stored) in sorted(self.snap.history.items()):
            new_region = self.home(pid) or region
            live = self._live(pid)
            rewrite = self.rewrite_all(live)
            for row in stored:
                k = (pid, row.seq, row.kind, row.subject)
                if (region, *k) in erased:
                    continue  # erased first (below); a row of the batch is written again
                loaded.add(k)
                rows.pop(k, None)  # stored history is kept as it is (insert-or-ignore)
                if new_region != region:
                    self.emit(region, q.DEL_HIST, ts, region, pid, row.seq, row.kind,
                              row.subject)
                if new_region != region or rewrite:
                    self.emit(new_region, q.PUT_HIST, new_region, pid, row.seq, row.kind,
                              row.subject, row.related, row.at, self.ttl_of(live), ts)
        for (pid, seq, kind, subject), (related, at) in sorted(rows.items()):
            region = self.home(pid) or old_region(self.snap, pid) or self.home(subject) or \
                old_region(self.snap, subject)
            if region is None:
                continue  # no profile it names is stored anywhere: nowhere to keep it
            self.emit(region, q.PUT_HIST, region, pid, seq, kind, subject, related, at,
                      self.ttl_of(self._live(pid)), ts)
            written.add((region, pid, seq, kind, subject))
        for key in sorted(erased - written):
            self.emit(key[0], q.DEL_HIST, ts, *key)

    def _outbox(self) -> None:
        for c in self.batch.changes:
            if c.region not in self.regions:
                continue  # like the SQLite outbox: never published by a store of these regions
            bucket, change_id = self.new_change_id()
            doc = dump_change(c)
            self.emit(c.region, q.PUT_OUTBOX, c.region, bucket, change_id, doc, self.ts)

    def _erase_logs(self) -> None:
        """The change-log, outbox and processed-event rows of the erasure (module
        docstring): deleted, or for a change-log row holding other changes too, rewritten
        without the erased ones, with the TTL it had left."""
        erasure, ts = self.snap.erasure, self.ts
        needles = json_needles(erasure.ids)
        for region, bucket, log_id, n, blob, ttl in erasure.log:
            result = erase_from_log(blob, erasure.ids, needles)
            if result is None:
                continue
            changes, _left = result
            if changes is None:
                self.emit(region, q.DEL_SEGMENT_LOG, ts, region, bucket, log_id)
            else:
                self.emit(region, q.PUT_SEGMENT_LOG, region, bucket, log_id, n, changes, ttl,
                          ts)
        for region, bucket, change_id in erasure.outbox:
            self.emit(region, q.DEL_OUTBOX, ts, region, bucket, change_id)
        if erasure.event_hashes:
            # global rows, journaled with a region's part (:data:`.schema.GLOBAL_MUTATIONS`)
            region = min(self.out) if self.out else min(self.regions)
            for h in erasure.event_hashes:
                self.emit(region, q.DEL_PROCESSED, ts, h)


def plan_batch(batch: StoreBatch, snap: Snapshot, regions: frozenset[str], ts: int, ttl: int,
               shareable: frozenset[str], new_change_id: Callable[[], tuple[int, object]],
               new_log_id: Callable[[uuid.UUID | None], uuid.UUID] | None = None,
               log_ttl: int = 0) -> dict[str, list[Mutation]]:
    """Mutations per region that turn the stored state in ``snap`` into the state after
    ``batch``, all at write timestamp ``ts`` (microseconds).

    ``snap`` must hold every stored row ``ids_of(batch)`` names and, in full, every
    profile :func:`profiles_to_load` returns, the segment rows
    (:attr:`Snapshot.memberships`, :attr:`Snapshot.segment_log_last`) and, when the batch
    erases, the rows naming the erased IDs (:attr:`Snapshot.erasure`, and the alias rows
    naming them in :attr:`Snapshot.aliases`). ``new_change_id``
    gives the outbox (hour bucket, timeuuid) of the next change, in order;
    ``new_log_id(floor)`` the time UUID of a change-log row above ``floor`` (default: a
    fresh :class:`.clock.Clock`'s); change-log rows live ``log_ttl`` seconds (0: for ever).
    Raises ResidencyError when a row would land in a region outside ``regions``.
    """
    if new_log_id is None:
        new_log_id = Clock().next_uuid
    planner = _Planner(batch, snap, regions, ts, ttl, shareable, new_change_id, new_log_id,
                       log_ttl)
    planner.simulate()
    return planner.diff()
