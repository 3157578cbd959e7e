"""Call the gRPC services from Node (``tools/grpc-client``), for tests.

An independent client: ``@grpc/grpc-js`` with messages built by ``@grpc/proto-loader``
from the ``.proto`` files under ``proto/``, so nothing of the Python stack (generated
code, grpcio) stands between a test and the server's wire behaviour. :func:`call_node`
runs one job (calls in order, on one channel) and returns each call's status.

The npm dependencies are installed (``npm ci``, from the pinned lock file) on first use;
a missing ``node``/``npm`` or a failed install raises RuntimeError, so the calling test
fails rather than skips.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TOOL_DIR = ROOT / "tools" / "grpc-client"
PROTO_DIR = ROOT / "proto"
PACKAGES = ("@grpc/grpc-js", "@grpc/proto-loader")
INSTALL_TIMEOUT_SECONDS = 600
DEFAULT_DEADLINE_MS = 10_000
JOB_OVERHEAD_SECONDS = 60
"""Time a job may take beyond its calls' deadlines (Node's start, loading the protos)."""

_install_lock = threading.Lock()


@dataclass(frozen=True)
class NodeCall:
    """One rpc to make: ``service`` is the full name (``idgraph.v1.ProfileService``),
    ``request`` the request message as a dict with the .proto's field names (a field the
    message does not have fails the job), ``key`` the bearer credential (None: no
    ``authorization`` metadata)."""

    service: str
    rpc: str
    request: dict[str, Any] = field(default_factory=dict)
    key: str | None = None
    deadline_ms: int = DEFAULT_DEADLINE_MS


@dataclass(frozen=True)
class NodeResult:
    """How a call ended: ``code`` the gRPC status number (0: OK), ``details`` its
    message, ``messages`` the response as JSON for a unary rpc (None on an error; longs
    and enums as strings, bytes base64, unset fields absent) or the number of messages a
    server-streaming rpc sent."""

    code: int
    details: str
    messages: Any

    def text(self) -> str:
        """The response as JSON text (what a test searches for values)."""
        return json.dumps(self.messages, sort_keys=True)


def call_node(target: str, calls: list[NodeCall]) -> list[NodeResult]:
    """Make ``calls`` in order against ``target`` (``host:port``, plaintext) from Node.

    Returns one result per call. Raises RuntimeError when the client cannot run (no
    ``node``, a failed install, an invalid job such as an unknown rpc or request field).
    """
    if not calls:
        return []
    node = _require("node")
    _ensure_installed()
    job = {"target": target, "protoDir": str(PROTO_DIR),
           "calls": [{"service": c.service, "rpc": c.rpc, "request": c.request,
                      "key": c.key, "deadlineMs": c.deadline_ms} for c in calls]}
    timeout = JOB_OVERHEAD_SECONDS + sum(c.deadline_ms for c in calls) / 1000
    try:
        proc = subprocess.run(
            [node, str(TOOL_DIR / "call.mjs")], input=json.dumps(job), cwd=TOOL_DIR,
            capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"grpc-client could not run: {exc}") from exc
    if proc.returncode != 0:
        raise RuntimeError(f"grpc-client failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    try:
        answer = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise RuntimeError(f"grpc-client wrote invalid JSON: {proc.stdout[:500]!r}") from exc
    if not (isinstance(answer, list) and len(answer) == len(calls)
            and all(isinstance(r, dict) and isinstance(r.get("code"), int)
                    and isinstance(r.get("details"), str) and "messages" in r
                    for r in answer)):
        raise RuntimeError(f"grpc-client answered an unexpected shape: {proc.stdout[:500]!r}")
    return [NodeResult(r["code"], r["details"], r["messages"]) for r in answer]


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise RuntimeError(
            f"`{tool}` is not on PATH: the Node gRPC client needs Node.js >= 18 and npm "
            f"(tools/grpc-client)")
    return path


def _pinned_versions() -> dict[str, str]:
    lock = json.loads((TOOL_DIR / "package-lock.json").read_text(encoding="utf-8"))
    return {p: str(lock["packages"][f"node_modules/{p}"]["version"]) for p in PACKAGES}


def _installed() -> bool:
    """True when ``npm ci`` completed with the pinned versions (npm writes
    ``node_modules/.package-lock.json`` at the end of an install)."""
    modules = TOOL_DIR / "node_modules"
    if not (modules / ".package-lock.json").is_file():
        return False
    for package, version in _pinned_versions().items():
        manifest = modules / package / "package.json"
        if not manifest.is_file():
            return False
        if json.loads(manifest.read_text(encoding="utf-8")).get("version") != version:
            return False
    return True


def _ensure_installed() -> None:
    """Run ``npm ci`` once when the dependencies are missing or stale; safe to call from
    parallel threads and processes (an exclusive lock file in the temp directory)."""
    if _installed():
        return
    npm = _require("npm")
    key = hashlib.sha256(str(TOOL_DIR).encode()).hexdigest()[:16]
    lock_path = Path(tempfile.gettempdir()) / f"idgraph-grpc-client-{key}.lock"
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
                    f"`npm ci` in {TOOL_DIR} failed (exit {proc.returncode}); the Node gRPC "
                    f"client needs the npm registry once:\n{proc.stderr[-2000:]}")
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
