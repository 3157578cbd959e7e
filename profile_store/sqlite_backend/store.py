"""Embedded profile store: one SQLite file in WAL mode.

Why SQLite and not DuckDB: ``idgraph serve`` and ``idgraph ingest`` run as separate
processes. SQLite in WAL mode lets any number of reader processes read a consistent
snapshot while one writer commits; DuckDB allows one process to open a file for writing
and no other process to read it meanwhile.

Partitioning: profile heads and records carry the profile's home region and every read is
restricted to the regions this store was opened for; writes of rows of any other region are
refused (:class:`ResidencyError`). Region moves (a merge made the profile's home stricter)
rewrite the rows with the new region in the same transaction. The identifier index holds
(identifier, record key) pairs and is read only through the region-checked records table.

Thread safety: writes go through one connection guarded by a lock; reads use one
connection per thread (the gRPC server reads from its worker threads).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import orjson

from idgraph.core.errors import BackendError, ResidencyError
from idgraph.core.failpoints import failpoint
from idgraph.core.private_files import make_private_dir, make_private_sqlite
from idgraph.core.sqlite_wal import use_wal
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
    dump_change,
    dump_record,
    encode_related,
    load_change,
    record_events,
)
from idgraph.profile_store.segment_state import (
    Membership,
    SegmentBuild,
    SegmentChange,
    SegmentDefinition,
)
from idgraph.profile_store.sqlite_backend.segment_catalog import (
    SEGMENT_CATALOG_SCHEMA,
    read_catalog,
    read_versions,
)

log = logging.getLogger(__name__)

_LOG_PROFILE = "json_extract(CAST(change AS TEXT), '$.profile_id')"
"""A change-log row's profile ID (the expression ``segment_log_by_profile`` indexes)."""
_LOG_SEGMENT = "json_extract(CAST(change AS TEXT), '$.segment')"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS profiles (
    profile_id TEXT PRIMARY KEY,
    region TEXT NOT NULL,
    updated_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (
    record_key TEXT PRIMARY KEY,
    profile_id TEXT NOT NULL,
    region TEXT NOT NULL,
    last_seen REAL NOT NULL,
    doc BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_profile ON records (profile_id);
-- no index by record_key: it cost ~10% of ingest time; removals name their rows
CREATE TABLE IF NOT EXISTS identifiers (
    identifier TEXT NOT NULL,
    record_key TEXT NOT NULL,
    linked INTEGER NOT NULL,
    PRIMARY KEY (identifier, record_key)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS aliases (
    alias TEXT PRIMARY KEY,
    profile_id TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS aliases_by_profile ON aliases (profile_id);
CREATE TABLE IF NOT EXISTS history (
    profile_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    related BLOB NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (profile_id, seq, kind, subject)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS processed_events (
    event_id TEXT PRIMARY KEY
) WITHOUT ROWID;
-- transactional outbox of profile change notifications, published by stream workers
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    region TEXT NOT NULL,
    change BLOB NOT NULL
);
-- segment memberships (a row per member, or per pending deadline), their change log and
-- the progress of full evaluations; definitions are in SEGMENT_CATALOG_SCHEMA
CREATE TABLE IF NOT EXISTS memberships (
    segment TEXT NOT NULL,
    profile_id TEXT NOT NULL,
    region TEXT NOT NULL,
    member INTEGER NOT NULL,
    next_change REAL NOT NULL,
    doc BLOB NOT NULL,
    PRIMARY KEY (segment, profile_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS memberships_by_profile ON memberships (profile_id);
CREATE INDEX IF NOT EXISTS memberships_by_deadline ON memberships (next_change)
    WHERE next_change > 0;
CREATE TABLE IF NOT EXISTS segment_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    region TEXT NOT NULL,
    logged_at REAL NOT NULL,
    change BLOB NOT NULL
);
-- a profile's changes (its history) without a scan of the log
CREATE INDEX IF NOT EXISTS segment_log_by_profile
    ON segment_log (json_extract(CAST(change AS TEXT), '$.profile_id'));
CREATE TABLE IF NOT EXISTS segment_builds (
    region TEXT NOT NULL,
    segment TEXT NOT NULL,
    doc BLOB NOT NULL,
    PRIMARY KEY (region, segment)
) WITHOUT ROWID;
""" + SEGMENT_CATALOG_SCHEMA


def _record_from_doc(doc: dict, profile_id: str, home_region: str) -> StoredRecord:
    return StoredRecord(
        record_key=doc["record_key"],
        source=doc["source"],
        source_record_id=doc["source_record_id"],
        region=doc["region"],
        profile_id=profile_id,
        identifiers={k: (v[0], v[1], v[2]) for k, v in doc["identifiers"].items()},
        attributes={k: (v[0], v[1]) for k, v in doc["attributes"].items()},
        consent={k: (v[0], v[1]) for k, v in doc["consent"].items()},
        event_count=doc["event_count"],
        first_seen=doc["first_seen"],
        last_seen=doc["last_seen"],
        rejected=doc.get("rejected", {}),
        home_region=home_region,
        events=record_events(doc),
    )


class SqliteProfileStore(ProfileStore):
    """Profile store in one SQLite file, restricted to ``regions``."""

    driver_errors = (sqlite3.Error,)

    @staticmethod
    def describe_driver_error(exc: BaseException) -> str:
        # SQLite's own messages name tables and states, never bound values
        return f"{type(exc).__name__} ({exc})"

    def __init__(self, path: Path, regions: Iterable[str], readonly: bool = False) -> None:
        self.path = Path(path)
        self.regions = frozenset(regions)
        if not self.regions:
            raise ResidencyError("a profile store must be opened for at least one region")
        self._region_sql = ",".join("?" * len(self.regions))
        self._region_args = tuple(sorted(self.regions))
        self._readonly = readonly
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._writer: sqlite3.Connection | None = None
        if not readonly:
            # profiles are personal data: the file (and so its -wal and -shm) owner-only
            make_private_dir(self.path.parent)
            make_private_sqlite(self.path)
            self._writer = self._connect()
            self._writer.executescript(_SCHEMA)
        elif not self.path.exists():
            raise BackendError(f"profile store: {self.path} does not exist (run an ingest first)")

    def _connect(self) -> sqlite3.Connection:
        try:
            uri = f"file:{self.path}{'?mode=ro' if self._readonly else ''}"
            db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False,
                                 timeout=30)
            if not self._readonly:
                use_wal(db)
                db.execute("PRAGMA synchronous=FULL")
                # batches touch pages all over the tables: a larger page cache and fewer
                # WAL checkpoints measured ~25% less write time at 100k records
                db.execute("PRAGMA cache_size=-131072")
                db.execute("PRAGMA wal_autocheckpoint=10000")
            return db
        except sqlite3.Error as exc:
            raise BackendError(f"profile store: cannot open {self.path.name}: {exc}") from exc

    def _reader(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._connect()
        return db

    # --------------------------------------------------------------------- writes

    def write(self, batch: StoreBatch) -> None:
        if self._writer is None:
            raise BackendError("profile store: opened read-only")
        for h in batch.heads:
            self._check_region(h.region, "write profile")
        for pid, region in batch.regions:
            self._check_region(region, "move profile")
        for r in batch.records:
            self._check_region(r.home_region, "write record")
        for m in batch.memberships:
            self._check_region(m.region, "write membership")
        for region, _segment, _pid in batch.removed_memberships:
            self._check_region(region, "remove membership")
        for b in batch.segment_builds:
            self._check_region(b.region, "write segment build")
        with self._write_lock:
            db = self._writer
            try:
                erasing = bool(batch.erased_profiles or batch.erased_event_ids
                               or batch.erased_event_values)
                if erasing:  # deleted cells are overwritten with zeros, not left in pages
                    db.execute("PRAGMA secure_delete=ON")
                db.execute("BEGIN IMMEDIATE")
                if erasing:
                    self._erase(db, batch)
                if batch.reassign:  # executemany runs the pairs in order: chains resolve
                    moves = [(survivor, absorbed) for absorbed, survivor in batch.reassign]
                    db.executemany("UPDATE records SET profile_id = ? WHERE profile_id = ?", moves)
                    db.executemany("UPDATE aliases SET profile_id = ? WHERE profile_id = ?", moves)
                    db.executemany("DELETE FROM profiles WHERE profile_id = ?",
                                   [(a,) for a, _ in batch.reassign])
                if batch.regions:
                    db.executemany("UPDATE records SET region = ? WHERE profile_id = ?",
                                   [(region, pid) for pid, region in batch.regions])
                if batch.deleted_profiles:
                    db.executemany("DELETE FROM profiles WHERE profile_id = ?",
                                   [(p,) for p in batch.deleted_profiles])
                if batch.deleted_records:
                    db.executemany("DELETE FROM records WHERE record_key = ?",
                                   [(k,) for k in batch.deleted_records])
                if batch.unlinked:
                    db.executemany("DELETE FROM identifiers WHERE identifier = ? AND record_key = ?",
                                   batch.unlinked)
                if batch.removed_aliases:
                    db.executemany("DELETE FROM aliases WHERE alias = ?",
                                   [(a,) for a in batch.removed_aliases])
                if batch.aliases:
                    db.executemany("INSERT OR REPLACE INTO aliases (alias, profile_id) VALUES (?,?)",
                                   list(batch.aliases.items()))
                    db.executemany("DELETE FROM profiles WHERE profile_id = ?",
                                   [(a,) for a in batch.aliases])
                db.executemany(
                    "INSERT OR REPLACE INTO profiles (profile_id, region, updated_at) VALUES (?,?,?)",
                    [(h.profile_id, h.region, h.updated_at) for h in batch.heads])
                db.executemany(
                    "INSERT OR REPLACE INTO records (record_key, profile_id, region, last_seen, doc)"
                    " VALUES (?,?,?,?,?)",
                    [(r.record_key, r.profile_id, r.home_region, r.last_seen, dump_record(r))
                     for r in batch.records])
                db.executemany(
                    "INSERT OR REPLACE INTO identifiers (identifier, record_key, linked)"
                    " VALUES (?,?,?)", [(i, k, int(linked)) for i, k, linked in batch.identifier_links])
                db.executemany(
                    "INSERT OR IGNORE INTO history (profile_id, seq, kind, subject, related, at)"
                    " VALUES (?,?,?,?,?,?)",
                    [(pid, h.seq, h.kind, h.profile_id, encode_related(h), h.at)
                     for h in batch.history for pid in [h.profile_id, *h.related_ids]])
                failpoint("writer.store.writing")
                db.executemany("INSERT OR IGNORE INTO processed_events (event_id) VALUES (?)",
                               [(e,) for e in batch.processed_event_ids])
                if batch.changes:
                    db.executemany("INSERT INTO outbox (region, change) VALUES (?,?)",
                                   [(c.region, dump_change(c)) for c in batch.changes])
                self._write_segments(db, batch)
                db.execute("COMMIT")
                if erasing:
                    db.execute("PRAGMA secure_delete=OFF")
                    self._checkpoint(db)
            except sqlite3.Error as exc:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise BackendError(
                    f"profile store: write of {len(batch.records)} records failed: {exc}"
                ) from exc

    @staticmethod
    def _checkpoint(db: sqlite3.Connection, attempts: int = 50) -> None:
        """Copy the WAL into the database and truncate it, so the pages of an erasure's
        deleted rows are gone from the WAL too (retried while readers hold old
        snapshots; the WAL is truncated at the latest by the next checkpoint)."""
        for _ in range(attempts):
            busy, _log, _done = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                return
            time.sleep(0.02)
        log.warning("profile store: WAL not truncated after an erasure (readers busy)")

    @staticmethod
    def _erase(db: sqlite3.Connection, batch: StoreBatch) -> None:
        """Every trace of the forgotten profile IDs and event IDs (``StoreBatch``)."""
        for _region, pid in batch.erased_profiles:
            db.execute("DELETE FROM aliases WHERE alias = ? OR profile_id = ?", (pid, pid))
            # the docs are compact JSON (orjson) in BLOB columns (LIKE never matches a BLOB:
            # cast): a profile ID is one exact field or a member of a list, always quoted
            pattern = f'%"{pid}"%'
            db.execute("DELETE FROM history WHERE profile_id = ? OR subject = ?"
                       " OR CAST(related AS TEXT) LIKE ?", (pid, pid, pattern))
            db.execute("DELETE FROM memberships WHERE profile_id = ?", (pid,))
            db.execute("DELETE FROM segment_log WHERE CAST(change AS TEXT) LIKE ?", (pattern,))
            db.execute("DELETE FROM outbox WHERE CAST(change AS TEXT) LIKE ?", (pattern,))
        db.executemany("DELETE FROM processed_events WHERE event_id = ?",
                       [(e,) for e in batch.erased_event_ids])
        for value in batch.erased_event_values:  # a whole ':'-separated part of the ID
            v = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            db.execute("DELETE FROM processed_events WHERE event_id = ? OR event_id LIKE ?"
                       " ESCAPE '\\' OR event_id LIKE ? ESCAPE '\\' OR event_id LIKE ?"
                       " ESCAPE '\\'", (value, f"{v}:%", f"%:{v}", f"%:{v}:%"))

    def _write_segments(self, db: sqlite3.Connection, batch: StoreBatch) -> None:
        """The segment rows of ``batch``, inside its transaction (regions checked before)."""
        if batch.removed_memberships:
            db.executemany(
                "DELETE FROM memberships WHERE segment = ? AND profile_id = ? AND region = ?",
                [(seg, pid, region) for region, seg, pid in batch.removed_memberships])
        if batch.memberships:
            db.executemany(
                "INSERT OR REPLACE INTO memberships (segment, profile_id, region, member,"
                " next_change, doc) VALUES (?,?,?,?,?,?)",
                [(m.segment, m.profile_id, m.region, int(m.member), m.next_change,
                  orjson.dumps(m)) for m in batch.memberships])
        if batch.segment_changes:
            now = time.time()
            db.executemany(
                "INSERT INTO segment_log (region, logged_at, change) VALUES (?,?,?)",
                [(c.region, now, dump_change(c)) for c in batch.segment_changes])
        if batch.segment_builds:
            db.executemany(
                "INSERT OR REPLACE INTO segment_builds (region, segment, doc) VALUES (?,?,?)",
                [(b.region, b.segment, orjson.dumps(b)) for b in batch.segment_builds])
        if batch.segment_log_before > 0:
            db.execute("DELETE FROM segment_log WHERE logged_at < ?",
                       (batch.segment_log_before,))

    def pending_changes(self, limit: int) -> list[ProfileChange | SegmentChange]:
        rows = self._reader().execute(
            f"SELECT seq, change FROM outbox WHERE region IN ({self._region_sql})"
            " ORDER BY seq LIMIT ?", (*self._region_args, limit)).fetchall()
        return [load_change(blob, str(seq)) for seq, blob in rows]

    def ack_changes(self, change_ids: Iterable[str]) -> None:
        if self._writer is None:
            raise BackendError("profile store: opened read-only")
        ids = [(int(c),) for c in change_ids]
        with self._write_lock:
            db = self._writer
            try:  # one transaction: autocommit would sync the disk once per row
                db.execute("BEGIN IMMEDIATE")
                db.executemany("DELETE FROM outbox WHERE seq = ?", ids)
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise BackendError(f"profile store: outbox ack of {len(ids)} failed: {exc}") from exc

    def _check_region(self, region: str, operation: str) -> None:
        if region not in self.regions:
            raise ResidencyError(
                f"profile store: {operation}: region {region!r} is not served by this store "
                f"(serves {sorted(self.regions)})"
            )

    # ---------------------------------------------------------------------- reads

    def _select_in(self, sql: str, keys: list[str], tail: tuple = ()) -> Iterator[tuple]:
        """Rows of ``sql`` whose ``{in}`` is an IN list, run over ``keys`` in chunks of 500
        (SQLite's bound-parameter limit); ``tail`` parameters follow each chunk's."""
        db = self._reader()
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            yield from db.execute(sql.format(**{"in": ",".join("?" * len(chunk))}), (*chunk, *tail))

    def unprocessed(self, event_ids: Iterable[str]) -> set[str]:
        ids = list(dict.fromkeys(event_ids))
        seen = {r[0] for r in self._select_in(
            "SELECT event_id FROM processed_events WHERE event_id IN ({in})", ids)}
        return set(ids) - seen

    def _live_id(self, db: sqlite3.Connection, profile_id: str) -> str:
        row = db.execute("SELECT profile_id FROM aliases WHERE alias = ?", (profile_id,)).fetchone()
        return profile_id if row is None else row[0]

    def get_profile(self, profile_id: str) -> StoredProfile | None:
        db = self._reader()
        pid = self._live_id(db, profile_id)
        head = db.execute(
            f"SELECT region, updated_at FROM profiles WHERE profile_id = ?"
            f" AND region IN ({self._region_sql})", (pid, *self._region_args)).fetchone()
        if head is None:
            return None
        region = head[0]
        rows = db.execute("SELECT doc FROM records WHERE profile_id = ? AND region = ?",
                          (pid, region)).fetchall()
        aliases = [a for (a,) in db.execute(
            "SELECT alias FROM aliases WHERE profile_id = ? ORDER BY alias", (pid,))]
        records = [_record_from_doc(orjson.loads(doc), pid, region) for (doc,) in rows]
        records.sort(key=lambda r: (r.first_seen, r.record_key))
        return StoredProfile(ProfileHead(pid, region, head[1]), aliases, records)

    def get_live_profiles(self, profile_ids: Iterable[str]) -> dict[str, StoredProfile]:
        ids = list(dict.fromkeys(profile_ids))
        heads = {r[0]: ProfileHead(*r) for r in self._select_in(
            "SELECT profile_id, region, updated_at FROM profiles WHERE profile_id IN ({in})"
            f" AND region IN ({self._region_sql})", ids, self._region_args)}
        records: dict[str, list[StoredRecord]] = {pid: [] for pid in heads}
        for doc, pid, region in self._select_in(
                "SELECT doc, profile_id, region FROM records WHERE profile_id IN ({in})",
                list(heads)):
            head = heads[pid]
            if region == head.region:
                records[pid].append(_record_from_doc(orjson.loads(doc), pid, region))
        out = {}
        for pid, head in heads.items():
            recs = records[pid]
            recs.sort(key=lambda r: (r.first_seen, r.record_key))
            out[pid] = StoredProfile(head, [], recs)
        return out

    def lookup(self, identifier_key: str) -> list[IdentifierMatch]:
        rows = self._reader().execute(
            "SELECT r.profile_id, r.region, max(r.last_seen), max(i.linked), p.updated_at"
            " FROM identifiers i JOIN records r ON r.record_key = i.record_key"
            " JOIN profiles p ON p.profile_id = r.profile_id WHERE i.identifier = ?"
            f" AND r.region IN ({self._region_sql}) GROUP BY r.profile_id, r.region",
            (identifier_key, *self._region_args)).fetchall()
        matches = [IdentifierMatch(r[0], r[1], r[2], bool(r[3]), r[4]) for r in rows]
        matches.sort(key=lambda m: (not m.linked, -m.last_seen, m.profile_id))
        return matches

    def get_records(self, record_keys: Iterable[str]) -> dict[str, StoredRecord]:
        rows = self._select_in(
            "SELECT doc, profile_id, region FROM records WHERE record_key IN ({in})"
            f" AND region IN ({self._region_sql})", list(record_keys), self._region_args)
        out: dict[str, StoredRecord] = {}
        for doc, pid, region in rows:
            rec = _record_from_doc(orjson.loads(doc), pid, region)
            out[rec.record_key] = rec
        return out

    def get_heads(self, profile_ids: Iterable[str]) -> dict[str, ProfileHead]:
        rows = self._select_in(
            "SELECT profile_id, region, updated_at FROM profiles WHERE profile_id IN ({in})"
            f" AND region IN ({self._region_sql})", list(profile_ids), self._region_args)
        return {r[0]: ProfileHead(*r) for r in rows}

    def record_profiles(self) -> dict[str, str]:
        db = self._reader()
        return dict(db.execute(
            f"SELECT record_key, profile_id FROM records WHERE region IN ({self._region_sql})",
            self._region_args))

    def history(self, profile_id: str) -> list[ProfileEvent]:
        """The history naming ``profile_id`` when the live profile it is (itself, or the
        one it is an alias of) has its home in a served region; else none. History rows
        carry no region of their own, so a profile no longer live (deleted) has none."""
        rows = self._reader().execute(
            "SELECT kind, subject, related, at, seq FROM history WHERE profile_id = ?"
            " AND EXISTS (SELECT 1 FROM profiles WHERE profile_id = coalesce("
            "(SELECT profile_id FROM aliases WHERE alias = ?), ?)"
            f" AND region IN ({self._region_sql}))"
            " ORDER BY seq, kind, subject",
            (profile_id, profile_id, profile_id, *self._region_args)).fetchall()
        return [decode_event(k, s, r, at, seq) for k, s, r, at, seq in rows]

    def iter_record_profiles(self) -> Iterator[tuple[str, str, str]]:
        cur = self._reader().execute(
            f"SELECT record_key, profile_id FROM records WHERE region IN ({self._region_sql})"
            " ORDER BY record_key", self._region_args)
        for key, pid in cur:
            source, source_record_id = key.split(":", 1)
            yield source, source_record_id, pid

    def counts(self) -> dict[str, int]:
        db = self._reader()
        out = {}
        for table in ("profiles", "records"):
            out[table] = db.execute(
                f"SELECT count(*) FROM {table} WHERE region IN ({self._region_sql})",
                self._region_args).fetchone()[0]
        out["identifiers"] = db.execute("SELECT count(*) FROM identifiers").fetchone()[0]
        out["aliases"] = db.execute("SELECT count(*) FROM aliases").fetchone()[0]
        out["processed_events"] = db.execute("SELECT count(*) FROM processed_events").fetchone()[0]
        return out

    def profiles_by_region(self) -> dict[str, int]:
        rows = self._reader().execute(
            f"SELECT region, count(*) FROM profiles WHERE region IN ({self._region_sql})"
            " GROUP BY region ORDER BY region", self._region_args).fetchall()
        return dict(rows)

    # -------------------------------------------------------------------- segments

    def segment_catalog(self) -> tuple[int, dict[str, SegmentDefinition]]:
        return read_catalog(self._reader())

    def segment_versions(self, name: str) -> list[SegmentDefinition]:
        return read_versions(self._reader(), name)

    def memberships(self, profile_ids: Iterable[str]) -> dict[str, list[Membership]]:
        out: dict[str, list[Membership]] = {}
        for (doc,) in self._select_in(
                "SELECT doc FROM memberships WHERE profile_id IN ({in})"
                f" AND region IN ({self._region_sql}) ORDER BY profile_id, segment",
                list(dict.fromkeys(profile_ids)), self._region_args):
            m = Membership(**orjson.loads(doc))
            out.setdefault(m.profile_id, []).append(m)
        return out

    def segment_members(self, segment: str, after: str = "", limit: int = 1000
                        ) -> list[Membership]:
        rows = self._reader().execute(
            "SELECT doc FROM memberships WHERE segment = ? AND member = 1 AND profile_id > ?"
            f" AND region IN ({self._region_sql}) ORDER BY profile_id LIMIT ?",
            (segment, after, *self._region_args, limit)).fetchall()
        return [Membership(**orjson.loads(doc)) for (doc,) in rows]

    def count_segment(self, segment: str) -> dict[str, int]:
        rows = self._reader().execute(
            "SELECT region, count(*) FROM memberships WHERE segment = ? AND member = 1"
            f" AND region IN ({self._region_sql}) GROUP BY region",
            (segment, *self._region_args)).fetchall()
        return dict(rows)

    def due_memberships(self, now: float, limit: int) -> list[Membership]:
        rows = self._reader().execute(
            "SELECT doc FROM memberships WHERE next_change > 0 AND next_change <= ?"
            f" AND region IN ({self._region_sql}) ORDER BY next_change LIMIT ?",
            (now, *self._region_args, limit)).fetchall()
        return [Membership(**orjson.loads(doc)) for (doc,) in rows]

    def segment_log_position(self) -> str:
        row = self._reader().execute("SELECT max(seq) FROM segment_log").fetchone()
        return str(row[0] or 0)

    def segment_changes_after(self, cursor: str, limit: int
                              ) -> tuple[list[SegmentChange], str]:
        try:
            after = int(cursor or 0)
        except ValueError:
            raise ValueError("not a change-log cursor of this store") from None
        rows = self._reader().execute(
            f"SELECT seq, change FROM segment_log WHERE seq > ? AND region IN"
            f" ({self._region_sql}) ORDER BY seq LIMIT ?",
            (after, *self._region_args, limit)).fetchall()
        if not rows:
            return [], str(after)
        changes = [load_change(blob, str(seq)) for seq, blob in rows]
        return changes, str(rows[-1][0])  # type: ignore[return-value]

    def segment_log(self, since: float = 0.0, *, segment: str = "", profile_id: str = ""
                    ) -> Iterator[tuple[float, SegmentChange]]:
        """Read by the index on the change's profile ID when ``profile_id`` is given;
        otherwise the rows logged since ``since`` are scanned (the log holds
        ``segments.log_retention_hours`` of changes)."""
        sql = ("SELECT seq, logged_at, change FROM segment_log WHERE logged_at >= ?"
               f" AND region IN ({self._region_sql})")
        args: list = [since, *self._region_args]
        if profile_id:
            sql += f" AND {_LOG_PROFILE} = ?"
            args.append(profile_id)
        if segment:
            sql += f" AND {_LOG_SEGMENT} = ?"
            args.append(segment)
        cursor = self._reader().execute(sql + " ORDER BY seq", args)
        try:
            for seq, logged_at, blob in cursor:
                yield logged_at, load_change(blob, str(seq))  # type: ignore[misc]
        finally:
            cursor.close()

    def profile_ids_after(self, region: str, after: str, limit: int) -> list[str]:
        if region not in self.regions:
            return []
        rows = self._reader().execute(
            "SELECT profile_id FROM profiles WHERE region = ? AND profile_id > ?"
            " ORDER BY profile_id LIMIT ?", (region, after, limit)).fetchall()
        return [pid for (pid,) in rows]

    def segment_builds(self) -> list[SegmentBuild]:
        rows = self._reader().execute(
            f"SELECT doc FROM segment_builds WHERE region IN ({self._region_sql})"
            " ORDER BY segment, region", self._region_args).fetchall()
        return [SegmentBuild(**orjson.loads(doc)) for (doc,) in rows]

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
