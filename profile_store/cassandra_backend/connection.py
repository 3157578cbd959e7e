"""Connecting to Cassandra: routing per region, consistency, TLS, credentials, errors.

Routing. The driver gets one execution profile per served region, ``region:R``, whose
load-balancing policy is ``TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=D))`` with
``D`` the region's data centre (``cassandra.local_datacenter`` when it is one of the
region's, else the first one ``region_datacenters[R]`` names) and no remote hosts. So a
statement of region R is coordinated in R's data centre and ``LOCAL_QUORUM`` means a
quorum of R's replicas, wherever the writer runs; when R's data centre is down its
statements fail at once (NoHostAvailable) and the other regions' go on. The default
profile carries the global keyspace's statements, in ``cassandra.local_datacenter`` (or,
when that holds no replica of it, the first data centre that does).

Consistency. Every profile has ``consistency_level`` = ``cassandra.consistency`` and no
statement sets its own, so every request (reads, writes, batches) is sent at that level.

Concurrency. :class:`Runner` keeps at most ``cassandra.concurrency`` requests in flight,
like the driver's ``execute_concurrent_with_args``, but each statement names its own
execution profile: one batch's statements go to several data centres at once. Rows come
back as tuples (``tuple_factory``: the cheapest row factory), every page fetched.
:class:`Statements` runs the named statements of :mod:`.schema` through one: each is
prepared once per keyspace and sent in its region's profile.

Errors. The store declares :func:`driver_error_types` and :func:`describe` at the
profile-store seam's driver-error boundary (:class:`~idgraph.core.errors.DriverErrorBoundary`),
which turns a driver error raised in a seam method into :class:`BackendError` naming the
method. A statement of a region that fails (the runner hands its error back rather than
raising it) becomes :class:`BackendError` naming the operation and the region here
(:meth:`Statements.run`, :func:`backend_error`). Either says what failed (consistency,
replicas alive, hosts tried), never a key or a value.

Schema. :func:`ensure_schema` creates (or, read-only, requires) keyspaces and tables and
refuses a keyspace replicated otherwise than the settings say; the store and the segment
catalog (:mod:`.segment_catalog`, which opens the global keyspace alone) both use it.

The driver is imported by the functions that need it (and by the store's module, which
the package imports on first use), never by importing this package: a missing driver is a
ConfigError naming the extra to install.
"""

from __future__ import annotations

import re
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from idgraph.core.errors import BackendError, ConfigError
from idgraph.profile_store.cassandra_backend import schema as q
from idgraph.profile_store.cassandra_backend.settings import CassandraSettings

DDL_TIMEOUT = 120.0  # a schema change waits for every node to agree (seconds on 2.1)
DDL_CONCURRENCY = 8  # tables created at once (2.1 applies them one by one anyway)
_DC_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_DRIVER_HINT = "install the project's cassandra extra: pip install 'idgraph[cassandra]'"
_DRIVER_MISSING = f"profile_store_backend=cassandra needs cassandra-driver: {_DRIVER_HINT}"


def driver_error_types() -> tuple[type[BaseException], ...]:
    """The driver's exception classes (what the seam's boundary and :func:`backend_error`
    translate); ConfigError naming the extra to install when the driver is missing."""
    try:
        from cassandra import DriverException, RequestExecutionException
        from cassandra.cluster import NoHostAvailable
    except ImportError as exc:
        raise ConfigError(_DRIVER_MISSING) from exc
    return (DriverException, RequestExecutionException, NoHostAvailable, OSError)


def chunks(items: Sequence, size: int) -> Iterator[list]:
    """``items`` in consecutive lists of at most ``size``."""
    for i in range(0, len(items), size):
        yield list(items[i:i + size])


def region_datacenter(cfg: CassandraSettings, region: str) -> str:
    """The data centre that coordinates ``region``'s statements (module docstring)."""
    dcs = cfg.region_datacenters.get(region)
    if not dcs:
        raise ConfigError(f"cassandra.region_datacenters: no data centre for region {region!r}")
    return cfg.local_datacenter if cfg.local_datacenter in dcs else next(iter(dcs))


def global_replication(cfg: CassandraSettings) -> dict[str, int]:
    """Replication of the global keyspace: every data centre of any region, at the largest
    factor a region gives it (any writer dedupes at its local quorum)."""
    merged: dict[str, int] = {}
    for per_region in cfg.region_datacenters.values():
        for dc, rf in per_region.items():
            merged[dc] = max(rf, merged.get(dc, 0))
    return merged


def global_datacenter(cfg: CassandraSettings) -> str:
    """The data centre coordinating the global keyspace's statements: the local one when it
    holds a replica, else the first one that does."""
    dcs = global_replication(cfg)
    return cfg.local_datacenter if cfg.local_datacenter in dcs or not dcs else next(iter(dcs))


def check_settings(cfg: CassandraSettings, regions: Sequence[str]) -> None:
    """ConfigError naming the field when the settings cannot work for ``regions``."""
    for region in regions:
        region_datacenter(cfg, region)
    for region, dcs in cfg.region_datacenters.items():
        for dc, rf in dcs.items():
            if not _DC_NAME.match(dc):
                raise ConfigError(f"cassandra.region_datacenters.{region}: data centre name "
                                  f"{dc!r} must match {_DC_NAME.pattern}")
            if not isinstance(rf, int) or rf < 1:
                raise ConfigError(f"cassandra.region_datacenters.{region}.{dc}: replication "
                                  f"factor must be a positive integer, got {rf!r}")
    if not cfg.contact_points:
        raise ConfigError("cassandra.contact_points: empty")
    if (cfg.ssl_cert_file is None) != (cfg.ssl_key_file is None):
        raise ConfigError("cassandra.ssl_cert_file and cassandra.ssl_key_file go together")
    if cfg.password.get_secret_value() and not cfg.username:
        # without a user name no credentials would be sent at all
        raise ConfigError("cassandra.password is set but cassandra.username is empty")
    for name in ("ssl_ca_file", "ssl_cert_file", "ssl_key_file"):
        path = getattr(cfg, name)
        if path is not None and not path.is_file():
            raise ConfigError(f"cassandra.{name}: {path} is not a file")


def _ssl_context(cfg: CassandraSettings) -> ssl.SSLContext | None:
    """TLS when a CA or a client certificate is configured: the server's certificate is
    verified against ``ssl_ca_file`` (the system's CAs when unset), and its name too (the
    driver checks it against the address it connects to)."""
    if cfg.ssl_ca_file is None and cfg.ssl_cert_file is None:
        return None
    field = "ssl_ca_file"
    try:
        context = ssl.create_default_context(
            cafile=str(cfg.ssl_ca_file) if cfg.ssl_ca_file is not None else None)
        if cfg.ssl_cert_file is not None and cfg.ssl_key_file is not None:
            field = "ssl_cert_file"
            context.load_cert_chain(str(cfg.ssl_cert_file), str(cfg.ssl_key_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cassandra.{field}: cannot load the TLS file(s): {exc}") from exc
    return context


def profile_name(region: str | None) -> Any:
    """Execution profile key of a region's statements (None: the global keyspace)."""
    if region is None:
        from cassandra.cluster import EXEC_PROFILE_DEFAULT

        return EXEC_PROFILE_DEFAULT
    return f"region:{region}"


def connect(cfg: CassandraSettings, regions: Sequence[str]) -> tuple[Any, Any]:
    """(Cluster, Session) with one routing profile per region (module docstring)."""
    try:
        from cassandra import ConsistencyLevel
        from cassandra.auth import PlainTextAuthProvider
        from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
        from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
        from cassandra.query import tuple_factory
    except ImportError as exc:
        raise ConfigError(_DRIVER_MISSING) from exc
    check_settings(cfg, regions)
    consistency = ConsistencyLevel.name_to_value[cfg.consistency]

    def profile(dc: str) -> ExecutionProfile:
        return ExecutionProfile(
            load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=dc)),
            consistency_level=consistency, request_timeout=cfg.request_timeout_seconds,
            row_factory=tuple_factory)

    profiles = {EXEC_PROFILE_DEFAULT: profile(global_datacenter(cfg))}
    for region in regions:
        profiles[profile_name(region)] = profile(region_datacenter(cfg, region))
    kwargs: dict[str, Any] = {
        "contact_points": list(cfg.contact_points), "port": cfg.port,
        "execution_profiles": profiles, "connect_timeout": cfg.request_timeout_seconds,
        "control_connection_timeout": cfg.request_timeout_seconds,
    }
    if cfg.protocol_version is not None:
        kwargs["protocol_version"] = cfg.protocol_version
    if cfg.username:
        kwargs["auth_provider"] = PlainTextAuthProvider(
            username=cfg.username, password=cfg.password.get_secret_value())
    context = _ssl_context(cfg)
    if context is not None:
        kwargs["ssl_context"] = context
    cluster = Cluster(**kwargs)
    try:
        # every pool up (or failed) before the first statement: a region routed to a host
        # whose pool is still opening would fail at once
        session = cluster.connect(wait_for_all_pools=True)
    except driver_error_types() as exc:
        cluster.shutdown()
        error = backend_error("connect", None, exc)
        if context is None and _only_timeouts(exc):
            # a TLS-only node never answers a plaintext client: say where to look
            error = BackendError(f"{error} (if the cluster requires TLS, set "
                                 "cassandra.ssl_ca_file)")
        raise error from exc
    return cluster, session


def _only_timeouts(exc: BaseException) -> bool:
    """Whether every host of a NoHostAvailable timed out opening its connection."""
    from cassandra import OperationTimedOut

    errors = list((getattr(exc, "errors", None) or {}).values())
    return bool(errors) and all(isinstance(e, OperationTimedOut) for e in errors)


SchemaTarget = tuple[str | None, str, dict[str, str], dict[str, int]]
"""(region or None for the global keyspace, keyspace name, table -> DDL, replication)."""


def ensure_schema(cluster: Any, session: Any, targets: Sequence[SchemaTarget],
                  readonly: bool, what: str = "profile store") -> None:
    """Create the keyspaces and tables of ``targets`` that are missing (read-only:
    BackendError naming ``what`` when one is), and refuse (ConfigError naming the field) a
    keyspace replicated otherwise than its target says."""
    errors = driver_error_types()
    metadata = cluster.metadata

    def execute(cql: str, operation: str, region: str | None) -> None:
        try:
            session.execute(cql, execution_profile=profile_name(None), timeout=DDL_TIMEOUT)
        except errors as exc:
            raise backend_error(operation, region, exc, what) from exc

    def refresh() -> None:
        try:
            cluster.refresh_schema_metadata()
        except errors as exc:
            raise backend_error("schema agreement", None, exc, what) from exc

    created = False
    for region, ks, _, want in targets:
        existing = metadata.keyspaces.get(ks)
        if existing is None:
            if readonly:
                raise BackendError(f"{what}: keyspace {ks} does not exist (run an ingest first)")
            execute(f"CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = "
                    f"{q.replication_cql(want)}", "create keyspace", region)
            created = True
            continue
        check_replication(ks, existing, want, region)
    if created:
        refresh()
    missing = [(region, ddl.format(ks=ks)) for region, ks, ddls, _ in targets
               for table, ddl in ddls.items()
               if table not in metadata.keyspaces[ks].tables]
    if missing and readonly:
        raise BackendError(f"{what}: {len(missing)} table(s) missing (run an ingest first)")
    if missing:
        results = Runner(session, DDL_CONCURRENCY).run(
            [(cql, None, profile_name(None)) for _, cql in missing], timeout=DDL_TIMEOUT)
        for (region, _), res in zip(missing, results, strict=True):
            if isinstance(res, BaseException):
                raise backend_error("create table", region, res, what)
        refresh()


def check_replication(ks: str, meta: Any, want: dict[str, int], region: str | None) -> None:
    """ConfigError naming the settings field when keyspace ``ks`` (its metadata ``meta``)
    is not replicated as ``want``."""
    strategy = meta.replication_strategy
    have = getattr(strategy, "dc_replication_factors", None)
    if have != want:
        field = f"region_datacenters.{region}" if region else "region_datacenters"
        raise ConfigError(
            f"cassandra.{field}: keyspace {ks} is replicated as {have or strategy!r}, "
            f"the settings say {want}; ALTER KEYSPACE it or fix the settings (rows are "
            "never written where the settings do not allow them)")


def backend_error(operation: str, region: str | None, exc: BaseException,
                  what: str = "profile store") -> BackendError:
    """A :class:`BackendError` for a driver failure: operation, region, what failed."""
    where = f" in region {region!r}" if region else ""
    return BackendError(f"{what}: {operation}{where} failed: {describe(exc)}")


_SSL_REASON = re.compile(r"\[SSL[^\]]*\]\s*([^()]*)")
_SERVER_MESSAGE = re.compile(r'message="([^"]*)"')


def describe(exc: BaseException) -> str:
    """What a driver error says about the failure, without keys or values: its class, the
    consistency level and replicas the server reported, the hosts tried, why TLS or the
    login failed."""
    from cassandra import AuthenticationFailed, ReadTimeout, Unavailable, WriteTimeout
    from cassandra.cluster import NoHostAvailable

    detail = type(exc).__name__
    if isinstance(exc, AuthenticationFailed):
        said = _SERVER_MESSAGE.search(str(exc))
        return (f"{detail} ({said.group(1) if said else exc}: check cassandra.username and "
                "cassandra.password)")
    if isinstance(exc, OSError) and (why := _tls_reason(exc)):
        return f"{detail} (TLS: {why})"
    if isinstance(exc, Unavailable):
        detail += (f" (consistency {_level(exc.consistency)} needs {exc.required_replicas} "
                   f"replica(s), {exc.alive_replicas} alive)")
    elif isinstance(exc, ReadTimeout | WriteTimeout):
        detail += (f" (consistency {_level(exc.consistency)}: {exc.received_responses} of "
                   f"{exc.required_responses} replica(s) answered)")
    elif isinstance(exc, NoHostAvailable):
        tried = "; ".join(f"{getattr(host, 'address', host)}: {describe(err)}"
                          for host, err in (exc.errors or {}).items())
        detail += f" (tried {tried})" if tried else " (no host of the data centre is up)"
    return detail


def _tls_reason(exc: OSError) -> str | None:
    """Why a TLS handshake failed, or None when ``exc`` is no TLS error. The driver
    re-raises the ``ssl`` module's error as a plain OSError with its text."""
    if isinstance(exc, ssl.SSLError):
        verify = getattr(exc, "verify_message", None)
        return f"certificate verify failed: {verify}" if verify else exc.reason or str(exc)
    found = _SSL_REASON.search(str(exc))
    return (found.group(1).strip() or None) if found else None


def _level(value: object) -> str:
    from cassandra import ConsistencyLevel

    return ConsistencyLevel.value_to_name.get(value, str(value))  # type: ignore[arg-type]


Call = tuple[Any, Any, Any]
"""(statement, bind values or None, execution profile key)."""


class Runner:
    """Runs statements with at most ``concurrency`` in flight (module docstring)."""

    def __init__(self, session: Any, concurrency: int) -> None:
        self._session = session
        self._concurrency = max(1, concurrency)

    def run(self, calls: Sequence[Call],
            timeout: float | None = None) -> list[list[tuple] | BaseException]:
        """One entry per call, in order: its rows (every page), or the exception it
        raised. Never raises for a failed statement; the caller decides. ``timeout``
        overrides the profiles' request timeout (schema changes wait for agreement)."""
        n = len(calls)
        results: list[Any] = [None] * n
        if n == 0:
            return results
        slots = threading.Semaphore(self._concurrency)
        done = threading.Event()
        lock = threading.Lock()
        left = [n]

        def finish(i: int, result: Any) -> None:
            results[i] = result
            slots.release()
            with lock:
                left[0] -= 1
                last = left[0] == 0
            if last:
                done.set()

        def on_page(page: Any, future: Any, i: int, rows: list) -> None:
            if page:
                rows.extend(page)
            if future.has_more_pages:
                future.start_fetching_next_page()
            else:
                finish(i, rows)

        def on_error(exc: BaseException, i: int) -> None:
            finish(i, exc)

        for i, (statement, values, profile) in enumerate(calls):
            slots.acquire()
            try:
                if timeout is None:
                    future = self._session.execute_async(statement, values,
                                                         execution_profile=profile)
                else:
                    future = self._session.execute_async(statement, values, timeout=timeout,
                                                         execution_profile=profile)
            except Exception as exc:  # noqa: BLE001 - reported per call like the others
                finish(i, exc)
                continue
            future.add_callbacks(on_page, on_error, callback_args=(future, i, []),
                                 errback_args=(i,))
        done.wait()
        return results


NamedCall = tuple[str | None, str, Any]
"""(region or None for the global keyspace, statement name in :mod:`.schema`, bind values
or None)."""


class Statements:
    """The named statements of :mod:`.schema` on one session: each prepared on first use,
    once per keyspace, and run in its region's execution profile through a :class:`Runner`
    (the store, its journal and its outbox share one)."""

    def __init__(self, session: Any, keyspace: Callable[[str | None], str],
                 concurrency: int) -> None:
        """``keyspace(region)`` names a region's keyspace (None: the global one)."""
        self._runner = Runner(session, concurrency)
        self._session = session
        self._keyspace = keyspace
        self._errors = driver_error_types()
        self._prepared: dict[tuple[str | None, str], Any] = {}
        self._lock = threading.Lock()

    def prepared(self, region: str | None, name: str) -> Any:
        """Statement ``name`` of ``region``'s keyspace (None: the global one). A driver
        error preparing it is raised as is: the seam's boundary names the method."""
        key = (region, name)
        stmt = self._prepared.get(key)
        if stmt is not None:
            return stmt
        with self._lock:
            stmt = self._prepared.get(key)
            if stmt is None:
                if name in q.MUTATIONS:  # a region's, or the global keyspace's (with None)
                    cql = q.MUTATIONS[name][0]
                elif region is None:
                    cql = q.GLOBAL_QUERIES[name]
                else:
                    cql = q.REGION_QUERIES[name]
                stmt = self._session.prepare(cql.format(ks=self._keyspace(region)))
                self._prepared[key] = stmt
        return stmt

    def run(self, calls: Iterable[NamedCall], operation: str,
            strict: bool = True) -> list[Any]:
        """Run named calls concurrently; rows per call, in order. With ``strict`` the first
        failure raises (BackendError naming ``operation`` and its region); else the
        exceptions are returned in place of rows."""
        calls = list(calls)
        results = self._runner.run(
            [(self.prepared(r, name), values, profile_name(r)) for r, name, values in calls])
        if strict:
            for (region, _, _), res in zip(calls, results, strict=True):
                if isinstance(res, BaseException):
                    raise self.error(operation, region, res)
        return results

    def execute(self, calls: Sequence[tuple[Any, Any, str | None]], operation: str) -> None:
        """Run ``(statement, bind values or None, region)`` calls (bound statements or
        batches) concurrently; raise for the first that failed, as :meth:`run` does."""
        results = self._runner.run([(stmt, values, profile_name(region))
                                   for stmt, values, region in calls])
        for (_, _, region), res in zip(calls, results, strict=True):
            if isinstance(res, BaseException):
                raise self.error(operation, region, res)

    def error(self, operation: str, region: str | None, exc: BaseException) -> BaseException:
        """What to raise for a call's failure: BackendError naming the operation and the
        region for a driver error (:func:`backend_error`), anything else unchanged."""
        if isinstance(exc, self._errors):
            return backend_error(operation, region, exc)
        return exc
