"""End-to-end tests of the gRPC service through a real channel on 127.0.0.1.

The server runs over the real query stack, opened as ``idgraph serve`` opens it
(:func:`~idgraph.engine.backends.open_reader_store`,
:func:`~idgraph.engine.backends.open_queries`) on a data dir an :class:`Engine` filled with
a few records: the answers (normalisation, error messages, shared identifiers, aliases,
survivorship) are the product's own. These tests exercise the proto contract, conversion,
auth, error mapping, health and reflection on top of it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from helpers import record

from idgraph.core.errors import ConfigError, NotFoundError
from idgraph.engine import Engine
from idgraph.engine.backends import open_queries, open_reader_store
from idgraph.engine.queries import ProfileQueries
from idgraph.profile_store.base import IdentifierMatch, Profile, ProfileIdentifier
from idgraph.proto.idgraph.v1 import profiles_pb2 as pb
from idgraph.proto.idgraph.v1 import profiles_pb2_grpc as pb_grpc
from idgraph.service import convert
from idgraph.service.client import ProfileClient, ServiceCallError
from idgraph.service.server import SERVICE_NAME, create_server
from idgraph.service.settings import GrpcSettings
from idgraph.settings import Settings

TOKEN = "s3cret-token"
OTHER_TOKEN = "second-token"
LEAKY_EMAIL = "email:boom@example.com"

# 2023-11-14T22:13:20.123456Z and friends: fractional seconds exercise the conversion.
T0 = 1_700_000_000.123456
T1 = 1_700_000_100.5
T2 = 1_700_000_200.25
T3 = 1_700_000_300.0

SF_ID = "0035e00000AbCdEAAB"
JANE_EMAIL = "email:jane@example.com"
TABLET = "device:tablet-1"
TV = "device:tv-1"

# Jane: a Salesforce contact, then a HubSpot contact with her phone and tablet (no
# identifier in common yet: a second profile), then a HubSpot event with her email that
# joins the two (one profile ID survives, the other becomes its alias).
JANE_SF = record("salesforce", SF_ID, "sf-1", T0, [f"crm:salesforce:{SF_ID}", JANE_EMAIL],
                 given_name="Jane", family_name="Doe")
JANE_HS = record("hubspot", "123", "hs-1", T1,
                 ["crm:hubspot:123", "phone:+4915112345678", TABLET],
                 consent={"email_marketing": True, "sms_marketing": False},
                 given_name="Jane", family_name="Doe", country="DE")
JANE_JOIN = record("hubspot", "123", "hs-2", T2, ["crm:hubspot:123", JANE_EMAIL])
# John and Max use Jane's tablet later: a shared device links nothing more, so it is
# attached to their profiles unlinked. Max's record is the more recent of the two. They
# share a TV too: John's record, the earlier, links it.
JOHN = record("hubspot", "456", "hs-3", T2, ["crm:hubspot:456", "email:john@example.com",
                                              TABLET, TV], given_name="John", country="US")
MAX = record("hubspot", "789", "hs-4", T3, ["crm:hubspot:789", "email:max@example.com",
                                             TABLET, TV], given_name="Max", country="US")


@dataclass(frozen=True)
class World:
    """The served data dir and the profile IDs the engine gave its people."""

    settings: Settings
    jane: str
    jane_alias: str
    john: str
    max: str
    written_after: float  # wall-clock bounds of the writes (a profile's updated_at)
    written_before: float


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    settings = Settings(data_dir=tmp_path_factory.mktemp("grpc") / "data")
    started = time.time()
    with Engine(settings) as engine:
        for batch in ([JANE_SF], [JANE_HS], [JANE_JOIN], [JOHN, MAX]):
            engine.ingest(batch)
        profile_of = engine.graph.profile_of
        jane = profile_of(f"salesforce:{SF_ID}")
        assert profile_of("hubspot:123") == jane  # the join happened
        aliases = engine.graph.aliases_of(jane)
        assert len(aliases) == 1
        people = World(settings, jane, aliases[0], profile_of("hubspot:456"),
                       profile_of("hubspot:789"), started, time.time())
    assert len({people.jane, people.john, people.max}) == 3
    return people


class BrokenForOneIdentifier:
    """The real store, except that looking up ``LEAKY_EMAIL`` fails as a driver bug might,
    with personal data in its message (which must reach neither the caller nor the log)."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def lookup(self, identifier_key: str) -> list[IdentifierMatch]:
        if identifier_key == LEAKY_EMAIL:
            raise RuntimeError("database exploded while reading jane.doe@leak.example")
        return self._store.lookup(identifier_key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class RecordedQueries:
    """The real :class:`ProfileQueries`; ``calls`` names each of its methods the server
    called (a refused request must reach none of them)."""

    def __init__(self, queries: ProfileQueries) -> None:
        self._queries = queries
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._queries, name)
        if not callable(value):
            return value

        def recorded(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return value(*args, **kwargs)

        return recorded


@pytest.fixture
def queries(world: World) -> Iterator[RecordedQueries]:
    settings = world.settings
    store = open_reader_store(settings, settings.served_regions)
    yield RecordedQueries(open_queries(settings, BrokenForOneIdentifier(store)))
    store.close()


@pytest.fixture
def start_server(queries: RecordedQueries) -> Iterator[Callable[..., int]]:
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


def test_lookup_found_converts_every_field(client: ProfileClient, world: World,
                                           queries: RecordedQueries) -> None:
    response = client.lookup("  Email:Jane@Example.com ")

    # the version is the wall-clock time of the profile's last write
    updated = convert.seconds(response.profile.updated_at)
    assert world.written_after <= updated <= world.written_before
    t0, t1, t2 = ts(1_700_000_000, 123_456_000), ts(1_700_000_100, 500_000_000), ts(
        1_700_000_200, 250_000_000)
    expected = pb.LookupResponse(
        matched_identifier=JANE_EMAIL,
        shared=False,
        profile=pb.Profile(
            profile_id=world.jane,
            region="eu",  # her German phone and country
            aliases=[world.jane_alias],
            identifiers=[
                pb.ProfileIdentifier(identifier="crm:hubspot:123", type="crm:hubspot",
                                     first_seen=t1, last_seen=t2, sources=["hubspot"],
                                     linked=True),
                pb.ProfileIdentifier(identifier=f"crm:salesforce:{SF_ID}",
                                     type="crm:salesforce", first_seen=t0, last_seen=t0,
                                     sources=["salesforce"], linked=True),
                pb.ProfileIdentifier(identifier=TABLET, type="device", first_seen=t1,
                                     last_seen=t1, sources=["hubspot"], linked=True),
                pb.ProfileIdentifier(identifier=JANE_EMAIL, type="email", first_seen=t0,
                                     last_seen=t2, sources=["hubspot", "salesforce"],
                                     linked=True),
                pb.ProfileIdentifier(identifier="phone:+4915112345678", type="phone",
                                     first_seen=t1, last_seen=t1, sources=["hubspot"],
                                     linked=True),
            ],
            attributes={
                # both records say Jane Doe: the provenance is the newer record's
                "given_name": pb.AttributeValue(value="Jane", source="hubspot",
                                                record_key="hubspot:123", observed_at=t1,
                                                rule="source_priority"),
                "family_name": pb.AttributeValue(value="Doe", source="hubspot",
                                                 record_key="hubspot:123", observed_at=t1,
                                                 rule="source_priority"),
                "country": pb.AttributeValue(value="DE", source="hubspot",
                                             record_key="hubspot:123", observed_at=t1,
                                             rule="most_frequent"),
            },
            sources=[
                pb.SourceCounter(source="hubspot", event_count=2, record_count=1,
                                 first_seen=t1, last_seen=t2),
                pb.SourceCounter(source="salesforce", event_count=1, record_count=1,
                                 first_seen=t0, last_seen=t0),
            ],
            record_count=2,
            event_count=3,
            first_seen=t0,
            last_seen=t2,
            consent={"email_marketing": True, "sms_marketing": False},
            updated_at=response.profile.updated_at,
        ),
    )
    assert response == expected

    # and back: the proto carries everything but the record keys (only their count), the
    # events and the consent of each record; times to the microsecond
    original = queries.lookup(JANE_EMAIL).profile
    back = convert.profile_from_proto(response.profile)
    assert back.updated_at == pytest.approx(original.updated_at, abs=1e-6)
    assert back == replace(original, record_keys=[], events=[], record_consent=[],
                           updated_at=back.updated_at)


def test_lookup_by_a_shared_identifier_names_every_profile_that_carries_it(
        client: ProfileClient, world: World) -> None:
    """The tablet is linked in Jane's profile (her record carried it first); John's and
    Max's carry it unlinked. The answer is the profile it is linked in, and names the
    others, the most recently active first."""
    response = client.lookup(TABLET)
    assert response.shared is True
    assert response.matched_identifier == TABLET
    assert response.profile.profile_id == world.jane
    assert list(response.other_profile_ids) == [world.max, world.john]
    device = {i.identifier: i for i in response.profile.identifiers}[TABLET]
    assert device.linked

    pair = client.lookup(TV)  # two carriers
    assert pair.shared is True
    assert pair.profile.profile_id == world.john and list(pair.other_profile_ids) == [world.max]

    for identifier, owner in [(JANE_EMAIL, world.jane), ("email:john@example.com", world.john),
                              ("crm:hubspot:789", world.max)]:
        single = client.lookup(identifier)
        assert single.shared is False and list(single.other_profile_ids) == []
        assert single.profile.profile_id == owner


def test_unknown_times_are_left_unset() -> None:
    nobody_knows_when = Profile(
        profile_id="p-x", region="us",
        identifiers=[ProfileIdentifier(TABLET, "device", 0.0, 0.0, ["segment"], False)],
        attributes={}, sources=[], record_keys=[])
    message = convert.profile_to_proto(nobody_knows_when)
    for name in ("first_seen", "last_seen", "updated_at"):
        assert not message.HasField(name)  # 0.0 in the store means unknown, not 1970
    for name in ("first_seen", "last_seen"):
        assert not message.identifiers[0].HasField(name)


def test_lookup_not_found(client: ProfileClient) -> None:
    with pytest.raises(ServiceCallError) as err:
        client.lookup("email:nobody@example.com")
    assert err.value.code is grpc.StatusCode.NOT_FOUND
    assert err.value.details == "no profile has this email identifier"
    assert "NOT_FOUND" in str(err.value)


UNKNOWN_TYPE = "unknown identifier type (the text before the first ':'); known types: "
NO_TYPE = "identifier must have the form TYPE:VALUE (e.g. email:jane@example.com)"


@pytest.mark.parametrize(
    ("identifier", "reason"),
    [
        # the normaliser's reasons (it does not quote what the caller sent: it may be PII)
        ("nonsense:abc", UNKNOWN_TYPE),
        ("jane.doe@leak.example:x", UNKNOWN_TYPE),
        ("no-type-at-all", NO_TYPE),
        ("email:not-an-address", "email: missing @"),
        ("crm:hubspot", "identifier type 'crm' needs a namespace: crm:NAMESPACE:VALUE"),
        # the servicer's limits, checked before the query
        ("", "identifier is empty"),
        ("   ", "identifier is empty"),
        ("email:" + "a" * 3000, "identifier is longer than 2048 characters"),
    ],
)
def test_lookup_invalid_argument_with_reason(
    client: ProfileClient, identifier: str, reason: str
) -> None:
    with pytest.raises(ServiceCallError) as err:
        client.lookup(identifier)
    assert err.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details.startswith(reason)
    if reason != UNKNOWN_TYPE:
        assert err.value.details == reason
    assert "nonsense" not in err.value.details and "leak" not in err.value.details


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


def test_get_profile_direct_and_via_alias(client: ProfileClient, world: World) -> None:
    direct = client.get_profile(world.jane)
    assert direct.profile.profile_id == world.jane
    assert direct.resolved_from_alias is False

    via_alias = client.get_profile(f" {world.jane_alias} ")
    assert via_alias.resolved_from_alias is True
    assert via_alias.profile == direct.profile


def test_get_profile_errors(client: ProfileClient) -> None:
    with pytest.raises(ServiceCallError) as err:
        client.get_profile("p-nobody")
    assert err.value.code is grpc.StatusCode.NOT_FOUND
    assert err.value.details == "no profile with this ID in the served regions"
    with pytest.raises(ServiceCallError) as err:
        client.get_profile("")
    assert err.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details == "profile_id is empty"


# --- BatchLookup ---------------------------------------------------------------------------


def test_batch_lookup_mixed_results_in_request_order(client: ProfileClient,
                                                     world: World) -> None:
    requested = [
        "EMAIL:jane@example.com",
        "email:nobody@example.com",
        "nonsense:abc",
        "",
        TABLET,
        JANE_EMAIL,
    ]
    response = client.batch_lookup(requested)
    results = list(response.results)

    assert [r.identifier for r in results] == requested
    assert [r.code for r in results] == [0, 5, 3, 3, 0, 0]
    assert [r.HasField("result") for r in results] == [True, False, False, False, True, True]
    assert results[0].error == "" and results[0].result.profile.profile_id == world.jane
    assert results[0].result.matched_identifier == JANE_EMAIL
    assert results[1].error == "no profile has this email identifier"
    assert results[2].error.startswith(UNKNOWN_TYPE) and "nonsense" not in results[2].error
    assert results[3].error == "identifier is empty"
    assert results[4].result.shared
    assert results[4].result.profile.profile_id == world.jane
    assert list(results[4].result.other_profile_ids) == [world.max, world.john]
    assert results[5].result == results[0].result


def test_batch_lookup_empty_and_at_limit(start_server: Callable[..., int]) -> None:
    port = start_server(max_batch_lookup=3)
    with ProfileClient(f"127.0.0.1:{port}") as c:
        assert list(c.batch_lookup([]).results) == []
        assert len(c.batch_lookup([JANE_EMAIL] * 3).results) == 3


def test_batch_lookup_over_limit(start_server: Callable[..., int],
                                 queries: RecordedQueries) -> None:
    port = start_server(max_batch_lookup=3)
    with ProfileClient(f"127.0.0.1:{port}") as c, pytest.raises(ServiceCallError) as err:
        c.batch_lookup([JANE_EMAIL] * 4)
    assert err.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "4 identifiers" in err.value.details
    assert "grpc.max_batch_lookup" in err.value.details
    assert queries.calls == []
    with ProfileClient(f"127.0.0.1:{port}") as c:
        c.batch_lookup([JANE_EMAIL] * 3)
    assert queries.calls == ["batch_lookup"]  # one within the limit reaches them


def test_batch_lookup_unexpected_exception_is_internal(client: ProfileClient) -> None:
    # ProfileQueries.batch_lookup answers domain errors per identifier, nothing else
    with pytest.raises(ServiceCallError) as err:
        client.batch_lookup([JANE_EMAIL, LEAKY_EMAIL])
    assert err.value.code is grpc.StatusCode.INTERNAL
    assert "exploded" not in err.value.details


# --- auth ----------------------------------------------------------------------------------


def test_auth_missing_token(auth_port: int, queries: RecordedQueries) -> None:
    with ProfileClient(f"127.0.0.1:{auth_port}") as c, pytest.raises(ServiceCallError) as err:
        c.lookup(JANE_EMAIL)
    assert err.value.code is grpc.StatusCode.UNAUTHENTICATED
    assert "missing bearer token" in err.value.details
    assert queries.calls == []  # the handler never ran
    with ProfileClient(f"127.0.0.1:{auth_port}", token=TOKEN) as c:
        c.lookup(JANE_EMAIL)
    assert queries.calls == ["locate", "profile"]  # with the token it does


def test_auth_wrong_token(auth_port: int, queries: RecordedQueries,
                          world: World) -> None:
    for wrong in ("nope", TOKEN + "x", TOKEN[:-1], ""):
        client = ProfileClient(f"127.0.0.1:{auth_port}", token=wrong or None)
        with client, pytest.raises(ServiceCallError) as err:
            client.get_profile(world.jane)
        assert err.value.code is grpc.StatusCode.UNAUTHENTICATED
    assert queries.calls == []
    with ProfileClient(f"127.0.0.1:{auth_port}", token=TOKEN) as c:
        c.get_profile(world.jane)
    assert queries.calls == ["get_profile"]  # with the right token it does


def test_auth_wrong_scheme(auth_port: int, world: World) -> None:
    channel = grpc.insecure_channel(f"127.0.0.1:{auth_port}")
    lookup = pb_grpc.ProfileServiceStub(channel).Lookup
    request = pb.LookupRequest(identifier=JANE_EMAIL)
    with pytest.raises(grpc.RpcError) as err:
        lookup(request, metadata=[("authorization", f"Basic {TOKEN}")], timeout=5)
    assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED
    # the scheme is case-insensitive (RFC 7235)
    response = lookup(request, metadata=[("authorization", f"bearer {TOKEN}")], timeout=5)
    assert response.profile.profile_id == world.jane
    channel.close()


def test_auth_right_tokens(auth_port: int, world: World) -> None:
    for token in (TOKEN, OTHER_TOKEN):
        with ProfileClient(f"127.0.0.1:{auth_port}", token=token) as c:
            assert c.lookup(JANE_EMAIL).profile.profile_id == world.jane
            assert c.get_profile(world.jane_alias).resolved_from_alias
            assert c.batch_lookup([JANE_EMAIL]).results[0].code == 0


def test_auth_accepts_secret_str(auth_port: int, world: World) -> None:
    settings = GrpcSettings(client_token=TOKEN)
    with ProfileClient(f"127.0.0.1:{auth_port}", token=settings.client_token) as c:
        assert c.lookup(JANE_EMAIL).profile.profile_id == world.jane


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
        "Lookup", "GetProfile", "BatchLookup", "Explain", "ListReviews", "DecideReview",
        "GetProfileHistory"]


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


def test_refuses_unauthenticated_non_loopback(queries: RecordedQueries) -> None:
    for address in ("0.0.0.0:0", "[::]:0", "10.1.2.3:0"):
        with pytest.raises(ConfigError, match="refusing to serve unauthenticated"):
            create_server(queries, GrpcSettings(allow_plaintext=True), address)
    with pytest.raises(ConfigError, match="refusing to serve unauthenticated"):
        create_server(queries, GrpcSettings(host="0.0.0.0", port=0))


def test_non_loopback_needs_tls_unless_told_plaintext_is_fine(queries: RecordedQueries,
                                                               world: World) -> None:
    with pytest.raises(ConfigError, match="refusing to serve '0.0.0.0' in plain text"):
        create_server(queries, GrpcSettings(api_tokens=[TOKEN]), "0.0.0.0:0")
    server, port = create_server(queries, GrpcSettings(api_tokens=[TOKEN],
                                                       allow_plaintext=True), "0.0.0.0:0")
    server.start()
    try:
        assert port > 0
        with ProfileClient(f"127.0.0.1:{port}", token=TOKEN) as c:
            assert c.lookup(JANE_EMAIL).profile.profile_id == world.jane
    finally:
        server.stop(None)


def test_config_errors(queries: RecordedQueries, tmp_path: Path) -> None:
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
    queries: RecordedQueries, start_server: Callable[..., int]
) -> None:
    port = start_server()
    with pytest.raises(ConfigError, match="cannot bind"):
        create_server(queries, GrpcSettings(), f"127.0.0.1:{port}")


def test_serve_runs_until_stopped(queries: RecordedQueries, world: World) -> None:
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
        assert c.lookup(JANE_EMAIL).profile.profile_id == world.jane
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


def test_tls(queries: RecordedQueries, tmp_path: Path, world: World) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    _self_signed(cert, key)
    settings = GrpcSettings(api_tokens=[TOKEN], tls_cert_file=cert, tls_key_file=key)
    server, port = create_server(queries, settings, "127.0.0.1:0")
    server.start()
    try:
        with ProfileClient(f"localhost:{port}", token=TOKEN, tls_ca=cert) as c:
            assert c.lookup(JANE_EMAIL).profile.profile_id == world.jane
        with ProfileClient(f"127.0.0.1:{port}", token=TOKEN, tls_ca=cert.read_bytes()) as c:
            assert c.health() == "SERVING"
        with ProfileClient(f"127.0.0.1:{port}", token=TOKEN, timeout=2) as plain:
            with pytest.raises(ServiceCallError) as err:
                plain.lookup(JANE_EMAIL)
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
