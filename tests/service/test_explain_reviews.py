"""Explain, ListReviews and DecideReview end to end, and least-privilege tokens.

Real data: an :class:`idgraph.engine.Engine` on a temporary data dir ingests canonical
records (two share an e-mail: a deterministic link), gets a probabilistic match edge
between two records that share nothing, and queues record pairs for review. The server
reads it the way ``idgraph serve`` does (read-only store, read-only graph view, its own
review queue connection) and is called over a real channel on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from helpers import record

import idgraph.coordination as review_module
from idgraph.coordination import ReviewQueue, ReviewStateError, open_review_queue, review_id_for
from idgraph.core.errors import ConfigError, IdGraphError, NotFoundError
from idgraph.engine import Engine
from idgraph.engine.explain import Explainer
from idgraph.engine.queries import ProfileQueries
from idgraph.graph import create_graph
from idgraph.graph.base import IdentityGraph, MatchEdge
from idgraph.profile_store import create_store
from idgraph.proto.idgraph.v1 import profiles_pb2 as pb
from idgraph.proto.idgraph.v1 import profiles_pb2_grpc as pb_grpc
from idgraph.resolver.normalize import Normalizer
from idgraph.service.client import ProfileClient, ServiceCallError
from idgraph.service.interceptors import status_code, status_for
from idgraph.service.server import SERVICE_NAME, create_server
from idgraph.service.servicer import REVIEW_STATUSES
from idgraph.service.settings import GrpcSettings
from idgraph.settings import Settings

API_TOKEN = "api-token-1"
STEWARD_TOKEN = "steward-token-1"
STEWARD_ID = "steward:" + hashlib.sha256(STEWARD_TOKEN.encode()).hexdigest()[:8]

MODEL = "v0001"
MATCH_CONTRIBUTIONS = (
    ("email", "All other comparisons", -2.5),
    ("given_name", "Exact match on given_name", 7.25),
    ("dob", "Null", 0.0),
)

# Jane: salesforce and hubspot share an e-mail (deterministic); the segment record shares
# nothing and joins through a match edge hubspot:51 -- segment:u1.
JANE_SF = record("salesforce", "003A", "sf-1", 100,
                 ["crm:salesforce:003A", "email:jane@acme.com", "device:tablet-1"],
                 given_name="Jane")
JANE_HS = record("hubspot", "51", "hs-1", 200,
                 ["crm:hubspot:51", "email:jane@acme.com", "email:jane@gmail.com"],
                 given_name="Jane")
JANE_SEG = record("segment", "u1", "seg-1", 300, ["user:segment:u1"], given_name="Jane")
# John: his own profile; he used Jane's tablet (a shareable identifier may not join two
# known people, so that edge is attached but not linked).
JOHN_SF = record("salesforce", "003D", "sf-2", 400,
                 ["crm:salesforce:003D", "email:john@other.com", "device:tablet-1"],
                 given_name="John")
# Joan: two records the model was unsure about (the review queue).
JOAN_HS = record("hubspot", "77", "hs-2", 500, ["crm:hubspot:77", "email:joan@example.org"],
                 given_name="Joan")
JOAN_SEG = record("segment", "u9", "seg-2", 600, ["user:segment:u9"], given_name="Joan")

REVIEW_JOAN = review_id_for("hubspot:77", "segment:u9")
REVIEW_JOHN_SEG = review_id_for("salesforce:003D", "segment:u9")
REVIEW_JOHN_JOAN = review_id_for("hubspot:77", "salesforce:003D")
REVIEW_CONTRIBUTIONS = (("email", "All other comparisons", -1.0),
                        ("given_name", "Exact match on given_name", 7.0))


@dataclass
class World:
    settings: Settings
    engine: Engine
    store: object
    graph: IdentityGraph
    reviews: ReviewQueue
    explainer: Explainer
    queries: ProfileQueries
    segment_profile_before_match: str
    servers: list[grpc.Server] = field(default_factory=list)
    engine_open: bool = True

    def serve(self, *, with_views: bool = True, **grpc_settings: object) -> int:
        settings = GrpcSettings(**grpc_settings)
        extra = {"explainer": self.explainer, "reviews": self.reviews} if with_views else {}
        server, port = create_server(self.queries, settings, "127.0.0.1:0", **extra)
        server.start()
        self.servers.append(server)
        return port

    def reopen_writer(self) -> None:
        """Close the writer and open a new one (applies accepted reviews at start)."""
        self.engine.close()
        self.engine_open = False
        self.engine = Engine(self.settings)
        self.engine_open = True


@pytest.fixture
def world(tmp_path) -> Iterator[World]:
    settings = Settings(data_dir=tmp_path / "data")
    engine = Engine(settings)
    engine.ingest([JANE_SF, JANE_HS])
    engine.ingest([JANE_SEG])  # its own profile first: the match merges it (an alias)
    engine.ingest([JOHN_SF, JOAN_HS, JOAN_SEG])
    segment_pid = engine.queries.lookup("user:segment:u1").profile.profile_id
    engine.apply_matches([MatchEdge(
        record_a="hubspot:51", record_b="segment:u1", linked=True,
        rule=f"probabilistic:{MODEL}", reason="", match_weight=4.75, probability=0.964,
        model_version=MODEL, contributions=MATCH_CONTRIBUTIONS, source="segment",
        event_id="seg-1", at=300.0,
    )])
    assert engine.reviews.propose([
        ("segment:u9", "hubspot:77", 3.1, 0.97, MODEL, REVIEW_CONTRIBUTIONS),
        ("salesforce:003D", "segment:u9", 2.0, 0.955, MODEL, REVIEW_CONTRIBUTIONS),
        ("hubspot:77", "salesforce:003D", 2.5, 0.96, MODEL, REVIEW_CONTRIBUTIONS),
    ]) == 3

    # the reader side, as ``idgraph serve`` opens it
    store = create_store(settings.profile_store_backend, settings.data_dir,
                         settings.served_regions, readonly=True)
    queries = ProfileQueries(store, Normalizer(settings.normalization), settings.survivorship)
    graph = create_graph(settings.graph_backend, settings.data_dir, frozenset(), read_only=True)
    reviews = open_review_queue(settings.data_dir)
    w = World(settings, engine, store, graph, reviews, Explainer(graph, queries), queries,
              segment_pid)
    yield w
    for server in w.servers:
        server.stop(None)
    graph.close()
    reviews.close()
    store.close()
    if w.engine_open:
        w.engine.close()


@pytest.fixture
def port(world: World) -> int:
    return world.serve(api_tokens=[API_TOKEN], steward_tokens=[STEWARD_TOKEN])


@pytest.fixture
def connect(port: int) -> Iterator[Callable[..., ProfileClient]]:
    clients: list[ProfileClient] = []

    def make(token: str | None = STEWARD_TOKEN) -> ProfileClient:
        client = ProfileClient(f"127.0.0.1:{port}", token=token, timeout=10)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def steward(connect: Callable[..., ProfileClient]) -> ProfileClient:
    return connect(STEWARD_TOKEN)


def fails(code: grpc.StatusCode, call: Callable[[], object]) -> str:
    """Run ``call``; assert it fails with ``code``; return the status message."""
    with pytest.raises(ServiceCallError) as err:
        call()
    assert err.value.code is code, err.value
    return err.value.details


def edge_key(edge: pb.Edge) -> tuple:
    return (edge.record_key, edge.identifier, edge.other_record, edge.linked, edge.rule)


# --- Explain -------------------------------------------------------------------------------


def test_explain_profile_lists_identifier_edges_and_the_match_edge(
    world: World, steward: ProfileClient
) -> None:
    jane = world.engine.queries.lookup("email:jane@acme.com").profile.profile_id
    response = steward.explain_profile(jane)

    assert response.profile_id == jane
    assert response.joined is True and response.other_profile_id == ""
    keys = [edge_key(e) for e in response.edges]
    assert sorted(keys) == sorted([
        ("hubspot:51", "crm:hubspot:51", "", True, "deterministic:crm:hubspot"),
        ("hubspot:51", "email:jane@acme.com", "", True, "deterministic:email"),
        ("hubspot:51", "email:jane@gmail.com", "", True, "deterministic:email"),
        ("hubspot:51", "", "segment:u1", True, f"probabilistic:{MODEL}"),
        ("salesforce:003A", "crm:salesforce:003A", "", True, "deterministic:crm:salesforce"),
        ("salesforce:003A", "email:jane@acme.com", "", True, "deterministic:email"),
        ("salesforce:003A", "device:tablet-1", "", True, "deterministic:device"),
        ("segment:u1", "user:segment:u1", "", True, "deterministic:user:segment"),
    ])

    match = next(e for e in response.edges if e.other_record)
    assert match.HasField("match_weight") and match.match_weight == pytest.approx(4.75)
    assert match.HasField("probability") and match.probability == pytest.approx(0.964)
    assert match.model_version == MODEL
    assert [(c.comparison, c.level, c.match_weight) for c in match.contributions] == [
        ("email", "All other comparisons", -2.5),
        ("given_name", "Exact match on given_name", 7.25),
        ("dob", "Null", 0.0),
    ]
    assert (match.source, match.event_id, match.at.seconds) == ("segment", "seg-1", 300)
    assert match.reason == ""

    email = next(e for e in response.edges
                 if e.record_key == "salesforce:003A" and e.identifier == "email:jane@acme.com")
    assert (email.source, email.event_id, email.at.seconds) == ("salesforce", "sf-1", 100)
    assert not email.HasField("match_weight") and not email.HasField("probability")
    assert email.model_version == "" and list(email.contributions) == []


def test_explain_profile_by_alias_explains_the_live_profile(
    world: World, steward: ProfileClient
) -> None:
    jane = world.engine.queries.lookup("email:jane@acme.com").profile.profile_id
    assert world.segment_profile_before_match != jane  # merged away by the match edge
    response = steward.explain_profile(f"  {world.segment_profile_before_match} ")
    assert response.profile_id == jane
    assert len(response.edges) == 8


def test_explain_shows_why_an_edge_did_not_link(world: World, steward: ProfileClient) -> None:
    john = world.engine.queries.lookup("email:john@other.com").profile.profile_id
    edges = {e.identifier: e for e in steward.explain_profile(john).edges}
    tablet = edges["device:tablet-1"]
    assert tablet.linked is False
    assert tablet.rule == "rejected"
    assert tablet.reason  # the planner's reason, e.g. a shared device between known people
    assert edges["email:john@other.com"].linked is True


def test_explain_between_follows_the_path_in_order(world: World, steward: ProfileClient) -> None:
    jane = world.engine.queries.lookup("email:jane@acme.com").profile.profile_id
    response = steward.explain_between("EMAIL:Jane@GMail.com", "user:segment:u1")

    assert response.joined is True
    assert response.profile_id == jane and response.other_profile_id == ""
    # identifier -> record -> record -> identifier
    assert [edge_key(e) for e in response.edges] == [
        ("hubspot:51", "email:jane@gmail.com", "", True, "deterministic:email"),
        ("hubspot:51", "", "segment:u1", True, f"probabilistic:{MODEL}"),
        ("segment:u1", "user:segment:u1", "", True, "deterministic:user:segment"),
    ]
    assert response.edges[1].match_weight == pytest.approx(4.75)
    assert len(response.edges[1].contributions) == 3

    # the other way round: the same path reversed, the match edge oriented along it
    back = steward.explain_between("user:segment:u1", "email:jane@gmail.com")
    assert [edge_key(e) for e in back.edges] == [
        ("segment:u1", "user:segment:u1", "", True, "deterministic:user:segment"),
        ("segment:u1", "", "hubspot:51", True, f"probabilistic:{MODEL}"),
        ("hubspot:51", "email:jane@gmail.com", "", True, "deterministic:email"),
    ]

    # a longer path goes through the shared e-mail
    longer = steward.explain_between("crm:salesforce:003A", "user:segment:u1")
    assert [(e.record_key, e.identifier, e.other_record) for e in longer.edges] == [
        ("salesforce:003A", "crm:salesforce:003A", ""),
        ("salesforce:003A", "email:jane@acme.com", ""),
        ("hubspot:51", "email:jane@acme.com", ""),
        ("hubspot:51", "", "segment:u1"),
        ("segment:u1", "user:segment:u1", ""),
    ]


def test_explain_between_different_profiles_is_not_joined(
    world: World, steward: ProfileClient
) -> None:
    jane = world.engine.queries.lookup("email:jane@acme.com").profile.profile_id
    john = world.engine.queries.lookup("email:john@other.com").profile.profile_id
    assert jane != john
    response = steward.explain_between("email:jane@acme.com", "email:john@other.com")
    assert response.joined is False
    assert response.profile_id == jane and response.other_profile_id == john
    assert list(response.edges) == []


@pytest.mark.parametrize(
    ("request_fields", "code", "message"),
    [
        ({"pair": {"identifier_a": "email:nobody@example.org",
                   "identifier_b": "email:jane@acme.com"}},
         grpc.StatusCode.NOT_FOUND, "no profile has this email identifier"),
        ({"pair": {"identifier_a": "email:jane@acme.com",
                   "identifier_b": "email:not-an-address"}},
         grpc.StatusCode.INVALID_ARGUMENT, "email"),
        ({"pair": {"identifier_a": "fax:123", "identifier_b": "email:jane@acme.com"}},
         grpc.StatusCode.INVALID_ARGUMENT, "unknown identifier type"),
        ({"pair": {"identifier_a": "email:jane@acme.com", "identifier_b": " "}},
         grpc.StatusCode.INVALID_ARGUMENT, "identifier_b is empty"),
        ({"pair": {"identifier_a": "email:" + "a" * 3000, "identifier_b": "email:x@y.org"}},
         grpc.StatusCode.INVALID_ARGUMENT, "identifier_a is longer than 2048 characters"),
        ({"profile_id": "p_doesnotexist"}, grpc.StatusCode.NOT_FOUND, "profile"),
        ({"profile_id": ""}, grpc.StatusCode.INVALID_ARGUMENT, "profile_id is empty"),
        ({}, grpc.StatusCode.INVALID_ARGUMENT, "set profile_id or pair"),
    ],
)
def test_explain_errors(steward: ProfileClient, request_fields: dict,
                        code: grpc.StatusCode, message: str) -> None:
    request = pb.ExplainRequest(**request_fields)
    details = fails(code, lambda: steward._call("Explain", steward._stub.Explain, request))
    assert message in details
    assert "nobody@example.org" not in details and "not-an-address" not in details


# --- ListReviews ---------------------------------------------------------------------------


def test_list_reviews_fields_and_paging(steward: ProfileClient) -> None:
    everything = steward.list_reviews()  # default: open, 100 per page
    assert everything.next_page_token == ""
    ids = [r.review_id for r in everything.reviews]
    assert sorted(ids) == sorted([REVIEW_JOAN, REVIEW_JOHN_SEG, REVIEW_JOHN_JOAN])

    first = steward.list_reviews(page_size=2)
    assert [r.review_id for r in first.reviews] == ids[:2]
    assert first.next_page_token == ids[1]
    second = steward.list_reviews(page_size=2, page_token=first.next_page_token)
    assert [r.review_id for r in second.reviews] == ids[2:]
    assert second.next_page_token == ""  # no empty last page
    exact = steward.list_reviews(page_size=3)
    assert len(exact.reviews) == 3 and exact.next_page_token == ""
    assert [r.review_id for r in steward.iter_reviews(page_size=1)] == ids

    joan = next(r for r in everything.reviews if r.review_id == REVIEW_JOAN)
    assert (joan.record_a, joan.record_b) == ("hubspot:77", "segment:u9")  # sorted pair
    assert joan.match_weight == pytest.approx(3.1) and joan.probability == pytest.approx(0.97)
    assert joan.model_version == MODEL and joan.status == "open"
    assert [(c.comparison, c.level, c.match_weight) for c in joan.contributions] == [
        ("email", "All other comparisons", -1.0), ("given_name", "Exact match on given_name", 7.0)]
    assert joan.HasField("created_at") and joan.created_at.seconds > 1_600_000_000
    assert not joan.HasField("decided_at")
    assert joan.decided_by == "" and joan.note == ""

    assert list(steward.list_reviews("accepted").reviews) == []
    assert len(steward.list_reviews(" ALL ").reviews) == 3


@pytest.mark.parametrize(
    ("status", "page_size", "page_token", "message"),
    [
        ("pending", 0, "", "status must be one of open, accepted, rejected, applied or all"),
        ("open", -1, "", "page_size is negative"),
        ("open", 0, "rv_notareview", "page_token is not valid"),
    ],
)
def test_list_reviews_invalid_requests(steward: ProfileClient, status: str, page_size: int,
                                       page_token: str, message: str) -> None:
    details = fails(grpc.StatusCode.INVALID_ARGUMENT,
                    lambda: steward.list_reviews(status, page_size, page_token))
    assert details == message


def test_review_statuses_match_the_queue() -> None:
    assert REVIEW_STATUSES == review_module.STATUSES


# --- DecideReview --------------------------------------------------------------------------


def test_decide_review_accept_then_the_opposite_is_refused(
    world: World, steward: ProfileClient
) -> None:
    accepted = steward.decide_review(REVIEW_JOAN, accept=True, note="same person, same phone")
    assert accepted.review_id == REVIEW_JOAN
    assert accepted.status == "accepted"
    assert accepted.decided_by == STEWARD_ID
    assert STEWARD_TOKEN not in accepted.decided_by
    assert accepted.note == "same person, same phone"
    assert accepted.HasField("decided_at")
    assert world.reviews.get(REVIEW_JOAN).status == "accepted"  # recorded, not yet applied

    again = steward.decide_review(REVIEW_JOAN, accept=True)  # a retry changes nothing
    assert again.status == "accepted" and again.note == "same person, same phone"

    details = fails(grpc.StatusCode.FAILED_PRECONDITION,
                    lambda: steward.decide_review(REVIEW_JOAN, accept=False))
    assert "already accepted" in details
    assert world.reviews.get(REVIEW_JOAN).status == "accepted"

    rejected = steward.decide_review(REVIEW_JOHN_SEG, accept=False)
    assert rejected.status == "rejected"
    fails(grpc.StatusCode.FAILED_PRECONDITION,
          lambda: steward.decide_review(REVIEW_JOHN_SEG, accept=True))

    assert [r.review_id for r in steward.list_reviews("accepted").reviews] == [REVIEW_JOAN]
    assert [r.review_id for r in steward.list_reviews("rejected").reviews] == [REVIEW_JOHN_SEG]
    assert [r.review_id for r in steward.list_reviews().reviews] == [REVIEW_JOHN_JOAN]


def test_decide_review_invalid_and_unknown(world: World, steward: ProfileClient) -> None:
    stub = steward._stub

    def decide(**fields: object) -> Callable[[], object]:
        return lambda: steward._call("DecideReview", stub.DecideReview,
                                     pb.DecideReviewRequest(**fields))

    details = fails(grpc.StatusCode.INVALID_ARGUMENT, decide(review_id=REVIEW_JOAN))
    assert details == "decision is required: ACCEPT or REJECT"
    fails(grpc.StatusCode.INVALID_ARGUMENT, decide(review_id=REVIEW_JOAN, decision=7))
    details = fails(grpc.StatusCode.INVALID_ARGUMENT,
                    decide(review_id=REVIEW_JOAN, decision=pb.DecideReviewRequest.ACCEPT,
                           note="x" * 1001))
    assert details == "note is longer than 1000 characters"
    details = fails(grpc.StatusCode.INVALID_ARGUMENT,
                    decide(review_id=" ", decision=pb.DecideReviewRequest.ACCEPT))
    assert details == "review_id is empty"
    fails(grpc.StatusCode.NOT_FOUND,
          decide(review_id="rv_unknown", decision=pb.DecideReviewRequest.REJECT))
    assert world.reviews.get(REVIEW_JOAN).status == "open"  # nothing was decided


def test_accepted_review_is_applied_by_the_next_writer(
    world: World, steward: ProfileClient
) -> None:
    joan_hs = world.engine.queries.lookup("email:joan@example.org").profile.profile_id
    joan_seg = world.engine.queries.lookup("user:segment:u9").profile.profile_id
    assert joan_hs != joan_seg
    steward.decide_review(REVIEW_JOAN, accept=True)
    # only recorded: the running writer has not linked anything yet
    assert steward.explain_between("email:joan@example.org", "user:segment:u9").joined is False

    world.reopen_writer()  # Engine.__init__ applies accepted decisions

    joined = world.engine.queries.lookup("user:segment:u9").profile.profile_id
    assert joined == world.engine.queries.lookup("email:joan@example.org").profile.profile_id
    assert [r.status for r in steward.list_reviews("applied").reviews] == ["applied"]

    # the server (another reader) sees the writer's link and explains it
    path = steward.explain_between("email:joan@example.org", "user:segment:u9")
    assert path.joined is True and path.profile_id == joined
    assert [edge_key(e) for e in path.edges] == [
        ("hubspot:77", "email:joan@example.org", "", True, "deterministic:email"),
        ("hubspot:77", "", "segment:u9", True, f"review:{MODEL}"),
        ("segment:u9", "user:segment:u9", "", True, "deterministic:user:segment"),
    ]
    review_edge = path.edges[1]
    assert (review_edge.source, review_edge.event_id) == ("review", REVIEW_JOAN)
    assert review_edge.match_weight == pytest.approx(3.1)
    assert review_edge.probability == pytest.approx(0.97)
    assert [c.comparison for c in review_edge.contributions] == ["email", "given_name"]
    rules = {e.rule for e in steward.explain_profile(joined).edges}
    assert f"review:{MODEL}" in rules


# --- least privilege -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rpc", "call", "as_steward"),
    [
        ("Explain", lambda c: c.explain_profile("p_any"), grpc.StatusCode.NOT_FOUND),
        ("Explain", lambda c: c.explain_between("email:jane@acme.com", "user:segment:u1"), None),
        ("ListReviews", lambda c: c.list_reviews(), None),
        ("DecideReview", lambda c: c.decide_review(REVIEW_JOAN, accept=False), None),
    ],
)
def test_api_token_is_denied_steward_rpcs(
    world: World, connect: Callable[..., ProfileClient], rpc: str,
    call: Callable[[ProfileClient], object], as_steward: grpc.StatusCode | None,
) -> None:
    api = connect(API_TOKEN)
    details = fails(grpc.StatusCode.PERMISSION_DENIED, lambda: call(api))
    assert details.startswith(f"{rpc} needs a key with role steward")
    assert "this caller has activation" in details and API_TOKEN not in details
    assert world.reviews.get(REVIEW_JOAN).status == "open"  # the handler never ran
    # the same call with a steward token reaches the handler
    steward = connect(STEWARD_TOKEN)
    if as_steward is None:
        call(steward)
    else:
        fails(as_steward, lambda: call(steward))


def test_steward_token_reaches_everything_and_api_token_only_lookups(
    connect: Callable[..., ProfileClient],
) -> None:
    api, steward = connect(API_TOKEN), connect(STEWARD_TOKEN)
    for client in (api, steward):
        assert client.lookup("email:jane@acme.com").profile.record_count == 3
        pid = client.lookup("email:jane@acme.com").profile.profile_id
        assert client.get_profile(pid).profile.profile_id == pid
        assert client.batch_lookup(["email:jane@acme.com"]).results[0].code == 0
        assert client.health(SERVICE_NAME) == "SERVING"
    assert len(steward.explain_profile(pid).edges) == 8
    assert steward.explain_between("email:jane@acme.com", "user:segment:u1").joined
    assert steward.decide_review(REVIEW_JOAN, accept=False).status == "rejected"


def test_reflection_with_api_token_lists_the_new_rpcs(port: int) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE_NAME)
        (response,) = list(stub.ServerReflectionInfo(
            iter([request]), timeout=5, metadata=[("authorization", f"Bearer {API_TOKEN}")]))
    from google.protobuf import descriptor_pb2

    files = [descriptor_pb2.FileDescriptorProto.FromString(raw)
             for raw in response.file_descriptor_response.file_descriptor_proto]
    methods = {m.name for f in files for s in f.service for m in s.method}
    assert {"Explain", "ListReviews", "DecideReview"} <= methods


@pytest.mark.parametrize("token", [None, "wrong-token", STEWARD_TOKEN + "x", ""])
def test_missing_or_unknown_token_is_unauthenticated(
    world: World, connect: Callable[..., ProfileClient], token: str | None
) -> None:
    client = connect(token or None)
    fails(grpc.StatusCode.UNAUTHENTICATED,
          lambda: client.explain_between("email:jane@acme.com", "user:segment:u1"))
    fails(grpc.StatusCode.UNAUTHENTICATED, lambda: client.decide_review(REVIEW_JOAN, True))
    fails(grpc.StatusCode.UNAUTHENTICATED, lambda: client.lookup("email:jane@acme.com"))
    assert world.reviews.get(REVIEW_JOAN).status == "open"


def test_steward_only_server_refuses_other_tokens(world: World) -> None:
    port = world.serve(steward_tokens=[STEWARD_TOKEN])
    with ProfileClient(f"127.0.0.1:{port}", token=API_TOKEN) as other:
        fails(grpc.StatusCode.UNAUTHENTICATED, lambda: other.lookup("email:jane@acme.com"))
    with ProfileClient(f"127.0.0.1:{port}", token=STEWARD_TOKEN) as steward:
        assert steward.lookup("email:jane@acme.com").profile.record_count == 3
        assert steward.list_reviews().reviews


def test_without_tokens_every_rpc_is_open_and_the_decider_anonymous(world: World) -> None:
    port = world.serve()
    with ProfileClient(f"127.0.0.1:{port}", token="anything") as client:
        assert client.explain_between("email:jane@acme.com", "user:segment:u1").joined
        decided = client.decide_review(REVIEW_JOAN, accept=True)
    assert decided.decided_by == "anonymous"


def test_rpcs_without_graph_view_or_queue_are_unimplemented(world: World) -> None:
    port = world.serve(with_views=False, steward_tokens=[STEWARD_TOKEN])
    with ProfileClient(f"127.0.0.1:{port}", token=STEWARD_TOKEN) as client:
        details = fails(grpc.StatusCode.UNIMPLEMENTED, lambda: client.explain_profile("p_x"))
        assert details == "explain is not available: no identity graph view"
        details = fails(grpc.StatusCode.UNIMPLEMENTED, lambda: client.list_reviews())
        assert details == "reviews are not available: no review queue"
        fails(grpc.StatusCode.UNIMPLEMENTED, lambda: client.decide_review(REVIEW_JOAN, True))
        assert client.lookup("email:jane@acme.com").profile.record_count == 3


def test_token_configuration_errors(world: World) -> None:
    with pytest.raises(ConfigError, match=r"grpc.steward_tokens\[0\] is empty"):
        create_server(world.queries, GrpcSettings(steward_tokens=[" "]), "127.0.0.1:0")
    with pytest.raises(ConfigError, match=r"grpc.steward_tokens\[1\] is also in grpc.api_tokens"):
        create_server(world.queries, GrpcSettings(api_tokens=[API_TOKEN],
                                                  steward_tokens=[STEWARD_TOKEN, API_TOKEN]),
                      "127.0.0.1:0")
    # steward tokens alone are authentication enough to bind a non-loopback address (in
    # plain text only when told: a proxy terminates TLS)
    server, bound = create_server(world.queries, GrpcSettings(steward_tokens=[STEWARD_TOKEN],
                                                              allow_plaintext=True),
                                  "0.0.0.0:0")
    assert bound > 0
    server.stop(None)


# --- status mapping ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.FAILED_PRECONDITION),
        ("FAILED_PRECONDITION", grpc.StatusCode.FAILED_PRECONDITION),
        ("permission_denied", grpc.StatusCode.PERMISSION_DENIED),
        (5, grpc.StatusCode.NOT_FOUND),
        ("NO_SUCH_CODE", None),
        (True, None),
        (None, None),
    ],
)
def test_status_code_accepts_codes_names_and_numbers(
    value: object, expected: grpc.StatusCode | None
) -> None:
    assert status_code(value) is expected


def test_status_for_maps_grpc_status_names_generically() -> None:
    method = "/idgraph.v1.ProfileService/DecideReview"
    assert status_for(ReviewStateError("review rv_1 is already accepted"), method) == (
        grpc.StatusCode.FAILED_PRECONDITION, "review rv_1 is already accepted")

    class Denied(IdGraphError):
        status = "PERMISSION_DENIED"

    class Odd(IdGraphError):
        status = "NOT_A_CODE"

    class Ok(IdGraphError):
        status = grpc.StatusCode.OK

    assert status_for(Denied("no"), method) == (grpc.StatusCode.PERMISSION_DENIED, "no")
    assert status_for(NotFoundError("gone"), method) == (grpc.StatusCode.NOT_FOUND, "gone")
    for exc in (Odd("secret jane@example.com"), Ok("secret jane@example.com")):
        code, message = status_for(exc, method)
        assert code is grpc.StatusCode.INTERNAL and "jane" not in message


def test_raw_stub_decide_with_steward_metadata(port: int) -> None:
    """The proto enum as a raw client sends it (no ServiceCallError wrapping)."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.ProfileServiceStub(channel)
        metadata = [("authorization", f"Bearer {STEWARD_TOKEN}")]
        review = stub.DecideReview(
            pb.DecideReviewRequest(review_id=REVIEW_JOHN_JOAN,
                                   decision=pb.DecideReviewRequest.REJECT, note="different"),
            metadata=metadata, timeout=5)
        assert isinstance(review, pb.Review)
        assert (review.status, review.note, review.decided_by) == (
            "rejected", "different", STEWARD_ID)
        with pytest.raises(grpc.RpcError) as err:
            stub.DecideReview(pb.DecideReviewRequest(review_id=REVIEW_JOHN_JOAN),
                              metadata=metadata, timeout=5)
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
