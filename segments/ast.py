"""The segment language's syntax tree and its canonical JSON form.

One frozen dataclass per construct. Constructors validate their values (raising
:class:`InvalidSegmentError`), so a tree that exists is a valid definition whichever form
it came from: a window over :data:`MAX_WINDOW_DAYS`, a regular expression that does not
compile or is longer than :data:`MAX_PATTERN_LENGTH`, ``sum()`` without a property are
refused when the node is built.

Literal values (:data:`Value`) are strings or numbers (``int`` or finite ``float``); how
they compare with profile data is :mod:`idgraph.segments.evaluate`'s business.

JSON form: every node is an object whose ``"kind"`` names the construct and whose other
keys are the node's fields (optional fields are left out when unset; a duration is
``{"amount": 30, "unit": "d"}``)::

    {"kind": "and", "items": [
        {"kind": "compare", "attribute": "country", "op": "=", "value": "DE"},
        {"kind": "event", "query": {"event": "purchase", "within": {"amount": 30, "unit": "d"}},
         "function": "count", "op": ">=", "value": 2}]}

:func:`to_json` and :func:`from_json` are lossless (``from_json(to_json(n)) == n``);
:func:`from_json` validates and its errors name the JSON path (``$.items[1].query.within``).
The text form is :mod:`idgraph.segments.language`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, dataclass, fields
from datetime import UTC, date, datetime
from typing import Any, ClassVar

import re2

from idgraph.segments.errors import InvalidSegmentError

Value = str | int | float
"""A literal: a string (``"DE"``) or a number (``100``, ``2.5``)."""

COMPARISONS = ("=", "!=", "<", "<=", ">", ">=")
TEXT_OPERATORS = ("contains", "starts_with", "ends_with")
AGGREGATES = ("count", "sum", "min", "max", "last", "distinct")
CONSENT_STATES = ("granted", "denied", "unknown")
DURATION_UNITS = {"m": 60, "h": 3600, "d": 86400}
"""Duration units and their length in seconds (minutes, hours, days)."""
MAX_WINDOW_DAYS = 400
MAX_PATTERN_LENGTH = 1000
"""Longest regular expression ``matches`` accepts, in characters."""


class Node:
    """A construct of the language (every class below)."""

    __slots__ = ()
    kind: ClassVar[str]

    def __str__(self) -> str:
        from idgraph.segments.language import to_text  # the text form imports this module

        return to_text(self)


# --- field checks (each returns the value to store, or raises InvalidSegmentError) ---------


def _text(name: str) -> Callable[[Any], Any]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise InvalidSegmentError(f"{name} must be a non-empty string, not {value!r}")
        return value
    return check


def _optional_text(name: str) -> Callable[[Any], Any]:
    check_text = _text(name)
    return lambda value: None if value is None else check_text(value)


def _choice(name: str, choices: tuple[str, ...]) -> Callable[[Any], Any]:
    def check(value: Any) -> str:
        if value not in choices:
            raise InvalidSegmentError(f"{name} must be one of {', '.join(choices)}, "
                                      f"not {value!r}")
        return value
    return check


def _value(value: Any) -> Value:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidSegmentError(f"a value must be a string or a number, not {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidSegmentError(f"a number must be finite, not {value!r}")
    return value


def _number(name: str) -> Callable[[Any], Any]:
    def check(value: Any) -> int | float:
        if isinstance(_value(value), str):
            raise InvalidSegmentError(f"{name} must be a number, not the string {value!r}")
        return value
    return check


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidSegmentError(f"a count must be a whole number >= 0, not {value!r}")
    return value


def _values(value: Any) -> tuple[Value, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise InvalidSegmentError(f"a list needs at least one value, not {value!r}")
    return tuple(_value(item) for item in value)


def _texts(name: str) -> Callable[[Any], Any]:
    check_text = _text(name)

    def check(value: Any) -> tuple[str, ...]:
        if not isinstance(value, list | tuple) or not value:
            raise InvalidSegmentError(f"{name} needs at least one string, not {value!r}")
        return tuple(check_text(item) for item in value)
    return check


def parse_iso_date(text: str) -> datetime | None:
    """``text`` as an ISO 8601 date (``2000-01-31``, midnight UTC) or date-time (no offset:
    UTC); None when it is neither. Shared with the evaluator."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _iso_date(value: Any) -> str:
    if not isinstance(value, str) or parse_iso_date(value) is None:
        raise InvalidSegmentError(f"a date must be an ISO date such as \"2000-01-31\" "
                                  f"(or date-time), not {value!r}")
    return value


def _pattern(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidSegmentError(f"a regular expression must be a string, not {value!r}")
    if len(value) > MAX_PATTERN_LENGTH:
        raise InvalidSegmentError(f"regular expression is {len(value)} characters long; "
                                  f"at most {MAX_PATTERN_LENGTH} are allowed")
    try:
        compile_pattern(value)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise InvalidSegmentError(f"invalid regular expression {value!r}: {reason} (RE2 "
                                  "syntax: no backreferences or lookaround)") from None
    return value


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # the error is raised with its reason; no C++ log line


def compile_pattern(pattern: str) -> re2._Regexp:
    """``pattern`` compiled by RE2: matching takes time linear in the value's length, so a
    definition cannot make evaluation hang (Python's ``re`` backtracks: ``(a+)+$`` on a
    long value never ends). RE2 syntax is Python's without backreferences and
    lookaround."""
    return re2.compile(pattern, options=_RE2_OPTIONS)


def _node(value: Any) -> Node:
    if not isinstance(value, Node):
        raise InvalidSegmentError(f"expected a condition, not {value!r}")
    return value


def _nodes(value: Any) -> tuple[Node, ...]:
    if not isinstance(value, list | tuple) or len(value) < 2:
        raise InvalidSegmentError(f"and/or need at least two conditions, not {value!r}")
    return tuple(_node(item) for item in value)


def _filter(value: Any) -> Node | None:
    """An event's ``where``: attribute conditions on the event's properties."""
    if value is None:
        return None
    for node in walk(_node(value)):
        if not isinstance(node, FILTER_NODES):
            raise InvalidSegmentError(f"where() takes conditions on event properties only, "
                                      f"not {node.kind}")
    return value


def _duration(value: Any) -> Duration:
    if not isinstance(value, Duration):
        raise InvalidSegmentError(f"expected a duration such as 30d, not {value!r}")
    return value


def _optional_duration(value: Any) -> Duration | None:
    return None if value is None else _duration(value)


def _query(value: Any) -> EventQuery:
    if not isinstance(value, EventQuery):
        raise InvalidSegmentError(f"expected an event query, not {value!r}")
    return value


def _queries(value: Any) -> tuple[EventQuery, ...]:
    if not isinstance(value, list | tuple) or len(value) < 2:
        raise InvalidSegmentError("a sequence needs at least two events")
    return tuple(_query(item) for item in value)


def _validated(cls: type) -> type:
    """Run each field's check (``CHECKS``) in ``__post_init__``, storing what it returns."""
    def __post_init__(self: Any) -> None:
        for name, check in type(self).CHECKS.items():
            object.__setattr__(self, name, check(getattr(self, name)))
        extra = getattr(self, "_check", None)
        if extra is not None:
            extra()
    cls.__post_init__ = __post_init__
    return dataclass(frozen=True, slots=True)(cls)


# --- durations -----------------------------------------------------------------------------


@_validated
class Duration:
    """``amount`` minutes (``m``), hours (``h``) or days (``d``): 1 minute to 400 days."""

    amount: int
    unit: str
    CHECKS: ClassVar[dict] = {"unit": _choice("a duration unit", tuple(DURATION_UNITS))}

    def _check(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int) or self.amount < 1:
            raise InvalidSegmentError(f"a duration needs a whole number >= 1, "
                                      f"not {self.amount!r}")
        if self.seconds > MAX_WINDOW_DAYS * 86400:
            raise InvalidSegmentError(f"duration {self.amount}{self.unit} is longer than "
                                      f"{MAX_WINDOW_DAYS} days")

    @property
    def seconds(self) -> int:
        return self.amount * DURATION_UNITS[self.unit]


# --- conditions on attributes (and, inside where(), on event properties) ---------------------


@_validated
class Compare(Node):
    """``attribute OP value`` with OP one of ``= != < <= > >=``."""

    kind = "compare"
    attribute: str
    op: str
    value: Value
    CHECKS: ClassVar[dict] = {"attribute": _text("attribute"),
                              "op": _choice("a comparison", COMPARISONS), "value": _value}


@_validated
class Between(Node):
    """``attribute between low and high`` (both ends included)."""

    kind = "between"
    attribute: str
    low: Value
    high: Value
    CHECKS: ClassVar[dict] = {"attribute": _text("attribute"), "low": _value, "high": _value}


@_validated
class InList(Node):
    """``attribute in (v, ...)`` or ``attribute not_in (v, ...)``."""

    kind = "in"
    attribute: str
    op: str
    values: tuple[Value, ...]
    CHECKS: ClassVar[dict] = {"attribute": _text("attribute"),
                              "op": _choice("a list operator", ("in", "not_in")),
                              "values": _values}


@_validated
class TextMatch(Node):
    """``attribute contains|starts_with|ends_with "text"`` (case-sensitive)."""

    kind = "text"
    attribute: str
    op: str
    value: str
    CHECKS: ClassVar[dict] = {"attribute": _text("attribute"),
                              "op": _choice("a text operator", TEXT_OPERATORS),
                              "value": _text("the text to look for")}


@_validated
class Matches(Node):
    """``attribute matches "regex"`` (RE2 syntax, found anywhere in the value)."""

    kind = "matches"
    attribute: str
    pattern: str
    CHECKS: ClassVar[dict] = {"attribute": _text("attribute"), "pattern": _pattern}


@_validated
class Presence(Node):
    """``attribute exists`` or ``attribute absent``."""

    kind = "presence"
    attribute: str
    op: str
    CHECKS: ClassVar[dict] = {"attribute": _text("attribute"),
                              "op": _choice("a presence test", ("exists", "absent"))}


@_validated
class DateCompare(Node):
    """``attribute before|after "2000-01-31"``."""

    kind = "date"
    attribute: str
    op: str
    date: str
    CHECKS: ClassVar[dict] = {"attribute": _text("attribute"),
                              "op": _choice("a date operator", ("before", "after")),
                              "date": _iso_date}


@_validated
class DateWindow(Node):
    """``attribute within_last 30d`` or ``attribute within_next 7d`` (relative to now)."""

    kind = "date_window"
    attribute: str
    op: str
    duration: Duration
    CHECKS: ClassVar[dict] = {"attribute": _text("attribute"),
                              "op": _choice("a date window", ("within_last", "within_next")),
                              "duration": _duration}


# --- events ---------------------------------------------------------------------------------


@_validated
class EventQuery:
    """``event("type")`` with optional ``.where(filter)``, ``.source("kind")``,
    ``.within(duration)``: the events a condition counts (not a condition itself)."""

    event: str
    where: Node | None = None
    source: str | None = None
    within: Duration | None = None
    CHECKS: ClassVar[dict] = {"event": _text("event type"), "where": _filter,
                              "source": _optional_text("source"),
                              "within": _optional_duration}


@_validated
class EventAggregate(Node):
    """``query.function(property) OP value``: ``count()`` takes no property, the others one;
    ``last`` compares with any value, the others with a number."""

    kind = "event"
    query: EventQuery
    function: str
    op: str
    value: Value
    property: str | None = None
    CHECKS: ClassVar[dict] = {"query": _query, "function": _choice("an aggregate", AGGREGATES),
                              "op": _choice("a comparison", COMPARISONS), "value": _value,
                              "property": _optional_text("property")}

    def _check(self) -> None:
        if (self.function == "count") != (self.property is None):
            raise InvalidSegmentError("count() takes no property" if self.property else
                                      f"{self.function}() needs a property name")
        if self.function != "last":
            _number(f"the value {self.function}() is compared with")(self.value)


@_validated
class DidNot(Node):
    """``did_not event(...)``: no matching event (in its window, if it has one)."""

    kind = "did_not"
    query: EventQuery
    CHECKS: ClassVar[dict] = {"query": _query}


@_validated
class EventSequence(Node):
    """``event(A) then event(B) [then ...] [within 2h]``: matching events in this order,
    the last at most ``within`` after the first."""

    kind = "sequence"
    steps: tuple[EventQuery, ...]
    within: Duration | None = None
    CHECKS: ClassVar[dict] = {"steps": _queries, "within": _optional_duration}


# --- identifiers, consent, region, other segments ---------------------------------------------


@_validated
class HasIdentifier(Node):
    """``has_identifier(email)``; a namespace (``crm``) matches its types (``crm:hubspot``)."""

    kind = "has_identifier"
    type: str
    CHECKS: ClassVar[dict] = {"type": _text("identifier type")}


@_validated
class IdentifierCount(Node):
    """``identifier_count(device) OP n``: distinct values of the type (or namespace)."""

    kind = "identifier_count"
    type: str
    op: str
    value: int
    CHECKS: ClassVar[dict] = {"type": _text("identifier type"),
                              "op": _choice("a comparison", COMPARISONS), "value": _count}


@_validated
class IdentifierFrom(Node):
    """``identifier_from(salesforce)``: an identifier was seen from that source kind."""

    kind = "identifier_from"
    source: str
    CHECKS: ClassVar[dict] = {"source": _text("source kind")}


@_validated
class Consent(Node):
    """``consent("email") = granted|denied|unknown`` (no recorded answer is unknown)."""

    kind = "consent"
    purpose: str
    state: str
    CHECKS: ClassVar[dict] = {"purpose": _text("consent purpose"),
                              "state": _choice("a consent state", CONSENT_STATES)}


@_validated
class Region(Node):
    """``region in ("eu", ...)`` or ``region not_in (...)``: the profile's home region."""

    kind = "region"
    op: str
    regions: tuple[str, ...]
    CHECKS: ClassVar[dict] = {"op": _choice("a list operator", ("in", "not_in")),
                              "regions": _texts("region")}


@_validated
class InSegment(Node):
    """``in_segment("Churned")``: a member of another segment."""

    kind = "in_segment"
    segment: str
    CHECKS: ClassVar[dict] = {"segment": _text("segment name")}


# --- boolean structure ----------------------------------------------------------------------


@_validated
class And(Node):
    """All of ``items`` (two or more)."""

    kind = "and"
    items: tuple[Node, ...]
    CHECKS: ClassVar[dict] = {"items": _nodes}


@_validated
class Or(Node):
    """Any of ``items`` (two or more)."""

    kind = "or"
    items: tuple[Node, ...]
    CHECKS: ClassVar[dict] = {"items": _nodes}


@_validated
class Not(Node):
    """``not item``."""

    kind = "not"
    item: Node
    CHECKS: ClassVar[dict] = {"item": _node}


ATTRIBUTE_NODES = (Compare, Between, InList, TextMatch, Matches, Presence, DateCompare,
                   DateWindow)
FILTER_NODES = (Compare, Between, InList, TextMatch, Matches, Presence, DateCompare,
                And, Or, Not)
"""What ``where()`` accepts: conditions on event properties (no time window of their own)."""
NODE_CLASSES: dict[str, type[Node]] = {cls.kind: cls for cls in (
    *ATTRIBUTE_NODES, EventAggregate, DidNot, EventSequence, HasIdentifier, IdentifierCount,
    IdentifierFrom, Consent, Region, InSegment, And, Or, Not)}


def walk(node: Node) -> Iterator[Node]:
    """``node`` and every condition under it (not descending into event queries' filters)."""
    yield node
    if isinstance(node, And | Or):
        for item in node.items:
            yield from walk(item)
    elif isinstance(node, Not):
        yield from walk(node.item)


# --- JSON -----------------------------------------------------------------------------------


def to_json(node: Node) -> dict[str, Any]:
    """The canonical JSON object of ``node`` (plain dicts, lists, strings and numbers)."""
    return {"kind": node.kind, **_fields_to_json(node)}


def _fields_to_json(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if value is not None:
            out[f.name] = _value_to_json(value)
    return out


def _value_to_json(value: Any) -> Any:
    if isinstance(value, Node):
        return to_json(value)
    if isinstance(value, Duration | EventQuery):
        return _fields_to_json(value)
    if isinstance(value, tuple):
        return [_value_to_json(item) for item in value]
    return value


def from_json(data: Any, path: str = "$") -> Node:
    """The node ``data`` (as :func:`to_json` writes it) describes; raises
    :class:`InvalidSegmentError` naming the JSON path of the first problem."""
    if not isinstance(data, Mapping):
        raise InvalidSegmentError(f"expected an object, not {data!r}", path)
    kind = data.get("kind")
    cls = NODE_CLASSES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise InvalidSegmentError(f"unknown kind {kind!r}; expected one of "
                                  + ", ".join(NODE_CLASSES), f"{path}.kind")
    return _build(cls, {k: v for k, v in data.items() if k != "kind"}, path)


def _build(cls: type, data: Mapping[str, Any], path: str) -> Any:
    if not isinstance(data, Mapping):
        raise InvalidSegmentError(f"expected an object, not {data!r}", path)
    names = {f.name: f for f in fields(cls)}
    for key in data:
        if key not in names:
            raise InvalidSegmentError(f"unknown field {key!r}; expected "
                                      + ", ".join(names), path)
    values = {}
    for name, f in names.items():
        at = f"{path}.{name}"
        if name not in data:
            if f.default is MISSING:
                raise InvalidSegmentError(f"missing field {name!r}", path)
            continue
        value = _field_from_json(cls, name, data[name], at)
        check = cls.CHECKS.get(name)
        if check is not None:
            try:
                value = check(value)
            except InvalidSegmentError as exc:
                raise exc.at(at) from None
        values[name] = value
    try:
        return cls(**values)
    except InvalidSegmentError as exc:
        raise exc.at(path) from None


def _field_from_json(cls: type, name: str, value: Any, path: str) -> Any:
    if value is None:
        return None
    if (cls, name) in {(And, "items"), (Or, "items")}:
        return tuple(from_json(item, f"{path}[{i}]") for i, item in enumerate(_list(value, path)))
    if (cls, name) in {(Not, "item"), (EventQuery, "where")}:
        return from_json(value, path)
    if name in ("duration", "within"):
        return _build(Duration, value, path)
    if name == "query":
        return _build(EventQuery, value, path)
    if name == "steps":
        return tuple(_build(EventQuery, item, f"{path}[{i}]")
                     for i, item in enumerate(_list(value, path)))
    if name in ("values", "regions"):
        return tuple(_list(value, path))
    return value


def _list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise InvalidSegmentError(f"expected a list, not {value!r}", path)
    return list(value)
