"""Prometheus metrics of a server process (``idgraph serve``), in a registry of its own.

:class:`MetricsInterceptor` is the outermost interceptor (before authentication), so it
counts every call that reached a served method with the status its caller got,
UNAUTHENTICATED and PERMISSION_DENIED included. Labels are the service and rpc names of
the served methods (a closed set: a call of a method the server does not serve gets no
handler and is not counted) and the status code's name; never a request's content, its
metadata or a caller's name.

============================================  =========  ================================
metric                                        type       labels
============================================  =========  ================================
``idgraph_grpc_requests_total``               counter    ``service``, ``method``, ``code``
``idgraph_grpc_request_duration_seconds``     histogram  ``service``, ``method``
``idgraph_grpc_requests_in_flight``           gauge      ``service``, ``method``
``idgraph_server_info``                       info       ``version``
============================================  =========  ================================

A call's duration runs from its handler called to its answer returned (for a server
stream, to its last message: a ``WatchSegment`` stream counts the whole time it was open).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from idgraph.core.metrics_endpoint import idgraph_version
from idgraph.service.interceptors import (
    _behavior,
    _handler_kind,
    _make_handler,
    _WrappingInterceptor,
)

#: Seconds; a Lookup takes ~0.5-2 ms, a BatchLookup of 1,000 or an Explain up to seconds.
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                    2.5, 5.0, 10.0)


class ServerMetrics:
    """The metrics of one server process, in :attr:`registry` (a new one by default)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry if registry is not None else CollectorRegistry()
        self.requests = Counter(
            "idgraph_grpc_requests", "Calls answered, by method and status code.",
            ["service", "method", "code"], registry=r)
        self.duration = Histogram(
            "idgraph_grpc_request_duration_seconds", "Time from a call's handler called to "
            "its answer (a stream's last message).", ["service", "method"],
            buckets=DURATION_BUCKETS, registry=r)
        self.in_flight = Gauge(
            "idgraph_grpc_requests_in_flight", "Calls being answered now.",
            ["service", "method"], registry=r)
        Info("idgraph_server", "This server process.", registry=r).info(
            {"version": idgraph_version()})


def split_method(method: str) -> tuple[str, str]:
    """``("idgraph.v1.ProfileService", "Lookup")`` for ``/idgraph.v1.ProfileService/Lookup``."""
    service, _, name = method.lstrip("/").rpartition("/")
    return service, name


def _code_name(context: grpc.ServicerContext, failure: BaseException | None) -> str:
    """The status the caller gets: the one the handler (or an interceptor below) set or
    aborted with; else OK after an answer, CANCELLED when the caller went away during a
    stream, UNKNOWN after an unmapped exception (what grpc answers then)."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    if failure is None:
        return "OK"
    return "CANCELLED" if isinstance(failure, GeneratorExit) else "UNKNOWN"


class MetricsInterceptor(_WrappingInterceptor):
    """Count, time and track in flight every call of a served method (module docstring).
    Put it first in the server's interceptors."""

    def __init__(self, metrics: ServerMetrics,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        super().__init__()
        self._metrics = metrics
        self._clock = clock

    def wraps(self, method: str) -> bool:
        return True

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        behavior = _behavior(handler)
        service, name = split_method(method)
        m = self._metrics
        duration = m.duration.labels(service, name)
        in_flight = m.in_flight.labels(service, name)
        clock = self._clock

        def done(context: grpc.ServicerContext, started: float,
                 failure: BaseException | None) -> None:
            duration.observe(clock() - started)
            in_flight.dec()
            m.requests.labels(service, name, _code_name(context, failure)).inc()

        if _handler_kind(handler)[1]:
            def streaming(request: Any, context: grpc.ServicerContext) -> Any:
                started = clock()
                in_flight.inc()
                try:
                    yield from behavior(request, context)
                except BaseException as exc:
                    done(context, started, exc)
                    raise
                done(context, started, None)

            return _make_handler(handler, streaming, keep_serializers=True)

        def unary(request: Any, context: grpc.ServicerContext) -> Any:
            started = clock()
            in_flight.inc()
            try:
                answer = behavior(request, context)
            except BaseException as exc:
                done(context, started, exc)
                raise
            done(context, started, None)
            return answer

        return _make_handler(handler, unary, keep_serializers=True)
