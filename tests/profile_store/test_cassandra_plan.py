"""The Cassandra store's batch planner and journal, without a cluster: which rows a batch
writes and deletes in which region, and that a journal decodes to what was encoded."""

from __future__ import annotations

import uuid
from collections import Counter

import orjson
from store_builders import links, rec

from idgraph.profile_store.base import ProfileChange, ProfileEvent, ProfileHead, StoreBatch
from idgraph.profile_store.cassandra_backend import schema as q
from idgraph.profile_store.cassandra_backend.journal import decode_journal, encode_journal
from idgraph.profile_store.cassandra_backend.plan import (
    ANONYMOUS,
    KNOWN,
    HistoryRow,
    Snapshot,
    StoredRow,
    plan_batch,
    profiles_to_load,
)

TS = 1_700_000_000_000_000
SHAREABLE = frozenset({"device", "idfa", "gaid", "cookie"})
REGIONS = frozenset({"eu", "us"})


def change_ids():
    n = iter(range(1, 1000))
    return lambda: (1, uuid.UUID(int=next(n)))


def plan(batch: StoreBatch, snap: Snapshot | None = None, ttl: int = 0) -> dict:
    return plan_batch(batch, snap or Snapshot(), REGIONS, TS, ttl, SHAREABLE, change_ids())


def codes(mutations) -> Counter:
    return Counter(code for code, _ in mutations)


def test_a_new_profile_writes_each_row_once_in_its_region():
    r = rec("crm:1", "p1", "eu", ["email:a@x.eu", "phone:+331"])
    out = plan(StoreBatch(records=[r], identifier_links=links(r),
                          heads=[ProfileHead("p1", "eu", 9.0)],
                          history=[ProfileEvent("created", "p1", [], 1.0, 1)],
                          changes=[ProfileChange("created", "p1", [], "eu", 1.0)]))
    assert set(out) == {"eu"}
    assert codes(out["eu"]) == {q.PUT_HEAD: 1, q.PUT_RECORD: 1, q.PUT_LINK: 1, q.PUT_IDENT: 2,
                                q.PUT_HIST: 1, q.PUT_OUTBOX: 1}
    for code, values in out["eu"]:  # every write carries the batch's timestamp
        assert TS in values, code
        assert "eu" in values, code  # and the region of its partition key


def test_unchanged_index_rows_are_not_written_again():
    r = rec("crm:1", "p1", "eu", ["email:a@x.eu"], 2.0)
    snap = Snapshot(heads={"p1": ("eu", 9.0, -1)},
                    records={"crm:1": StoredRow("eu", "p1", {"email:a@x.eu": True})})
    out = plan(StoreBatch(records=[r], identifier_links=links(r),
                          heads=[ProfileHead("p1", "eu", 10.0)]), snap)
    assert codes(out["eu"]) == {q.PUT_HEAD: 1, q.PUT_RECORD: 1}


def test_a_merge_into_another_region_moves_every_row_and_leaves_none_behind():
    doc = orjson.dumps(rec("crm:2", "p2", "us", ["email:b@x.com"]))
    snap = Snapshot(
        heads={"p1": ("eu", 9.0, -1), "p2": ("us", 9.0, -1)},
        aliases={"p0": ("us", "p2")},
        records={"crm:2": StoredRow("us", "p2", {"email:b@x.com": True}, doc, 1.0)},
        history={"p2": ("us", [HistoryRow(2, "created", "p2", b"[]", 1.0)]),
                 "p0": ("us", [HistoryRow(1, "created", "p0", b"[]", 1.0)])},
        loaded={"p2"})
    batch = StoreBatch(heads=[ProfileHead("p1", "eu", 10.0)], reassign=[("p2", "p1")],
                       regions=[("p1", "eu")], aliases={"p2": "p1", "p0": "p1"},
                       history=[ProfileEvent("merged", "p1", ["p2"], 2.0, 3)])
    assert profiles_to_load(batch, snap, 0) == {"p1": "eu", "p2": "us"}
    out = plan(batch, snap)
    assert codes(out["us"]) == {q.DEL_HEAD: 1, q.DEL_ALIAS: 1, q.DEL_RECORD: 1, q.DEL_LINK: 2,
                                q.DEL_IDENT: 1, q.DEL_HIST: 2}
    assert codes(out["eu"]) == {q.PUT_HEAD: 1, q.PUT_ALIAS: 2, q.PUT_LINK: 3, q.PUT_RECORD: 1,
                                q.PUT_IDENT: 1, q.PUT_HIST: 4}


def test_anonymous_profiles_are_written_with_the_ttl_and_known_ones_without():
    anon = rec("segment:a", "pa", "eu", ["device:d1", "cookie:c1"])
    known = rec("crm:1", "pk", "eu", ["email:a@x.eu", "device:d2"])
    batch = StoreBatch(records=[anon, known], identifier_links=links(anon, known),
                       heads=[ProfileHead("pa", "eu", 9.0), ProfileHead("pk", "eu", 9.0)])
    out = plan(batch, ttl=60)
    ttls = {(code, values[q.MUTATIONS[code][0].count("?", 0, _ttl_at(code))])
            for code, values in out["eu"]}
    assert ttls == {(q.PUT_HEAD, 60), (q.PUT_HEAD, 0), (q.PUT_RECORD, 60), (q.PUT_RECORD, 0),
                    (q.PUT_LINK, 60), (q.PUT_LINK, 0), (q.PUT_IDENT, 60), (q.PUT_IDENT, 0)}
    heads = {values[5]: values[3] for code, values in out["eu"] if code == q.PUT_HEAD}
    assert heads == {"pa": ANONYMOUS, "pk": KNOWN}


def _ttl_at(code: str) -> int:
    return q.MUTATIONS[code][0].index("TTL ?") + len("TTL ")


def test_a_known_profile_that_only_gains_records_is_not_read_in_full():
    snap = Snapshot(heads={"pk": ("eu", 9.0, KNOWN), "pa": ("eu", 9.0, ANONYMOUS)})
    r = rec("crm:9", "pk", "eu", ["email:z@x.eu"])
    a = rec("segment:z", "pa", "eu", ["device:z"])
    batch = StoreBatch(records=[r, a], heads=[ProfileHead("pk", "eu", 10.0),
                                              ProfileHead("pa", "eu", 10.0)])
    assert profiles_to_load(batch, snap, 60) == {"pa": "eu"}
    assert profiles_to_load(batch, snap, 0) == {}


def test_a_journal_decodes_to_the_mutations_encoded():
    mutations = [
        (q.PUT_RECORD, ("eu", "crm:1", "p1", 1.5, b"\x00doc\xff", b"{}", 0, TS)),
        (q.PUT_OUTBOX, ("eu", 472_000, uuid.uuid1(), b"change", TS)),
        (q.PUT_IDENT, ("eu", "email:a@x.eu", "crm:1", False, 60, TS)),
        (q.DEL_HIST, (TS, "eu", "p1", 2**40, "merged", "p1")),
    ]
    assert decode_journal(encode_journal(mutations)) == mutations


def test_a_row_too_large_for_a_batch_is_written_alone():
    """Cassandra 2.2+ refuses any batch over 50 kB: a mutation of 48 kB or more goes as a
    plain statement, and a batch closes before a row would take it past 48 kB."""
    from cassandra.query import BatchStatement, SimpleStatement

    from idgraph.profile_store.cassandra_backend.journal import BATCH_BYTES, Journal

    class Recorder:  # the driver's side of the journal: statements, and what is sent
        def __init__(self):
            self.calls = []

        def prepared(self, region, code):
            return SimpleStatement("INSERT INTO records (region, key, doc) VALUES (%s, %s, %s)")

        def execute(self, calls, operation):
            self.calls.extend(calls)

    db = Recorder()
    journal = Journal(db, frozenset({"eu"}), lambda: 1, writable=False)
    big = b"x" * BATCH_BYTES
    half = b"y" * (BATCH_BYTES // 2 + 1)
    journal.apply({"eu": [("put_record", ("eu", "k1", big)), ("put_record", ("eu", "k2", half)),
                          ("put_record", ("eu", "k3", half)), ("put_record", ("eu", "k4", b"z"))]})
    alone = [c for c in db.calls if not isinstance(c[0], BatchStatement)]
    batches = [c[0] for c in db.calls if isinstance(c[0], BatchStatement)]
    assert [values[1] for _stmt, values, _region in alone] == ["k1"]
    # the two halves would pass 48 kB together: two batches
    assert sorted(len(b) for b in batches) == [1, 2]
