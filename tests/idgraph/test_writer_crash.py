"""A writer process killed (SIGKILL) at each step of an ingest batch on the embedded backends
(networkx link log, SQLite store, local writer turns), then recovery and redelivery: every
event counts once and the profiles are the graph's components, as without the crash.

Each case seeds a data dir with a first batch in this process, runs a real writer process
(``tests/crash_testing.py``) armed to die at one ``writer.*`` failpoint
(:mod:`idgraph.core.failpoints`) while it ingests a second batch, checks from the files it
left that it died at that step (the link log, the store and the turn feed say how far the
batch got), then opens an engine on the data dir (replay, reconcile) and delivers the
second batch again.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from crash_testing import (
    CRASH_ITEMS,
    SEED_ITEMS,
    assert_all_or_nothing,
    assert_exactly_once,
    assert_killed,
    engine_settings,
    ingest,
    reference_outcomes,
    run_writer,
)

from idgraph.core.failpoints import POINTS
from idgraph.engine import Engine

pytestmark = pytest.mark.slow

# point -> (the hit the second batch reaches it at, what is durable when it dies: the
# batch in the link log, the batch in the store, the turn still open). Opening an engine
# is a turn of its own: the batch's turn is the second
STEPS = {
    "writer.turn.begun": (2, False, False, True),
    "writer.graph.logging": (1, False, False, True),
    "writer.graph.applied": (1, True, False, True),
    "writer.store.writing": (1, True, False, True),
    "writer.store.committed": (1, True, True, True),
    "writer.turn.ended": (2, True, True, False),
}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return reference_outcomes(tmp_path_factory.mktemp("reference"))


def _count(path: Path, sql: str) -> int:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute(sql).fetchone()[0]
    finally:
        db.close()


def durable(data: Path) -> tuple[int, int, int]:
    """(batches committed to the link log, processed events, open turns) in ``data``."""
    return (_count(data / "graph-links.sqlite", "SELECT count(*) FROM link_log WHERE op = 'commit'"),
            _count(data / "profiles.sqlite", "SELECT count(*) FROM processed_events"),
            _count(data / "writer-turns.sqlite", "SELECT count(*) FROM turns WHERE state = 'open'"))


def seeded(tmp_path: Path) -> tuple[Path, tuple[int, int, int]]:
    data = tmp_path / "data"
    with Engine(engine_settings(data)) as engine:
        ingest(engine, SEED_ITEMS)
    return data, durable(data)


def recover_and_redeliver(data: Path, reference) -> None:
    with Engine(engine_settings(data)) as engine:  # recovery: replay, reconcile
        assert_all_or_nothing(engine, reference)
        ingest(engine, CRASH_ITEMS)  # the unacknowledged batch, delivered again
        assert_exactly_once(engine, reference)


def test_every_writer_point_has_a_case():
    assert set(STEPS) == {p for p in POINTS if p.startswith("writer.")}


@pytest.mark.parametrize("point", list(STEPS))
def test_a_writer_killed_at_a_step_of_a_batch_loses_nothing_and_repeats_nothing(
        point, tmp_path, reference):
    hit, in_log, in_store, turn_open = STEPS[point]
    data, (commits, _, open_turns) = seeded(tmp_path)
    assert open_turns == 0
    assert_killed(run_writer(data, f"{point}=kill@{hit}"), ["opened"])
    processed = (reference.full if in_store else reference.seeded).processed
    assert durable(data) == (commits + in_log, processed, int(turn_open))
    recover_and_redeliver(data, reference)


@pytest.mark.parametrize("point", ["writer.turn.begun@1", "writer.store.writing@1"])
def test_a_writer_killed_while_it_recovers_from_a_crash_loses_nothing(
        point, tmp_path, reference):
    # the first writer dies with the batch in the graph only; the next one, opening, dies
    # in its turn before reconciling the store with the graph, or in the middle of that
    data, (commits, processed, _) = seeded(tmp_path)
    assert_killed(run_writer(data, "writer.graph.applied=kill@1"), ["opened"])
    name, _, hit = point.partition("@")
    assert_killed(run_writer(data, f"{name}=kill@{hit}"), [])
    assert durable(data) == (commits + 1, processed, 1)
    recover_and_redeliver(data, reference)
