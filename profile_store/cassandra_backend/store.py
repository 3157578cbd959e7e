"""Cassandra profile store: one keyspace per region, replicated only to that region's
data centres. :class:`CassandraProfileStore` implements the seam by composing the parts:
the schema (:mod:`.schema`), routing, consistency and the statements' runner
(:mod:`.connection`), the planning of a batch (:mod:`.plan`), the redo journal that writes
it atomically and recovers interrupted writes (:mod:`.journal`), the change outbox
(:mod:`.outbox`), and write timestamps and time UUIDs (:mod:`.clock`).

Residency. A store opened for regions S creates (when writable) and uses only the
keyspaces of S plus ``{prefix}_global``, which holds no personal data. Writing a head,
a record or a move of a region outside S raises :class:`ResidencyError` before anything
is read or written; reads look only into the keyspaces of S, so other regions' profiles
are not found. Each region's statements are coordinated in that region's data centre, so
its rows never pass through another data centre's nodes: not as data, hints or batch
log. A region keyspace whose replication differs from ``region_datacenters`` is refused
at open (ConfigError): the store never writes where the settings say rows may not be.

Cross-region merges. The engine gives a merged profile the strictest home region
(``regions.regions`` order) and sends ``StoreBatch.regions`` moves; the store then reads
every row of each moved or merged profile (records, their identifier index rows, the
membership and alias links, the alias rows, the history of its ID and of its aliases)
and, in the same atomic write, writes them to the new region's keyspace and deletes them
from the old one. So a profile's rows are in exactly one region keyspace, its home.

Finding rows. Profile IDs and record keys do not say their region, and no index of them
may live outside the region keyspaces (they are personal data), so point reads ask every
served region at once (in parallel, one round trip). A store serving several regions
thus sends a looked-up key to each of their data centres (nothing is stored there); a
store serving only the EU never contacts another region's data centre. A region that
cannot answer makes the read fail with BackendError naming it, unless the answer is
complete without it (every requested ID or key was found elsewhere: each lives in one
region only).

Atomicity (what :meth:`write` guarantees). The stored rows a batch touches are read and
the batch is planned in memory (:mod:`.plan`) into the final rows to write and delete,
all with one write timestamp; the plan is then written through the redo journal
(:mod:`.journal`, whose docstring states the guarantee): a batch lands entirely or not at
all, and a writable store finishes or discards an interrupted one before its first
operation and before the next one after a write failed.

Erasure (a privacy forget: ``StoreBatch.erased_profiles`` and ``erased_event_ids``). The
rows naming the erased IDs are found in every served region (:mod:`.erasure`, which says
where each kind lives and what finding them costs: a scan of the retained change log and
of the outbox among them), planned with the batch as deletions (and change-log rewrites)
that precede its upserts, and journaled with it, so the erasure lands with the batch or
not at all and a crash mid-erasure is finished by recovery. Erasing a profile of a region
the store does not serve raises ResidencyError. Deleted rows are gone for CQL at once but
stay on disk as tombstoned SSTable content until compaction after ``gc_grace_seconds``
(:mod:`.erasure`, :mod:`.schema`).

Anonymous profiles (``anonymous_ttl_seconds`` > 0): see :mod:`.plan`. Which identifier
kinds do not identify a person is ``cassandra.anonymous_identifier_types`` (by default
the types the default linking rules call shareable: device, idfa, gaid, cookie).

Outbox. Change notifications (profile changes and segment membership changes) are rows
of each region's ``outbox``, written in the batch they describe; :meth:`pending_changes`
and :meth:`ack_changes` are :mod:`.outbox`'s.

Segments. Membership rows, their indexes (members by segment, deadlines by hour), the
change log and build rows live in the profile's home region keyspace and are planned and
journaled with the profile rows of the batch (:mod:`.segments`); the reads are
:mod:`.segment_reads`'s. Definitions are in the global keyspace
(:mod:`.segment_catalog`: the store reads them, a
:class:`~.segment_catalog.CassandraSegmentCatalog` changes them). Writing a membership (or
removing one, or a build row) of a region outside S raises ResidencyError like a head;
segment changes of such a region are neither logged nor put in the outbox (as the outbox
always did).

Driver errors. The class declares the driver's exception classes and how to describe one
(:func:`.connection.describe`: no keys or values) at the seam's boundary
(:class:`~idgraph.core.errors.DriverErrorBoundary`), so a driver error raised in a seam
method (or :meth:`recover`) is a BackendError naming the method. A statement of a region
that fails is a BackendError naming the operation and the region (:mod:`.connection`);
opening the store names what failed (``open``, ``create keyspace``, ...). Importing this
module imports the driver (ConfigError naming the extra to install when it is missing);
the package imports it on first use only.

Thread safety: reads may run from many threads (the driver session is thread safe);
writes and recovery are serialised by the journal's lock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from idgraph.core.errors import BackendError, ResidencyError, translate_driver_errors
from idgraph.profile_store.base import (
    IdentifierMatch,
    ProfileChange,
    ProfileEvent,
    ProfileHead,
    ProfileStore,
    StoreBatch,
    StoredProfile,
    StoredRecord,
    decode_event,
    record_events,
)
from idgraph.profile_store.cassandra_backend import schema as q
from idgraph.profile_store.cassandra_backend.clock import Clock
from idgraph.profile_store.cassandra_backend.connection import (
    NamedCall,
    Statements,
    backend_error,
    chunks,
    connect,
    describe,
    driver_error_types,
    ensure_schema,
    global_replication,
)
from idgraph.profile_store.cassandra_backend.erasure import ErasureReads
from idgraph.profile_store.cassandra_backend.journal import Journal
from idgraph.profile_store.cassandra_backend.outbox import Outbox
from idgraph.profile_store.cassandra_backend.plan import (
    HistoryRow,
    Snapshot,
    StoredRow,
    erased_ids,
    ids_of,
    log_regions,
    membership_ids,
    plan_batch,
    profiles_to_load,
)
from idgraph.profile_store.cassandra_backend.segment_catalog import read_catalog, read_versions
from idgraph.profile_store.cassandra_backend.segment_reads import SegmentReads
from idgraph.profile_store.cassandra_backend.settings import CassandraSettings
from idgraph.profile_store.segment_state import (
    Membership,
    SegmentBuild,
    SegmentChange,
    SegmentDefinition,
)

REGION_HINTS = 200_000  # profile IDs whose region a reader remembers
IN_CHUNK = 100  # keys per IN query: bounds the coordinator's work per request


def _event_hash(event_id: str) -> bytes:
    """What ``processed_events`` keeps: event IDs may embed an email address."""
    return hashlib.sha256(event_id.encode()).digest()[:16]


def _record_from_doc(doc: bytes, profile_id: str, home_region: str) -> StoredRecord:
    d = orjson.loads(doc)
    return StoredRecord(
        record_key=d["record_key"], source=d["source"], source_record_id=d["source_record_id"],
        region=d["region"], profile_id=profile_id,
        identifiers={k: (v[0], v[1], v[2]) for k, v in d["identifiers"].items()},
        attributes={k: (v[0], v[1]) for k, v in d["attributes"].items()},
        consent={k: (v[0], v[1]) for k, v in d["consent"].items()},
        event_count=d["event_count"], first_seen=d["first_seen"], last_seen=d["last_seen"],
        rejected=d.get("rejected", {}), home_region=home_region, events=record_events(d),
    )


class CassandraProfileStore(ProfileStore):
    """Profile store in per-region Cassandra keyspaces, restricted to ``regions``."""

    driver_errors = driver_error_types()
    describe_driver_error = staticmethod(describe)

    def __init__(self, settings: CassandraSettings, regions: Iterable[str],
                 readonly: bool = False) -> None:
        """Connect, and create (writable) or check the keyspaces of ``regions``.

        Raises ResidencyError for no region, ConfigError for settings that cannot work
        (naming the field), BackendError when the cluster cannot be reached or, read-only,
        when a keyspace does not exist yet.
        """
        self.regions = frozenset(regions)
        if not self.regions:
            raise ResidencyError("a profile store must be opened for at least one region")
        self.settings = settings
        self._readonly = readonly
        self._ks = {r: q.region_keyspace(settings.keyspace_prefix, r) for r in self.regions}
        self._global_ks = q.global_keyspace(settings.keyspace_prefix)
        self._ttl = settings.anonymous_ttl_seconds
        self._shareable = frozenset(settings.anonymous_identifier_types)
        self._region_hints: dict[str, str] = {}  # profile ID -> region it was last found in
        self._clock = Clock()
        self._cluster, self._session = connect(settings, sorted(self.regions))
        self._db = Statements(self._session, self.keyspace, settings.concurrency)
        self._journal = Journal(self._db, self.regions, self._clock.next_ts,
                                writable=not readonly)
        self._outbox = Outbox(self._db, self.regions, self._clock.next_uuid,
                              writable=not readonly)
        self._segments = SegmentReads(self._db, self.regions, writable=not readonly,
                                      log_ttl=settings.segment_log_ttl_seconds)
        self._erasure = ErasureReads(self._db, self.regions, settings.segment_log_ttl_seconds)
        try:
            self._ensure_schema()
        except BaseException as exc:
            self._cluster.shutdown()
            if isinstance(exc, self.driver_errors):  # not a seam method: no boundary here
                raise backend_error("open", None, exc) from exc
            raise

    @property
    def session(self) -> Any:
        """The driver session (diagnostics and tests: request listeners, tracing)."""
        return self._session

    def keyspace(self, region: str | None) -> str:
        """Keyspace of a served region (None: the global one)."""
        return self._global_ks if region is None else self._ks[region]

    # ------------------------------------------------------------------ schema

    def _replication_of(self, region: str | None) -> dict[str, int]:
        if region is None:
            return global_replication(self.settings)
        return dict(self.settings.region_datacenters[region])

    def _ensure_schema(self) -> None:
        targets = [(r, self._ks[r], q.REGION_DDL, self._replication_of(r))
                   for r in sorted(self.regions)]
        targets.append((None, self._global_ks, q.GLOBAL_DDL, self._replication_of(None)))
        ensure_schema(self._cluster, self._session, targets, self._readonly)
        if not self._readonly:
            self._outbox.open()
            self._segments.open()

    # ------------------------------------------------------------------ reading regions

    def _in_calls(self, name: str, keys: Iterable[str],
                  regions: Iterable[str] | None = None) -> list[NamedCall]:
        """Calls of IN query ``name`` for ``keys`` (chunked) in ``regions`` (default: every
        served region)."""
        keys = sorted(set(keys))
        return [(r, name, (r, chunk)) for r in sorted(regions or self.regions)
                for chunk in chunks(keys, IN_CHUNK)]

    def _tolerant(self, calls: list[NamedCall], operation: str,
                  key_of: Any, wanted: Iterable[str]) -> list[tuple[str, tuple]]:
        """(region, row) of every row of ``calls`` that answered; raises only when a region
        failed and some of ``wanted`` was not found in the others."""
        results = self._db.run(calls, operation, strict=False)
        rows: list[tuple[str, tuple]] = []
        for (region, _, _), res in zip(calls, results, strict=True):
            if not isinstance(res, BaseException):
                rows.extend((region, row) for row in res)
        found = {key_of(row) for _, row in rows}
        if not set(wanted) <= found:
            for (region, _, _), res in zip(calls, results, strict=True):
                if isinstance(res, BaseException):
                    raise self._db.error(operation, region, res)
        return rows

    # ------------------------------------------------------------------ writes

    def _require_writable(self) -> None:
        if self._readonly:
            raise BackendError("profile store: opened read-only")

    def _check_region(self, region: str, operation: str) -> None:
        if region not in self.regions:
            raise ResidencyError(
                f"profile store: {operation}: region {region!r} is not served by this store "
                f"(serves {sorted(self.regions)})")

    def fence(self, token: int | None) -> None:
        """Commits carry ``token`` through the journal's fence (:mod:`.journal`)."""
        self._require_writable()
        with self._journal.lock:
            self._journal.fence(token)

    def write(self, batch: StoreBatch) -> None:
        """Apply ``batch`` atomically through the redo journal (module docstring)."""
        self._require_writable()
        for h in batch.heads:
            self._check_region(h.region, "write profile")
        for _, region in batch.regions:
            self._check_region(region, "move profile")
        for r in batch.records:
            self._check_region(r.home_region, "write record")
        for m in batch.memberships:
            self._check_region(m.region, "write membership")
        for region, _, _ in batch.removed_memberships:
            self._check_region(region, "remove membership")
        for b in batch.segment_builds:
            self._check_region(b.region, "write segment build")
        for region, _ in batch.erased_profiles:
            self._check_region(region, "erase profile")
        with self._journal.lock:
            self._journal.recover_if_needed()
            ts = self._clock.next_ts()
            snap = self._snapshot(batch)
            plan = plan_batch(batch, snap, self.regions, ts, self._ttl, self._shareable,
                              self._outbox.new_change, self._clock.next_uuid,
                              self.settings.segment_log_ttl_seconds)
            events = sorted({_event_hash(e) for e in batch.processed_event_ids})
            if not plan:
                self._journal.put_processed(events, ts)
                return
            self._journal.write(self._clock.next_uuid(), plan, events)

    # ------------------------------------------------------------------ planning reads

    def _snapshot(self, batch: StoreBatch) -> Snapshot:
        """Read the stored rows ``batch`` touches (every served region) into a Snapshot."""
        pids, keys = ids_of(batch)
        snap = Snapshot()
        id_calls = self._in_calls("ids_in", pids)
        rec_calls = self._in_calls("record_locations_in", keys)
        mem_calls = self._segments.membership_calls(membership_ids(batch))
        log_calls = self._segments.log_last_calls(log_regions(batch, self.regions))
        results = self._db.run(id_calls + rec_calls + mem_calls + log_calls,
                               "write (read stored rows)")
        n_ids, n_recs, n_mems = len(id_calls), len(rec_calls), len(mem_calls)
        snap.memberships = self._segments.stored_memberships(
            mem_calls, results[n_ids + n_recs:n_ids + n_recs + n_mems])
        snap.segment_log_last = self._segments.log_last(
            log_calls, results[n_ids + n_recs + n_mems:])
        for (region, _, _), rows in zip(id_calls, results[:n_ids], strict=True):
            for pid, updated_at, alias_of, anonymous in rows:
                if updated_at is not None:
                    snap.heads[pid] = (region, updated_at, -1 if anonymous is None else anonymous)
                if alias_of is not None:
                    snap.aliases[pid] = (region, alias_of)
        for (region, _, _), rows in zip(rec_calls, results[n_ids:n_ids + n_recs], strict=True):
            for key, pid, idx in rows:
                snap.records[key] = StoredRow(region, pid, orjson.loads(idx) if idx else {})
        if batch.erased_profiles or batch.erased_event_ids:
            snap.erasure, aliases = self._erasure.read(
                erased_ids(batch), sorted({_event_hash(e) for e in batch.erased_event_ids}))
            for alias, row in aliases.items():  # alias rows naming an erased ID as target
                snap.aliases.setdefault(alias, row)
        wanted = profiles_to_load(batch, snap, self._ttl)
        if wanted:
            self._load_profiles(snap, wanted)
        return snap

    def _load_profiles(self, snap: Snapshot, wanted: dict[str, str]) -> None:
        """Read every row of the ``wanted`` profiles (ID -> region) into ``snap``."""
        items = sorted(wanted.items())
        calls = [(r, "links", (r, pid)) for pid, r in items]
        calls += [(r, "history", (r, pid)) for pid, r in items]
        results = self._db.run(calls, "write (read profiles)")
        members: dict[str, list[str]] = {}
        alias_calls = []
        for (pid, region), links, history in zip(items, results[:len(items)],
                                                 results[len(items):], strict=True):
            snap.history[pid] = (region, [HistoryRow(*row) for row in history])
            for kind, key in links:
                if kind == "r":
                    members.setdefault(region, []).append(key)
                else:
                    snap.aliases.setdefault(key, (region, pid))
                    alias_calls.append((region, "history", (region, key)))
            snap.loaded.add(pid)
        rec_calls = [c for region, keys in sorted(members.items())
                     for c in self._in_calls("records_in", keys, [region])]
        # with a TTL, a profile's membership rows are rewritten with its other rows
        mem_calls = self._segments.membership_calls(wanted) if self._ttl > 0 else []
        results = self._db.run(rec_calls + alias_calls + mem_calls, "write (read profiles)")
        n_recs, n_aliases = len(rec_calls), len(alias_calls)
        for key, row in self._segments.stored_memberships(
                mem_calls, results[n_recs + n_aliases:]).items():
            snap.memberships.setdefault(key, row)
        for (region, _, _), rows in zip(rec_calls, results[:len(rec_calls)], strict=True):
            for key, pid, last_seen, doc, idx in rows:
                snap.records[key] = StoredRow(region, pid, orjson.loads(idx) if idx else {},
                                              doc, last_seen)
        for (region, _, (_, alias)), rows in zip(
                alias_calls, results[n_recs:n_recs + n_aliases], strict=True):
            snap.history.setdefault(alias, (region, [HistoryRow(*row) for row in rows]))

    # ------------------------------------------------------------------ journal, outbox

    def recover(self) -> int:
        """Finish or discard the batches an interrupted write left (:mod:`.journal`);
        returns how many were found. Runs by itself before a writable store's first
        operation and after a failed write."""
        self._require_writable()
        return self._journal.recover()

    def pending_changes(self, limit: int) -> list[ProfileChange | SegmentChange]:
        self._journal.recover_if_needed()
        return self._outbox.pending(limit)

    def ack_changes(self, change_ids: Iterable[str]) -> None:
        self._require_writable()
        self._journal.recover_if_needed()
        self._outbox.ack(change_ids)

    # ------------------------------------------------------------------ reads

    def unprocessed(self, event_ids: Iterable[str]) -> set[str]:
        self._journal.recover_if_needed()
        by_hash = {_event_hash(e): e for e in dict.fromkeys(event_ids)}
        calls = [(None, "processed_in", (chunk,)) for chunk in chunks(sorted(by_hash),
                                                                       IN_CHUNK)]
        seen = {row[0] for rows in self._db.run(calls, "read processed events") for row in rows}
        return {e for h, e in by_hash.items() if h not in seen}

    def _locate_ids(self, ids: list[str], operation: str) -> tuple[dict, dict]:
        """(heads: ID -> (region, updated_at), aliases: ID -> (region, live ID))."""
        calls = self._in_calls("ids_in", ids)
        rows = self._tolerant(calls, operation, lambda row: row[0], ids)
        heads: dict[str, tuple[str, float]] = {}
        aliases: dict[str, tuple[str, str]] = {}
        for region, (pid, updated_at, alias_of, _) in rows:
            if alias_of is not None:
                aliases[pid] = (region, alias_of)
            if updated_at is not None:
                heads[pid] = (region, updated_at)
        return heads, aliases

    def get_profile(self, profile_id: str) -> StoredProfile | None:
        self._journal.recover_if_needed()
        return self._read_profile(profile_id, follow_alias=True)

    def _read_profile(self, pid: str, follow_alias: bool) -> StoredProfile | None:
        # one round trip asks for the ID's row and its links at once (the links of a live
        # ID are then at hand), a second reads its records. The region where the ID was
        # last seen is asked first: an ID lives in one region, so finding it there is the
        # answer; not finding it (it moved, or went) asks every region
        hint = self._region_hints.get(pid)
        found = self._find_id(pid, [hint]) if hint is not None else None
        if found is None:
            found = self._find_id(pid, sorted(self.regions))
        head, alias, links, failed = found
        if alias is not None and follow_alias:  # an alias first, as in the SQLite store
            return self._read_profile(alias, follow_alias=False)
        if head is None:
            if failed is not None:  # it may live in the region that did not answer
                raise self._db.error("read profile", *failed)
            self._region_hints.pop(pid, None)
            return None
        region, updated_at = head
        if isinstance(links, BaseException):
            raise self._db.error("read profile", region, links)
        keys = [key for kind, key in links if kind == "r"]
        alias_ids = sorted(key for kind, key in links if kind == "a")
        rows = [row for res in self._db.run(self._in_calls("records_in", keys, [region]),
                                            "read profile") for row in res]
        records = [_record_from_doc(doc, pid, region)
                   for _, rpid, _, doc, _ in rows if rpid == pid and doc is not None]
        records.sort(key=lambda r: (r.first_seen, r.record_key))
        self._hint(pid, region)
        return StoredProfile(ProfileHead(pid, region, updated_at), alias_ids, records)

    def _find_id(self, pid: str, regions: list[str]) -> tuple | None:
        """(head (region, updated_at) or None, alias target or None, the links of the
        head's region, a failure (region, exception) or None) from ``regions``; None when
        only some regions were asked and the ID is not in them."""
        calls = [(r, "id", (r, pid)) for r in regions]
        calls += [(r, "links", (r, pid)) for r in regions]
        results = self._db.run(calls, "read profile", strict=False)
        head, alias, failed = None, None, None
        for region, res in zip(regions, results[:len(regions)], strict=True):
            if isinstance(res, BaseException):
                failed = failed or (region, res)
            elif res:
                updated_at, alias_of = res[0]
                if alias_of is not None:
                    alias = alias_of
                    self._hint(alias_of, region)  # alias rows live in their target's region
                if updated_at is not None:
                    head = (region, updated_at)
        if head is None and alias is None and len(regions) < len(self.regions):
            return None
        links = results[len(regions) + regions.index(head[0])] if head else []
        return head, alias, links, failed

    def _hint(self, pid: str, region: str) -> None:
        """Remember where ``pid`` was found (bounded: forgotten wholesale when full)."""
        if len(self._region_hints) >= REGION_HINTS:
            self._region_hints.clear()
        self._region_hints[pid] = region

    def lookup(self, identifier_key: str) -> list[IdentifierMatch]:
        self._journal.recover_if_needed()
        regions = sorted(self.regions)
        hits = self._db.run([(r, "identifier", (r, identifier_key)) for r in regions],
                            "lookup")
        rec_calls = []
        linked_of: dict[tuple[str, str], bool] = {}
        for region, rows in zip(regions, hits, strict=True):
            for key, linked in rows:
                linked_of[(region, key)] = bool(linked)
            if rows:
                rec_calls += self._in_calls("record_last_seen_in", [k for k, _ in rows],
                                            [region])
        if not rec_calls:
            return []
        best: dict[tuple[str, str], list] = {}  # (region, profile) -> [last_seen, linked]
        for (region, _, _), rows in zip(rec_calls, self._db.run(rec_calls, "lookup"),
                                        strict=True):
            for key, pid, last_seen in rows:
                entry = best.setdefault((region, pid), [last_seen, False])
                entry[0] = max(entry[0], last_seen)
                entry[1] = entry[1] or linked_of[(region, key)]
        head_calls = [c for region in sorted({r for r, _ in best})
                      for c in self._in_calls("ids_in", [p for r, p in best if r == region],
                                              [region])]
        heads = self._db.run(head_calls, "lookup")
        versions = {(region, pid): updated_at
                    for (region, _, _), rows in zip(head_calls, heads, strict=True)
                    for pid, updated_at, _, _ in rows if updated_at is not None}
        matches = [IdentifierMatch(pid, region, last_seen, linked, versions[(region, pid)])
                   for (region, pid), (last_seen, linked) in best.items()
                   if (region, pid) in versions]
        matches.sort(key=lambda m: (not m.linked, -m.last_seen, m.profile_id))
        for m in matches:
            self._hint(m.profile_id, m.region)
        return matches

    def get_records(self, record_keys: Iterable[str]) -> dict[str, StoredRecord]:
        self._journal.recover_if_needed()
        keys = list(dict.fromkeys(record_keys))
        if not keys:
            return {}
        calls = self._in_calls("records_in", keys)
        rows = self._tolerant(calls, "read records", lambda row: row[0], keys)
        return {key: _record_from_doc(doc, pid, region)
                for region, (key, pid, _, doc, _) in rows if doc is not None}

    def get_heads(self, profile_ids: Iterable[str]) -> dict[str, ProfileHead]:
        self._journal.recover_if_needed()
        ids = list(dict.fromkeys(profile_ids))
        if not ids:
            return {}
        heads, _ = self._locate_ids(ids, "read profiles")
        return {pid: ProfileHead(pid, region, updated_at)
                for pid, (region, updated_at) in heads.items()}

    def _scan(self, name: str, operation: str) -> list[tuple[str, list[tuple]]]:
        regions = sorted(self.regions)
        results = self._db.run([(r, name, None) for r in regions], operation)
        return list(zip(regions, results, strict=True))

    def record_profiles(self) -> dict[str, str]:
        self._journal.recover_if_needed()
        return {key: pid for _, rows in self._scan("scan_records", "scan records")
                for key, pid in rows if pid is not None}

    def history(self, profile_id: str) -> list[ProfileEvent]:
        self._journal.recover_if_needed()
        calls = [(r, "history", (r, profile_id)) for r in sorted(self.regions)]
        rows = self._tolerant(calls, "read history", lambda row: profile_id, [profile_id])
        events = [decode_event(kind, subject, related, at, seq)
                  for _, (seq, kind, subject, related, at) in rows]
        events.sort(key=lambda e: (e.seq, e.kind, e.profile_id))
        return events

    def iter_record_profiles(self) -> Iterator[tuple[str, str, str]]:
        for key, pid in sorted(self.record_profiles().items()):
            source, source_record_id = key.split(":", 1)
            yield source, source_record_id, pid

    def counts(self) -> dict[str, int]:
        """Row counts, as full scans of the served regions (a maintenance figure: slow on
        a large store)."""
        self._journal.recover_if_needed()
        profiles = aliases = 0
        for _, rows in self._scan("scan_profiles", "count profiles"):
            profiles += sum(1 for updated_at, _ in rows if updated_at is not None)
            aliases += sum(1 for _, alias_of in rows if alias_of is not None)
        out = {"profiles": profiles, "aliases": aliases}
        for table in ("records", "identifiers"):
            out[table] = sum(rows[0][0] for _, rows in self._scan(f"count_{table}",
                                                                  f"count {table}"))
        out["processed_events"] = self._db.run([(None, "count_processed", None)],
                                               "count processed events")[0][0][0]
        return out

    def profiles_by_region(self) -> dict[str, int]:
        """Live profiles per served region (regions without any are left out)."""
        self._journal.recover_if_needed()
        out = {}
        for region, rows in self._scan("scan_profiles", "count profiles"):
            n = sum(1 for updated_at, _ in rows if updated_at is not None)
            if n:
                out[region] = n
        return out

    # ------------------------------------------------------------------ segments

    def segment_catalog(self) -> tuple[int, dict[str, SegmentDefinition]]:
        return read_catalog(self._db)

    def segment_versions(self, name: str) -> list[SegmentDefinition]:
        return read_versions(self._db, name)

    def memberships(self, profile_ids: Iterable[str]) -> dict[str, list[Membership]]:
        self._journal.recover_if_needed()
        return self._segments.memberships(profile_ids)

    def segment_members(self, segment: str, after: str = "", limit: int = 1000
                        ) -> list[Membership]:
        self._journal.recover_if_needed()
        return self._segments.segment_members(segment, after, limit)

    def count_segment(self, segment: str) -> dict[str, int]:
        self._journal.recover_if_needed()
        return self._segments.count_segment(segment)

    def due_memberships(self, now: float, limit: int) -> list[Membership]:
        self._journal.recover_if_needed()
        return self._segments.due_memberships(now, limit)

    def segment_log_position(self) -> str:
        """A cursor at the end of the change log now: per served region, its last row
        (:mod:`.segments` describes the format)."""
        self._journal.recover_if_needed()
        return self._segments.segment_log_position()

    def segment_changes_after(self, cursor: str, limit: int
                              ) -> tuple[list[SegmentChange], str]:
        """Changes after ``cursor`` across the served regions, oldest first. The cursor
        holds a position per served region (:mod:`.segments`): one this store did not
        give (malformed, or naming other regions) is a ValueError."""
        self._journal.recover_if_needed()
        return self._segments.segment_changes_after(cursor, limit)

    def segment_log(self, since: float = 0.0, *, segment: str = "", profile_id: str = ""
                    ) -> Iterator[tuple[float, SegmentChange]]:
        """Changes by the time they were logged; the cost of reading them:
        :mod:`.segment_reads`."""
        self._journal.recover_if_needed()
        yield from self._segments.segment_log(since, segment, profile_id)

    def profile_ids_after(self, region: str, after: str, limit: int) -> list[str]:
        """Live profile IDs of ``region`` in token order: a stable total order, not the
        lexicographic one (:mod:`.segment_reads`)."""
        self._journal.recover_if_needed()
        return self._segments.profile_ids_after(region, after, limit)

    def segment_builds(self) -> list[SegmentBuild]:
        self._journal.recover_if_needed()
        return self._segments.segment_builds()

    def close(self) -> None:
        cluster, self._cluster = self._cluster, None
        if cluster is not None:
            cluster.shutdown()


# ``recover`` is public but not on the seam: the same boundary covers it
translate_driver_errors(CassandraProfileStore, ProfileStore.seam_name, ["recover"])
