"""Server interceptors: bearer-token authentication and authorisation, and the one
error-to-status mapping.

Order on the server: :class:`AuthInterceptor` first, then :class:`ErrorMappingInterceptor`.

Authorisation is least privilege with three roles (see :class:`AuthInterceptor`): an *api*
token (activation channels) may call only :data:`API_METHODS` and health/reflection; a
*steward* token may call every rpc but :data:`PRIVACY_ONLY_METHODS`, including Explain,
ListReviews and DecideReview; a *privacy* token (privacy officers) may call
:data:`PRIVACY_METHODS`: forget, unsuppress and export, and what finding a subject needs.

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

import hashlib
import hmac
import logging
import traceback
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import grpc

from idgraph.core.errors import IdGraphError

_LOG = logging.getLogger(__name__)

HEALTH_METHOD_PREFIX = "/grpc.health.v1.Health/"
"""Health checks (Check, Watch) need no token: load balancers and probes call them."""

IDGRAPH_METHOD_PREFIX = "/idgraph."
"""Methods whose errors :class:`ErrorMappingInterceptor` maps (this project's services)."""

_PROFILE_SERVICE = "/idgraph.v1.ProfileService/"

_SEGMENT_SERVICE = "/idgraph.v1.SegmentService/"

_PRIVACY_SERVICE = "/idgraph.v1.PrivacyService/"

API_METHODS = frozenset({
    _PROFILE_SERVICE + "Lookup",
    _PROFILE_SERVICE + "GetProfile",
    _PROFILE_SERVICE + "BatchLookup",
    *(_SEGMENT_SERVICE + rpc for rpc in ("GetSegment", "ListSegments", "EvaluateSegments",
                                         "CountSegment", "ListSegmentMembers",
                                         "WatchSegment")),
    *(_PRIVACY_SERVICE + rpc for rpc in ("RecordConsent", "GetConsent", "ListPurposes")),
})
"""The only project methods an api token may call (an allowlist: an rpc added later is
steward-only until it is added here)."""

PRIVACY_ONLY_METHODS = frozenset(
    _PRIVACY_SERVICE + rpc for rpc in ("Forget", "GetForgetStatus", "Unsuppress",
                                       "ExportSubject"))
"""Methods only a privacy token may call: erasing a person, ending a suppression and
exporting a person's data are the privacy officer's, not the steward's."""

PRIVACY_METHODS = API_METHODS | PRIVACY_ONLY_METHODS | {_PROFILE_SERVICE + "Explain"}
"""What a privacy token may call (an allowlist, as :data:`API_METHODS`)."""

API_METHOD_PREFIXES = (
    HEALTH_METHOD_PREFIX,
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)
"""Infrastructure services an api token may call too: health checking and reflection."""

ROLE_API = "api"
ROLE_STEWARD = "steward"
ROLE_PRIVACY = "privacy"
ANONYMOUS = "anonymous"
"""The caller identity on a server without tokens (see :meth:`AuthInterceptor.identity`)."""

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


def _rpc_name(method: str) -> str:
    """``Explain`` for ``/idgraph.v1.ProfileService/Explain``."""
    return method.rsplit("/", 1)[-1]


class AuthInterceptor(grpc.ServerInterceptor):
    """Require ``authorization: Bearer <token>`` metadata matching a configured token, and
    let each token call only what its role allows.

    ``tokens`` are api tokens: they may call ``api_methods`` (Lookup, GetProfile,
    BatchLookup by default) and methods starting with one of ``api_prefixes`` (health and
    reflection); any other method answers PERMISSION_DENIED, naming the rpc, before the
    handler runs. ``steward_tokens`` may call every method but
    :data:`PRIVACY_ONLY_METHODS`; ``privacy_tokens`` may call :data:`PRIVACY_METHODS`
    and the api prefixes.

    With no tokens at all every call passes (the server only allows that on loopback).
    Methods starting with one of ``exempt_prefixes`` (health checks by default) always
    pass. A missing or unknown token fails the call with UNAUTHENTICATED before the
    handler runs. The SHA-256 of the presented token is compared with
    :func:`hmac.compare_digest` against the SHA-256 of every configured token of both
    roles (no early exit), so timing reveals neither which token (or how much of one)
    matched, nor its role, nor the tokens' lengths.
    """

    def __init__(
        self,
        tokens: Iterable[str],
        exempt_prefixes: Iterable[str] = (HEALTH_METHOD_PREFIX,),
        *,
        steward_tokens: Iterable[str] = (),
        privacy_tokens: Iterable[str] = (),
        api_methods: Iterable[str] = API_METHODS,
        api_prefixes: Iterable[str] = API_METHOD_PREFIXES,
    ) -> None:
        self._digests = [(_digest(t), ROLE_API) for t in tokens]
        self._digests += [(_digest(t), ROLE_STEWARD) for t in steward_tokens]
        self._digests += [(_digest(t), ROLE_PRIVACY) for t in privacy_tokens]
        self._exempt = tuple(exempt_prefixes)
        self._api_methods = frozenset(api_methods)
        self._api_prefixes = tuple(api_prefixes)
        allowed = sorted(_rpc_name(m) for m in self._api_methods)
        self._api_allowed = ", ".join(allowed) if allowed else "no rpc"

    @property
    def enabled(self) -> bool:
        """False when no token is configured: every call passes."""
        return bool(self._digests)

    @staticmethod
    def _bearer(metadata: Iterable[tuple[str, Any]] | None) -> str | None:
        """The bearer token of the metadata; None when there is none."""
        for key, val in metadata or ():
            if key == "authorization":  # grpc delivers keys lower-cased
                if isinstance(val, str) and val[:7].lower() == "bearer ":
                    return val[7:].strip()
                return None
        return None

    def _role_of(self, token: str) -> str | None:
        """The role of ``token``; None when it is not a configured token. Constant time."""
        presented = _digest(token)
        found: str | None = None
        for digest, role in self._digests:  # every digest compared: no early exit
            if hmac.compare_digest(presented, digest):
                found = role
        return found

    def _authenticate(
        self, metadata: Iterable[tuple[str, Any]] | None
    ) -> tuple[str | None, str | None]:
        """``(role, None)`` for an accepted token, ``(None, reason)`` otherwise."""
        token = self._bearer(metadata)
        if token is None:
            return None, "missing bearer token: send metadata 'authorization: Bearer <token>'"
        role = self._role_of(token)
        return (role, None) if role is not None else (None, "invalid bearer token")

    def _api_may_call(self, method: str) -> bool:
        return method in self._api_methods or method.startswith(self._api_prefixes)

    def identity(self, metadata: Iterable[tuple[str, Any]] | None) -> str:
        """Who is calling, for audit fields (``Review.decided_by``): ``"steward:"``,
        ``"privacy:"`` or ``"api:"`` + the first 8 hex digits of the SHA-256 of the token (never the token),
        :data:`ANONYMOUS` when no token is configured.

        Call it from a handler: the token was already checked before the handler ran.
        """
        if not self._digests:
            return ANONYMOUS
        token = self._bearer(metadata)
        role = self._role_of(token) if token is not None else None
        if token is None or role is None:  # not reachable behind this interceptor
            return "unauthenticated"
        return f"{role}:{_digest(token).hex()[:8]}"

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        if not self._digests or method.startswith(self._exempt):
            return continuation(handler_call_details)
        role, problem = self._authenticate(handler_call_details.invocation_metadata)
        handler = continuation(handler_call_details)
        if handler is None:  # unknown method: UNIMPLEMENTED either way
            return handler
        if problem is not None:
            code = grpc.StatusCode.UNAUTHENTICATED
        elif role == ROLE_API and not self._api_may_call(method):
            code = grpc.StatusCode.PERMISSION_DENIED
            needs = "a privacy token (grpc.privacy_tokens)" if method in PRIVACY_ONLY_METHODS \
                else "a steward token (grpc.steward_tokens)"
            problem = (
                f"{_rpc_name(method)} needs {needs}; "
                f"an api token may only call {self._api_allowed}, health and reflection"
            )
        elif role == ROLE_STEWARD and method in PRIVACY_ONLY_METHODS:
            code = grpc.StatusCode.PERMISSION_DENIED
            problem = (f"{_rpc_name(method)} needs a privacy token (grpc.privacy_tokens); "
                       "a steward token may not erase, unsuppress or export a person")
        elif role == ROLE_PRIVACY and not (method in PRIVACY_METHODS
                                           or method.startswith(self._api_prefixes)):
            code = grpc.StatusCode.PERMISSION_DENIED
            problem = (f"{_rpc_name(method)} needs a steward token (grpc.steward_tokens); "
                       "a privacy token may call the privacy rpcs, the lookups and Explain")
        else:
            return handler

        def deny(_request: Any, context: grpc.ServicerContext) -> None:
            context.abort(code, problem)

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
