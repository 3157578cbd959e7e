"""Mutation check of the modules that carry the engine's guarantees (``make mutation``).

Which modules, and the tests that must kill every mutant of each, are listed in
:data:`GUARDED`: delivery (the stream worker's batch processing and delivery order),
survivorship (event-time folding of records and profiles) and the over-merge guards
(deterministic link decisions, name signatures).

The check runs mutmut (3.7) on the *installed layout* (every folder under ``idgraph/``, as
``make lint`` builds it) in a scratch directory: mutmut names a mutant after its file's
path, and the repository's folders (``stream/``...) install as ``idgraph.stream``..., so
the mutated copy must sit where the tests import it from. Each mutant is run against the
tests of its module that reach the mutated function (mutmut records which do).

Exit status 1, with the diff of each, when a mutant survives or no test reaches it; the
summary (killed, survived, no tests, timeouts per module) is written to ``--report``.
A mutant that cannot change behaviour (an equivalent mutant) is excluded where it is, with
``# pragma: no mutate`` and a comment saying why, never by loosening this check.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from importlib.metadata import version as _version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: guarded module (path in the installed layout) -> the test files that must kill its mutants
GUARDED: dict[str, tuple[str, list[str]]] = {
    "delivery": ("idgraph/stream/delivery.py", ["tests/stream/test_delivery.py"]),
    "processor": ("idgraph/stream/processor.py", ["tests/stream/test_processor.py",
                                                   "tests/stream/test_processor_fuzz.py"]),
    "survivorship": ("idgraph/profile_store/survivorship.py",
                     ["tests/profile_store/test_survivorship.py"]),
    "linking": ("idgraph/resolver/linking.py", ["tests/resolver/test_linking.py"]),
    "names": ("idgraph/resolver/names.py", ["tests/resolver/test_names.py"]),
}

_PYTEST_OPTIONS = """\
[tool.pytest.ini_options]
testpaths = ["tests"]
pythonpath = ["."]
addopts = "-ra --strict-markers -p no:cacheprovider"
timeout = 300
markers = ["slow: takes more than a few seconds"]
"""

_RESULT = re.compile(r"^\s*(\S+__mutmut_\d+): (.+)$")


def build_tree(work: Path) -> Path:
    """The installed layout of the project, its tests and benchmarks, in ``work/tree``."""
    tree = work / "tree"
    shutil.rmtree(tree, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--target", str(tree), str(ROOT)], check=True)
    for folder in ("tests", "benchmarks"):
        shutil.copytree(ROOT / folder, tree / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "results"))
    return tree


def write_config(tree: Path, names: list[str]) -> None:
    sources = [GUARDED[n][0] for n in names]
    tests = sorted({t for n in names for t in GUARDED[n][1]})
    (tree / "pyproject.toml").write_text(
        _PYTEST_OPTIONS + "\n[tool.mutmut]\n"
        f"source_paths = {json.dumps(sources)}\n"
        'also_copy = ["idgraph", "benchmarks"]\n'
        'pytest_add_cli_args = ["-p", "mutmut_pytest_compat"]\n'
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}\n")


def mutmut(tree: Path, *args: str, capture: bool = False) -> str:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent))
    exe = Path(sys.executable).with_name("mutmut")
    done = subprocess.run([str(exe), *args], cwd=tree, env=env, check=True, text=True,
                          stdout=subprocess.PIPE if capture else subprocess.DEVNULL)
    return done.stdout or ""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", choices=sorted(GUARDED),
                    help="check only these modules (repeatable; default: all)")
    ap.add_argument("--workdir", type=Path,
                    default=Path(os.environ.get("TMPDIR", "/tmp")) / "idgraph-mutation")
    ap.add_argument("--report", type=Path, help="write the summary as JSON here")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args(argv)
    names = args.only or sorted(GUARDED)

    started = time.monotonic()
    tree = build_tree(args.workdir)
    write_config(tree, names)
    mutmut(tree, "run", "--max-children", str(args.jobs))
    listing = mutmut(tree, "results", "--all", "true", capture=True)

    module_of = {GUARDED[n][0][:-3].replace("/", "."): n for n in names}
    counts: dict[str, Counter] = {n: Counter() for n in names}
    failed: list[str] = []
    for line in listing.splitlines():
        m = _RESULT.match(line)
        if not m:
            continue
        mutant, status = m.groups()
        name = next(n for mod, n in module_of.items() if mutant.startswith(mod + "."))
        counts[name][status] += 1
        if status in ("survived", "no tests"):
            failed.append(mutant)

    for mutant in failed:
        print(mutmut(tree, "show", mutant, capture=True))
    summary = {"command": "python tools/mutation/check.py " + " ".join(argv or sys.argv[1:]),
               "date": time.strftime("%Y-%m-%d"), "mutmut": _version("mutmut"),
               "modules": {n: dict(c) for n, c in counts.items()},
               "failed": failed, "seconds": round(time.monotonic() - started, 1)}
    for n, c in counts.items():
        print(f"{n:14s} " + ", ".join(f"{k}: {v}" for k, v in sorted(c.items())))
    if args.report:
        args.report.write_text(json.dumps(summary, indent=2) + "\n")
    if failed:
        print(f"{len(failed)} mutants survived or reached no test (diffs above)")
        return 1
    print(f"every mutant killed ({sum(sum(c.values()) for c in counts.values())}) "
          f"in {summary['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
