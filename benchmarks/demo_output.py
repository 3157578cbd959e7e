"""The output of ``idgraph demo``, the README's sample summaries, with its wall time.

Runs ``idgraph demo`` (``make demo``; with ``--kafka``, ``make demo-kafka``) as its own
process, exactly as a user would, and records every line it prints and how long it took
from process start to exit (start-up, generation, resolution, serving and the lookups).

    .venv/bin/python -m benchmarks.demo_output
    .venv/bin/python -m benchmarks.demo_output --kafka --output demo_output_kafka
"""

from __future__ import annotations

import subprocess
import sys
import time

from benchmarks.common import argument_parser, load_average, save


def main(argv: list[str] | None = None) -> dict:
    parser = argument_parser("demo_output", __doc__)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument("--kafka", action="store_true", help="idgraph demo --kafka")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (--kafka)")
    args = parser.parse_args(argv)

    demo = ["demo", "--records", str(args.records), "--seed", str(args.seed),
            "--lookups", str(args.lookups)]
    if args.kafka:
        demo += ["--kafka", "--workers", str(args.workers)]
    load_before = load_average()
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "idgraph.cli", *demo], capture_output=True,
                          text=True, check=False)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"idgraph demo failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    out = {"demo_command": " ".join(["idgraph", *demo]), "wall_seconds": round(wall, 1),
           "output": proc.stdout.rstrip("\n").splitlines(),
           "load_average_1m": {"before": load_before, "after": load_average()}}
    print(proc.stdout, end="")
    print(f"{out['demo_command']}: {wall:.1f} s")
    print(f"written {save(parser, args, argv, out)}")
    return out


if __name__ == "__main__":
    main()
