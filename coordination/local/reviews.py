"""The local review queue: one SQLite file in the data dir (:class:`SqliteReviewQueue`).

A pair whose match probability lies in ``[review_threshold, link_threshold)`` is neither
linked nor dropped: it waits here for a person. ``accept`` and ``reject`` only record the
decision; the writer (the one process holding the data directory's writer lock) applies
accepted pairs to the graph (:meth:`idgraph.engine.Engine.apply_review_decisions`), so a
decision taken over gRPC by a reader process is applied at the writer's next batch or
start. A rejected pair is never proposed again and never auto-linked.

Stored in its own SQLite file (WAL) beside the graph log, so readers (``idgraph serve``)
and the writer can both open it. Review IDs are deterministic: ``rv_`` + a hash of the
ordered pair, so proposing the same pair twice keeps one entry.

Statuses: ``open`` -> ``accepted`` -> ``applied``; ``open`` -> ``rejected``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

from idgraph.coordination.base import STATUSES, Review, ReviewQueue, ReviewStateError, review_id_for
from idgraph.core.errors import BackendError, InvalidIdentifierError, NotFoundError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reviews (
    review_id TEXT PRIMARY KEY,
    record_a TEXT NOT NULL,
    record_b TEXT NOT NULL,
    match_weight REAL NOT NULL,
    probability REAL NOT NULL,
    model_version TEXT NOT NULL,
    contributions TEXT NOT NULL,   -- JSON [[comparison, level label, weight], ...]
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    decided_at REAL,
    decided_by TEXT,
    note TEXT
);
CREATE INDEX IF NOT EXISTS reviews_status ON reviews (status, created_at);
"""


def _review(row: tuple) -> Review:
    return Review(row[0], row[1], row[2], row[3], row[4], row[5],
                  tuple((c, lbl, w) for c, lbl, w in json.loads(row[6])), row[7], row[8],
                  row[9], row[10] or "", row[11] or "")


_COLS = ("review_id, record_a, record_b, match_weight, probability, model_version, "
         "contributions, status, created_at, decided_at, decided_by, note")


class SqliteReviewQueue(ReviewQueue):
    """The review queue in one SQLite file (WAL; thread-safe per instance)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(str(self.path), isolation_level=None,
                                       check_same_thread=False, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise BackendError(f"review queue: cannot open {self.path.name}: {exc}") from exc
        try:
            os.chmod(self.path, 0o600)
        except OSError:
            pass

    def propose(self, items: Iterable[tuple[str, str, float, float, str,
                                            tuple[tuple[str, str, float], ...]]]) -> int:
        """Queue ``(record_a, record_b, weight, probability, model, contributions)`` pairs;
        pairs already queued or decided are left as they are. Returns how many were new."""
        now = time.time()
        rows = [(review_id_for(a, b), *sorted((a, b)), w, p, model, json.dumps(contrib), "open",
                 now) for a, b, w, p, model, contrib in items]
        if not rows:
            return 0
        with self._db:
            before = self._db.total_changes
            self._db.executemany(
                "INSERT OR IGNORE INTO reviews (review_id, record_a, record_b, match_weight,"
                " probability, model_version, contributions, status, created_at)"
                " VALUES (?,?,?,?,?,?,?,?,?)", rows)
            return self._db.total_changes - before

    def get(self, review_id: str) -> Review:
        row = self._db.execute(f"SELECT {_COLS} FROM reviews WHERE review_id = ?",
                               (review_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"review {review_id!r} not found")
        return _review(row)

    def list(self, status: str = "open", limit: int = 100, after: str = "") -> list[Review]:
        """Reviews with ``status`` (``all`` for every status), oldest first, paged by
        ``after`` (the last review ID of the previous page)."""
        if status != "all" and status not in STATUSES:
            raise InvalidIdentifierError(f"status must be one of {', '.join(STATUSES)} or all; "
                               f"got {status!r}")
        where, args = ["1=1"], []
        if status != "all":
            where.append("status = ?")
            args.append(status)
        if after:
            where.append("(created_at, review_id) > (SELECT created_at, review_id FROM reviews"
                         " WHERE review_id = ?)")
            args.append(after)
        rows = self._db.execute(
            f"SELECT {_COLS} FROM reviews WHERE {' AND '.join(where)}"
            " ORDER BY created_at, review_id LIMIT ?", (*args, max(1, min(limit, 1000))))
        return [_review(r) for r in rows]

    def decide(self, review_id: str, accept: bool, decided_by: str = "", note: str = "") -> Review:
        """Record a decision on an open review. Deciding again the same way is a no-op;
        reversing a decision is refused (:class:`ReviewStateError`)."""
        review = self.get(review_id)
        wanted = "accepted" if accept else "rejected"
        if review.status == wanted or (accept and review.status == "applied"):
            return review
        if review.status != "open":
            raise ReviewStateError(
                f"review {review_id} is already {review.status}; a decision is final")
        with self._db:
            self._db.execute(
                "UPDATE reviews SET status = ?, decided_at = ?, decided_by = ?, note = ?"
                " WHERE review_id = ? AND status = 'open'",
                (wanted, time.time(), decided_by[:200], note[:1000], review_id))
        return self.get(review_id)

    def mark_applied(self, review_ids: Iterable[str]) -> None:
        with self._db:
            self._db.executemany("UPDATE reviews SET status = 'applied' WHERE review_id = ?",
                                 [(r,) for r in review_ids])

    def decided_pairs(self) -> set[tuple[str, str]]:
        """Every pair with a decision or awaiting one (sorted tuples): never proposed again."""
        return {(a, b) for a, b in self._db.execute("SELECT record_a, record_b FROM reviews")}

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATUSES, 0)
        out.update(self._db.execute("SELECT status, COUNT(*) FROM reviews GROUP BY status"))
        return out

    def close(self) -> None:
        self._db.close()
