"""The one way the local development servers start and stop their processes.

Every launcher (:mod:`idgraph.devservers.kafka_broker`, :mod:`idgraph.devservers.bolt_server`,
:mod:`idgraph.devservers.cassandra_cluster`) starts its server with :func:`spawn_logged` (output
appended to a log file, its own session so a Ctrl+C reaches only Python, and SIGTERM from
Linux when the starting thread dies, so a parent killed with SIGKILL leaves no orphan) and
stops it with :func:`terminate_process` (SIGTERM, a grace period, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import logging
import re
import signal
import socket
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from idgraph.core.ports import free_port

__all__ = ["LocalServer", "accepts_connections", "free_port", "log_tail", "parent_death_signal",
           "port_free", "spawn_logged", "terminate_process"]

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGTERM the child when its parent thread dies.

    Resolved in the parent so the child only makes one system call between fork and
    exec. None where prctl is unavailable (not Linux).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:  # the running program's symbols include libc's (no ldconfig subprocess needed)
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    term = int(signal.SIGTERM)

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, term, 0, 0, 0)

    return preexec


def spawn_logged(cmd: Sequence[str], log_path: Path, *, cwd: Path | None = None,
                 env: Mapping[str, str] | None = None,
                 die_with_parent: bool = True) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in its own session with stdout and stderr appended to ``log_path``.

    With ``die_with_parent`` (and on Linux) the child gets SIGTERM when the thread that
    started it dies: start it from the main thread, or one that outlives the server.
    Raises OSError when the command cannot run."""
    with Path(log_path).open("ab") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            list(cmd), cwd=cwd, env=None if env is None else dict(env),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True,
            # the hook only calls a pre-resolved prctl: it takes no lock, so it is safe
            # after fork() even when other threads run
            preexec_fn=parent_death_signal() if die_with_parent else None,  # noqa: PLW1509
        )


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


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def log_tail(path: Path | None, lines: int) -> str:
    """The last ``lines`` lines of a server's log, without terminal colour codes."""
    if path is None or not path.is_file():
        return "(no log)"
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        tail = deque(fh, maxlen=lines)
    return _ANSI.sub("", "".join(tail)).rstrip() or "(log is empty)"


class LocalServer:
    """The base of every local server: ``start`` brings it up (or raises naming why),
    ``stop`` stops it by PID and is idempotent, and ``with server:`` does both."""

    def start(self) -> object:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def port_free(host: str, port: int) -> bool:
    """Whether a server could bind ``host:port`` now. SO_REUSEADDR makes a port in
    TIME_WAIT count as free, as it is for the servers (they set the same option), while a
    listening socket, or a port this user may not bind, makes it taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def accepts_connections(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on ``host:port`` (0.5 s to answer)."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
