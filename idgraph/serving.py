"""Access control as ``idgraph serve`` and ``idgraph keys`` build it from the settings:
the key store, the authenticator, key administration, the audit log and the backends of
a region scope. The one place that reads the ``[auth]`` settings.
"""

from __future__ import annotations

import getpass
import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from idgraph.auth import create_key_store, load_server_secret
from idgraph.auth.audit import AuditEvent, AuditLog, load_or_create_signing_key
from idgraph.auth.audit_buffer import AuditBuffer
from idgraph.auth.authenticator import Authenticator, static_tokens
from idgraph.auth.key_admin import KeyAdmin
from idgraph.auth.store import KeyStore
from idgraph.core.metrics_endpoint import start_endpoint
from idgraph.service.access import Access
from idgraph.service.metrics import ServerMetrics
from idgraph.service.scopes import ScopeBackends
from idgraph.settings import Settings

if TYPE_CHECKING:
    from idgraph.graph import GraphView
    from idgraph.privacy import PrivacyLedger
    from idgraph.privacy.suppression import SuppressionKeys

_LOG = logging.getLogger(__name__)

AUDIT_DIR = "audit"
SIGNING_KEY_FILE = "audit.key"


def audit_dir(settings: Settings) -> Path:
    """Where this machine's audit log is (``auth.audit_dir``, default ``audit`` in the
    data dir)."""
    return Path(settings.auth.audit_dir or Path(settings.data_dir) / AUDIT_DIR)


def signing_key_path(settings: Settings) -> Path:
    return Path(settings.auth.audit_signing_key_file
                or Path(settings.data_dir) / SIGNING_KEY_FILE)


def public_key_path(settings: Settings) -> Path:
    """The public half of the audit signing key (what ``idgraph audit verify`` checks
    against; keep a copy off host)."""
    return Path(f"{signing_key_path(settings)}.pub")


def open_audit_log(settings: Settings) -> AuditLog:
    """This machine's audit log, opened for appending (shared with other processes); its
    signing key is created on first use."""
    a = settings.auth
    return AuditLog(audit_dir(settings), load_or_create_signing_key(signing_key_path(settings)),
                    checkpoint_every=a.audit_checkpoint_every,
                    checkpoint_seconds=a.audit_checkpoint_seconds)


@contextmanager
def writer_audit(settings: Settings) -> Iterator[Callable[[AuditEvent], Any]]:
    """What a writer (``ingest``, a stream worker, ``forget``) hands the engine as its
    ``audit``: appends to this machine's audit log, closed (with its final checkpoint) on
    exit. The log is opened on the first event (most writer runs have none, and the data
    dir is checked by the engine first)."""
    opened: list[AuditLog] = []

    def append(event: AuditEvent) -> Any:
        if not opened:
            opened.append(open_audit_log(settings))
        return opened[0].append(event)

    try:
        yield append
    finally:
        for log in opened:
            log.close()


def audit_public_key(settings: Settings) -> Any:
    """The audit signing key's public half (created with the key when missing)."""
    from idgraph.auth.audit import load_public_key

    path = public_key_path(settings)
    if not path.exists():
        load_or_create_signing_key(signing_key_path(settings))
    return load_public_key(path)


def open_key_store(settings: Settings) -> tuple[KeyStore, bytes]:
    """The key store of the configured backend and the HMAC key of keys' secrets."""
    secret = load_server_secret(settings.auth, settings.data_dir,
                                generate=settings.profile_store_backend == "sqlite")
    return create_key_store(settings.profile_store_backend, settings.data_dir,
                            cassandra=settings.cassandra), secret


def cli_actor() -> str:
    """Who runs a CLI command, for the audit log (``cli:<user>``)."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def open_key_admin(settings: Settings, audit_log: AuditLog | None) -> tuple[KeyAdmin, KeyStore]:
    """Key administration for the CLI; key changes go to ``audit_log``."""
    store, secret = open_key_store(settings)
    record: Callable[[AuditEvent], Any] | None = audit_log.append if audit_log else None
    return KeyAdmin(store, secret, settings.regions.regions,
                    default_days=settings.auth.default_key_days, audit=record), store


def _static_tokens(settings: Settings) -> dict[str, str]:
    from idgraph.service.server import configured_tokens

    api, stewards, privacy = configured_tokens(settings.grpc)
    return static_tokens(api, stewards, privacy)


def warn_deprecated(access: Access) -> None:
    """Log that static tokens are deprecated, when the server accepts some (called once
    the server is up, so the warning follows its ready line)."""
    if access.static_token_count:
        _LOG.warning("grpc.api_tokens, grpc.steward_tokens and grpc.privacy_tokens are "
                     "deprecated and will be removed in the next release: create API keys "
                     "with `idgraph keys create` (%d static token(s) still accepted)",
                     access.static_token_count)


def open_access(settings: Settings, *, graph: GraphView | None = None,
                ledger: PrivacyLedger | None = None, keys: SuppressionKeys | None = None
                ) -> tuple[Access, Callable[[], None]]:
    """Access control of a server process and what closes it: API keys from the key
    store, the deprecated static tokens, client certificates, rate limits, the audit log
    (batched), and region scopes over ``graph``, ``ledger`` and ``keys``."""
    from idgraph.engine.backends import open_queries, open_reader_store
    from idgraph.engine.consent import ConsentService
    from idgraph.engine.explain import Explainer

    a = settings.auth
    store, secret = open_key_store(settings)
    log = open_audit_log(settings)
    buffer = AuditBuffer(log, flush_seconds=a.audit_flush_seconds)
    authenticator = Authenticator(store, secret, static_tokens=_static_tokens(settings),
                                  certificates=a.certificate_principals,
                                  cache_seconds=a.cache_seconds)
    admin = KeyAdmin(store, secret, settings.regions.regions,
                     default_days=a.default_key_days, audit=buffer.record)

    def open_scope(regions: tuple[str, ...]) -> ScopeBackends:
        reader = open_reader_store(settings, regions)
        queries = open_queries(settings, reader)
        consent = (ConsentService(ledger, queries, keys, settings.privacy.merge_rule)
                   if ledger is not None and keys is not None else None)
        explainer = Explainer(graph, queries) if graph is not None else None
        return ScopeBackends(queries, explainer, consent, close=reader.close)

    access = Access(authenticator, rates=dict(a.rate_per_second),
                    burst_seconds=a.burst_seconds, keys=admin, audit=buffer,
                    audit_dir=audit_dir(settings),
                    audit_public_key=audit_public_key(settings),
                    subject_hash=keys.hash if keys is not None else None,
                    personal_attributes=frozenset(a.personal_attributes),
                    audit_reads=a.audit_reads,
                    open_scope=open_scope)

    def close() -> None:
        try:
            access.close()
        finally:
            store.close()

    return access, close


@dataclass
class ServedBackends:
    """What a server process serves, opened as ``idgraph serve`` opens it: the profile
    queries over the served regions' store, Explain over a graph view (None before the
    first ingest), the review queue, the segment catalog, consent and access control, and
    its metrics when ``metrics.port`` is set (served there; None otherwise).
    :meth:`server_kwargs` are :func:`idgraph.service.server.create_server`'s keyword
    arguments; :meth:`close` closes everything, the access control first."""

    queries: Any
    explainer: Any
    reviews: Any
    segment_catalog: Any
    consent: Any
    access: Access
    _resources: ExitStack
    metrics: ServerMetrics | None = None
    log_retention_hours: float = 24.0
    """``segments.log_retention_hours``: how far back GetSegmentActivity may look."""

    def server_kwargs(self) -> dict[str, Any]:
        return {"explainer": self.explainer, "reviews": self.reviews,
                "segment_catalog": self.segment_catalog, "consent": self.consent,
                "access": self.access, "metrics": self.metrics,
                "segment_log_retention_hours": self.log_retention_hours}

    def close(self) -> None:
        """Close everything, newest first; one failure does not leave the rest open."""
        self._resources.close()


def open_served(settings: Settings) -> ServedBackends:
    """The backends of a server process for ``settings.served_regions``, reading the data
    directory (or the distributed backends) the writers fill."""
    from idgraph.core.errors import IdGraphError
    from idgraph.engine.backends import (
        open_graph_view,
        open_privacy,
        open_queries,
        open_reader_store,
        open_review_queue,
        open_segment_catalog,
    )
    from idgraph.engine.consent import ConsentService
    from idgraph.engine.explain import Explainer

    resources = ExitStack()
    try:
        metrics = ServerMetrics() if settings.metrics.port else None
        if metrics is not None:
            endpoint = start_endpoint(settings.metrics, metrics.registry)
            resources.callback(endpoint.close)
            _LOG.info("metrics on http://%s:%d/metrics", settings.metrics.host, endpoint.port)
        store = open_reader_store(settings, settings.served_regions)
        resources.callback(store.close)
        queries = open_queries(settings, store)
        graph = explainer = None
        try:
            graph = open_graph_view(settings)
            resources.callback(graph.close)
            explainer = Explainer(graph, queries)
        except IdGraphError as exc:
            _LOG.warning("Explain is not available: %s", exc)
        reviews = open_review_queue(settings, settings.served_regions)
        if reviews is not None:
            resources.callback(reviews.close)
        catalog = open_segment_catalog(settings)
        resources.callback(catalog.close)
        ledger, keys = open_privacy(settings)
        resources.callback(ledger.close)
        consent = ConsentService(ledger, queries, keys, settings.privacy.merge_rule)
        access, close_access = open_access(settings, graph=graph, ledger=ledger, keys=keys)
        resources.callback(close_access)
    except BaseException:
        resources.close()
        raise
    return ServedBackends(queries, explainer, reviews, catalog, consent, access, resources,
                          metrics, settings.segments.log_retention_hours)
