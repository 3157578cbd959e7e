"""Node.js tools the tests run (``tools/<name>``: a ``package.json`` and its pinned
``package-lock.json``; ``node_modules`` is not committed).

:class:`NodeTool` installs a tool's dependencies with ``npm ci`` on first use (once per
machine: an exclusive lock file in the temp directory serialises threads and processes)
and checks the installed versions against the lock. A missing ``node``/``npm`` or a failed
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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TOOLS = Path(__file__).resolve().parent.parent / "tools"
INSTALL_TIMEOUT_SECONDS = 600

_install_lock = threading.Lock()


class NodeTool:
    """The tool in ``tools/<name>``, needing ``packages`` (checked against the lock);
    ``what`` names it in errors ("the Cypher linter")."""

    def __init__(self, name: str, packages: Sequence[str], what: str) -> None:
        self.dir = TOOLS / name
        self.packages = tuple(packages)
        self.what = what

    def require(self, tool: str) -> str:
        """The path of ``node`` or ``npm``; RuntimeError when it is not on PATH."""
        path = shutil.which(tool)
        if path is None:
            raise RuntimeError(f"`{tool}` is not on PATH: {self.what} needs Node.js >= 18.18 "
                               f"and npm ({self.dir.relative_to(TOOLS.parent)})")
        return path

    def pinned_versions(self) -> dict[str, str]:
        lock = json.loads((self.dir / "package-lock.json").read_text(encoding="utf-8"))
        return {p: str(lock["packages"][f"node_modules/{p}"]["version"])
                for p in self.packages}

    def installed(self) -> bool:
        """True when ``npm ci`` completed with the pinned versions (npm writes
        ``node_modules/.package-lock.json`` at the end of an install)."""
        modules = self.dir / "node_modules"
        if not (modules / ".package-lock.json").is_file():
            return False
        for package, version in self.pinned_versions().items():
            manifest = modules / package / "package.json"
            if not manifest.is_file() or \
                    json.loads(manifest.read_text(encoding="utf-8")).get("version") != version:
                return False
        return True

    def ensure_installed(self) -> None:
        """Run ``npm ci`` once when the dependencies are missing or stale."""
        if self.installed():
            return
        npm = self.require("npm")
        key = hashlib.sha256(str(self.dir).encode()).hexdigest()[:16]
        lock_path = Path(tempfile.gettempdir()) / f"idgraph-{self.dir.name}-{key}.lock"
        with _install_lock, open(lock_path, "w") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                if self.installed():
                    return
                try:
                    proc = subprocess.run(
                        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                        cwd=self.dir, capture_output=True, text=True,
                        timeout=INSTALL_TIMEOUT_SECONDS, check=False)
                except (OSError, subprocess.TimeoutExpired) as exc:
                    raise RuntimeError(f"`npm ci` in {self.dir} could not run: {exc}") from exc
                if proc.returncode != 0 or not self.installed():
                    raise RuntimeError(
                        f"`npm ci` in {self.dir} failed (exit {proc.returncode}); {self.what} "
                        f"needs the npm registry once:\n{proc.stderr[-2000:]}")
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def node(self) -> str:
        """``node``'s path, the dependencies installed."""
        node = self.require("node")
        self.ensure_installed()
        return node

    def run_json(self, script: str, payload: Any, timeout: float) -> Any:
        """Run ``node <script>`` in the tool's folder with ``payload`` as JSON on stdin and
        return its stdout parsed as JSON. RuntimeError (naming the tool) when it cannot
        run, exits non-zero, outlives ``timeout`` seconds or writes invalid JSON."""
        node = self.node()
        try:
            proc = subprocess.run(
                [node, str(self.dir / script)], input=json.dumps(payload), cwd=self.dir,
                capture_output=True, text=True, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeError(f"{self.dir.name} could not run: {exc}") from exc
        if proc.returncode != 0:
            raise RuntimeError(
                f"{self.dir.name} failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
        try:
            return json.loads(proc.stdout)
        except json.JSONDecodeError as exc:
            raise RuntimeError(
                f"{self.dir.name} wrote invalid JSON: {proc.stdout[:500]!r}") from exc
