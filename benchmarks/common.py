"""Shared helpers: percentiles, result files, machine description."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from idgraph.evaluation import percentile

__all__ = ["machine", "percentile", "save"]

RESULTS = Path(__file__).parent / "results"


def machine() -> dict:
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform()}


def save(name: str, command: str, result: dict) -> Path:
    """Write ``benchmarks/results/NAME.json`` with the command that reproduces it."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"benchmark": name, "command": command, "machine": machine(),
               "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **result}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
