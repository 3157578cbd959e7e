"""API keys in one SQLite file (``auth.sqlite`` in the data dir)."""

from idgraph.auth.sqlite_backend.keys import SqliteKeyStore

__all__ = ["SqliteKeyStore"]
