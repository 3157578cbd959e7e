"""The console's only way to the engine: the gRPC API, called with the signed-in person's
key.

:class:`Gateway` holds one channel to the server for the console process;
:meth:`Gateway.as_caller` binds a key, and :class:`Caller` calls any rpc of the four
services by name with it. A failed call raises :class:`CallFailed` with the status code
and the server's message (which never quotes personal data), so pages show the server's
own refusal: a marketer who posts a forget gets ``PERMISSION_DENIED`` from the server,
not from the console.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc

from idgraph.core.errors import IdGraphError
from idgraph.proto.idgraph.v1 import admin_pb2_grpc as apb_grpc
from idgraph.proto.idgraph.v1 import privacy_pb2_grpc as ppb_grpc
from idgraph.proto.idgraph.v1 import profiles_pb2_grpc as pb_grpc
from idgraph.proto.idgraph.v1 import segments_pb2_grpc as spb_grpc

_STUBS = {
    "profiles": pb_grpc.ProfileServiceStub,
    "segments": spb_grpc.SegmentServiceStub,
    "privacy": ppb_grpc.PrivacyServiceStub,
    "admin": apb_grpc.AdminServiceStub,
}


class CallFailed(IdGraphError):
    """An rpc failed: ``code`` (grpc.StatusCode) and the server's ``details``."""

    def __init__(self, method: str, code: grpc.StatusCode, details: str) -> None:
        self.method = method
        self.code = code
        self.status = code.name
        self.details = details
        super().__init__(f"{method}: {code.name}: {details}")


class Caller:
    """Calls made as one key (see :meth:`Gateway.as_caller`)."""

    def __init__(self, stubs: dict[str, Any], key: str, timeout: float,
                 request_id: str = "") -> None:
        self._stubs = stubs
        self._metadata = [("authorization", f"Bearer {key}")]
        if request_id:
            self._metadata.append(("x-request-id", request_id))
        self._timeout = timeout

    def call(self, service: str, method: str, request: Any) -> Any:
        """``service`` (profiles, segments, privacy, admin) ``method`` (the rpc's name)
        with ``request``; the response, or :class:`CallFailed`."""
        rpc = getattr(self._stubs[service], method)
        try:
            return rpc(request, timeout=self._timeout, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise CallFailed(method, exc.code(), exc.details() or "") from None

    def stream(self, service: str, method: str, request: Any) -> Iterator[Any]:
        """A server-streaming rpc's messages, or :class:`CallFailed` (at the first
        message that fails)."""
        rpc = getattr(self._stubs[service], method)
        try:
            yield from rpc(request, timeout=self._timeout, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise CallFailed(method, exc.code(), exc.details() or "") from None


class Gateway:
    """One channel to the gRPC server ``target`` (``host:port``), over TLS when
    ``tls_ca_file`` is given."""

    def __init__(self, target: str, tls_ca_file: Path | None = None,
                 timeout: float = 10.0) -> None:
        self.target = target
        self.timeout = timeout
        if tls_ca_file is not None:
            credentials = grpc.ssl_channel_credentials(Path(tls_ca_file).read_bytes())
            self._channel = grpc.secure_channel(target, credentials)
        else:
            self._channel = grpc.insecure_channel(target)
        self._stubs = {name: stub(self._channel) for name, stub in _STUBS.items()}

    def as_caller(self, key: str, request_id: str = "") -> Caller:
        return Caller(self._stubs, key, self.timeout, request_id)

    def close(self) -> None:
        self._channel.close()
