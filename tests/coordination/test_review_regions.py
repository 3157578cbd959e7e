"""The review queue keeps its records' regions: the schema migration of an older file, and
the ``regions`` filter of get/list/decide (what a server of some regions reads through)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from idgraph.coordination import review_id_for
from idgraph.coordination.base import Review, may_be_in
from idgraph.coordination.local.reviews import SqliteReviewQueue
from idgraph.core.errors import NotFoundError

#: The schema before reviews kept regions (what files written by older versions hold).
OLD_SCHEMA = """
CREATE TABLE reviews (
    review_id TEXT PRIMARY KEY,
    record_a TEXT NOT NULL,
    record_b TEXT NOT NULL,
    match_weight REAL NOT NULL,
    probability REAL NOT NULL,
    model_version TEXT NOT NULL,
    contributions TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    decided_at REAL,
    decided_by TEXT,
    note TEXT
);
CREATE INDEX reviews_status ON reviews (status, created_at);
"""

PAIR = ("hubspot:1", "segment:u1", 2.0, 0.95, "v0001", (("email", "Exact", 5.0),))


def old_file(path: Path) -> str:
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    rid = review_id_for("crm:a", "crm:b")
    db.execute("INSERT INTO reviews VALUES (?,?,?,?,?,?,?,?,?,NULL,NULL,NULL)",
               (rid, "crm:a", "crm:b", 1.0, 0.9, "v0001", "[]", "open", 1.0))
    db.commit()
    db.close()
    return rid


def test_an_older_file_gets_the_region_columns(tmp_path: Path) -> None:
    path = tmp_path / "reviews.sqlite"
    old = old_file(path)
    queue = SqliteReviewQueue(path)
    try:
        review = queue.get(old)
        assert (review.record_a, review.status, review.region_a, review.region_b) == (
            "crm:a", "open", "", "")
        assert queue.propose([PAIR], {"hubspot:1": "uk", "segment:u1": "eu"}) == 1
        new = queue.get(review_id_for("hubspot:1", "segment:u1"))
        assert (new.region_a, new.region_b) == ("uk", "eu")
        assert [r.review_id for r in queue.list("all")] == [old, new.review_id]
    finally:
        queue.close()
    columns = [row[1] for row in sqlite3.connect(path).execute("PRAGMA table_info(reviews)")]
    assert columns[-2:] == ["region_a", "region_b"]
    SqliteReviewQueue(path).close()  # opening a migrated file again changes nothing


def test_regions_filter_get_list_and_decide(tmp_path: Path) -> None:
    queue = SqliteReviewQueue(tmp_path / "reviews.sqlite")
    try:
        regions = {"hubspot:1": "us", "segment:u1": "us", "hubspot:2": "eu", "crm:x": "us"}
        queue.propose([PAIR, ("hubspot:2", "segment:u1", 1.0, 0.9, "v0001", ()),
                       ("crm:x", "crm:unknown", 1.0, 0.9, "v0001", ())], regions)
        us_us = review_id_for("hubspot:1", "segment:u1")
        eu_us = review_id_for("hubspot:2", "segment:u1")
        us_unknown = review_id_for("crm:x", "crm:unknown")
        assert {r.review_id for r in queue.list("open")} == {us_us, eu_us, us_unknown}
        # a region not recorded ("") may be anywhere: the caller checks its store
        assert {r.review_id for r in queue.list("open", regions={"us"})} == {us_us, us_unknown}
        assert [r.review_id for r in queue.list("open", regions={"eu"})] == []
        assert {r.review_id for r in queue.list("all", regions={"eu", "us"})} == {
            us_us, eu_us, us_unknown}
        with pytest.raises(NotFoundError) as err:
            queue.get(eu_us, {"us"})
        assert str(err.value) == "no review with this ID"  # as for an unknown one
        with pytest.raises(NotFoundError):
            queue.decide(eu_us, accept=True, regions={"us"})
        assert queue.get(eu_us).status == "open"
        assert queue.decide(us_us, accept=False, regions={"us"}).status == "rejected"
        # without regions (the CLI, which serves every region of its data dir) all of them
        assert queue.decide(eu_us, accept=True).status == "accepted"
    finally:
        queue.close()


def test_may_be_in() -> None:
    review = Review("rv_1", "a", "b", 0.0, 0.0, "v", (), "open", 0.0, None, "", "",
                    region_a="us", region_b="")
    assert may_be_in(review, None) and may_be_in(review, {"us"})
    assert not may_be_in(review, {"eu"})
