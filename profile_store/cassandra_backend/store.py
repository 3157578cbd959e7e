"""Cassandra profile store: one keyspace per region, replicated only to that region's
data centres (schema in :mod:`.schema`, routing and consistency in :mod:`.connection`,
the planning of a batch in :mod:`.plan`, the journal codec in :mod:`.journal`).

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

Atomicity (what :meth:`write` guarantees). Cassandra has no multi-partition
transactions, so a batch is written through a redo journal:

1. the stored rows the batch touches are read and the batch is planned in memory
   (:mod:`.plan`) into the final rows to write and delete, all with one write timestamp;
2. a ``pending`` row for the batch (regions touched, hashed event IDs) is written to the
   global ``batches`` table, each touched region's ``meta`` row ``inflight`` is pointed
   at the batch, and each region's part of the plan is written to that region's
   ``journal`` (compressed, in parts);
3. the batch row is set to ``committed``: the commit point, a single-row write;
4. the rows are written (unlogged batches, concurrently), then the processed event IDs;
5. the journal partitions and the batch row are deleted.

Before its first operation, and before the next one after a write failed, a writable
store recovers: it follows the ``inflight`` pointers of its regions; a committed batch's
journals are applied again and its event IDs recorded, a pending one's journals are
discarded. Replaying writes the same cells with the same timestamps, so it is idempotent
and never overwrites a later write. Hence: a batch whose event IDs are recorded as
processed is fully stored, and a batch either lands entirely (at the latest when the
writer next opens or writes) or not at all, before the writer reads or writes anything
else. A crash before the commit point leaves the events unprocessed, so they are
delivered again and applied once. Limits: readers in other processes may see a batch
half-applied until the writer has finished or recovered it (as with Cassandra's own
logged batches); recovering a committed batch needs a store serving all the regions it
touched (it says so with BackendError), and write timestamps assume writers of the
same profiles take turns (the engine's writer turns) on clocks that agree.

Anonymous profiles (``anonymous_ttl_seconds`` > 0): see :mod:`.plan`. Which identifier
kinds do not identify a person is ``cassandra.anonymous_identifier_types`` (by default
the types the default linking rules call shareable: device, idfa, gaid, cookie).

Outbox. Change notifications are rows of the region's ``outbox`` in hourly buckets,
written in the batch; ``change_id`` is ``REGION:TIMEUUID`` (unique across regions, time
ordered); :meth:`pending_changes` merges the served regions oldest first. A region's
``meta`` row ``outbox_low`` is the oldest bucket that may hold entries; readers skip the
empty buckets below the current hour and the writer raises it.

Thread safety: reads may run from many threads (the driver session is thread safe);
writes and recovery are serialised by a lock.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson

from idgraph.core.errors import BackendError, ConfigError, ResidencyError
from idgraph.profile_store.base import (
    IdentifierMatch,
    ProfileChange,
    ProfileEvent,
    ProfileHead,
    ProfileStore,
    StoreBatch,
    StoredProfile,
    StoredRecord,
)
from idgraph.profile_store.cassandra_backend import schema as q
from idgraph.profile_store.cassandra_backend.connection import (
    Runner,
    backend_error,
    connect,
    driver_error_types,
    global_replication,
    profile_name,
)
from idgraph.profile_store.cassandra_backend.journal import decode_journal, encode_journal
from idgraph.profile_store.cassandra_backend.plan import (
    HistoryRow,
    Mutation,
    Snapshot,
    StoredRow,
    ids_of,
    plan_batch,
    profiles_to_load,
)
from idgraph.profile_store.cassandra_backend.settings import CassandraSettings

DDL_TIMEOUT = 120.0  # a schema change waits for every node to agree (seconds on 2.1)
DDL_CONCURRENCY = 8  # tables created at once (2.1 applies them one by one anyway)
REGION_HINTS = 200_000  # profile IDs whose region a reader remembers
IN_CHUNK = 100  # keys per IN query: bounds the coordinator's work per request
BATCH_STATEMENTS = 40  # statements per unlogged batch
BATCH_BYTES = 48 * 1024  # ... and about this many bytes of values
JOURNAL_PART_BYTES = 512 * 1024  # well below half the smallest commit log segment
PENDING_BATCH_TTL = 30 * 86_400  # a batch row that never committed disappears by itself
_UUID_EPOCH = 0x01B21DD213814000  # 1582-10-15 to 1970-01-01, in 100 ns
_BUCKET_SECONDS = 3600
INFLIGHT, OUTBOX_LOW = "inflight", "outbox_low"
PENDING, COMMITTED = "pending", "committed"


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
        rejected=d.get("rejected", {}), home_region=home_region,
    )


def _uuid_seconds(u: uuid.UUID) -> float:
    return (u.time - _UUID_EPOCH) / 1e7


def _bucket(u: uuid.UUID) -> int:
    return int(_uuid_seconds(u)) // _BUCKET_SECONDS


def _chunks(items: Sequence, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield list(items[i:i + size])


class CassandraProfileStore(ProfileStore):
    """Profile store in per-region Cassandra keyspaces, restricted to ``regions``."""

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
        self._errors = driver_error_types()
        self._prepared: dict[tuple[str | None, str], Any] = {}
        self._prepare_lock = threading.Lock()
        self._write_lock = threading.RLock()
        self._clock_lock = threading.Lock()
        self._last_ts = 0
        self._last_uuid_time = 0
        self._uuid_node = int.from_bytes(os.urandom(6), "big") | 0x010000000000  # random node
        self._uuid_clock_seq = int.from_bytes(os.urandom(2), "big") & 0x3FFF
        self._needs_recovery = not readonly
        self._region_hints: dict[str, str] = {}  # profile ID -> region it was last found in
        self._cluster, self._session = connect(settings, sorted(self.regions))
        try:
            self._runner = Runner(self._session, settings.concurrency)
            self._ensure_schema()
        except BaseException:
            self._cluster.shutdown()
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
        targets = [(r, self._ks[r], q.REGION_DDL) for r in sorted(self.regions)]
        targets.append((None, self._global_ks, q.GLOBAL_DDL))
        metadata = self._cluster.metadata
        created = False
        for region, ks, _ in targets:
            want = self._replication_of(region)
            existing = metadata.keyspaces.get(ks)
            if existing is None:
                if self._readonly:
                    raise BackendError(f"profile store: keyspace {ks} does not exist "
                                       "(run an ingest first)")
                self._execute(f"CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = "
                              f"{q.replication_cql(want)}", "create keyspace", region)
                created = True
                continue
            self._check_replication(ks, existing, want, region)
        if created:
            self._refresh_schema()
        missing = [(region, ddl.format(ks=ks)) for region, ks, ddls in targets
                   for table, ddl in ddls.items()
                   if table not in metadata.keyspaces[ks].tables]
        if missing and self._readonly:
            raise BackendError(f"profile store: {len(missing)} table(s) missing "
                               "(run an ingest first)")
        if missing:
            results = Runner(self._session, DDL_CONCURRENCY).run(
                [(cql, None, profile_name(None)) for _, cql in missing], timeout=DDL_TIMEOUT)
            for (region, _), res in zip(missing, results, strict=True):
                if isinstance(res, BaseException):
                    raise backend_error("create table", region, res)
            self._refresh_schema()
        if not self._readonly:
            self._init_outbox_low()

    def _refresh_schema(self) -> None:
        try:
            self._cluster.refresh_schema_metadata()
        except self._errors as exc:
            raise backend_error("schema agreement", None, exc) from exc

    def _check_replication(self, ks: str, meta: Any, want: dict[str, int],
                           region: str | None) -> None:
        strategy = meta.replication_strategy
        have = getattr(strategy, "dc_replication_factors", None)
        if have != want:
            field = f"region_datacenters.{region}" if region else "region_datacenters"
            raise ConfigError(
                f"cassandra.{field}: keyspace {ks} is replicated as {have or strategy!r}, "
                f"the settings say {want}; ALTER KEYSPACE it or fix the settings (rows are "
                "never written where the settings do not allow them)")

    def _execute(self, cql: str, operation: str, region: str | None) -> None:
        try:
            self._session.execute(cql, execution_profile=profile_name(None), timeout=DDL_TIMEOUT)
        except self._errors as exc:
            raise backend_error(operation, region, exc) from exc

    # ------------------------------------------------------------------ statements

    def _stmt(self, region: str | None, name: str) -> Any:
        key = (region, name)
        stmt = self._prepared.get(key)
        if stmt is not None:
            return stmt
        with self._prepare_lock:
            stmt = self._prepared.get(key)
            if stmt is None:
                if region is None:
                    cql = q.GLOBAL_QUERIES[name]
                elif name in q.MUTATIONS:
                    cql = q.MUTATIONS[name][0]
                else:
                    cql = q.REGION_QUERIES[name]
                try:
                    stmt = self._session.prepare(cql.format(ks=self.keyspace(region)))
                except self._errors as exc:
                    raise backend_error(f"prepare {name}", region, exc) from exc
                self._prepared[key] = stmt
        return stmt

    def _run(self, calls: list[tuple[str | None, str, tuple]], operation: str,
             strict: bool = True) -> list[Any]:
        """Run (region, statement name, values) calls concurrently; rows per call. With
        ``strict`` the first failure raises BackendError; else exceptions are returned."""
        results = self._runner.run(
            [(self._stmt(r, name), values, profile_name(r)) for r, name, values in calls])
        if strict:
            for (region, _, _), res in zip(calls, results, strict=True):
                if isinstance(res, BaseException):
                    raise self._wrap(operation, region, res)
        return results

    def _wrap(self, operation: str, region: str | None, exc: BaseException) -> BaseException:
        if isinstance(exc, self._errors):
            return backend_error(operation, region, exc)
        return exc

    def _in_calls(self, name: str, keys: Iterable[str],
                  regions: Iterable[str] | None = None) -> list[tuple[str, str, tuple]]:
        keys = sorted(set(keys))
        return [(r, name, (r, chunk)) for r in sorted(regions or self.regions)
                for chunk in _chunks(keys, IN_CHUNK)]

    def _tolerant(self, calls: list[tuple], operation: str,
                  key_of: Any, wanted: Iterable[str]) -> list[tuple[str, tuple]]:
        """(region, row) of every row of ``calls`` that answered; raises only when a region
        failed and some of ``wanted`` was not found in the others."""
        results = self._run(calls, operation, strict=False)
        rows: list[tuple[str, tuple]] = []
        for (region, _, _), res in zip(calls, results, strict=True):
            if not isinstance(res, BaseException):
                rows.extend((region, row) for row in res)
        found = {key_of(row) for _, row in rows}
        if not set(wanted) <= found:
            for (region, _, _), res in zip(calls, results, strict=True):
                if isinstance(res, BaseException):
                    raise self._wrap(operation, region, res)
        return rows

    # ------------------------------------------------------------------ clocks

    def _next_ts(self) -> int:
        """A write timestamp (microseconds) above every one this store used."""
        with self._clock_lock:
            self._last_ts = max(time.time_ns() // 1000, self._last_ts + 1)
            return self._last_ts

    def _next_uuid(self) -> uuid.UUID:
        """A version-1 UUID whose time is above every one this store made (time order)."""
        with self._clock_lock:
            t = max(time.time_ns() // 100 + _UUID_EPOCH, self._last_uuid_time + 1)
            self._last_uuid_time = t
        seq = self._uuid_clock_seq
        return uuid.UUID(fields=(t & 0xFFFFFFFF, (t >> 32) & 0xFFFF,
                                 ((t >> 48) & 0x0FFF) | 0x1000, 0x80 | (seq >> 8), seq & 0xFF,
                                 self._uuid_node))

    def _next_change(self) -> tuple[int, uuid.UUID]:
        u = self._next_uuid()
        return _bucket(u), u

    # ------------------------------------------------------------------ writes

    def _require_writable(self) -> None:
        if self._readonly:
            raise BackendError("profile store: opened read-only")

    def _check_region(self, region: str, operation: str) -> None:
        if region not in self.regions:
            raise ResidencyError(
                f"profile store: {operation}: region {region!r} is not served by this store "
                f"(serves {sorted(self.regions)})")

    def write(self, batch: StoreBatch) -> None:
        """Apply ``batch`` atomically through the redo journal (module docstring)."""
        self._require_writable()
        for h in batch.heads:
            self._check_region(h.region, "write profile")
        for _, region in batch.regions:
            self._check_region(region, "move profile")
        for r in batch.records:
            self._check_region(r.home_region, "write record")
        with self._write_lock:
            self._recover_if_needed()
            ts = self._next_ts()
            snap = self._snapshot(batch)
            plan = plan_batch(batch, snap, self.regions, ts, self._ttl, self._shareable,
                              self._next_change)
            events = sorted({_event_hash(e) for e in batch.processed_event_ids})
            if not plan:
                self._put_processed(events, ts)
                return
            batch_id = self._next_uuid()
            self._needs_recovery = True  # until the batch is finished, recover first
            self._begin(batch_id, plan, events)
            self._run([(None, "batch_put", (batch_id, COMMITTED, ",".join(sorted(plan)),
                                            b"".join(events), 0))], "write (commit)")
            self._finish(batch_id, plan, events, sorted(plan))
            self._needs_recovery = False

    def _begin(self, batch_id: uuid.UUID, plan: dict[str, list[Mutation]],
               events: list[bytes]) -> None:
        """Steps 2 of the module docstring: pending row, in-flight pointers, journals."""
        regions = ",".join(sorted(plan))
        self._run([(None, "batch_put", (batch_id, PENDING, regions, b"".join(events),
                                        PENDING_BATCH_TTL))], "write (begin)")
        self._run([(r, "meta_put", (r, INFLIGHT, str(batch_id))) for r in sorted(plan)],
                  "write (begin)")
        calls = []
        for region, mutations in sorted(plan.items()):
            data = encode_journal(mutations)
            for part, chunk in enumerate(_chunks(data, JOURNAL_PART_BYTES)):
                calls.append((region, "journal_put", (region, batch_id, part, bytes(chunk))))
        self._run(calls, "write (journal)")

    def _finish(self, batch_id: uuid.UUID, plan: dict[str, list[Mutation]],
                events: list[bytes], regions: list[str]) -> None:
        """Steps 4 and 5: the rows, the processed events, then the journals of ``regions``
        and the batch row are dropped."""
        self._apply(plan)
        self._put_processed(events, self._next_ts())
        self._run([(r, "journal_delete", (r, batch_id)) for r in regions],
                  "write (clean up)")
        self._run([(None, "batch_delete", (batch_id,))], "write (clean up)")

    def _apply(self, plan: dict[str, list[Mutation]]) -> None:
        from cassandra.query import BatchStatement, BatchType

        calls = []
        for region, mutations in sorted(plan.items()):
            batch, size = None, 0
            for code, values in sorted(mutations, key=lambda m: m[0]):
                if batch is None or len(batch) >= BATCH_STATEMENTS or size >= BATCH_BYTES:
                    batch, size = BatchStatement(batch_type=BatchType.UNLOGGED), 0
                    calls.append((batch, None, profile_name(region), region))
                batch.add(self._stmt(region, code), values)
                size += sum(len(v) for v in values if isinstance(v, bytes | str))
        results = self._runner.run([c[:3] for c in calls])
        for call, res in zip(calls, results, strict=True):
            if isinstance(res, BaseException):
                raise self._wrap("write", call[3], res)

    def _put_processed(self, events: list[bytes], ts: int) -> None:
        from cassandra.query import BatchStatement, BatchType

        calls = []
        for chunk in _chunks(events, BATCH_STATEMENTS * 4):
            batch = BatchStatement(batch_type=BatchType.UNLOGGED)
            for h in chunk:
                batch.add(self._stmt(None, "processed_put"), (h, ts))
            calls.append((batch, None, profile_name(None)))
        for res in self._runner.run(calls):
            if isinstance(res, BaseException):
                raise self._wrap("write (processed events)", None, res)

    # ------------------------------------------------------------------ planning reads

    def _snapshot(self, batch: StoreBatch) -> Snapshot:
        """Read the stored rows ``batch`` touches (every served region) into a Snapshot."""
        pids, keys = ids_of(batch)
        snap = Snapshot()
        id_calls = self._in_calls("ids_in", pids)
        rec_calls = self._in_calls("record_locations_in", keys)
        results = self._run(id_calls + rec_calls, "write (read stored rows)")
        for (region, _, _), rows in zip(id_calls, results[:len(id_calls)], strict=True):
            for pid, updated_at, alias_of, anonymous in rows:
                if updated_at is not None:
                    snap.heads[pid] = (region, updated_at, -1 if anonymous is None else anonymous)
                if alias_of is not None:
                    snap.aliases[pid] = (region, alias_of)
        for (region, _, _), rows in zip(rec_calls, results[len(id_calls):], strict=True):
            for key, pid, idx in rows:
                snap.records[key] = StoredRow(region, pid, orjson.loads(idx) if idx else {})
        wanted = profiles_to_load(batch, snap, self._ttl)
        if wanted:
            self._load_profiles(snap, wanted)
        return snap

    def _load_profiles(self, snap: Snapshot, wanted: dict[str, str]) -> None:
        """Read every row of the ``wanted`` profiles (ID -> region) into ``snap``."""
        items = sorted(wanted.items())
        calls = [(r, "links", (r, pid)) for pid, r in items]
        calls += [(r, "history", (r, pid)) for pid, r in items]
        results = self._run(calls, "write (read profiles)")
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
        results = self._run(rec_calls + alias_calls, "write (read profiles)")
        for (region, _, _), rows in zip(rec_calls, results[:len(rec_calls)], strict=True):
            for key, pid, last_seen, doc, idx in rows:
                snap.records[key] = StoredRow(region, pid, orjson.loads(idx) if idx else {},
                                              doc, last_seen)
        for (region, _, (_, alias)), rows in zip(alias_calls, results[len(rec_calls):],
                                                 strict=True):
            snap.history.setdefault(alias, (region, [HistoryRow(*row) for row in rows]))

    # ------------------------------------------------------------------ recovery

    def _recover_if_needed(self) -> None:
        if self._needs_recovery:
            with self._write_lock:
                if self._needs_recovery:
                    self.recover()

    def recover(self) -> int:
        """Finish or discard the batches an interrupted write left (module docstring);
        returns how many were found. Runs by itself before a writable store's first
        operation and after a failed write."""
        self._require_writable()
        with self._write_lock:
            regions = sorted(self.regions)
            rows = self._run([(r, "meta", (r, INFLIGHT)) for r in regions], "recover")
            pointers: dict[uuid.UUID, list[str]] = {}
            for region, res in zip(regions, rows, strict=True):
                if res and res[0][0]:
                    pointers.setdefault(uuid.UUID(res[0][0]), []).append(region)
            found = 0
            for batch_id, pointing in sorted(pointers.items()):
                found += self._recover_batch(batch_id, pointing)
            self._needs_recovery = False
            return found

    def _recover_batch(self, batch_id: uuid.UUID, pointing: list[str]) -> int:
        row = self._run([(None, "batch", (batch_id,))], "recover")[0]
        if not row:  # finished (or expired while pending): drop any journal left behind
            self._run([(r, "journal_delete", (r, batch_id)) for r in pointing], "recover")
            return 0
        state, regions_text, events_blob = row[0]
        regions = [r for r in (regions_text or "").split(",") if r]
        events = [events_blob[i:i + 16] for i in range(0, len(events_blob or b""), 16)]
        unserved = sorted(set(regions) - self.regions)
        if state != COMMITTED:
            self._run([(r, "journal_delete", (r, batch_id)) for r in regions
                       if r in self.regions], "recover (discard)")
            if not unserved:
                self._run([(None, "batch_delete", (batch_id,))], "recover (discard)")
            return 1
        if unserved:
            raise BackendError(
                "profile store: recover: an interrupted write also touched regions "
                f"{unserved}; open a store serving {sorted(regions)} to finish it")
        results = self._run([(r, "journal", (r, batch_id)) for r in regions], "recover")
        plan = {}
        for region, parts in zip(regions, results, strict=True):
            if parts:
                data = b"".join(chunk for _, chunk in sorted(parts))
                plan[region] = decode_journal(data)
        self._finish(batch_id, plan, events, regions)
        return 1

    # ------------------------------------------------------------------ outbox

    def _init_outbox_low(self) -> None:
        regions = sorted(self.regions)
        rows = self._run([(r, "meta", (r, OUTBOX_LOW)) for r in regions], "open (outbox)")
        now = int(time.time()) // _BUCKET_SECONDS
        calls = [(r, "meta_put", (r, OUTBOX_LOW, str(now)))
                 for r, res in zip(regions, rows, strict=True) if not res]
        if calls:
            self._run(calls, "open (outbox)")

    def pending_changes(self, limit: int) -> list[ProfileChange]:
        self._recover_if_needed()
        if limit <= 0:
            return []
        regions = sorted(self.regions)
        lows = self._run([(r, "meta", (r, OUTBOX_LOW)) for r in regions], "outbox read")
        now = int(time.time()) // _BUCKET_SECONDS
        found: list[tuple[uuid.UUID, str, bytes]] = []
        for region, low in zip(regions, lows, strict=True):
            if not low:
                continue
            bucket, first = int(low[0][0]), None
            got = 0
            while bucket <= now + 1 and got < limit:
                rows = self._run([(region, "outbox", (region, bucket, limit - got))],
                                 "outbox read")[0]
                if rows and first is None:
                    first = bucket
                found.extend((u, region, doc) for u, doc in rows)
                got += len(rows)
                bucket += 1
            # buckets below the first one holding entries are empty; keep an hour's margin
            # for writers whose clocks lag
            low_now = min(first if first is not None else bucket, now - 1)
            if not self._readonly and low_now > int(low[0][0]):
                self._run([(region, "meta_put", (region, OUTBOX_LOW, str(low_now)))],
                          "outbox read")
        found.sort(key=lambda f: (f[0].time, f[0].bytes))
        out = []
        for u, region, doc in found[:limit]:
            d = orjson.loads(doc)
            d["change_id"] = f"{region}:{u}"
            out.append(ProfileChange(**d))
        return out

    def ack_changes(self, change_ids: Iterable[str]) -> None:
        self._require_writable()
        self._recover_if_needed()
        calls = []
        for change_id in change_ids:
            region, _, text = str(change_id).partition(":")
            if region not in self.regions:
                continue  # unknown or another region's: ignored
            try:
                u = uuid.UUID(text)
            except ValueError:
                continue
            calls.append((region, "outbox_delete", (region, _bucket(u), u)))
        self._run(calls, f"outbox ack of {len(calls)}")

    # ------------------------------------------------------------------ reads

    def unprocessed(self, event_ids: Iterable[str]) -> set[str]:
        self._recover_if_needed()
        by_hash = {_event_hash(e): e for e in dict.fromkeys(event_ids)}
        calls = [(None, "processed_in", (chunk,)) for chunk in _chunks(sorted(by_hash),
                                                                        IN_CHUNK)]
        seen = {row[0] for rows in self._run(calls, "read processed events") for row in rows}
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
        self._recover_if_needed()
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
                raise self._wrap("read profile", *failed)
            self._region_hints.pop(pid, None)
            return None
        region, updated_at = head
        if isinstance(links, BaseException):
            raise self._wrap("read profile", region, links)
        keys = [key for kind, key in links if kind == "r"]
        alias_ids = sorted(key for kind, key in links if kind == "a")
        rows = [row for res in self._run(self._in_calls("records_in", keys, [region]),
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
        results = self._run(calls, "read profile", strict=False)
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
        self._recover_if_needed()
        regions = sorted(self.regions)
        hits = self._run([(r, "identifier", (r, identifier_key)) for r in regions],
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
        for (region, _, _), rows in zip(rec_calls, self._run(rec_calls, "lookup"),
                                        strict=True):
            for key, pid, last_seen in rows:
                entry = best.setdefault((region, pid), [last_seen, False])
                entry[0] = max(entry[0], last_seen)
                entry[1] = entry[1] or linked_of[(region, key)]
        head_calls = [c for region in sorted({r for r, _ in best})
                      for c in self._in_calls("ids_in", [p for r, p in best if r == region],
                                              [region])]
        versions = {(region, pid): updated_at
                    for (region, _, _), rows in zip(head_calls, self._run(head_calls, "lookup"),
                                                    strict=True)
                    for pid, updated_at, _, _ in rows if updated_at is not None}
        matches = [IdentifierMatch(pid, region, last_seen, linked, versions[(region, pid)])
                   for (region, pid), (last_seen, linked) in best.items()
                   if (region, pid) in versions]
        matches.sort(key=lambda m: (not m.linked, -m.last_seen, m.profile_id))
        for m in matches:
            self._hint(m.profile_id, m.region)
        return matches

    def get_records(self, record_keys: Iterable[str]) -> dict[str, StoredRecord]:
        self._recover_if_needed()
        keys = list(dict.fromkeys(record_keys))
        if not keys:
            return {}
        calls = self._in_calls("records_in", keys)
        rows = self._tolerant(calls, "read records", lambda row: row[0], keys)
        return {key: _record_from_doc(doc, pid, region)
                for region, (key, pid, _, doc, _) in rows if doc is not None}

    def get_heads(self, profile_ids: Iterable[str]) -> dict[str, ProfileHead]:
        self._recover_if_needed()
        ids = list(dict.fromkeys(profile_ids))
        if not ids:
            return {}
        heads, _ = self._locate_ids(ids, "read profiles")
        return {pid: ProfileHead(pid, region, updated_at)
                for pid, (region, updated_at) in heads.items()}

    def _scan(self, name: str, operation: str) -> list[tuple[str, list[tuple]]]:
        regions = sorted(self.regions)
        results = self._run([(r, name, None) for r in regions], operation)
        return list(zip(regions, results, strict=True))

    def record_profiles(self) -> dict[str, str]:
        self._recover_if_needed()
        return {key: pid for _, rows in self._scan("scan_records", "scan records")
                for key, pid in rows if pid is not None}

    def history(self, profile_id: str) -> list[ProfileEvent]:
        self._recover_if_needed()
        calls = [(r, "history", (r, profile_id)) for r in sorted(self.regions)]
        rows = self._tolerant(calls, "read history", lambda row: profile_id, [profile_id])
        events = [ProfileEvent(kind, subject, orjson.loads(related), at, seq)
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
        self._recover_if_needed()
        profiles = aliases = 0
        for _, rows in self._scan("scan_profiles", "count profiles"):
            profiles += sum(1 for updated_at, _ in rows if updated_at is not None)
            aliases += sum(1 for _, alias_of in rows if alias_of is not None)
        out = {"profiles": profiles, "aliases": aliases}
        for table in ("records", "identifiers"):
            out[table] = sum(rows[0][0] for _, rows in self._scan(f"count_{table}",
                                                                  f"count {table}"))
        out["processed_events"] = self._run([(None, "count_processed", None)],
                                            "count processed events")[0][0][0]
        return out

    def profiles_by_region(self) -> dict[str, int]:
        """Live profiles per served region (regions without any are left out)."""
        self._recover_if_needed()
        out = {}
        for region, rows in self._scan("scan_profiles", "count profiles"):
            n = sum(1 for updated_at, _ in rows if updated_at is not None)
            if n:
                out[region] = n
        return out

    def close(self) -> None:
        cluster, self._cluster = self._cluster, None
        if cluster is not None:
            cluster.shutdown()
