"""The delivery guarantees under faults, with real worker processes and a real broker
(:mod:`tests.stream.fault_harness` holds the workload, the faults and the checker).

Workers commit offsets every 0.3 s here, so a killed worker has acknowledged (and Faust
has committed) batches before it dies: "acknowledged only after stored" is exercised,
not only "redelivered after a crash". A failing schedule is replayed with
``IDGRAPH_FAULT_SEED=<seed> pytest tests/stream/test_delivery_faults.py``; the long soak is
``python -m benchmarks.delivery_soak``.
"""

from __future__ import annotations

import os

import pytest

from tests.stream.fault_harness import (
    KILL_POINTS,
    Fault,
    RunLog,
    check,
    make_workload,
    run,
    schedule,
)

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("IDGRAPH_FAULT_SEED", "20261207"))
WORKER_ENV = {"IDGRAPH_STREAM__BATCH_SIZE": "50",
              "IDGRAPH_STREAM__COMMIT_INTERVAL_SECONDS": "0.3"}


@pytest.fixture(scope="module")
def workload(tmp_path_factory):
    return make_workload(SEED, n_records=1200, n_poison=16,
                         reference_dir=tmp_path_factory.mktemp("reference"))


@pytest.fixture()
def start(workers):
    def start_worker(name, data_dir, **env):
        return workers(name, data_dir, **{**WORKER_ENV, **env})
    return start_worker


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_worker_killed_at_each_step_of_a_batch_loses_nothing(
        point, workload, start, broker, stream_env, tmp_path):
    # the second pass (a batch acknowledged before the kill), except for the dead-letter
    # send: only batches holding a malformed message pass there, and the victim shares the
    # partitions with another worker, so it may meet just one such batch (seen in CI)
    hit = 1 if point == "stream.dead_letters.send" else 2
    log = RunLog(SEED, [Fault("kill_at", point=point, hit=hit)])
    data = tmp_path / "data"
    run(workload, log.faults, start, broker, stream_env, data, log)
    assert log.kills, f"the worker never reached {point}:\n{log}"
    assert check(workload, stream_env, data) == [], str(log)


def test_a_worker_killed_while_the_store_refuses_its_batch_loses_nothing(
        workload, start, broker, stream_env, tmp_path):
    """The batch waits through retries while Faust's commit timer runs: only a batch that
    is not acknowledged before it is stored survives the kill."""
    log = RunLog(SEED, [Fault("kill_while_retrying", hit=2)])
    data = tmp_path / "data"
    run(workload, log.faults, start, broker, stream_env, data, log)
    assert log.kills, str(log)
    assert check(workload, stream_env, data) == [], str(log)


def test_dead_letters_the_broker_refuses_are_retried_not_lost(
        workload, start, broker, stream_env, tmp_path):
    log = RunLog(SEED, [Fault("dead_letters_refused", hit=3)])
    data = tmp_path / "data"
    run(workload, log.faults, start, broker, stream_env, data, log)
    assert check(workload, stream_env, data) == [], str(log)
    logs = "".join(p.read_text() for p in tmp_path.glob("w0-dead_letters_refused.log"))
    assert logs.count("dead letters not delivered (InjectedFault); retrying") == 3, logs


def test_a_seeded_schedule_of_faults_loses_nothing_and_applies_nothing_twice(
        workload, start, broker, stream_env, tmp_path):
    faults = schedule(SEED, 7, session_timeout=6.0)  # every kind of fault once
    log = RunLog(SEED, faults)
    data = tmp_path / "data"
    run(workload, faults, start, broker, stream_env, data, log)
    assert check(workload, stream_env, data) == [], str(log)
    assert any(k > 0 for k in log.kills), f"no kill came after a commit:\n{log}"
