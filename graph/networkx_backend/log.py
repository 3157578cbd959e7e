"""Durable, append-only link log for the in-memory networkx graph.

The graph is rebuilt on start by replaying this log. Each ``apply`` or removal is one
SQLite transaction ending in a ``commit`` row, so replay sees exactly the batch boundaries
the live process saw (profile IDs are assigned at batch ends, so boundaries matter) and a
batch interrupted by a crash is absent as a whole.

Erasure (a privacy forget, :meth:`LinkLog.erase`) is the one change to rows already
written: the forgotten record keys, identifiers, names and event IDs are replaced in place
by keyed tokens (``seq`` numbers kept), ``pinned_ids`` keeps the profile IDs a replay can
no longer derive from a token, and an ``erase`` row (listed in ``erasures``) tells readers
that tail the log that rows they have applied changed: they replay it from the start.
Deleted content is overwritten (``secure_delete``), the file rebuilt (``VACUUM``) and the
write-ahead log truncated.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from idgraph.core.errors import BackendError
from idgraph.core.failpoints import failpoint
from idgraph.core.private_files import make_private_dir, make_private_sqlite
from idgraph.core.sqlite_wal import use_wal
from idgraph.graph.components import LogRow

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS link_log (
    seq INTEGER PRIMARY KEY,
    op TEXT NOT NULL,          -- record | edge | match | unlink | remove_record | commit
                               -- (and name | generic | detach | erase)
    rec TEXT,
    ident TEXT,
    itype TEXT,
    linked INTEGER,
    rule TEXT,
    reason TEXT,
    source TEXT,
    event_id TEXT,
    at REAL,
    detail TEXT                -- match edges: JSON weight, probability, model, contributions
)
"""

_ERASURE_SCHEMA = (
    # one row per erasure: the seq of its ``erase`` row and the tokens of the record keys it
    # forgot (JSON list); replay applies the erasure there (see NetworkxGraph.erase_history)
    """CREATE TABLE IF NOT EXISTS erasures (
        seq INTEGER PRIMARY KEY,
        tokens TEXT NOT NULL
    )""",
    # profile IDs a replay must give although their founding record is now a token (or a
    # counter made them depend on an erased ID): by the graph's sequence number at which the
    # ID was assigned; rewritten whole by every erasure
    """CREATE TABLE IF NOT EXISTS pinned_ids (
        assigned INTEGER PRIMARY KEY,
        founder TEXT NOT NULL,
        profile_id TEXT NOT NULL
    )""",
    # every token an erasure wrote (record keys, identifiers, event IDs): a later erasure
    # leaves them as they are instead of taking one for a value
    "CREATE TABLE IF NOT EXISTS tokens (token TEXT PRIMARY KEY)",
)

_BUSY_TIMEOUT_MS = 5000  # sqlite3.connect's default timeout, restored after a checkpoint

RESET = "reset"
"""The op of the row :meth:`LinkLog.replay` yields first when the replay starts from the
beginning: its ``detail`` is JSON ``{"pins": [[assigned, founder, profile_id], ...],
"erasures": {seq: [token, ...]}}``."""

#: how long an erasure waits for readers to leave the write-ahead log before truncating it
#: (ms); later appends retry without waiting
_TRUNCATE_WAIT_MS = 1000



class LinkLog:
    """SQLite file in WAL mode with ``synchronous=FULL``: a committed batch survives a crash.

    ``read_only`` opens it for a reader that replays what the writer committed.
    """

    def __init__(self, path: Path, read_only: bool = False) -> None:
        path = Path(path)
        self.path = path
        self.read_only = read_only
        try:
            if read_only:
                if not path.exists():
                    raise BackendError(f"graph link log: {path.name} does not exist yet; run "
                                       "an ingest first")
                self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True,
                                           isolation_level=None, check_same_thread=False)
                self._truncate_pending = False
                return
            # identifiers are personal data: the log (and so its -wal and -shm) owner-only
            make_private_dir(path.parent)
            make_private_sqlite(path)
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            use_wal(self._db)
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA cache_size=-65536")
            self._db.execute("PRAGMA wal_autocheckpoint=10000")
            self._db.execute(_SCHEMA)
            for stmt in _ERASURE_SCHEMA:
                self._db.execute(stmt)
            # a freed cell or page is overwritten with zeros (erase() rewrites rows in place)
            self._db.execute("PRAGMA secure_delete=ON")
            cols = {r[1] for r in self._db.execute("PRAGMA table_info(link_log)")}
            if "detail" not in cols:  # logs written before match edges existed
                self._db.execute("ALTER TABLE link_log ADD COLUMN detail TEXT")
        except sqlite3.Error as exc:
            raise BackendError(f"graph link log: cannot open {path.name}: {exc}") from exc
        self._truncate_pending = False  # an erasure could not truncate the WAL yet

    def append(self, rows: list[LogRow]) -> int:
        """Append the rows of one batch plus its ``commit`` marker in one transaction;
        returns the sequence number of the ``commit`` row."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "INSERT INTO link_log (op, rec, ident, itype, linked, rule, reason, source,"
                " event_id, at, detail) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
            failpoint("writer.graph.logging")
            seq = self._db.execute("INSERT INTO link_log (op) VALUES ('commit')").lastrowid
            self._db.execute("COMMIT")
            return seq
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise BackendError(f"graph link log: append of {len(rows)} rows failed: {exc}") from exc

    def replay(self, after: int = 0) -> Iterator[tuple[int, LogRow]]:
        """``(seq, row)`` for every row after ``after``, in order (``commit`` rows included).

        Reads one snapshot: rows a writer commits meanwhile are not seen, and a reader
        stops at the last ``commit`` row it saw (a batch is never half-replayed).

        A replay from the start begins with a :data:`RESET` row (seq 0) carrying the pinned
        profile IDs and the erasures. If an erasure rewrote the log after ``after``, rows
        the caller has applied may have changed: the replay then starts from the
        beginning, with that row (the caller drops what it holds).
        """
        try:
            cols = {r[1] for r in self._db.execute("PRAGMA table_info(link_log)")}
            detail = "detail" if "detail" in cols else "NULL"
            self._db.execute("BEGIN")
            if after and self._erased_after(after):
                after = 0
            if not after:
                yield 0, (RESET, None, None, None, None, None, None, None, None, None,
                          json.dumps(self._erasure_state()))
            cur = self._db.execute(
                "SELECT seq, op, rec, ident, itype, linked, rule, reason, source, event_id, at,"
                f" {detail} FROM link_log WHERE seq > ? ORDER BY seq", (after,)
            )
            while True:
                rows = cur.fetchmany(10_000)
                if not rows:
                    break
                for row in rows:
                    yield row[0], row[1:]
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return
            raise BackendError(f"graph link log: replay failed: {exc}") from exc
        finally:
            if self._db.in_transaction:
                self._db.execute("COMMIT")

    def _erased_after(self, after: int) -> bool:
        try:
            return self._db.execute("SELECT 1 FROM erasures WHERE seq > ? LIMIT 1",
                                    (after,)).fetchone() is not None
        except sqlite3.OperationalError as exc:  # a log no erasing writer has opened yet
            if "no such table" in str(exc):
                return False
            raise

    def _erasure_state(self) -> dict:
        try:
            pins = self._db.execute(
                "SELECT assigned, founder, profile_id FROM pinned_ids ORDER BY assigned"
            ).fetchall()
            erasures = self._db.execute("SELECT seq, tokens FROM erasures").fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return {"pins": [], "erasures": {}}
            raise
        return {"pins": [list(p) for p in pins],
                "erasures": {str(seq): json.loads(tokens) for seq, tokens in erasures}}

    def identifiers_of(self, record_keys: list[str]) -> set[str]:
        """Every identifier an edge row (or unlink row) of these records names."""
        try:
            return {r[0] for r in self._db.execute(
                "SELECT DISTINCT ident FROM link_log WHERE op IN ('edge', 'unlink')"
                " AND rec IN (SELECT value FROM json_each(?))"
                " AND ident NOT IN (SELECT token FROM tokens)", (json.dumps(record_keys),))}
        except sqlite3.Error as exc:
            raise BackendError(f"graph link log: read failed: {exc}") from exc

    def erase(self, records: Mapping[str, str], identifiers: Mapping[str, str],
              token: Callable[[str], str], pins: list[tuple[int, str, str]],
              at: float) -> tuple[int, int]:
        """Rewrite every row naming a forgotten record key (``records``: key -> token; in
        ``rec``, or in ``ident`` of a ``match`` row) or a forgotten identifier
        (``identifiers``: key -> token; ``ident`` of the other rows): the value becomes
        its token, the row's event ID ``token(event_id)`` (unless an earlier erasure made
        it a token already), a forgotten record's ``name`` row loses its name. ``seq``
        numbers stay; the tokens written are listed in ``tokens``. In the same transaction
        ``pinned_ids``
        becomes ``pins`` ((assigned, founder, profile ID)) and an ``erase`` row (tokens
        in ``erasures``) plus a ``commit`` row are appended.

        Returns (rows rewritten, seq of the closing ``commit`` row); (0, 0) and nothing
        written when no row names a value. Then the deleted content is made physically
        gone: :meth:`scrub`.
        """
        keys = json.dumps(sorted(records))
        idents = json.dumps(sorted(identifiers))
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            # json_each: the values are bound, never put in a (temporary) table on disk
            found = db.execute(
                "SELECT seq, op, rec, ident, event_id, detail FROM link_log"
                " WHERE rec IN (SELECT value FROM json_each(?1))"
                " OR (op = 'match' AND ident IN (SELECT value FROM json_each(?1)))"
                " OR (op <> 'match' AND ident IN (SELECT value FROM json_each(?2)))",
                (keys, idents)).fetchall()
            if not found:
                db.execute("ROLLBACK")
                return 0, 0
            event_ids = {r[4] for r in found if r[4]}
            tokens = {e: e for e, in db.execute(
                "SELECT token FROM tokens WHERE token IN (SELECT value FROM json_each(?))",
                (json.dumps(sorted(event_ids)),))}
            tokens.update((e, token(e)) for e in event_ids - tokens.keys())
            updates = []
            for seq, op, rec, ident, event_id, detail in found:
                updates.append((
                    records.get(rec, rec),
                    (records if op == "match" else identifiers).get(ident, ident),
                    tokens[event_id] if event_id else event_id,
                    None if op == "name" and rec in records else detail,
                    seq))
            db.executemany("UPDATE link_log SET rec = ?, ident = ?, event_id = ?, detail = ?"
                           " WHERE seq = ?", updates)
            db.executemany("INSERT OR IGNORE INTO tokens (token) VALUES (?)",
                           [(t,) for t in {*records.values(), *identifiers.values(),
                                           *tokens.values()}])
            db.execute("DELETE FROM pinned_ids")
            db.executemany("INSERT INTO pinned_ids (assigned, founder, profile_id)"
                           " VALUES (?, ?, ?)", pins)
            marker = db.execute("INSERT INTO link_log (op, at) VALUES ('erase', ?)",
                                (at,)).lastrowid
            db.execute("INSERT INTO erasures (seq, tokens) VALUES (?, ?)",
                       (marker, json.dumps(sorted(set(records.values())))))
            seq = db.execute("INSERT INTO link_log (op) VALUES ('commit')").lastrowid
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise BackendError(f"graph link log: erasure failed: {exc}") from exc
        return len(updates), seq

    def scrub(self) -> None:
        """After :meth:`erase`: rebuild the file (``VACUUM``: no free page or unused cell
        space keeps old content, whatever wrote it) and truncate the write-ahead log, whose
        old frames hold the rows as they were. VACUUM runs as one write transaction through
        the WAL, so readers keep reading their snapshot meanwhile; the truncation needs the
        readers to have left the old frames: if one stays longer than a second, later
        appends retry it (without waiting). Failures are logged, never raised: the rows are
        rewritten, and with ``secure_delete`` their old cells were overwritten already."""
        try:
            self._db.execute("VACUUM")
        except sqlite3.Error as exc:
            log.warning("graph link log: VACUUM after an erasure failed (%s); deleted cells "
                        "were overwritten, free pages stay until the next erasure", exc)
        self._truncate_wal(_TRUNCATE_WAIT_MS)

    def retry_truncate(self) -> None:
        """After a write: truncate the write-ahead log if an erasure could not (no wait)."""
        if self._truncate_pending:
            self._truncate_wal(0)

    def _truncate_wal(self, wait_ms: int) -> bool:
        """``wal_checkpoint(TRUNCATE)``, waiting at most ``wait_ms`` for readers; whether it
        completed (if not, the next append tries again)."""
        db = self._db
        try:
            db.execute(f"PRAGMA busy_timeout = {int(wait_ms)}")
            busy = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        except sqlite3.Error as exc:
            log.warning("graph link log: WAL checkpoint failed (%s)", exc)
            busy = 1
        finally:
            db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        if busy and not self._truncate_pending:
            log.info("graph link log: a reader holds the write-ahead log; truncating it "
                     "after a later write")
        self._truncate_pending = bool(busy)
        return not busy

    def close(self) -> None:
        self.retry_truncate()
        self._db.close()
