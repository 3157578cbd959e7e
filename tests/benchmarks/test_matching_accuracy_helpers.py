"""How matching_accuracy compares two runs' profiles and breaks down split people."""

from __future__ import annotations

import pytest

from benchmarks.matching_accuracy import compare_partitions, split_breakdown

TRUTH = {"a1": "A", "a2": "A", "a3": "A", "b1": "B", "c1": "C", "c2": "C"}


def test_compare_partitions_ignores_ids_and_counts_the_differing_profiles():
    first = {"a1": 1, "a2": 1, "a3": 2, "b1": 3, "c1": 4, "c2": 4}
    # same grouping of b and c under other IDs; a3 joins a1/a2, and c joins b (wrongly)
    second = {"a1": "x", "a2": "x", "a3": "x", "b1": "y", "c1": "y", "c2": "y"}
    diff = compare_partitions(first, second, TRUTH)
    assert diff == {"records": 6, "same_profiles": 0, "profiles_only_in_first": 4,
                    "profiles_only_in_second": 2, "records_in_differing_profiles": 6,
                    "differing_profiles_mixing_people": {"first": 0, "second": 1}}
    same = compare_partitions(first, {k: f"p{v}" for k, v in first.items()}, TRUTH)
    assert (same["same_profiles"], same["records_in_differing_profiles"]) == (4, 0)
    with pytest.raises(ValueError):
        compare_partitions(first, {"a1": 1}, TRUTH)


def test_split_breakdown_counts_records_outside_the_main_profile_by_kind():
    cluster_of = {"a1": 1, "a2": 1, "a3": 2, "b1": 3, "c1": 4, "c2": 5}
    kind_of = {"a1": "named", "a2": "named", "a3": "no_person_columns", "b1": "named",
               "c1": "named", "c2": "no_name"}
    out = split_breakdown(cluster_of, TRUTH, kind_of)
    # A's main profile holds 2 of 3 records; C's two profiles tie: the smaller ID (4) is main
    assert out["records_outside_main_profile"] == {"no_name": 1, "no_person_columns": 1}
    assert (out["people"], out["people_split"], out["people_with_person_columns"]) == (3, 2, 3)
    # without a3, A is whole; C is still split
    assert out["people_in_one_profile_ignoring_records_without_person_columns"] == \
        pytest.approx(2 / 3, abs=1e-6)
