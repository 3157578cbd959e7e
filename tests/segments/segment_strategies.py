"""Hypothesis strategies for segment syntax trees (shared by the property tests)."""

from __future__ import annotations

from hypothesis import strategies as st

from idgraph.segments import ast as a

_text = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=6)
names = st.one_of(st.sampled_from(["country", "age", "birth_date", "region", "in", "and",
                                   "attribute", "amount", "x_1", "Given"]), _text)
values = st.one_of(_text, st.integers(-10**9, 10**9),
                   st.floats(allow_nan=False, allow_infinity=False))
durations = st.one_of(st.builds(a.Duration, st.integers(1, 400), st.just("d")),
                      st.builds(a.Duration, st.integers(1, 9600), st.just("h")),
                      st.builds(a.Duration, st.integers(1, 400 * 1440), st.just("m")))
dates = st.one_of(st.dates().map(lambda d: d.isoformat()),
                  st.just("2024-05-01T10:30:00+02:00"))
patterns = st.sampled_from(["^a", "b+$", "[0-9]{3}", "x|y", "\\d+\\.\\d*", "\"quoted\""])
comparisons = st.sampled_from(a.COMPARISONS)

attribute_leaves = st.one_of(
    st.builds(a.Compare, names, comparisons, values),
    st.builds(a.Between, names, values, values),
    st.builds(a.InList, names, st.sampled_from(["in", "not_in"]),
              st.lists(values, min_size=1, max_size=3).map(tuple)),
    st.builds(a.TextMatch, names, st.sampled_from(a.TEXT_OPERATORS), _text),
    st.builds(a.Matches, names, patterns),
    st.builds(a.Presence, names, st.sampled_from(["exists", "absent"])),
    st.builds(a.DateCompare, names, st.sampled_from(["before", "after"]), dates),
)


def booleans(leaves: st.SearchStrategy, max_leaves: int = 6) -> st.SearchStrategy:
    """Trees of and/or/not over ``leaves``."""
    return st.recursive(leaves, lambda inner: st.one_of(
        st.builds(a.And, st.lists(inner, min_size=2, max_size=3).map(tuple)),
        st.builds(a.Or, st.lists(inner, min_size=2, max_size=3).map(tuple)),
        st.builds(a.Not, inner)), max_leaves=max_leaves)


queries = st.builds(a.EventQuery, _text, st.none() | booleans(attribute_leaves, 3),
                    st.none() | _text, st.none() | durations)
aggregates = st.one_of(
    st.builds(a.EventAggregate, queries, st.just("count"), comparisons,
              st.integers(0, 100), st.none()),
    st.builds(a.EventAggregate, queries, st.sampled_from(["sum", "min", "max", "distinct"]),
              comparisons, st.integers(-100, 100) | st.floats(-1e6, 1e6), names),
    st.builds(a.EventAggregate, queries, st.just("last"), comparisons, values, names),
)
leaves = st.one_of(
    attribute_leaves,
    st.builds(a.DateWindow, names, st.sampled_from(["within_last", "within_next"]), durations),
    aggregates,
    st.builds(a.DidNot, queries),
    st.builds(a.EventSequence, st.lists(queries, min_size=2, max_size=3).map(tuple),
              st.none() | durations),
    st.builds(a.HasIdentifier, names),
    st.builds(a.IdentifierCount, names, comparisons, st.integers(0, 10)),
    st.builds(a.IdentifierFrom, names),
    st.builds(a.Consent, _text, st.sampled_from(a.CONSENT_STATES)),
    st.builds(a.Region, st.sampled_from(["in", "not_in"]),
              st.lists(_text, min_size=1, max_size=3).map(tuple)),
    st.builds(a.InSegment, _text),
)
segments = booleans(leaves)
