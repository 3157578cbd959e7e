"""Local writer turns: several engine processes write one data dir, one turn at a time.

The embedded graph lives in each writer's memory and is made durable by the shared link
log; the profile store is one SQLite file. Several writers (stream workers of one consumer
group, an ``idgraph ingest`` beside them) stay correct by taking *turns*: every write (an
ingest batch, applied matches or reviews, unlink, forget, reconcile) holds an exclusive
``flock`` on ``DATA_DIR/writer.lock`` from its catch-up to the end of its store write.

At the start of a turn a writer learns what the others did since its own last turn, from
the turn feed ``DATA_DIR/writer-turns.sqlite``: one row per turn, inserted *open* before the
writer changes anything and closed with the keys of the records it wrote. The engine then
replays the link log's tail into its graph, drops those records from its caches and
re-indexes them for matching (see :meth:`idgraph.engine.Engine`). A row still open when
the next turn starts means its writer died (or failed) inside the turn: the next writer
reconciles the store with the graph and rebuilds its caches from scratch.

Only the newest ``_KEEP_TURNS`` rows are kept; a writer that fell further behind than
that also rebuilds from scratch. One process, one :class:`WriterTurns` (turns are not
re-entrant across threads; the engine is not thread-safe anyway).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO

import orjson
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from idgraph.coordination.base import CatchUp, TurnStatus, WriterCoordination
from idgraph.core.errors import BackendError
from idgraph.core.private_files import make_private_dir, make_private_sqlite, open_private
from idgraph.core.sqlite_wal import use_wal

_KEEP_TURNS = 10_000
_SCHEMA = """
CREATE TABLE IF NOT EXISTS turns (
    turn INTEGER PRIMARY KEY,
    writer TEXT NOT NULL,
    state TEXT NOT NULL,          -- open | closed
    record_keys BLOB              -- JSON list of the record keys written (closed turns)
)
"""


class WriterTurns(WriterCoordination):
    """Mutual exclusion (a ``flock``) and a change feed (SQLite) for the writers of one
    data dir."""

    def __init__(self, data_dir: Path, wait_seconds: float = 120.0) -> None:
        self._unknown = False  # an erase in this turn: end() names no keys
        # the feed holds record keys (sendgrid:<email>): it and the lock are owner-only
        data_dir = make_private_dir(data_dir)
        self.writer_id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.wait_seconds = wait_seconds
        self._lock_path = data_dir / "writer.lock"
        self._fh: IO[str] | None = None
        self._turn: int | None = None
        # the feed is created under the lock: WAL set-up by two starting writers at once
        # fails with "database is locked"
        self._acquire()
        try:
            self._open(data_dir)
        finally:
            self._release()

    def _open(self, data_dir: Path) -> None:
        feed = make_private_sqlite(data_dir / "writer-turns.sqlite")
        try:
            self._db = sqlite3.connect(str(feed), timeout=30,
                                       isolation_level=None, check_same_thread=False)
            use_wal(self._db)
            # NORMAL: a committed turn survives a process crash (WAL); after a power loss
            # every writer restarts, and a start replays the log and reconciles anyway
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
            row = self._db.execute("SELECT MAX(turn) FROM turns").fetchone()
        except sqlite3.Error as exc:
            raise BackendError(f"writer turns: cannot open the turn feed: {exc}") from exc
        # a new writer starts from a full replay of the log and an empty cache: it has
        # seen everything up to now, except a turn left open by a writer that died
        self._last = row[0] or 0
        open_row = self._db.execute("SELECT MIN(turn) FROM turns WHERE state = 'open'").fetchone()
        if open_row[0] is not None:
            self._last = open_row[0] - 1

    def begin(self) -> CatchUp:
        """Wait for the data dir's lock (up to ``wait_seconds``), open a turn, and say what
        other writers did since this writer's last turn."""
        if self._fh is not None:
            raise RuntimeError("writer turns: a turn is already open in this process")
        self._acquire()
        try:
            catch = self._read_feed()
            cur = self._db.execute("INSERT INTO turns (writer, state) VALUES (?, 'open')",
                                   (self.writer_id,))
            self._turn = cur.lastrowid
        except sqlite3.Error as exc:
            self._release()
            raise BackendError(f"writer turns: cannot open a turn: {exc}") from exc
        except BaseException:
            self._release()
            raise
        return catch

    def _acquire(self) -> None:
        """Take the data dir's flock, waiting at most ``wait_seconds``."""
        fh = open_private(self._lock_path, "a+", encoding="utf-8")  # held for the turn
        # poll the non-blocking lock: 0.5 ms doubling to 20 ms between tries (a turn is
        # usually short), for at most wait_seconds
        waiting = Retrying(retry=retry_if_exception_type(BlockingIOError),
                           wait=wait_exponential(multiplier=0.0005, max=0.02),
                           stop=stop_after_delay(self.wait_seconds), reraise=True)
        try:
            waiting(fcntl.flock, fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise BackendError(
                f"writer turns: another writer of {self._lock_path.parent} held the "
                f"lock for more than {self.wait_seconds:.0f} s") from None
        except BaseException:
            fh.close()
            raise
        self._fh = fh

    def end(self, record_keys: Mapping[str, str]) -> None:
        """Close the open turn with the keys of the records it wrote (JSON ``null`` after
        an :meth:`erase` in the turn: readers rebuild); release the lock. The regions are
        not kept: the feed is one machine's file."""
        keys = None if self._unknown else list(record_keys)
        self._unknown = False
        try:
            self._db.execute("UPDATE turns SET state = 'closed', record_keys = ? WHERE turn = ?",
                             (orjson.dumps(keys), self._turn))
            self._last = self._turn
            if self._turn % 1000 == 0:
                self._db.execute("DELETE FROM turns WHERE turn <= ?", (self._turn - _KEEP_TURNS,))
        except sqlite3.Error as exc:
            raise BackendError(f"writer turns: cannot close turn {self._turn}: {exc}") from exc
        finally:
            self._release()

    def erase(self, record_keys: Iterable[str]) -> int:
        gone = set(record_keys)
        if not gone:
            return 0
        rewritten = 0
        try:
            self._db.execute("PRAGMA secure_delete=ON")
            self._db.execute("BEGIN IMMEDIATE")
            rows = self._db.execute(
                "SELECT turn, record_keys FROM turns WHERE record_keys IS NOT NULL").fetchall()
            for turn, keys in rows:
                named = orjson.loads(keys)
                if named and gone.intersection(named):
                    # a turn that wrote forgotten records says "unknown": readers rebuild
                    self._db.execute("UPDATE turns SET record_keys = ? WHERE turn = ?",
                                     (orjson.dumps(None), turn))
                    rewritten += 1
            self._db.execute("COMMIT")
            self._db.execute("PRAGMA secure_delete=OFF")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise BackendError(f"writer turns: cannot erase from the feed: {exc}") from exc
        self._unknown = True
        return rewritten

    def abort(self) -> None:
        """Release the lock leaving the turn open: the next turn (of any writer, this one
        included) treats it as a crash and reconciles."""
        self._last = (self._turn or 1) - 1
        self._unknown = False
        self._release()

    def close(self) -> None:
        if self._fh is not None:
            self.abort()
        self._db.close()

    def status(self) -> TurnStatus:
        return TurnStatus(holding=self._fh is not None, turn=self._turn or self._last)

    def _read_feed(self) -> CatchUp:
        rows = self._db.execute(
            "SELECT turn, writer, state, record_keys FROM turns WHERE turn > ? ORDER BY turn",
            (self._last,)).fetchall()
        catch = CatchUp(record_keys=set())
        expected = self._last + 1
        for turn, writer, state, keys in rows:
            if turn != expected:
                catch.record_keys = None  # pruned: we were too far behind
            expected = turn + 1
            if state == "open":
                catch.crashed = True
                catch.record_keys = None
            if writer != self.writer_id or state == "open":
                catch.foreign_turns += 1
            if catch.record_keys is not None and keys is not None:
                named = orjson.loads(keys)
                if named is None:  # a forget's turn: which records is not said
                    catch.record_keys = None
                else:
                    catch.record_keys.update(named)
        if catch.crashed:
            # close the dead writer's rows: one reconciliation repairs them all
            self._db.execute("UPDATE turns SET state = 'closed' WHERE state = 'open'")
        return catch

    def _release(self) -> None:
        fh, self._fh, self._turn = self._fh, None, None
        if fh is not None:
            fh.close()  # closing the descriptor releases the flock
