"""The privacy ledger in one SQLite file (``privacy.sqlite`` in the data dir), WAL mode, so
the writer, every server and the CLI share it: a statement one process commits is read by
the others' next query.

Tables: ``consent_entries`` (the append-only ledger: entry ID, capture order, the entry
as JSON), ``consent_covers`` (subject -> entry, what a history and an erase look up),
``consent_current`` (subject, purpose -> the latest state), ``purposes`` (every version),
``suppressions`` (keyed hashes), ``suppressed_counts``, ``forget_requests`` and
``privacy_audit``. Writes are single transactions; one connection serves every thread of
a process behind a lock (queries take microseconds).
"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

import orjson

from idgraph.core.private_files import make_private_dir, make_private_sqlite
from idgraph.core.sqlite_wal import use_wal
from idgraph.privacy.consent import ConsentEntry, ConsentState, newer
from idgraph.privacy.ledger import AuditEntry, ForgetRequest, PrivacyLedger, Suppression
from idgraph.privacy.purposes import Purpose, PurposeRegistry, default_purposes, registry_of

SCHEMA = """
CREATE TABLE IF NOT EXISTS consent_entries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    entry_id TEXT NOT NULL UNIQUE,
    captured_at REAL NOT NULL,
    doc BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS consent_covers (
    subject TEXT NOT NULL,
    entry_id TEXT NOT NULL,
    PRIMARY KEY (subject, entry_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS consent_covers_entry ON consent_covers (entry_id);
CREATE TABLE IF NOT EXISTS consent_current (
    subject TEXT NOT NULL,
    purpose TEXT NOT NULL,
    status TEXT NOT NULL,
    captured_at REAL NOT NULL,
    entry_id TEXT NOT NULL,
    PRIMARY KEY (subject, purpose)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS purposes (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    doc BLOB NOT NULL,
    PRIMARY KEY (name, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS suppressions (
    value_hash TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    request_id TEXT NOT NULL,
    at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS suppressions_request ON suppressions (request_id);
CREATE TABLE IF NOT EXISTS suppressed_counts (
    reason TEXT PRIMARY KEY,
    events INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS forget_requests (
    request_id TEXT PRIMARY KEY,
    subject_hash TEXT NOT NULL,
    requested_at REAL NOT NULL,
    status TEXT NOT NULL,
    doc BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS forget_requests_status ON forget_requests (status);
CREATE INDEX IF NOT EXISTS forget_requests_subject ON forget_requests (subject_hash);
CREATE INDEX IF NOT EXISTS forget_requests_newest ON forget_requests (requested_at, request_id);
CREATE TABLE IF NOT EXISTS cursors (
    name TEXT PRIMARY KEY,
    cursor TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS privacy_audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    target TEXT NOT NULL,
    doc BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS privacy_audit_target ON privacy_audit (target, seq);
"""

_CHUNK = 500  # bound parameters per IN (...) query


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i:i + _CHUNK]


def _marks(n: int) -> str:
    return ",".join("?" * n)


class SqlitePrivacyLedger(PrivacyLedger):
    """The ledger in the SQLite file at ``path`` (created 0600 when missing)."""

    driver_errors = (sqlite3.Error,)

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        # owner-only before SQLite opens it: SQLite gives its -wal and -shm files the mode
        # of the database file (an existing file of an older release is narrowed)
        make_private_dir(self.path.parent)
        make_private_sqlite(self.path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), isolation_level=None,
                                   check_same_thread=False, timeout=30)
        use_wal(self._db)
        self._db.execute("PRAGMA synchronous=FULL")
        # an erased consent entry is overwritten with zeros, not left in a free page
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.executescript(SCHEMA)

    def _tx(self):
        return _Transaction(self._db, self._lock)

    # --- consent ---------------------------------------------------------------------

    def append_consent(self, entries: Iterable[ConsentEntry]) -> int:
        entries = list({e.entry_id: e for e in entries}.values())
        if not entries:
            return 0
        with self._tx() as db:
            known: set[str] = set()
            for part in _chunks([e.entry_id for e in entries]):
                known.update(r[0] for r in db.execute(
                    f"SELECT entry_id FROM consent_entries WHERE entry_id IN"
                    f" ({_marks(len(part))})", part))
            new = [e for e in entries if e.entry_id not in known]
            if not new:
                return 0
            db.executemany("INSERT INTO consent_entries (entry_id, captured_at, doc)"
                           " VALUES (?, ?, ?)",
                           [(e.entry_id, e.captured_at, orjson.dumps(e)) for e in new])
            candidates: dict[tuple[str, str], ConsentState] = {}
            covers = []
            for e in new:
                for subject in dict.fromkeys(e.covers or [e.subject]):
                    covers.append((subject, e.entry_id))
                    state = ConsentState(subject, e.purpose, e.status, e.captured_at,
                                         e.entry_id)
                    if newer(state, candidates.get((subject, e.purpose))):
                        candidates[(subject, e.purpose)] = state
            db.executemany("INSERT OR IGNORE INTO consent_covers VALUES (?, ?)", covers)
            current: dict[tuple[str, str], ConsentState] = {}
            for part in _chunks(sorted({s for s, _ in candidates})):
                for row in db.execute(
                        "SELECT subject, purpose, status, captured_at, entry_id FROM"
                        f" consent_current WHERE subject IN ({_marks(len(part))})", part):
                    current[(row[0], row[1])] = ConsentState(*row)
            db.executemany(
                "INSERT OR REPLACE INTO consent_current VALUES (?, ?, ?, ?, ?)",
                [(c.subject, c.purpose, c.status, c.captured_at, c.entry_id)
                 for key, c in candidates.items() if newer(c, current.get(key))])
        return len(new)

    def consent_states(self, subjects: Iterable[str]) -> list[ConsentState]:
        subjects = list(dict.fromkeys(subjects))
        out = []
        with self._lock:
            for part in _chunks(subjects):
                out.extend(ConsentState(*row) for row in self._db.execute(
                    "SELECT subject, purpose, status, captured_at, entry_id FROM"
                    f" consent_current WHERE subject IN ({_marks(len(part))})", part))
        return out

    def consent_entries(self, subjects: Iterable[str], limit: int = 1000
                        ) -> list[ConsentEntry]:
        ids: set[str] = set()
        subjects = list(dict.fromkeys(subjects))
        with self._lock:
            for part in _chunks(subjects):
                ids.update(r[0] for r in self._db.execute(
                    f"SELECT entry_id FROM consent_covers WHERE subject IN ({_marks(len(part))})",
                    part))
            docs = []
            for part in _chunks(sorted(ids)):
                docs.extend(self._db.execute(
                    "SELECT captured_at, seq, doc FROM consent_entries WHERE entry_id IN"
                    f" ({_marks(len(part))})", part).fetchall())
        docs.sort(key=lambda r: (r[0], r[1]))
        return [ConsentEntry(**orjson.loads(d)) for _, _, d in docs[-limit:]] if limit else []

    def consent_log_after(self, cursor: str, limit: int) -> tuple[list[ConsentEntry], str]:
        try:
            after = int(cursor or 0)
        except ValueError:
            raise ValueError("not a consent log cursor of this ledger") from None
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, doc FROM consent_entries WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, limit)).fetchall()
        if not rows:
            return [], cursor
        return [ConsentEntry(**orjson.loads(d)) for _, d in rows], str(rows[-1][0])

    def get_cursor(self, name: str) -> str:
        with self._lock:
            row = self._db.execute("SELECT cursor FROM cursors WHERE name = ?",
                                   (name,)).fetchone()
        return row[0] if row else ""

    def put_cursor(self, name: str, cursor: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO cursors VALUES (?, ?)", (name, cursor))

    def erase_consent(self, subjects: Iterable[str]) -> int:
        subjects = list(dict.fromkeys(subjects))
        with self._tx() as db:
            ids: set[str] = set()
            for part in _chunks(subjects):
                ids.update(r[0] for r in db.execute(
                    f"SELECT entry_id FROM consent_covers WHERE subject IN ({_marks(len(part))})",
                    part))
                db.execute(f"DELETE FROM consent_current WHERE subject IN ({_marks(len(part))})",
                           part)
            for part in _chunks(sorted(ids)):
                marks = _marks(len(part))
                # the other subjects an erased entry covered keep no state from it either
                for (subject,) in db.execute(
                        f"SELECT DISTINCT subject FROM consent_covers WHERE entry_id IN ({marks})",
                        part).fetchall():
                    db.execute(f"DELETE FROM consent_current WHERE subject = ? AND entry_id"
                               f" IN ({marks})", [subject, *part])
                db.execute(f"DELETE FROM consent_covers WHERE entry_id IN ({marks})", part)
                db.execute(f"DELETE FROM consent_entries WHERE entry_id IN ({marks})", part)
        return len(ids)

    # --- purposes --------------------------------------------------------------------

    def _latest_purposes(self) -> list[Purpose]:
        rows = self._db.execute(
            "SELECT p.doc FROM purposes p JOIN (SELECT name, max(version) AS v FROM purposes"
            " GROUP BY name) l ON p.name = l.name AND p.version = l.v ORDER BY p.name"
        ).fetchall()
        return [_purpose(doc) for (doc,) in rows]

    def purposes(self) -> PurposeRegistry:
        with self._lock:
            latest = self._latest_purposes()
            (count,) = self._db.execute("SELECT count(*) FROM purposes").fetchone()
        if not latest:
            return registry_of(default_purposes(), 0)
        return registry_of(latest, count)

    def purpose_versions(self, name: str) -> list[Purpose]:
        with self._lock:
            rows = self._db.execute("SELECT doc FROM purposes WHERE name = ? ORDER BY version",
                                    (name,)).fetchall()
        return [_purpose(doc) for (doc,) in rows]

    def define_purposes(self, purposes: Iterable[Purpose], author: str, at: float
                        ) -> list[Purpose]:
        added = []
        with self._tx() as db:
            latest = {p.name: p for p in self._latest_purposes()}
            if not latest:  # the defaults become version 1 before anything changes them
                for p in default_purposes():
                    p = dataclasses.replace(p, version=1, defined_at=at, author="default")
                    db.execute("INSERT INTO purposes VALUES (?, 1, ?)",
                               (p.name, orjson.dumps(p)))
                    latest[p.name] = p
            for p in purposes:
                old = latest.get(p.name)
                if old is not None and old.same_rules(p):
                    continue
                p = dataclasses.replace(p, version=(old.version if old else 0) + 1,
                                        defined_at=at, author=author)
                db.execute("INSERT INTO purposes VALUES (?, ?, ?)",
                           (p.name, p.version, orjson.dumps(p)))
                latest[p.name] = p
                added.append(p)
        return added

    # --- suppression -----------------------------------------------------------------

    def suppress(self, suppressions: Iterable[Suppression]) -> int:
        added = 0
        with self._tx() as db:
            for s in suppressions:
                added += db.execute(
                    "INSERT OR IGNORE INTO suppressions VALUES (?, ?, ?, ?)",
                    (s.value_hash, s.reason, s.request_id, s.at)).rowcount
        return added

    def suppressed(self, value_hashes: Iterable[str]) -> dict[str, str]:
        hashes = list(dict.fromkeys(value_hashes))
        out: dict[str, str] = {}
        with self._lock:
            for part in _chunks(hashes):
                out.update(self._db.execute(
                    f"SELECT value_hash, reason FROM suppressions WHERE value_hash IN"
                    f" ({_marks(len(part))})", part).fetchall())
        return out

    def count_suppressed(self, events_by_reason: dict[str, int]) -> None:
        with self._tx() as db:
            db.executemany(
                "INSERT INTO suppressed_counts VALUES (?, ?) ON CONFLICT (reason)"
                " DO UPDATE SET events = events + excluded.events",
                [(r, n) for r, n in events_by_reason.items() if n])

    def suppressed_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._db.execute("SELECT reason, events FROM suppressed_counts"))

    def unsuppress(self, request_id: str) -> int:
        with self._tx() as db:
            return db.execute("DELETE FROM suppressions WHERE request_id = ?",
                              (request_id,)).rowcount

    # --- forget requests and audit ---------------------------------------------------

    def put_forget_request(self, request: ForgetRequest) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO forget_requests VALUES (?, ?, ?, ?, ?)",
                       (request.request_id, request.subject_hash, request.requested_at,
                        request.status, orjson.dumps(request)))

    def forget_request(self, request_id: str) -> ForgetRequest | None:
        with self._lock:
            row = self._db.execute("SELECT doc FROM forget_requests WHERE request_id = ?",
                                   (request_id,)).fetchone()
        return ForgetRequest(**orjson.loads(row[0])) if row else None

    def forget_requests_of(self, subject_hash: str) -> list[ForgetRequest]:
        with self._lock:
            rows = self._db.execute(
                "SELECT doc FROM forget_requests WHERE subject_hash = ?"
                " ORDER BY requested_at, request_id", (subject_hash,)).fetchall()
        return [ForgetRequest(**orjson.loads(d)) for (d,) in rows]

    def open_forget_requests(self) -> list[ForgetRequest]:
        with self._lock:
            rows = self._db.execute(
                "SELECT doc FROM forget_requests WHERE status IN ('pending', 'in_progress')"
                " ORDER BY requested_at, request_id").fetchall()
        return [ForgetRequest(**orjson.loads(d)) for (d,) in rows]

    def list_forget_requests(self, status: str = "", before: tuple[float, str] | None = None,
                             limit: int = 100) -> list[ForgetRequest]:
        sql, args = "SELECT doc FROM forget_requests WHERE 1", []
        if status:
            sql += " AND status = ?"
            args.append(status)
        if before is not None:
            sql += " AND (requested_at, request_id) < (?, ?)"
            args.extend(before)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY requested_at DESC, request_id DESC"
                                    " LIMIT ?", (*args, limit)).fetchall()
        return [ForgetRequest(**orjson.loads(d)) for (d,) in rows]

    def audit(self, entry: AuditEntry) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO privacy_audit (target, doc) VALUES (?, ?)",
                       (entry.target, orjson.dumps(entry)))

    def audit_entries(self, limit: int = 1000) -> list[AuditEntry]:
        with self._lock:
            rows = self._db.execute("SELECT doc FROM privacy_audit ORDER BY seq DESC LIMIT ?",
                                    (limit,)).fetchall()
        return [AuditEntry(**orjson.loads(d)) for (d,) in reversed(rows)]

    def audit_of(self, target: str, limit: int = 10_000) -> list[AuditEntry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT doc FROM privacy_audit WHERE target = ? ORDER BY seq DESC LIMIT ?",
                (target, limit)).fetchall()
        return [AuditEntry(**orjson.loads(d)) for (d,) in reversed(rows)]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _purpose(doc: bytes) -> Purpose:
    fields = orjson.loads(doc)
    for key in ("opt_in_regions", "attributes", "event_types"):
        fields[key] = tuple(fields.get(key, ()))
    return Purpose(**fields)


class _Transaction:
    """``with``: the lock, ``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error)."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock) -> None:
        self._db, self._lock = db, lock

    def __enter__(self) -> sqlite3.Connection:
        self._lock.acquire()
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise
        return self._db

    def __exit__(self, exc_type, *_: object) -> None:
        try:
            self._db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self._lock.release()
