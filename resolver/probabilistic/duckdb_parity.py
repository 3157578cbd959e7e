"""The self-check that keeps the real-time scorer from drifting from the installed DuckDB.

Splink trains and batch-scores in DuckDB; the real-time scorer evaluates the same SQL with
:mod:`idgraph.resolver.probabilistic.sql_eval`. If a DuckDB release changes a function (as 2.0.1
changed the edit distances from UTF-8 bytes to code points), the two silently give other
match weights for names with accents, umlauts or non-Latin letters. :func:`check_parity`
runs a fixed probe set through both and refuses to go on when they disagree.

Contract: ``check_parity(functions)`` returns None when every probe expression gives, for
every probe row, exactly (``==``, bit for bit for floats) what the installed DuckDB gives;
otherwise it raises :class:`DuckDBParityError` naming the SQL function, the probe and both
answers, and the DuckDB version. One query, a few milliseconds; the result is remembered
per functions object.
"""

from __future__ import annotations

from functools import cache

from idgraph.resolver.probabilistic.duckdb_functions import DuckDBFunctions, DuckDBParityError
from idgraph.resolver.probabilistic.sql_eval import compile_expression

__all__ = ["PROBE_EXPRESSIONS", "PROBE_ROWS", "check_parity", "probe_answers"]

# Text that tells the releases apart (multi-byte letters, transpositions of them, case-only
# differences, expansions under case mapping, empty strings) and dates that do (the
# specials, padding, year 0, invalid days).
_PROBE_TEXT = [
    ("Σοφία", "Σοφαί"), ("Müller", "Mueller"), ("Zoë", "Zoe"), ("José", "Jsoé"),
    ("Ørjan", "Orjan"), ("Łukasz", "Lukasz"), ("Straße", "STRASSE"), ("İlker", "ilker"),
    ("张伟", "张伟x"), ("Nguyễn", "Nguyen"), ("Dvořák", "Dvorak"), ("Martha", "Marhta"),
    ("Dwayne", "Duane"), ("", "Ann"), ("ΣΟΦΙΑ", "σοφια"), ("\u00a0Siân ", "Sian"),
]  # fmt: skip
_PROBE_DATES = [
    "epoch", " Infinity", "-infinity", "1990-01-02", " 2000-01-01 ", "0000-02-29",
    "2000-02-30", "24/03/1986", "9999-12-31", "+infinity", "", "0099-06-15",
    "2000-01-01T12:00:00Z", "epochs", "29/02/2001", "1986",
]  # fmt: skip
PROBE_ROWS: list[dict[str, str]] = [
    {"a": a, "b": b, "d": d}
    for (a, b), d in zip(_PROBE_TEXT, _PROBE_DATES, strict=True)
]
"""Columns ``a`` / ``b`` (strings to compare) and ``d`` (a date string) of each probe."""

PROBE_EXPRESSIONS: dict[str, str] = {
    "jaro_similarity": "jaro_similarity(a, b)",
    "jaro_winkler_similarity": "jaro_winkler_similarity(a, b)",
    "levenshtein": "levenshtein(a, b)",
    "damerau_levenshtein": "damerau_levenshtein(a, b)",
    "lower": "lower(a)",
    "upper": "upper(b)",
    "trim": "trim(a)",
    "length": "length(a)",
    "strlen": "strlen(a)",
    "substring": "substring(a, 2, 3)",
    "regexp_extract": "regexp_extract(b, '^[A-Za-z]{1,2}', 0)",
    "try_strptime": "try_strptime(d, '%Y-%m-%d') > try_strptime('2000-01-01', '%Y-%m-%d')",
    "epoch": "epoch(try_strptime(d, '%Y-%m-%d'))",
    "epoch(%d/%m/%Y)": "epoch(try_strptime(d, '%d/%m/%Y'))",
}
"""Name of the function each expression checks -> the expression, over one probe row."""


def probe_answers(functions: DuckDBFunctions) -> dict[str, list[object]]:
    """What the compiled expressions give for every probe row, per function name."""
    answers: dict[str, list[object]] = {}
    for name, sql in PROBE_EXPRESSIONS.items():
        fn = compile_expression(sql, "l", functions)
        answers[name] = [fn(row) for row in PROBE_ROWS]
    return answers


def duckdb_answers() -> dict[str, list[object]]:
    """What the installed DuckDB gives for every probe row, per function name."""
    import duckdb
    import pyarrow as pa

    con = duckdb.connect()
    try:
        columns = {k: [row[k] for row in PROBE_ROWS] for k in "abd"}
        con.register("probe", pa.table({"i": list(range(len(PROBE_ROWS))), **columns}))
        names = list(PROBE_EXPRESSIONS)
        rows = con.sql(
            f"SELECT {', '.join(PROBE_EXPRESSIONS[n] for n in names)} FROM probe ORDER BY i"
        ).fetchall()
    finally:
        con.close()
    return {name: [row[i] for row in rows] for i, name in enumerate(names)}


@cache
def check_parity(functions: DuckDBFunctions) -> None:
    """Refuse (:class:`DuckDBParityError`) when ``functions`` disagree with the installed
    DuckDB on any probe; see the module docstring."""
    import duckdb

    wanted = duckdb_answers()
    got = probe_answers(functions)
    for name, sql in PROBE_EXPRESSIONS.items():
        for row, want, have in zip(PROBE_ROWS, wanted[name], got[name], strict=True):
            if want != have or type(want) is not type(have):
                raise DuckDBParityError(
                    f"{name} differs from the installed DuckDB {duckdb.__version__}: "
                    f"{sql} with a={row['a']!r}, b={row['b']!r}, d={row['d']!r} gives "
                    f"{want!r} in DuckDB but {have!r} in the real-time scorer "
                    f"(functions for {functions.behaviour}); real-time scoring is refused "
                    "because it would score differently from Splink. Install a DuckDB "
                    "release the scorer knows (see requirements/*.lock) or teach "
                    "resolver/probabilistic/duckdb_functions.py the new behaviour")
