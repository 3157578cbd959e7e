"""Server interceptors: authentication, authorisation and rate limits of every call, and
the one error-to-status mapping.

Order on the server: :class:`~idgraph.service.metrics.MetricsInterceptor` when metrics are
on (it counts every call with its status, refusals included), :class:`AuthInterceptor`,
then :class:`ErrorMappingInterceptor`.

Authorisation is least privilege by one table (:mod:`idgraph.auth.roles`): each rpc
needs a permission, each role grants some, deny by default (see :class:`AuthInterceptor`).

Error mapping is the only place exceptions become gRPC statuses:

* an :class:`idgraph.core.errors.IdGraphError` becomes its ``status`` with its message
  (those messages are PII-free by contract, so they are safe to return to the caller).
  ``status`` is a code's name (``"FAILED_PRECONDITION"``), and a :class:`grpc.StatusCode`
  or its number are accepted too; any code but OK/INTERNAL/UNKNOWN is passed through;
* anything else, or an IdGraphError whose status is INTERNAL/UNKNOWN/OK or not a status
  code, becomes INTERNAL with
  a generic message carrying a short reference; the server log gets the reference, the
  method, the exception class and the stack frames (file, line, function), but never the
  exception message, the request or the metadata (which may hold identifiers, i.e. PII,
  or tokens).

Without this, grpc's own handler would answer UNKNOWN with "Exception calling application:
<message>" and log the message, leaking whatever the exception text contains.
"""

from __future__ import annotations

import contextvars
import dataclasses
import logging
import re
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import grpc

from idgraph.auth.authenticator import ANONYMOUS, AuthenticationError, Authenticator, Principal
from idgraph.auth.ratelimit import RateLimiter
from idgraph.auth.roles import HEALTH_PREFIX, decide, roles_allowed
from idgraph.core.errors import IdGraphError

_LOG = logging.getLogger(__name__)

IDGRAPH_METHOD_PREFIX = "/idgraph."
"""Methods whose errors :class:`ErrorMappingInterceptor` maps (this project's services)."""

_UNEXPECTED_STATUSES = frozenset(
    {grpc.StatusCode.OK, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
)
_CODES_BY_NAME = {code.name: code for code in grpc.StatusCode}
_CODES_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


def status_code(value: object) -> grpc.StatusCode | None:
    """``value`` as a grpc.StatusCode: a StatusCode, its name (any case) or its number.

    None when it is none of these (the error is then treated as unexpected).
    """
    if isinstance(value, grpc.StatusCode):
        return value
    if isinstance(value, str):
        return _CODES_BY_NAME.get(value.strip().upper())
    if isinstance(value, int) and not isinstance(value, bool):
        return _CODES_BY_NUMBER.get(value)
    return None


def status_for(exc: BaseException, method: str) -> tuple[grpc.StatusCode, str]:
    """The status code and the caller-facing message for ``exc`` raised while serving ``method``.

    Unexpected errors are logged here (without their message) and get a generic message
    with a reference to that log line.
    """
    if isinstance(exc, IdGraphError):
        code = status_code(exc.status)
        if code is not None and code not in _UNEXPECTED_STATUSES:
            _LOG.debug("%s failed: %s (%s)", method, code.name, type(exc).__name__)
            return code, str(exc)
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
    template: grpc.RpcMethodHandler, behavior: Callable[..., Any], *, keep_serializers: bool,
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> grpc.RpcMethodHandler:
    """A method handler of the same streaming kind as ``template`` running ``behavior``
    (with ``request_deserializer`` instead of the template's, when given)."""
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
        request_deserializer=request_deserializer or template.request_deserializer,
        response_serializer=template.response_serializer,
    )


class Undecodable:
    """A request whose bytes are not a valid message of the rpc's request type (what
    :func:`_tolerant` hands the handler instead of letting grpc answer INTERNAL with
    "Exception deserializing request!"); :func:`_guard` answers INVALID_ARGUMENT."""

    __slots__ = ("type_name",)

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """``deserializer`` returning :class:`Undecodable` instead of raising."""
    if deserializer is None:
        return None
    message = getattr(deserializer, "__self__", None)
    type_name = getattr(getattr(message, "DESCRIPTOR", None), "full_name", "request")

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception:  # noqa: BLE001 - any parse failure is the caller's bad bytes
            return Undecodable(type_name)

    return parse


def _behavior(handler: grpc.RpcMethodHandler) -> Callable[..., Any]:
    return {
        (False, False): handler.unary_unary,
        (False, True): handler.unary_stream,
        (True, False): handler.stream_unary,
        (True, True): handler.stream_stream,
    }[_handler_kind(handler)]


_PRINCIPAL: contextvars.ContextVar[Principal] = contextvars.ContextVar(
    "idgraph_principal", default=ANONYMOUS)


def current_principal() -> Principal:
    """Who makes the call being served (set by :class:`AuthInterceptor` around the
    handler); :data:`~idgraph.auth.authenticator.ANONYMOUS` on a server without
    credentials."""
    return _PRINCIPAL.get()


def caller_name(_metadata: Any = None) -> str:
    """The current caller's name for audit fields (``decided_by``, a segment version's
    author): ``key:<key id>``, ``cert:<name>``, ``api:``/``steward:``/``privacy:`` + 8 hex
    digits of a static token's SHA-256, or ``anonymous``. Never a secret."""
    return _PRINCIPAL.get().name


def _rpc_name(method: str) -> str:
    """``Explain`` for ``/idgraph.v1.ProfileService/Explain``."""
    return method.rsplit("/", 1)[-1]


def _bearer(metadata: Iterable[tuple[str, Any]] | None) -> str | None:
    """The bearer token of the metadata; None when there is none. A malformed
    ``authorization`` value counts as a wrong credential, not as none."""
    for key, val in metadata or ():
        if key == "authorization":  # grpc delivers keys lower-cased
            if isinstance(val, str) and val[:7].lower() == "bearer ":
                return val[7:].strip()
            return ""
    return None


_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def _request_id(metadata: Iterable[tuple[str, Any]] | None) -> str:
    """The caller's ``x-request-id`` (when it is 1-64 characters of ``[A-Za-z0-9._:-]``:
    anything else could be a person's data or a log injection), else a fresh one."""
    for key, val in metadata or ():
        if key == "x-request-id" and isinstance(val, str) and _REQUEST_ID.fullmatch(val):
            return val
    return uuid.uuid4().hex[:16]


def _certificate_name(context: grpc.ServicerContext) -> str | None:
    """The common name of the client certificate the TLS layer verified (mutual TLS);
    None on a connection without one."""
    try:
        names = context.auth_context().get("x509_common_name")
    except (AttributeError, ValueError):
        return None
    if not names:
        return None
    name = names[0]
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)


class _WrappingInterceptor(grpc.ServerInterceptor):
    """An interceptor that wraps the handlers of the methods it :meth:`wraps` with
    :meth:`_wrap`, once per method: the wrapped handler is cached (and made again only if
    the handler below changes), so a call costs one dict lookup and one extra frame."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def wraps(self, method: str) -> bool:
        raise NotImplementedError

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        raise NotImplementedError

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not self.wraps(method):
            return handler
        cached = self._cache.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(handler, method)
        self._cache[method] = (handler, wrapped)
        return wrapped


class AuthInterceptor(_WrappingInterceptor):
    """Authenticate every call, authorise it by the permission table
    (:mod:`idgraph.auth.roles`), limit its rate, and run the handler as its principal.

    For every method but health checks (which need no credential): the caller's
    credential (an API key or static token in ``authorization: Bearer ...``, else a
    verified client certificate) becomes a :class:`~idgraph.auth.authenticator.Principal`
    (UNAUTHENTICATED otherwise, before the handler runs); the method must be granted by
    one of its roles (PERMISSION_DENIED naming the roles that may, deny by default: a
    method missing from the table is refused to all); a key limited to regions none of
    which this server serves gets PERMISSION_DENIED; a caller over its rate gets
    RESOURCE_EXHAUSTED. The handler then runs with :func:`current_principal` set (the
    servicers pick the region scope and masking from it).

    Refusals are written to the audit log through ``audit_refusal(principal name, role,
    action, method, reason)`` (batched: a flood of bad keys is counted, not written line
    by line). With an authenticator that accepts no credential, every call passes as
    :data:`~idgraph.auth.authenticator.ANONYMOUS` (servers allow that only on loopback).
    """

    def __init__(self, authenticator: Authenticator, *,
                 served_regions: Iterable[str] = (),
                 rates: Mapping[str, float] | None = None,
                 limiter: RateLimiter | None = None,
                 audit_refusal: Callable[[str, str, str, str, str], None] | None = None,
                 exempt_prefixes: Iterable[str] = (HEALTH_PREFIX,)) -> None:
        super().__init__()
        self._auth = authenticator
        self._served = frozenset(served_regions)
        self._rates = dict(rates or {})
        self._limiter = limiter
        self._refused = audit_refusal or (lambda *_: None)
        self._exempt = tuple(exempt_prefixes)

    @property
    def enabled(self) -> bool:
        """False when no credential is configured: every call passes."""
        return self._auth.enabled

    def _rate(self, principal: Principal) -> float | None:
        if principal.rate_per_second is not None:
            return principal.rate_per_second
        rates = [self._rates[r] for r in principal.roles if r in self._rates]
        return max(rates) if rates else None

    def admit(self, method: str, context: grpc.ServicerContext) -> Principal:
        """The principal of this call with its masking decided, or the call aborted with
        the status saying why (class docstring)."""
        metadata = context.invocation_metadata()
        try:
            principal = self._auth.authenticate(_bearer(metadata), _certificate_name(context))
        except AuthenticationError as exc:
            self._refused("unauthenticated", "none", "auth.failed", method, str(exc))
            context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
            raise  # not reached: abort raises
        allowed, masked = decide(method, principal.permissions)
        if not allowed:
            roles = roles_allowed(method)
            needs = (f"a key with role {' or '.join(roles)}" if roles
                     else "a permission no role has")
            problem = (f"{_rpc_name(method)} needs {needs}; this caller has "
                       f"{', '.join(principal.roles) or 'no role'}")
            self._refused(principal.name, principal.role, "auth.denied", method, problem)
            context.abort(grpc.StatusCode.PERMISSION_DENIED, problem)
        if principal.regions and self._served and not self._served & set(principal.regions):
            problem = (f"this key may read regions {', '.join(principal.regions)}; this "
                       f"server serves {', '.join(sorted(self._served))}")
            self._refused(principal.name, principal.role, "auth.denied", method, problem)
            context.abort(grpc.StatusCode.PERMISSION_DENIED, problem)
        rate = self._rate(principal)
        if rate is not None and self._limiter is not None \
                and not self._limiter.allow(principal.name, rate):
            self._refused(principal.name, principal.role, "auth.rate_limited", method,
                          f"over {rate:g} calls/s")
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          f"rate limit of {rate:g} calls per second exceeded for this key; "
                          "retry with backoff")
        return dataclasses.replace(principal, masked=masked, request_id=_request_id(metadata))

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        behavior = _behavior(handler)

        def admit(method: str, context: grpc.ServicerContext) -> Principal:
            try:
                return self.admit(method, context)
            except Exception as exc:
                _abort_for(exc, context, method)
                raise  # not reached: _abort_for raises

        if _handler_kind(handler)[1]:
            def streaming(request: Any, context: grpc.ServicerContext) -> Any:
                token = _PRINCIPAL.set(admit(method, context))
                try:
                    yield from behavior(request, context)
                finally:
                    _PRINCIPAL.reset(token)

            return _make_handler(handler, streaming, keep_serializers=True)

        def unary(request: Any, context: grpc.ServicerContext) -> Any:
            token = _PRINCIPAL.set(admit(method, context))
            try:
                return behavior(request, context)
            finally:
                _PRINCIPAL.reset(token)

        return _make_handler(handler, unary, keep_serializers=True)

    def wraps(self, method: str) -> bool:
        return self._auth.enabled and not method.startswith(self._exempt)


class AuditInterceptor(_WrappingInterceptor):
    """Write one audit entry per call of the methods in ``audited`` (after the call, with
    its outcome: ``ok``, or ``failed`` and the status code's name) through
    ``record(principal, method, request, outcome, reason)``. Runs after
    :class:`AuthInterceptor` (the principal is known) and before
    :class:`ErrorMappingInterceptor` (it sees the status the caller gets)."""

    def __init__(self, audited: Iterable[str],
                 record: Callable[[Principal, str, Any, str, str], None]) -> None:
        super().__init__()
        self._audited = frozenset(audited)
        self._record = record

    def _outcome(self, method: str, request: Any, context: grpc.ServicerContext,
                 failed: BaseException | None) -> None:
        if failed is None:
            outcome, reason = "ok", ""
        else:
            code = context.code()
            outcome = "failed"
            reason = code.name if isinstance(code, grpc.StatusCode) else type(failed).__name__
        try:
            self._record(_PRINCIPAL.get(), method, request, outcome, reason)
        except Exception:  # noqa: BLE001 - the audit must not fail the call it records
            _LOG.error("could not audit a call of %s", method, exc_info=False)

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        behavior = _behavior(handler)
        outcome = self._outcome
        if _handler_kind(handler)[1]:
            def streaming(request: Any, context: grpc.ServicerContext) -> Any:
                try:
                    yield from behavior(request, context)
                except BaseException as exc:
                    outcome(method, request, context, exc)
                    raise
                outcome(method, request, context, None)

            return _make_handler(handler, streaming, keep_serializers=True)

        def unary(request: Any, context: grpc.ServicerContext) -> Any:
            try:
                answer = behavior(request, context)
            except BaseException as exc:
                outcome(method, request, context, exc)
                raise
            outcome(method, request, context, None)
            return answer

        return _make_handler(handler, unary, keep_serializers=True)

    def wraps(self, method: str) -> bool:
        return method in self._audited


class ErrorMappingInterceptor(_WrappingInterceptor):
    """Turn exceptions raised by this project's handlers into statuses (see module doc).

    Only methods starting with one of ``prefixes`` are wrapped; health and reflection keep
    grpc's own handling. Wrapped handlers are cached per method, so the per-call cost is
    one dict lookup and one extra Python frame.
    """

    def __init__(self, prefixes: Iterable[str] = (IDGRAPH_METHOD_PREFIX,)) -> None:
        super().__init__()
        self._prefixes = tuple(prefixes)

    def wraps(self, method: str) -> bool:
        return method.startswith(self._prefixes)

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        guarded = _guard(_behavior(handler), method, streaming=_handler_kind(handler)[1])
        return _make_handler(handler, guarded, keep_serializers=True,
                             request_deserializer=_tolerant(handler.request_deserializer))


def _abort_for(exc: Exception, context: grpc.ServicerContext, method: str) -> None:
    # context.abort() raises a bare Exception after recording the status: let it through.
    if type(exc) is Exception and context.code() is not None:
        raise exc
    code, message = status_for(exc, method)
    context.abort(code, message)


def _undecodable(request: Any, context: grpc.ServicerContext) -> None:
    if isinstance(request, Undecodable):
        context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                      f"the request is not a valid {request.type_name} message")


def _guard(behavior: Callable[..., Any], method: str, streaming: bool) -> Callable[..., Any]:
    if streaming:
        def guarded_stream(request: Any, context: grpc.ServicerContext) -> Any:
            _undecodable(request, context)
            try:
                yield from behavior(request, context)
            except Exception as exc:  # noqa: BLE001 - mapped to a status, never swallowed
                _abort_for(exc, context, method)

        return guarded_stream

    def guarded(request: Any, context: grpc.ServicerContext) -> Any:
        _undecodable(request, context)
        try:
            return behavior(request, context)
        except Exception as exc:  # noqa: BLE001 - mapped to a status, never swallowed
            _abort_for(exc, context, method)

    return guarded
