"""WAL mode while another connection holds the database's lock (:mod:`idgraph.core.sqlite_wal`):
two processes creating the same file at once made ``idgraph keys create`` fail with
"database is locked" (seen in CI)."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from idgraph.core.sqlite_wal import use_wal


def _locked_for(path, seconds: float) -> threading.Thread:
    holder = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")

    def release() -> None:
        time.sleep(seconds)
        holder.execute("COMMIT")
        holder.close()

    thread = threading.Thread(target=release)
    thread.start()
    return thread


def test_wal_is_set_once_the_other_connection_lets_go(tmp_path):
    path = tmp_path / "new.sqlite"
    release = _locked_for(path, 0.5)
    db = sqlite3.connect(str(path), isolation_level=None, timeout=0)  # no busy wait
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        db.execute("PRAGMA journal_mode=WAL")  # what the stores did: fails at once
    started = time.monotonic()
    use_wal(db)
    release.join()
    assert time.monotonic() - started >= 0.3
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_lock_held_longer_than_the_wait_is_raised(tmp_path):
    path = tmp_path / "held.sqlite"
    release = _locked_for(path, 1.0)
    db = sqlite3.connect(str(path), isolation_level=None, timeout=0)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        use_wal(db, wait_seconds=0.2)
    release.join()
