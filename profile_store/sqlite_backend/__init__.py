"""Embedded profile store on SQLite (WAL): readable by a server process beside the writer."""

from idgraph.profile_store.sqlite_backend.store import SqliteProfileStore

__all__ = ["SqliteProfileStore"]
