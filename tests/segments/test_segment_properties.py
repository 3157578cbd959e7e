"""Property tests: both round trips for generated trees, and that deadlines are right."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from segment_strategies import booleans, segments

from idgraph.segments import Event, ProfileFacts, evaluate, from_json, parse, to_json, to_text
from idgraph.segments import ast as a

FAST = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(segments)
def test_text_round_trip(node):
    text = to_text(node)
    assert parse(text) == node, text
    assert to_text(parse(text)) == text


@FAST
@given(segments)
def test_json_round_trip(node):
    data = json.loads(json.dumps(to_json(node)))  # through real JSON text
    assert from_json(data) == node


# --- deadlines: generated profiles around NOW, segments over time-dependent conditions ------

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
offsets = st.integers(-4 * 1440, 4 * 1440).map(lambda m: NOW + timedelta(minutes=m))
small_durations = st.one_of(st.builds(a.Duration, st.integers(1, 3), st.just("d")),
                            st.builds(a.Duration, st.integers(1, 30), st.just("h")),
                            st.builds(a.Duration, st.integers(1, 600), st.just("m")))
types = st.sampled_from(["buy", "open"])
timed_queries = st.builds(a.EventQuery, types, st.none(),
                          st.none() | st.just("web"), st.none() | small_durations)
timed_leaves = st.one_of(
    st.builds(a.DateWindow, st.sampled_from(["d1", "d2"]),
              st.sampled_from(["within_last", "within_next"]), small_durations),
    st.builds(a.EventAggregate, timed_queries, st.just("count"),
              st.sampled_from(a.COMPARISONS), st.integers(0, 3), st.none()),
    st.builds(a.EventAggregate, timed_queries, st.sampled_from(["sum", "max", "last"]),
              st.sampled_from(a.COMPARISONS), st.integers(0, 20), st.just("n")),
    st.builds(a.DidNot, timed_queries),
    st.builds(a.EventSequence, st.lists(timed_queries, min_size=2, max_size=2).map(tuple),
              st.none() | small_durations),
    st.builds(a.Compare, st.just("plan"), st.just("="), st.just("pro")),
)
facts = st.builds(
    ProfileFacts,
    attributes=st.fixed_dictionaries({}, optional={
        "d1": offsets.map(datetime.isoformat), "d2": offsets.map(datetime.isoformat),
        "plan": st.just("pro")}),
    events=st.lists(st.builds(Event, types, st.sampled_from(["web", "crm"]), offsets,
                              st.fixed_dictionaries({"n": st.integers(0, 10)})), max_size=6),
)


@settings(max_examples=300, deadline=None, database=None)
@given(booleans(timed_leaves, 4), facts, st.floats(0, 1, exclude_max=True))
def test_the_answer_holds_until_next_change(node, profile, fraction):
    result = evaluate(node, profile, NOW)
    if result.next_change is None:  # only new data changes it: try far in the future
        later = NOW + timedelta(days=1000 * fraction)
        assert evaluate(node, profile, later).matched == result.matched
        return
    assert result.next_change > NOW
    just_before = result.next_change - timedelta(microseconds=1)
    # timedelta * float rounds to microseconds: a fraction just under 1 may land on the
    # deadline itself, where the answer is allowed to change
    somewhere = min(NOW + (result.next_change - NOW) * fraction, just_before)
    for moment in (just_before, somewhere):
        again = evaluate(node, profile, moment)
        assert again.matched == result.matched, (to_text(node), moment)
