"""Delivery soak: a long seeded schedule of faults against real workers and a real broker.

The same harness as ``tests/stream/test_delivery_faults.py`` (:mod:`tests.stream.fault_harness`:
workload, faults, checker), with a longer schedule and more events: worker kills at every
step of a batch and at random moments, workers paused past the session timeout, the broker
paused, the store and the broker refusing writes. The result file records the schedule,
the run log and the checker's violations (none is the target); the exit code is 1 when
there is any.

    .venv/bin/python -m benchmarks.delivery_soak --seed 1 --faults 30 --records 6000
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.common import argument_parser, save
from idgraph.devservers.kafka_broker import LocalBroker
from idgraph.settings import Settings
from idgraph.stream.settings import StreamSettings
from idgraph.worker_processes import worker_env
from tests.stream.conftest import ROOT, WorkerProcess
from tests.stream.fault_harness import RunLog, check, make_workload, run, schedule

SESSION_TIMEOUT_SECONDS = 6
WORKER_ENV = {"IDGRAPH_STREAM__BATCH_SIZE": "50",
              "IDGRAPH_STREAM__COMMIT_INTERVAL_SECONDS": "0.3"}


def main(argv: list[str] | None = None) -> dict:
    parser = argument_parser("delivery_soak", __doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--faults", type=int, default=30)
    parser.add_argument("--records", type=int, default=6000)
    parser.add_argument("--poison", type=int, default=40)
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="idgraph-soak-"))
    started = time.monotonic()
    try:
        with LocalBroker() as broker:
            tag = uuid.uuid4().hex[:8]
            cfg = StreamSettings(brokers=[broker.url], topic_prefix=f"t{tag}",
                                 consumer_group=f"g{tag}", partitions=4,
                                 session_timeout_seconds=SESSION_TIMEOUT_SECONDS,
                                 heartbeat_interval_seconds=1)
            env = worker_env(Settings(data_dir=tmp / "unused", stream=cfg),
                             tmp / "worker-settings.toml")
            env["PYTHONPATH"] = str(ROOT)
            workload = make_workload(args.seed, args.records, args.poison, tmp / "reference")
            started_workers: list[WorkerProcess] = []

            def start(name: str, data_dir: Path, **overrides: str) -> WorkerProcess:
                w = WorkerProcess(name, {**env, **WORKER_ENV, **overrides}, data_dir, tmp)
                started_workers.append(w)
                return w

            faults = schedule(args.seed, args.faults, SESSION_TIMEOUT_SECONDS)
            log = RunLog(args.seed, faults)
            try:
                run(workload, faults, start, broker, env, tmp / "data", log,
                    drain_timeout=600)
                violations = check(workload, env, tmp / "data")
            finally:
                for w in started_workers:
                    w.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = {"faults": [str(f) for f in faults], "kills": len(log.kills),
              "kills_after_a_commit": sum(1 for k in log.kills if k > 0),
              "violations": violations, "meets_target": not violations,
              "seconds": round(time.monotonic() - started, 1), "run_log": log.lines}
    path = save(parser, args, argv, result)
    print(log)
    print(f"violations: {violations or 'none'}")
    print(f"written {path}")
    if violations:
        raise SystemExit(1)
    return result


if __name__ == "__main__":
    main()
