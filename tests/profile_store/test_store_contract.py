"""The profile-store seam's contract, run against every backend: the embedded SQLite
store and the Cassandra store on the real two-data-centre cluster (``cassandra_cluster``
in conftest.py; ``eu`` lives in dc1, ``us`` in dc2).

Every test states what a backend must return for the same writes: round trips, merges
(reassign chains), region moves, splits, deletes, aliases, identifier lookup order,
history, processed event IDs, the outbox, residency and read-only stores, and erasure (a
privacy forget: no read, and no stored byte where that can be checked, names the erased
IDs afterwards but the batch's own changes).

The Cassandra runs share one keyspace prefix created once per session and truncated
before each test (creating 18 tables takes ~8 s on Cassandra 2.1; truncating them ~1 s).
"""

from __future__ import annotations

import dataclasses
import time

import pytest
from cassandra_testing import (
    admin_session,
    cassandra_settings,
    drop_keyspaces,
    fresh_prefix,
    keyspaces,
    truncate_keyspaces,
)
from store_builders import links, rec, seed

from idgraph.core.errors import BackendError, ResidencyError
from idgraph.profile_store.base import (
    IdentifierMatch,
    ProfileChange,
    ProfileEvent,
    ProfileHead,
    StoreBatch,
)
from idgraph.profile_store.segment_state import ENTERED, EXITED, Membership, SegmentChange
from idgraph.profile_store.sqlite_backend import SqliteProfileStore

REGIONS = ["eu", "us"]


@pytest.fixture(scope="session")
def contract_prefix(cassandra_cluster):
    """A keyspace prefix whose eu, us and global keyspaces exist (dropped at the end)."""
    from idgraph.profile_store.cassandra_backend import CassandraProfileStore

    prefix = fresh_prefix("c")
    CassandraProfileStore(cassandra_settings(cassandra_cluster, prefix), REGIONS).close()
    yield prefix
    drop_keyspaces(cassandra_cluster, prefix)


@pytest.fixture(params=["sqlite", "cassandra"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def store_factory(backend, request, tmp_path):
    """``store_factory(regions, readonly=False)`` opens a store of the test's backend on
    one shared (empty at the start of the test) database; closed after the test."""
    opened = []
    if backend == "cassandra":
        from idgraph.profile_store.cassandra_backend import CassandraProfileStore

        cluster = request.getfixturevalue("cassandra_cluster")
        prefix = request.getfixturevalue("contract_prefix")
        truncate_keyspaces(cluster, prefix)

        def open_store(regions, readonly=False):
            return CassandraProfileStore(cassandra_settings(cluster, prefix), regions,
                                         readonly=readonly)
    else:
        def open_store(regions, readonly=False):
            return SqliteProfileStore(tmp_path / "profiles.sqlite", regions, readonly=readonly)

    def factory(regions=REGIONS, readonly=False):
        store = open_store(regions, readonly)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


# -- round trips -----------------------------------------------------------------------


def test_write_then_read_back_every_field(store_factory):
    store = store_factory()
    a1 = rec("salesforce:1", "p1", "eu", ["email:a@x.com", "crm:salesforce:1"], 5.0,
             first=2.0, events=3, given_name="Ann")
    a2 = rec("hubspot:9", "p1", "eu", {"email:a@x.com": True, "device:d1": False}, 4.0,
             first=1.0, family_name="Lee")
    b1 = rec("segment:u2", "p2", "us", ["email:b@x.com"], 3.0)
    seed(store, a1, a2, b1)

    stored = store.get_profile("p1")
    assert stored.head == ProfileHead("p1", "eu", 10.0)
    assert stored.aliases == []
    assert stored.records == [a2, a1]  # by (first_seen, record_key)
    assert store.get_records(["salesforce:1", "segment:u2", "nope:1"]) == {
        "salesforce:1": a1, "segment:u2": b1}
    assert store.get_heads(["p1", "p2", "p9"]) == {
        "p1": ProfileHead("p1", "eu", 10.0), "p2": ProfileHead("p2", "us", 10.0)}
    assert store.record_profiles() == {"salesforce:1": "p1", "hubspot:9": "p1",
                                       "segment:u2": "p2"}
    assert list(store.iter_record_profiles()) == [
        ("hubspot", "9", "p1"), ("salesforce", "1", "p1"), ("segment", "u2", "p2")]
    assert store.get_profile("p9") is None
    assert store.get_records([]) == {} and store.get_heads([]) == {}


def test_live_profiles_read_together_are_what_get_profile_reads(store_factory):
    store = store_factory()
    a1 = rec("salesforce:1", "p1", "eu", ["email:a@x.com"], 5.0, first=2.0)
    a2 = rec("hubspot:9", "p1", "eu", ["email:a@x.com"], 4.0, first=1.0)
    b1 = rec("segment:u2", "p2", "us", ["email:b@x.com"], 3.0)
    seed(store, a1, a2, b1)
    store.write(StoreBatch(aliases={"p0": "p1"}))
    many = store.get_live_profiles(["p1", "p2", "p0", "p9"])
    assert set(many) == {"p1", "p2"}  # an alias is not followed, an unknown ID is absent
    for pid, stored in many.items():
        one = store.get_profile(pid)
        assert (stored.head, stored.records) == (one.head, one.records)
    eu_only = store_factory(["eu"], readonly=True)
    assert set(eu_only.get_live_profiles(["p1", "p2"])) == {"p1"}  # residency


def test_upsert_replaces_record_state(store_factory):
    store = store_factory()
    seed(store, rec("crm:1", "p1", "eu", ["email:a@x.com"], 1.0, given_name="Ann"))
    newer = rec("crm:1", "p1", "eu", ["email:a@x.com", "phone:+4912345"], 2.0, first=1.0,
                events=2, given_name="Anna")
    store.write(StoreBatch(records=[newer], identifier_links=links(newer),
                           heads=[ProfileHead("p1", "eu", 11.0)]))
    assert store.get_records(["crm:1"]) == {"crm:1": newer}
    assert store.get_profile("p1").head.updated_at == 11.0
    assert [m.profile_id for m in store.lookup("phone:+4912345")] == ["p1"]


def test_counts(store_factory):
    store = store_factory()
    seed(store, rec("crm:1", "p1", "eu", ["email:a@x.com", "phone:+491"]),
         rec("crm:2", "p2", "us", ["email:b@x.com"]), events=["e1", "e2", "e2"])
    store.write(StoreBatch(aliases={"p0": "p1"}))
    assert store.counts() == {"profiles": 2, "records": 2, "identifiers": 3, "aliases": 1,
                              "processed_events": 2}


# -- lookup ------------------------------------------------------------------------------


def test_lookup_orders_linked_first_then_most_recent(store_factory):
    store = store_factory()
    seed(store,
         rec("crm:1", "p1", "eu", {"device:tab": True}, 5.0),
         rec("crm:2", "p2", "us", {"device:tab": True}, 7.0),
         rec("crm:3", "p3", "us", {"device:tab": False}, 9.0),
         rec("crm:4", "p2", "us", {"device:tab": False}, 8.0))
    assert store.lookup("device:tab") == [
        IdentifierMatch("p2", "us", 8.0, True, 10.0),  # its newest record counts
        IdentifierMatch("p1", "eu", 5.0, True, 10.0),
        IdentifierMatch("p3", "us", 9.0, False, 10.0),
    ]
    assert store.lookup("device:nothing") == []


def test_lookup_sees_linked_flag_changes_and_unlinks(store_factory):
    store = store_factory()
    r = rec("crm:1", "p1", "eu", ["email:a@x.com", "cookie:c1"])
    seed(store, r)
    store.write(StoreBatch(identifier_links=[("cookie:c1", "crm:1", False)]))
    assert store.lookup("cookie:c1") == [IdentifierMatch("p1", "eu", 1.0, False, 10.0)]
    r.identifiers.pop("email:a@x.com")
    store.write(StoreBatch(records=[r], unlinked=[("email:a@x.com", "crm:1")],
                           heads=[ProfileHead("p1", "eu", 12.0)]))
    assert store.lookup("email:a@x.com") == []
    assert store.lookup("cookie:c1")[0].version == 12.0


# -- merges, moves, splits -------------------------------------------------------------


def test_merge_chain_reassigns_records_and_aliases(store_factory):
    store = store_factory()
    seed(store, rec("crm:1", "p1", "eu", ["email:1@x.com"], 1.0),
         rec("crm:2", "p2", "eu", ["email:2@x.com"], 2.0),
         rec("crm:3", "p3", "eu", ["email:3@x.com"], 3.0))
    store.write(StoreBatch(aliases={"p0": "p2"}))  # an older alias of p2
    bridge = rec("crm:4", "p1", "eu", ["email:1@x.com", "email:3@x.com"], 4.0)
    store.write(StoreBatch(
        records=[bridge], identifier_links=links(bridge), heads=[ProfileHead("p1", "eu", 20.0)],
        reassign=[("p3", "p2"), ("p2", "p1")], aliases={"p2": "p1", "p3": "p1", "p0": "p1"},
        history=[ProfileEvent("merged", "p2", ["p3"], 4.0, 7),
                 ProfileEvent("merged", "p1", ["p2"], 4.0, 8)]))
    for pid in ("p0", "p1", "p2", "p3"):
        stored = store.get_profile(pid)
        assert stored.head == ProfileHead("p1", "eu", 20.0)
        assert stored.aliases == ["p0", "p2", "p3"]
        assert [r.record_key for r in stored.records] == ["crm:1", "crm:2", "crm:3", "crm:4"]
        assert {r.profile_id for r in stored.records} == {"p1"}
    assert store.get_heads(["p1", "p2", "p3"]) == {"p1": ProfileHead("p1", "eu", 20.0)}
    assert [m.profile_id for m in store.lookup("email:3@x.com")] == ["p1"]
    assert set(store.record_profiles().values()) == {"p1"}
    assert [(h.kind, h.profile_id, h.seq) for h in store.history("p2")] == [
        ("created", "p2", 2), ("merged", "p2", 7), ("merged", "p1", 8)]
    assert store.counts()["aliases"] == 3 and store.counts()["profiles"] == 1


def test_cross_region_merge_moves_every_row_to_the_stricter_region(store_factory):
    store = store_factory()
    seed(store, rec("crm:1", "peu", "eu", ["email:1@x.com"], 1.0),
         rec("crm:2", "pus", "us", ["email:2@x.com", "device:d2"], 2.0))
    store.write(StoreBatch(aliases={"pold": "pus"}))
    us = store_factory(["us"], readonly=True)
    assert us.get_profile("pold").head.region == "us"  # a reader that saw it in us
    assert us.lookup("device:d2")[0].region == "us"
    assert store.get_profile("pus").head.region == "us"
    bridge = rec("crm:3", "peu", "eu", ["email:1@x.com", "email:2@x.com"], 3.0)
    moved = rec("crm:2", "peu", "eu", ["email:2@x.com", "device:d2"], 3.0, first=2.0, events=2)
    store.write(StoreBatch(
        records=[bridge, moved], identifier_links=links(bridge, moved),
        heads=[ProfileHead("peu", "eu", 30.0)], reassign=[("pus", "peu")],
        regions=[("peu", "eu")], aliases={"pus": "peu", "pold": "peu"},
        history=[ProfileEvent("merged", "peu", ["pus"], 3.0, 9)]))

    stored = store.get_profile("pus")
    assert stored.head == ProfileHead("peu", "eu", 30.0)
    assert stored.aliases == ["pold", "pus"]
    assert [(r.record_key, r.home_region) for r in stored.records] == [
        ("crm:1", "eu"), ("crm:2", "eu"), ("crm:3", "eu")]
    assert store.lookup("device:d2") == [IdentifierMatch("peu", "eu", 3.0, True, 30.0)]

    eu = store_factory(["eu"], readonly=True)
    assert eu.get_profile("pold").head.profile_id == "peu"
    assert [h.kind for h in eu.history("pus")] == ["created", "merged"]
    assert us.get_profile("pus") is None and us.get_profile("peu") is None
    assert us.get_profile("pold") is None
    assert us.lookup("email:2@x.com") == [] and us.lookup("device:d2") == []
    assert us.get_records(["crm:2"]) == {} and us.record_profiles() == {}
    assert us.get_heads(["peu", "pus"]) == {}


def test_move_without_merge_changes_the_home(store_factory):
    store = store_factory()
    r = rec("crm:1", "p1", "us", ["email:1@x.com"], 1.0)
    seed(store, r)
    now_eu = rec("crm:1", "p1", "eu", ["email:1@x.com"], 2.0, first=1.0, events=2)
    store.write(StoreBatch(records=[now_eu], identifier_links=links(now_eu),
                           heads=[ProfileHead("p1", "eu", 21.0)], regions=[("p1", "eu")]))
    assert store.get_profile("p1").head == ProfileHead("p1", "eu", 21.0)
    us = store_factory(["us"], readonly=True)
    assert us.get_profile("p1") is None and us.lookup("email:1@x.com") == []


def test_split_revives_the_alias_in_its_own_region(store_factory):
    store = store_factory()
    seed(store, rec("crm:1", "p1", "eu", ["email:1@x.com"], 1.0),
         rec("crm:2", "p2", "us", ["email:2@x.com"], 2.0))
    bridge = rec("crm:3", "p1", "eu", ["email:1@x.com", "email:2@x.com"], 3.0)
    store.write(StoreBatch(
        records=[bridge, rec("crm:2", "p1", "eu", ["email:2@x.com"], 2.0)],
        identifier_links=links(bridge), heads=[ProfileHead("p1", "eu", 30.0)],
        reassign=[("p2", "p1")], regions=[("p1", "eu")], aliases={"p2": "p1"},
        history=[ProfileEvent("merged", "p1", ["p2"], 3.0, 5)]))
    # unlink crm:3 from email:2: crm:2 leaves; its home is us again (split parts keep
    # their own records' region; no move is sent for them)
    bridge.identifiers.pop("email:2@x.com")
    store.write(StoreBatch(
        records=[bridge, rec("crm:1", "p1", "eu", ["email:1@x.com"], 1.0),
                 rec("crm:2", "p2", "us", ["email:2@x.com"], 2.0)],
        identifier_links=links(bridge), unlinked=[("email:2@x.com", "crm:3")],
        heads=[ProfileHead("p1", "eu", 40.0), ProfileHead("p2", "us", 40.0)],
        removed_aliases=["p2"], history=[ProfileEvent("split", "p1", ["p2"], 4.0, 6,
                                                      "generic value: role mailbox (email)"),
                                         ProfileEvent("revived", "p2", [], 4.0, 6)]))
    p1, p2 = store.get_profile("p1"), store.get_profile("p2")
    assert (p1.head, p1.aliases) == (ProfileHead("p1", "eu", 40.0), [])
    assert [r.record_key for r in p1.records] == ["crm:1", "crm:3"]
    assert (p2.head, p2.aliases) == (ProfileHead("p2", "us", 40.0), [])
    assert [(r.record_key, r.home_region) for r in p2.records] == [("crm:2", "us")]
    assert store.lookup("email:2@x.com") == [IdentifierMatch("p2", "us", 2.0, True, 40.0)]
    assert [h.kind for h in store.history("p2")] == ["created", "merged", "revived", "split"]
    # a split keeps why it happened (and its related IDs), other events have no reason
    assert [(h.related_ids, h.reason) for h in store.history("p1")][-1:] == [
        (["p2"], "generic value: role mailbox (email)")]
    assert store.history("p1")[0].reason == ""
    eu = store_factory(["eu"], readonly=True)
    assert eu.get_profile("p2") is None and eu.lookup("email:2@x.com") == []


def test_aliases_upsert_drops_heads_and_removed_aliases_go(store_factory):
    store = store_factory()
    seed(store, rec("crm:1", "p1", "eu", ["email:1@x.com"]),
         rec("crm:2", "p2", "eu", ["email:2@x.com"]))
    store.write(StoreBatch(aliases={"p2": "p1", "p7": "p1"}))
    assert store.get_heads(["p1", "p2"]) == {"p1": ProfileHead("p1", "eu", 10.0)}
    assert store.get_profile("p7").aliases == ["p2", "p7"]
    store.write(StoreBatch(removed_aliases=["p7"]))
    assert store.get_profile("p7") is None
    assert store.get_profile("p1").aliases == ["p2"]


# -- deletes ------------------------------------------------------------------------------


def test_forget_deletes_records_index_rows_and_profile(store_factory):
    store = store_factory()
    keep = rec("crm:1", "p1", "eu", ["email:1@x.com"], 1.0)
    gone = rec("crm:2", "p1", "eu", ["email:2@x.com", "email:1@x.com"], 2.0)
    seed(store, keep, gone, rec("crm:3", "p3", "us", ["email:3@x.com"]))
    store.write(StoreBatch(deleted_records=["crm:2"],
                           unlinked=[("email:2@x.com", "crm:2"), ("email:1@x.com", "crm:2")],
                           heads=[ProfileHead("p1", "eu", 11.0)]))
    assert [r.record_key for r in store.get_profile("p1").records] == ["crm:1"]
    assert store.lookup("email:2@x.com") == []
    assert store.lookup("email:1@x.com") == [IdentifierMatch("p1", "eu", 1.0, True, 11.0)]
    store.write(StoreBatch(deleted_records=["crm:1", "crm:3"], deleted_profiles=["p1", "p3"],
                           unlinked=[("email:1@x.com", "crm:1"), ("email:3@x.com", "crm:3")]))
    assert store.get_profile("p1") is None and store.get_profile("p3") is None
    assert store.get_records(["crm:1", "crm:2", "crm:3"]) == {}
    counts = store.counts()
    assert (counts["profiles"], counts["records"], counts["identifiers"]) == (0, 0, 0)


# -- history and processed events -------------------------------------------------------


def test_history_in_sequence_order_for_every_named_profile(store_factory):
    store = store_factory()
    seed(store, rec("crm:1", "p1", "eu", ["email:1@x.com"]),
         rec("crm:2", "p2", "eu", ["email:2@x.com"]))
    store.write(StoreBatch(heads=[ProfileHead("p1", "eu", 12.0), ProfileHead("p2", "eu", 12.0)],
                           history=[ProfileEvent("split", "p1", ["p2"], 5.0, 4),
                                    ProfileEvent("revived", "p2", [], 5.0, 4),
                                    ProfileEvent("merged", "p1", ["p2"], 4.0, 3)]))
    assert store.history("p2") == [
        ProfileEvent("created", "p2", [], 1.0, 2), ProfileEvent("merged", "p1", ["p2"], 4.0, 3),
        ProfileEvent("revived", "p2", [], 5.0, 4), ProfileEvent("split", "p1", ["p2"], 5.0, 4)]
    assert [h.seq for h in store.history("p1")] == [1, 3, 4]
    assert store.history("nobody") == []


def test_processed_event_ids(store_factory):
    store = store_factory()
    seed(store, rec("crm:1", "p1", "eu", ["email:1@x.com"]),
         events=["salesforce:1:2024", "google_calendar:ev:1:a@x.com"])
    store.write(StoreBatch(processed_event_ids=["only-an-id"]))  # nothing else in the batch
    assert store.unprocessed(["salesforce:1:2024", "google_calendar:ev:1:a@x.com",
                              "only-an-id", "new", "new"]) == {"new"}
    assert store.unprocessed([]) == set()
    assert store.counts()["processed_events"] == 3


# -- outbox ------------------------------------------------------------------------------


def test_outbox_oldest_first_across_regions_until_acknowledged(store_factory):
    store = store_factory()
    first = [ProfileChange("created", "p1", [], "eu", 1.0),
             ProfileChange("created", "p2", [], "us", 1.0),
             ProfileChange("updated", "p1", [], "eu", 1.0)]
    second = [ProfileChange("merged", "p1", ["p2"], "eu", 2.0),
              ProfileChange("deleted", "p9", [], "", 2.0)]  # no region: never published
    store.write(StoreBatch(changes=first))
    store.write(StoreBatch(changes=second))
    pending = store.pending_changes(10)
    assert [(c.kind, c.profile_id, c.region) for c in pending] == [
        ("created", "p1", "eu"), ("created", "p2", "us"), ("updated", "p1", "eu"),
        ("merged", "p1", "eu")]
    assert pending[3].related_ids == ["p2"] and pending[3].at == 2.0
    assert len({c.change_id for c in pending}) == 4 and all(c.change_id for c in pending)
    assert store.pending_changes(2) == pending[:2]
    assert [c.profile_id for c in store_factory(["us"], readonly=True).pending_changes(10)] \
        == ["p2"]
    store.ack_changes([pending[0].change_id, pending[1].change_id, "999999"])
    assert store.pending_changes(10) == pending[2:]
    store.ack_changes([c.change_id for c in pending])
    assert store.pending_changes(10) == []


# -- residency and read-only stores ------------------------------------------------------


def test_writes_of_an_unserved_region_are_refused_and_change_nothing(store_factory):
    store = store_factory(["eu"])
    with pytest.raises(ResidencyError, match="'us'"):
        seed(store, rec("crm:1", "p1", "eu", ["email:1@x.com"]),
             rec("crm:2", "p2", "us", ["email:2@x.com"]))
    with pytest.raises(ResidencyError, match="'us'"):
        store.write(StoreBatch(regions=[("p1", "us")]))
    with pytest.raises(ResidencyError, match="'us'"):
        store.write(StoreBatch(records=[rec("crm:2", "p2", "us", ["email:2@x.com"])]))
    assert store.get_records(["crm:1", "crm:2"]) == {}
    assert store.counts()["records"] == 0
    assert store.unprocessed(["e"]) == {"e"}


def test_a_store_of_other_regions_finds_nothing(store_factory):
    writer = store_factory()
    seed(writer, rec("crm:1", "p1", "eu", ["email:1@x.com", "device:shared"], 1.0),
         rec("crm:2", "p2", "us", ["email:2@x.com", "device:shared"], 2.0))
    us = store_factory(["us"], readonly=True)
    assert us.get_profile("p1") is None
    assert us.get_profile("p2").head == ProfileHead("p2", "us", 10.0)
    assert us.lookup("email:1@x.com") == []
    assert [m.profile_id for m in us.lookup("device:shared")] == ["p2"]
    assert writer.lookup("device:shared")[0].profile_id == "p2"  # most recent first
    assert us.get_records(["crm:1", "crm:2"]).keys() == {"crm:2"}
    assert us.get_heads(["p1", "p2"]).keys() == {"p2"}
    assert us.record_profiles() == {"crm:2": "p2"}
    assert [k for _, k, _ in us.iter_record_profiles()] == ["2"]


def test_history_of_another_region_is_not_served(store_factory):
    writer = store_factory()
    seed(writer, rec("crm:1", "p1", "eu", ["email:1@x.com"]))
    writer.write(StoreBatch(aliases={"p0": "p1"}))
    us, eu = store_factory(["us"], readonly=True), store_factory(["eu"], readonly=True)
    assert us.history("p1") == [] and us.history("p0") == []
    assert [h.kind for h in eu.history("p1")] == ["created"]
    assert eu.history("p0") == []  # an alias named by no history row has none


def test_read_only_store_refuses_writes(store_factory):
    seed(store_factory(), rec("crm:1", "p1", "eu", ["email:1@x.com"]))
    reader = store_factory(readonly=True)
    with pytest.raises(BackendError, match="read-only"):
        reader.write(StoreBatch(processed_event_ids=["e"]))
    assert reader.get_profile("p1").head.region == "eu"
    assert reader.unprocessed(["e"]) == {"e"}


# -- record events (the activity timeline) -------------------------------------------------


def test_record_events_round_trip_and_follow_their_record(store_factory):
    from idgraph.profile_store.base import RecordEvent

    store = store_factory()
    a = rec("segment:u1", "p1", "eu", ["user:segment:u1"], 5.0)
    a.events = [RecordEvent("Order Completed", "segment", 1.5, "m-1",
                            {"total": 27.5, "currency": "EUR", "order_id": "50314"}),
                RecordEvent("page", "segment", 5.0, "m-2", {"path": "/pricing"})]
    b = rec("sendgrid:b@x.com", "p2", "eu", ["email:b@x.com"], 3.0)
    b.events = [RecordEvent("open", "sendgrid", 3.0, "sg-1", {"category": "news,spring"})]
    seed(store, a, b)
    assert store.get_records(["segment:u1"])["segment:u1"].events == a.events
    assert store.get_profile("p2").records[0].events == b.events

    # an upsert replaces the list; a merge moves the record with its events
    a.events = [*a.events, RecordEvent("Logout", "segment", 6.0, "m-3", {})]
    store.write(StoreBatch(records=[a], reassign=[("p2", "p1")], aliases={"p2": "p1"},
                           heads=[ProfileHead("p1", "eu", 11.0)]))
    merged = {r.record_key: r.events for r in store.get_profile("p2").records}
    assert merged == {"segment:u1": a.events, "sendgrid:b@x.com": b.events}
    assert all(isinstance(e, RecordEvent) for events in merged.values() for e in events)


def test_a_record_at_the_event_cap_is_written_and_read_whole(store_factory):
    """A busy record (500 events with properties: a document far over the 50 kB Cassandra
    2.2+ refuses in a batch) is written whole and reads back the same."""
    from idgraph.profile_store.base import RecordEvent

    store = store_factory()
    busy = rec("segment:u9", "p9", "eu", ["user:segment:u9"], 600.0)
    busy.events = [RecordEvent("Product Viewed", "segment", float(i), f"m-{i:04d}",
                               {"product_id": f"sku-{i:06d}", "url": f"https://shop.example/p/{i}"})
                   for i in range(500)]
    seed(store, busy)
    assert store.get_records(["segment:u9"])["segment:u9"].events == busy.events


# -- erasure (a privacy forget) ------------------------------------------------------------
#
# ``fgt1`` (eu) absorbed ``fgt2`` (us: a cross-region merge, so fgt2's older outbox and
# change-log entries stay in us) and has an older alias ``fgt0``; ``keep1`` (eu) and
# ``keep2`` (us) are other people, one of whose history rows has fgt1 as its subject and
# whose change-log entries share rows with the forgotten person's.

ERASED = ("fgt0", "fgt1", "fgt2")
KEPT = ("keep1", "keep2")
ERASED_EVENTS = ["web:ev-1:ffion@x.eu", "crm:ev-2", "crm:ev-merge"]
KEPT_EVENTS = ["crm:ev-keep"]
# what else of the person the batch deletes (records, identifiers, attribute values)
ERASED_VALUES = ("crm:f1", "crm:f2", "ffion@x.eu", "fgt2@x.com", "device:fd9", "Ffionella")


def _seg_change(pid: str, region: str, kind: str, cause: str = "event",
                segment: str = "buyers") -> SegmentChange:
    return SegmentChange(pid, segment, 1, kind, 5.0, cause, ["orders >= 1"], region)


def _member(pid: str, region: str, segment: str = "buyers",
            next_change: float = 0.0) -> Membership:
    return Membership(segment, pid, region, 1, True, 5.0, ["orders >= 1"], next_change)


def _write_person_and_others(store) -> None:
    f1 = rec("crm:f1", "fgt1", "eu", ["email:ffion@x.eu"], 1.0, given_name="Ffionella")
    f2 = rec("crm:f2", "fgt2", "us", ["email:fgt2@x.com", "device:fd9"], 2.0)
    k1 = rec("crm:k1", "keep1", "eu", ["email:keep1@x.eu"], 3.0, given_name="Kay")
    k2 = rec("crm:k2", "keep2", "us", ["email:keep2@x.com"], 4.0)
    seed(store, f1, f2, k1, k2, events=[*ERASED_EVENTS[:2], *KEPT_EVENTS])
    store.write(StoreBatch(
        memberships=[_member("fgt2", "us"), _member("keep2", "us")],
        segment_changes=[_seg_change("fgt2", "us", ENTERED), _seg_change("keep2", "us", ENTERED)],
        changes=[ProfileChange("created", "fgt1", [], "eu", 1.0),
                 ProfileChange("created", "fgt2", [], "us", 2.0),
                 ProfileChange("created", "keep1", [], "eu", 3.0),
                 ProfileChange("created", "keep2", [], "us", 4.0)]))
    moved = rec("crm:f2", "fgt1", "eu", ["email:fgt2@x.com", "device:fd9"], 2.0)
    store.write(StoreBatch(  # the merge: fgt2 moves to eu; fgt0 an older alias of fgt1
        records=[moved], identifier_links=links(moved), heads=[ProfileHead("fgt1", "eu", 20.0)],
        reassign=[("fgt2", "fgt1")], regions=[("fgt1", "eu")],
        aliases={"fgt2": "fgt1", "fgt0": "fgt1"},
        history=[ProfileEvent("merged", "fgt1", ["fgt2"], 5.0, 5),
                 ProfileEvent("split", "fgt1", ["keep1"], 5.0, 6),
                 ProfileEvent("revived", "keep1", [], 5.0, 6)],
        removed_memberships=[("us", "buyers", "fgt2")],
        memberships=[_member("fgt1", "eu"), _member("fgt1", "eu", "lapsing", time.time() + 86400),
                     _member("keep1", "eu")],
        segment_changes=[_seg_change("fgt2", "us", EXITED, "merge"),
                         _seg_change("fgt1", "eu", ENTERED, "merge"),
                         _seg_change("keep1", "eu", ENTERED)],
        changes=[ProfileChange("merged", "fgt1", ["fgt2"], "eu", 5.0),
                 ProfileChange("updated", "keep1", [], "eu", 5.0)],
        processed_event_ids=[ERASED_EVENTS[2]]))


def _forget_batch() -> StoreBatch:
    """What the engine's forget writes: the person's rows deleted, the erasure of every
    ID of theirs and of their events, and the changes that tell consumers."""
    exited = [_seg_change("fgt1", "eu", EXITED, "forget"),
              _seg_change("fgt1", "eu", EXITED, "forget", "lapsing")]
    return StoreBatch(
        deleted_records=["crm:f1", "crm:f2"], deleted_profiles=["fgt1"],
        unlinked=[("email:ffion@x.eu", "crm:f1"), ("email:fgt2@x.com", "crm:f2"),
                  ("device:fd9", "crm:f2")],
        removed_memberships=[("eu", "buyers", "fgt1"), ("eu", "lapsing", "fgt1")],
        segment_changes=exited,
        changes=[ProfileChange("deleted", "fgt1", [], "eu", 9.0), *exited],
        erased_profiles=[("eu", pid) for pid in ERASED], erased_event_ids=list(ERASED_EVENTS))


def _names_erased(change) -> bool:
    return change.profile_id in ERASED or bool(
        set(getattr(change, "related_ids", ())) & set(ERASED))


def _seam_view(store) -> dict:
    """Everything the seam's reads return for the people of these tests (change IDs
    left out: a repeated batch's own changes are new entries)."""
    def bare(changes):
        return [dataclasses.replace(c, change_id="") for c in changes]

    identifiers = ["email:ffion@x.eu", "email:fgt2@x.com", "device:fd9", "email:keep1@x.eu",
                   "email:keep2@x.com"]
    changes, _ = store.segment_changes_after("", 1000)
    return {
        "profiles": {pid: store.get_profile(pid) for pid in (*ERASED, *KEPT)},
        "history": {pid: store.history(pid) for pid in (*ERASED, *KEPT)},
        "memberships": store.memberships([*ERASED, *KEPT]),
        "members": {s: store.segment_members(s) for s in ("buyers", "lapsing")},
        "counts": {s: store.count_segment(s) for s in ("buyers", "lapsing")},
        "due": store.due_memberships(time.time() + 10 * 86400, 100),
        "log": sorted(bare(changes), key=repr),
        "outbox": sorted(bare(store.pending_changes(1000)), key=repr),
        "unprocessed": store.unprocessed([*ERASED_EVENTS, *KEPT_EVENTS]),
        "lookup": {i: store.lookup(i) for i in identifiers},
        "records": store.get_records(["crm:f1", "crm:f2", "crm:k1", "crm:k2"]),
        "store_counts": store.counts(),
    }


def test_an_erasure_leaves_no_trace_of_the_ids_but_the_batch_own_changes(store_factory,
                                                                          backend, request):
    store = store_factory()
    _write_person_and_others(store)
    before = _seam_view(store)
    assert before["profiles"]["fgt2"].head.profile_id == "fgt1"  # the person is there
    assert any(_names_erased(c) for c in before["log"] + before["outbox"])
    assert before["unprocessed"] == set()

    store.write(_forget_batch())
    after = _seam_view(store)
    for pid in ERASED:
        assert after["profiles"][pid] is None and after["history"][pid] == []
    assert not set(after["memberships"]) & set(ERASED)
    assert [m.profile_id for m in after["members"]["buyers"]] == ["keep1", "keep2"]
    assert after["members"]["lapsing"] == [] and after["due"] == []
    assert after["counts"] == {"buyers": {"eu": 1, "us": 1}, "lapsing": {}}
    # of the forgotten person only the batch's own changes are left: consumers learn of it
    assert [(c.profile_id, c.segment, c.change, c.cause) for c in after["log"]
            if _names_erased(c)] == [("fgt1", "buyers", "exited", "forget"),
                                      ("fgt1", "lapsing", "exited", "forget")]
    assert sorted((c.kind if isinstance(c, ProfileChange) else c.segment, c.profile_id)
                  for c in after["outbox"] if _names_erased(c)) == [
        ("buyers", "fgt1"), ("deleted", "fgt1"), ("lapsing", "fgt1")]
    assert after["unprocessed"] == set(ERASED_EVENTS)
    assert after["records"].keys() == {"crm:k1", "crm:k2"}
    assert all(after["lookup"][i] == [] for i in ("email:ffion@x.eu", "email:fgt2@x.com",
                                                   "device:fd9"))
    assert after["store_counts"] == {"profiles": 2, "records": 2, "identifiers": 2,
                                     "aliases": 0, "processed_events": 1}

    # the others are untouched (keep1 only loses the copy of fgt1's split, whose subject
    # was fgt1)
    for pid in KEPT:
        assert after["profiles"][pid] == before["profiles"][pid]
        assert after["memberships"][pid] == before["memberships"][pid]
    assert after["history"]["keep2"] == before["history"]["keep2"]
    assert after["history"]["keep1"] == [h for h in before["history"]["keep1"]
                                         if h.profile_id != "fgt1"]
    assert [h.kind for h in after["history"]["keep1"]] == ["created", "revived"]
    for part in ("log", "outbox"):
        assert [c for c in after[part] if not _names_erased(c)] == \
            [c for c in before[part] if not _names_erased(c)]
    for ident in ("email:keep1@x.eu", "email:keep2@x.com"):
        assert after["lookup"][ident] == before["lookup"][ident]

    # the same batch again (a forget run twice) changes nothing more
    store.write(_forget_batch())
    assert _seam_view(store) == after


def test_an_erasure_keeps_the_change_log_positions_of_readers(store_factory, backend, request):
    """A change-log row shared with other profiles' changes loses only the erased ones;
    a reader's cursor from before still reads on from where it was."""
    store = store_factory()
    store.write(StoreBatch(segment_changes=[_seg_change("keep1", "eu", ENTERED),
                                            _seg_change("fgt1", "eu", ENTERED),
                                            _seg_change("keep2", "eu", ENTERED)]))
    first, cursor = store.segment_changes_after("", 1)
    assert [c.profile_id for c in first] == ["keep1"]
    store.write(StoreBatch(erased_profiles=[("eu", "fgt1")],
                           segment_changes=[_seg_change("keep1", "eu", EXITED)]))
    rest, cursor = store.segment_changes_after(cursor, 10)
    assert [(c.profile_id, c.change) for c in rest] == [("keep2", "entered"),
                                                        ("keep1", "exited")]
    assert store.segment_changes_after(cursor, 10)[0] == []
    assert [c.profile_id for c in store.segment_changes_after("", 10)[0]] == [
        "keep1", "keep2", "keep1"]


def test_an_erased_profile_of_an_unserved_region_is_refused(store_factory, backend):
    if backend == "sqlite":
        pytest.skip("one SQLite file holds every region: nothing is out of its reach")
    store = store_factory(["eu"])
    with pytest.raises(ResidencyError, match="'us'"):
        store.write(StoreBatch(erased_profiles=[("us", "p2")]))


def _occurrences(data: bytes, needles: list[bytes]) -> dict[bytes, int]:
    return {n: data.count(n) for n in needles if n in data}


def test_an_erasure_leaves_none_of_the_ids_in_the_stored_bytes(store_factory, backend,
                                                               request, tmp_path):
    """SQLite: the database file and its -wal and -shm hold none of the erased IDs'
    bytes. Cassandra: no row any CQL SELECT returns holds them (the SSTables keep the
    deleted cells until compaction after gc_grace_seconds: not checkable here). The live
    ID (fgt1) is named by the batch's own ``deleted`` and ``exited`` changes, by design;
    its aliases, records, identifiers, values and event IDs are named by nothing."""
    import hashlib

    store = store_factory()
    _write_person_and_others(store)
    store.write(_forget_batch())
    gone = [s.encode() for s in ("fgt0", "fgt2", *ERASED_VALUES, *ERASED_EVENTS)]
    kept = [b"keep1", b"keep2", b"Kay"]
    if backend == "sqlite":
        path = tmp_path / "profiles.sqlite"
        files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
        data = b"".join(f.read_bytes() for f in files if f.exists())
        assert _occurrences(data, gone) == {}
        assert all(n in data for n in kept)  # the search does see what is stored
        return
    cluster = request.getfixturevalue("cassandra_cluster")
    prefix = request.getfixturevalue("contract_prefix")
    hashes = {hashlib.sha256(e.encode()).digest()[:16] for e in ERASED_EVENTS}
    found: dict[str, dict[bytes, int]] = {}
    naming_live: dict[str, int] = {}
    with admin_session(cluster) as session:
        for ks in keyspaces(session, prefix):
            for table in session.cluster.metadata.keyspaces[ks].tables:
                for row in session.execute(f"SELECT * FROM {ks}.{table}"):
                    if table == "processed_events":
                        assert row[0] not in hashes
                    data = b"|".join(_cell_bytes(v) for v in row)
                    for needle, n in _occurrences(data, gone + kept).items():
                        found.setdefault(f"{ks}.{table}", {})[needle] = \
                            found.get(f"{ks}.{table}", {}).get(needle, 0) + min(n, 1)
                    if b"fgt1" in data:
                        name = f"{ks.removeprefix(prefix + '_')}.{table}"
                        naming_live[name] = naming_live.get(name, 0) + 1
    assert not any(n in gone for rows in found.values() for n in rows), found
    assert {n for rows in found.values() for n in rows} == set(kept)
    # the deleted change and the two exited ones in the outbox, the exited ones' log row
    assert naming_live == {"eu.outbox": 3, "eu.segment_log": 1}


def _cell_bytes(value) -> bytes:
    """A CQL value as bytes to search (a compressed blob decompressed)."""
    import zlib

    if isinstance(value, bytes):
        try:
            return zlib.decompress(value)
        except zlib.error:
            return value
    return str(value).encode()


def test_a_crash_mid_erasure_is_finished_by_recovery(store_factory, backend, monkeypatch):
    """Cassandra writes a batch in steps through its redo journal: an erasure interrupted
    after the commit point is finished before the next operation (SQLite erases in the
    batch's one transaction)."""
    if backend == "sqlite":
        pytest.skip("SQLite erases in the batch's single transaction")
    store = store_factory()
    _write_person_and_others(store)
    original = store._journal.apply

    def crash(plan):
        original({r: m[:len(m) // 3] for r, m in plan.items()})
        raise RuntimeError("simulated crash while applying the erasure")

    monkeypatch.setattr(store._journal, "apply", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        store.write(_forget_batch())
    monkeypatch.undo()
    store.close()
    again = store_factory()  # the process is gone; a new writer recovers first
    recovered = _seam_view(again)
    assert all(recovered["profiles"][pid] is None for pid in ERASED)
    assert recovered["unprocessed"] == set(ERASED_EVENTS)
    clean = store_factory(readonly=True)
    assert _seam_view(clean) == recovered
    again.write(_forget_batch())  # and a repeat of the forget changes nothing more
    assert _seam_view(again) == recovered
