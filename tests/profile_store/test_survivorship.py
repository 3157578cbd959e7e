"""Survivorship decides by event time, never by arrival order: a record's consent per
purpose, its identifiers' first and last seen, its own first and last seen and region
(``apply_event``), and the profile folded from its records (``ProfileBuilder.build``).

Each rule is checked with every arrival order of a few events whose first and last
arrivals are neither the earliest nor the latest in time, so a rule that kept the first
or the last arrival, or swapped a min for a max, gives a different answer.
"""

from __future__ import annotations

from itertools import permutations

import pytest
from helpers import record

from idgraph.profile_store.base import StoredRecord
from idgraph.profile_store.settings import SurvivorshipSettings
from idgraph.profile_store.survivorship import ProfileBuilder, apply_event, new_record_state
from idgraph.resolver.model import IdentityRecord

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
