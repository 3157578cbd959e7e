"""The scorer's DuckDB functions follow whichever DuckDB release is installed, or refuse.

``fixtures/duckdb_releases.json`` holds what each supported DuckDB release answered to the
parity probe set (recorded by ``tests/resolver/record_duckdb_answers.py``), so the
behaviour of every supported release is checked whichever one is installed here; the
installed release is also asked directly.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from idgraph.resolver.probabilistic.duckdb_functions import (
    DUCKDB_2_0_0,
    DUCKDB_2_0_1,
    DuckDBFunctions,
    DuckDBParityError,
    detect_behaviour,
    installed_functions,
)
from idgraph.resolver.probabilistic.duckdb_parity import check_parity, duckdb_answers, probe_answers
from idgraph.resolver.probabilistic.scorer import RealtimeScorer

RELEASES = json.loads(
    (Path(__file__).parent / "fixtures" / "duckdb_releases.json").read_text(encoding="utf-8")
)["releases"]
BEHAVIOURS = {"2.0.0": DUCKDB_2_0_0, "2.0.1": DUCKDB_2_0_1}


def test_every_recorded_release_has_a_known_behaviour():
    assert set(RELEASES) == set(BEHAVIOURS)


@pytest.mark.parametrize("version", sorted(BEHAVIOURS))
def test_functions_reproduce_each_release_bit_for_bit(version):
    got = probe_answers(DuckDBFunctions(BEHAVIOURS[version]))
    for name, wanted in RELEASES[version].items():
        # exact equality and the same types: 1 is not 1.0, a float must match to the last bit
        assert [(type(v).__name__, v) for v in got[name]] == [
            (type(v).__name__, v) for v in wanted
        ], name


def test_the_recorded_releases_differ_where_the_behaviours_say():
    old, new = RELEASES["2.0.0"], RELEASES["2.0.1"]
    differing = {name for name in old if old[name] != new[name]}
    assert {"jaro_similarity", "jaro_winkler_similarity", "damerau_levenshtein"} <= differing
    assert {"epoch", "try_strptime"} <= differing
    assert {"lower", "upper", "trim", "strlen", "substring"}.isdisjoint(differing)


def test_installed_release_is_detected_and_passes_the_self_check():
    behaviour, version = detect_behaviour()
    assert version == duckdb.__version__
    if version in BEHAVIOURS:  # a release recorded in the fixture must be detected as such
        assert behaviour == BEHAVIOURS[version]
        assert duckdb_answers() == RELEASES[version]
    functions = installed_functions()
    assert functions.behaviour == behaviour
    check_parity(functions)  # raises on any disagreement


@pytest.mark.parametrize(
    ("change", "function"),
    [
        ({"text_unit": "swap"}, "jaro_similarity"),
        ({"date_specials": "swap"}, "try_strptime"),
    ],
)
def test_self_check_refuses_a_mismatched_function_naming_it_and_the_version(change, function):
    installed = installed_functions().behaviour
    swapped = {
        "text_unit": {"utf8_byte": "code_point", "code_point": "utf8_byte"}[installed.text_unit],
        "date_specials": {"as_1900": "as_values", "as_values": "as_1900"}[installed.date_specials],
    }
    wrong = DuckDBFunctions(replace(installed, **{k: swapped[k] for k in change}))
    with pytest.raises(DuckDBParityError) as refused:
        check_parity(wrong)
    message = str(refused.value)
    assert message.startswith(f"{function} differs from the installed DuckDB {duckdb.__version__}")
    assert "real-time scoring is refused" in message


def test_scorer_refuses_to_load_a_model_with_mismatched_functions():
    installed = installed_functions().behaviour
    other = DUCKDB_2_0_0 if installed == DUCKDB_2_0_1 else DUCKDB_2_0_1
    with pytest.raises(DuckDBParityError, match=duckdb.__version__.replace(".", r"\.")):
        RealtimeScorer({"comparisons": []}, "test", functions=DuckDBFunctions(other))


class _Answers:
    """A connection that answers the detection query like an unknown DuckDB release."""

    def __init__(self, row: tuple) -> None:
        self.row = row

    def execute(self, _sql: str) -> _Answers:
        return self

    def fetchone(self) -> tuple:
        return self.row


@pytest.mark.parametrize(
    ("row", "function"),
    [((3, "1970-01-01 00:00:00"), "levenshtein"), ((1, "2000-01-01 00:00:00"), "try_strptime")],
)
def test_an_unknown_release_is_refused(row, function):
    with pytest.raises(DuckDBParityError, match=function):
        detect_behaviour(_Answers(row))
