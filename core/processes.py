"""Helpers for the local servers the project starts as child processes (test brokers,
Bolt servers, Cassandra nodes)."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import signal
import socket
import subprocess
import sys
from collections.abc import Callable

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGTERM the child when its parent thread dies.

    Resolved in the parent so the child only makes one system call between fork and
    exec. None where prctl is unavailable (not Linux).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    term = int(signal.SIGTERM)

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, term, 0, 0, 0)

    return preexec


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def terminate_process(proc: subprocess.Popen, grace: float, signalled: bool = False) -> None:
    """Stop ``proc`` by PID: SIGTERM (unless ``signalled`` already), wait ``grace`` seconds,
    then SIGKILL; always reaps it. Several processes drain in parallel when the caller
    signals them all first."""
    if proc.poll() is None and not signalled:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        log.warning("pid %d ignored SIGTERM for %.0f s; killing it", proc.pid, grace)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
