"""Residency of the Cassandra review queue: a review names records (personal data), so its
rows live in the keyspace of its home region, the strictest of its records' regions, and
nowhere else; the global keyspace (replicated to every data centre) holds none of them.
A queue opened for some regions (a server of those) reads only their keyspaces.

The session's two-node cluster holds eu and uk in dc1, us and apac in dc2
(``tests/profile_store/cassandra_testing.py``); the raw tables are read with a plain
driver session, past the queue."""

from __future__ import annotations

import time

import pytest

from idgraph.coordination import review_id_for
from idgraph.coordination.cassandra_backend import CassandraReviewQueue
from idgraph.core.errors import ConfigError, NotFoundError, ResidencyError
from idgraph.profile_store.cassandra_backend import schema as q
from tests.coordination.conftest import REVIEW_REGIONS
from tests.profile_store.cassandra_testing import admin_session, cassandra_settings, fresh_prefix

TABLES = ("reviews", "reviews_by_status", "reviews_by_record")
REGIONS = {"sendgrid:ann@x.io": "eu", "crm:hubspot:1": "us", "crm:hubspot:2": "us",
           "crm:hubspot:3": "us", "crm:hubspot:4": "apac"}
EU_US = ("sendgrid:ann@x.io", "crm:hubspot:1")
US_US = ("crm:hubspot:2", "crm:hubspot:3")
UNKNOWN = ("segment:anon:1", "segment:anon:2")  # neither record's region known


def pair(a: str, b: str) -> tuple:
    return (a, b, 2.0, 0.9, "v0001", (("email", "Exact", 5.0),))


def rid(p: tuple) -> str:
    return review_id_for(*p)


@pytest.fixture()
def queues(empty_cassandra):
    """``queues(regions)``: one more queue of the test's (emptied) keyspaces."""
    opened: list[CassandraReviewQueue] = []

    def make(regions=REVIEW_REGIONS, **kw) -> CassandraReviewQueue:
        opened.append(CassandraReviewQueue(empty_cassandra, regions, **kw))
        return opened[-1]

    yield make
    for queue in opened:
        queue.close()


def raw(cluster, settings) -> dict[str, dict[str, list[tuple]]]:
    """keyspace name ("global" or the region) -> table -> its rows, of every keyspace of
    the prefix; for the global keyspace every table (the model registry's too)."""
    prefix = settings.keyspace_prefix
    names = {"global": q.global_keyspace(prefix)}
    names.update({r: q.region_keyspace(prefix, r) for r in REVIEW_REGIONS})
    with admin_session(cluster, consistency="ALL") as session:
        meta = session.cluster.metadata.keyspaces
        return {name: {t: [tuple(row) for row in session.execute(f"SELECT * FROM {ks}.{t}")]
                       for t in meta[ks].tables}
                for name, ks in names.items()}


def review_rows(tables: dict[str, list[tuple]]) -> dict[str, list[tuple]]:
    return {t: tables.get(t, []) for t in TABLES}


def holding(rows: dict[str, dict[str, list[tuple]]], review_id: str) -> dict[str, list[str]]:
    """keyspace -> the review tables with a row naming ``review_id``."""
    return {ks: [t for t in TABLES if any(review_id in row for row in tables.get(t, []))]
            for ks, tables in rows.items()}


def propose_in_order(queue, *pairs: tuple) -> None:
    for p in pairs:
        time.sleep(0.002)
        assert queue.propose([pair(*p)], REGIONS) == 1


def test_each_review_lives_in_its_home_regions_keyspace_only(queues, cassandra_cluster,
                                                              empty_cassandra):
    writer = queues()
    propose_in_order(writer, EU_US, US_US, UNKNOWN)
    rows = raw(cassandra_cluster, empty_cassandra)
    everywhere = {"global": [], "eu": [], "uk": [], "us": [], "apac": []}
    # eu and us records: the stricter region, eu; two us records: us; neither known:
    # the strictest region of the queue, eu
    assert holding(rows, rid(EU_US)) == {**everywhere, "eu": list(TABLES)}
    assert holding(rows, rid(US_US)) == {**everywhere, "us": list(TABLES)}
    assert holding(rows, rid(UNKNOWN)) == {**everywhere, "eu": list(TABLES)}
    assert len(rows["eu"]["reviews_by_record"]) == 4  # each record named where its review is
    assert sorted(r[0] for r in rows["us"]["reviews_by_record"]) == list(US_US)
    # the global keyspace has no table of the queue, and no row names a record
    assert not any("review" in t for t in rows["global"])
    assert not any(k in repr(rows["global"]) for p in (EU_US, US_US, UNKNOWN) for k in p)

    # decisions and applying change the row (and the index) where it is
    writer.decide(rid(EU_US), accept=True, decided_by="steward:1")
    writer.mark_applied([rid(EU_US)])
    writer.decide(rid(US_US), accept=False)
    rows = raw(cassandra_cluster, empty_cassandra)
    assert holding(rows, rid(EU_US)) == {**everywhere, "eu": list(TABLES)}
    assert holding(rows, rid(US_US)) == {**everywhere, "us": list(TABLES)}
    assert [(r[0], r[2]) for r in rows["eu"]["reviews_by_status"]
            if r[2] == rid(EU_US)] == [("applied", rid(EU_US))]
    assert [(r[0], r[2]) for r in rows["us"]["reviews_by_status"]] == [("rejected",
                                                                        rid(US_US))]
    assert writer.counts() == {"open": 1, "accepted": 0, "rejected": 1, "applied": 1}


def test_a_server_of_some_regions_sees_only_the_reviews_whose_home_it_serves(queues):
    writer = queues()
    propose_in_order(writer, EU_US, US_US, UNKNOWN)
    us_server = queues(["us"], create=False)
    assert [r.review_id for r in us_server.list("open")] == [rid(US_US)]
    assert [r.review_id for r in us_server.list("all")] == [rid(US_US)]
    assert us_server.get(rid(US_US)).record_a == US_US[0]
    for other in (EU_US, UNKNOWN):
        with pytest.raises(NotFoundError, match="^no review with this ID$"):
            us_server.get(rid(other))
        with pytest.raises(NotFoundError):
            us_server.decide(rid(other), accept=True)
    assert us_server.counts() == {"open": 1, "accepted": 0, "rejected": 0, "applied": 0}
    assert us_server.decided_pairs() == {tuple(sorted(US_US))}
    assert us_server.list("open", after=rid(EU_US)) == []  # not one of its reviews

    europe = queues(["eu", "uk"], create=False)
    assert [r.review_id for r in europe.list("open")] == [rid(EU_US), rid(UNKNOWN)]
    with pytest.raises(NotFoundError):
        europe.get(rid(US_US))
    # the regions filter still applies on top: the eu/us review may concern a us record
    assert [r.review_id for r in europe.list("open", regions={"eu", "uk"})] == [rid(UNKNOWN)]

    assert [r.review_id for r in writer.list("open")] == [rid(EU_US), rid(US_US),
                                                          rid(UNKNOWN)]
    assert writer.decide(rid(EU_US), accept=True).status == "accepted"
    assert europe.get(rid(EU_US)).status == "accepted"


def test_a_list_pages_in_creation_order_across_regions(queues):
    writer = queues()
    apac = ("crm:hubspot:4", "segment:anon:3")  # home apac
    propose_in_order(writer, UNKNOWN, US_US, apac, EU_US)
    order = [rid(UNKNOWN), rid(US_US), rid(apac), rid(EU_US)]
    assert [r.review_id for r in writer.list("open")] == order
    first = writer.list("open", limit=2)
    assert [r.review_id for r in first] == order[:2]
    assert [r.review_id for r in writer.list("open", limit=2, after=order[1])] == order[2:]
    writer.decide(rid(US_US), accept=False)
    assert [r.review_id for r in writer.list("all", limit=3, after=order[0])] == order[1:]
    assert [r.review_id for r in writer.list("open", after=order[0])] == order[2:]


def test_a_forget_erases_reviews_of_several_regions(queues, cassandra_cluster,
                                                    empty_cassandra):
    writer = queues()
    shared = "sendgrid:bob@x.io"  # its region unknown: each review lives with the other
    in_eu, in_us, in_apac = ((shared, "sendgrid:ann@x.io"), (shared, "crm:hubspot:1"),
                             (shared, "crm:hubspot:4"))
    propose_in_order(writer, in_eu, in_us, in_apac, US_US)
    rows = raw(cassandra_cluster, empty_cassandra)
    assert [ks for ks, tables in holding(rows, rid(in_apac)).items() if tables] == ["apac"]
    assert writer.erase_records([shared]) == 3
    rows = raw(cassandra_cluster, empty_cassandra)
    assert shared not in repr(rows)
    for ks in ("global", "eu", "uk", "apac"):
        assert review_rows(rows[ks]) == {t: [] for t in TABLES}, ks
    assert [r.review_id for r in writer.list("all")] == [rid(US_US)]
    assert writer.decided_pairs() == {tuple(sorted(US_US))}


def test_a_region_the_queue_does_not_serve_is_refused_before_anything_is_written(
        queues, cassandra_cluster, empty_cassandra):
    us_only = queues(["us"])
    with pytest.raises(ResidencyError) as err:
        us_only.propose([pair(*US_US), pair(*EU_US)], REGIONS)  # the first alone would do
    assert "'eu'" in str(err.value)
    assert not any(k in str(err.value) for k in (*US_US, *EU_US))
    writer = queues()
    with pytest.raises(ResidencyError, match="'mars'"):
        writer.propose([pair(*UNKNOWN), pair("crm:mars:1", "crm:mars:2")],
                       {"crm:mars:1": "mars"})
    rows = raw(cassandra_cluster, empty_cassandra)
    for ks, tables in rows.items():
        assert review_rows(tables) == {t: [] for t in TABLES}, ks
    assert writer.list("all") == []


def test_a_pair_queued_elsewhere_is_left_where_it_is(queues, cassandra_cluster,
                                                     empty_cassandra):
    """A record moved to eu since its pair was queued in us: proposing the pair again
    queues nothing (its review stays in us, and is not queued twice)."""
    writer = queues()
    assert writer.propose([pair(*US_US)], REGIONS) == 1
    assert writer.propose([pair(*US_US)], {US_US[0]: "eu", US_US[1]: "us"}) == 0
    rows = raw(cassandra_cluster, empty_cassandra)
    assert [ks for ks, tables in holding(rows, rid(US_US)).items() if tables] == ["us"]
    assert writer.get(rid(US_US)).region_a == "us"


def test_the_queue_needs_regions_and_their_tables(queues, cassandra_cluster, empty_cassandra):
    with pytest.raises(ConfigError, match="regions"):
        queues([])
    assert CassandraReviewQueue.exists(empty_cassandra, ["us"])
    assert CassandraReviewQueue.exists(empty_cassandra, REVIEW_REGIONS)
    elsewhere = cassandra_settings(cassandra_cluster, fresh_prefix("rr"))
    assert not CassandraReviewQueue.exists(elsewhere, ["us"])
