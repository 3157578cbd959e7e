"""A small synchronous client of ``idgraph.v1.ProfileService`` (CLI, benchmarks, tests).

    with ProfileClient("127.0.0.1:50051", token="...") as client:
        response = client.lookup("email:jane@example.com")
        print(response.profile.profile_id)

Methods return the response protos (``service.convert.profile_from_proto`` turns a profile
into the domain dataclass; ``google.protobuf.json_format.MessageToDict`` into JSON-ready
dicts). A failed call raises :class:`ServiceCallError` carrying the status code.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from idgraph.core.errors import IdGraphError
from idgraph.proto.idgraph.v1 import profiles_pb2 as pb
from idgraph.proto.idgraph.v1 import profiles_pb2_grpc as pb_grpc

_CHANNEL_OPTIONS = [
    # A BatchLookup answer for 1000 identifiers can exceed grpc's 4 MiB receive default.
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]


class ServiceCallError(IdGraphError):
    """An rpc failed. ``code`` is the grpc.StatusCode, ``details`` the server's message.

    ``status`` is set to the code's name too, so code that handles IdGraphError by status
    (the CLI's exit codes, a proxying server) treats remote errors like local ones.
    """

    def __init__(self, method: str, code: grpc.StatusCode, details: str) -> None:
        self.method = method
        self.code = code
        self.status = code.name
        self.details = details
        super().__init__(f"{method} failed: {code.name}: {details}")


def _secret(value: Any) -> str | None:
    if value is None:
        return None
    get = getattr(value, "get_secret_value", None)  # pydantic SecretStr
    return get() if get is not None else str(value)


def _pem(value: str | Path | bytes | None) -> bytes | None:
    return value if isinstance(value, bytes | None) else Path(value).read_bytes()


class ProfileClient:
    """Client for ``target`` (``host:port``).

    ``token``: bearer token sent as ``authorization`` metadata (str or SecretStr).
    ``tls_ca``: PEM CA certificate (path or bytes) to verify the server with; implies TLS.
    ``use_tls``: TLS verified with the system roots when no ``tls_ca`` is given.
    ``client_cert`` / ``client_key``: a client certificate and its key (paths or PEM bytes)
    for a server that requires mutual TLS; they imply TLS.
    ``timeout``: per-call deadline in seconds.
    """

    def __init__(
        self,
        target: str,
        token: Any = None,
        tls_ca: str | Path | bytes | None = None,
        *,
        use_tls: bool = False,
        timeout: float = 10.0,
        client_cert: str | Path | bytes | None = None,
        client_key: str | Path | bytes | None = None,
    ) -> None:
        self.target = target
        self.timeout = timeout
        token_text = _secret(token)
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {token_text}"),) if token_text else ()
        )
        if (client_cert is None) != (client_key is None):
            raise ValueError("client_cert and client_key go together")
        if tls_ca is not None or use_tls or client_cert is not None:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=_pem(tls_ca), private_key=_pem(client_key),
                certificate_chain=_pem(client_cert))
            self._channel = grpc.secure_channel(target, credentials, options=_CHANNEL_OPTIONS)
        else:
            self._channel = grpc.insecure_channel(target, options=_CHANNEL_OPTIONS)
        self._stub = pb_grpc.ProfileServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    def _call(self, name: str, rpc: Any, request: Any) -> Any:
        try:
            return rpc(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
            details = exc.details() if hasattr(exc, "details") else str(exc)
            raise ServiceCallError(name, code, details or "") from None

    def lookup(self, identifier: str) -> pb.LookupResponse:
        """Resolve ``identifier`` ("TYPE:VALUE"); NOT_FOUND / INVALID_ARGUMENT raise."""
        return self._call("Lookup", self._stub.Lookup, pb.LookupRequest(identifier=identifier))

    def get_profile(self, profile_id: str) -> pb.GetProfileResponse:
        """The profile with this ID or alias."""
        return self._call(
            "GetProfile", self._stub.GetProfile, pb.GetProfileRequest(profile_id=profile_id)
        )

    def batch_lookup(self, identifiers: Iterable[str]) -> pb.BatchLookupResponse:
        """One result per identifier, in order; per-identifier failures in ``code``/``error``."""
        return self._call(
            "BatchLookup",
            self._stub.BatchLookup,
            pb.BatchLookupRequest(identifiers=list(identifiers)),
        )

    def explain_profile(self, profile_id: str) -> pb.ExplainResponse:
        """Every edge of a profile's records (needs a steward token when auth is on)."""
        return self._call(
            "Explain", self._stub.Explain, pb.ExplainRequest(profile_id=profile_id)
        )

    def explain_between(self, identifier_a: str, identifier_b: str) -> pb.ExplainResponse:
        """The chain of linked edges joining two identifiers, or ``joined=False``."""
        pair = pb.IdentifierPair(identifier_a=identifier_a, identifier_b=identifier_b)
        return self._call("Explain", self._stub.Explain, pb.ExplainRequest(pair=pair))

    def list_reviews(self, status: str = "open", page_size: int = 0,
                     page_token: str = "") -> pb.ListReviewsResponse:
        """One page of the review queue; pass ``next_page_token`` back for the next one."""
        return self._call(
            "ListReviews", self._stub.ListReviews,
            pb.ListReviewsRequest(status=status, page_size=page_size, page_token=page_token),
        )

    def iter_reviews(self, status: str = "open", page_size: int = 0) -> Iterator[pb.Review]:
        """Every review with ``status``, page by page."""
        token = ""
        while True:
            page = self.list_reviews(status, page_size, token)
            yield from page.reviews
            token = page.next_page_token
            if not token:
                return

    def decide_review(self, review_id: str, accept: bool, note: str = "") -> pb.Review:
        """Accept (``accept=True``) or reject an open review; the review after the decision.

        The writer process links an accepted pair later (status ``accepted`` -> ``applied``).
        """
        decision = pb.DecideReviewRequest.ACCEPT if accept else pb.DecideReviewRequest.REJECT
        return self._call(
            "DecideReview", self._stub.DecideReview,
            pb.DecideReviewRequest(review_id=review_id, decision=decision, note=note),
        )

    def profile_history(self, profile_id: str, max_events: int = 0
                        ) -> pb.GetProfileHistoryResponse:
        """A profile's merges and splits, its newest ``max_events`` events (0: the
        server's default) and its segment changes still in the change log."""
        return self._call(
            "GetProfileHistory", self._stub.GetProfileHistory,
            pb.GetProfileHistoryRequest(profile_id=profile_id, max_events=max_events),
        )

    def health(self, service: str = "") -> str:
        """Serving status name ("SERVING", "NOT_SERVING"...) of ``service`` ("" = server)."""
        response = self._call(
            "Health.Check", self._health.Check, health_pb2.HealthCheckRequest(service=service)
        )
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    def wait_ready(self, timeout: float = 5.0) -> None:
        """Block until the channel is connected; ServiceCallError(UNAVAILABLE) on timeout."""
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise ServiceCallError(
                "connect", grpc.StatusCode.UNAVAILABLE, f"{self.target} not ready after {timeout}s"
            ) from None

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> ProfileClient:  # noqa: PYI034 - final class, no Self needed
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
