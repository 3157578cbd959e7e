"""The segment part of the profile-store seam (:mod:`idgraph.profile_store.segment_state`),
run against every backend: the embedded SQLite store and the Cassandra store on the real
two-data-centre cluster (``cassandra_cluster`` in conftest.py; ``eu`` lives in dc1, ``us``
in dc2).

Definitions (versions, the catalog version's compare-and-set, deletion), memberships
written in the batch of the profile rows (upsert, removal, region moves, reads by profile,
by segment with paging and counts, by deadline), residency, the change log and its
cursors, the outbox carrying segment changes, builds, and the profile-ID scan of builds.

The Cassandra runs share one keyspace prefix created once per session and truncated
before each test, as in ``test_store_contract.py``.
"""

from __future__ import annotations

import dataclasses
import time

import pytest
from cassandra_testing import cassandra_settings, drop_keyspaces, fresh_prefix, truncate_keyspaces
from store_builders import links, rec

from idgraph.core.errors import NotFoundError, ResidencyError
from idgraph.profile_store.base import ProfileChange, ProfileHead, StoreBatch
from idgraph.profile_store.segment_state import (
    ENTERED,
    EXITED,
    CatalogChangedError,
    Membership,
    SegmentBuild,
    SegmentChange,
)
from idgraph.profile_store.sqlite_backend import SqliteProfileStore
from idgraph.profile_store.sqlite_backend.segment_catalog import SqliteSegmentCatalog

REGIONS = ["eu", "us"]
BUYERS = '{"kind": "count", "min": 1}'  # stored as given: the store does not parse it
NOW = time.time()


@pytest.fixture(scope="session")
def segment_prefix(cassandra_cluster):
    """A keyspace prefix whose eu, us and global keyspaces exist (dropped at the end)."""
    from idgraph.profile_store.cassandra_backend import CassandraProfileStore

    prefix = fresh_prefix("s")
    CassandraProfileStore(cassandra_settings(cassandra_cluster, prefix), REGIONS).close()
    yield prefix
    drop_keyspaces(cassandra_cluster, prefix)


@pytest.fixture(params=["sqlite", "cassandra"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def opened():
    """Stores and catalogs a test opened: closed after it."""
    items: list = []
    yield items
    for item in reversed(items):
        item.close()


@pytest.fixture
def store_factory(backend, request, tmp_path, opened):
    """``store_factory(regions, readonly=False)``: a store of the test's backend on one
    shared database, empty at the start of the test."""
    if backend == "cassandra":
        from idgraph.profile_store.cassandra_backend import CassandraProfileStore

        cluster = request.getfixturevalue("cassandra_cluster")
        prefix = request.getfixturevalue("segment_prefix")
        truncate_keyspaces(cluster, prefix)

        def open_store(regions, readonly):
            return CassandraProfileStore(cassandra_settings(cluster, prefix), regions,
                                         readonly=readonly)
    else:
        def open_store(regions, readonly):
            return SqliteProfileStore(tmp_path / "profiles.sqlite", regions, readonly=readonly)

    def factory(regions=REGIONS, readonly=False):
        store = open_store(regions, readonly)
        opened.append(store)
        return store

    return factory


@pytest.fixture
def catalog_factory(backend, request, tmp_path, opened, store_factory):
    """``catalog_factory()``: a segment catalog opened on its own, on the database of the
    test's stores (requested after ``store_factory``, which empties it)."""
    def factory():
        if backend == "cassandra":
            from idgraph.profile_store.cassandra_backend.segment_catalog import (
                CassandraSegmentCatalog,
            )

            catalog = CassandraSegmentCatalog(cassandra_settings(
                request.getfixturevalue("cassandra_cluster"),
                request.getfixturevalue("segment_prefix")))
        else:
            catalog = SqliteSegmentCatalog(tmp_path / "profiles.sqlite")
        opened.append(catalog)
        return catalog

    return factory


def member(pid: str, segment: str = "buyers", region: str = "eu", *, is_member: bool = True,
           next_change: float = 0.0, since: float = 5.0, version: int = 1) -> Membership:
    return Membership(segment, pid, region, version, is_member, since,
                      ["orders >= 1"] if is_member else [], next_change)


def change(pid: str, region: str = "eu", kind: str = ENTERED, segment: str = "buyers",
           at: float = 5.0) -> SegmentChange:
    return SegmentChange(pid, segment, 1, kind, at, "event", ["orders >= 1"], region)


def bare(changes) -> list:
    """Changes without their store-given IDs (what a writer put in)."""
    return [dataclasses.replace(c, change_id="") for c in changes]


def profiles_batch(*pids_regions: tuple[str, str], **fields) -> StoreBatch:
    """A batch creating one profile (a record and a head) per (ID, region), plus
    ``fields``."""
    records = [rec(f"crm:{pid}", pid, region, [f"email:{pid}@x.com"])
               for pid, region in pids_regions]
    return StoreBatch(records=records, identifier_links=links(*records),
                      heads=[ProfileHead(pid, region, 10.0) for pid, region in pids_regions],
                      **fields)


# -- definitions --------------------------------------------------------------------------


def test_define_adds_versions_and_counts_the_catalog(store_factory, catalog_factory):
    store = store_factory()
    catalog = catalog_factory()
    assert store.segment_catalog() == (0, {})
    first = catalog.define("buyers", BUYERS, "count >= 1", "ann", "who bought", 100.0, 0)
    assert (first.name, first.version, first.deleted) == ("buyers", 1, False)
    second = catalog.define("buyers", '{"kind": "count", "min": 2}', "count >= 2", "bob", "",
                            200.0, 1)
    vip = catalog.define("vip", '{"kind": "all"}', "all", "ann", "", 300.0, 2)
    assert second.version == 2 and vip.version == 1
    reader = store_factory(readonly=True)
    for s in (store, reader):
        assert s.segment_catalog() == (3, {"buyers": second, "vip": vip})
        assert s.segment_versions("buyers") == [first, second]
        assert s.segment_versions("nothing") == []
    assert (first.definition, first.text, first.author, first.description, first.defined_at) \
        == (BUYERS, "count >= 1", "ann", "who bought", 100.0)


def test_a_stale_catalog_version_is_refused_and_changes_nothing(store_factory, catalog_factory):
    store = store_factory()
    catalog, other = catalog_factory(), catalog_factory()
    defined = catalog.define("buyers", BUYERS, "count >= 1", "ann", "", 100.0, 0)
    with pytest.raises(CatalogChangedError):  # another definer validated against version 0
        other.define("vip", '{"kind": "all"}', "all", "bob", "", 101.0, 0)
    with pytest.raises(CatalogChangedError):
        other.delete("buyers", "bob", 102.0, 0)
    with pytest.raises(CatalogChangedError):  # a version from the future is no better
        other.define("vip", '{"kind": "all"}', "all", "bob", "", 101.0, 7)
    assert store.segment_catalog() == (1, {"buyers": defined})
    assert store.segment_versions("vip") == []
    assert other.define("vip", '{"kind": "all"}', "all", "bob", "", 103.0, 1).version == 1
    assert store.segment_catalog()[0] == 2


def test_delete_hides_the_segment_and_keeps_its_versions(store_factory, catalog_factory):
    store = store_factory()
    catalog = catalog_factory()
    defined = catalog.define("buyers", BUYERS, "count >= 1", "ann", "d", 100.0, 0)
    with pytest.raises(NotFoundError):
        catalog.delete("never", "ann", 150.0, 1)
    deleted = catalog.delete("buyers", "bob", 200.0, 1)
    assert (deleted.version, deleted.deleted, deleted.definition, deleted.text,
            deleted.author, deleted.defined_at) == (2, True, "", "", "bob", 200.0)
    assert store.segment_catalog() == (2, {})
    assert store.segment_versions("buyers") == [defined, deleted]
    again = catalog.define("buyers", BUYERS, "count >= 1", "cy", "", 300.0, 2)
    assert again.version == 3
    assert store.segment_catalog() == (3, {"buyers": again})
    assert [v.version for v in store.segment_versions("buyers")] == [1, 2, 3]


# -- memberships --------------------------------------------------------------------------


def test_memberships_land_with_the_profile_rows_and_are_read_by_profile(store_factory):
    store = store_factory()
    rows = [member("p1", "buyers"), member("p1", "active", is_member=False,
                                           next_change=NOW + 3600),
            member("p2", "buyers", "us", since=7.0)]
    store.write(profiles_batch(("p1", "eu"), ("p2", "us"), memberships=rows))
    assert store.get_profile("p1") is not None  # the profile rows of the same batch
    assert store.memberships(["p2", "p1", "p9", "p1"]) == {
        "p1": [rows[1], rows[0]],  # by segment
        "p2": [rows[2]]}
    assert store.memberships([]) == {}

    # an upsert replaces the row, a removal deletes it, in a batch with a profile change
    left = member("p1", "buyers", is_member=False, next_change=NOW + 60, since=9.0)
    r = rec("crm:p1", "p1", "eu", ["email:p1@x.com"], 2.0, first=1.0, events=2)
    store.write(StoreBatch(records=[r], heads=[ProfileHead("p1", "eu", 20.0)],
                           memberships=[left], removed_memberships=[("eu", "active", "p1")]))
    assert store.memberships(["p1"]) == {"p1": [left]}
    assert store.get_profile("p1").head.updated_at == 20.0
    store.write(StoreBatch(removed_memberships=[("eu", "buyers", "p1"),
                                                ("eu", "buyers", "nobody")]))
    assert store.memberships(["p1", "p2"]) == {"p2": [rows[2]]}


def test_a_removal_and_an_upsert_of_one_row_in_a_batch_leave_the_upsert(store_factory):
    store = store_factory()
    store.write(profiles_batch(("p1", "eu"), memberships=[member("p1", next_change=NOW + 60)]))
    kept = member("p1", is_member=False, next_change=NOW + 120, since=8.0)
    store.write(StoreBatch(removed_memberships=[("eu", "buyers", "p1")], memberships=[kept]))
    assert store.memberships(["p1"]) == {"p1": [kept]}
    assert store.segment_members("buyers") == []
    assert store.due_memberships(NOW + 3600, 10) == [kept]


def test_members_in_profile_id_order_paged_and_counted_per_region(store_factory):
    store = store_factory()
    eu = [f"p{i:03d}" for i in range(0, 300, 2)]  # more than a page of each shard
    us = [f"p{i:03d}" for i in range(1, 101, 2)]
    rows = [member(p) for p in eu] + [member(p, region="us") for p in us]
    rows += [member("p900", is_member=False, next_change=NOW + 60),  # a deadline only
             member("p002", "other")]
    store.write(profiles_batch(*[(p, "eu") for p in eu], *[(p, "us") for p in us],
                               ("p900", "eu"), memberships=rows))
    expected = sorted(eu + us)
    buyers = {m.profile_id: m for m in rows if m.segment == "buyers" and m.member}
    assert store.segment_members("buyers") == [buyers[p] for p in expected]
    assert store.segment_members("buyers", limit=3) == [buyers[p] for p in expected[:3]]
    for size in (7, 45):
        paged, after = [], ""
        while page := store.segment_members("buyers", after, size):
            assert len(page) == min(size, len(expected) - len(paged))  # full but the last
            paged.extend(page)
            after = page[-1].profile_id
        assert [m.profile_id for m in paged] == expected
    assert {m.profile_id: m.region for m in paged} == {
        **{p: "eu" for p in eu}, **{p: "us" for p in us}}
    assert [m.profile_id for m in store.segment_members("buyers", "p090", 8)] == [
        "p091", "p092", "p093", "p094", "p095", "p096", "p097", "p098"]
    assert [m.profile_id for m in store.segment_members("buyers", "p097", 4)] == [
        "p098", "p099", "p100", "p102"]
    assert store.count_segment("buyers") == {"eu": 150, "us": 50}
    assert store.count_segment("other") == {"eu": 1}
    assert store.count_segment("none") == {} and store.segment_members("none") == []
    assert store.segment_members("buyers", limit=0) == []

    # a member leaving stops being listed and counted; its row stays for its deadline
    store.write(StoreBatch(memberships=[member("p000", is_member=False, next_change=NOW)]))
    assert store.segment_members("buyers", limit=1)[0].profile_id == "p001"
    assert store.count_segment("buyers") == {"eu": 149, "us": 50}


def test_members_are_paged_in_order_when_the_first_ones_share_a_partition(store_factory):
    """The worst case of a store that spreads a segment's members over partitions by a
    hash of the ID (Cassandra's shards): the 60 lowest IDs all hash to one of them."""
    from idgraph.profile_store.cassandra_backend.segments import member_shard

    store = store_factory()
    ids = [f"m{i:04d}" for i in range(2000)]
    skewed = [p for p in ids if member_shard(p) == 0][:60]
    rest = [p for p in ids if p > skewed[-1]][:60]
    expected = sorted(skewed + rest)
    store.write(profiles_batch(*[(p, "eu") for p in expected],
                               memberships=[member(p) for p in expected]))
    for size in (45, 100):
        paged, after = [], ""
        while page := store.segment_members("buyers", after, size):
            assert len(page) == min(size, len(expected) - len(paged))
            paged.extend(page)
            after = page[-1].profile_id
        assert [m.profile_id for m in paged] == expected


def test_a_membership_moves_region_with_its_profile(store_factory):
    store = store_factory()
    store.write(profiles_batch(("p1", "us"), memberships=[
        member("p1", region="us", next_change=NOW - 10)]))
    moved = member("p1", region="eu", next_change=NOW - 5, since=9.0)
    now_eu = rec("crm:p1", "p1", "eu", ["email:p1@x.com"], 2.0, first=1.0, events=2)
    store.write(StoreBatch(records=[now_eu], identifier_links=links(now_eu),
                           heads=[ProfileHead("p1", "eu", 21.0)], regions=[("p1", "eu")],
                           removed_memberships=[("us", "buyers", "p1")], memberships=[moved]))
    assert store.memberships(["p1"]) == {"p1": [moved]}
    assert store.segment_members("buyers") == [moved]
    assert store.count_segment("buyers") == {"eu": 1}
    assert store.due_memberships(NOW, 10) == [moved]
    us = store_factory(["us"], readonly=True)
    assert us.memberships(["p1"]) == {} and us.segment_members("buyers") == []
    assert us.count_segment("buyers") == {} and us.due_memberships(NOW, 10) == []
    eu = store_factory(["eu"], readonly=True)
    assert eu.memberships(["p1"]) == {"p1": [moved]}


# -- residency ----------------------------------------------------------------------------


def test_a_membership_of_an_unserved_region_is_refused_with_its_batch(store_factory):
    store = store_factory(["eu"])
    with pytest.raises(ResidencyError, match="'us'"):
        store.write(profiles_batch(("p1", "eu"), memberships=[
            member("p1"), member("p2", region="us")]))
    assert store.get_profile("p1") is None
    assert store.memberships(["p1", "p2"]) == {}
    assert store.segment_members("buyers") == []


def test_a_refused_membership_write_leaves_the_store_writable(store_factory):
    store = store_factory(["eu"])
    with pytest.raises(ResidencyError):
        store.write(profiles_batch(("p1", "eu"), memberships=[member("p2", region="us")]))
    store.write(profiles_batch(("p3", "eu"), memberships=[member("p3")]))
    assert store.memberships(["p1", "p3"]) == {"p3": [member("p3")]}


def test_removing_a_membership_of_an_unserved_region_is_refused(store_factory):
    writer = store_factory()
    writer.write(profiles_batch(("p2", "us"), memberships=[member("p2", region="us")]))
    eu = store_factory(["eu"])
    with pytest.raises(ResidencyError, match="'us'"):
        eu.write(StoreBatch(removed_memberships=[("us", "buyers", "p2")]))
    assert writer.memberships(["p2"]) == {"p2": [member("p2", region="us")]}


def test_a_store_of_other_regions_sees_no_segment_rows(store_factory):
    writer = store_factory()
    writer.write(profiles_batch(
        ("p1", "eu"), ("p2", "us"),
        memberships=[member("p1", next_change=NOW - 1), member("p2", region="us")],
        segment_changes=[change("p1"), change("p2", "us")],
        segment_builds=[SegmentBuild("eu", "buyers", 1, 1, 1, "p1", 1.0, 2.0)]))
    us = store_factory(["us"], readonly=True)
    assert us.memberships(["p1", "p2"]).keys() == {"p2"}
    assert [m.profile_id for m in us.segment_members("buyers")] == ["p2"]
    assert us.count_segment("buyers") == {"us": 1}
    assert us.due_memberships(NOW, 10) == []
    assert us.segment_builds() == []
    assert [c.profile_id for c in us.segment_changes_after("", 10)[0]] == ["p2"]
    assert us.profile_ids_after("eu", "", 10) == []
    assert us.profile_ids_after("us", "", 10) == ["p2"]


# -- deadlines ----------------------------------------------------------------------------


def test_due_memberships_come_earliest_first_and_only_when_due(store_factory):
    store = store_factory()
    rows = {
        "long_past": member("p1", next_change=NOW - 5 * 86_400),
        "past": member("p2", "active", region="us", is_member=False, next_change=NOW - 7200),
        "soon": member("p3", next_change=NOW + 60),
        "later": member("p4", region="us", next_change=NOW + 3 * 3600),
        "next_year": member("p5", next_change=NOW + 365 * 86_400),
        "none": member("p6"),
        "epoch": member("p7", "old", next_change=50.0),  # a deadline long gone when written
    }
    store.write(profiles_batch(*[(m.profile_id, m.region) for m in rows.values()],
                               memberships=list(rows.values())))
    order = ["epoch", "long_past", "past", "soon", "later"]
    assert store.due_memberships(NOW, 10) == [rows[k] for k in order[:3]]
    assert store.due_memberships(NOW + 4 * 3600, 10) == [rows[k] for k in order]
    assert store.due_memberships(NOW + 4 * 3600, 2) == [rows[k] for k in order[:2]]
    assert store.due_memberships(60.0, 10) == [rows["epoch"]]
    assert store.due_memberships(40.0, 10) == []
    assert store.due_memberships(NOW, 0) == []
    assert store_factory(["us"], readonly=True).due_memberships(NOW + 4 * 3600, 10) == [
        rows["past"], rows["later"]]


def test_a_deadline_follows_its_row_when_updated_or_removed(store_factory):
    store = store_factory()
    store.write(profiles_batch(("p1", "eu"), ("p2", "eu"), memberships=[
        member("p1", next_change=NOW - 100), member("p2", next_change=NOW - 50)]))
    later = member("p1", next_change=NOW + 7200)
    store.write(StoreBatch(memberships=[later]))  # re-evaluated: a new deadline
    assert store.due_memberships(NOW, 10) == [member("p2", next_change=NOW - 50)]
    assert store.due_memberships(NOW + 7200, 10) == [member("p2", next_change=NOW - 50), later]
    store.write(StoreBatch(memberships=[member("p2")]))  # no deadline any more
    assert store.due_memberships(NOW + 7200, 10) == [later]
    earlier = member("p1", next_change=NOW - 1, since=6.0)  # same row, new doc and deadline
    store.write(StoreBatch(memberships=[earlier]))
    assert store.due_memberships(NOW + 7200, 10) == [earlier]
    store.write(StoreBatch(memberships=[dataclasses.replace(earlier, since=7.0)]))
    assert store.due_memberships(NOW, 10) == [dataclasses.replace(earlier, since=7.0)]
    store.write(StoreBatch(removed_memberships=[("eu", "buyers", "p1")]))
    assert store.due_memberships(NOW + 86_400, 10) == []
    assert store.segment_members("buyers") == [member("p2")]


# -- the change log -----------------------------------------------------------------------


def test_the_change_log_is_read_from_a_cursor_oldest_first(store_factory):
    store = store_factory()
    start = store.segment_log_position()
    assert store.segment_changes_after(start, 10)[0] == []
    a1, a2 = change("p1"), change("p2", at=6.0)
    b1 = change("p3", "us", EXITED)
    c1, c2 = change("p4", at=7.0), change("p5", "us", at=7.0)
    store.write(profiles_batch(("p1", "eu"), ("p2", "eu"), segment_changes=[a1, a2]))
    store.write(StoreBatch(segment_changes=[b1]))
    store.write(StoreBatch(segment_changes=[c1, c2]))

    got, cursor = store.segment_changes_after(start, 10)
    assert bare(got[:3]) == [a1, a2, b1] and sorted(bare(got[3:]), key=str) == \
        sorted([c1, c2], key=str)
    assert all(c.change_id for c in got) and len({c.change_id for c in got}) == 5
    assert store.segment_changes_after(cursor, 10)[0] == []
    assert store.segment_changes_after("", 10)[0] == got  # the empty cursor: the start

    # one at a time: a limit may cut a batch; nothing is skipped or repeated
    stepped, stepped_cursor = [], start
    for _ in range(6):
        page, stepped_cursor = store.segment_changes_after(stepped_cursor, 1)
        assert len(page) <= 1
        stepped.extend(page)
    assert stepped == got
    assert store.segment_changes_after(start, 2)[0] == got[:2]
    assert store.segment_changes_after(start, 0)[0] == []

    # the position is the end now: only what is written after it follows
    end = store.segment_log_position()
    assert store.segment_changes_after(end, 10)[0] == []
    d1 = change("p1", kind=EXITED, at=9.0)
    store.write(StoreBatch(segment_changes=[d1]))
    new, cursor = store.segment_changes_after(end, 10)
    assert bare(new) == [d1]
    assert store.segment_changes_after(cursor, 10)[0] == []
    assert bare(store.segment_changes_after(stepped_cursor, 10)[0]) == [d1]


def test_the_change_log_is_read_by_the_time_logged_by_segment_and_by_profile(store_factory):
    store = store_factory()
    assert list(store.segment_log()) == []
    started = time.time()
    a1, a2 = change("p1"), change("p2", at=6.0)
    b1 = change("p1", "us", EXITED, segment="vip")
    c1 = dataclasses.replace(change("p3", segment="p1"), clauses=['in_segment("p1")'])
    store.write(profiles_batch(("p1", "eu"), ("p2", "eu"), segment_changes=[a1, a2]))
    store.write(StoreBatch(segment_changes=[b1]))
    store.write(StoreBatch(segment_changes=[c1]))
    ended = time.time()

    logged = list(store.segment_log())
    assert bare(c for _, c in logged) == [a1, a2, b1, c1]
    assert [c.change_id for _, c in logged] == \
        [c.change_id for c in store.segment_changes_after("", 10)[0]]
    times = [at for at, _ in logged]
    assert times == sorted(times) and started - 1 <= times[0] and times[-1] <= ended + 1
    assert times[1] < times[2] < times[3]  # one write after the other

    def of(**which) -> list:
        return bare(c for _, c in store.segment_log(**which))

    assert of(profile_id="p1") == [a1, b1]  # not p3's change that names "p1" otherwise
    assert of(segment="buyers") == [a1, a2]
    assert of(segment="vip", profile_id="p1") == [b1]
    assert of(segment="nope") == [] and of(profile_id="nobody") == []
    assert of(since=times[2]) == [b1, c1]
    assert of(since=times[2], profile_id="p1") == [b1]
    assert of(since=ended + 60) == []
    # lazy: the first item is the oldest change, without reading the rest
    assert bare([next(store.segment_log())[1]]) == [a1]
    # residency: a store of us sees us rows only
    assert bare(c for _, c in store_factory(["us"], readonly=True).segment_log()) == [b1]
    # an erased profile's changes are gone, the others keep their IDs
    store.write(StoreBatch(erased_profiles=[("eu", "p2")]))
    after_erasure = list(store.segment_log())
    assert bare(c for _, c in after_erasure) == [a1, b1, c1]
    assert [c.change_id for _, c in after_erasure] == \
        [logged[0][1].change_id, logged[2][1].change_id, logged[3][1].change_id]


@pytest.mark.parametrize("bad", ["not a cursor", "-", "eu=zzz", "eu=1:2,us=3"])
def test_a_cursor_the_store_did_not_give_is_a_value_error(store_factory, bad):
    store = store_factory()
    with pytest.raises(ValueError):
        store.segment_changes_after(bad, 10)


def test_a_watcher_misses_nothing_while_writers_take_turns_on_lagging_clocks(
        store_factory, backend, monkeypatch):
    """Two writers take turns, each batch logging a change of eu and one of us; the
    second writer's clock is 30 s behind. A watcher reading after every batch gets every
    change once, in each region's order."""
    first, second = store_factory(), store_factory()
    watcher = store_factory(readonly=True)
    cursor = watcher.segment_log_position()
    seen: list[SegmentChange] = []
    written: list[SegmentChange] = []

    def lag(seconds: float) -> None:
        if backend == "cassandra":
            from idgraph.profile_store.cassandra_backend import clock

            real = time.time_ns
            monkeypatch.setattr(clock, "time", type("LaggingTime", (), {
                "time_ns": staticmethod(lambda: real() - int(seconds * 1e9))}))

    for i in range(6):
        writer = first if i % 2 == 0 else second
        if writer is second:
            lag(30.0)
        batch = [change(f"e{i}", "eu", at=float(i)), change(f"u{i}", "us", at=float(i))]
        writer.write(StoreBatch(segment_changes=batch))
        monkeypatch.undo()
        written.extend(batch)
        page, cursor = watcher.segment_changes_after(cursor, 100)
        seen.extend(page)
    assert sorted(c.profile_id for c in bare(seen)) == sorted(c.profile_id for c in written)
    for region in REGIONS:
        assert [c for c in bare(seen) if c.region == region] == \
            [c for c in written if c.region == region]


# -- the outbox and builds ----------------------------------------------------------------


def test_segment_changes_go_to_the_outbox_with_profile_changes(store_factory):
    store = store_factory()
    entered = change("p1")
    left = change("p2", "us", EXITED, segment="vip")
    store.write(profiles_batch(("p1", "eu"), changes=[
        ProfileChange("created", "p1", [], "eu", 5.0), entered, left]))
    pending = store.pending_changes(10)
    assert [type(c).__name__ for c in pending] == ["ProfileChange", "SegmentChange",
                                                   "SegmentChange"]
    assert bare(pending[1:]) == [entered, left]
    assert all(c.change_id for c in pending) and len({c.change_id for c in pending}) == 3
    assert bare(store_factory(["us"], readonly=True).pending_changes(10)) == [left]
    store.ack_changes([pending[1].change_id])
    assert store.pending_changes(10) == [pending[0], pending[2]]
    # the change log is written only from segment_changes, not from the outbox's list
    assert store.segment_changes_after("", 10)[0] == []


def test_builds_are_upserted_per_region_and_segment(store_factory):
    store = store_factory()
    started = [SegmentBuild("eu", "buyers", 2, 0, 30, "", 100.0),
               SegmentBuild("us", "buyers", 2, 0, 12, "", 100.0),
               SegmentBuild("eu", "active", 1, 5, 5, "p9", 90.0, 95.0)]
    store.write(StoreBatch(segment_builds=started))
    assert store.segment_builds() == [started[2], started[0], started[1]]
    progressed = SegmentBuild("eu", "buyers", 2, 30, 30, "p77", 100.0, 120.0)
    store.write(StoreBatch(segment_builds=[progressed]))
    assert store.segment_builds() == [started[2], progressed, started[1]]
    assert progressed.done and not started[1].done
    assert store_factory(["us"], readonly=True).segment_builds() == [started[1]]


# -- profile IDs for builds ---------------------------------------------------------------


def test_profile_ids_after_pages_through_live_profiles_of_a_region(store_factory):
    store = store_factory()
    eu = [f"e{i:02d}" for i in range(40)]
    store.write(profiles_batch(*[(p, "eu") for p in eu], ("u1", "us"), ("u2", "us")))
    store.write(StoreBatch(aliases={"e00": "e01", "e05": "e01", "x1": "e01"},
                           deleted_profiles=["e02"]))
    live = sorted(set(eu) - {"e00", "e02", "e05"})
    whole = store.profile_ids_after("eu", "", 1000)
    assert sorted(whole) == live and len(whole) == len(live)
    paged, after = [], ""
    while page := store.profile_ids_after("eu", after, 6):
        assert len(page) <= 6
        paged.extend(page)
        after = page[-1]
    assert paged == whole  # a stable order, resumed from the last ID returned
    assert store.profile_ids_after("eu", whole[9], 3) == whole[10:13]
    assert sorted(store.profile_ids_after("us", "", 10)) == ["u1", "u2"]
    assert store.profile_ids_after("apac", "", 10) == []
    assert store.profile_ids_after("eu", "", 0) == []
