"""Server interceptors: bearer-token authentication and the one error-to-status mapping.

Order on the server: :class:`AuthInterceptor` first, then :class:`ErrorMappingInterceptor`.

Error mapping is the only place exceptions become gRPC statuses:

* an :class:`idgraph.errors.IdGraphError` becomes its ``grpc_status`` with its message
  (those messages are PII-free by contract, so they are safe to return to the caller);
* anything else, or an IdGraphError whose status is INTERNAL/UNKNOWN, becomes INTERNAL with
  a generic message carrying a short reference; the server log gets the reference, the
  method, the exception class and the stack frames (file, line, function), but never the
  exception message, the request or the metadata (which may hold identifiers, i.e. PII,
  or tokens).

Without this, grpc's own handler would answer UNKNOWN with "Exception calling application:
<message>" and log the message, leaking whatever the exception text contains.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import traceback
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import grpc

from idgraph.errors import IdGraphError

_LOG = logging.getLogger(__name__)

HEALTH_METHOD_PREFIX = "/grpc.health.v1.Health/"
"""Health checks (Check, Watch) need no token: load balancers and probes call them."""

IDGRAPH_METHOD_PREFIX = "/idgraph."
"""Methods whose errors :class:`ErrorMappingInterceptor` maps (this project's services)."""

_UNEXPECTED_STATUSES = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN})


def status_for(exc: BaseException, method: str) -> tuple[grpc.StatusCode, str]:
    """The status code and the caller-facing message for ``exc`` raised while serving ``method``.

    Unexpected errors are logged here (without their message) and get a generic message
    with a reference to that log line.
    """
    if isinstance(exc, IdGraphError) and exc.grpc_status not in _UNEXPECTED_STATUSES:
        _LOG.debug("%s failed: %s (%s)", method, exc.grpc_status.name, type(exc).__name__)
        return exc.grpc_status, str(exc)
    ref = uuid.uuid4().hex[:12]
    _LOG.error(
        "unexpected %s.%s while serving %s (ref %s); message withheld, stack:\n%s",
        type(exc).__module__, type(exc).__qualname__, method, ref,
        _frames(exc),
    )
    return grpc.StatusCode.INTERNAL, f"internal error (ref {ref})"


def _frames(exc: BaseException) -> str:
    """Where ``exc`` was raised: file, line and function per frame, without source text
    (a source line can hold a literal value) and without the message or locals."""
    return "\n".join(
        f"  {frame.filename}:{frame.lineno} in {frame.name}"
        for frame in traceback.StackSummary.extract(
            traceback.walk_tb(exc.__traceback__), lookup_lines=False
        )
    )


def _handler_kind(handler: grpc.RpcMethodHandler) -> tuple[bool, bool]:
    return bool(handler.request_streaming), bool(handler.response_streaming)


def _make_handler(
    template: grpc.RpcMethodHandler, behavior: Callable[..., Any], *, keep_serializers: bool
) -> grpc.RpcMethodHandler:
    """A method handler of the same streaming kind as ``template`` running ``behavior``."""
    factory = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[_handler_kind(template)]
    if not keep_serializers:
        return factory(behavior)
    return factory(
        behavior,
        request_deserializer=template.request_deserializer,
        response_serializer=template.response_serializer,
    )


def _behavior(handler: grpc.RpcMethodHandler) -> Callable[..., Any]:
    return {
        (False, False): handler.unary_unary,
        (False, True): handler.unary_stream,
        (True, False): handler.stream_unary,
        (True, True): handler.stream_stream,
    }[_handler_kind(handler)]


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class AuthInterceptor(grpc.ServerInterceptor):
    """Require ``authorization: Bearer <token>`` metadata matching one of ``tokens``.

    With no tokens every call passes (the server only allows that on loopback). Methods
    starting with one of ``exempt_prefixes`` (health checks by default) always pass. A
    missing or wrong token fails the call with UNAUTHENTICATED before the handler runs.
    The SHA-256 of the presented token is compared with :func:`hmac.compare_digest` against
    the SHA-256 of every configured token, so timing reveals neither which token (or how
    much of one) matched nor the tokens' lengths.
    """

    def __init__(
        self, tokens: Iterable[str], exempt_prefixes: Iterable[str] = (HEALTH_METHOD_PREFIX,)
    ) -> None:
        self._digests = [_digest(t) for t in tokens]
        self._exempt = tuple(exempt_prefixes)

    def _problem(self, metadata: Iterable[tuple[str, Any]] | None) -> str | None:
        """None when the metadata carries an accepted token, else the reason."""
        value = None
        for key, val in metadata or ():
            if key == "authorization":  # grpc delivers keys lower-cased
                value = val
                break
        if not isinstance(value, str) or value[:7].lower() != "bearer ":
            return "missing bearer token: send metadata 'authorization: Bearer <token>'"
        presented = _digest(value[7:].strip())
        accepted = False
        for digest in self._digests:
            accepted |= hmac.compare_digest(presented, digest)
        return None if accepted else "invalid bearer token"

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        if not self._digests or handler_call_details.method.startswith(self._exempt):
            return continuation(handler_call_details)
        problem = self._problem(handler_call_details.invocation_metadata)
        handler = continuation(handler_call_details)
        if problem is None or handler is None:  # unknown method: UNIMPLEMENTED either way
            return handler

        def deny(_request: Any, context: grpc.ServicerContext) -> None:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, problem)

        return _make_handler(handler, deny, keep_serializers=False)


class ErrorMappingInterceptor(grpc.ServerInterceptor):
    """Turn exceptions raised by this project's handlers into statuses (see module doc).

    Only methods starting with one of ``prefixes`` are wrapped; health and reflection keep
    grpc's own handling. Wrapped handlers are cached per method, so the per-call cost is
    one dict lookup and one extra Python frame.
    """

    def __init__(self, prefixes: Iterable[str] = (IDGRAPH_METHOD_PREFIX,)) -> None:
        self._prefixes = tuple(prefixes)
        self._cache: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not method.startswith(self._prefixes):
            return handler
        cached = self._cache.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        guarded = _guard(_behavior(handler), method, streaming=_handler_kind(handler)[1])
        wrapped = _make_handler(handler, guarded, keep_serializers=True)
        self._cache[method] = (handler, wrapped)
        return wrapped


def _abort_for(exc: Exception, context: grpc.ServicerContext, method: str) -> None:
    # context.abort() raises a bare Exception after recording the status: let it through.
    if type(exc) is Exception and context.code() is not None:
        raise exc
    code, message = status_for(exc, method)
    context.abort(code, message)


def _guard(behavior: Callable[..., Any], method: str, streaming: bool) -> Callable[..., Any]:
    if streaming:
        def guarded_stream(request: Any, context: grpc.ServicerContext) -> Any:
            try:
                yield from behavior(request, context)
            except Exception as exc:  # noqa: BLE001 - mapped to a status, never swallowed
                _abort_for(exc, context, method)

        return guarded_stream

    def guarded(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return behavior(request, context)
        except Exception as exc:  # noqa: BLE001 - mapped to a status, never swallowed
            _abort_for(exc, context, method)

    return guarded
