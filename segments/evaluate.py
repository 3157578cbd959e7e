"""Evaluate a segment definition against one profile's facts, at a given time.

:func:`evaluate` is pure: the same tree, facts and ``now`` give the same :class:`Result`.
The engine fills :class:`ProfileFacts` from the profile store (later); tests fill it by hand.

Comparison rules (``=  !=  <  <=  >  >=  between  in  not_in`` and ``last()``):

* both sides numbers (a number literal, or text such as ``"42"`` / ``"-1.5e3"``; no spaces,
  no ``nan``/``inf``): compared as numbers, so ``"18.0" = 18``;
* otherwise both ISO dates or date-times (``"2024-05-01"`` is midnight UTC; a date-time
  without an offset is UTC): compared as instants;
* otherwise as text, case-sensitively, by code point (``"DE" != "de"``).

A missing attribute makes every condition on it false except ``absent``: ``country != "DE"``
does not hold for a profile without a country, and neither does ``not_in``. ``exists`` means
the attribute is present (whatever its value). ``contains``, ``starts_with``, ``ends_with``
compare text case-sensitively; ``matches`` finds the regular expression (RE2: linear time,
no backreferences or lookaround) anywhere in the
value (anchor it with ``^...$`` for the whole value). ``before``/``after`` and the date
windows hold only for values that are dates.

Time windows are half-open so that a deadline is the instant the answer changes:
``within_last d`` and ``.within(d)`` hold for ``now - d < t <= now``; ``within_next d`` for
``now < t <= now + d``. Events later than ``now`` have not happened yet.

Events: ``count()`` counts matching events in the window; ``sum()`` adds their numeric
values of the property (0 when none); ``min()``/``max()`` need at least one numeric value;
``last()`` is the property's value on the latest matching event that has it; ``distinct()``
counts distinct values. A sequence holds when matching events happened in order (distinct
events, times not decreasing), the last at most ``within`` after the first.

``Result.next_change`` is the earliest instant at which the answer could change with no
new data (a date or event entering or leaving a window); None when only new data can
change it. Before it the answer is the same; at it, it may change (the deadline is a bound:
an event leaving a window that still holds enough events changes nothing, and the engine
simply evaluates again). ``in_segment`` contributes no deadline of its own: the engine
re-evaluates dependents when a membership they use changes (:mod:`.dependencies`).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from idgraph.segments.ast import (
    And,
    Between,
    Compare,
    Consent,
    DateCompare,
    DateWindow,
    DidNot,
    EventAggregate,
    EventQuery,
    EventSequence,
    HasIdentifier,
    IdentifierCount,
    IdentifierFrom,
    InList,
    InSegment,
    Matches,
    Node,
    Not,
    Or,
    Presence,
    Region,
    TextMatch,
    Value,
    compile_pattern,
    parse_iso_date,
)
from idgraph.segments.language import to_text

PropertyValue = str | float


@dataclass(frozen=True, slots=True)
class Event:
    """One thing a profile did: ``type`` (``"purchase"``), the ``source`` kind that saw it,
    when (``at``; a naive time is UTC) and a few ``properties`` (an order amount...)."""

    type: str
    source: str
    at: datetime
    properties: Mapping[str, PropertyValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", _aware(self.at))


def _no_memberships(segment: str) -> bool:
    return False


@dataclass(slots=True)
class ProfileFacts:
    """What a segment can ask about one profile.

    ``attributes``: canonical attribute name -> value as text; ``identifiers``: (type,
    value) pairs, types as in :mod:`idgraph.resolver.model` (``crm:salesforce``);
    ``identifier_sources``: the source kinds that contributed identifiers; ``consent``:
    purpose -> granted (True) or denied (False), a missing purpose is unknown; ``region``:
    the profile's home region ("" when unknown); ``events``: what the profile did (any
    order); ``memberships``: whether the profile is in another segment (``in_segment``)."""

    attributes: dict[str, str] = field(default_factory=dict)
    identifiers: list[tuple[str, str]] = field(default_factory=list)
    identifier_sources: set[str] = field(default_factory=set)
    consent: dict[str, bool] = field(default_factory=dict)
    region: str = ""
    events: list[Event] = field(default_factory=list)
    memberships: Callable[[str], bool] = _no_memberships
    _by_type: dict[str, list[Event]] | None = field(default=None, repr=False, compare=False)
    _leaves: dict[int, tuple[Node, _Leaf]] = field(default_factory=dict, repr=False,
                                                   compare=False)
    """Answers of the leaves evaluated at ``_leaves_at``, by node identity (the node is kept
    with its answer, so its identity is not reused meanwhile): definitions sharing interned
    leaves (:func:`intern_leaves`) evaluate each once per profile."""
    _leaves_at: datetime | None = field(default=None, repr=False, compare=False)

    def events_of(self, event_type: str) -> list[Event]:
        """The events of one type (indexed on first use; ``events`` must not change after)."""
        if self._by_type is None:
            index: dict[str, list[Event]] = {}
            for event in self.events:
                index.setdefault(event.type, []).append(event)
            self._by_type = index
        return self._by_type.get(event_type, [])


@dataclass(frozen=True, slots=True)
class Result:
    """Whether the profile is in the segment, why, and until when that answer holds.

    ``clauses``: the canonical text of the conditions that made it hold (each leaf that
    held, or a whole ``not ...``), in definition order; empty when it does not match."""

    matched: bool
    clauses: list[str]
    next_change: datetime | None


def evaluate(node: Node, facts: ProfileFacts, now: datetime) -> Result:
    """Evaluate ``node`` for ``facts`` at ``now`` (a naive ``now`` is UTC)."""
    now = _aware(now)
    if facts._leaves_at != now:
        facts._leaves.clear()
        facts._leaves_at = now
    matched, clauses, next_change = _evaluate(node, facts, now)
    return Result(matched, clauses if matched else [], next_change)


_Outcome = tuple[bool, list[str], datetime | None]


def _evaluate(node: Node, facts: ProfileFacts, now: datetime) -> _Outcome:
    if isinstance(node, And | Or):
        outcomes = [_evaluate(item, facts, now) for item in node.items]
        return _combine(isinstance(node, And), outcomes)
    if isinstance(node, Not):
        held, _, next_change = _evaluate(node.item, facts, now)
        return (not held, [] if held else [_clause(node)], next_change)
    if type(node) is InSegment:  # answered from memberships computed meanwhile
        held, next_change = _LEAVES[InSegment](node, facts, now)
    else:
        known = facts._leaves.get(id(node))
        if known is not None and known[0] is node:
            held, next_change = known[1]
        else:
            held, next_change = leaf = _LEAVES[type(node)](node, facts, now)
            facts._leaves[id(node)] = (node, leaf)
    return held, [_clause(node)] if held else [], next_change


def intern_leaves(trees: Mapping[str, Node]) -> dict[str, Node]:
    """The same trees with equal leaves shared (one object each), so that evaluating
    them all for one profile evaluates each distinct leaf once. Evaluate interned trees of
    one :class:`ProfileFacts` at one ``now`` only (the leaf answers are kept on it)."""
    pool: dict[Node, Node] = {}

    def share(node: Node) -> Node:
        if isinstance(node, And | Or):
            return type(node)(tuple(share(item) for item in node.items))
        if isinstance(node, Not):
            return Not(share(node.item))
        return pool.setdefault(node, node)

    return {name: share(tree) for name, tree in trees.items()}


def _combine(is_and: bool, outcomes: list[_Outcome]) -> _Outcome:
    """And/Or: the answer, the clauses of the items that held, and the deadline.

    An And that holds changes when any item changes (the earliest deadline); one that does
    not holds only once every false item has changed (no earlier than the latest of their
    deadlines; never if one of them never changes). Or is the mirror image."""
    held = all(o[0] for o in outcomes) if is_and else any(o[0] for o in outcomes)
    clauses = [c for o in outcomes if o[0] for c in o[1]] if held else []
    if held == is_and:  # every item agrees with the answer: any change can flip it
        deadlines = [o[2] for o in outcomes if o[2] is not None]
        return held, clauses, min(deadlines, default=None)
    deciding = [o[2] for o in outcomes if o[0] == held]
    if any(deadline is None for deadline in deciding):
        return held, clauses, None
    return held, clauses, max(deciding)  # type: ignore[type-var]


@lru_cache(maxsize=4096)
def _clause(node: Node) -> str:
    return to_text(node)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- values ---------------------------------------------------------------------------------


def _as_number(value: PropertyValue | Value) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    return _text_number(value)


@lru_cache(maxsize=65536)
def _text_number(value: str) -> float | None:
    """Text as a number (cached: profiles repeat the same values, and every comparison of
    text asks)."""
    if not value or value != value.strip() or "_" in value:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


_text_date = lru_cache(maxsize=65536)(parse_iso_date)
"""Text as an ISO date or date-time (cached, as :func:`_text_number`)."""


def _as_text(value: PropertyValue | Value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


_OPERATORS: dict[str, Callable[[object, object], bool]] = {
    "=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge}


def compare(actual: PropertyValue, op: str, expected: Value) -> bool:
    """``actual OP expected`` by the module's rules (numbers, then dates, then text)."""
    left, right = _as_number(actual), _as_number(expected)
    if left is not None and right is not None:
        return _OPERATORS[op](left, right)
    if isinstance(actual, str) and isinstance(expected, str):
        right_date = _text_date(expected)
        left_date = _text_date(actual) if right_date is not None else None
        if left_date is not None and right_date is not None:
            return _OPERATORS[op](left_date, right_date)
    return _OPERATORS[op](_as_text(actual), _as_text(expected))


@lru_cache(maxsize=1024)
def _regex(pattern: str):  # re2._Regexp
    return compile_pattern(pattern)  # valid and bounded: checked by the Matches node


# --- conditions on attributes (profile attributes, or an event's properties) -----------------

_Leaf = tuple[bool, datetime | None]


def attribute_holds(node: Node, values: Mapping[str, PropertyValue], now: datetime) -> _Leaf:
    """An attribute condition (or and/or/not of them) over ``values``."""
    if isinstance(node, And):
        return all(attribute_holds(item, values, now)[0] for item in node.items), None
    if isinstance(node, Or):
        return any(attribute_holds(item, values, now)[0] for item in node.items), None
    if isinstance(node, Not):
        return not attribute_holds(node.item, values, now)[0], None
    actual = values.get(node.attribute)  # type: ignore[attr-defined]
    if isinstance(node, Presence):
        return (actual is None) == (node.op == "absent"), None
    if actual is None:
        return False, None
    if isinstance(node, DateWindow):
        return _date_window(node, actual, now)
    return _ATTRIBUTE_TESTS[type(node)](node, actual), None


def _date_window(node: DateWindow, actual: PropertyValue, now: datetime) -> _Leaf:
    moment = _text_date(actual) if isinstance(actual, str) else None
    if moment is None:
        return False, None
    span = timedelta(seconds=node.duration.seconds)
    if node.op == "within_last":  # now - span < moment <= now
        if moment > now:
            return False, moment
        return (True, moment + span) if moment > now - span else (False, None)
    if moment <= now:  # within_next: now < moment <= now + span
        return False, None
    return (True, moment) if moment <= now + span else (False, moment - span)


def _in_list(node: InList, actual: PropertyValue) -> bool:
    found = any(compare(actual, "=", value) for value in node.values)
    return found if node.op == "in" else not found


def _text_match(node: TextMatch, actual: PropertyValue) -> bool:
    text = _as_text(actual)
    if node.op == "contains":
        return node.value in text
    return text.startswith(node.value) if node.op == "starts_with" else text.endswith(node.value)


def _date_compare(node: DateCompare, actual: PropertyValue) -> bool:
    moment = _text_date(actual) if isinstance(actual, str) else None
    if moment is None:
        return False
    limit = parse_iso_date(node.date)
    return moment < limit if node.op == "before" else moment > limit  # type: ignore[operator]


_ATTRIBUTE_TESTS: dict[type, Callable[[Node, PropertyValue], bool]] = {
    Compare: lambda n, a: compare(a, n.op, n.value),
    Between: lambda n, a: compare(a, ">=", n.low) and compare(a, "<=", n.high),
    InList: _in_list,
    TextMatch: _text_match,
    Matches: lambda n, a: _regex(n.pattern).search(_as_text(a)) is not None,
    DateCompare: _date_compare,
}


# --- events ---------------------------------------------------------------------------------


def _matching(query: EventQuery, facts: ProfileFacts, now: datetime
              ) -> tuple[list[Event], datetime | None]:
    """The events ``query`` selects at ``now`` (in its window, not in the future) and the
    earliest instant one of its events enters or leaves the window."""
    span = None if query.within is None else timedelta(seconds=query.within.seconds)
    selected: list[Event] = []
    deadline: datetime | None = None
    for event in facts.events_of(query.event):
        if query.source is not None and event.source != query.source:
            continue
        if query.where is not None and not attribute_holds(query.where, event.properties,
                                                           now)[0]:
            continue
        change = None
        if event.at > now:
            change = event.at
        elif span is None or event.at > now - span:
            selected.append(event)
            change = None if span is None else event.at + span
        if change is not None and (deadline is None or change < deadline):
            deadline = change
    return selected, deadline


def _aggregate(node: EventAggregate, events: list[Event]) -> PropertyValue | None:
    if node.function == "count":
        return len(events)
    prop = node.property
    values = [event.properties[prop] for event in events if prop in event.properties]
    if node.function == "last":
        latest = max(((event.at, i) for i, event in enumerate(events)
                      if prop in event.properties), default=None)
        return None if latest is None else events[latest[1]].properties[prop]
    if node.function == "distinct":
        return len({_as_text(value) for value in values})
    numbers = [n for n in map(_as_number, values) if n is not None]
    if node.function == "sum":
        return math.fsum(numbers)
    if not numbers:
        return None
    return min(numbers) if node.function == "min" else max(numbers)


def _event_aggregate(node: EventAggregate, facts: ProfileFacts, now: datetime) -> _Leaf:
    events, deadline = _matching(node.query, facts, now)
    value = _aggregate(node, events)
    return (value is not None and compare(value, node.op, node.value)), deadline


def _did_not(node: DidNot, facts: ProfileFacts, now: datetime) -> _Leaf:
    events, deadline = _matching(node.query, facts, now)
    return not events, deadline


def _sequence(node: EventSequence, facts: ProfileFacts, now: datetime) -> _Leaf:
    order = {id(event): i for i, event in enumerate(facts.events)}
    steps, deadlines = [], []
    for query in node.steps:
        events, deadline = _matching(query, facts, now)
        steps.append(sorted((event.at, order[id(event)]) for event in events))
        deadlines.append(deadline)
    limit = None if node.within is None else timedelta(seconds=node.within.seconds)
    deadline = min((d for d in deadlines if d is not None), default=None)
    for first in steps[0]:
        last = _earliest_chain(first, steps[1:])
        if last is not None and (limit is None or last[0] - first[0] <= limit):
            return True, deadline
    return False, deadline


def _earliest_chain(first: tuple[datetime, int], rest: list[list[tuple[datetime, int]]]
                    ) -> tuple[datetime, int] | None:
    """The earliest end of a chain from ``first`` through one event of each later step (the
    earliest next event at each step gives the earliest end)."""
    current = first
    for candidates in rest:
        current = next((c for c in candidates if c > current), None)
        if current is None:
            return None
    return current


# --- identifiers, consent, region, other segments ---------------------------------------------


def _type_matches(kind: str, wanted: str) -> bool:
    return kind == wanted or kind.startswith(wanted + ":")


def _consent_state(facts: ProfileFacts, purpose: str) -> str:
    answer = facts.consent.get(purpose)
    return "unknown" if answer is None else ("granted" if answer else "denied")


def _region(node: Region, facts: ProfileFacts) -> bool:
    if not facts.region:  # an unknown region is neither in nor outside a list
        return False
    return (facts.region in node.regions) == (node.op == "in")


def _attribute_leaf(node: Node, facts: ProfileFacts, now: datetime) -> _Leaf:
    return attribute_holds(node, facts.attributes, now)


_LEAVES: dict[type, Callable[[Node, ProfileFacts, datetime], _Leaf]] = {
    **{cls: _attribute_leaf for cls in (Compare, Between, InList, TextMatch, Matches, Presence,
                                        DateCompare, DateWindow)},
    EventAggregate: _event_aggregate,
    DidNot: _did_not,
    EventSequence: _sequence,
    HasIdentifier: lambda n, f, now: (any(_type_matches(t, n.type) for t, _ in f.identifiers),
                                      None),
    IdentifierCount: lambda n, f, now: (compare(
        len({v for t, v in f.identifiers if _type_matches(t, n.type)}), n.op, n.value), None),
    IdentifierFrom: lambda n, f, now: (n.source in f.identifier_sources, None),
    Consent: lambda n, f, now: (_consent_state(f, n.purpose) == n.state, None),
    Region: lambda n, f, now: (_region(n, f), None),
    InSegment: lambda n, f, now: (bool(f.memberships(n.segment)), None),
}
