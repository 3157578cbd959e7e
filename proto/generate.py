"""Regenerate the committed Python modules of the ``.proto`` files under ``proto/``.

Usage (from the repository root; needs the dev extra ``grpcio-tools``)::

    .venv/bin/python -m idgraph.proto.generate          # rewrite the generated modules in place
    .venv/bin/python -m idgraph.proto.generate --check  # exit 1 if they are out of date

The generated ``*_pb2.py``, ``*_pb2.pyi`` and ``*_pb2_grpc.py`` files are committed, so the
runtime needs neither ``grpcio-tools`` nor a build step; never edit them by hand.

The folder ``proto/`` is installed as the package ``idgraph.proto``. protoc therefore runs
over a staging tree where each proto file sits at its installed path
(``idgraph/proto/idgraph/v1/profiles.proto``), so every generated import is absolute in the
installed layout (``from idgraph.proto.idgraph.v1 import profiles_pb2``) and the descriptor
pool knows the file by a name no other package claims.

The output depends on the grpcio-tools version (it stamps the protobuf and grpcio
versions the generated code requires), so regenerate after upgrading it.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""Repository root: the output root."""

INSTALLED_PREFIX = "idgraph/"
"""Where ``proto/`` sits in the installed layout (the package ``idgraph.proto``)."""

PROTO_FILES = ("proto/idgraph/v1/profiles.proto", "proto/idgraph/v1/segments.proto",
               "proto/idgraph/v1/privacy.proto", "proto/idgraph/v1/admin.proto")
"""Proto files to compile, relative to :data:`ROOT`."""

_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def generated_files(proto_file: str) -> list[str]:
    """Paths (relative to the output root) of the modules generated for ``proto_file``."""
    stem = proto_file.removesuffix(".proto")
    return [stem + suffix for suffix in _SUFFIXES]


def generate(out_dir: Path | str = ROOT) -> list[Path]:
    """Compile :data:`PROTO_FILES` into ``out_dir`` (same relative layout); return the files.

    Raises RuntimeError with protoc's output when compilation fails.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="idgraph-protoc-") as tmp:
        stage, compiled = Path(tmp) / "stage", Path(tmp) / "out"
        compiled.mkdir()
        for proto in PROTO_FILES:  # each file at its installed path
            target = stage / INSTALLED_PREFIX / proto
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / proto, target)
        cmd = [
            sys.executable, "-m", "grpc_tools.protoc",
            "-I", ".",
            f"--python_out={compiled}",
            f"--pyi_out={compiled}",
            f"--grpc_python_out={compiled}",
            *(INSTALLED_PREFIX + proto for proto in PROTO_FILES),
        ]
        proc = subprocess.run(cmd, cwd=stage, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(
                f"protoc failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}".rstrip()
            )
        written = []
        for proto in PROTO_FILES:
            for rel in generated_files(proto):
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(compiled / INSTALLED_PREFIX / rel, out / rel)
                written.append(out / rel)
    return written


def outdated() -> list[str]:
    """Committed generated modules that differ from a fresh compilation (or are missing)."""
    with tempfile.TemporaryDirectory(prefix="idgraph-proto-") as tmp:
        generate(tmp)
        stale = []
        for proto in PROTO_FILES:
            for rel in generated_files(proto):
                fresh, committed = Path(tmp) / rel, ROOT / rel
                if not committed.is_file() or not filecmp.cmp(fresh, committed, shallow=False):
                    stale.append(rel)
        return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m idgraph.proto.generate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--check", action="store_true",
                        help="only report out-of-date generated modules (exit 1 if any)")
    args = parser.parse_args(argv)
    if args.check:
        stale = outdated()
        for rel in stale:
            print(f"out of date: {rel}", file=sys.stderr)
        return 1 if stale else 0
    for path in generate(ROOT):
        print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
