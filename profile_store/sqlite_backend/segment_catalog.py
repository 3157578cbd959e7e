"""Segment definitions in the embedded store's SQLite file (see
:mod:`idgraph.profile_store.segment_state` for the contract).

:class:`SqliteSegmentCatalog` opens the file for the definition tables only: ``idgraph
serve`` holds one for ``DefineSegment``/``DeleteSegment`` while its profile store is
read-only. A define or delete is one ``BEGIN IMMEDIATE`` transaction that checks the
catalog version and bumps it, so concurrent definers are serialised.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import orjson

from idgraph.core.errors import BackendError
from idgraph.core.private_files import make_private_dir, make_private_sqlite
from idgraph.core.sqlite_wal import use_wal
from idgraph.profile_store.segment_state import (
    CatalogChangedError,
    SegmentCatalog,
    SegmentDefinition,
)

SEGMENT_CATALOG_SCHEMA = """
CREATE TABLE IF NOT EXISTS segment_definitions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    doc BLOB NOT NULL,
    PRIMARY KEY (name, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS segment_catalog (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT OR IGNORE INTO segment_catalog (id, version) VALUES (1, 0);
"""


def read_catalog(db: sqlite3.Connection) -> tuple[int, dict[str, SegmentDefinition]]:
    """The catalog version and the live definitions (latest version of each name, unless
    that version deleted it), read in one snapshot."""
    db.execute("BEGIN")
    try:
        row = db.execute("SELECT version FROM segment_catalog WHERE id = 1").fetchone()
        rows = db.execute(
            "SELECT d.doc FROM segment_definitions d JOIN (SELECT name, max(version) AS v"
            " FROM segment_definitions GROUP BY name) l ON d.name = l.name AND d.version = l.v"
            " ORDER BY d.name").fetchall()
    finally:
        db.execute("COMMIT")
    live = {}
    for (doc,) in rows:
        definition = SegmentDefinition(**orjson.loads(doc))
        if not definition.deleted:
            live[definition.name] = definition
    return (row[0] if row else 0), live


def read_versions(db: sqlite3.Connection, name: str) -> list[SegmentDefinition]:
    """Every version of ``name``, oldest first."""
    rows = db.execute("SELECT doc FROM segment_definitions WHERE name = ? ORDER BY version",
                      (name,)).fetchall()
    return [SegmentDefinition(**orjson.loads(doc)) for (doc,) in rows]


class SqliteSegmentCatalog(SegmentCatalog):
    """The definition tables of the store file at ``path`` (created when missing)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            # the file holds profiles: owner-only, its -wal and -shm too
            make_private_dir(self.path.parent)
            make_private_sqlite(self.path)
            self._db = sqlite3.connect(str(self.path), isolation_level=None,
                                       check_same_thread=False, timeout=30)
            use_wal(self._db)
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SEGMENT_CATALOG_SCHEMA)
        except sqlite3.Error as exc:
            raise BackendError(f"segment catalog: cannot open {self.path.name}: {exc}") from exc

    def add_version(self, name: str, catalog_version: int,
                    build: Callable[[int], SegmentDefinition]) -> SegmentDefinition:
        with self._lock:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
                current = db.execute(
                    "SELECT version FROM segment_catalog WHERE id = 1").fetchone()[0]
                if current != catalog_version:
                    raise CatalogChangedError(
                        f"segment definitions changed meanwhile (catalog version {current},"
                        f" expected {catalog_version}); read them again")
                row = db.execute("SELECT max(version) FROM segment_definitions WHERE name = ?",
                                 (name,)).fetchone()
                definition = build(row[0] or 0)
                db.execute("INSERT INTO segment_definitions (name, version, doc) VALUES (?,?,?)",
                           (name, definition.version, orjson.dumps(definition)))
                db.execute("UPDATE segment_catalog SET version = version + 1 WHERE id = 1")
                db.execute("COMMIT")
                return definition
            except sqlite3.Error as exc:
                raise BackendError(f"segment catalog: write failed: {exc}") from exc
            finally:
                if db.in_transaction:
                    db.execute("ROLLBACK")

    def close(self) -> None:
        self._db.close()
