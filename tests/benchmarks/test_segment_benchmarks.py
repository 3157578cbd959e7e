"""The pure helpers of the segment benchmarks (benchmarks.segment_latency and
benchmarks.segment_evaluation): their definitions parse, the generated ones are varied
and reproducible, and the latency arithmetic is right."""

from __future__ import annotations

import cProfile
from datetime import UTC, datetime

from benchmarks.segment_evaluation import varied_segments
from benchmarks.segment_latency import (
    SEGMENTS,
    batch_latencies,
    change_batches,
    code_digest,
    other_cores,
    summary,
    top_functions,
    window_start,
)
from idgraph.segments import SegmentDependencies, parse, references


def test_the_twenty_segments_parse_and_some_use_others():
    trees = {name: parse(text) for name, text in SEGMENTS.items()}
    assert len(trees) == 20
    assert set(SegmentDependencies(trees).evaluation_order()) == set(trees)
    assert sum(1 for t in trees.values() if references(t)) >= 2


def test_varied_segments_are_reproducible_distinct_and_in_dependency_order():
    many = varied_segments(300, seed=3)
    assert many == varied_segments(300, seed=3)
    assert many != varied_segments(300, seed=4)
    assert len(many) == 300 and len(set(many.values())) == 300
    trees = {name: parse(text) for name, text in many.items()}
    seen: set[str] = set()
    uses = 0
    for name, tree in trees.items():  # a segment another uses comes first
        used = set(references(tree))
        assert used <= seen
        uses += bool(used)
        seen.add(name)
    assert uses > 0
    SegmentDependencies(trees).evaluation_order()  # no loop


def test_window_start_ends_the_generated_window_at_midnight_before_now():
    now = datetime(2026, 12, 7, 15, 30, tzinfo=UTC).timestamp()
    assert window_start(180, now) == datetime(2026, 6, 10, tzinfo=UTC)


def test_batch_latencies_take_the_last_and_first_change_and_count_missing_batches():
    commits = [10.0, 11.0, 12.0, 13.0]
    batches = [["a", "b"], [], ["c"], ["d", "e"]]
    received = {"a": 10.010, "b": 10.030, "c": 12.005, "d": 13.001}  # "e" never came
    last, first, missing = batch_latencies(commits, batches, received)
    assert [round(x, 3) for x in last] == [30.0, 5.0]
    assert [round(x, 3) for x in first] == [10.0, 5.0]
    assert missing == 1


def test_summary_of_no_values_is_empty():
    assert summary([]) == {"p50_ms": None, "p90_ms": None, "p99_ms": None, "p99.9_ms": None,
                           "max_ms": None}
    assert summary([1.0, 2.0, 3.0])["max_ms"] == 3.0


def test_change_batches_alternate_added_and_ordered_for_the_same_people():
    targets = [(f"p{i}", f"u{i}@example.com") for i in range(4)]
    batches = change_batches(targets, 4, 2, now=1_800_000_000.0)
    names = [[r.event_name for r in b] for b in batches]
    assert names == [["Product Added"] * 2, ["Order Completed"] * 2] * 2
    emails = [[r.identifiers[0].value for r in b] for b in batches]
    assert emails[0] == emails[1] == ["u0@example.com", "u1@example.com"]
    assert emails[2] == emails[3] == ["u2@example.com", "u3@example.com"]
    keys = [r.event_id for b in batches for r in b]
    assert len(set(keys)) == len(keys)


def test_top_functions_lists_the_heaviest_function_first():
    def busy() -> int:
        return sum(i * i for i in range(20_000))

    prof = cProfile.Profile()
    prof.enable()
    busy()
    prof.disable()
    lines = top_functions(prof, limit=3, sort="cumtime")
    assert len(lines) == 3 and "busy" in "".join(lines)


def test_code_digest_names_the_measured_sources():
    digest = code_digest()
    assert len(digest["sources_sha1"]) == 12


def test_other_cores_is_the_machine_busy_time_not_ours_per_second():
    assert other_cores((100.0, 10.0), (103.0, 11.0), 2.0) == 1.0
    assert other_cores((100.0, 10.0), (100.5, 11.0), 1.0) == 0.0  # clock granularity
    assert other_cores((0.0, 0.0), (0.0, 0.0), 0.0) == 0.0
