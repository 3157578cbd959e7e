"""``idgraph worker`` (or ``serve``) as a child process, with exactly the parent's settings.

Shared by the Kafka demo, the stream benchmarks and the stream tests, so they start
workers the same way. The child gets the whole configuration, not a subset: the parent's
effective settings (file, environment and keyword arguments merged; secrets, TLS and SASL,
linking rules and regions included) are written to an owner-only settings file that the
child loads through ``IDGRAPH_CONFIG``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from idgraph.settings import Settings, write_settings_file


def worker_env(settings: Settings, config_path: Path,
               base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child ``idgraph worker`` or ``serve`` that runs with exactly
    ``settings``: they are written to ``config_path`` (owner-only), named by
    ``IDGRAPH_CONFIG``; the ``IDGRAPH_*`` variables of ``base`` (default: this process's
    environment) are left out, since ``settings`` already holds their effect."""
    write_settings_file(settings, config_path)
    env = {k: v for k, v in (os.environ if base is None else base).items()
           if not k.startswith("IDGRAPH_")}
    env["IDGRAPH_CONFIG"] = str(config_path)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_worker(data_dir: Path, stats_file: Path, log_path: Path, env: dict[str, str],
                 cwd: Path | None = None, metrics_port: int = 0) -> subprocess.Popen:
    """``idgraph worker`` in the background, its output appended to ``log_path``.

    ``metrics_port``: where this worker serves its metrics (``IDGRAPH_METRICS__PORT``);
    several workers of one machine each need their own: worker ``i`` of a deployment
    takes ``settings.metrics.port_of_process(i)``. 0 keeps what ``env`` says."""
    if metrics_port:
        env = {**env, "IDGRAPH_METRICS__PORT": str(metrics_port)}
    with log_path.open("ab") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "idgraph.cli", "worker", "--data-dir", str(data_dir),
             "--stats-file", str(stats_file)],
            cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
