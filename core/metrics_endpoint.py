"""The Prometheus endpoint of a long-running process (section ``[metrics]``).

``idgraph worker`` and ``idgraph serve`` each keep their metrics in a registry of their own
(:mod:`idgraph.stream.metrics`, :mod:`idgraph.service.metrics`) and, when ``metrics.port``
is set, serve it as Prometheus text on ``http://metrics.host:metrics.port/metrics`` with
prometheus-client's own HTTP server (a daemon thread), beside the process's CPU, memory
and file descriptor metrics. Off by default.

Several processes on one machine (``idgraph serve`` with ``grpc.processes`` > 1, several
workers started by :func:`idgraph.worker_processes.start_worker`) each need a port: the
process numbered ``i`` (0 for the first) listens on ``metrics.port + i``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import Field

from idgraph.core.errors import ConfigError
from idgraph.core.sections import Section

if TYPE_CHECKING:  # prometheus-client is imported only when an endpoint starts
    import threading
    from wsgiref.simple_server import WSGIServer

    from prometheus_client import CollectorRegistry


class MetricsSettings(Section):
    """Prometheus metrics of ``idgraph worker`` and ``idgraph serve``."""

    port: int = Field(default=0, ge=0, le=65535)
    """TCP port of the ``/metrics`` endpoint; 0: no endpoint, nothing collected. Several
    processes of one machine use ``port``, ``port + 1``... (module docstring);
    ``IDGRAPH_METRICS__PORT`` sets it per process."""
    host: str = "127.0.0.1"
    """Address the endpoint listens on. The metrics hold no personal data (counts,
    latencies, method names, topic names), but keep it on a private network: it has no
    authentication."""

    def port_of_process(self, index: int) -> int:
        """The port of the process numbered ``index`` (0: the first); 0 when off."""
        return self.port + index if self.port else 0


@dataclass
class MetricsEndpoint:
    """A running ``/metrics`` endpoint; :meth:`close` stops it."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_endpoint(settings: MetricsSettings, registry: CollectorRegistry
                   ) -> MetricsEndpoint | None:
    """Serve ``registry`` (plus this process's own metrics) on ``settings.host`` and
    ``settings.port``; None when the port is 0. :class:`ConfigError` naming the setting
    when the address cannot be bound."""
    if not settings.port:
        return None
    from prometheus_client import PlatformCollector, ProcessCollector, start_http_server

    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    try:
        server, thread = start_http_server(settings.port, addr=settings.host,
                                           registry=registry)
    except OSError as exc:
        raise ConfigError(f"metrics.host/metrics.port: cannot listen on "
                          f"{settings.host}:{settings.port}: {exc.strerror or exc}") from None
    return MetricsEndpoint(server, thread)


def idgraph_version() -> str:
    """The installed idgraph's version (for the ``*_info`` metrics)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("idgraph")
    except PackageNotFoundError:
        return "unknown"
