"""Switching a SQLite connection to WAL mode when other processes open the same new file.

Changing the journal mode needs an exclusive lock on the database. When another connection
holds or is taking one (two processes creating the same file at the same moment: two
``idgraph keys create`` of a fresh data dir), SQLite can answer ``database is locked`` at
once, without waiting out the connection's busy timeout. :func:`use_wal` tries again.
"""

from __future__ import annotations

import sqlite3

from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random

WAIT_SECONDS = 30.0


def _locked(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


def use_wal(db: sqlite3.Connection, wait_seconds: float = WAIT_SECONDS) -> None:
    """``PRAGMA journal_mode=WAL`` on ``db``, retried for at most ``wait_seconds`` while the
    database is locked (then the error is raised)."""
    for attempt in Retrying(retry=retry_if_exception(_locked), reraise=True,
                            stop=stop_after_delay(wait_seconds), wait=wait_random(0.01, 0.1)):
        with attempt:
            db.execute("PRAGMA journal_mode=WAL")
