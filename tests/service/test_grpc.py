"""End-to-end tests of the gRPC service through a real channel on 127.0.0.1.

The server runs against ``FakeQueries``, a ProfileQueries look-alike returning fixed
profiles, so these tests exercise the proto contract, conversion, auth, error mapping,
health and reflection without the resolver or a store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from idgraph.core.errors import ConfigError, IdGraphError, InvalidIdentifierError, NotFoundError
from idgraph.engine.queries import Located, LookupResult
from idgraph.profile_store.base import AttributeValue, Profile, ProfileIdentifier, SourceCounter
from idgraph.proto.idgraph.v1 import profiles_pb2 as pb
from idgraph.proto.idgraph.v1 import profiles_pb2_grpc as pb_grpc
from idgraph.service import convert
from idgraph.service.client import ProfileClient, ServiceCallError
from idgraph.service.server import SERVICE_NAME, create_server
from idgraph.service.settings import GrpcSettings

TOKEN = "s3cret-token"
OTHER_TOKEN = "second-token"
LEAKY_EMAIL = "email:boom@example.com"

# 2023-11-14T22:13:20.123456Z and friends: fractional seconds exercise the conversion.
T0 = 1_700_000_000.123456
T1 = 1_700_000_100.5
T2 = 1_700_000_200.25
T3 = 1_700_000_300.0


def make_jane() -> Profile:
    return Profile(
        profile_id="p-jane",
        region="eu",
        identifiers=[
            ProfileIdentifier("email:jane@example.com", "email", T0, T2, ["hubspot", "salesforce"]),
            ProfileIdentifier("crm:salesforce:0035e00000AbCdEAAB", "crm:salesforce", T0, T1,
                              ["salesforce"]),
            ProfileIdentifier("phone:+4915112345678", "phone", T1, T2, ["hubspot"]),
            ProfileIdentifier("device:tablet-1", "device", T1, T2, ["segment"], linked=False),
        ],
        attributes={
            "given_name": AttributeValue("Jane", "salesforce", "salesforce:0035e00000AbCdEAAB",
                                         T0, "source_priority"),
            "country": AttributeValue("DE", "hubspot", "hubspot:123", T1, "most_frequent"),
        },
        sources=[
            SourceCounter("salesforce", 3, 1, T0, T1),
            SourceCounter("hubspot", 2, 1, T1, T2),
            SourceCounter("segment", 4, 1, T1, T2),
        ],
        record_keys=["salesforce:0035e00000AbCdEAAB", "hubspot:123", "segment:anon-9"],
        aliases=["p-old-1", "p-old-2"],
        consent={"email_marketing": True, "sms_marketing": False},
        first_seen=T0,
        last_seen=T2,
        event_count=9,
        updated_at=T3,
    )


def make_john() -> Profile:
    return Profile(
        profile_id="p-john",
        region="us",
        identifiers=[ProfileIdentifier("device:tablet-1", "device", T1, T1, ["segment"], False)],
        attributes={},
        sources=[SourceCounter("segment", 1, 1, T1, T1)],
        record_keys=["segment:anon-7"],
    )


class FakeQueries:
    """ProfileQueries look-alike: lower-cases as its "normalisation", fixed profiles."""

    store = None  # no segments here: the SegmentService is tested on a real store
    # (test_segment_grpc.py)

    def __init__(self) -> None:
        self.jane, self.john = make_jane(), make_john()
        self.profiles = {p.profile_id: p for p in (self.jane, self.john)}
        self.aliases = {"p-old-1": "p-jane", "p-old-2": "p-jane"}
        self.calls: list[tuple[str, object]] = []

    def lookup(self, identifier: str) -> LookupResult:
        self.calls.append(("lookup", identifier))
        key = identifier.strip().lower()
        kind, sep, _value = key.partition(":")
        if key == LEAKY_EMAIL:
            raise RuntimeError("database exploded while reading jane.doe@leak.example")
        if not sep or kind not in {"email", "phone", "crm", "device", "user"}:
            raise InvalidIdentifierError(f"unknown identifier type {kind!r}")
        if key == "device:tablet-1":
            return LookupResult(key, self.jane, shared=True, other_profile_ids=["p-john"])
        for profile in (self.jane, self.john):
            if any(i.identifier.lower() == key for i in profile.identifiers):
                return LookupResult(key, profile)
        raise NotFoundError(f"no profile has this {kind} identifier")

    def locate(self, identifier: str) -> Located:
        result = self.lookup(identifier)
        return Located(result.identifier, result.profile.profile_id, result.profile.updated_at,
                       result.shared, result.other_profile_ids)

    def profile(self, profile_id: str) -> Profile:
        return self.profiles[self.aliases.get(profile_id, profile_id)]

    def get_profile(self, profile_id: str) -> Profile:
        self.calls.append(("get_profile", profile_id))
        pid = profile_id.strip()
        profile = self.profiles.get(self.aliases.get(pid, pid))
        if profile is None:
            raise NotFoundError("no profile with this ID in the served regions")
        return profile

    def batch_lookup(self, identifiers: list[str]) -> list[LookupResult | IdGraphError]:
        self.calls.append(("batch_lookup", list(identifiers)))
        out: list[LookupResult | IdGraphError] = []
        for text in identifiers:
            try:
                out.append(self.lookup(text))
            except IdGraphError as exc:
                out.append(exc)
        return out


@pytest.fixture
def queries() -> FakeQueries:
    return FakeQueries()


@pytest.fixture
def start_server(queries: FakeQueries) -> Iterator[Callable[..., int]]:
    servers: list[grpc.Server] = []

    def start(**settings: object) -> int:
        server, port = create_server(queries, GrpcSettings(**settings), "127.0.0.1:0")
        server.start()
        servers.append(server)
        return port

    yield start
    for server in servers:
        server.stop(None)


@pytest.fixture
def client(start_server: Callable[..., int]) -> Iterator[ProfileClient]:
    """Client of a server without authentication (loopback)."""
    port = start_server()
    with ProfileClient(f"127.0.0.1:{port}", timeout=5) as c:
        yield c


@pytest.fixture
def auth_port(start_server: Callable[..., int]) -> int:
    return start_server(api_tokens=[TOKEN, OTHER_TOKEN])


def ts(seconds: int, nanos: int = 0) -> dict[str, int]:
    return {"seconds": seconds, "nanos": nanos}


# --- Lookup --------------------------------------------------------------------------------


def test_lookup_found_converts_every_field(client: ProfileClient) -> None:
    response = client.lookup("  Email:Jane@Example.com ")

    expected = pb.LookupResponse(
        matched_identifier="email:jane@example.com",
        shared=False,
        profile=pb.Profile(
            profile_id="p-jane",
            region="eu",
            aliases=["p-old-1", "p-old-2"],
            identifiers=[
                pb.ProfileIdentifier(identifier="email:jane@example.com", type="email",
                                     first_seen=ts(1_700_000_000, 123_456_000),
                                     last_seen=ts(1_700_000_200, 250_000_000),
                                     sources=["hubspot", "salesforce"], linked=True),
                pb.ProfileIdentifier(identifier="crm:salesforce:0035e00000AbCdEAAB",
                                     type="crm:salesforce",
                                     first_seen=ts(1_700_000_000, 123_456_000),
                                     last_seen=ts(1_700_000_100, 500_000_000),
                                     sources=["salesforce"], linked=True),
                pb.ProfileIdentifier(identifier="phone:+4915112345678", type="phone",
                                     first_seen=ts(1_700_000_100, 500_000_000),
                                     last_seen=ts(1_700_000_200, 250_000_000),
                                     sources=["hubspot"], linked=True),
                pb.ProfileIdentifier(identifier="device:tablet-1", type="device",
                                     first_seen=ts(1_700_000_100, 500_000_000),
                                     last_seen=ts(1_700_000_200, 250_000_000),
                                     sources=["segment"], linked=False),
            ],
            attributes={
                "given_name": pb.AttributeValue(value="Jane", source="salesforce",
                                                record_key="salesforce:0035e00000AbCdEAAB",
                                                observed_at=ts(1_700_000_000, 123_456_000),
                                                rule="source_priority"),
                "country": pb.AttributeValue(value="DE", source="hubspot",
                                             record_key="hubspot:123",
                                             observed_at=ts(1_700_000_100, 500_000_000),
                                             rule="most_frequent"),
            },
            sources=[
                pb.SourceCounter(source="salesforce", event_count=3, record_count=1,
                                 first_seen=ts(1_700_000_000, 123_456_000),
                                 last_seen=ts(1_700_000_100, 500_000_000)),
                pb.SourceCounter(source="hubspot", event_count=2, record_count=1,
                                 first_seen=ts(1_700_000_100, 500_000_000),
                                 last_seen=ts(1_700_000_200, 250_000_000)),
                pb.SourceCounter(source="segment", event_count=4, record_count=1,
                                 first_seen=ts(1_700_000_100, 500_000_000),
                                 last_seen=ts(1_700_000_200, 250_000_000)),
            ],
            record_count=3,
            event_count=9,
            first_seen=ts(1_700_000_000, 123_456_000),
            last_seen=ts(1_700_000_200, 250_000_000),
            consent={"email_marketing": True, "sms_marketing": False},
            updated_at=ts(1_700_000_300),
        ),
    )
    assert response == expected

    # and back: the proto carries everything but the record keys (only their count)
    back = convert.profile_from_proto(response.profile)
    original = make_jane()
    original.record_keys = []
    assert back == original


def test_lookup_shared_identifier_and_unknown_times(client: ProfileClient) -> None:
    response = client.lookup("device:tablet-1")
    assert response.shared is True
    assert list(response.other_profile_ids) == ["p-john"]
    assert response.profile.profile_id == "p-jane"

    john = convert.profile_to_proto(make_john())
    for name in ("first_seen", "last_seen", "updated_at"):
        assert not john.HasField(name)  # 0.0 in the store means unknown, not 1970


def test_lookup_not_found(client: ProfileClient) -> None:
    with pytest.raises(ServiceCallError) as err:
        client.lookup("email:nobody@example.com")
    assert err.value.code is grpc.StatusCode.NOT_FOUND
    assert err.value.details == "no profile has this email identifier"
    assert "NOT_FOUND" in str(err.value)


@pytest.mark.parametrize(
    ("identifier", "reason"),
    [
        ("nonsense:abc", "unknown identifier type 'nonsense'"),
        ("no-type-at-all", "unknown identifier type 'no-type-at-all'"),
        ("", "identifier is empty"),
        ("   ", "identifier is empty"),
        ("email:" + "a" * 3000, "identifier is longer than 2048 characters"),
    ],
)
def test_lookup_invalid_argument_with_reason(
    client: ProfileClient, queries: FakeQueries, identifier: str, reason: str
) -> None:
    with pytest.raises(ServiceCallError) as err:
        client.lookup(identifier)
    assert err.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details == reason


def test_unexpected_exception_is_internal_without_leaking(
    client: ProfileClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ServiceCallError) as err:
        client.lookup(LEAKY_EMAIL)
    assert err.value.code is grpc.StatusCode.INTERNAL
    details = err.value.details
    assert details.startswith("internal error (ref ")
    for secret in ("exploded", "leak.example", "RuntimeError", "boom"):
        assert secret not in details
    # the log has the reference and the exception class, but no message and no request data
    ref = details.removeprefix("internal error (ref ").rstrip(")")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert ref in logged and "RuntimeError" in logged and "Lookup" in logged
    for secret in ("exploded", "leak.example", "boom@example.com"):
        assert secret not in logged


# --- GetProfile ----------------------------------------------------------------------------


def test_get_profile_direct_and_via_alias(client: ProfileClient) -> None:
    direct = client.get_profile("p-jane")
    assert direct.profile.profile_id == "p-jane"
    assert direct.resolved_from_alias is False

    via_alias = client.get_profile(" p-old-2 ")
    assert via_alias.resolved_from_alias is True
    assert via_alias.profile == direct.profile


def test_get_profile_errors(client: ProfileClient) -> None:
    with pytest.raises(ServiceCallError) as err:
        client.get_profile("p-nobody")
    assert err.value.code is grpc.StatusCode.NOT_FOUND
    with pytest.raises(ServiceCallError) as err:
        client.get_profile("")
    assert err.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details == "profile_id is empty"


# --- BatchLookup ---------------------------------------------------------------------------


def test_batch_lookup_mixed_results_in_request_order(client: ProfileClient) -> None:
    requested = [
        "EMAIL:jane@example.com",
        "email:nobody@example.com",
        "nonsense:abc",
        "",
        "device:tablet-1",
        "email:jane@example.com",
    ]
    response = client.batch_lookup(requested)
    results = list(response.results)

    assert [r.identifier for r in results] == requested
    assert [r.code for r in results] == [0, 5, 3, 3, 0, 0]
    assert [r.HasField("result") for r in results] == [True, False, False, False, True, True]
    assert results[0].error == "" and results[0].result.profile.profile_id == "p-jane"
    assert results[0].result.matched_identifier == "email:jane@example.com"
    assert results[1].error == "no profile has this email identifier"
    assert results[2].error == "unknown identifier type 'nonsense'"
    assert results[3].error == "identifier is empty"
    assert results[4].result.shared and list(results[4].result.other_profile_ids) == ["p-john"]
    assert results[5].result == results[0].result


def test_batch_lookup_empty_and_at_limit(start_server: Callable[..., int]) -> None:
    port = start_server(max_batch_lookup=3)
    with ProfileClient(f"127.0.0.1:{port}") as c:
        assert list(c.batch_lookup([]).results) == []
        assert len(c.batch_lookup(["email:jane@example.com"] * 3).results) == 3


def test_batch_lookup_over_limit(start_server: Callable[..., int], queries: FakeQueries) -> None:
    port = start_server(max_batch_lookup=3)
    with ProfileClient(f"127.0.0.1:{port}") as c, pytest.raises(ServiceCallError) as err:
        c.batch_lookup(["email:jane@example.com"] * 4)
    assert err.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "4 identifiers" in err.value.details
    assert "grpc.max_batch_lookup" in err.value.details
    assert queries.calls == []


def test_batch_lookup_unexpected_exception_is_internal(client: ProfileClient) -> None:
    # FakeQueries.batch_lookup (like the real one) only catches IdGraphError
    with pytest.raises(ServiceCallError) as err:
        client.batch_lookup(["email:jane@example.com", LEAKY_EMAIL])
    assert err.value.code is grpc.StatusCode.INTERNAL
    assert "exploded" not in err.value.details


# --- auth ----------------------------------------------------------------------------------


def test_auth_missing_token(auth_port: int, queries: FakeQueries) -> None:
    with ProfileClient(f"127.0.0.1:{auth_port}") as c, pytest.raises(ServiceCallError) as err:
        c.lookup("email:jane@example.com")
    assert err.value.code is grpc.StatusCode.UNAUTHENTICATED
    assert "missing bearer token" in err.value.details
    assert queries.calls == []  # the handler never ran


def test_auth_wrong_token(auth_port: int, queries: FakeQueries) -> None:
    for wrong in ("nope", TOKEN + "x", TOKEN[:-1], ""):
        client = ProfileClient(f"127.0.0.1:{auth_port}", token=wrong or None)
        with client, pytest.raises(ServiceCallError) as err:
            client.get_profile("p-jane")
        assert err.value.code is grpc.StatusCode.UNAUTHENTICATED
    assert queries.calls == []


def test_auth_wrong_scheme(auth_port: int) -> None:
    channel = grpc.insecure_channel(f"127.0.0.1:{auth_port}")
    lookup = pb_grpc.ProfileServiceStub(channel).Lookup
    request = pb.LookupRequest(identifier="email:jane@example.com")
    with pytest.raises(grpc.RpcError) as err:
        lookup(request, metadata=[("authorization", f"Basic {TOKEN}")], timeout=5)
    assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED
    # the scheme is case-insensitive (RFC 7235)
    response = lookup(request, metadata=[("authorization", f"bearer {TOKEN}")], timeout=5)
    assert response.profile.profile_id == "p-jane"
    channel.close()


def test_auth_right_tokens(auth_port: int) -> None:
    for token in (TOKEN, OTHER_TOKEN):
        with ProfileClient(f"127.0.0.1:{auth_port}", token=token) as c:
            assert c.lookup("email:jane@example.com").profile.profile_id == "p-jane"
            assert c.get_profile("p-old-1").resolved_from_alias
            assert c.batch_lookup(["email:jane@example.com"]).results[0].code == 0


def test_auth_accepts_secret_str(auth_port: int) -> None:
    settings = GrpcSettings(client_token=TOKEN)
    with ProfileClient(f"127.0.0.1:{auth_port}", token=settings.client_token) as c:
        assert c.lookup("email:jane@example.com").profile.profile_id == "p-jane"


def test_health_check_needs_no_token(auth_port: int) -> None:
    with ProfileClient(f"127.0.0.1:{auth_port}") as c:
        assert c.health() == "SERVING"
        assert c.health(SERVICE_NAME) == "SERVING"


def test_reflection_needs_token_when_auth_enabled(auth_port: int) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{auth_port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        with pytest.raises(grpc.RpcError) as err:
            list(stub.ServerReflectionInfo(iter([request]), timeout=5))
        assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED
        responses = list(stub.ServerReflectionInfo(
            iter([request]), timeout=5, metadata=[("authorization", f"Bearer {TOKEN}")]
        ))
    names = {s.name for s in responses[0].list_services_response.service}
    assert SERVICE_NAME in names


# --- health and reflection -----------------------------------------------------------------


def test_health_reports_serving(client: ProfileClient) -> None:
    assert client.health() == "SERVING"
    assert client.health("idgraph.v1.ProfileService") == "SERVING"
    with pytest.raises(ServiceCallError) as err:
        client.health("no.such.Service")
    assert err.value.code is grpc.StatusCode.NOT_FOUND


def test_health_watch(client: ProfileClient) -> None:
    stub = health_pb2_grpc.HealthStub(client._channel)
    stream = stub.Watch(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=5)
    first = next(stream)
    stream.cancel()
    assert first.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_and_describes_the_service(client: ProfileClient) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(client._channel)
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE_NAME),
    ]
    listed, described = list(stub.ServerReflectionInfo(iter(requests), timeout=5))
    names = {s.name for s in listed.list_services_response.service}
    assert {SERVICE_NAME, "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection"} <= names

    from google.protobuf import descriptor_pb2

    files = [descriptor_pb2.FileDescriptorProto.FromString(raw)
             for raw in described.file_descriptor_response.file_descriptor_proto]
    services = {(f.package, s.name): [m.name for m in s.method] for f in files for s in f.service}
    assert services[("idgraph.v1", "ProfileService")] == [
        "Lookup", "GetProfile", "BatchLookup", "Explain", "ListReviews", "DecideReview"]


# --- error mapping beyond ProfileService (future streaming rpcs, handlers that abort) ------


@pytest.fixture
def raw_channel() -> Iterator[grpc.Channel]:
    """A server with only ErrorMappingInterceptor and test methods on raw bytes."""
    from concurrent import futures

    from idgraph.service.interceptors import ErrorMappingInterceptor

    def numbers(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        yield b"1"
        if request == b"missing":
            raise NotFoundError("no such thing")
        raise RuntimeError("secret jane@example.com")

    def aborting(request: bytes, context: grpc.ServicerContext) -> bytes:
        context.abort(grpc.StatusCode.PERMISSION_DENIED, "handler decided")
        return b""

    def plain(request: bytes, context: grpc.ServicerContext) -> bytes:
        raise KeyError("jane@example.com")

    handlers = {
        "Numbers": grpc.unary_stream_rpc_method_handler(numbers),
        "Abort": grpc.unary_unary_rpc_method_handler(aborting),
        "Plain": grpc.unary_unary_rpc_method_handler(plain),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2),
                         interceptors=[ErrorMappingInterceptor()])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("idgraph.test.T", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel
    server.stop(None)


def test_error_mapping_streaming(raw_channel: grpc.Channel) -> None:
    numbers = raw_channel.unary_stream("/idgraph.test.T/Numbers")
    stream = numbers(b"missing", timeout=5)
    assert next(stream) == b"1"
    with pytest.raises(grpc.RpcError) as err:
        next(stream)
    assert err.value.code() is grpc.StatusCode.NOT_FOUND
    assert err.value.details() == "no such thing"

    stream = numbers(b"other", timeout=5)
    assert next(stream) == b"1"
    with pytest.raises(grpc.RpcError) as err:
        next(stream)
    assert err.value.code() is grpc.StatusCode.INTERNAL
    assert "jane" not in err.value.details()


def test_error_mapping_respects_handler_abort(raw_channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as err:
        raw_channel.unary_unary("/idgraph.test.T/Abort")(b"", timeout=5)
    assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert err.value.details() == "handler decided"
    with pytest.raises(grpc.RpcError) as err:
        raw_channel.unary_unary("/idgraph.test.T/Plain")(b"", timeout=5)
    assert err.value.code() is grpc.StatusCode.INTERNAL
    assert "jane" not in err.value.details()


# --- server configuration ------------------------------------------------------------------


def test_refuses_unauthenticated_non_loopback(queries: FakeQueries) -> None:
    for address in ("0.0.0.0:0", "[::]:0", "10.1.2.3:0"):
        with pytest.raises(ConfigError, match="refusing to serve unauthenticated"):
            create_server(queries, GrpcSettings(allow_plaintext=True), address)
    with pytest.raises(ConfigError, match="refusing to serve unauthenticated"):
        create_server(queries, GrpcSettings(host="0.0.0.0", port=0))


def test_non_loopback_needs_tls_unless_told_plaintext_is_fine(queries: FakeQueries) -> None:
    with pytest.raises(ConfigError, match="refusing to serve '0.0.0.0' in plain text"):
        create_server(queries, GrpcSettings(api_tokens=[TOKEN]), "0.0.0.0:0")
    server, port = create_server(queries, GrpcSettings(api_tokens=[TOKEN],
                                                       allow_plaintext=True), "0.0.0.0:0")
    server.start()
    try:
        assert port > 0
        with ProfileClient(f"127.0.0.1:{port}", token=TOKEN) as c:
            assert c.lookup("email:jane@example.com").profile.profile_id == "p-jane"
    finally:
        server.stop(None)


def test_config_errors(queries: FakeQueries, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"grpc.api_tokens\[1\] is empty"):
        create_server(queries, GrpcSettings(api_tokens=[TOKEN, " "]), "127.0.0.1:0")
    with pytest.raises(ConfigError, match="grpc.tls_key_file is not set"):
        create_server(queries, GrpcSettings(tls_cert_file=tmp_path / "c.pem"), "127.0.0.1:0")
    with pytest.raises(ConfigError, match="grpc.tls_cert_file: cannot read"):
        (tmp_path / "k.pem").write_text("x")
        create_server(
            queries,
            GrpcSettings(tls_cert_file=tmp_path / "c.pem", tls_key_file=tmp_path / "k.pem"),
            "127.0.0.1:0",
        )


def test_port_in_use_is_a_config_error(
    queries: FakeQueries, start_server: Callable[..., int]
) -> None:
    port = start_server()
    with pytest.raises(ConfigError, match="cannot bind"):
        create_server(queries, GrpcSettings(), f"127.0.0.1:{port}")


def test_serve_runs_until_stopped(queries: FakeQueries) -> None:
    import threading

    from idgraph.service.server import serve

    stop = threading.Event()
    ports: list[int] = []
    ready = threading.Event()

    def on_ready(port: int) -> None:
        ports.append(port)
        ready.set()

    thread = threading.Thread(
        target=serve, args=(queries, GrpcSettings(port=0)),
        kwargs={"grace": 1.0, "stop_event": stop, "on_ready": on_ready}, daemon=True,
    )
    thread.start()
    assert ready.wait(10)
    with ProfileClient(f"127.0.0.1:{ports[0]}", timeout=5) as c:
        assert c.lookup("email:jane@example.com").profile.profile_id == "p-jane"
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def _self_signed(cert: Path, key: Path) -> None:
    """A one-day self-signed certificate for localhost and 127.0.0.1."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(private.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))


def test_tls(queries: FakeQueries, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    _self_signed(cert, key)
    settings = GrpcSettings(api_tokens=[TOKEN], tls_cert_file=cert, tls_key_file=key)
    server, port = create_server(queries, settings, "127.0.0.1:0")
    server.start()
    try:
        with ProfileClient(f"localhost:{port}", token=TOKEN, tls_ca=cert) as c:
            assert c.lookup("email:jane@example.com").profile.profile_id == "p-jane"
        with ProfileClient(f"127.0.0.1:{port}", token=TOKEN, tls_ca=cert.read_bytes()) as c:
            assert c.health() == "SERVING"
        with ProfileClient(f"127.0.0.1:{port}", token=TOKEN, timeout=2) as plain:
            with pytest.raises(ServiceCallError) as err:
                plain.lookup("email:jane@example.com")
            assert err.value.code is grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(None)


# --- conversion details --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (1_700_000_000.0, (1_700_000_000, 0)),
        (1_700_000_000.123456, (1_700_000_000, 123_456_000)),
        (1_700_000_000.9999996, (1_700_000_001, 0)),  # rounds to the microsecond, carries
        (-1.5, (-2, 500_000_000)),  # before the epoch: nanos stay positive
    ],
)
def test_timestamp_conversion(seconds: float, expected: tuple[int, int]) -> None:
    ts_ = convert.timestamp(seconds)
    assert ts_ is not None and (ts_.seconds, ts_.nanos) == expected
    assert convert.seconds(ts_) == pytest.approx(seconds, abs=1e-6)
    assert convert.timestamp(0.0) is None


# --- generated code ------------------------------------------------------------------------


def test_generated_code_is_up_to_date() -> None:
    from idgraph.proto.generate import outdated  # needs grpcio-tools (the dev extra)

    stale = outdated()
    assert stale == [], (
        f"generated modules out of date with the .proto: {stale}; "
        "run `.venv/bin/python -m idgraph.proto.generate` and commit the result"
    )
