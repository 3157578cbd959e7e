"""DuckDB's scalar functions, reproduced in Python, for the DuckDB release that is installed.

:mod:`idgraph.resolver.probabilistic.sql_eval` compiles Splink's SQL into closures that call these
functions; Splink itself (training, batch prediction) runs the same SQL in DuckDB. The two
must agree bit for bit, or the real-time scorer silently gives other match weights than
Splink. DuckDB releases differ where this matters:

=====================  ==========================  =======================================
behaviour              DuckDB 2.0.0                DuckDB 2.0.1
=====================  ==========================  =======================================
``text_unit``          ``jaro_similarity``,        the same four functions compare
                       ``jaro_winkler_similarity``, Unicode code points (``levenshtein('é',
                       ``levenshtein``,            'e')`` is 1)
                       ``damerau_levenshtein``
                       compare UTF-8 bytes
                       (``levenshtein('é','e')``
                       is 2)
``date_specials``      ``try_strptime`` reads      ``'epoch'`` is 1970-01-01, ``'infinity'``
                       ``'epoch'``, ``'infinity'`` and ``'-infinity'`` are the infinite
                       and ``'-infinity'`` as      timestamps (``epoch()`` of them is NULL;
                       1900-01-01                  they compare above / below every date)
=====================  ==========================  =======================================

Contract
--------
* :func:`detect_behaviour` asks the installed DuckDB (one query) which behaviour it has, and
  raises :class:`DuckDBParityError` when an answer is neither of the known ones: an
  unknown release is refused, never approximated.
* :class:`DuckDBFunctions` binds the implementations to one :class:`DuckDBBehaviour`;
  :func:`installed_functions` is the set for the installed DuckDB (detected once per
  process).
* :func:`check_parity` evaluates a fixed probe set (non-ASCII text, date specials) through
  the compiled SQL path and through the installed DuckDB, and raises
  :class:`DuckDBParityError` naming the function, the probe and the DuckDB version on the
  first disagreement. The real-time scorer runs it when it loads a model.
* Behaviour-independent semantics: the edit distances give 0.0 when either string is
  empty; Jaro-Winkler uses prefix weight 0.1 over at most 4 units, boosts only above 0.7
  and rounds its final step as one fused multiply-add, as the DuckDB 2.0 builds do;
  ``lower`` / ``upper`` map code point by code point; ``trim`` strips Unicode space
  separators (Zs); ``substring`` follows DuckDB's code-point rules for zero and negative
  offsets and lengths; ``try_strptime`` follows DuckDB's parser (1-4 digit ``%Y``,
  whitespace runs).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache, lru_cache
from typing import Literal

from rapidfuzz.distance import DamerauLevenshtein, Jaro, Levenshtein

from idgraph.core.errors import ConfigError

__all__ = [
    "DUCKDB_2_0_0",
    "DUCKDB_2_0_1",
    "DuckDBBehaviour",
    "DuckDBFunctions",
    "DuckDBParityError",
    "UnsupportedSQLError",
    "detect_behaviour",
    "installed_functions",
]


class UnsupportedSQLError(ValueError):
    """The SQL uses a construct this evaluator does not implement exactly."""


class DuckDBParityError(ConfigError):
    """The Python functions would score differently from the installed DuckDB (and so from
    Splink): real-time scoring is refused. The message names the function, the probe and
    the DuckDB version."""

# ---------------------------------------------------------------------------------------------
# Behaviour-independent primitives


_WS = " \t\n\v\f\r"  # DuckDB's StringUtil::CharacterIsSpace
# Unicode general category Zs: what DuckDB's trim/ltrim/rtrim strip by default.
_ZS = "\u0020\u00a0\u1680\u202f\u205f\u3000" + "".join(map(chr, range(0x2000, 0x200B)))
_SUBSTRING_TO_END = 4294967295  # length DuckDB uses for two-argument substring
_PREFIX_RATIOS = tuple((p * 0.1).as_integer_ratio() for p in range(5))


@lru_cache(maxsize=4096)
def _lower_char(c: str) -> str:
    low = c.lower()
    if len(low) == 1:
        return low
    return "i" if c == "\u0130" else c


@lru_cache(maxsize=4096)
def _upper_char(c: str) -> str:
    up = c.upper()
    if len(up) == 1:
        return up
    if c == "\u00df":
        return "\u1e9e"
    title = c.title()
    return title if len(title) == 1 else c


def _lower(s: str) -> str:
    """Per-code-point simple lowercase (no final sigma, no expansion), as DuckDB."""
    low = s.lower()
    if len(low) == len(s) and "\u03a3" not in s:
        return low
    return "".join([_lower_char(c) for c in s])


def _upper(s: str) -> str:
    up = s.upper()
    if len(up) == len(s):
        return up
    return "".join([_upper_char(c) for c in s])


def _substring(s: str, offset: int, length: int) -> str:
    """DuckDB's SubstringUnicode, over code points."""
    if length == 0:
        return ""
    n = len(s)
    offset -= 1
    if offset < -1:  # negative SQL offset: counted from the end
        start, end = (-offset - length, -offset) if length < 0 else (-offset, -offset - length)
        if end <= 0:
            stop = n
        elif end <= n:
            stop = n - end + 1
        else:
            return ""
        return s[max(0, n - start + 1) : stop]
    if length < 0:
        start, end = max(0, offset + length), offset
    else:
        start, end = max(0, offset), offset + length
    if start >= n or end <= start:
        return ""
    return s[start:end]


def _utf8_length(s: str) -> int:
    return len(s.encode())


_MICROS = 1_000_000
_UNIX_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_UNIX_EPOCH = datetime(1970, 1, 1)
_ONE_MICRO = timedelta(microseconds=1)
_DAYS_PER_400_YEARS = 146097
_MICROS_1900 = (date(1900, 1, 1).toordinal() - _UNIX_EPOCH_ORDINAL) * 86400 * _MICROS
# DuckDB's timestamp_t::infinity() / ninfinity(): the int64 extremes, so they compare above
# and below every finite timestamp, and equal themselves.
TIMESTAMP_INFINITY = 2**63 - 1
TIMESTAMP_NINFINITY = -(2**63 - 1)
_SPECIALS_AS_1900 = {"epoch": _MICROS_1900, "infinity": _MICROS_1900, "-infinity": _MICROS_1900}
_SPECIALS_AS_VALUES = {"epoch": 0, "infinity": TIMESTAMP_INFINITY,
                       "-infinity": TIMESTAMP_NINFINITY}  # fmt: skip


def _epoch_days(year: int, month: int, day: int) -> int | None:
    """Days since 1970-01-01 in the proleptic Gregorian calendar (year 0 allowed)."""
    shift = 0
    if year == 0:  # year 0 has year 400's calendar
        year, shift = 400, -_DAYS_PER_400_YEARS
    try:
        return date(year, month, day).toordinal() - _UNIX_EPOCH_ORDINAL + shift
    except ValueError:
        return None


# specifier -> (field index: year, month, day, hour, minute, second; max digits; range)
_STRPTIME_SPECIFIERS: dict[str, tuple[int, int, int, int]] = {
    "Y": (0, 4, 0, 9999),
    "y": (6, 2, 0, 99),  # two-digit year, stored as year below
    "m": (1, 2, 1, 12),
    "d": (2, 2, 1, 31),
    "H": (3, 2, 0, 23),
    "M": (4, 2, 0, 59),
    "S": (5, 2, 0, 59),
}
_PADLESS = frozenset("ymdHMS")  # %-m etc.: same width in DuckDB's parser


@lru_cache(maxsize=64)  # one parser (and one parse cache) per format, shared by all levels
def _compile_strptime(fmt: str, specials: tuple[tuple[str, int], ...]) -> Callable[[str], int | None]:
    """DuckDB ``try_strptime(value, fmt)`` as microseconds since the epoch, or None.

    ``specials`` maps the lower-case special words DuckDB accepts whatever the format to the
    timestamp it gives them (a :class:`DuckDBBehaviour` difference)."""
    special_values = dict(specials)
    if not fmt.isascii():
        raise UnsupportedSQLError(f"non-ASCII try_strptime format {fmt!r}")
    ws = "[ \\t\\n\\v\\f\\r]"
    parts = [ws + "*+"]
    fields: list[tuple[int, int, int]] = []
    i = 0
    while i < len(fmt):
        c = fmt[i]
        if c == "%":
            spec = fmt[i + 1 : i + 2]
            i += 2
            if spec == "%":
                parts.append("%")
                continue
            if spec == "-" and fmt[i : i + 1] in _PADLESS:
                spec = fmt[i]
                i += 1
            if spec not in _STRPTIME_SPECIFIERS:
                raise UnsupportedSQLError(f"try_strptime specifier %{spec} in {fmt!r}")
            index, width, low, high = _STRPTIME_SPECIFIERS[spec]
            parts.append(f"([0-9]{{1,{width}}}+)")  # greedy, no backtracking, as DuckDB
            fields.append((index, low, high))
        elif c in _WS:
            while i < len(fmt) and fmt[i] in _WS:
                i += 1
            parts.append(ws + "++")
        else:
            parts.append(re.escape(c))
            i += 1
    parts.append(ws + "*+")
    pattern = re.compile("".join(parts))

    @lru_cache(maxsize=8192)
    def parse(value: str) -> int | None:
        if not isinstance(value, str):
            raise TypeError(f"try_strptime() expects a string, got {type(value).__name__}")
        stripped = value.strip(_WS)
        if stripped.isascii():
            special = special_values.get(stripped.lower())
            if special is not None:
                return special
        match = pattern.fullmatch(value)
        if match is None:
            return None
        parsed = [1900, 1, 1, 0, 0, 0]
        for (index, low, high), digits in zip(fields, match.groups()):
            number = int(digits)
            if not low <= number <= high:
                return None
            if index == 6:
                index, number = 0, number + (1900 if number >= 69 else 2000)
            parsed[index] = number
        year, month, day, hour, minute, second = parsed
        days = _epoch_days(year, month, day)
        if days is None:
            return None
        return (((days * 24 + hour) * 60 + minute) * 60 + second) * _MICROS

    return parse


def _epoch_of_timestamp(micros: int) -> float | None:
    if micros in (TIMESTAMP_INFINITY, TIMESTAMP_NINFINITY):
        return None  # epoch() of an infinite timestamp is NULL
    return float(micros) / 1e6


def _epoch_of_value(value: object) -> float:
    """DuckDB ``epoch()`` of a DATE or TIMESTAMP column value."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return float((value - _UNIX_EPOCH) // _ONE_MICRO) / 1e6
    if isinstance(value, date):
        return float((value.toordinal() - _UNIX_EPOCH_ORDINAL) * 86400)
    raise TypeError(f"epoch() expects a date or datetime, got {type(value).__name__}")


def _to_varchar(value: object) -> str:
    """``CAST(value AS VARCHAR)`` for the value types whose text DuckDB and Python share."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None and value.microsecond == 0:
            return value.isoformat(" ")
    elif isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"CAST to VARCHAR is not supported for {type(value).__name__} values")




# ---------------------------------------------------------------------------------------------
# Behaviours that differ between DuckDB releases


TextUnit = Literal["utf8_byte", "code_point"]
DateSpecials = Literal["as_1900", "as_values"]


@dataclass(frozen=True, slots=True)
class DuckDBBehaviour:
    """What a DuckDB release does where releases differ (see the module docstring)."""

    text_unit: TextUnit
    """What ``jaro_similarity``, ``jaro_winkler_similarity``, ``levenshtein`` and
    ``damerau_levenshtein`` compare: UTF-8 bytes or Unicode code points."""
    date_specials: DateSpecials
    """What ``try_strptime`` makes of ``'epoch'`` / ``'infinity'`` / ``'-infinity'``:
    1900-01-01 for all three, or their own values."""


DUCKDB_2_0_0 = DuckDBBehaviour(text_unit="utf8_byte", date_specials="as_1900")
DUCKDB_2_0_1 = DuckDBBehaviour(text_unit="code_point", date_specials="as_values")


class DuckDBFunctions:
    """DuckDB's scalar functions for one :class:`DuckDBBehaviour` (immutable, thread-safe).

    Every method takes non-NULL arguments (the compiler handles NULL) and returns what
    DuckDB returns for them; timestamps are microseconds since the epoch (``int``), with
    :data:`TIMESTAMP_INFINITY` / :data:`TIMESTAMP_NINFINITY` for the infinite ones."""

    lower = staticmethod(_lower)
    upper = staticmethod(_upper)
    substring = staticmethod(_substring)
    strlen = staticmethod(_utf8_length)
    epoch_of_timestamp = staticmethod(_epoch_of_timestamp)
    epoch_of_value = staticmethod(_epoch_of_value)
    to_varchar = staticmethod(_to_varchar)
    space_separators = _ZS
    substring_to_end = _SUBSTRING_TO_END

    def __init__(self, behaviour: DuckDBBehaviour, version: str = "") -> None:
        self.behaviour = behaviour
        self.version = version
        """The DuckDB version the behaviour was detected on ("" when chosen by hand)."""
        self._units = _utf8_pair if behaviour.text_unit == "utf8_byte" else _code_points
        self._specials = tuple(
            (_SPECIALS_AS_1900 if behaviour.date_specials == "as_1900" else _SPECIALS_AS_VALUES)
            .items()
        )

    def __repr__(self) -> str:
        return f"DuckDBFunctions({self.behaviour!r}, version={self.version!r})"

    def jaro_similarity(self, a: str, b: str) -> float:
        if not a or not b:
            return 0.0
        return Jaro.similarity(*self._units(a, b))

    def jaro_winkler_similarity(self, a: str, b: str) -> float:
        if not a or not b:
            return 0.0
        x, y = self._units(a, b)
        sim = Jaro.similarity(x, y)
        if sim > 0.7:
            prefix, most = 0, min(4, len(x), len(y))
            while prefix < most and x[prefix] == y[prefix]:
                prefix += 1
            if prefix:
                # sim + prefix*0.1 * (1 - sim), rounded once (a fused multiply-add), exactly.
                # 1 - sim is exact for sim >= 0.5, so it shares sim's power-of-two denominator.
                pn, pd = _PREFIX_RATIOS[prefix]
                sn, sd = sim.as_integer_ratio()
                sim = (sn * pd + pn * (sd - sn)) / (pd * sd)
        return sim

    def levenshtein(self, a: str, b: str) -> int:
        return Levenshtein.distance(*self._units(a, b))

    def damerau_levenshtein(self, a: str, b: str) -> int:
        return DamerauLevenshtein.distance(*self._units(a, b))

    def strptime(self, fmt: str) -> Callable[[str], int | None]:
        """The parser of ``try_strptime(value, fmt)`` (raises UnsupportedSQLError for a
        format this module does not reproduce)."""
        return _compile_strptime(fmt, self._specials)


def _utf8_pair(a: str, b: str) -> tuple[str | bytes, str | bytes]:
    """UTF-8 bytes of both strings; ASCII ``str`` is the same sequence, and cheaper."""
    if a.isascii() and b.isascii():
        return a, b
    return a.encode(), b.encode()


def _code_points(a: str, b: str) -> tuple[str, str]:
    return a, b


# One query answers both questions; each answer is what a known release gives.
_DETECT_SQL = (
    "SELECT levenshtein('\u00e9', 'e'), "
    "CAST(try_strptime('epoch', '%Y-%m-%d') AS VARCHAR)"
)
_TEXT_UNITS: dict[object, TextUnit] = {2: "utf8_byte", 1: "code_point"}
_DATE_SPECIALS: dict[object, DateSpecials] = {
    "1900-01-01 00:00:00": "as_1900", "1970-01-01 00:00:00": "as_values",
}  # fmt: skip


def detect_behaviour(connection: object | None = None) -> tuple[DuckDBBehaviour, str]:
    """Ask the installed DuckDB (or ``connection``) which behaviour it has.

    Returns the behaviour and the DuckDB version. Raises :class:`DuckDBParityError` naming
    the function and the version when an answer matches no known release."""
    import duckdb  # imported here: only model loading and training need DuckDB

    version = duckdb.__version__
    if connection is not None:
        levenshtein, epoch = connection.execute(_DETECT_SQL).fetchone()  # type: ignore[attr-defined]
    else:
        with duckdb.connect() as con:
            levenshtein, epoch = con.execute(_DETECT_SQL).fetchone()
    if levenshtein not in _TEXT_UNITS:
        raise DuckDBParityError(
            f"DuckDB {version}: levenshtein('\u00e9', 'e') is {levenshtein!r}, which no known "
            "release gives (2: UTF-8 bytes, 1: code points); real-time scoring is refused")
    if epoch not in _DATE_SPECIALS:
        raise DuckDBParityError(
            f"DuckDB {version}: try_strptime('epoch', '%Y-%m-%d') is {epoch!r}, which no "
            "known release gives; real-time scoring is refused")
    return DuckDBBehaviour(_TEXT_UNITS[levenshtein], _DATE_SPECIALS[epoch]), version


@cache
def installed_functions() -> DuckDBFunctions:
    """The functions of the installed DuckDB release (detected once per process)."""
    behaviour, version = detect_behaviour()
    return DuckDBFunctions(behaviour, version)
