"""A record's events (the profile's activity timeline): appended by ``apply_event`` once per
event, in time order whatever the arrival order, bounded by retention and count; folded
per profile in time order; stored in the record doc, compactly, by both backends' codecs."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from idgraph.profile_store.base import RecordEvent, dump_record, record_events
from idgraph.profile_store.cassandra_backend.store import _record_from_doc as cassandra_decode
from idgraph.profile_store.settings import SurvivorshipSettings
from idgraph.profile_store.sqlite_backend.store import _record_from_doc as sqlite_decode
from idgraph.profile_store.survivorship import (
    ProfileBuilder,
    add_event,
    apply_event,
    merge_events,
    new_record_state,
)
from idgraph.resolver.model import Identifier, IdentityRecord

DAY = 86_400.0


def event(event_id: str, t: float, *, source: str = "segment", rid: str = "u1",
          event_type: str = "track", name: str = "", **properties) -> IdentityRecord:
    return IdentityRecord(
        source=source, source_record_id=rid, event_id=event_id,
        event_time=datetime.fromtimestamp(t, UTC),
        identifiers=(Identifier("user:segment", rid),), event_type=event_type,
        event_name=name, properties=properties)


def fold(*records: IdentityRecord, settings: SurvivorshipSettings | None = None):
    state = new_record_state(records[0], "eu")
    results = []
    for r in records:
        linked = {i.key: True for i in r.identifiers}
        results.append(apply_event(state, r, linked, None, "eu", settings))
    return state, results


def ids(events: list[RecordEvent]) -> list[str]:
    return [e.event_id for e in events]


def test_apply_event_keeps_type_source_time_id_and_properties():
    state, _ = fold(event("e1", 100.0, name="Order Completed", total=27.5, currency="EUR"),
                    event("e2", 200.0, event_type="page", path="/pricing"))
    assert state.events == [
        RecordEvent("Order Completed", "segment", 100.0, "e1", {"total": 27.5, "currency": "EUR"}),
        RecordEvent("page", "segment", 200.0, "e2", {"path": "/pricing"}),
    ]


def test_a_redelivered_event_is_not_appended_or_counted_twice():
    e1 = event("e1", 100.0, name="Signed Up")
    state, results = fold(e1, event("e2", 200.0), e1, event("e2", 200.0))
    assert results == [True, True, False, False]
    assert ids(state.events) == ["e1", "e2"]
    assert state.event_count == 2


def test_events_arriving_out_of_order_are_kept_in_time_order():
    state, _ = fold(event("c", 300.0), event("a", 100.0), event("d", 400.0),
                    event("b", 200.0), event("a2", 100.0))
    assert ids(state.events) == ["a", "a2", "b", "c", "d"]  # ties by event ID
    assert [e.at for e in state.events] == [100.0, 100.0, 200.0, 300.0, 400.0]


def test_retention_counts_back_from_the_newest_event_not_the_clock():
    settings = SurvivorshipSettings(event_retention_days=10)
    state, _ = fold(event("old", 0.0), event("mid", 5 * DAY), event("new", 12 * DAY),
                    settings=settings)
    assert ids(state.events) == ["mid", "new"]  # "old" is 12 days older than the newest
    # a late event older than the retention is counted but not kept
    late = event("late", 1 * DAY)
    apply_event(state, late, {i.key: True for i in late.identifiers}, None, "eu", settings)
    assert ids(state.events) == ["mid", "new"] and state.event_count == 4
    # exactly at the boundary it is kept
    state, _ = fold(event("edge", 0.0), event("new", 10 * DAY), settings=settings)
    assert ids(state.events) == ["edge", "new"]


def test_the_oldest_events_beyond_the_cap_are_dropped():
    settings = SurvivorshipSettings(max_events_per_record=3)
    state, _ = fold(*(event(f"e{t}", float(t)) for t in (5, 1, 4, 2, 3, 6)), settings=settings)
    assert ids(state.events) == ["e4", "e5", "e6"]
    assert state.event_count == 6
    none_kept, _ = fold(event("a", 1.0), settings=SurvivorshipSettings(max_events_per_record=0))
    assert none_kept.events == []


def test_the_defaults_keep_400_days_and_500_events():
    settings = SurvivorshipSettings()
    assert (settings.event_retention_days, settings.max_events_per_record) == (400, 500)
    events: list[RecordEvent] = []
    for n in range(600):
        add_event(events, RecordEvent("t", "s", float(n), f"e{n:04d}", {}), 400 * DAY, 500)
    assert len(events) == 500 and events[0].event_id == "e0100"


def test_properties_are_bounded_by_the_settings():
    settings = SurvivorshipSettings(max_event_properties=2, max_event_property_chars=5)
    state, _ = fold(event("e1", 1.0, a="long value", b=1.0, c="ok", d="ok"), settings=settings)
    assert state.events[0].properties == {"b": 1.0, "c": "ok"}


def test_a_profile_timeline_merges_its_records_events_in_time_order():
    sg, _ = fold(event("s1", 100.0, source="sendgrid", rid="a@x.com", event_type="open"),
                 event("s2", 300.0, source="sendgrid", rid="a@x.com", event_type="click"))
    seg, _ = fold(event("t1", 200.0, name="Order Completed"), event("t2", 400.0, name="Logout"))
    builder = ProfileBuilder(SurvivorshipSettings())
    for records in ([sg, seg], [seg, sg]):
        profile = builder.build("p1", "eu", records, [], 0.0)
        assert [(e.type, e.source, e.at) for e in profile.events] == [
            ("open", "sendgrid", 100.0), ("Order Completed", "segment", 200.0),
            ("click", "sendgrid", 300.0), ("Logout", "segment", 400.0)]
    limited = ProfileBuilder(SurvivorshipSettings(profile_events_limit=3))
    assert ids(limited.build("p1", "eu", [sg, seg], [], 0.0).events) == ["t1", "s2", "t2"]
    assert ids(limited.build("p1", "eu", [sg, seg], [], 0.0, all_events=True).events) == [
        "s1", "t1", "s2", "t2"]
    assert ProfileBuilder(SurvivorshipSettings(profile_events_limit=0)).build(
        "p1", "eu", [sg, seg], [], 0.0).events == []


@pytest.mark.parametrize("limit", [None, 0, 1, 2, 5, 10])
def test_merge_events_equals_sorting_all_of_them(limit):
    lists = [[RecordEvent("t", "s", float(t), f"{n}-{t}", {}) for t in times]
             for n, times in enumerate([(1, 4, 4, 9), (2, 4), (), (3, 7, 8)])]
    everything = sorted((e for lst in lists for e in lst), key=lambda e: (e.at, e.event_id))
    want = everything if limit is None else everything[-limit:] if limit else []
    assert merge_events(lists, limit) == want


def test_the_record_doc_carries_events_as_compact_arrays():
    state, _ = fold(event("e1", 100.0, name="Order Completed", total=27.5))
    doc = orjson.loads(dump_record(state))
    assert doc["events"] == [["Order Completed", "segment", 100.0, "e1", {"total": 27.5}]]
    assert record_events(doc) == state.events
    for decode in (lambda d: sqlite_decode(d, "p1", "eu"),
                   lambda d: cassandra_decode(orjson.dumps(d), "p1", "eu")):
        back = decode(doc)
        assert back.events == state.events and isinstance(back.events[0], RecordEvent)


def test_a_doc_written_before_events_existed_loads_with_none():
    state, _ = fold(event("e1", 100.0))
    doc = orjson.loads(dump_record(state))
    del doc["events"]
    assert sqlite_decode(doc, "p1", "eu").events == []
    assert cassandra_decode(orjson.dumps(doc), "p1", "eu").events == []


@pytest.mark.parametrize("order", [(True, False), (False, True)])
def test_consent_stated_twice_at_one_instant_folds_to_the_withdrawal_in_any_order(order):
    import dataclasses

    def stated(n: int, rid: str, granted: bool) -> IdentityRecord:
        return dataclasses.replace(event(f"c{n}", 100.0, rid=rid), consent={"email": granted})

    # two records of one person (folded in either order), and one record told twice
    states = [fold(stated(i, f"u{i}", g))[0] for i, g in enumerate(order)]
    builder = ProfileBuilder(SurvivorshipSettings())
    for records in (states, states[::-1]):
        assert builder.build("p", "eu", records, [], 0.0).consent == {"email": False}
    state, _ = fold(stated(0, "u1", order[0]), stated(1, "u1", order[1]))
    assert state.consent["email"] == (False, 100.0)
