"""API keys in ``auth.sqlite`` (WAL mode, owner-only file): every process of the machine
(servers, the CLI) shares it; a write one commits is read by the others' next query.

Tables: ``api_keys`` (key ID -> the key as JSON, creation time) and ``api_key_used``
(key ID -> last use). One connection per store, behind a lock.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

from idgraph.auth.keys import ApiKey, KeyNotFoundError, KeyRequestError
from idgraph.auth.store import KeyStore
from idgraph.core.private_files import make_private_dir, make_private_sqlite
from idgraph.core.sqlite_wal import use_wal

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    doc BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS api_key_used (
    key_id TEXT PRIMARY KEY,
    at REAL NOT NULL
) WITHOUT ROWID;
"""


class SqliteKeyStore(KeyStore):
    """Keys in the SQLite file ``path`` (created owner-only when missing)."""

    def __init__(self, path: Path) -> None:
        path = Path(path)
        make_private_dir(path.parent)
        make_private_sqlite(path)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None,
                                   timeout=30)
        use_wal(self._db)
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def insert(self, key: ApiKey) -> None:
        with self._lock:
            try:
                self._db.execute("INSERT INTO api_keys VALUES (?, ?, ?)",
                                 (key.key_id, key.created_at, key.to_json()))
            except sqlite3.IntegrityError:
                raise KeyRequestError(f"a key with ID {key.key_id} exists") from None

    def get(self, key_id: str) -> ApiKey | None:
        with self._lock:
            row = self._db.execute("SELECT doc FROM api_keys WHERE key_id = ?",
                                   (key_id,)).fetchone()
        return ApiKey.from_json(row[0]) if row else None

    def replace(self, key: ApiKey) -> None:
        with self._lock:
            cur = self._db.execute("UPDATE api_keys SET doc = ? WHERE key_id = ?",
                                   (key.to_json(), key.key_id))
        if cur.rowcount == 0:
            raise KeyNotFoundError(f"no key with ID {key.key_id}")

    def list_keys(self) -> list[ApiKey]:
        with self._lock:
            rows = self._db.execute(
                "SELECT doc FROM api_keys ORDER BY created_at, key_id").fetchall()
        return [ApiKey.from_json(row[0]) for row in rows]

    def mark_used(self, used: Mapping[str, float]) -> None:
        if not used:
            return
        with self._lock:
            self._db.executemany(
                "INSERT INTO api_key_used VALUES (?, ?) ON CONFLICT (key_id) DO UPDATE "
                "SET at = max(at, excluded.at)", list(used.items()))

    def last_used(self, key_ids: Iterable[str]) -> dict[str, float]:
        ids = list(key_ids)
        with self._lock:
            rows = self._db.execute(
                f"SELECT key_id, at FROM api_key_used WHERE key_id IN "
                f"({','.join('?' * len(ids))})", ids).fetchall() if ids else []
        return dict(rows)

    def close(self) -> None:
        with self._lock:
            self._db.close()
