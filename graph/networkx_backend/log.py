"""Durable, append-only link log for the in-memory networkx graph.

The graph is rebuilt on start by replaying this log. Each ``apply`` or removal is one
SQLite transaction ending in a ``commit`` row, so replay sees exactly the batch boundaries
the live process saw (profile IDs are assigned at batch ends, so boundaries matter) and a
batch interrupted by a crash is absent as a whole.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from idgraph.core.errors import BackendError
from idgraph.graph.components import LogRow

_SCHEMA = """
CREATE TABLE IF NOT EXISTS link_log (
    seq INTEGER PRIMARY KEY,
    op TEXT NOT NULL,          -- record | edge | match | unlink | remove_record | commit
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
                return
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA cache_size=-65536")
            self._db.execute("PRAGMA wal_autocheckpoint=10000")
            self._db.execute(_SCHEMA)
            cols = {r[1] for r in self._db.execute("PRAGMA table_info(link_log)")}
            if "detail" not in cols:  # logs written before match edges existed
                self._db.execute("ALTER TABLE link_log ADD COLUMN detail TEXT")
        except sqlite3.Error as exc:
            raise BackendError(f"graph link log: cannot open {path.name}: {exc}") from exc
        try:
            os.chmod(path, 0o600)  # identifiers are personal data
        except OSError:
            pass

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
        """
        try:
            cols = {r[1] for r in self._db.execute("PRAGMA table_info(link_log)")}
            detail = "detail" if "detail" in cols else "NULL"
            self._db.execute("BEGIN")
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

    def close(self) -> None:
        self._db.close()
