"""Survivorship decides by event time, never by arrival order: a record's consent per
purpose, its identifiers' first and last seen, its own first and last seen and region
(``apply_event``), and the profile folded from its records (``ProfileBuilder.build``).

Each rule is checked with every arrival order of a few events whose first and last
arrivals are neither the earliest nor the latest in time, so a rule that kept the first
or the last arrival, or swapped a min for a max, gives a different answer.

The sections after those check each public function on whole values (a record's full
state, a full profile with provenance, an events list) at the boundaries the module
docstring states: events' order, redelivery, retention and count limits, property bounds,
the merged timeline's limit, identifier types, and each rule's tie-breaks in either order
the records are read in. ``make mutation`` runs this file against the module's mutants.
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import replace
from itertools import permutations

import pytest
from helpers import record

from idgraph.profile_store.base import (
    AttributeValue,
    Profile,
    ProfileIdentifier,
    RecordEvent,
    SourceCounter,
    StoredRecord,
)
from idgraph.profile_store.settings import SurvivorshipSettings
from idgraph.profile_store.survivorship import (
    ProfileBuilder,
    add_event,
    apply_event,
    bounded_properties,
    identifier_type,
    merge_events,
    new_record_state,
)
from idgraph.resolver.model import IdentityRecord, RejectedIdentifier

EMAIL = "email:ann@example.org"
CRM = "crm:hubspot:1"


def fold(events: list[tuple[IdentityRecord, str]]) -> StoredRecord:
    """One record's state after ``(event, region)`` pairs applied in the given order."""
    state = new_record_state(events[0][0], events[0][1])
    for rec, region in events:
        assert apply_event(state, rec, {i.key: True for i in rec.identifiers}, None, region)
    return state


def build(*records: StoredRecord):
    return ProfileBuilder(SurvivorshipSettings()).build("p", "eu", list(records), [], 0.0)


# arrival orders of three events at 100, 200 and 300 in which neither the first nor the
# last to arrive is the earliest or the latest in time
MISLEADING = [order for order in permutations((100.0, 200.0, 300.0))
              if order[0] == 200.0 or order[-1] == 200.0]


def test_the_misleading_orders_are_the_ones_that_can_catch_arrival_order():
    assert sorted(MISLEADING) == [(100.0, 300.0, 200.0), (200.0, 100.0, 300.0),
                                  (200.0, 300.0, 100.0), (300.0, 100.0, 200.0)]


# -- one record: apply_event ----------------------------------------------------------------


@pytest.mark.parametrize("granted_last", [True, False])
@pytest.mark.parametrize("order", list(permutations((100.0, 200.0, 300.0))))
def test_a_records_consent_is_its_latest_statement_in_event_time(order, granted_last):
    """The statement made last (at 300) wins, whether it arrives first, in the middle or
    last; the two earlier ones say the opposite."""
    said = {100.0: not granted_last, 200.0: not granted_last, 300.0: granted_last}
    state = fold([(record("hubspot", "1", f"e{t:.0f}", t, [CRM],
                          consent={"email_marketing": said[t]}), "eu") for t in order])
    assert state.consent["email_marketing"] == (granted_last, 300.0)


@pytest.mark.parametrize("order", MISLEADING)
def test_an_identifiers_first_and_last_seen_are_its_earliest_and_latest_event(order):
    state = fold([(record("hubspot", "1", f"e{t:.0f}", t, [CRM, EMAIL]), "eu")
                  for t in order])
    first, last, linked = state.identifiers[EMAIL]
    assert (first, last, linked) == (100.0, 300.0, True)


@pytest.mark.parametrize("order", MISLEADING)
def test_a_records_first_last_seen_and_region_follow_its_events_in_time(order):
    """The record's region is the one its newest event implied."""
    region_of = {100.0: "us", 200.0: "us", 300.0: "eu"}
    state = fold([(record("hubspot", "1", f"e{t:.0f}", t, [CRM]), region_of[t])
                  for t in order])
    assert (state.first_seen, state.last_seen, state.region) == (100.0, 300.0, "eu")
    assert state.event_count == 3


# -- the profile: ProfileBuilder over several records ---------------------------------------


def _two_records() -> tuple[StoredRecord, StoredRecord]:
    """Ann's CRM record saw her email from 150 to 200, her app record from 100 to 300; each
    record's events arrive out of time order."""
    crm = fold([(record("hubspot", "1", f"h{t:.0f}", t, [CRM, EMAIL]), "eu")
                for t in (200.0, 150.0)])
    app = fold([(record("segment", "u1", f"s{t:.0f}", t, ["user:segment:u1", EMAIL]), "eu")
                for t in (200.0, 100.0, 300.0)])
    return crm, app


@pytest.mark.parametrize("reverse", [False, True])
def test_a_profiles_identifier_times_span_all_its_records(reverse):
    records = _two_records()[::-1] if reverse else _two_records()
    profile = build(*records)
    email = next(i for i in profile.identifiers if i.identifier == EMAIL)
    assert (email.first_seen, email.last_seen) == (100.0, 300.0)
    assert email.sources == ["hubspot", "segment"]
    assert (profile.first_seen, profile.last_seen) == (100.0, 300.0)
    counters = {c.source: (c.first_seen, c.last_seen) for c in profile.sources}
    assert counters == {"hubspot": (150.0, 200.0), "segment": (100.0, 300.0)}


@pytest.mark.parametrize("reverse", [False, True])
def test_across_records_a_withdrawal_wins_even_over_a_later_grant(reverse):
    """Each record's own latest statement counts; across records the withdrawal wins
    (``privacy.merge_rule`` ``deny_wins``), however old, in either record order."""
    withdrew = fold([(record("hubspot", "1", "h1", 100.0, [CRM],
                             consent={"email_marketing": False}), "eu")])
    granted = fold([(record("segment", "u1", f"s{t:.0f}", t, ["user:segment:u1"],
                            consent={"email_marketing": g}), "eu")
                    for t, g in ((300.0, True), (50.0, False))])  # its latest: a grant
    assert granted.consent["email_marketing"] == (True, 300.0)
    records = (granted, withdrew) if reverse else (withdrew, granted)
    assert build(*records).consent == {"email_marketing": False}
    # and with no withdrawal left, the grant stands
    assert build(granted).consent == {"email_marketing": True}


# -- helpers for the sections below -----------------------------------------------------------

PHONE = "phone:+4915112345678"
SEGMENT_USER = "user:segment:u1"


def ev(event_id: str, at: float, type_: str = "open", source: str = "hubspot",
       **properties: str | float) -> RecordEvent:
    return RecordEvent(type_, source, at, event_id, properties)


def ids_of(events: list[RecordEvent]) -> list[str]:
    return [e.event_id for e in events]


def stored(record_key: str, *, attributes: dict[str, tuple[str, float]] | None = None,
           identifiers: dict[str, tuple[float, float, bool]] | None = None,
           consent: dict[str, tuple[bool, float]] | None = None,
           events: list[RecordEvent] | None = None, event_count: int = 1,
           first_seen: float = 100.0, last_seen: float = 100.0) -> StoredRecord:
    """A hand-made record state (``SOURCE:ID`` key) for folding into a profile."""
    source, rid = record_key.split(":", 1)
    return StoredRecord(
        record_key=record_key, source=source, source_record_id=rid, region="eu",
        profile_id="p", identifiers=identifiers or {}, attributes=attributes or {},
        consent=consent or {}, event_count=event_count, first_seen=first_seen,
        last_seen=last_seen, events=events or [])


# -- new_record_state -------------------------------------------------------------------------


def test_a_new_record_state_is_empty_and_seen_at_its_first_event():
    """Key, source, source record ID and region come from the event; nothing is attached,
    counted or assigned to a profile yet; first and last seen are the event's time."""
    rec = record("hubspot", "51", "e1", 1234.5, [CRM], given_name="Ann")
    assert new_record_state(rec, "us") == StoredRecord(
        record_key="hubspot:51", source="hubspot", source_record_id="51", region="us",
        profile_id="", identifiers={}, attributes={}, consent={}, event_count=0,
        first_seen=1234.5, last_seen=1234.5)


# -- add_event --------------------------------------------------------------------------------


NO_LIMIT = 1e12  # retention seconds longer than any test's span


@pytest.mark.parametrize("order", list(permutations(range(4))))
def test_add_event_keeps_events_in_time_order_ties_by_event_id(order):
    """Whatever the arrival order, the events end in (time, event ID) order."""
    pool = [ev("b", 100.0), ev("a", 200.0), ev("c", 200.0), ev("a", 300.0)]
    events: list[RecordEvent] = []
    for n in order:
        assert add_event(events, pool[n], NO_LIMIT, 10) is True
    assert events == pool


@pytest.mark.parametrize("again", [0, 1, 2])
def test_add_event_refuses_an_event_it_already_holds(again):
    """The same event ID at the same time (a redelivery) changes nothing and says so,
    whether it is the oldest, a middle or the newest event."""
    events = [ev("e1", 100.0), ev("e2", 200.0), ev("e3", 300.0)]
    redelivered = ev(f"e{again + 1}", 100.0 * (again + 1), "other-type")
    assert add_event(events, redelivered, NO_LIMIT, 10) is False
    assert events == [ev("e1", 100.0), ev("e2", 200.0), ev("e3", 300.0)]


def test_add_event_keeps_the_same_event_id_at_another_time():
    """Identity is (time, event ID): the same ID at another time is another event."""
    events = [ev("e1", 100.0), ev("e1", 300.0)]
    assert add_event(events, ev("e1", 200.0), NO_LIMIT, 10) is True
    assert events == [ev("e1", 100.0), ev("e1", 200.0), ev("e1", 300.0)]


def test_add_event_drops_events_older_than_retention_before_the_newest():
    """Retention counts back from the newest event: one exactly ``retention`` older stays,
    an older one goes."""
    events = [ev("e1", 100.0), ev("e2", 104.0), ev("e3", 105.0)]
    assert add_event(events, ev("e4", 115.0), 10.0, 10) is True
    assert ids_of(events) == ["e3", "e4"]


def test_add_event_accepts_but_does_not_keep_an_event_older_than_retention():
    """A late event too old for the window is new (True) yet not kept."""
    events = [ev("e1", 100.0), ev("e2", 200.0)]
    assert add_event(events, ev("e0", 50.0), 140.0, 10) is True
    assert ids_of(events) == ["e1", "e2"]


@pytest.mark.parametrize(("max_events", "kept"), [
    (0, []), (1, ["e4"]), (3, ["e2", "e3", "e4"]), (4, ["e1", "e2", "e3", "e4"]),
    (5, ["e1", "e2", "e3", "e4"]),
])
def test_add_event_keeps_at_most_max_events_the_newest(max_events, kept):
    events = [ev("e1", 100.0), ev("e2", 200.0), ev("e4", 400.0)]
    assert add_event(events, ev("e3", 300.0), NO_LIMIT, max_events) is True
    assert ids_of(events) == kept


def test_add_event_to_an_empty_list():
    events: list[RecordEvent] = []
    assert add_event(events, ev("e1", 100.0), 10.0, 5) is True
    assert events == [ev("e1", 100.0)]


# -- bounded_properties -----------------------------------------------------------------------


@pytest.mark.parametrize(("properties", "max_properties", "expected"), [
    pytest.param({"abc": "xyz", "n": 1234567.0}, 2, {"abc": "xyz", "n": 1234567.0},
                 id="all-within-bounds"),
    pytest.param({"abcd": "x", "a": "wxyz", "b": "xyz"}, 5, {"b": "xyz"},
                 id="text-name-or-value-longer-than-max-chars-dropped"),
    pytest.param({"a": 1.5, "b": "x", "c": "y"}, 2, {"a": 1.5, "b": "x"},
                 id="only-the-first-max-properties"),
    pytest.param({"long": "x", "a": "toolong", "b": "x", "c": "y"}, 2, {"b": "x", "c": "y"},
                 id="dropped-ones-do-not-count-against-max-properties"),
    pytest.param({"a": "x"}, 0, {}, id="max-properties-zero-keeps-none"),
    pytest.param({}, 3, {}, id="none"),
])
def test_bounded_properties(properties, max_properties, expected):
    """Text (name or value) longer than ``max_chars`` (3 here) is dropped, not cut; numbers
    have no length; the first ``max_properties`` kept ones stay, in their order."""
    out = bounded_properties(properties, max_properties, 3)
    assert out == expected
    assert list(out) == list(expected)


# -- apply_event ------------------------------------------------------------------------------


def test_apply_event_builds_the_whole_record_state():
    """Every part of a record's state after three events, the oldest arriving last:
    attributes and consent by event time, identifiers' first/last seen and linked flag (the
    latest application's), blocked identifiers never attached but listed as rejected with
    the adapter's rejections, the counts, and the events with their bounded properties."""
    blocked_ident = "device:shared-tablet"
    e2 = replace(record("hubspot", "51", "e2", 200.0, [blocked_ident, CRM, EMAIL],
                        consent={"ads": True}, given_name="Ann", company="Acme"),
                 event_type="contact", properties={"campaign": "spring", "x" * 300: "y"})
    e3 = replace(record("hubspot", "51", "e3", 300.0, [CRM], company="Acme Ltd"),
                 event_type="track", event_name="Order Completed", properties={"revenue": 9.5})
    e1 = replace(record("hubspot", "51", "e1", 100.0, [CRM, EMAIL, PHONE],
                        consent={"ads": False, "email": True}, given_name="Anne",
                        job_title="CTO"),
                 event_type="contact",
                 rejected=(RejectedIdentifier("phone", "mobile", "invalid phone"),))
    state = new_record_state(e2, "us")
    assert apply_event(state, e2, {CRM: True, EMAIL: True}, {blocked_ident: "shared"}, "us")
    assert apply_event(state, e3, {CRM: True}, None, "eu")
    assert apply_event(state, e1, {CRM: True, EMAIL: False, PHONE: True}, None, "de")
    assert state == StoredRecord(
        record_key="hubspot:51", source="hubspot", source_record_id="51", region="eu",
        profile_id="",
        identifiers={CRM: (100.0, 300.0, True), EMAIL: (100.0, 200.0, False),
                     PHONE: (100.0, 100.0, True)},
        attributes={"given_name": ("Ann", 200.0), "company": ("Acme Ltd", 300.0),
                    "job_title": ("CTO", 100.0)},
        consent={"ads": (True, 200.0), "email": (True, 100.0)},
        event_count=3, first_seen=100.0, last_seen=300.0,
        rejected={blocked_ident: "shared", "phone (mobile)": "invalid phone"},
        events=[RecordEvent("contact", "hubspot", 100.0, "e1", {}),
                RecordEvent("contact", "hubspot", 200.0, "e2", {"campaign": "spring"}),
                RecordEvent("Order Completed", "hubspot", 300.0, "e3", {"revenue": 9.5})])


def test_apply_event_refuses_a_redelivered_event_and_changes_nothing():
    """The same event ID at the same time again: False, and the state (counts, region,
    attributes, identifiers, events) is left exactly as it was."""
    first = record("hubspot", "51", "e1", 200.0, [CRM], given_name="Ann")
    state = new_record_state(first, "eu")
    assert apply_event(state, first, {CRM: True}, None, "eu")
    before = deepcopy(state)
    again = record("hubspot", "51", "e1", 200.0, [CRM, EMAIL], given_name="Anne")
    assert apply_event(state, again, {CRM: False, EMAIL: True}, {"x:y": "z"}, "us") is False
    assert state == before


def test_at_the_same_event_time_the_event_applied_last_sets_attributes_and_region():
    """Attribute values and the region follow the newest event; between events of the same
    time the one applied last wins."""
    a = record("hubspot", "51", "e1", 200.0, [CRM], given_name="Ann")
    b = record("hubspot", "51", "e2", 200.0, [CRM], given_name="Anne")
    state = new_record_state(a, "us")
    assert apply_event(state, a, {CRM: True}, None, "de")
    assert (state.region, state.attributes) == ("de", {"given_name": ("Ann", 200.0)})
    assert apply_event(state, b, {CRM: True}, None, "eu")
    assert (state.region, state.attributes) == ("eu", {"given_name": ("Anne", 200.0)})


@pytest.mark.parametrize("withdrawal_first", [True, False])
def test_at_the_same_instant_a_withdrawal_beats_a_grant_in_either_arrival_order(
        withdrawal_first):
    said = [False, True] if withdrawal_first else [True, False]
    state = fold([(record("hubspot", "1", f"e{n}", 100.0, [CRM],
                          consent={"email_marketing": g}), "eu")
                  for n, g in enumerate(said)])
    assert state.consent == {"email_marketing": (False, 100.0)}


def test_an_older_withdrawal_arriving_late_does_not_override_a_later_grant():
    state = fold([(record("hubspot", "1", f"e{t:.0f}", t, [CRM],
                          consent={"email_marketing": g}), "eu")
                  for t, g in ((300.0, True), (100.0, False))])
    assert state.consent == {"email_marketing": (True, 300.0)}


def test_apply_event_bounds_properties_by_the_settings():
    """``max_event_properties`` and ``max_event_property_chars`` of the given settings."""
    settings = SurvivorshipSettings(max_event_properties=2, max_event_property_chars=4)
    rec = replace(record("hubspot", "1", "e1", 100.0, [CRM]), event_type="open",
                  properties={"a": "12345", "b": "1234", "c": 1.0, "d": "x"})
    state = new_record_state(rec, "eu")
    assert apply_event(state, rec, {CRM: True}, None, "eu", settings)
    assert state.events == [RecordEvent("open", "hubspot", 100.0, "e1", {"b": "1234", "c": 1.0})]


def test_apply_event_bounds_properties_by_the_defaults_without_settings():
    """Without settings the defaults apply (256 characters, 16 properties)."""
    defaults = SurvivorshipSettings()
    props = {"long": "y" * (defaults.max_event_property_chars + 1), "edge": "z" * 256}
    props |= {f"p{n}": float(n) for n in range(20)}
    rec = replace(record("hubspot", "1", "e1", 100.0, [CRM]), properties=props)
    state = new_record_state(rec, "eu")
    assert apply_event(state, rec, {CRM: True}, None, "eu")
    kept = state.events[0].properties
    assert list(kept) == ["edge"] + [f"p{n}" for n in range(defaults.max_event_properties - 1)]


def test_apply_event_keeps_events_for_retention_days_before_the_newest():
    """``event_retention_days`` counts whole days back from the record's newest event."""
    settings = SurvivorshipSettings(event_retention_days=1)
    day = 86_400.0
    state = fold([(record("hubspot", "1", "e0", 1000.0, [CRM]), "eu")])
    one_day_later = record("hubspot", "1", "e1", 1000.0 + day, [CRM])
    assert apply_event(state, one_day_later, {CRM: True}, None, "eu", settings)
    assert ids_of(state.events) == ["e0", "e1"]
    a_second_more = record("hubspot", "1", "e2", 1001.0 + day, [CRM])
    assert apply_event(state, a_second_more, {CRM: True}, None, "eu", settings)
    assert ids_of(state.events) == ["e1", "e2"]
    assert state.event_count == 3


def test_apply_event_keeps_at_most_max_events_per_record():
    settings = SurvivorshipSettings(max_events_per_record=2)
    state = new_record_state(record("hubspot", "1", "e3", 300.0, [CRM]), "eu")
    for eid, t in (("e3", 300.0), ("e1", 100.0), ("e2", 200.0)):
        assert apply_event(state, record("hubspot", "1", eid, t, [CRM]), {CRM: True}, None,
                           "eu", settings)
    assert ids_of(state.events) == ["e2", "e3"]
    assert state.event_count == 3


# -- merge_events -----------------------------------------------------------------------------

# three records' timelines; the types are chosen so that their own order is not the
# time order, and two events share a time (ties by event ID)
TIMELINES = [
    [ev("a1", 100.0, "z"), ev("a2", 300.0, "m"), ev("a3", 500.0, "a")],
    [],
    [ev("b2", 200.0, "y"), ev("b1", 300.0, "n"), ev("b3", 600.0, "b")],
    [ev("c1", 300.0, "o"), ev("c2", 400.0, "c")],
]
MERGED = ["a1", "b2", "a2", "b1", "c1", "c2", "a3", "b3"]


@pytest.mark.parametrize(("limit", "want"), [
    (None, MERGED), (0, []), (1, ["b3"]), (3, ["c2", "a3", "b3"]), (7, MERGED[1:]),
    (8, MERGED), (9, MERGED),
])
def test_merge_events_merges_in_time_order_the_newest_limit(limit, want):
    """All events (limit None) or the newest ``limit``, oldest first, ties by event ID."""
    assert ids_of(merge_events(TIMELINES, limit)) == want


@pytest.mark.parametrize(("limit", "want"), [
    (None, ["a1", "b2", "a2", "b1", "a3", "b3"]), (0, []), (2, ["a3", "b3"]),
    (5, ["b2", "a2", "b1", "a3", "b3"]),
])
def test_merge_events_of_two_timelines(limit, want):
    assert ids_of(merge_events(TIMELINES[:3], limit)) == want


@pytest.mark.parametrize(("limit", "want"), [
    (None, ["a1", "a2", "a3"]), (0, []), (1, ["a3"]), (2, ["a2", "a3"]),
    (3, ["a1", "a2", "a3"]), (4, ["a1", "a2", "a3"]),
])
def test_merge_events_of_a_single_timeline(limit, want):
    """One non-empty timeline (the others empty): its newest ``limit`` events, as a new
    list (the record's own is left alone)."""
    timeline = list(TIMELINES[0])
    merged = merge_events([[], timeline, []], limit)
    assert merged == [e for e in timeline if e.event_id in want]
    merged.append(ev("x", 1.0))
    assert timeline == TIMELINES[0]


@pytest.mark.parametrize("limit", [None, 0, 5])
def test_merge_events_of_no_events(limit):
    assert merge_events([], limit) == []
    assert merge_events([[], []], limit) == []


# -- identifier_type --------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "type_"), [
    ("crm:hubspot:51", "crm:hubspot"),
    ("user:segment:u1", "user:segment"),
    ("ext:shopify:a:b", "ext:shopify"),
    ("email:ann@example.org", "email"),
    ("cookie:ab:cd", "cookie"),
    ("phone:+4915112345678", "phone"),
])
def test_identifier_type_is_namespaced_for_crm_user_and_ext(key, type_):
    """``crm``, ``user`` and ``ext`` keys carry a namespace in their type; other types do
    not, even when their value contains a colon."""
    assert identifier_type(key) == type_


# -- ProfileBuilder.build: the whole profile --------------------------------------------------

CRM_SF = "crm:salesforce:7"


def _ann_records() -> list[StoredRecord]:
    """Ann's four records: a Salesforce contact, two HubSpot contacts and a Segment user."""
    return [
        stored("salesforce:7",
               attributes={"given_name": ("Ann", 100.0), "job_title": ("CEO", 150.0)},
               identifiers={EMAIL: (100.0, 150.0, False), CRM_SF: (100.0, 150.0, True)},
               consent={"ads": (True, 150.0)},
               events=[ev("s1", 100.0, "contact", "salesforce"),
                       ev("s2", 150.0, "contact", "salesforce")],
               event_count=2, first_seen=100.0, last_seen=150.0),
        stored("hubspot:1",
               attributes={"given_name": ("Anne", 300.0), "job_title": ("CTO", 300.0),
                           "country": ("DE", 300.0)},
               identifiers={EMAIL: (200.0, 300.0, True), CRM: (200.0, 300.0, True)},
               consent={"ads": (False, 50.0), "email": (True, 300.0)},
               events=[ev("h1", 200.0, "open"), ev("h2", 300.0, "click")],
               event_count=5, first_seen=200.0, last_seen=300.0),
        stored("hubspot:2",
               attributes={"country": ("DE", 250.0), "nickname": ("Annie", 250.0)},
               identifiers={PHONE: (250.0, 250.0, False)},
               consent={"email": (True, 250.0)},
               events=[ev("h3", 250.0, "open")],
               event_count=1, first_seen=250.0, last_seen=250.0),
        stored("segment:u1",
               attributes={"country": ("FR", 400.0)},
               identifiers={SEGMENT_USER: (50.0, 400.0, True), EMAIL: (50.0, 60.0, False)},
               events=[ev("g1", 50.0, "track", "segment"), ev("g2", 400.0, "track", "segment")],
               event_count=2, first_seen=50.0, last_seen=400.0),
    ]


def test_build_folds_records_into_the_whole_profile():
    """Every field of a folded profile under the default rules: identifiers (sorted, with
    their type, earliest first and latest last seen, sources, linked when any record linked
    them), each attribute's survivor with its provenance (given_name by source priority,
    job_title and unlisted attributes most recent, country most frequent), per-source
    counters, the record keys in read order, consent (a withdrawal wins) with every record's
    statements, the profile's first/last seen and event count, and its newest
    ``profile_events_limit`` events."""
    settings = SurvivorshipSettings(profile_events_limit=5)
    profile = ProfileBuilder(settings).build("p1", "eu", _ann_records(), ["p0"], 999.0)
    assert profile == Profile(
        profile_id="p1",
        region="eu",
        identifiers=[
            ProfileIdentifier(CRM, "crm:hubspot", 200.0, 300.0, ["hubspot"], True),
            ProfileIdentifier(CRM_SF, "crm:salesforce", 100.0, 150.0, ["salesforce"], True),
            ProfileIdentifier(EMAIL, "email", 50.0, 300.0,
                              ["hubspot", "salesforce", "segment"], True),
            ProfileIdentifier(PHONE, "phone", 250.0, 250.0, ["hubspot"], False),
            ProfileIdentifier(SEGMENT_USER, "user:segment", 50.0, 400.0, ["segment"], True),
        ],
        attributes={
            "country": AttributeValue("DE", "hubspot", "hubspot:1", 300.0, "most_frequent"),
            "given_name": AttributeValue("Ann", "salesforce", "salesforce:7", 100.0,
                                         "source_priority"),
            "job_title": AttributeValue("CTO", "hubspot", "hubspot:1", 300.0, "most_recent"),
            "nickname": AttributeValue("Annie", "hubspot", "hubspot:2", 250.0, "most_recent"),
        },
        sources=[
            SourceCounter("hubspot", 6, 2, 200.0, 300.0),
            SourceCounter("salesforce", 2, 1, 100.0, 150.0),
            SourceCounter("segment", 2, 1, 50.0, 400.0),
        ],
        record_keys=["salesforce:7", "hubspot:1", "hubspot:2", "segment:u1"],
        aliases=["p0"],
        consent={"ads": False, "email": True},
        record_consent=[("salesforce:7", "ads", True, 150.0), ("hubspot:1", "ads", False, 50.0),
                        ("hubspot:1", "email", True, 300.0),
                        ("hubspot:2", "email", True, 250.0)],
        first_seen=50.0,
        last_seen=400.0,
        event_count=10,
        updated_at=999.0,
        events=[ev("s2", 150.0, "contact", "salesforce"), ev("h1", 200.0, "open"),
                ev("h3", 250.0, "open"), ev("h2", 300.0, "click"),
                ev("g2", 400.0, "track", "segment")],
    )


def test_build_does_not_depend_on_the_order_records_are_read_in():
    """Apart from ``record_keys`` and ``record_consent`` (read order), the same records give
    the same profile in any order."""
    builder = ProfileBuilder(SurvivorshipSettings(profile_events_limit=5))
    want = builder.build("p1", "eu", _ann_records(), [], 1.0)
    for order in permutations(range(4)):
        records = [_ann_records()[n] for n in order]
        got = builder.build("p1", "eu", records, [], 1.0)
        assert got.record_keys == [r.record_key for r in records]
        assert replace(got, record_keys=want.record_keys,
                       record_consent=want.record_consent) == want


def test_build_of_no_records_is_an_empty_profile():
    assert ProfileBuilder(SurvivorshipSettings()).build("p", "us", [], ["a"], 5.0) == Profile(
        profile_id="p", region="us", identifiers=[], attributes={}, sources=[],
        record_keys=[], aliases=["a"], consent={}, first_seen=0.0, last_seen=0.0,
        event_count=0, updated_at=5.0, events=[], record_consent=[])


@pytest.mark.parametrize(("options", "want"), [
    ({}, ["h2", "g2"]),
    ({"all_events": True}, ["g1", "s1", "s2", "h1", "h3", "h2", "g2"]),
    ({"event_types": {"open", "contact"}}, ["h1", "h3"]),
    ({"event_types": {"open", "contact"}, "all_events": True}, ["s1", "s2", "h1", "h3"]),
    ({"event_types": set()}, []),
])
def test_build_shows_the_newest_events_or_all_of_them_of_the_asked_types(options, want):
    """``profile_events_limit`` (2 here) newest events by default, every stored one with
    ``all_events``; only those of ``event_types`` when given."""
    builder = ProfileBuilder(SurvivorshipSettings(profile_events_limit=2))
    profile = builder.build("p1", "eu", _ann_records(), [], 1.0, **options)
    assert ids_of(profile.events) == want


# -- ProfileBuilder.build: the rules and their tie-breaks --------------------------------------


def _survivor(rule: str, holders: list[tuple[str, str, float]], reverse: bool
              ) -> AttributeValue:
    """The profile's value of attribute ``x`` under ``rule`` and the default source
    priority, from records ``(record key, value, event time)`` read in the given order or
    reversed."""
    records = [stored(key, attributes={"x": (value, t)}) for key, value, t in holders]
    settings = SurvivorshipSettings(rules={"x": rule})
    profile = ProfileBuilder(settings).build("p", "eu", records[::-1] if reverse else records,
                                             [], 0.0)
    return profile.attributes["x"]


# salesforce:1 holds "a" (highest priority), segment:1 "b" (latest), hubspot:1/2 "c" (most
# records; hubspot:1 its latest holder)
DISAGREEING = [("salesforce:1", "a", 100.0), ("segment:1", "b", 300.0),
               ("hubspot:1", "c", 200.0), ("hubspot:2", "c", 150.0)]


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize(("rule", "want"), [
    ("source_priority", AttributeValue("a", "salesforce", "salesforce:1", 100.0,
                                       "source_priority")),
    ("most_recent", AttributeValue("b", "segment", "segment:1", 300.0, "most_recent")),
    ("most_frequent", AttributeValue("c", "hubspot", "hubspot:1", 200.0, "most_frequent")),
])
def test_each_rule_picks_its_value_with_provenance(rule, want, reverse):
    """Where the three rules disagree, each picks its own value, with the source, record
    and event time of that value's latest holder and the rule's name."""
    assert _survivor(rule, DISAGREEING, reverse) == want


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize(("rule", "holders", "want"), [
    pytest.param("source_priority",
                 [("hubspot:1", "a", 100.0), ("hubspot:2", "b", 200.0)],
                 ("b", "hubspot:2", 200.0), id="source_priority-ties-most-recent"),
    pytest.param("source_priority",
                 [("segment:1", "a", 300.0), ("salesforce:1", "a", 100.0),
                  ("hubspot:1", "b", 400.0)],
                 ("a", "segment:1", 300.0),
                 id="source_priority-a-values-best-source-counts-provenance-its-latest"),
    pytest.param("source_priority",
                 [("zendesk:1", "a", 500.0), ("sendgrid:1", "b", 100.0)],
                 ("b", "sendgrid:1", 100.0), id="source_priority-unlisted-sources-last"),
    pytest.param("source_priority",
                 [("zendesk:1", "a", 100.0), ("intercom:1", "b", 200.0)],
                 ("b", "intercom:1", 200.0), id="source_priority-unlisted-tie-most-recent"),
    pytest.param("source_priority",
                 [("hubspot:1", "b", 200.0), ("hubspot:2", "a", 200.0)],
                 ("a", "hubspot:2", 200.0), id="source_priority-full-tie-smallest-value"),
    pytest.param("most_recent",
                 [("segment:1", "a", 200.0), ("salesforce:1", "b", 200.0)],
                 ("b", "salesforce:1", 200.0), id="most_recent-ties-source-priority"),
    pytest.param("most_recent",
                 [("hubspot:1", "b", 200.0), ("hubspot:2", "a", 200.0)],
                 ("a", "hubspot:2", 200.0), id="most_recent-full-tie-smallest-value"),
    pytest.param("most_recent",
                 [("hubspot:2", "a", 200.0), ("hubspot:1", "a", 200.0)],
                 ("a", "hubspot:1", 200.0), id="latest-holders-tie-smallest-record-key"),
    pytest.param("most_frequent",
                 [("segment:1", "a", 100.0), ("segment:2", "a", 110.0),
                  ("salesforce:1", "b", 300.0)],
                 ("a", "segment:2", 110.0), id="most_frequent-count-first"),
    pytest.param("most_frequent",
                 [("salesforce:1", "a", 100.0), ("hubspot:1", "a", 120.0),
                  ("segment:1", "b", 300.0), ("segment:2", "b", 110.0)],
                 ("b", "segment:1", 300.0), id="most_frequent-ties-most-recent"),
    pytest.param("most_frequent",
                 [("segment:1", "a", 200.0), ("hubspot:1", "b", 200.0)],
                 ("b", "hubspot:1", 200.0), id="most_frequent-then-source-priority"),
    pytest.param("most_frequent",
                 [("hubspot:1", "b", 200.0), ("hubspot:2", "a", 200.0)],
                 ("a", "hubspot:2", 200.0), id="most_frequent-full-tie-smallest-value"),
])
def test_rule_tie_breaks(rule, holders, want, reverse):
    """source_priority: ties most recent; most_recent: ties source priority;
    most_frequent: ties most recent, then source priority; a full tie goes to the smallest
    value, and a value's provenance to its latest holder (ties: the smallest record key),
    whatever order the records are read in."""
    value, record_key, t = want
    assert _survivor(rule, holders, reverse) == AttributeValue(
        value, record_key.split(":")[0], record_key, t, rule)
