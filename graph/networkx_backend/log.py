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

from idgraph.errors import BackendError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS link_log (
    seq INTEGER PRIMARY KEY,
    op TEXT NOT NULL,          -- record | edge | unlink | remove_record | commit
    rec TEXT,
    ident TEXT,
    itype TEXT,
    linked INTEGER,
    rule TEXT,
    reason TEXT,
    source TEXT,
    event_id TEXT,
    at REAL
)
"""

LogRow = tuple  # (op, rec, ident, itype, linked, rule, reason, source, event_id, at)


class LinkLog:
    """SQLite file in WAL mode with ``synchronous=FULL``: a committed batch survives a crash."""

    def __init__(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = path
        try:
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA cache_size=-65536")
            self._db.execute("PRAGMA wal_autocheckpoint=10000")
            self._db.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise BackendError(f"graph link log: cannot open {path.name}: {exc}") from exc
        try:
            os.chmod(path, 0o600)  # identifiers are personal data
        except OSError:
            pass

    def append(self, rows: list[LogRow]) -> None:
        """Append the rows of one batch plus its ``commit`` marker in one transaction."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "INSERT INTO link_log (op, rec, ident, itype, linked, rule, reason, source,"
                " event_id, at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
            self._db.execute("INSERT INTO link_log (op) VALUES ('commit')")
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise BackendError(f"graph link log: append of {len(rows)} rows failed: {exc}") from exc

    def replay(self) -> Iterator[LogRow]:
        """Every row in order (``commit`` rows included)."""
        cur = self._db.execute(
            "SELECT op, rec, ident, itype, linked, rule, reason, source, event_id, at"
            " FROM link_log ORDER BY seq"
        )
        while True:
            rows = cur.fetchmany(10_000)
            if not rows:
                return
            yield from rows

    def close(self) -> None:
        self._db.close()
