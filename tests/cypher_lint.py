"""Lint Cypher with Neo4j's own parser (``tools/cypher-lint``), for tests.

The test server (ArcadeDB) accepts some syntax Neo4j 5 rejects, so tests run every
statement a backend sends through :func:`lint_cypher`. The npm dependencies are installed
(``npm ci``, from the pinned lock file) on first use; a missing ``node``/``npm`` or a failed
install raises RuntimeError, so the calling test fails rather than skips.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

TOOL_DIR = Path(__file__).resolve().parent.parent / "tools" / "cypher-lint"
PACKAGE = "@neo4j-cypher/language-support"
INSTALL_TIMEOUT_SECONDS = 600
LINT_TIMEOUT_SECONDS = 300

_install_lock = threading.Lock()


def lint_cypher(statements: list[str]) -> list[list[str]]:
    """Error messages of each statement, in order; an empty list: Neo4j 5 accepts it.

    Messages cover syntax errors and the errors of Neo4j's semantic analysis (undefined
    variables, removed syntax), not warnings. Parameters are taken as declared and no
    database schema is known. Raises RuntimeError when the linter cannot run.
    """
    if not all(isinstance(s, str) for s in statements):
        raise TypeError("statements must be strings")
    if not statements:
        return []
    node = _require("node")
    _ensure_installed()
    try:
        proc = subprocess.run(
            [node, str(TOOL_DIR / "lint.mjs")], input=json.dumps(statements), cwd=TOOL_DIR,
            capture_output=True, text=True, timeout=LINT_TIMEOUT_SECONDS, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"cypher-lint could not run: {exc}") from exc
    if proc.returncode != 0:
        raise RuntimeError(f"cypher-lint failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    try:
        result = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise RuntimeError(f"cypher-lint wrote invalid JSON: {proc.stdout[:500]!r}") from exc
    if not (isinstance(result, list) and len(result) == len(statements)
            and all(isinstance(m, list) and all(isinstance(x, str) for x in m)
                    for m in result)):
        raise RuntimeError(f"cypher-lint answered an unexpected shape: {proc.stdout[:500]!r}")
    return result


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise RuntimeError(
            f"`{tool}` is not on PATH: the Cypher linter needs Node.js >= 18.18 and npm "
            f"(tools/cypher-lint)")
    return path


def _pinned_version() -> str:
    lock = json.loads((TOOL_DIR / "package-lock.json").read_text(encoding="utf-8"))
    return str(lock["packages"][f"node_modules/{PACKAGE}"]["version"])


def _installed() -> bool:
    """True when ``npm ci`` completed with the pinned version (npm writes
    ``node_modules/.package-lock.json`` at the end of an install)."""
    modules = TOOL_DIR / "node_modules"
    manifest = modules / PACKAGE / "package.json"
    if not (modules / ".package-lock.json").is_file() or not manifest.is_file():
        return False
    installed = json.loads(manifest.read_text(encoding="utf-8")).get("version")
    return bool(installed == _pinned_version())


def _ensure_installed() -> None:
    """Run ``npm ci`` once when the dependencies are missing or stale; safe to call from
    parallel threads and processes (an exclusive lock file in the temp directory)."""
    if _installed():
        return
    npm = _require("npm")
    key = hashlib.sha256(str(TOOL_DIR).encode()).hexdigest()[:16]
    lock_path = Path(tempfile.gettempdir()) / f"idgraph-cypher-lint-{key}.lock"
    with _install_lock, open(lock_path, "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            if _installed():
                return
            try:
                proc = subprocess.run(
                    [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=TOOL_DIR,
                    capture_output=True, text=True, timeout=INSTALL_TIMEOUT_SECONDS,
                    check=False)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise RuntimeError(f"`npm ci` in {TOOL_DIR} could not run: {exc}") from exc
            if proc.returncode != 0 or not _installed():
                raise RuntimeError(
                    f"`npm ci` in {TOOL_DIR} failed (exit {proc.returncode}); the Cypher "
                    f"linter needs the npm registry once:\n{proc.stderr[-2000:]}")
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
