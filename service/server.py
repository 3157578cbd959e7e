"""Build and run the gRPC server: ProfileService, SegmentService, PrivacyService,
AdminService, health checking and reflection.

Concurrency model: the synchronous ``grpc.server`` with a thread pool of
``GrpcSettings.max_workers`` threads. ProfileQueries is synchronous (SQLite behind it), so
an asyncio server would have to hop to a thread pool for every call anyway (or block its
loop). Measured over loopback on 2 cores at 1000 Lookup/s (server in its own process, one
sync client, small profile): p50 ~0.6 ms, p99 ~1.0-1.2 ms, with auth on; a bare grpc.aio
prototype without interceptors was not measurably better (p99 0.9-1.5 ms).

Security (:class:`~idgraph.service.access.Access`): every call but health checks is
authenticated (API keys, deprecated static tokens, client certificates), authorised by the
permission table (:mod:`idgraph.auth.roles`), rate limited and, when it changes something or
reads profiles, audited. With no credential configured at all the server authenticates
nobody, so it refuses to bind anything but a loopback address (or a Unix socket); off
loopback it also refuses plain text unless ``grpc.allow_plaintext``. TLS is used when both
``tls_cert_file`` and ``tls_key_file`` are set; ``tls_client_ca_file`` adds client
certificates (mutual TLS). A key limited to some of the served regions is served by
servicers over a store of those regions only (:mod:`idgraph.service.scopes`).

Explain needs an :class:`idgraph.engine.explain.Explainer` (a read-only view of the identity
graph) and the review rpcs a :class:`idgraph.coordination.ReviewQueue`; without
them those rpcs answer UNIMPLEMENTED. The caller owns both (and closes them after the
server stopped).
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import threading
from collections.abc import Callable
from concurrent import futures
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from idgraph.core.errors import ConfigError
from idgraph.proto.idgraph.v1 import admin_pb2 as apb
from idgraph.proto.idgraph.v1 import admin_pb2_grpc as apb_grpc
from idgraph.proto.idgraph.v1 import privacy_pb2 as ppb
from idgraph.proto.idgraph.v1 import privacy_pb2_grpc as ppb_grpc
from idgraph.proto.idgraph.v1 import profiles_pb2 as pb
from idgraph.proto.idgraph.v1 import profiles_pb2_grpc as pb_grpc
from idgraph.proto.idgraph.v1 import segments_pb2 as spb
from idgraph.proto.idgraph.v1 import segments_pb2_grpc as spb_grpc
from idgraph.service.access import AUDITED_CALLS, Access, static_access
from idgraph.service.admin_servicer import AdminServiceServicer
from idgraph.service.interceptors import (
    AuditInterceptor,
    AuthInterceptor,
    ErrorMappingInterceptor,
)
from idgraph.service.metrics import MetricsInterceptor, ServerMetrics
from idgraph.service.privacy_servicer import PrivacyServiceServicer
from idgraph.service.scopes import RegionScopes, ScopeBackends, dispatcher
from idgraph.service.segment_servicer import SegmentServiceServicer
from idgraph.service.servicer import ProfileServiceServicer
from idgraph.service.settings import GrpcSettings

if TYPE_CHECKING:  # idgraph.engine.queries pulls in the resolver; only the types are needed here
    from idgraph.coordination import ReviewQueue
    from idgraph.engine.consent import ConsentService
    from idgraph.engine.explain import Explainer
    from idgraph.engine.queries import ProfileQueries
    from idgraph.profile_store.segment_state import SegmentCatalog

_LOG = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ProfileService"].full_name
"""``idgraph.v1.ProfileService``: the name health checks and reflection know it by."""
SEGMENT_SERVICE_NAME = spb.DESCRIPTOR.services_by_name["SegmentService"].full_name
"""``idgraph.v1.SegmentService``."""
PRIVACY_SERVICE_NAME = ppb.DESCRIPTOR.services_by_name["PrivacyService"].full_name
"""``idgraph.v1.PrivacyService`` (served when the server has the privacy ledger)."""
ADMIN_SERVICE_NAME = apb.DESCRIPTOR.services_by_name["AdminService"].full_name
"""``idgraph.v1.AdminService``: keys, the audit log, the server's status."""

_SERVER_OPTIONS = [
    # grpc enables SO_REUSEPORT by default on Linux, letting a second server silently share
    # (and steal half the traffic of) a port already in use. Fail to bind instead.
    ("grpc.so_reuseport", 0),
]


def _split_address(address: str) -> str:
    """The host part of ``host:port`` / ``[v6]:port``; the whole thing for ``unix:``."""
    if address.startswith(("unix:", "unix-abstract:")):
        return address
    host = address.rsplit(":", 1)[0] if ":" in address else address
    return host.strip("[]")


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8, ::1 and Unix sockets: reachable only from this host."""
    if host.startswith(("unix:", "unix-abstract:")):
        return True
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _default_address(settings: GrpcSettings) -> str:
    host = settings.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{settings.port}"


def _token_list(secrets: list, setting: str) -> list[str]:
    tokens = []
    for i, secret in enumerate(secrets):
        token = secret.get_secret_value().strip()
        if not token:
            raise ConfigError(f"{setting}[{i}] is empty")
        tokens.append(token)
    return tokens


def configured_tokens(settings: GrpcSettings) -> tuple[list[str], list[str], list[str]]:
    """The api, steward and privacy tokens; a token may have only one role."""
    api = _token_list(settings.api_tokens, "grpc.api_tokens")
    stewards = _token_list(settings.steward_tokens, "grpc.steward_tokens")
    privacy = _token_list(settings.privacy_tokens, "grpc.privacy_tokens")
    seen = {t: "grpc.api_tokens" for t in api}
    for setting, tokens in (("grpc.steward_tokens", stewards), ("grpc.privacy_tokens", privacy)):
        for i, token in enumerate(tokens):
            if token in seen:
                raise ConfigError(
                    f"{setting}[{i}] is also in {seen[token]}; a token has one role")
        seen.update((t, setting) for t in tokens)
    return api, stewards, privacy


def _read(path: Path, setting: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{setting}: cannot read {str(path)!r}: {exc.strerror}") from None


def _credentials(settings: GrpcSettings) -> grpc.ServerCredentials | None:
    cert, key = settings.tls_cert_file, settings.tls_key_file
    if cert is None and key is None:
        if settings.tls_client_ca_file is not None:
            raise ConfigError("grpc.tls_client_ca_file needs grpc.tls_cert_file and "
                              "grpc.tls_key_file: client certificates are checked over TLS")
        return None
    if cert is None or key is None:
        missing = "grpc.tls_cert_file" if cert is None else "grpc.tls_key_file"
        raise ConfigError(f"{missing} is not set: TLS needs both a certificate and a key")
    client_ca = settings.tls_client_ca_file
    return grpc.ssl_server_credentials(
        [(_read(key, "grpc.tls_key_file"), _read(cert, "grpc.tls_cert_file"))],
        root_certificates=(_read(client_ca, "grpc.tls_client_ca_file")
                           if client_ca is not None else None),
        require_client_auth=client_ca is not None,
    )


def _servicer_builder(settings: GrpcSettings, reviews: ReviewQueue | None,
                      segment_catalog: SegmentCatalog | None, access: Access,
                      log_retention_hours: float) -> Callable[[ScopeBackends], dict[str, Any]]:
    """Builds the servicers of one region scope over its backends."""
    from idgraph.engine.segment_definitions import SegmentDefinitions
    from idgraph.engine.segment_queries import SegmentQueries

    def build(backends: ScopeBackends) -> dict[str, Any]:
        queries, consent = backends.queries, backends.consent
        servicers: dict[str, Any] = {
            SERVICE_NAME: ProfileServiceServicer(
                queries, max_batch_lookup=settings.max_batch_lookup,
                explainer=backends.explainer, reviews=reviews, consent=consent,
                access=access),
            SEGMENT_SERVICE_NAME: SegmentServiceServicer(
                SegmentDefinitions(queries.store, segment_catalog),
                SegmentQueries(queries.store, queries), max_watchers=settings.max_watchers,
                watch_poll_seconds=settings.watch_poll_seconds, consent=consent,
                log_retention_hours=log_retention_hours),
        }
        if consent is not None:
            servicers[PRIVACY_SERVICE_NAME] = PrivacyServiceServicer(
                consent, consent.keys, explainer=backends.explainer)
        return servicers

    return build


def _check_exposure(settings: GrpcSettings, host: str, access: Access,
                    credentials: grpc.ServerCredentials | None) -> None:
    """Refuse to serve off loopback without credentials, or in plain text unless told."""
    if is_loopback(host):
        return
    if not access.authenticator.enabled:
        raise ConfigError(
            "no API key store, static token or client certificate is configured, which is "
            f"only allowed on a loopback address; refusing to serve unauthenticated on "
            f"{host!r} (create keys with `idgraph keys create`, or bind grpc.host to "
            "127.0.0.1)")
    if credentials is None and not settings.allow_plaintext:
        raise ConfigError(
            f"grpc.tls_cert_file and grpc.tls_key_file are not set; refusing to serve "
            f"{host!r} in plain text (keys would cross the network readable). Set them, or "
            "set grpc.allow_plaintext = true when a proxy or mesh terminates TLS in front")


def _build(
    queries: ProfileQueries, settings: GrpcSettings, address: str | None,
    reuse_port: bool = False, explainer: Explainer | None = None,
    reviews: ReviewQueue | None = None, segment_catalog: SegmentCatalog | None = None,
    consent: ConsentService | None = None, access: Access | None = None,
    metrics: ServerMetrics | None = None, segment_log_retention_hours: float = 24.0,
) -> tuple[grpc.Server, int, health.HealthServicer, RegionScopes]:
    address = address or _default_address(settings)
    if access is None:
        access = static_access(*configured_tokens(settings))
    host = _split_address(address)
    credentials = _credentials(settings)
    _check_exposure(settings, host, access, credentials)
    store = queries.store
    served = list(store.regions) if store is not None else []  # no store: tests of conversion
    # metrics first: they see every call with the status its caller gets, refusals too
    interceptors: list[grpc.ServerInterceptor] = (
        [MetricsInterceptor(metrics)] if metrics is not None else [])
    interceptors.append(AuthInterceptor(
        access.authenticator, served_regions=served, rates=access.rates,
        limiter=access.limiter, audit_refusal=access.refusal))
    if access.audit is not None:
        interceptors.append(AuditInterceptor(AUDITED_CALLS, access.call))
    interceptors.append(ErrorMappingInterceptor())
    options = [("grpc.so_reuseport", 1)] if reuse_port else list(_SERVER_OPTIONS)
    options += [("grpc.max_receive_message_length", settings.max_request_bytes),
                ("grpc.max_metadata_size", settings.max_metadata_bytes)]
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.max_workers,
                                   thread_name_prefix="idgraph-grpc"),
        interceptors=interceptors,
        # several server processes may share a port on purpose (``idgraph serve
        # --processes N``): only then is SO_REUSEPORT on
        options=options,
    )
    scopes = RegionScopes(served, ScopeBackends(queries, explainer, consent),
                          _servicer_builder(settings, reviews, segment_catalog, access,
                                            segment_log_retention_hours),
                          access.open_scope)
    pb_grpc.add_ProfileServiceServicer_to_server(
        dispatcher(pb.DESCRIPTOR.services_by_name["ProfileService"], scopes), server)
    spb_grpc.add_SegmentServiceServicer_to_server(
        dispatcher(spb.DESCRIPTOR.services_by_name["SegmentService"], scopes), server)
    names = [SERVICE_NAME, SEGMENT_SERVICE_NAME]
    if consent is not None:
        ppb_grpc.add_PrivacyServiceServicer_to_server(
            dispatcher(ppb.DESCRIPTOR.services_by_name["PrivacyService"], scopes), server)
        names.append(PRIVACY_SERVICE_NAME)
    apb_grpc.add_AdminServiceServicer_to_server(AdminServiceServicer(
        access, served, tls=credentials is not None,
        client_certificates=settings.tls_client_ca_file is not None,
        static_tokens=access.static_token_count, version=_version()), server)
    names.append(ADMIN_SERVICE_NAME)
    health_servicer = health.HealthServicer()
    for name in (health.OVERALL_HEALTH, *names):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*names, health.SERVICE_NAME, reflection.SERVICE_NAME), server)

    try:
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError as exc:  # grpc raises on bind failure in recent versions
        raise ConfigError(f"grpc.host/grpc.port: cannot bind {address!r}: {exc}") from None
    if port == 0 and not host.startswith("unix"):
        raise ConfigError(f"grpc.host/grpc.port: cannot bind {address!r}")
    return server, port, health_servicer, scopes


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("idgraph")
    except PackageNotFoundError:
        return "unknown"


def create_server(
    queries: ProfileQueries, settings: GrpcSettings, address: str | None = None,
    *, reuse_port: bool = False, explainer: Explainer | None = None,
    reviews: ReviewQueue | None = None, segment_catalog: SegmentCatalog | None = None,
    consent: ConsentService | None = None, access: Access | None = None,
    metrics: ServerMetrics | None = None, segment_log_retention_hours: float = 24.0,
) -> tuple[grpc.Server, int]:
    """A configured, bound, not yet started server and the port it bound.

    ``address`` (``host:port``, ``[::1]:port`` or ``unix:/path``) overrides
    ``settings.host``/``settings.port``; port 0 picks a free port (tests). Call
    ``server.start()`` to serve and ``server.stop(grace)`` to stop. ``explainer`` serves
    Explain and ``reviews`` ListReviews/DecideReview; without them those rpcs answer
    UNIMPLEMENTED. ``segment_catalog`` serves DefineSegment/DeleteSegment (without it they
    answer UNIMPLEMENTED; the other segment rpcs read the store). ``consent`` (a
    :class:`~idgraph.engine.consent.ConsentService` over the privacy ledger) gates every
    profile answer by consent and serves PrivacyService; without it PrivacyService is
    not served and answers are not gated (embedding tests only: ``idgraph serve`` always
    passes one). ``metrics`` (a :class:`~idgraph.service.metrics.ServerMetrics`) counts and
    times every call; None: none are. ``segment_log_retention_hours``
    (``segments.log_retention_hours``) is how far back GetSegmentActivity may look.

    Raises ConfigError when no tokens are configured and the address is not loopback,
    when a token is empty or both an api and a steward token, when only one of the TLS
    files is set or unreadable, or when the address cannot be bound.
    """
    server, port, _, _ = _build(queries, settings, address, reuse_port, explainer, reviews,
                                segment_catalog, consent, access, metrics,
                                segment_log_retention_hours)
    return server, port


def serve(
    queries: ProfileQueries,
    settings: GrpcSettings,
    address: str | None = None,
    *,
    grace: float = 5.0,
    stop_event: threading.Event | None = None,
    on_ready: Callable[[int], None] | None = None,
    reuse_port: bool = False,
    explainer: Explainer | None = None,
    reviews: ReviewQueue | None = None,
    segment_catalog: SegmentCatalog | None = None,
    consent: ConsentService | None = None,
    access: Access | None = None,
    metrics: ServerMetrics | None = None,
    segment_log_retention_hours: float = 24.0,
) -> None:
    """Run the server until SIGTERM/SIGINT (or ``stop_event`` is set), then drain.

    ``on_ready(port)`` is called once the server accepts calls (e.g. for the CLI to print
    the port when it bound port 0). On stop, health turns NOT_SERVING first (so load
    balancers stop routing), then in-flight calls get ``grace`` seconds to finish.
    ``explainer``, ``reviews``, ``metrics`` and ``segment_log_retention_hours`` as for
    :func:`create_server`; the first three stay open (the caller closes them).
    """
    server, port, health_servicer, scopes = _build(queries, settings, address, reuse_port,
                                                   explainer, reviews, segment_catalog,
                                                   consent, access, metrics,
                                                   segment_log_retention_hours)
    stop = stop_event or threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    server.start()
    _LOG.info("serving ProfileService on port %d (%s, tls=%s, client certificates=%s, "
              "explain=%s, reviews=%s)", port, SERVICE_NAME, settings.tls_cert_file is not None,
              settings.tls_client_ca_file is not None, explainer is not None,
              reviews is not None)
    try:
        if on_ready is not None:
            on_ready(port)
        while not stop.wait(0.5):  # short waits keep signal handling responsive
            pass
    finally:
        health_servicer.enter_graceful_shutdown()
        for servicers in scopes.every():  # open WatchSegment streams end, not hold the grace
            servicers[SEGMENT_SERVICE_NAME].stopping.set()
        server.stop(grace).wait()
        scopes.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _LOG.info("server stopped")
