"""``idgraph worker`` as a child process, configured from :class:`StreamSettings`.

Shared by the Kafka demo, the stream benchmarks and the stream tests, so they start
workers the same way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from stream.settings import StreamSettings


def worker_env(cfg: StreamSettings, base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) plus the ``IDGRAPH_STREAM__*``
    variables that point a child ``idgraph worker`` or ``serve`` at ``cfg``."""
    env = dict(os.environ if base is None else base)
    env.update({
        "IDGRAPH_STREAM__BROKERS": json.dumps(cfg.brokers),
        "IDGRAPH_STREAM__TOPIC_PREFIX": cfg.topic_prefix,
        "IDGRAPH_STREAM__CONSUMER_GROUP": cfg.consumer_group,
        "IDGRAPH_STREAM__PARTITIONS": str(cfg.partitions),
        "IDGRAPH_STREAM__SESSION_TIMEOUT_SECONDS": f"{cfg.session_timeout_seconds:g}",
        "IDGRAPH_STREAM__HEARTBEAT_INTERVAL_SECONDS": f"{cfg.heartbeat_interval_seconds:g}",
        "IDGRAPH_STREAM__BATCH_SIZE": str(cfg.batch_size),
        "IDGRAPH_STREAM__BATCH_WITHIN_SECONDS": f"{cfg.batch_within_seconds:g}",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def start_worker(data_dir: Path, stats_file: Path, log_path: Path, env: dict[str, str],
                 cwd: Path | None = None) -> subprocess.Popen:
    """``idgraph worker`` in the background, its output appended to ``log_path``."""
    with log_path.open("ab") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "idgraph.cli", "worker", "--data-dir", str(data_dir),
             "--stats-file", str(stats_file)],
            cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
