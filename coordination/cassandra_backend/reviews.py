"""The review queue in the deployment's global keyspace (``{prefix}_global``, replicated to
every data centre), so the writers and servers of every machine share one queue.

=======================  ===================================  ==============================
table                    primary key                          columns
=======================  ===================================  ==============================
``reviews``              ``((review_id))``                    ``record_a``, ``record_b``,
                                                              ``match_weight``,
                                                              ``probability``,
                                                              ``model_version``,
                                                              ``contributions`` (JSON),
                                                              ``status``, ``created_at``,
                                                              ``decided_at``, ``decided_by``,
                                                              ``note``, ``region_a``,
                                                              ``region_b``
``reviews_by_status``    ``((status), created_at, review_id)``
``reviews_by_record``    ``((record_key), review_id)``
=======================  ===================================  ==============================

``reviews`` is the row of record: :meth:`~CassandraReviewQueue.get` is one partition read.
Every change of a row's status is a lightweight transaction on it (serial consistency
``SERIAL``: one winner across data centres): a proposal is ``INSERT ... IF NOT EXISTS`` (two
writers proposing one pair keep one review), a decision ``UPDATE ... IF status = 'open'``
(two stewards deciding at once cannot both win; the loser gets the winner's decision when
it is the same, else :class:`ReviewStateError`), applying ``UPDATE ... IF status =
'accepted'``.

Listing. ``reviews_by_status`` is the queue's order: one partition per status, clustered
by ``(created_at, review_id)``, the SQLite queue's ``ORDER BY``, so a page is a slice of one
partition (four merged for ``all``) starting after the ``after`` review's key, and no list
scans the table. Cassandra 2.1 has no materialized views and a secondary index on
``status`` could not page in creation order, so the queue keeps this index itself; it
cannot change it atomically with the row (a lightweight transaction covers one partition),
so the row decides and the index only proposes: an entry counts when the row has its
status and ``created_at``, and a list skips the others (a page is filled from further
entries). The entry of a new status is written before the row's transaction and the old
one deleted after it, so a writer dying between them leaves an extra entry (skipped, and
deleted by a list that meets it once the row's status can never come back to it), never a
missing one. One partition per status holds a million reviews in ~60 MB (Cassandra's
guidance is under 100 MB); the index table has ``gc_grace_seconds = 3600``, not 10 days,
because every review leaves ``open`` and leaves a tombstone at the head of that partition
that a list of open reviews reads over: an entry a repair resurrects is skipped like any
other extra entry. ``counts`` counts the index partitions (exact but for the extra entries
of a writer that died mid-change).

``reviews_by_record`` names the reviews of each record, so a forget
(:meth:`~CassandraReviewQueue.erase_records`) finds them without a scan.
:meth:`~CassandraReviewQueue.decided_pairs` reads every row's pair (as the SQLite queue
does): the contract asks for all of them.

Personal data. The rows hold record keys (``sendgrid:<email>`` is one), which the rest of
the global keyspace never holds (it keeps hashes): the review queue is the deployment's
one queue, as the SQLite file of one machine is, and is replicated to every data centre.
Errors of the driver become :class:`BackendError` naming the operation, never a key or a
value.
"""

from __future__ import annotations

import heapq
import itertools
import json
import time
from collections.abc import Collection, Iterable, Iterator, Mapping

from idgraph.coordination.base import (
    STATUSES,
    Review,
    ReviewQueue,
    ReviewStateError,
    may_be_in,
    review_id_for,
)
from idgraph.coordination.cassandra_backend.session import GlobalSession
from idgraph.core.errors import InvalidIdentifierError, NotFoundError
from idgraph.profile_store.cassandra_backend.settings import CassandraSettings

WHAT = "review queue"
INDEX_GC_GRACE_SECONDS = 3600
PAGE = 200  # index entries fetched per page of a list

DDL = {
    "reviews": "CREATE TABLE IF NOT EXISTS {ks}.reviews (review_id text PRIMARY KEY, "
               "record_a text, record_b text, match_weight double, probability double, "
               "model_version text, contributions text, status text, created_at double, "
               "decided_at double, decided_by text, note text, region_a text, region_b text)",
    "reviews_by_status": "CREATE TABLE IF NOT EXISTS {ks}.reviews_by_status (status text, "
                         "created_at double, review_id text, "
                         "PRIMARY KEY ((status), created_at, review_id)) "
                         f"WITH gc_grace_seconds = {INDEX_GC_GRACE_SECONDS}",
    "reviews_by_record": "CREATE TABLE IF NOT EXISTS {ks}.reviews_by_record (record_key text, "
                         "review_id text, PRIMARY KEY ((record_key), review_id))",
}

_COLS = ("review_id, record_a, record_b, match_weight, probability, model_version, "
         "contributions, status, created_at, decided_at, decided_by, note, region_a, region_b")

# statuses a review may still take from each status (an index entry of one of them may
# be on its way in; any other entry the row does not have is stale for good)
_REACHABLE = {"open": {"accepted", "rejected", "applied"}, "accepted": {"applied"},
              "rejected": set(), "applied": set()}

Entry = tuple[float, str, str]
"""An index entry: (created_at, review_id, status)."""


def _review(row: tuple) -> Review:
    return Review(row[0], row[1], row[2], row[3], row[4], row[5],
                  tuple((c, lbl, w) for c, lbl, w in json.loads(row[6])), row[7], row[8],
                  row[9], row[10] or "", row[11] or "", row[12] or "", row[13] or "")


def _counts(review: Review | None, entry: Entry) -> bool:
    """Whether an index entry stands for the row (its status and creation time)."""
    created_at, _, status = entry
    return review is not None and review.status == status and review.created_at == created_at


def _stale(review: Review | None, entry: Entry) -> bool:
    """Whether an entry can never stand for its row (safe to delete): the row was created
    at another time, or has left the entry's status for good."""
    created_at, _, status = entry
    if review is None:
        return False  # the row may be on its way (a proposal writes the entry first)
    return review.created_at != created_at or (
        review.status != status and status not in _REACHABLE[review.status])


class CassandraReviewQueue(ReviewQueue):
    """The review queue in the global keyspace of the cluster ``settings`` describes
    (thread-safe: the driver's session is)."""

    def __init__(self, settings: CassandraSettings, create: bool = True) -> None:
        """Connect and create the missing tables (without ``create``: BackendError when
        one is missing, see :meth:`exists`); BackendError when the cluster cannot be
        reached."""
        self._db = GlobalSession(settings, DDL, WHAT, create)
        prepare = self._db.prepare
        self._insert = prepare(f"INSERT INTO {{ks}}.reviews ({_COLS}) VALUES "
                               "(?,?,?,?,?,?,?,?,?,?,?,?,?,?) IF NOT EXISTS")
        self._decide = prepare("UPDATE {ks}.reviews SET status = ?, decided_at = ?, "
                               "decided_by = ?, note = ? WHERE review_id = ? IF status = 'open'")
        self._apply = prepare("UPDATE {ks}.reviews SET status = 'applied' WHERE review_id = ? "
                              "IF status = 'accepted'")
        self._get = prepare(f"SELECT {_COLS} FROM {{ks}}.reviews WHERE review_id = ?")
        self._pairs = prepare("SELECT record_a, record_b FROM {ks}.reviews")
        self._delete = prepare("DELETE FROM {ks}.reviews WHERE review_id = ?")
        self._index = prepare("INSERT INTO {ks}.reviews_by_status (status, created_at, "
                              "review_id) VALUES (?, ?, ?)")
        self._unindex = prepare("DELETE FROM {ks}.reviews_by_status WHERE status = ? AND "
                                "created_at = ? AND review_id = ?")
        self._first = prepare("SELECT created_at, review_id FROM {ks}.reviews_by_status "
                              "WHERE status = ?")
        self._next = prepare("SELECT created_at, review_id FROM {ks}.reviews_by_status "
                             "WHERE status = ? AND (created_at, review_id) > (?, ?)")
        self._count = prepare("SELECT COUNT(*) FROM {ks}.reviews_by_status WHERE status = ?")
        self._file = prepare("INSERT INTO {ks}.reviews_by_record (record_key, review_id) "
                             "VALUES (?, ?)")
        self._of_record = prepare("SELECT review_id FROM {ks}.reviews_by_record "
                                  "WHERE record_key = ?")
        self._unfile = prepare("DELETE FROM {ks}.reviews_by_record WHERE record_key = ? AND "
                               "review_id = ?")

    @staticmethod
    def exists(settings: CassandraSettings) -> bool:
        """Whether the cluster has the queue's tables (a writer created them)."""
        return GlobalSession.has_tables(settings, DDL, WHAT)

    # ------------------------------------------------------------------ reads

    def _rows(self, review_ids: Iterable[str], operation: str) -> dict[str, Review]:
        ids = list(dict.fromkeys(review_ids))
        results = self._db.run([(self._get, (rid,)) for rid in ids], operation)
        return {rid: _review(res[0]) for rid, res in zip(ids, results, strict=True) if res}

    def get(self, review_id: str, regions: Collection[str] | None = None) -> Review:
        review = self._rows([review_id], "read review").get(review_id)
        if review is None or not may_be_in(review, regions):
            raise NotFoundError("no review with this ID")
        return review

    def _entries(self, status: str, start: tuple[float, str] | None) -> Iterator[Entry]:
        """The index entries of ``status`` after ``start`` (created_at, review_id), in
        order, fetched a page at a time as the caller consumes them."""
        if start is None:
            rows = self._db.stream(self._first, (status,), PAGE, "list reviews")
        else:
            rows = self._db.stream(self._next, (status, *start), PAGE, "list reviews")
        return ((created_at, rid, status) for created_at, rid in rows)

    def list(self, status: str = "open", limit: int = 100, after: str = "",
             regions: Collection[str] | None = None) -> list[Review]:
        """Reviews with ``status`` (``all`` for every status) that may be in ``regions``
        (:func:`~idgraph.coordination.base.may_be_in`), oldest first, paged by ``after``
        (the last review ID of the previous page; an unknown one: an empty page)."""
        if status != "all" and status not in STATUSES:
            raise InvalidIdentifierError(f"status must be one of {', '.join(STATUSES)} or all; "
                                         f"got {status!r}")
        limit = max(1, min(limit, 1000))
        start = None
        if after:
            previous = self._rows([after], "list reviews").get(after)
            if previous is None:
                return []
            start = (previous.created_at, after)
        statuses = STATUSES if status == "all" else (status,)
        entries = heapq.merge(*(self._entries(s, start) for s in statuses))
        found: list[Review] = []
        while len(found) < limit:
            chunk = list(itertools.islice(entries, max(limit - len(found), 20)))
            if not chunk:
                break
            rows = self._rows((rid for _, rid, _ in chunk), "list reviews")
            self._drop_stale([e for e in chunk if _stale(rows.get(e[1]), e)])
            found.extend(rows[e[1]] for e in chunk
                         if _counts(rows.get(e[1]), e) and may_be_in(rows[e[1]], regions))
        return found[:limit]

    def counts(self) -> dict[str, int]:
        results = self._db.run([(self._count, (s,)) for s in STATUSES], "count reviews")
        return {s: res[0][0] for s, res in zip(STATUSES, results, strict=True)}

    def decided_pairs(self) -> set[tuple[str, str]]:
        """Every pair with a decision or awaiting one (sorted tuples): never proposed again."""
        return {(a, b) for a, b in self._db.stream(self._pairs, (), 5000, "read review pairs")}

    # ----------------------------------------------------------------- writes

    def propose(self, items: Iterable[tuple[str, str, float, float, str,
                                            tuple[tuple[str, str, float], ...]]],
                regions: Mapping[str, str] | None = None) -> int:
        """Queue ``(record_a, record_b, weight, probability, model, contributions)`` pairs
        with their records' home regions (``regions``: record key -> region, "" when
        absent); pairs already queued or decided are left as they are (one conditional
        insert each). Returns how many were new."""
        now = time.time()
        region_of = regions or {}
        rows: dict[str, tuple] = {}
        for a, b, w, p, model, contrib in items:
            first, second = sorted((a, b))
            rows.setdefault(review_id_for(a, b), (
                first, second, float(w), float(p), model, json.dumps(contrib), "open", now,
                None, None, None, region_of.get(first, ""), region_of.get(second, "")))
        if not rows:
            return 0
        # the index and the records' entries first: a row never exists without them
        self._db.run([call for rid, row in rows.items()
                      for call in ((self._index, ("open", now, rid)),
                                   (self._file, (row[0], rid)), (self._file, (row[1], rid)))],
                     "queue reviews")
        outcomes = self._db.run([(self._insert, (rid, *row)) for rid, row in rows.items()],
                                "queue reviews", with_names=True)
        # a row with this call's created_at is this call's (applied by an attempt whose
        # answer timed out); a pair queued before keeps its own entry, and this call's goes
        ours = [applied or seen.get("created_at") == now for applied, seen in outcomes]
        self._drop_stale([(now, rid, "open")
                          for rid, mine in zip(rows, ours, strict=True) if not mine])
        return sum(ours)

    def decide(self, review_id: str, accept: bool, decided_by: str = "", note: str = "",
               regions: Collection[str] | None = None) -> Review:
        """Record a decision on an open review (NotFoundError when unknown or not in
        ``regions``). Deciding again the same way is a no-op; reversing a decision is
        refused (:class:`ReviewStateError`), also when another decider's conditional
        update won the race."""
        review = self.get(review_id, regions)
        wanted = "accepted" if accept else "rejected"
        if review.status != "open":
            return self._same_or_refuse(review, wanted)
        created = review.created_at
        self._db.run([(self._index, (wanted, created, review_id))], "decide review")
        ((applied, seen),) = self._db.run(
            [(self._decide, (wanted, time.time(), decided_by[:200], note[:1000], review_id))],
            "decide review", with_names=True)
        if applied:
            self._drop_stale([(created, review_id, "open")])
            return self.get(review_id)
        if seen.get("status") != wanted:  # another decider (or a forget) came first
            self._drop_stale([(created, review_id, wanted)])
        try:
            current = self.get(review_id)
        except NotFoundError:
            raise NotFoundError("no review with this ID") from None
        return self._same_or_refuse(current, wanted)

    @staticmethod
    def _same_or_refuse(review: Review, wanted: str) -> Review:
        if review.status == wanted or (wanted == "accepted" and review.status == "applied"):
            return review
        raise ReviewStateError(
            f"review {review.review_id} is already {review.status}; a decision is final")

    def mark_applied(self, review_ids: Iterable[str]) -> None:
        """Accepted reviews a writer has applied to the graph (others are left as they are)."""
        accepted = [r for r in self._rows(review_ids, "mark reviews applied").values()
                    if r.status == "accepted"]
        if not accepted:
            return
        self._db.run([(self._index, ("applied", r.created_at, r.review_id)) for r in accepted],
                     "mark reviews applied")
        outcomes = self._db.run([(self._apply, (r.review_id,)) for r in accepted],
                                "mark reviews applied", with_names=True)
        self._drop_stale([(r.created_at, r.review_id, "accepted" if applied else "applied")
                          for r, (applied, seen) in zip(accepted, outcomes, strict=True)
                          if applied or seen.get("status") != "applied"])

    def erase_records(self, record_keys: Iterable[str]) -> int:
        """Remove every review naming one of ``record_keys``, with its index entries and
        its records' entries; returns how many reviews there were."""
        keys = list(dict.fromkeys(record_keys))
        if not keys:
            return 0
        filed = self._db.run([(self._of_record, (k,)) for k in keys], "erase reviews")
        named = {(k, rid) for k, rows in zip(keys, filed, strict=True) for (rid,) in rows}
        found = self._rows((rid for _, rid in named), "erase reviews")
        calls = [(self._unfile, pair) for pair in named]
        for r in found.values():
            calls += [(self._delete, (r.review_id,)),
                      (self._unfile, (r.record_a, r.review_id)),
                      (self._unfile, (r.record_b, r.review_id))]
            calls += [(self._unindex, (s, r.created_at, r.review_id)) for s in STATUSES]
        self._db.run(calls, "erase reviews")
        return len(found)

    def _drop_stale(self, entries: list[Entry]) -> None:
        if entries:
            self._db.run([(self._unindex, (s, c, rid)) for c, rid, s in entries],
                         "update the review index")

    def close(self) -> None:
        self._db.close()
