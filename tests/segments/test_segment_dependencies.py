"""The in_segment graph: cycles, unknown names, dependents, evaluation order."""

from __future__ import annotations

import pytest

from idgraph.segments import (
    SegmentCycleError,
    SegmentDependencies,
    SegmentInUseError,
    UnknownSegmentError,
    parse,
)


def graph(**texts: str) -> SegmentDependencies:
    return SegmentDependencies({name: parse(text) for name, text in texts.items()})


DEFINITIONS = {
    "Churned": 'did_not event("login").within(90d)',
    "Buyers": 'event("purchase").count() >= 1',
    "Loyal": 'in_segment("Buyers") and not in_segment("Churned")',
    "WinBack": 'in_segment("Churned") and in_segment("Buyers")',
    "Newsletter": 'in_segment("Loyal") or (in_segment("WinBack") and a exists)',
    "Other": "b exists",
}


def test_order_dependents_and_uses():
    deps = graph(**DEFINITIONS)
    order = deps.evaluation_order()
    assert sorted(order) == sorted(DEFINITIONS)
    for name in order:
        for used in deps.uses(name):
            assert order.index(used) < order.index(name)
    assert order == ("Buyers", "Churned", "Loyal", "Other", "WinBack", "Newsletter")
    assert deps.uses("Loyal") == ("Buyers", "Churned")
    assert deps.direct_dependents("Buyers") == ("Loyal", "WinBack")
    assert deps.dependents("Buyers") == ("Loyal", "Newsletter", "WinBack")
    assert deps.dependents("Newsletter") == ()
    assert deps.is_time_dependent("Newsletter") and not deps.is_time_dependent("Other")


@pytest.mark.parametrize(("texts", "cycle"), [
    ({"A": 'in_segment("A")'}, ("A", "A")),
    ({"A": 'in_segment("B")', "B": 'a exists or in_segment("A")'}, ("A", "B", "A")),
    ({"A": 'in_segment("B")', "B": 'in_segment("C")', "C": 'not in_segment("B")',
      "D": 'in_segment("A")'}, ("B", "C", "B")),
])
def test_cycles_are_rejected_with_their_path(texts, cycle):
    with pytest.raises(SegmentCycleError) as caught:
        graph(**texts)
    assert caught.value.cycle == cycle
    assert " -> ".join(repr(n) for n in cycle) in str(caught.value)


def test_a_redefinition_that_closes_a_loop_is_refused_before_it_is_written():
    deps = graph(**DEFINITIONS)
    with pytest.raises(SegmentCycleError) as caught:
        deps.with_definition("Buyers", parse('in_segment("Newsletter")'))
    assert caught.value.cycle == ("Buyers", "Newsletter", "Loyal", "Buyers")  # uses
    assert deps.uses("Buyers") == ()  # the graph itself is unchanged


def test_unknown_references_and_deletes_in_use():
    with pytest.raises(UnknownSegmentError, match="'A' uses in_segment\\('Nope'\\)"):
        graph(A='in_segment("Nope")')
    deps = graph(**DEFINITIONS)
    with pytest.raises(SegmentInUseError) as caught:
        deps.without("Churned")
    assert caught.value.dependents == ("Loyal", "WinBack")
    assert "Newsletter" not in deps.without("Newsletter").evaluation_order()
