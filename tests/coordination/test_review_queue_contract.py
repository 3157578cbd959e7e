"""The review queue seam (:class:`idgraph.coordination.ReviewQueue`) run against every
backend: the local SQLite file and Cassandra's region keyspaces on the session's real
two-node cluster (a queue of every region, as a writer opens it). Two queue instances on
one database are two machines (for the local backend: two processes of one machine on
one file).

Checked: deterministic IDs and one review per pair; paging in creation order with
``after``, by status and ``all``; decisions (final, idempotent, never reversed), applying,
counts; the regions filter of get/list/decide; decided pairs and a forget's erasure; and
races between two instances: the same pair proposed by both, two deciders at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from idgraph.coordination import ReviewQueue, ReviewStateError, review_id_for
from idgraph.core.errors import InvalidIdentifierError, NotFoundError
from tests.coordination.conftest import REVIEW_REGIONS

CONTRIB = (("email", "Exact", 5.0), ("name", "Jaro-Winkler >= 0.9", 2.5))


def pair(a: str, b: str, weight: float = 2.0) -> tuple:
    return (a, b, weight, 0.9, "v0001", CONTRIB)


@pytest.fixture(params=["local", "cassandra"])
def queues(request, tmp_path) -> Callable[[], ReviewQueue]:
    """``queues()`` opens one more queue of the test's backend on one shared database,
    empty at the start of the test."""
    opened: list[ReviewQueue] = []
    if request.param == "cassandra":
        from idgraph.coordination.cassandra_backend import CassandraReviewQueue

        settings = request.getfixturevalue("empty_cassandra")

        def open_queue() -> ReviewQueue:
            return CassandraReviewQueue(settings, REVIEW_REGIONS)
    else:
        from idgraph.coordination.local import SqliteReviewQueue

        def open_queue() -> ReviewQueue:
            return SqliteReviewQueue(tmp_path / "reviews.sqlite")

    def make() -> ReviewQueue:
        queue = open_queue()
        opened.append(queue)
        return queue

    yield make
    for queue in opened:
        queue.close()


def propose_in_order(queue: ReviewQueue, *pairs: tuple) -> list[str]:
    """Propose one pair per call (each later than the one before); their IDs."""
    ids = []
    for p in pairs:
        time.sleep(0.002)
        assert queue.propose([p]) == 1
        ids.append(review_id_for(p[0], p[1]))
    return ids


def ids(reviews) -> list[str]:
    return [r.review_id for r in reviews]


def test_a_pair_is_one_review_with_what_was_proposed(queues):
    queue = queues()
    regions = {"crm:b": "eu", "crm:a": "uk"}
    assert queue.propose([pair("crm:b", "crm:a"), pair("crm:a", "crm:b", 9.0)], regions) == 1
    assert queue.propose([pair("crm:a", "crm:b", 7.0)]) == 0
    assert queue.propose([]) == 0
    review = queue.get(review_id_for("crm:b", "crm:a"))
    assert review.review_id == review_id_for("crm:a", "crm:b")
    assert (review.record_a, review.record_b, review.match_weight, review.probability) == (
        "crm:a", "crm:b", 2.0, 0.9)  # the first proposal, its records in order
    assert (review.model_version, review.contributions, review.status) == ("v0001", CONTRIB,
                                                                           "open")
    assert (review.region_a, review.region_b) == ("uk", "eu")
    assert (review.decided_at, review.decided_by, review.note) == (None, "", "")
    assert review.created_at == pytest.approx(time.time(), abs=60)
    with pytest.raises(NotFoundError, match="^no review with this ID$"):
        queue.get("rv_unknown")


def test_lists_page_oldest_first_by_status(queues):
    queue = queues()
    first, second, third, fourth = propose_in_order(
        queue, pair("a:1", "b:1"), pair("a:2", "b:2"), pair("a:3", "b:3"), pair("a:4", "b:4"))
    assert ids(queue.list()) == [first, second, third, fourth]
    assert ids(queue.list("open", limit=2)) == [first, second]
    assert ids(queue.list("open", limit=2, after=second)) == [third, fourth]
    assert queue.list("open", after=fourth) == []
    assert queue.list("open", after="rv_unknown") == []
    assert ids(queue.list(limit=0)) == [first]  # at least one
    queue.decide(second, accept=True, decided_by="steward:1")
    queue.decide(third, accept=False)
    assert ids(queue.list("open")) == [first, fourth]
    assert ids(queue.list("accepted")) == [second]
    assert ids(queue.list("rejected")) == [third]
    assert queue.list("applied") == []
    assert ids(queue.list("all")) == [first, second, third, fourth]
    assert ids(queue.list("all", limit=2, after=first)) == [second, third]
    # ``after`` keeps its place in creation order whatever the status now is
    assert ids(queue.list("open", after=second)) == [fourth]
    with pytest.raises(InvalidIdentifierError):
        queue.list("pending")


def test_a_page_fills_past_many_decided_reviews(queues):
    queue = queues()
    proposed = propose_in_order(queue, *(pair(f"a:{i}", f"b:{i}") for i in range(30)))
    for rid in proposed[:25]:
        queue.decide(rid, accept=False)
    assert ids(queue.list("open", limit=3)) == proposed[25:28]
    assert ids(queue.list("rejected", limit=30)) == proposed[:25]


def test_decisions_are_final_and_applied_once(queues):
    queue = queues()
    accepted, rejected = propose_in_order(queue, pair("a:1", "b:1"), pair("a:2", "b:2"))
    review = queue.decide(accepted, accept=True, decided_by="cli:ann", note="same person")
    assert (review.status, review.decided_by, review.note) == ("accepted", "cli:ann",
                                                               "same person")
    assert review.decided_at == pytest.approx(time.time(), abs=60)
    assert queue.decide(accepted, accept=True, decided_by="cli:bob") == review  # a no-op
    with pytest.raises(ReviewStateError, match="already accepted"):
        queue.decide(accepted, accept=False)
    assert queue.decide(rejected, accept=False).status == "rejected"
    with pytest.raises(ReviewStateError, match="already rejected"):
        queue.decide(rejected, accept=True)
    with pytest.raises(NotFoundError):
        queue.decide("rv_unknown", accept=True)
    assert queue.counts() == {"open": 0, "accepted": 1, "rejected": 1, "applied": 0}

    queue.mark_applied([accepted])
    assert queue.get(accepted).status == "applied"
    assert queue.decide(accepted, accept=True).status == "applied"  # accepting it: a no-op
    with pytest.raises(ReviewStateError, match="already applied"):
        queue.decide(accepted, accept=False)
    assert queue.list("accepted") == []
    assert ids(queue.list("applied")) == [accepted]
    assert queue.counts() == {"open": 0, "accepted": 0, "rejected": 1, "applied": 1}


def test_regions_filter_get_list_and_decide(queues):
    queue = queues()
    regions = {"hubspot:1": "us", "segment:u1": "us", "hubspot:2": "eu", "crm:x": "us"}
    queue.propose([pair("hubspot:1", "segment:u1"), pair("hubspot:2", "segment:u1"),
                   pair("crm:x", "crm:unknown")], regions)
    us_us = review_id_for("hubspot:1", "segment:u1")
    eu_us = review_id_for("hubspot:2", "segment:u1")
    us_unknown = review_id_for("crm:x", "crm:unknown")
    assert set(ids(queue.list("open"))) == {us_us, eu_us, us_unknown}
    assert set(ids(queue.list("open", regions={"us"}))) == {us_us, us_unknown}
    assert queue.list("open", regions={"eu"}) == []
    assert set(ids(queue.list("all", regions={"eu", "us"}))) == {us_us, eu_us, us_unknown}
    with pytest.raises(NotFoundError, match="^no review with this ID$"):
        queue.get(eu_us, {"us"})
    with pytest.raises(NotFoundError):
        queue.decide(eu_us, accept=True, regions={"us"})
    assert queue.get(eu_us).status == "open"
    assert queue.decide(us_us, accept=False, regions={"us"}).status == "rejected"
    assert queue.decide(eu_us, accept=True).status == "accepted"


def test_decided_pairs_and_erasure(queues):
    queue = queues()
    queue.propose([pair("crm:b", "crm:a"), pair("crm:a", "crm:c"), pair("crm:d", "crm:e")])
    queue.decide(review_id_for("crm:a", "crm:c"), accept=True)
    assert queue.decided_pairs() == {("crm:a", "crm:b"), ("crm:a", "crm:c"),
                                     ("crm:d", "crm:e")}
    assert queue.erase_records(["crm:a", "crm:zz"]) == 2
    assert queue.erase_records([]) == 0
    assert queue.decided_pairs() == {("crm:d", "crm:e")}
    assert ids(queue.list("all")) == [review_id_for("crm:d", "crm:e")]
    assert queue.counts() == {"open": 1, "accepted": 0, "rejected": 0, "applied": 0}
    with pytest.raises(NotFoundError):
        queue.get(review_id_for("crm:a", "crm:c"))
    # the pair is not decided any more: it may be proposed again
    assert queue.propose([pair("crm:a", "crm:b")]) == 1


def race(*calls: Callable[[], object]) -> list[object]:
    """Run ``calls`` at once (one thread each, released together); each one's result or
    the exception it raised."""
    start = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = calls[i]()
        except Exception as exc:  # noqa: BLE001 - the race's outcome, checked by the test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_two_machines_proposing_one_pair_keep_one_review(queues):
    one, two = queues(), queues()
    for i in range(5):
        a, b = f"crm:a{i}", f"crm:b{i}"
        # the second knows more, but both put the pair in eu, the stricter home (writers
        # propose inside their turns: two at once never disagree on where a pair lives)
        results = race(lambda a=a, b=b: one.propose([pair(a, b)], {a: "eu"}),
                       lambda a=a, b=b: two.propose([pair(b, a, 3.0)], {a: "eu", b: "us"}))
        assert sorted(results) == [0, 1], results
    assert len(one.list("all")) == len(two.list("open")) == 5
    assert one.counts()["open"] == 5


def test_two_deciders_at_once_cannot_both_win(queues):
    one, two = queues(), queues()
    for i in range(5):
        (rid,) = propose_in_order(one, pair(f"crm:a{i}", f"crm:b{i}"))
        results = race(lambda rid=rid: one.decide(rid, accept=True, decided_by="steward:1"),
                       lambda rid=rid: two.decide(rid, accept=False, decided_by="steward:2"))
        refused = [r for r in results if isinstance(r, ReviewStateError)]
        decided = [r for r in results if not isinstance(r, Exception)]
        assert len(refused) == 1 and len(decided) == 1, results
        winner = decided[0]
        assert two.get(rid) == winner
        assert winner.decided_by == ("steward:1" if winner.status == "accepted" else "steward:2")
    counts = one.counts()
    assert counts["open"] == 0 and counts["accepted"] + counts["rejected"] == 5
    assert len(two.list("accepted")) + len(two.list("rejected")) == 5


def test_two_deciders_taking_the_same_decision_both_see_it(queues):
    one, two = queues(), queues()
    (rid,) = propose_in_order(one, pair("crm:a", "crm:b"))
    results = race(lambda: one.decide(rid, accept=True, decided_by="steward:1"),
                   lambda: two.decide(rid, accept=True, decided_by="steward:2"))
    assert results[0] == results[1] == one.get(rid)
    assert results[0].status == "accepted"
    assert ids(two.list("accepted")) == [rid]
    assert one.counts() == {"open": 0, "accepted": 1, "rejected": 0, "applied": 0}
