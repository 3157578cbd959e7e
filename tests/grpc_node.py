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

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node_tools import NodeTool

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
PACKAGES = ("@grpc/grpc-js", "@grpc/proto-loader")
TOOL = NodeTool("grpc-client", PACKAGES, "the Node gRPC client")
DEFAULT_DEADLINE_MS = 10_000
JOB_OVERHEAD_SECONDS = 60
"""Time a job may take beyond its calls' deadlines (Node's start, loading the protos)."""



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
    job = {"target": target, "protoDir": str(PROTO_DIR),
           "calls": [{"service": c.service, "rpc": c.rpc, "request": c.request,
                      "key": c.key, "deadlineMs": c.deadline_ms} for c in calls]}
    timeout = JOB_OVERHEAD_SECONDS + sum(c.deadline_ms for c in calls) / 1000
    answer = TOOL.run_json("call.mjs", job, timeout)
    if not (isinstance(answer, list) and len(answer) == len(calls)
            and all(isinstance(r, dict) and isinstance(r.get("code"), int)
                    and isinstance(r.get("details"), str) and "messages" in r
                    for r in answer)):
        raise RuntimeError(f"grpc-client answered an unexpected shape: {json.dumps(answer)[:500]}")
    return [NodeResult(r["code"], r["details"], r["messages"]) for r in answer]







