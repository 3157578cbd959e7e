"""Evaluate Splink's DuckDB-dialect SQL in-process, with the installed DuckDB's exact semantics.

A saved Splink model describes each comparison level by an SQL condition over ``X_l`` /
``X_r`` columns, and each blocking rule by an equi-join over ``l.X`` / ``r.X``. This module
parses such SQL once (sqlglot, dialect ``duckdb``) into a tree of Python closures, so the
real-time path can score record pairs without a database: nothing is re-parsed or
``eval``-ed per call, column keys and function implementations are bound at compile time.

Contract
--------
* ``compile_condition(sql)(left, right)`` is ``True`` exactly when DuckDB evaluates ``sql``
  to TRUE (not FALSE, not NULL) on a row whose column ``X_l`` (or ``l.X``) holds
  ``left[X]`` and ``X_r`` (or ``r.X``) holds ``right[X]``; the Splink level condition
  ``ELSE`` is always true. A key missing from a mapping reads as NULL.
* Values are ``None`` (NULL), ``str`` (VARCHAR), ``int`` / ``float``, ``bool``,
  ``datetime.date`` (DATE) or ``datetime.datetime`` (TIMESTAMP). Like a DuckDB column, a
  key holds one type across records; no implicit casts are emulated.
* SQL three-valued logic: NULL propagates through comparisons, arithmetic and functions;
  ``AND`` / ``OR`` / ``NOT`` / ``IN`` / ``BETWEEN`` follow SQL 3VL.
* Functions reproduce the installed DuckDB bit for bit
  (:mod:`idgraph.resolver.probabilistic.duckdb_functions` holds them, with the behaviours that differ
  between DuckDB releases; every compile function takes ``functions=`` and defaults to the
  installed release's). ``regexp_*`` accept an RE2 subset translated to ``re``.
* Anything else raises :class:`UnsupportedSQLError` when compiling, naming the construct and
  quoting the SQL; a construct is never evaluated approximately.

Supported SQL: ``AND OR NOT``, ``= <> != < <= > >=``, ``IS [NOT] NULL``, ``[NOT] IN`` (list),
``BETWEEN``, ``+ - *`` and unary minus on numbers, ``||``, parentheses, string / integer /
decimal / boolean / NULL literals, ``CAST`` / ``TRY_CAST`` to VARCHAR, and the functions
``jaro_winkler_similarity jaro_similarity levenshtein damerau_levenshtein regexp_extract
regexp_matches regexp_full_match substr substring lower lcase upper ucase trim ltrim rtrim
length len char_length strlen nullif coalesce abs epoch try_strptime``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Literal, NamedTuple

import sqlglot
from sqlglot import exp

from idgraph.resolver.probabilistic.duckdb_functions import (
    DuckDBFunctions,
    UnsupportedSQLError,
    installed_functions,
)

__all__ = [
    "UnsupportedSQLError",
    "blocking_key_parts",
    "blocking_keys",
    "compile_condition",
    "compile_expression",
    "compile_levels",
    "compile_value",
]

Row = Mapping[str, object]
Side = Literal["l", "r"]
Condition = Callable[[Row, Row], bool]
RowFunction = Callable[[Row], object]
_Fn = Callable[[Row, Row], object]


# RE2 (DuckDB's regex engine) subset, translated to Python ``re`` with re.ASCII.
_RE2_SPACE = "\\t\\n\\f\\r "  # RE2's \s: no \v, unlike Python's
_RE2_ESCAPES_OUTSIDE = {
    "d": "\\d", "D": "\\D", "w": "\\w", "W": "\\W", "b": "\\b", "B": "\\B",
    "s": f"[{_RE2_SPACE}]", "S": f"[^{_RE2_SPACE}]", "A": "\\A", "z": "\\Z",
    "n": "\\n", "t": "\\t", "r": "\\r", "f": "\\f", "v": "\\v",
}  # fmt: skip
_RE2_ESCAPES_IN_CLASS = {
    "d": "\\d", "D": "\\D", "w": "\\w", "W": "\\W", "s": _RE2_SPACE,
    "n": "\\n", "t": "\\t", "r": "\\r", "f": "\\f", "v": "\\v",
}  # fmt: skip
_RE2_REPEAT = re.compile(r"\{(\d+)(?:,(\d*))?\}")


def _translate_re2(pattern: str) -> re.Pattern[str]:
    """Compile an RE2 pattern to a Python regex with the same matches, or refuse it."""

    def refuse(what: str) -> UnsupportedSQLError:
        return UnsupportedSQLError(f"regular expression {what} in {pattern!r}")

    def escape(ch: str, table: dict[str, str]) -> str:
        if ch in table:
            return table[ch]
        if ch.isascii() and not ch.isalnum():  # escaped punctuation is a literal in both
            return "\\" + ch
        raise refuse(f"escape \\{ch}")

    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 >= n:
                raise refuse("trailing backslash")
            out.append(escape(pattern[i + 1], _RE2_ESCAPES_OUTSIDE))
            i += 2
        elif c == "[":
            j = i + 1
            items = ["["]
            if pattern[j : j + 1] == "^":
                items.append("^")
                j += 1
            if pattern[j : j + 1] == "]":
                items.append("\\]")
                j += 1
            while j < n and pattern[j] != "]":
                ch = pattern[j]
                if ch == "[" or pattern[j : j + 2] in ("--", "&&", "~~", "||"):
                    raise refuse(f"character-class syntax {pattern[j : j + 2]!r}")
                if ch == "\\":
                    if j + 1 >= n:
                        raise refuse("trailing backslash")
                    items.append(escape(pattern[j + 1], _RE2_ESCAPES_IN_CLASS))
                    j += 2
                else:
                    items.append(ch)
                    j += 1
            if j >= n:
                raise refuse("unterminated character class")
            out.append("".join(items) + "]")
            i = j + 1
        elif c == "(":
            if pattern.startswith("(?:", i):
                out.append("(?:")
                i += 3
            elif pattern.startswith("(?", i):
                raise refuse(f"group syntax {pattern[i : i + 3]!r}")
            else:
                out.append("(")
                i += 1
        elif c in "*+?{":
            if c == "{":
                repeat = _RE2_REPEAT.match(pattern, i)
                if repeat is None:
                    raise refuse("'{' that is not a repetition {n}, {n,} or {n,m}")
                out.append(repeat.group(0))
                i = repeat.end()
            else:
                out.append(c)
                i += 1
            if pattern[i : i + 1] == "?":  # lazy: same meaning in both engines
                out.append("?")
                i += 1
            if pattern[i : i + 1] == "+":
                raise refuse("possessive quantifier")
        elif c == "$":
            out.append("\\Z")  # RE2's $ never matches before a final newline
            i += 1
        elif c in "^.|)":
            out.append(c)
            i += 1
        else:
            out.append(re.escape(c))
            i += 1
    try:
        return re.compile("".join(out), re.ASCII)
    except re.error as error:
        raise refuse(f"that does not compile ({error})") from None


# ---------------------------------------------------------------------------------------------
# Compiler: sqlglot tree -> closures taking (left_row, right_row)

_BOOL, _STR, _NUM, _TS, _ANY, _NULL = "boolean", "string", "number", "timestamp", "any", "null"
_NOT_CONST = object()
_FLEXIBLE = frozenset({_ANY, _NULL})


class _Node(NamedTuple):
    fn: _Fn
    kind: str
    const: object = _NOT_CONST
    decimal: bool = False  # a non-integer numeric literal: exact in DuckDB, not in float


def _constant(value: object, kind: str, decimal: bool = False) -> _Node:
    return _Node(lambda left, right: value, kind, value, decimal)


def _strict1(impl: Callable[[object], object], a: _Fn) -> _Fn:
    def fn(left: Row, right: Row) -> object:
        x = a(left, right)
        return None if x is None else impl(x)

    return fn


def _strict2(impl: Callable[[object, object], object], a: _Fn, b: _Fn) -> _Fn:
    def fn(left: Row, right: Row) -> object:
        x = a(left, right)
        if x is None:
            return None
        y = b(left, right)
        if y is None:
            return None
        return impl(x, y)

    return fn


def _compare(op: Callable[[object, object], bool], a: _Node, b: _Node) -> _Fn:
    fa, fb = a.fn, b.fn
    if b.const is not _NOT_CONST:
        const = b.const
        if const is None:
            return lambda left, right: None

        def with_const(left: Row, right: Row) -> object:
            x = fa(left, right)
            return None if x is None else op(x, const)

        return with_const
    return _strict2(op, fa, fb)


def _all_of(fns: Sequence[_Fn]) -> _Fn:
    def fn(left: Row, right: Row) -> object:
        unknown = False
        for f in fns:
            v = f(left, right)
            if v is False:
                return False
            if v is None:
                unknown = True
        return None if unknown else True

    return fn


def _any_of(fns: Sequence[_Fn]) -> _Fn:
    def fn(left: Row, right: Row) -> object:
        unknown = False
        for f in fns:
            v = f(left, right)
            if v is True:
                return True
            if v is None:
                unknown = True
        return None if unknown else False

    return fn


def _negate(a: _Fn) -> _Fn:
    def fn(left: Row, right: Row) -> object:
        v = a(left, right)
        return None if v is None else not v

    return fn


_COMPARISONS: dict[type[exp.Expression], Callable[[object, object], bool]] = {
    exp.EQ: operator.eq,
    exp.NEQ: operator.ne,
    exp.LT: operator.lt,
    exp.LTE: operator.le,
    exp.GT: operator.gt,
    exp.GTE: operator.ge,
}
_ARITHMETIC: dict[type[exp.Expression], Callable[[object, object], object]] = {
    exp.Add: operator.add,
    exp.Sub: operator.sub,
    exp.Mul: operator.mul,
}
_STRING_PAIR_FUNCTIONS = frozenset({"jaro_similarity", "damerau_levenshtein"})
_TEXT_TYPES = frozenset({exp.DataType.Type.TEXT, exp.DataType.Type.VARCHAR})

# Arguments each handled node may carry; any other argument set means "unsupported".
_ALLOWED_ARGS: dict[type[exp.Expression], frozenset[str]] = {
    exp.Column: frozenset({"this", "table"}),
    exp.Literal: frozenset({"this", "is_string"}),
    exp.Boolean: frozenset({"this"}),
    exp.Null: frozenset(),
    exp.Paren: frozenset({"this"}),
    exp.And: frozenset({"this", "expression"}),
    exp.Or: frozenset({"this", "expression"}),
    exp.Not: frozenset({"this"}),
    exp.Is: frozenset({"this", "expression"}),
    exp.In: frozenset({"this", "expressions"}),
    exp.Between: frozenset({"this", "low", "high"}),
    exp.Neg: frozenset({"this"}),
    exp.DPipe: frozenset({"this", "expression", "safe"}),
    exp.JarowinklerSimilarity: frozenset({"this", "expression"}),
    exp.Levenshtein: frozenset({"this", "expression"}),
    exp.RegexpExtract: frozenset({"this", "expression", "group", "null_if_pos_overflow"}),
    exp.RegexpLike: frozenset({"this", "expression"}),
    exp.RegexpFullMatch: frozenset({"this", "expression"}),
    exp.Substring: frozenset({"this", "start", "length"}),
    exp.Lower: frozenset({"this"}),
    exp.Upper: frozenset({"this"}),
    exp.Trim: frozenset({"this", "expression", "position"}),
    exp.Length: frozenset({"this"}),
    exp.Nullif: frozenset({"this", "expression"}),
    exp.Coalesce: frozenset({"this", "expressions"}),
    exp.Abs: frozenset({"this"}),
    exp.TimeToUnix: frozenset({"this"}),
    exp.Cast: frozenset({"this", "to"}),
    exp.TryCast: frozenset({"this", "to", "safe", "requires_string"}),
    exp.Anonymous: frozenset({"this", "expressions"}),
    **{cls: frozenset({"this", "expression"}) for cls in (*_COMPARISONS, *_ARITHMETIC)},
}


def _column_side(column: exp.Column, sql: str) -> tuple[Side | None, str]:
    """(side, key) of a column: side from an ``l.``/``r.`` qualifier or an ``_l``/``_r`` suffix."""
    name, table = column.name, column.table
    if table:
        side = table.lower()
        if side not in ("l", "r"):
            raise UnsupportedSQLError(f"table qualifier {table!r} (only l and r) in {sql!r}")
        return side, name  # type: ignore[return-value]
    if name.endswith(("_l", "_r")):
        return name[-1], name[:-2]  # type: ignore[return-value]
    return None, name


class _Compiler:
    """Compiles one SQL text. ``side`` None: a pair condition; "l"/"r": one row (``left``).
    Functions are bound to ``functions`` (a DuckDB release's behaviour) at compile time."""

    def __init__(self, sql: str, side: Side | None, functions: DuckDBFunctions | None) -> None:
        self.sql = sql
        self.side = side
        self.functions = functions or installed_functions()

    # -- helpers ------------------------------------------------------------------------------

    def unsupported(self, node: exp.Expression, what: str | None = None) -> UnsupportedSQLError:
        label = what or f"{type(node).__name__} construct"
        return UnsupportedSQLError(
            f"unsupported {label}: {node.sql(dialect='duckdb')!r} (in {self.sql!r})"
        )

    def expect(self, node: _Node, kinds: frozenset[str] | set[str], at: exp.Expression) -> None:
        if node.kind not in kinds and node.kind not in _FLEXIBLE:
            raise self.unsupported(at, f"{node.kind} argument")

    def expect_boolean(self, node: _Node, at: exp.Expression) -> None:
        # A column is not a condition: DuckDB would cast it to BOOLEAN; write `x = TRUE`.
        if node.kind not in (_BOOL, _NULL):
            raise self.unsupported(at, f"{node.kind} operand of a logical operator")

    def refine(self, error: UnsupportedSQLError) -> UnsupportedSQLError:
        return UnsupportedSQLError(f"unsupported {error} (in {self.sql!r})")

    def literal(self, node: exp.Expression, kind: type, what: str) -> object:
        value = self.compile(node).const
        if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
            raise self.unsupported(node, f"non-literal {what}")
        return value

    # -- dispatch -----------------------------------------------------------------------------

    def compile(self, node: exp.Expression) -> _Node:
        allowed = _ALLOWED_ARGS.get(type(node))
        if allowed is None:
            raise self.unsupported(node)
        extra = [k for k, v in node.args.items() if k not in allowed and v not in (None, False, [])]
        if extra:
            what = f"arguments {', '.join(extra)} of {type(node).__name__}"
            raise UnsupportedSQLError(f"unsupported {what} (in {self.sql!r})")
        if isinstance(node, exp.Anonymous):
            return self.function(node)
        return getattr(self, f"on_{type(node).__name__.lower()}", self.on_operator)(node)

    def on_column(self, node: exp.Column) -> _Node:
        side, key = _column_side(node, self.sql)
        if self.side is None:
            if side is None:
                raise self.unsupported(node, "column without an _l/_r suffix or l./r. qualifier")
        elif side not in (None, self.side):
            raise ValueError(f"column {node.sql()!r} is not on side {self.side!r} in {self.sql!r}")
        if side == "r" and self.side is None:
            return _Node(lambda left, right: right.get(key), _ANY)
        return _Node(lambda left, right: left.get(key), _ANY)

    def on_literal(self, node: exp.Literal) -> _Node:
        text = node.this
        if node.is_string:
            return _constant(text, _STR)
        if text.isdigit():
            return _constant(int(text), _NUM)
        try:
            return _constant(float(text), _NUM, decimal="e" not in text.lower())
        except ValueError:
            raise self.unsupported(node, "numeric literal") from None

    def on_boolean(self, node: exp.Boolean) -> _Node:
        return _constant(bool(node.this), _BOOL)

    def on_null(self, node: exp.Null) -> _Node:
        return _constant(None, _NULL)

    def on_paren(self, node: exp.Paren) -> _Node:
        return self.compile(node.this)

    def flatten(self, node: exp.Expression, cls: type[exp.Expression]) -> list[_Fn]:
        if isinstance(node, cls):
            return self.flatten(node.this, cls) + self.flatten(node.expression, cls)
        if isinstance(node, exp.Paren) and isinstance(node.this, cls):
            return self.flatten(node.this, cls)
        child = self.compile(node)
        self.expect_boolean(child, node)
        return [child.fn]

    def on_and(self, node: exp.And) -> _Node:
        return _Node(_all_of(self.flatten(node, exp.And)), _BOOL)

    def on_or(self, node: exp.Or) -> _Node:
        return _Node(_any_of(self.flatten(node, exp.Or)), _BOOL)

    def on_not(self, node: exp.Not) -> _Node:
        child = self.compile(node.this)
        self.expect_boolean(child, node)
        return _Node(_negate(child.fn), _BOOL)

    def on_is(self, node: exp.Is) -> _Node:
        if not isinstance(node.expression, exp.Null):
            raise self.unsupported(node, "IS other than IS [NOT] NULL")
        fa = self.compile(node.this).fn
        return _Node(lambda left, right: fa(left, right) is None, _BOOL)

    def comparable(self, a: _Node, b: _Node, at: exp.Expression) -> None:
        if a.kind != b.kind and a.kind not in _FLEXIBLE and b.kind not in _FLEXIBLE:
            raise self.unsupported(at, f"comparison of {a.kind} with {b.kind}")

    def on_operator(self, node: exp.Expression) -> _Node:
        cls = type(node)
        a, b = self.compile(node.this), self.compile(node.expression)
        if cls in _COMPARISONS:
            self.comparable(a, b, node)
            if a.const is not _NOT_CONST and b.const is _NOT_CONST:
                swapped = {exp.LT: exp.GT, exp.LTE: exp.GTE, exp.GT: exp.LT, exp.GTE: exp.LTE}
                return _Node(_compare(_COMPARISONS[swapped.get(cls, cls)], b, a), _BOOL)
            return _Node(_compare(_COMPARISONS[cls], a, b), _BOOL)
        for operand in (a, b):
            self.expect(operand, {_NUM}, node)
            if operand.decimal:  # DuckDB does DECIMAL arithmetic exactly; floats would not
                raise self.unsupported(node, "arithmetic on a decimal literal")
        return _Node(_strict2(_ARITHMETIC[cls], a.fn, b.fn), _NUM)

    def on_neg(self, node: exp.Neg) -> _Node:
        child = self.compile(node.this)
        self.expect(child, {_NUM}, node)
        if child.const is not _NOT_CONST and child.const is not None:
            return _constant(-child.const, _NUM, child.decimal)  # type: ignore[operator]
        return _Node(_strict1(operator.neg, child.fn), _NUM)

    def on_dpipe(self, node: exp.DPipe) -> _Node:
        a, b = self.compile(node.this), self.compile(node.expression)
        self.expect(a, {_STR}, node)
        self.expect(b, {_STR}, node)
        return _Node(_strict2(operator.add, a.fn, b.fn), _STR)

    def on_in(self, node: exp.In) -> _Node:
        probe = self.compile(node.this)
        items = [self.compile(item) for item in node.expressions]
        for item in items:
            self.comparable(probe, item, node)
        fp = probe.fn
        if all(item.const is not _NOT_CONST for item in items):
            values = frozenset(item.const for item in items if item.const is not None)
            miss = None if any(item.const is None for item in items) else False

            def in_constants(left: Row, right: Row) -> object:
                x = fp(left, right)
                if x is None:
                    return None
                return True if x in values else miss

            return _Node(in_constants, _BOOL)
        equals = [_compare(operator.eq, probe, item) for item in items]
        return _Node(_any_of(equals), _BOOL)

    def on_between(self, node: exp.Between) -> _Node:
        probe = self.compile(node.this)
        low, high = self.compile(node.args["low"]), self.compile(node.args["high"])
        self.comparable(probe, low, node)
        self.comparable(probe, high, node)
        ge, le = _compare(operator.ge, probe, low), _compare(operator.le, probe, high)
        return _Node(_all_of([ge, le]), _BOOL)

    # -- functions ----------------------------------------------------------------------------

    def string_pair(self, node: exp.Expression, a: exp.Expression, b: exp.Expression,
                    impl: Callable[[str, str], object]) -> _Node:  # fmt: skip
        x, y = self.compile(a), self.compile(b)
        self.expect(x, {_STR}, node)
        self.expect(y, {_STR}, node)
        return _Node(_strict2(impl, x.fn, y.fn), _NUM)

    def string_unary(self, node: exp.Expression, impl: Callable[[str], object],
                     kind: str = _STR, arg: exp.Expression | None = None) -> _Node:  # fmt: skip
        child = self.compile(node.this if arg is None else arg)
        self.expect(child, {_STR}, node)
        return _Node(_strict1(impl, child.fn), kind)

    def on_jarowinklersimilarity(self, node: exp.JarowinklerSimilarity) -> _Node:
        return self.string_pair(node, node.this, node.expression, self.functions.jaro_winkler_similarity)

    def on_levenshtein(self, node: exp.Levenshtein) -> _Node:
        return self.string_pair(node, node.this, node.expression, self.functions.levenshtein)

    def regex(self, node: exp.Expression) -> re.Pattern[str]:
        pattern = self.literal(node.expression, str, "regular expression")
        try:
            return _translate_re2(pattern)  # type: ignore[arg-type]
        except UnsupportedSQLError as error:
            raise self.refine(error) from None

    def on_regexpextract(self, node: exp.RegexpExtract) -> _Node:
        pattern = self.regex(node)
        group_node = node.args.get("group")
        group = 0 if group_node is None else self.literal(group_node, int, "group")
        if group < 0:  # type: ignore[operator]
            raise self.unsupported(node, "negative group")
        if group > pattern.groups:  # DuckDB: '' for a group the pattern does not have
            return self.string_unary(node, lambda s: "")
        search = pattern.search

        def extract(s: str) -> str:
            match = search(s)
            return "" if match is None else match.group(group) or ""

        return self.string_unary(node, extract)

    def on_regexplike(self, node: exp.RegexpLike) -> _Node:
        search = self.regex(node).search
        return self.string_unary(node, lambda s: search(s) is not None, _BOOL)

    def on_regexpfullmatch(self, node: exp.RegexpFullMatch) -> _Node:
        fullmatch = self.regex(node).fullmatch
        return self.string_unary(node, lambda s: fullmatch(s) is not None, _BOOL)

    def on_substring(self, node: exp.Substring) -> _Node:
        start = self.literal(node.args["start"], int, "substring start")
        length_node = node.args.get("length")
        length = self.functions.substring_to_end
        if length_node is not None:
            length = self.literal(length_node, int, "substring length")
        substring = self.functions.substring
        return self.string_unary(node, lambda s: substring(s, start, length))  # type: ignore[arg-type]

    def on_lower(self, node: exp.Lower) -> _Node:
        return self.string_unary(node, self.functions.lower)

    def on_upper(self, node: exp.Upper) -> _Node:
        return self.string_unary(node, self.functions.upper)

    def on_trim(self, node: exp.Trim) -> _Node:
        chars = self.functions.space_separators
        if node.expression is not None:
            chars = self.literal(node.expression, str, "trim characters")  # type: ignore[assignment]
        position = (node.args.get("position") or "BOTH").upper()
        strip = {"BOTH": str.strip, "LEADING": str.lstrip, "TRAILING": str.rstrip}.get(position)
        if strip is None:
            raise self.unsupported(node, f"trim position {position}")
        return self.string_unary(node, lambda s: strip(s, chars))

    def on_length(self, node: exp.Length) -> _Node:
        return self.string_unary(node, len, _NUM)

    def on_nullif(self, node: exp.Nullif) -> _Node:
        a, b = self.compile(node.this), self.compile(node.expression)
        self.comparable(a, b, node)
        fa, fb = a.fn, b.fn

        def nullif(left: Row, right: Row) -> object:
            x = fa(left, right)
            if x is None:
                return None
            y = fb(left, right)
            return None if y is not None and x == y else x

        return _Node(nullif, a.kind)

    def on_coalesce(self, node: exp.Coalesce) -> _Node:
        items = [self.compile(node.this)] + [self.compile(e) for e in node.expressions]
        kinds = {item.kind for item in items} - _FLEXIBLE
        if len(kinds) > 1:
            raise self.unsupported(node, f"coalesce of {' and '.join(sorted(kinds))}")
        fns = [item.fn for item in items]

        def coalesce(left: Row, right: Row) -> object:
            for f in fns:
                v = f(left, right)
                if v is not None:
                    return v
            return None

        return _Node(coalesce, kinds.pop() if kinds else _ANY)

    def on_abs(self, node: exp.Abs) -> _Node:
        child = self.compile(node.this)
        self.expect(child, {_NUM}, node)
        return _Node(_strict1(abs, child.fn), _NUM)

    def on_timetounix(self, node: exp.TimeToUnix) -> _Node:  # DuckDB epoch()
        child = self.compile(node.this)
        if child.kind == _TS:
            return _Node(_strict1(self.functions.epoch_of_timestamp, child.fn), _NUM)
        self.expect(child, set(), node)
        return _Node(_strict1(self.functions.epoch_of_value, child.fn), _NUM)

    def on_cast(self, node: exp.Cast) -> _Node:
        target = node.args["to"]
        if target.this not in _TEXT_TYPES or target.expressions:
            raise self.unsupported(node, "CAST to a type other than VARCHAR")
        child = self.compile(node.this)
        self.expect(child, {_STR, _NUM, _BOOL}, node)
        return _Node(_strict1(self.functions.to_varchar, child.fn), _STR)

    on_trycast = on_cast

    def function(self, node: exp.Anonymous) -> _Node:
        name = node.name.lower()
        args = node.expressions
        arity = {"strlen": 1, "try_strptime": 2}.get(name, 2)
        if len(args) != arity:
            raise self.unsupported(node, f"{len(args)}-argument call")
        if name in _STRING_PAIR_FUNCTIONS:
            return self.string_pair(node, args[0], args[1], getattr(self.functions, name))
        if name == "strlen":
            return self.string_unary(node, self.functions.strlen, _NUM, args[0])
        if name == "try_strptime":
            try:
                parse = self.functions.strptime(self.literal(args[1], str, "format"))  # type: ignore[arg-type]
            except UnsupportedSQLError as error:
                raise self.refine(error) from None
            return self.string_unary(node, parse, _TS, args[0])
        raise self.unsupported(node, f"function {name}()")


def _is_else(sql: str) -> bool:
    return sql.strip().upper() == "ELSE"


def _parse(sql: str) -> exp.Expression:
    try:
        return sqlglot.parse_one(sql, dialect="duckdb")
    except sqlglot.errors.SqlglotError as error:
        raise UnsupportedSQLError(f"cannot parse {sql!r}: {error}") from None


def _always_true(left: Row, right: Row) -> bool:
    return True


# ---------------------------------------------------------------------------------------------
# Public API


def compile_value(
    sql: str, functions: DuckDBFunctions | None = None
) -> Callable[[Row, Row], object]:
    """Compile a pair expression to its raw SQL value: ``True``/``False``/``None`` for a
    condition (``None`` is NULL), a number or string for other expressions."""
    if _is_else(sql):
        return _always_true
    return _Compiler(sql, None, functions).compile(_parse(sql)).fn


def compile_condition(sql: str, functions: DuckDBFunctions | None = None) -> Condition:
    """Compile a Splink level condition (or ``ELSE``) to ``f(left, right) -> bool``, true
    exactly when DuckDB evaluates the condition to TRUE."""
    if _is_else(sql):
        return _always_true
    node = _Compiler(sql, None, functions).compile(_parse(sql))
    if node.kind not in (_BOOL, _NULL):
        raise UnsupportedSQLError(f"not a condition ({node.kind} value): {sql!r}")
    fn = node.fn
    return lambda left, right: fn(left, right) is True


def compile_levels(
    conditions: Sequence[str], functions: DuckDBFunctions | None = None
) -> Callable[[Row, Row], int | None]:
    """Compile a comparison's level conditions, in order, to ``f(left, right)`` returning
    the index of the first level that matches (Splink's CASE WHEN), or None if none does."""
    compiled = [compile_condition(sql, functions) for sql in conditions]
    stop = next((i for i, sql in enumerate(conditions) if _is_else(sql)), len(conditions))
    checks = list(enumerate(compiled[:stop]))

    def level(left: Row, right: Row) -> int | None:
        for index, condition in checks:
            if condition(left, right):
                return index
        return stop if stop < len(conditions) else None

    return level


def compile_expression(
    sql: str, side: Side, functions: DuckDBFunctions | None = None
) -> RowFunction:
    """Compile a one-sided expression to ``f(row) -> value`` (``None`` is NULL).

    Columns may be written ``l.x`` / ``"l"."x"`` / ``x_l`` (for side ``"l"``; likewise for
    ``"r"``) or bare ``x``; each reads key ``x`` of the row. A column of the other side is a
    ValueError."""
    if side not in ("l", "r"):
        raise ValueError(f"side must be 'l' or 'r', got {side!r}")
    return _row_function(sql, _parse(sql), side, functions)


def _row_function(
    sql: str, node: exp.Expression, side: Side, functions: DuckDBFunctions | None
) -> RowFunction:
    fn = _Compiler(sql, side, functions).compile(node).fn
    return lambda row: fn(row, row)


def _conjuncts(node: exp.Expression) -> list[exp.Expression]:
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.And):
        return _conjuncts(node.this) + _conjuncts(node.expression)
    return [node]


def _operand_side(node: exp.Expression, sql: str) -> Side | None:
    sides = {_column_side(column, sql)[0] for column in node.find_all(exp.Column)}
    return sides.pop() if len(sides) == 1 else None  # type: ignore[return-value]


def blocking_key_parts(
    rule_sql: str, functions: DuckDBFunctions | None = None
) -> list[tuple[RowFunction, RowFunction]]:
    """Split an equi-join blocking rule (``a = b AND ...``, each ``=`` between an l-side and
    an r-side expression) into ``(key_of_left_row, key_of_right_row)`` per equality.

    DuckDB's join holds for a pair exactly when, for every part, both values are non-NULL
    and equal (see :func:`blocking_keys`). Any other rule shape raises ValueError."""
    parts: list[tuple[RowFunction, RowFunction]] = []
    for conjunct in _conjuncts(_parse(rule_sql)):
        if conjunct.key != "eq":
            raise ValueError(
                f"blocking rule is not a conjunction of equalities: {conjunct.sql()!r} "
                f"in {rule_sql!r}"
            )
        a, b = conjunct.this, conjunct.expression
        sides = (_operand_side(a, rule_sql), _operand_side(b, rule_sql))
        if sides == ("r", "l"):
            a, b = b, a
        elif sides != ("l", "r"):
            raise ValueError(
                f"blocking rule equality {conjunct.sql()!r} does not compare an l-side "
                f"with an r-side expression in {rule_sql!r}"
            )
        parts.append((_row_function(rule_sql, a, "l", functions),
                      _row_function(rule_sql, b, "r", functions)))
    return parts


def is_symmetric_rule(rule_sql: str) -> bool:
    """True when every equality of the blocking rule applies the same expression to both
    sides (``l.x = r.x``, ``substr(l.x,1,1) = substr(r.x,1,1)``): one key per record then
    serves as both the left and the right key."""

    def unqualified(node: exp.Expression) -> str:
        node = node.copy()
        for column in node.find_all(exp.Column):
            column.set("table", None)
        return node.sql(dialect="duckdb")

    for conjunct in _conjuncts(_parse(rule_sql)):
        if conjunct.key != "eq" or unqualified(conjunct.this) != unqualified(conjunct.expression):
            return False
    return True


def blocking_keys(
    rule_sql: str, functions: DuckDBFunctions | None = None
) -> tuple[Callable[[Row], tuple | None], ...]:
    """``(key_left, key_right)`` for a blocking rule: a pair passes the rule exactly when
    ``key_left(left) == key_right(right)`` and neither is None (a NULL part never joins)."""
    parts = blocking_key_parts(rule_sql, functions)

    def key_function(fns: list[RowFunction]) -> Callable[[Row], tuple | None]:
        def key(row: Row) -> tuple | None:
            values = tuple([fn(row) for fn in fns])
            return None if any(v is None for v in values) else values

        return key

    return key_function([p[0] for p in parts]), key_function([p[1] for p in parts])
