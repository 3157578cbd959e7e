"""``idgraph serve`` with its garbage collections logged (for :mod:`benchmarks.lookup_stalls`).

    python -m benchmarks.serve_with_gc_log GC_LOG serve --host 127.0.0.1 --port 0

Appends one JSON line per collection of generation 1 or 2, or of any generation that took
over 2 ms: ``[start (time.perf_counter, shared by every process), ms, generation,
collected]``.
"""

from __future__ import annotations

import gc
import json
import sys
import time


def main() -> int:
    out = open(sys.argv[1], "w", buffering=1)  # noqa: SIM115 - open for the process's life
    started: list[float] = [0.0]

    def callback(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
            return
        ms = (time.perf_counter() - started[0]) * 1000
        if info["generation"] >= 1 or ms > 2:
            out.write(json.dumps([started[0], ms, info["generation"], info["collected"]]) + "\n")

    gc.callbacks.append(callback)
    from idgraph.cli import main as cli

    return cli(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
