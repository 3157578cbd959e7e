"""The writer process of the crash tests, and what they check after it died.

A crash test seeds a data dir with a first batch (``SEED_ITEMS``), then runs this module as
a real writer process (:func:`run_writer`) with ``IDGRAPH_FAILPOINTS`` arming one
failpoint (:mod:`idgraph.core.failpoints`): the process opens an engine, prints
``opened``, ingests the second batch (``CRASH_ITEMS``, which merges profiles of the first
and touches every region) in one call and prints ``ingested``. Killed at the point, it
prints ``opened`` and dies by SIGKILL. The test then opens an engine on the same data dir
(recovery: the graph log is replayed, the store reconciled or its journal finished) and
delivers the second batch again, as Kafka would the unacknowledged events, and
:func:`assert_exactly_once` compares the result with a run without a crash
(:func:`reference_outcomes`); before the redelivery, :func:`assert_all_or_nothing` checks
that recovery left the batch in the store entirely or not at all.

Run as a script it is that writer: a JSON spec on stdin names the data dir and, for the
Cassandra store, its settings (:func:`engine_settings`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from idgraph.engine import Engine
from idgraph.generator import generate
from idgraph.settings import Settings

# 160 records: the second half (84 events) merges three profiles of the first (76 events)
# and touches every region
ITEMS = generate(n_records=160, seed=8).events
SEED_ITEMS = ITEMS[:len(ITEMS) // 2]
CRASH_ITEMS = ITEMS[len(SEED_ITEMS):]
SUPPRESSION_KEY = "crash-test-suppression-key-" + "k" * 16  # one for every process


def engine_settings(data_dir: Path, cassandra: dict[str, Any] | None = None) -> Settings:
    """The settings of every engine of a crash test: the embedded store (SQLite) or, given
    ``cassandra`` settings, the Cassandra one; the networkx graph in ``data_dir``."""
    if cassandra is None:
        return Settings(data_dir=data_dir)
    # the writers' turns are Cassandra's then: a killed writer's lease blocks the next
    # writer for writer_lease_seconds
    return Settings(data_dir=data_dir, profile_store_backend="cassandra", cassandra=cassandra,
                    privacy={"suppression_key": SUPPRESSION_KEY}, writer_lease_seconds=2.0)


def ingest(engine: Engine, items: list) -> None:
    """``items`` as one batch (one graph write, one store write), as a worker does."""
    result = engine.ingest_payloads(items, batch_size=10 * len(items))  # > its records
    assert not result.dead_letters


def run_writer(data_dir: Path, failpoints: str,
               cassandra: dict[str, Any] | None = None) -> subprocess.CompletedProcess:
    """Run the writer process on ``data_dir`` with ``IDGRAPH_FAILPOINTS=failpoints``."""
    env = {**os.environ, "IDGRAPH_FAILPOINTS": failpoints}
    spec = json.dumps({"data_dir": str(data_dir), "cassandra": cassandra})
    return subprocess.run([sys.executable, __file__], input=spec, env=env, text=True,
                          capture_output=True, timeout=120, check=False)


def assert_killed(out: subprocess.CompletedProcess, printed: list[str]) -> None:
    """The writer died by SIGKILL (a failpoint's, nothing else kills it) after printing
    ``printed`` (``["opened"]``: during the batch; ``[]``: while opening)."""
    assert out.returncode == -signal.SIGKILL, (out.returncode, out.stdout, out.stderr[-3000:])
    assert out.stdout.split() == printed, out.stdout


@dataclass(frozen=True)
class Outcome:
    """What a run leaves: processed events, each record's profile and event count, and the
    store's row counts."""

    processed: int
    record_profiles: dict[str, str]
    record_events: dict[str, int]
    counts: dict[str, int]


def outcome(engine: Engine) -> Outcome:
    store = engine.store
    assignment = store.record_profiles()
    records = store.get_records(assignment)
    counts = store.counts()
    return Outcome(counts["processed_events"], assignment,
                   {k: r.event_count for k, r in records.items()}, counts)


@dataclass(frozen=True)
class Reference:
    """The outcomes of a run without a crash: after the first batch, after both."""

    seeded: Outcome
    full: Outcome


def reference_outcomes(data_dir: Path) -> Reference:
    """The batches ingested without a crash (embedded store: the Cassandra store gives the
    same profiles, see tests/profile_store/test_cassandra_engine.py)."""
    with Engine(engine_settings(data_dir)) as engine:
        ingest(engine, SEED_ITEMS)
        seeded = outcome(engine)
        ingest(engine, CRASH_ITEMS)
        return Reference(seeded, outcome(engine))


def assert_all_or_nothing(engine: Engine, reference: Reference) -> None:
    """Right after recovery, before any redelivery: the second batch is in the store
    entirely or not at all. Either its events are all processed, every record holds its
    events and the store counts the rows the reference does; or none is, every record
    holds only the first batch's events and the store holds the first batch's records and
    identifier rows (its profiles may differ: the graph may hold the batch already, and
    the store is reconciled with it). Every stored profile is a component of the graph.

    This is what catches a recovery that gets a batch wrong: a redelivery would hide it,
    as a record also skips an event it already holds (``apply_event``)."""
    got = outcome(engine)
    if got.processed == reference.full.processed:
        assert got.record_events == reference.full.record_events
        assert got.counts == reference.full.counts
    else:
        seeded = reference.seeded
        assert got.processed == seeded.processed
        assert got.record_events == seeded.record_events
        assert [got.counts[k] for k in ("records", "identifiers")] == [
            seeded.counts[k] for k in ("records", "identifiers")]
    _assert_profiles_are_components(engine, got)


def assert_exactly_once(engine: Engine, reference: Reference) -> None:
    """Every event applied once (each record's event count, the processed events), each
    record in the profile the reference put it in, and every stored profile is one of the
    graph's components with the sum of its records' events (no half-applied batch)."""
    got, want = outcome(engine), reference.full
    assert got.processed == want.processed
    assert got.record_events == want.record_events
    assert got.record_profiles == want.record_profiles
    assert got.counts == want.counts
    _assert_profiles_are_components(engine, got)


def _assert_profiles_are_components(engine: Engine, got: Outcome) -> None:
    """Each stored profile holds the stored records of one graph component, and its
    events are the sum of theirs."""
    groups: dict[str, set[str]] = {}
    for key, pid in got.record_profiles.items():
        groups.setdefault(pid, set()).add(key)
    with ThreadPoolExecutor(8) as pool:  # each read waits on round trips with Cassandra
        profiles = dict(zip(groups, pool.map(engine.queries.get_profile, groups), strict=True))
    for pid, keys in groups.items():
        assert set(engine.graph.records_of(pid)) & got.record_profiles.keys() == keys, pid
        assert profiles[pid].event_count == sum(got.record_events[k] for k in keys), pid


def main() -> None:
    spec = json.load(sys.stdin)
    with Engine(engine_settings(Path(spec["data_dir"]), spec["cassandra"])) as engine:
        print("opened", flush=True)
        ingest(engine, CRASH_ITEMS)
        print("ingested", flush=True)


if __name__ == "__main__":
    main()
