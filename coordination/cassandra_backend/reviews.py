"""The review queue in the keyspaces of the deployment's regions (``{prefix}_{region}``,
each replicated only to its region's data centres). A review names its two records (a
record key such as ``sendgrid:<email>`` is personal data), so its rows live where its
records do; the global keyspace holds nothing of the queue. The writers and servers of
every machine share the queue: each opens the keyspaces of the regions it serves.

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

Home region. Every row of a review (in all three tables) is in one keyspace, that of its
home region: the strictest of its two records' regions when it was queued
(``region_a``, ``region_b``; strictest: first in the queue's ``regions``, the
deployment's strictness order). A pair of an eu and a us record lives in eu: a merge
moves data toward the stricter region, and the profile store applies the same rule.
When neither region is known, the review lives in the strictest region served
(conservative). A writer opens every region of the deployment, strictest first, so it
can queue any pair; a known region it does not serve is a misconfiguration, refused
(:class:`ResidencyError`) before anything is written. A pair already queued in any
served keyspace is left as it is (a proposal reads them first), so a review stays where
it was queued when one of its records moves later. Writers propose inside their turn,
one at a time: two machines proposing one pair at the same moment while disagreeing on
its records' regions could queue it in two keyspaces (a lightweight transaction covers
one partition of one keyspace), which the turns rule out.

What a process sees. A queue reads and changes the keyspaces of the regions it was
opened for, never another region's. A server of some regions sees only the reviews whose
home it serves: the eu/us review above is seen by an eu server, not by a us-only one
(whose store could not show the eu record anyway). :meth:`~CassandraReviewQueue.get`
asks every served keyspace in one round (concurrently); a list merges theirs (below);
:meth:`~CassandraReviewQueue.decide` and :meth:`~CassandraReviewQueue.mark_applied` act
on the row in the keyspace where it is; ``counts``, ``decided_pairs`` and
``erase_records`` cover every served keyspace. The ``regions`` filter of get, list and
decide (:func:`~idgraph.coordination.base.may_be_in`) applies on top.

``reviews`` is the row of record: a get is one partition read per served region. Every
change of a row's status is a lightweight transaction on it (serial consistency
``SERIAL``, among the replicas of its region: one winner): a proposal is ``INSERT ... IF
NOT EXISTS`` (two writers proposing one pair keep one review), a decision ``UPDATE ... IF
status = 'open'`` (two stewards deciding at once cannot both win; the loser gets the
winner's decision when it is the same, else :class:`ReviewStateError`), applying
``UPDATE ... IF status = 'accepted'``.

Listing. ``reviews_by_status`` is the queue's order: in each keyspace one partition per
status, clustered by ``(created_at, review_id)``, the SQLite queue's ``ORDER BY``, so a
page is a merge of slices of one partition per served region (four per region for
``all``), each starting after the ``after`` review's key (its first page fetched from
every region at once), and no list scans the table. Cassandra 2.1 has no materialized
views and a secondary index on ``status`` could not page in creation order, so the queue
keeps this index itself; it cannot change it atomically with the row (a lightweight
transaction covers one partition), so the row decides and the index only proposes: an
entry counts when the row of its keyspace has its status and ``created_at``, and a list
skips the others (a page is filled from further entries). The entry of a new status is
written before the row's transaction and the old one deleted after it, so a writer dying
between them leaves an extra entry (skipped, and deleted by a list that meets it once
the row's status can never come back to it), never a missing one. One partition per
status holds a million reviews in ~60 MB (Cassandra's guidance is under 100 MB); the index
table has ``gc_grace_seconds = 3600``, not 10 days, because every review leaves ``open``
and leaves a tombstone at the head of that partition that a list of open reviews reads
over: an entry a repair resurrects is skipped like any other extra entry. ``counts``
counts the index partitions (exact but for the extra entries of a writer that died
mid-change).

``reviews_by_record`` names the reviews of each record (in the review's keyspace), so a
forget (:meth:`~CassandraReviewQueue.erase_records`) finds them without a scan.
:meth:`~CassandraReviewQueue.decided_pairs` reads every row's pair (as the SQLite queue
does): the contract asks for all of them.

Personal data. The rows hold record keys and are only in their home region's keyspace,
read and written in that region's execution profile (coordinated in its data centre:
:mod:`idgraph.coordination.cassandra_backend.session`), so they never reach another
region's data centres. Earlier versions kept these tables in the global keyspace,
replicated everywhere; this one neither reads nor drops them (an operator does).
Errors of the driver become :class:`BackendError` naming the operation (and the region),
never a key or a value.
"""

from __future__ import annotations

import heapq
import itertools
import json
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from idgraph.coordination.base import (
    STATUSES,
    Review,
    ReviewQueue,
    ReviewStateError,
    may_be_in,
    review_id_for,
)
from idgraph.coordination.cassandra_backend.session import GlobalSession
from idgraph.core.errors import (
    ConfigError,
    InvalidIdentifierError,
    NotFoundError,
    ResidencyError,
)
from idgraph.profile_store.cassandra_backend.settings import CassandraSettings

WHAT = "review queue"
INDEX_GC_GRACE_SECONDS = 3600
PAGE = 200  # index entries fetched per page of a list
MAX_THREADS = 16  # regions' requests waited on at once (a list of all: 4 per region)

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
"""The tables, in each region keyspace (the global keyspace has none of the queue's)."""

_COLS = ("review_id, record_a, record_b, match_weight, probability, model_version, "
         "contributions, status, created_at, decided_at, decided_by, note, region_a, region_b")

# statuses a review may still take from each status (an index entry of one of them may
# be on its way in; any other entry the row does not have is stale for good)
_REACHABLE = {"open": {"accepted", "rejected", "applied"}, "accepted": {"applied"},
              "rejected": set(), "applied": set()}

Entry = tuple[float, str, str, str]
"""An index entry: (created_at, review_id, status, region of its keyspace)."""

T = TypeVar("T")


def _review(row: tuple) -> Review:
    return Review(row[0], row[1], row[2], row[3], row[4], row[5],
                  tuple((c, lbl, w) for c, lbl, w in json.loads(row[6])), row[7], row[8],
                  row[9], row[10] or "", row[11] or "", row[12] or "", row[13] or "")


def _counts(review: Review | None, entry: Entry) -> bool:
    """Whether an index entry stands for the row (its status and creation time)."""
    created_at, _, status, _ = entry
    return review is not None and review.status == status and review.created_at == created_at


def _stale(review: Review | None, entry: Entry) -> bool:
    """Whether an entry can never stand for its row (safe to delete): the row was created
    at another time, or has left the entry's status for good."""
    created_at, _, status, _ = entry
    if review is None:
        return False  # the row may be on its way (a proposal writes the entry first)
    return review.created_at != created_at or (
        review.status != status and status not in _REACHABLE[review.status])


class _Statements:
    """The queue's statements prepared on one region's keyspace."""

    def __init__(self, prepare: Callable[[str], Any]) -> None:
        self.insert = prepare(f"INSERT INTO {{ks}}.reviews ({_COLS}) VALUES "
                              "(?,?,?,?,?,?,?,?,?,?,?,?,?,?) IF NOT EXISTS")
        self.decide = prepare("UPDATE {ks}.reviews SET status = ?, decided_at = ?, "
                              "decided_by = ?, note = ? WHERE review_id = ? IF status = 'open'")
        self.apply = prepare("UPDATE {ks}.reviews SET status = 'applied' WHERE review_id = ? "
                             "IF status = 'accepted'")
        self.get = prepare(f"SELECT {_COLS} FROM {{ks}}.reviews WHERE review_id = ?")
        self.pairs = prepare("SELECT record_a, record_b FROM {ks}.reviews")
        self.delete = prepare("DELETE FROM {ks}.reviews WHERE review_id = ?")
        self.index = prepare("INSERT INTO {ks}.reviews_by_status (status, created_at, "
                             "review_id) VALUES (?, ?, ?)")
        self.unindex = prepare("DELETE FROM {ks}.reviews_by_status WHERE status = ? AND "
                               "created_at = ? AND review_id = ?")
        self.first = prepare("SELECT created_at, review_id FROM {ks}.reviews_by_status "
                             "WHERE status = ?")
        self.next = prepare("SELECT created_at, review_id FROM {ks}.reviews_by_status "
                            "WHERE status = ? AND (created_at, review_id) > (?, ?)")
        self.count = prepare("SELECT COUNT(*) FROM {ks}.reviews_by_status WHERE status = ?")
        self.file = prepare("INSERT INTO {ks}.reviews_by_record (record_key, review_id) "
                            "VALUES (?, ?)")
        self.of_record = prepare("SELECT review_id FROM {ks}.reviews_by_record "
                                 "WHERE record_key = ?")
        self.unfile = prepare("DELETE FROM {ks}.reviews_by_record WHERE record_key = ? AND "
                              "review_id = ?")


class CassandraReviewQueue(ReviewQueue):
    """The review queue in the keyspaces of ``regions`` of the cluster ``settings``
    describes (thread-safe: the driver's session is)."""

    def __init__(self, settings: CassandraSettings, regions: Sequence[str],
                 create: bool = True) -> None:
        """Connect for ``regions`` (those this process serves, strictest first) and create
        the missing tables in their keyspaces (without ``create``: BackendError when one
        is missing, see :meth:`exists`). ConfigError when ``regions`` is empty or a
        region has no data centre; BackendError when the cluster cannot be reached."""
        self.regions: tuple[str, ...] = tuple(dict.fromkeys(regions))
        if not self.regions:
            raise ConfigError("review queue: regions is empty (the queue needs the regions "
                              "it serves, strictest first)")
        self._db = GlobalSession(settings, {}, WHAT, create, self.regions, DDL)
        self._q = {r: _Statements(partial(self._db.prepare, region=r)) for r in self.regions}
        self._pool = ThreadPoolExecutor(min(MAX_THREADS, len(STATUSES) * len(self.regions)),
                                        thread_name_prefix="review-queue")

    @staticmethod
    def exists(settings: CassandraSettings, regions: Sequence[str]) -> bool:
        """Whether the keyspace of every one of ``regions`` has the queue's tables (a
        writer created them)."""
        return GlobalSession.has_tables(settings, {}, WHAT, regions, DDL)

    # ------------------------------------------------------------ concurrency

    def _each(self, tasks: Sequence[Callable[[], T]]) -> list[T | Exception]:
        """Each task's result, or the exception it raised, in order; run at once (they
        wait on different regions)."""
        if len(tasks) == 1:
            try:
                return [tasks[0]()]
            except Exception as exc:  # noqa: BLE001 - handed back to the caller
                return [exc]
        futures = [self._pool.submit(task) for task in tasks]
        results: list[T | Exception] = []
        for future in futures:
            try:
                results.append(future.result())
            except Exception as exc:  # noqa: BLE001 - handed back to the caller
                results.append(exc)
        return results

    def _all(self, tasks: Sequence[Callable[[], T]]) -> list[T]:
        """Each task's result (run at once); the first exception once all have ended."""
        results = self._each(tasks)
        for res in results:
            if isinstance(res, Exception):
                raise res
        return results  # type: ignore[return-value]

    def _per_region(self, work: Mapping[str, T],
                    run: Callable[[str, T], Any]) -> list[Any]:
        """``run(region, its work)`` for every region of ``work``, at once."""
        return self._all([partial(run, region, part) for region, part in work.items()])

    # ------------------------------------------------------------------ reads

    def _find(self, review_ids: Iterable[str], operation: str) -> dict[str, tuple[str, Review]]:
        """``review_id -> (region, row)`` of the rows found in the served keyspaces,
        every one asked at once (the strictest region's row if two had one). A region
        that failed raises only when a review was not found elsewhere."""
        ids = list(dict.fromkeys(review_ids))
        if not ids:
            return {}
        results = self._each([partial(self._db.run, [(self._q[r].get, (rid,)) for rid in ids],
                                      operation, region=r) for r in self.regions])
        found: dict[str, tuple[str, Review]] = {}
        failures = []
        for region, res in zip(self.regions, results, strict=True):
            if isinstance(res, Exception):
                failures.append(res)
                continue
            for rid, rows in zip(ids, res, strict=True):
                if rows:
                    found.setdefault(rid, (region, _review(rows[0])))
        if failures and len(found) < len(ids):
            raise failures[0]
        return found

    def _rows_in(self, region: str, review_ids: Iterable[str],
                 operation: str) -> dict[str, Review]:
        """The rows of ``review_ids`` in ``region``'s keyspace."""
        ids = list(dict.fromkeys(review_ids))
        results = self._db.run([(self._q[region].get, (rid,)) for rid in ids], operation,
                               region=region)
        return {rid: _review(res[0]) for rid, res in zip(ids, results, strict=True) if res}

    def get(self, review_id: str, regions: Collection[str] | None = None) -> Review:
        return self._locate(review_id, regions)[1]

    def _locate(self, review_id: str,
                regions: Collection[str] | None = None) -> tuple[str, Review]:
        """``(region of its keyspace, row)``; NotFoundError when unknown (in the served
        keyspaces) or not in ``regions``."""
        found = self._find([review_id], "read review").get(review_id)
        if found is None or not may_be_in(found[1], regions):
            raise NotFoundError("no review with this ID")
        return found

    def _entries(self, region: str, status: str,
                 start: tuple[float, str] | None) -> Iterator[Entry]:
        """The index entries of ``status`` in ``region``'s keyspace after ``start``
        (created_at, review_id), in order, fetched a page at a time as the caller
        consumes them."""
        st = self._q[region]
        if start is None:
            rows = self._db.stream(st.first, (status,), PAGE, "list reviews", region=region)
        else:
            rows = self._db.stream(st.next, (status, *start), PAGE, "list reviews",
                                   region=region)
        return ((created_at, rid, status, region) for created_at, rid in rows)

    def _primed(self, streams: Sequence[Iterator[Entry]]) -> list[Iterator[Entry]]:
        """``streams`` with their first page fetched, all at once (a list would otherwise
        wait for one region after the other)."""
        end = object()
        firsts = self._all([partial(next, s, end) for s in streams])
        return [itertools.chain((first,), s) for first, s in zip(firsts, streams, strict=True)
                if first is not end]

    def list(self, status: str = "open", limit: int = 100, after: str = "",
             regions: Collection[str] | None = None) -> list[Review]:
        """Reviews with ``status`` (``all`` for every status) of the served keyspaces that
        may be in ``regions`` (:func:`~idgraph.coordination.base.may_be_in`), oldest
        first, paged by ``after`` (the last review ID of the previous page; an unknown
        one: an empty page)."""
        if status != "all" and status not in STATUSES:
            raise InvalidIdentifierError(f"status must be one of {', '.join(STATUSES)} or all; "
                                         f"got {status!r}")
        limit = max(1, min(limit, 1000))
        start = None
        if after:
            previous = self._find([after], "list reviews").get(after)
            if previous is None:
                return []
            start = (previous[1].created_at, after)
        statuses = STATUSES if status == "all" else (status,)
        entries = heapq.merge(*self._primed([self._entries(r, s, start)
                                             for r in self.regions for s in statuses]))
        found: list[Review] = []
        while len(found) < limit:
            chunk = list(itertools.islice(entries, max(limit - len(found), 20)))
            if not chunk:
                break
            wanted: dict[str, list[str]] = {}
            for _, rid, _, region in chunk:
                wanted.setdefault(region, []).append(rid)
            rows = {(region, rid): review
                    for region, part in zip(wanted, self._per_region(
                        wanted, lambda r, ids: self._rows_in(r, ids, "list reviews")),
                        strict=True)
                    for rid, review in part.items()}
            self._drop_stale([e for e in chunk if _stale(rows.get((e[3], e[1])), e)])
            for e in chunk:
                review = rows.get((e[3], e[1]))
                if _counts(review, e) and may_be_in(review, regions):
                    found.append(review)
        return found[:limit]

    def counts(self) -> dict[str, int]:
        results = self._all([partial(self._db.run, [(self._q[r].count, (s,)) for s in STATUSES],
                                     "count reviews", region=r) for r in self.regions])
        return {s: sum(res[i][0][0] for res in results) for i, s in enumerate(STATUSES)}

    def decided_pairs(self) -> set[tuple[str, str]]:
        """Every pair with a decision or awaiting one (sorted tuples): never proposed again."""
        def pairs(region: str) -> set[tuple[str, str]]:
            return {(a, b) for a, b in self._db.stream(self._q[region].pairs, (), 5000,
                                                       "read review pairs", region=region)}

        return set().union(*self._all([partial(pairs, r) for r in self.regions]))

    # ----------------------------------------------------------------- writes

    def _home(self, region_a: str, region_b: str) -> str:
        """The keyspace's region of a review of records of these regions ("" unknown):
        the strictest known one, else the strictest served (module docstring)."""
        known = [r for r in (region_a, region_b) if r]
        for region in known:
            if region not in self._q:
                raise ResidencyError(
                    f"review queue: propose: region {region!r} is not served by this queue "
                    f"(serves {list(self.regions)})")
        return min(known, key=self.regions.index) if known else self.regions[0]

    def propose(self, items: Iterable[tuple[str, str, float, float, str,
                                            tuple[tuple[str, str, float], ...]]],
                regions: Mapping[str, str] | None = None) -> int:
        """Queue ``(record_a, record_b, weight, probability, model, contributions)`` pairs
        with their records' home regions (``regions``: record key -> region, "" when
        absent), each in its home region's keyspace (ResidencyError, before anything is
        written, when a known region is not served); pairs already queued or decided in
        a served keyspace are left as they are (a read, then one conditional insert
        each). Returns how many were new."""
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
        by_home: dict[str, dict[str, tuple]] = {}
        for rid, row in rows.items():
            by_home.setdefault(self._home(row[11], row[12]), {})[rid] = row
        queued = self._find(rows, "queue reviews")
        fresh = {region: {rid: row for rid, row in part.items() if rid not in queued}
                 for region, part in by_home.items()}
        return sum(self._per_region({r: part for r, part in fresh.items() if part},
                                    partial(self._queue_in, now=now)))

    def _queue_in(self, region: str, rows: dict[str, tuple], now: float) -> int:
        """Queue ``rows`` (review ID -> columns) in ``region``'s keyspace; how many were new."""
        st = self._q[region]
        # the index and the records' entries first: a row never exists without them
        self._db.run([call for rid, row in rows.items()
                      for call in ((st.index, ("open", now, rid)),
                                   (st.file, (row[0], rid)), (st.file, (row[1], rid)))],
                     "queue reviews", region=region)
        outcomes = self._db.run([(st.insert, (rid, *row)) for rid, row in rows.items()],
                                "queue reviews", with_names=True, region=region)
        # a row with this call's created_at is this call's (applied by an attempt whose
        # answer timed out); a pair queued before keeps its own entry, and this call's goes
        ours = [applied or seen.get("created_at") == now for applied, seen in outcomes]
        self._drop_in(region, [(now, rid, "open", region)
                               for rid, mine in zip(rows, ours, strict=True) if not mine])
        return sum(ours)

    def decide(self, review_id: str, accept: bool, decided_by: str = "", note: str = "",
               regions: Collection[str] | None = None) -> Review:
        """Record a decision on an open review (NotFoundError when unknown or not in
        ``regions``), in the keyspace where it is. Deciding again the same way is a
        no-op; reversing a decision is refused (:class:`ReviewStateError`), also when
        another decider's conditional update won the race."""
        region, review = self._locate(review_id, regions)
        wanted = "accepted" if accept else "rejected"
        if review.status != "open":
            return self._same_or_refuse(review, wanted)
        st = self._q[region]
        created = review.created_at
        self._db.run([(st.index, (wanted, created, review_id))], "decide review", region=region)
        ((applied, seen),) = self._db.run(
            [(st.decide, (wanted, time.time(), decided_by[:200], note[:1000], review_id))],
            "decide review", with_names=True, region=region)
        if applied:
            self._drop_in(region, [(created, review_id, "open", region)])
        elif seen.get("status") != wanted:  # another decider (or a forget) came first
            self._drop_in(region, [(created, review_id, wanted, region)])
        current = self._rows_in(region, [review_id], "decide review").get(review_id)
        if current is None:  # erased meanwhile
            raise NotFoundError("no review with this ID")
        return current if applied else self._same_or_refuse(current, wanted)

    @staticmethod
    def _same_or_refuse(review: Review, wanted: str) -> Review:
        if review.status == wanted or (wanted == "accepted" and review.status == "applied"):
            return review
        raise ReviewStateError(
            f"review {review.review_id} is already {review.status}; a decision is final")

    def mark_applied(self, review_ids: Iterable[str]) -> None:
        """Accepted reviews a writer has applied to the graph (others are left as they are),
        each in the keyspace where it is."""
        accepted: dict[str, list[Review]] = {}
        for region, review in self._find(review_ids, "mark reviews applied").values():
            if review.status == "accepted":
                accepted.setdefault(region, []).append(review)
        self._per_region(accepted, self._apply_in)

    def _apply_in(self, region: str, accepted: list[Review]) -> None:
        st = self._q[region]
        self._db.run([(st.index, ("applied", r.created_at, r.review_id)) for r in accepted],
                     "mark reviews applied", region=region)
        outcomes = self._db.run([(st.apply, (r.review_id,)) for r in accepted],
                                "mark reviews applied", with_names=True, region=region)
        self._drop_in(region, [(r.created_at, r.review_id,
                                "accepted" if applied else "applied", region)
                               for r, (applied, seen) in zip(accepted, outcomes, strict=True)
                               if applied or seen.get("status") != "applied"])

    def erase_records(self, record_keys: Iterable[str]) -> int:
        """Remove every review naming one of ``record_keys`` from every served keyspace,
        with its index entries and its records' entries; returns how many reviews there
        were."""
        keys = list(dict.fromkeys(record_keys))
        if not keys:
            return 0
        return sum(self._all([partial(self._erase_in, r, keys) for r in self.regions]))

    def _erase_in(self, region: str, keys: list[str]) -> int:
        st = self._q[region]
        filed = self._db.run([(st.of_record, (k,)) for k in keys], "erase reviews",
                             region=region)
        named = {(k, rid) for k, rows in zip(keys, filed, strict=True) for (rid,) in rows}
        if not named:
            return 0
        found = self._rows_in(region, (rid for _, rid in named), "erase reviews")
        calls = [(st.unfile, pair) for pair in named]
        for r in found.values():
            calls += [(st.delete, (r.review_id,)),
                      (st.unfile, (r.record_a, r.review_id)),
                      (st.unfile, (r.record_b, r.review_id))]
            calls += [(st.unindex, (s, r.created_at, r.review_id)) for s in STATUSES]
        self._db.run(calls, "erase reviews", region=region)
        return len(found)

    def _drop_stale(self, entries: list[Entry]) -> None:
        by_region: dict[str, list[Entry]] = {}
        for entry in entries:
            by_region.setdefault(entry[3], []).append(entry)
        self._per_region(by_region, self._drop_in)

    def _drop_in(self, region: str, entries: list[Entry]) -> None:
        """Delete index entries of ``region``'s keyspace (in the caller's thread: the
        work of one region never waits on the pool, which may be running it)."""
        if entries:
            self._db.run([(self._q[region].unindex, (s, c, rid)) for c, rid, s, _ in entries],
                         "update the review index", region=region)

    def close(self) -> None:
        self._pool.shutdown()
        self._db.close()
