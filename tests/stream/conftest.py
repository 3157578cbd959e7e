"""A real Kafka-protocol broker (tansu) for the stream tests, and worker processes.

The broker is started once per session; a broker that cannot start fails the tests that
need it (they never skip). Each test gets its own topic prefix and consumer group, so tests
do not see each other's messages.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from idgraph.devservers.kafka_broker import LocalBroker
from idgraph.settings import Settings
from idgraph.stream.settings import StreamSettings
from idgraph.worker_processes import start_worker, worker_env

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def broker():
    with LocalBroker() as b:  # raises (fails the test) when tansu cannot start
        yield b


class WorkerProcess:
    """One ``idgraph worker`` subprocess with its own log and stats file."""

    def __init__(self, name: str, env: dict[str, str], data_dir: Path, tmp: Path) -> None:
        self.name = name
        self.stats_path = tmp / f"{name}.stats.json"
        self.log_path = tmp / f"{name}.log"
        self.proc = start_worker(data_dir, self.stats_path, self.log_path, env, cwd=ROOT)

    def stats(self) -> dict:
        try:
            return json.loads(self.stats_path.read_text())
        except (OSError, ValueError):
            return {}

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 30) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])


@pytest.fixture()
def stream_env(broker, tmp_path):
    """Environment for worker processes: this broker, fresh topics and group."""
    tag = uuid.uuid4().hex[:8]
    cfg = StreamSettings(
        brokers=[broker.url], topic_prefix=f"t{tag}", consumer_group=f"g{tag}", partitions=4,
        # tansu holds a group join for half the session timeout (devservers/kafka_broker.py)
        session_timeout_seconds=6, heartbeat_interval_seconds=1)
    env = worker_env(Settings(data_dir=tmp_path / "unused", stream=cfg),
                     tmp_path / "worker-settings.toml")
    env["PYTHONPATH"] = str(ROOT)
    return env


@pytest.fixture()
def workers(stream_env, tmp_path):
    started: list[WorkerProcess] = []

    def start(name: str, data_dir: Path, **env_overrides: str) -> WorkerProcess:
        env = dict(stream_env)
        env.update(env_overrides)
        w = WorkerProcess(name, env, data_dir, tmp_path)
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


def wait_for(condition, timeout: float, what: str, workers_=()) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        for w in workers_:
            assert w.alive() or w.proc.returncode == -signal.SIGKILL, (
                f"worker {w.name} exited ({w.proc.returncode}):\n{w.log_tail()}")
        time.sleep(0.1)
    tails = "\n".join(f"--- {w.name}\n{w.log_tail()}" for w in workers_)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{tails}")
