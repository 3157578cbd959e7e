"""The segment language's text form: :func:`parse` text into a syntax tree, :func:`to_text`
a tree back into its canonical text.

The grammar (:data:`GRAMMAR`) is parsed by lark's LALR parser; nothing here matches the
language with regular expressions. Keywords are lower case and reserved (an attribute
with a reserved or unusual name is written ``attribute("region")``); strings are in double
quotes with JSON escapes (``\\"``, ``\\\\``, ``\\n``, ``\\u00e9``); ``#`` starts a comment
that runs to the end of the line; line breaks and spaces are free.

Contracts:

* ``parse(to_text(node)) == node`` for every tree, and :func:`to_text` is canonical: the
  text of a parsed tree is the same whatever spacing, comments or sugar the input used
  (a bare ``event("x")`` is ``event("x").count() >= 1``).
* Chains of one operator parse flat (``a and b and c`` is one :class:`And` of three);
  parentheses the precedence needs (``not`` > ``and`` > ``or``) or that group a chain
  inside another of the same operator are kept: ``(a and b) and c`` is an ``And`` holding
  an ``And``, and prints with its parentheses.
* Invalid text raises :class:`SegmentSyntaxError` with the line and column (from 1) and
  what was expected in words; a value the language refuses (a window over 400 days, a
  regular expression that does not compile) is reported at the construct it belongs to.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError

from idgraph.segments.ast import (
    And,
    Between,
    Compare,
    Consent,
    DateCompare,
    DateWindow,
    DidNot,
    Duration,
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
)
from idgraph.segments.errors import InvalidSegmentError, SegmentSyntaxError

GRAMMAR = r"""
?start: expr

?expr: or_expr
?or_expr: and_expr ("or" and_expr)*
?and_expr: not_expr ("and" not_expr)*
?not_expr: "not" not_expr                          -> not_
         | atom
?atom: "(" expr ")"
     | condition

?condition: attribute COMP value                   -> compare
    | attribute "between" value "and" value        -> between
    | attribute "in" values                        -> in_list
    | attribute "not_in" values                    -> not_in_list
    | attribute "contains" STRING                  -> contains
    | attribute "starts_with" STRING               -> starts_with
    | attribute "ends_with" STRING                 -> ends_with
    | attribute "matches" STRING                   -> matches
    | attribute "exists"                           -> exists
    | attribute "absent"                           -> absent
    | attribute "before" STRING                    -> before
    | attribute "after" STRING                     -> after
    | attribute "within_last" DURATION             -> within_last
    | attribute "within_next" DURATION             -> within_next
    | event_query aggregate COMP value             -> event_aggregate
    | event_query                                  -> event_exists
    | "did_not" event_query                        -> did_not
    | event_query ("then" event_query)+ ["within" DURATION] -> sequence
    | "has_identifier" "(" word ")"                -> has_identifier
    | "identifier_count" "(" word ")" COMP NUMBER  -> identifier_count
    | "identifier_from" "(" word ")"               -> identifier_from
    | "consent" "(" word ")" COMP consent_state    -> consent
    | "region" "in" strings                        -> region_in
    | "region" "not_in" strings                    -> region_not_in
    | "in_segment" "(" STRING ")"                  -> in_segment

event_query: "event" "(" STRING ")" modifier*
?modifier: ".where" "(" expr ")"                   -> where
    | ".source" "(" STRING ")"                     -> source
    | ".within" "(" DURATION ")"                   -> within

aggregate: ".count" "(" ")"                        -> count
    | ".sum" "(" word ")"                          -> sum
    | ".min" "(" word ")"                          -> min
    | ".max" "(" word ")"                          -> max
    | ".last" "(" word ")"                         -> last
    | ".distinct" "(" word ")"                     -> distinct

consent_state: "granted"                           -> granted
    | "denied"                                     -> denied
    | "unknown"                                    -> unknown

attribute: NAME | "attribute" "(" STRING ")"
word: NAME | STRING
values: "(" value ("," value)* ")"
strings: "(" STRING ("," STRING)* ")"
?value: STRING | NUMBER

COMP: "!=" | "<=" | ">=" | "=" | "<" | ">"
NAME: /[A-Za-z_][A-Za-z0-9_]*/
STRING: /"(?:[^"\\\n]|\\.)*"/
NUMBER: /-?(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][+-]?\d+)?/
DURATION: /\d+[mhd](?![A-Za-z0-9_])/
COMMENT: /#[^\n]*/

%import common.WS
%ignore WS
%ignore COMMENT
"""

_WORDS = {
    "STRING": "a string in double quotes",
    "NUMBER": "a number",
    "DURATION": "a duration such as 30d, 12h or 15m",
    "NAME": "a name (attribute, property or identifier type)",
    "COMP": "a comparison (= != < <= > >=)",
    "$END": "the end of the definition",
}


@cache
def _parser() -> Lark:
    return Lark(GRAMMAR, parser="lalr", propagate_positions=True, maybe_placeholders=True)


@cache
def keywords() -> frozenset[str]:
    """The reserved words (a bare attribute or property cannot have one of these names)."""
    names = set()
    for terminal in _parser().terminals:
        text = terminal.pattern.value
        if terminal.pattern.type == "str" and _is_name(text):
            names.add(text)
    return frozenset(names | {"attribute"})


def _is_name(text: str) -> bool:
    return (bool(text) and (text[0].isascii() and (text[0].isalpha() or text[0] == "_"))
            and all(c.isascii() and (c.isalnum() or c == "_") for c in text))


# --- parsing --------------------------------------------------------------------------------


def parse(text: str) -> Node:
    """The syntax tree of segment definition ``text``; raises :class:`SegmentSyntaxError`."""
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text) from None
    try:
        return _ToAst().transform(tree)
    except VisitError as exc:
        located = exc.orig_exc
        if isinstance(located, _Located):
            raise SegmentSyntaxError(located.problem, located.line, located.column,
                                     context=_context(text, located.line, located.column)
                                     ) from None
        raise


def _syntax_error(exc: UnexpectedInput, text: str) -> SegmentSyntaxError:
    line, column = getattr(exc, "line", -1), getattr(exc, "column", -1)
    if isinstance(exc, UnexpectedToken) and exc.token.type == "$END" or line < 1:
        line = text.count("\n") + 1
        column = len(text) - (text.rfind("\n") + 1) + 1
        problem = "the definition ends too early"
    elif isinstance(exc, UnexpectedToken):
        problem = f"unexpected {_describe(exc.token)}"
    elif isinstance(exc, UnexpectedCharacters):
        problem = f"unexpected character {text[exc.pos_in_stream]!r}"
    else:
        problem = "invalid segment definition"
    if isinstance(exc, UnexpectedToken):  # accepts: what the parser can take here, exactly
        expected = exc.accepts or exc.expected
    else:
        expected = getattr(exc, "allowed", None) or ()
    return SegmentSyntaxError(problem, line, column, _readable(expected),
                              _context(text, line, column))


def _describe(token: Token) -> str:
    if token.type in ("STRING", "NUMBER", "DURATION", "NAME"):
        return f"{token.type.lower()} {token.value}"
    return repr(token.value)


def _readable(names: Any) -> list[str]:
    patterns = {t.name: t.pattern for t in _parser().terminals}
    words = set()
    for name in names:
        pattern = patterns.get(name)
        if name in _WORDS:
            words.add(_WORDS[name])
        elif pattern is not None and pattern.type == "str":
            words.add(f'"{pattern.value}"')
        else:
            words.add(name.lower())
    return sorted(words, key=lambda w: (w.startswith('"'), w))


def _context(text: str, line: int, column: int) -> str:
    lines = text.split("\n")
    if not 1 <= line <= len(lines):
        return ""
    return f"  {lines[line - 1]}\n  {' ' * (column - 1)}^"


class _Located(Exception):
    """A problem at a position, raised inside the transformer (lark wraps it)."""

    def __init__(self, problem: str, line: int, column: int) -> None:
        super().__init__(problem)
        self.problem, self.line, self.column = problem, line, column


def _build(meta: Any, cls: type, *args: Any) -> Any:
    try:
        return cls(*args)
    except InvalidSegmentError as exc:
        raise _Located(exc.problem, meta.line, meta.column) from None


def _comparison(token: Token, allowed: tuple[str, ...], what: str) -> str:
    if token.value not in allowed:
        raise _Located(f"{what} is compared with {' or '.join(allowed)}, not {token.value}",
                       token.line, token.column)
    return token.value


@v_args(meta=True)
class _ToAst(Transformer):
    """lark's tree -> syntax-tree nodes (one method per grammar alias)."""

    # tokens
    @v_args(meta=False)
    def STRING(self, token: Token) -> str:
        try:
            return json.loads(token.value)
        except ValueError as exc:
            raise _Located(f"invalid string {token.value}: {exc.msg}", token.line,
                           token.column) from None

    @v_args(meta=False)
    def NUMBER(self, token: Token) -> int | float:
        text = token.value
        return float(text) if any(c in text for c in ".eE") else int(text)

    @v_args(meta=False)
    def DURATION(self, token: Token) -> Any:
        try:
            return Duration(int(token.value[:-1]), token.value[-1])
        except InvalidSegmentError as exc:
            raise _Located(exc.problem, token.line, token.column) from None

    # boolean structure
    def or_expr(self, meta: Any, items: list) -> Node:
        return _build(meta, Or, tuple(items))

    def and_expr(self, meta: Any, items: list) -> Node:
        return _build(meta, And, tuple(items))

    def not_(self, meta: Any, items: list) -> Node:
        return _build(meta, Not, items[0])

    # attributes
    def attribute(self, meta: Any, items: list) -> str:
        return str(items[0])

    def word(self, meta: Any, items: list) -> str:
        return str(items[0])

    def values(self, meta: Any, items: list) -> tuple[Value, ...]:
        return tuple(items)

    def strings(self, meta: Any, items: list) -> tuple[str, ...]:
        return tuple(items)

    def compare(self, meta: Any, items: list) -> Node:
        return _build(meta, Compare, items[0], items[1].value, items[2])

    def between(self, meta: Any, items: list) -> Node:
        return _build(meta, Between, *items)

    def in_list(self, meta: Any, items: list) -> Node:
        return _build(meta, InList, items[0], "in", items[1])

    def not_in_list(self, meta: Any, items: list) -> Node:
        return _build(meta, InList, items[0], "not_in", items[1])

    def contains(self, meta: Any, items: list) -> Node:
        return _build(meta, TextMatch, items[0], "contains", items[1])

    def starts_with(self, meta: Any, items: list) -> Node:
        return _build(meta, TextMatch, items[0], "starts_with", items[1])

    def ends_with(self, meta: Any, items: list) -> Node:
        return _build(meta, TextMatch, items[0], "ends_with", items[1])

    def matches(self, meta: Any, items: list) -> Node:
        return _build(meta, Matches, items[0], items[1])

    def exists(self, meta: Any, items: list) -> Node:
        return _build(meta, Presence, items[0], "exists")

    def absent(self, meta: Any, items: list) -> Node:
        return _build(meta, Presence, items[0], "absent")

    def before(self, meta: Any, items: list) -> Node:
        return _build(meta, DateCompare, items[0], "before", items[1])

    def after(self, meta: Any, items: list) -> Node:
        return _build(meta, DateCompare, items[0], "after", items[1])

    def within_last(self, meta: Any, items: list) -> Node:
        return _build(meta, DateWindow, items[0], "within_last", items[1])

    def within_next(self, meta: Any, items: list) -> Node:
        return _build(meta, DateWindow, items[0], "within_next", items[1])

    # events
    def event_query(self, meta: Any, items: list) -> EventQuery:
        fields: dict[str, Any] = {}
        for name, value, line, column in items[1:]:
            if name in fields:
                raise _Located(f"event(...) has .{name}(...) twice", line, column)
            fields[name] = value
        return _build(meta, EventQuery, items[0], fields.get("where"), fields.get("source"),
                      fields.get("within"))

    def where(self, meta: Any, items: list) -> tuple:
        return ("where", items[0], meta.line, meta.column)

    def source(self, meta: Any, items: list) -> tuple:
        return ("source", items[0], meta.line, meta.column)

    def within(self, meta: Any, items: list) -> tuple:
        return ("within", items[0], meta.line, meta.column)

    def count(self, meta: Any, items: list) -> tuple:
        return ("count", None)

    def sum(self, meta: Any, items: list) -> tuple:
        return ("sum", items[0])

    def min(self, meta: Any, items: list) -> tuple:
        return ("min", items[0])

    def max(self, meta: Any, items: list) -> tuple:
        return ("max", items[0])

    def last(self, meta: Any, items: list) -> tuple:
        return ("last", items[0])

    def distinct(self, meta: Any, items: list) -> tuple:
        return ("distinct", items[0])

    def event_aggregate(self, meta: Any, items: list) -> Node:
        query, (function, prop), op, value = items
        return _build(meta, EventAggregate, query, function, op.value, value, prop)

    def event_exists(self, meta: Any, items: list) -> Node:
        return _build(meta, EventAggregate, items[0], "count", ">=", 1, None)

    def did_not(self, meta: Any, items: list) -> Node:
        return _build(meta, DidNot, items[0])

    def sequence(self, meta: Any, items: list) -> Node:
        return _build(meta, EventSequence, tuple(items[:-1]), items[-1])

    # identifiers, consent, region, segments
    def has_identifier(self, meta: Any, items: list) -> Node:
        return _build(meta, HasIdentifier, items[0])

    def identifier_count(self, meta: Any, items: list) -> Node:
        return _build(meta, IdentifierCount, items[0], items[1].value, items[2])

    def identifier_from(self, meta: Any, items: list) -> Node:
        return _build(meta, IdentifierFrom, items[0])

    def granted(self, meta: Any, items: list) -> str:
        return "granted"

    def denied(self, meta: Any, items: list) -> str:
        return "denied"

    def unknown(self, meta: Any, items: list) -> str:
        return "unknown"

    def consent(self, meta: Any, items: list) -> Node:
        _comparison(items[1], ("=",), "consent(...)")
        return _build(meta, Consent, items[0], items[2])

    def region_in(self, meta: Any, items: list) -> Node:
        return _build(meta, Region, "in", items[0])

    def region_not_in(self, meta: Any, items: list) -> Node:
        return _build(meta, Region, "not_in", items[0])

    def in_segment(self, meta: Any, items: list) -> Node:
        return _build(meta, InSegment, items[0])


# --- printing -------------------------------------------------------------------------------

_OR, _AND, _NOT, _ATOM = 1, 2, 3, 4


def to_text(node: Node) -> str:
    """The canonical text of ``node`` (one line; :func:`parse` gives ``node`` back)."""
    return _print(node, 0)


def _print(node: Node, least: int) -> str:
    if isinstance(node, Or):
        text, level = " or ".join(_print(item, _AND) for item in node.items), _OR
    elif isinstance(node, And):
        text, level = " and ".join(_print(item, _NOT) for item in node.items), _AND
    elif isinstance(node, Not):
        text, level = "not " + _print(node.item, _NOT), _NOT
    else:
        text, level = _condition(node), _ATOM
    return f"({text})" if level < least else text


def _condition(node: Node) -> str:
    match node:
        case Compare(attribute, op, value):
            return f"{_attribute(attribute)} {op} {_value(value)}"
        case Between(attribute, low, high):
            return f"{_attribute(attribute)} between {_value(low)} and {_value(high)}"
        case InList(attribute, op, values):
            return f"{_attribute(attribute)} {op} {_list(values)}"
        case TextMatch(attribute, op, value):
            return f"{_attribute(attribute)} {op} {_string(value)}"
        case Matches(attribute, pattern):
            return f"{_attribute(attribute)} matches {_string(pattern)}"
        case Presence(attribute, op):
            return f"{_attribute(attribute)} {op}"
        case DateCompare(attribute, op, date):
            return f"{_attribute(attribute)} {op} {_string(date)}"
        case DateWindow(attribute, op, duration):
            return f"{_attribute(attribute)} {op} {_duration(duration)}"
        case EventAggregate(query, function, op, value, prop):
            argument = "" if prop is None else _word(prop)
            return f"{_query(query)}.{function}({argument}) {op} {_value(value)}"
        case DidNot(query):
            return f"did_not {_query(query)}"
        case EventSequence(steps, within):
            text = " then ".join(_query(step) for step in steps)
            return text if within is None else f"{text} within {_duration(within)}"
        case HasIdentifier(kind):
            return f"has_identifier({_word(kind)})"
        case IdentifierCount(kind, op, value):
            return f"identifier_count({_word(kind)}) {op} {value}"
        case IdentifierFrom(source):
            return f"identifier_from({_word(source)})"
        case Consent(purpose, state):
            return f"consent({_string(purpose)}) = {state}"
        case Region(op, regions):
            return f"region {op} {_list(regions)}"
        case InSegment(segment):
            return f"in_segment({_string(segment)})"
    raise TypeError(f"not a segment condition: {node!r}")


def _query(query: EventQuery) -> str:
    text = f"event({_string(query.event)})"
    if query.where is not None:
        text += f".where({_print(query.where, 0)})"
    if query.source is not None:
        text += f".source({_string(query.source)})"
    if query.within is not None:
        text += f".within({_duration(query.within)})"
    return text


def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _value(value: Value) -> str:
    if isinstance(value, str):
        return _string(value)
    return repr(value) if isinstance(value, float) else str(value)


def _list(values: tuple[Value, ...]) -> str:
    return "(" + ", ".join(_value(value) for value in values) + ")"


def _duration(duration: Duration) -> str:
    return f"{duration.amount}{duration.unit}"


def _word(text: str) -> str:
    return text if _is_name(text) and text not in keywords() else _string(text)


def _attribute(name: str) -> str:
    return name if _is_name(name) and name not in keywords() else f"attribute({_string(name)})"
