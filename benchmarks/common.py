"""Shared helpers: argument parsing, the reproducing command, result files, percentiles.

Every benchmark builds its parser with :func:`argument_parser` and writes its result with
:func:`save`, which records the command exactly as it was given (``sys.argv``, or the
``argv`` list ``run_all`` passes) and every parsed parameter, defaults included. Options
cannot be abbreviated, so the recorded command names each flag in full. ``--output`` names
the result file: two runs of one benchmark with different flags keep two files.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from idgraph.evaluation import percentile

__all__ = ["argument_parser", "command", "load_average", "machine", "percentile", "save"]

RESULTS = Path(__file__).parent / "results"

#: Options whose values are credentials: recorded as ``***``, never written to a result.
SECRET_OPTIONS = frozenset({"--neo4j-password"})
_SECRET_PARAMETERS = frozenset(o.lstrip("-").replace("-", "_") for o in SECRET_OPTIONS)
_HIDDEN = "***"


def argument_parser(name: str, doc: str) -> argparse.ArgumentParser:
    """The parser of ``benchmarks.NAME``: full option names only, plus ``--output``."""
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.{name}",
                                     description=doc.strip().splitlines()[0],
                                     allow_abbrev=False)
    parser.add_argument("--output", default=name, metavar="NAME",
                        help="write benchmarks/results/NAME.json (default: the benchmark's "
                        "name)")
    return parser


def command(prog: str, argv: Sequence[str]) -> str:
    """``prog`` followed by ``argv``, shell-quoted, with secret option values hidden."""
    shown: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            shown.append(_HIDDEN)
            hide_next = False
            continue
        option, eq, _value = arg.partition("=")
        if option in SECRET_OPTIONS:
            if eq:
                arg = f"{option}={_HIDDEN}"
            else:
                hide_next = True
        shown.append(arg)
    return " ".join([prog, *(shlex.quote(a) for a in shown)])


def load_average() -> float:
    """The machine's 1-minute load average (other work shares the cores)."""
    return round(os.getloadavg()[0], 2)


def machine() -> dict:
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform()}


def save(parser: argparse.ArgumentParser, args: argparse.Namespace,
         argv: Sequence[str] | None, result: dict) -> Path:
    """Write ``benchmarks/results/{args.output}.json``: the command that reproduces the run
    (``argv``; ``sys.argv[1:]`` when None), every parameter, the machine and ``result``."""
    name = args.output
    if not name or Path(name).name != name or name.startswith("."):
        raise SystemExit(f"--output must be a plain file name, got {name!r}")
    given = list(sys.argv[1:] if argv is None else argv)
    parameters = {k: (_HIDDEN if k in _SECRET_PARAMETERS and v else v)
                  for k, v in sorted(vars(args).items())}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"benchmark": parser.prog.removeprefix("python -m benchmarks."),
               "command": command(parser.prog, given), "parameters": parameters,
               "machine": machine(),
               "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **result}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(path)
    return path
