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

Each review keeps the home regions of its records (``region_a``, ``region_b``). A file
created before they existed gets the two columns when it is opened (``ALTER TABLE ... ADD
COLUMN``, its reviews with regions unknown: "").
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

from idgraph.coordination.base import (
    STATUSES,
    Review,
    ReviewQueue,
    ReviewStateError,
    may_be_in,
    review_id_for,
)
from idgraph.core.errors import BackendError, InvalidIdentifierError, NotFoundError
from idgraph.core.private_files import make_private_dir, make_private_sqlite
from idgraph.core.sqlite_wal import use_wal

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
    note TEXT,
    region_a TEXT NOT NULL DEFAULT '',   -- home region of record_a's profile when queued
    region_b TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS reviews_status ON reviews (status, created_at);
"""


def _review(row: tuple) -> Review:
    return Review(row[0], row[1], row[2], row[3], row[4], row[5],
                  tuple((c, lbl, w) for c, lbl, w in json.loads(row[6])), row[7], row[8],
                  row[9], row[10] or "", row[11] or "", row[12], row[13])


_COLS = ("review_id, record_a, record_b, match_weight, probability, model_version, "
         "contributions, status, created_at, decided_at, decided_by, note, region_a, region_b")
_REGION_COLUMNS = ("region_a", "region_b")


class SqliteReviewQueue(ReviewQueue):
    """The review queue in one SQLite file (WAL; thread-safe per instance)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        # the pairs name records (keys such as sendgrid:<email>): owner-only, -wal/-shm too
        make_private_dir(self.path.parent)
        make_private_sqlite(self.path)
        try:
            self._db = sqlite3.connect(str(self.path), isolation_level=None,
                                       check_same_thread=False, timeout=10)
            use_wal(self._db)
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            self._add_region_columns()
        except sqlite3.Error as exc:
            raise BackendError(f"review queue: cannot open {self.path.name}: {exc}") from exc

    def _add_region_columns(self) -> None:
        """The schema migration of a file created before reviews kept regions: add the
        missing columns in one write transaction (another process may be adding them)."""
        def missing() -> list[str]:
            have = {row[1] for row in self._db.execute("PRAGMA table_info(reviews)")}
            return [c for c in _REGION_COLUMNS if c not in have]

        if not missing():
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for column in missing():
                self._db.execute(
                    f"ALTER TABLE reviews ADD COLUMN {column} TEXT NOT NULL DEFAULT ''")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def propose(self, items: Iterable[tuple[str, str, float, float, str,
                                            tuple[tuple[str, str, float], ...]]],
                regions: Mapping[str, str] | None = None) -> int:
        """Queue ``(record_a, record_b, weight, probability, model, contributions)`` pairs
        with their records' home regions (``regions``: record key -> region, "" when
        absent); pairs already queued or decided are left as they are. Returns how many
        were new."""
        now = time.time()
        region_of = regions or {}
        rows = []
        for a, b, w, p, model, contrib in items:
            first, second = sorted((a, b))
            rows.append((review_id_for(a, b), first, second, w, p, model, json.dumps(contrib),
                         "open", now, region_of.get(first, ""), region_of.get(second, "")))
        if not rows:
            return 0
        with self._db:
            before = self._db.total_changes
            self._db.executemany(
                "INSERT OR IGNORE INTO reviews (review_id, record_a, record_b, match_weight,"
                " probability, model_version, contributions, status, created_at, region_a,"
                " region_b) VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
            return self._db.total_changes - before

    def get(self, review_id: str, regions: Collection[str] | None = None) -> Review:
        row = self._db.execute(f"SELECT {_COLS} FROM reviews WHERE review_id = ?",
                               (review_id,)).fetchone()
        if row is None or not may_be_in(review := _review(row), regions):
            raise NotFoundError("no review with this ID")
        return review

    def list(self, status: str = "open", limit: int = 100, after: str = "",
             regions: Collection[str] | None = None) -> list[Review]:
        """Reviews with ``status`` (``all`` for every status) that may be in ``regions``
        (:func:`~idgraph.coordination.base.may_be_in`), oldest first, paged by ``after``
        (the last review ID of the previous page)."""
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
        if regions is not None:
            served = sorted(regions)
            marks = ",".join("?" * len(served))
            where.append(f"(region_a = '' OR region_a IN ({marks}))"
                         f" AND (region_b = '' OR region_b IN ({marks}))")
            args.extend(served + served)
        rows = self._db.execute(
            f"SELECT {_COLS} FROM reviews WHERE {' AND '.join(where)}"
            " ORDER BY created_at, review_id LIMIT ?", (*args, max(1, min(limit, 1000))))
        return [_review(r) for r in rows]

    def decide(self, review_id: str, accept: bool, decided_by: str = "", note: str = "",
               regions: Collection[str] | None = None) -> Review:
        """Record a decision on an open review (NotFoundError when unknown or not in
        ``regions``). Deciding again the same way is a no-op; reversing a decision is
        refused (:class:`ReviewStateError`)."""
        review = self.get(review_id, regions)
        wanted = "accepted" if accept else "rejected"
        if review.status == "open":
            with self._db:
                self._db.execute(
                    "UPDATE reviews SET status = ?, decided_at = ?, decided_by = ?, note = ?"
                    " WHERE review_id = ? AND status = 'open'",
                    (wanted, time.time(), decided_by[:200], note[:1000], review_id))
            # another process may have decided it in between: its decision stands
            review = self.get(review_id)
        if review.status == wanted or (accept and review.status == "applied"):
            return review
        raise ReviewStateError(
            f"review {review_id} is already {review.status}; a decision is final")

    def mark_applied(self, review_ids: Iterable[str]) -> None:
        with self._db:
            self._db.executemany("UPDATE reviews SET status = 'applied' WHERE review_id = ?",
                                 [(r,) for r in review_ids])

    def decided_pairs(self) -> set[tuple[str, str]]:
        """Every pair with a decision or awaiting one (sorted tuples): never proposed again."""
        return {(a, b) for a, b in self._db.execute("SELECT record_a, record_b FROM reviews")}

    def erase_records(self, record_keys: Iterable[str]) -> int:
        keys = list(dict.fromkeys(record_keys))
        if not keys:
            return 0
        removed = 0
        self._db.execute("PRAGMA secure_delete=ON")  # erased cells zeroed, not left in pages
        try:
            with self._db:
                for i in range(0, len(keys), 400):
                    part = keys[i:i + 400]
                    marks = ",".join("?" * len(part))
                    removed += self._db.execute(
                        f"DELETE FROM reviews WHERE record_a IN ({marks}) OR record_b IN"
                        f" ({marks})", part + part).rowcount
        finally:
            self._db.execute("PRAGMA secure_delete=OFF")
        if removed:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return removed

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATUSES, 0)
        out.update(self._db.execute("SELECT status, COUNT(*) FROM reviews GROUP BY status"))
        return out

    def close(self) -> None:
        self._db.close()
