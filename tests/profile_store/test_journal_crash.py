"""A writer process killed (SIGKILL) at each step of the Cassandra store's redo journal
(``profile_store/cassandra_backend/journal.py``) and during its recovery, then recovery and
redelivery: every event counts once and the profiles are the graph's components, as
without the crash.

Each case seeds the store (the real two-data-centre cluster) and a data dir (networkx
graph) with a first batch in this process, runs a real writer process
(``tests/crash_testing.py``) armed to die at one ``journal.*`` failpoint
(:mod:`idgraph.core.failpoints`) while it ingests a second batch, checks from the tables it
left that it died at that step (the batch row's state, the in-flight pointers, the
journals, the processed events), then opens an engine on the store (recovery finishes or
discards the batch) and delivers the second batch again.
"""

from __future__ import annotations

import pytest
from cassandra_testing import (
    admin_session,
    cassandra_settings,
    drop_keyspaces,
    fresh_prefix,
    keyspaces,
)
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
from idgraph.profile_store.cassandra_backend import schema as q

pytestmark = pytest.mark.slow

REGIONS = ("eu", "uk", "us", "apac")  # the default regions: the batch touches each

# point -> what the tables say when the writer died there: the batch row's state, whether
# the in-flight pointers name it, whether journal rows exist, whether its events are
# recorded as processed
STEPS = {
    "journal.pending": ("pending", False, False, False),
    "journal.pointed": ("pending", True, False, False),
    "journal.begun": ("pending", True, True, False),
    # the writers take turns in Cassandra (the store is Cassandra's), so commits are fenced:
    # the fence names the batch, the batch row does not say committed yet
    "journal.fenced": ("pending", True, True, False),
    "journal.committed": ("committed", True, True, False),
    "journal.applying": ("committed", True, True, False),
    "journal.applied": ("committed", True, True, False),
    "journal.processed": ("committed", True, True, True),
    "journal.cleared": ("committed", True, False, True),
}
# a writer died at the first point; the next one, recovering the batch as it opens, dies
# at the second: what the tables say then (the batch row's state, journal rows exist, its
# events recorded as processed)
RECOVERIES = {
    ("journal.committed", "journal.applying"): ("committed", True, False),
    ("journal.committed", "journal.processed"): ("committed", True, True),
    ("journal.applied", "journal.cleared"): ("committed", False, True),
    ("journal.begun", "journal.discarding"): ("pending", False, False),
}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return reference_outcomes(tmp_path_factory.mktemp("reference"))


@pytest.fixture(scope="module")
def module_prefix(cassandra_cluster, tmp_path_factory):
    """Keyspaces of this module, created once by an engine (store, ledger, catalog)."""
    prefix = fresh_prefix("j")
    cassandra = _settings(cassandra_cluster, prefix)
    Engine(engine_settings(tmp_path_factory.mktemp("create"), cassandra)).close()
    yield prefix
    drop_keyspaces(cassandra_cluster, prefix)


def _settings(cluster, prefix: str) -> dict:
    return cassandra_settings(cluster, prefix).model_dump(mode="json", exclude={"password"})


def empty_tables(cluster, prefix: str) -> None:
    """Truncate the tables of ``prefix`` that hold rows (a case writes about half of them:
    truncating only those halves the time)."""
    with admin_session(cluster, consistency="ALL") as session:
        tables = [f"{ks}.{table}" for ks in keyspaces(session, prefix)
                  for table in session.cluster.metadata.keyspaces[ks].tables]
        probes = [session.execute_async(f"SELECT * FROM {t} LIMIT 1") for t in tables]
        written = [t for t, probe in zip(tables, probes, strict=True) if probe.result().one()]
        for future in [session.execute_async(f"TRUNCATE {t}") for t in written]:
            future.result()


@pytest.fixture
def seeded(cassandra_cluster, module_prefix, tmp_path):
    """(data dir, Cassandra settings) after the first batch."""
    empty_tables(cassandra_cluster, module_prefix)
    cassandra = _settings(cassandra_cluster, module_prefix)
    data = tmp_path / "data"
    with Engine(engine_settings(data, cassandra)) as engine:
        ingest(engine, SEED_ITEMS)
    return data, cassandra


def journal_tables(cluster, prefix: str) -> tuple[list, set[str], int, int]:
    """(batch rows as (ID, state, TTL of the state), batch IDs the regions' in-flight
    pointers name, journal rows, processed events) as the tables hold them."""
    global_ks = q.global_keyspace(prefix)
    with admin_session(cluster, consistency="ALL") as session:
        batches = [(str(b), state, ttl) for b, state, ttl in session.execute(
            f"SELECT batch_id, state, TTL(state) FROM {global_ks}.batches")]
        pointers, journals = set(), 0
        for region in REGIONS:
            ks = q.region_keyspace(prefix, region)
            pointers |= {value for (value,) in session.execute(
                f"SELECT value FROM {ks}.meta WHERE region = %s AND name = 'inflight'",
                (region,))}
            journals += session.execute(f"SELECT count(*) FROM {ks}.journal").one()[0]
        processed = session.execute(
            f"SELECT count(*) FROM {global_ks}.processed_events").one()[0]
    return batches, pointers, journals, processed


def assert_tables(cluster, prefix: str, state: str, journaled: bool, processed: bool,
                  reference) -> tuple[str, set[str]]:
    """One batch row, in ``state``; journal rows or none; the second batch's events
    processed or not. Returns the batch row's ID and the IDs the pointers name."""
    batches, pointers, journals, n_processed = journal_tables(cluster, prefix)
    assert [s for _, s, _ in batches] == [state], batches
    assert (journals > 0) == journaled
    assert n_processed == (reference.full if processed else reference.seeded).processed
    return batches[0][0], pointers


def recover_and_redeliver(data, cassandra, cluster, prefix, reference) -> list:
    """Recover (check), deliver the second batch again (check); the batch rows left."""
    with Engine(engine_settings(data, cassandra)) as engine:  # recovery, reconcile
        assert_all_or_nothing(engine, reference)
        ingest(engine, CRASH_ITEMS)  # the unacknowledged batch, delivered again
        assert_exactly_once(engine, reference)
    batches, _, journals, _ = journal_tables(cluster, prefix)
    assert journals == 0
    return batches


def test_every_journal_point_has_a_case():
    assert set(STEPS) | {point for _, point in RECOVERIES} == {
        p for p in POINTS if p.startswith("journal.")}


@pytest.mark.parametrize("point", list(STEPS))
def test_a_writer_killed_at_a_step_of_the_journal_loses_nothing_and_repeats_nothing(
        point, cassandra_cluster, module_prefix, seeded, reference):
    data, cassandra = seeded
    assert_killed(run_writer(data, f"{point}=kill@1", cassandra), ["opened"])
    state, pointed, journaled, done = STEPS[point]
    batch_id, pointers = assert_tables(cassandra_cluster, module_prefix, state, journaled,
                                       done, reference)
    assert (batch_id in pointers) == pointed
    left = recover_and_redeliver(data, cassandra, cassandra_cluster, module_prefix, reference)
    if point == "journal.pending":
        # no region points at the batch: no recovery finds it, and its row expires
        assert [(s, ttl > 0) for _, s, ttl in left] == [("pending", True)]
    else:
        assert left == []


@pytest.mark.parametrize(("crash", "point"), list(RECOVERIES))
def test_a_writer_killed_while_it_recovers_a_batch_loses_nothing_and_repeats_nothing(
        crash, point, cassandra_cluster, module_prefix, seeded, reference):
    data, cassandra = seeded
    assert_killed(run_writer(data, f"{crash}=kill@1", cassandra), ["opened"])
    # the next writer recovers the batch as it opens (before reconciling), and dies there
    assert_killed(run_writer(data, f"{point}=kill@1", cassandra), [])
    assert_tables(cassandra_cluster, module_prefix, *RECOVERIES[crash, point], reference)
    left = recover_and_redeliver(data, cassandra, cassandra_cluster, module_prefix, reference)
    assert left == []
