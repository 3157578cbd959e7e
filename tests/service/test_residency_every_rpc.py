"""Residency of every rpc: a server configured for ``us`` never answers with EU data.

The world: a writer (:class:`Engine`) stores two US people (Ursula, Victor) and two EU
people (Lena, Jonas), with what crosses regions in the global identity graph: a household
tablet Ursula and Lena both used (attached to both profiles), an unlinked match edge the
model refused between Victor and Lena, an alias of Lena's profile that was a US profile
before a merge moved it, and review pairs within and across the regions (two of them
queued before reviews kept their regions). A segment ("Everyone") has members in both.
Two servers read the data directory the way ``idgraph serve`` does: one for ``us`` only,
one for every region. The same cases also run on the server of every region with API keys
limited to ``us`` (``us-key``): a key limited to a region must see exactly what a server
of that region shows.

``CASES`` holds one case per rpc of every service the server registers
(``test_every_rpc_has_a_case`` compares them with the services' descriptors, so an rpc
added without a case fails). A case calls its rpc about US and EU subjects through a
:class:`Calls`, which keeps the text of every answer (each response or stream message in
protobuf text format, each error's details) and checks that a call about an EU subject is
NOT_FOUND on the US server. ``test_a_us_server_answers_nothing_of_the_eu`` then searches
the answers for every EU identifier, record key and profile ID; the server of every region
is the control: the same cases there do name each of them, so the search would see a leak.

Adding a case (e.g. for PrivacyService's RecordConsent, GetConsent, Forget, ExportSubject):
write ``def my_rpc(calls: Calls) -> None`` calling the rpc through ``calls.ok`` (a US
subject, or no subject), ``calls.eu_subject`` (an EU subject: NOT_FOUND unless every
region is served) or ``calls.stream`` / ``calls.status``, make a stub for the service in
:class:`Calls`, and add the function to ``CASES`` under the service's full name.
"""

from __future__ import annotations

import io
import itertools
import json
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool, text_format
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from helpers import record

from idgraph.coordination import review_id_for
from idgraph.engine import Engine
from idgraph.engine.forget import request_forget
from idgraph.graph.base import MatchEdge
from idgraph.proto.idgraph.v1 import admin_pb2 as apb
from idgraph.proto.idgraph.v1 import admin_pb2_grpc as apb_grpc
from idgraph.proto.idgraph.v1 import privacy_pb2 as ppb
from idgraph.proto.idgraph.v1 import privacy_pb2_grpc as ppb_grpc
from idgraph.proto.idgraph.v1 import profiles_pb2 as pb
from idgraph.proto.idgraph.v1 import profiles_pb2_grpc as pb_grpc
from idgraph.proto.idgraph.v1 import segments_pb2 as spb
from idgraph.proto.idgraph.v1 import segments_pb2_grpc as spb_grpc
from idgraph.service.server import create_server
from idgraph.service.settings import GrpcSettings
from idgraph.serving import open_key_admin, open_served
from idgraph.settings import Settings

STEWARD = "steward-token"
METADATA = [("authorization", f"Bearer {STEWARD}")]
PRIVACY = "privacy-token"
PRIVACY_METADATA = [("authorization", f"Bearer {PRIVACY}")]
ADMIN_METADATA: list = [("authorization", "Bearer admin key: set when the world is built")]
NOT_SERVICES = {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}

URSULA, VICTOR = "email:ursula@example.com", "email:victor@example.com"
LENA, JONAS = "email:lena@example.de", "email:jonas@example.at"
LENA_PHONE = "phone:+4915112345678"
TABLET = "device:tablet-shared"
CONTRIBUTIONS = (("given_name", "All other comparisons", -3.0),)

PEOPLE = [
    record("hubspot", "7001", "us-1", 100, ["crm:hubspot:7001", URSULA, TABLET],
           given_name="Ursula", country="US"),
    record("segment", "u-us", "us-2", 110, ["user:segment:u-us", URSULA], given_name="Ursula"),
    record("hubspot", "7002", "us-3", 120, ["crm:hubspot:7002", VICTOR], given_name="Victor",
           country="US"),
    record("salesforce", "003EU", "eu-1", 130, ["crm:salesforce:003EU", LENA, LENA_PHONE,
                                                TABLET], given_name="Lena", country="DE"),
    # Lena's app account, first a profile of its own (no evidence: the default region us)
    record("segment", "u-eu", "eu-2", 140, ["user:segment:u-eu"], given_name="Lena"),
    record("hubspot", "7003", "eu-4", 160, ["crm:hubspot:7003", JONAS], given_name="Jonas",
           country="AT"),
]
LENA_LOGIN = record("segment", "u-eu", "eu-3", 150, ["user:segment:u-eu", LENA],
                    given_name="Lena")  # merges the app account into Lena's EU profile

EVE, UMA = "email:eve@example.de", "email:uma@example.com"
FORGOTTEN = [
    record("hubspot", "7101", "f-eu", 180, ["crm:hubspot:7101", EVE], country="DE"),
    record("hubspot", "7102", "f-us", 181, ["crm:hubspot:7102", UMA], country="US"),
]

#: Text that names EU people: identifier values and record keys (profile IDs are added
#: when the world is built; the WatchSegment case adds the people it creates).
EU_TEXT = {"lena@example.de", "+4915112345678", "003EU", "segment:u-eu", "hubspot:7003",
           "jonas@example.at"}

REVIEWS = {  # name -> (record_a, record_b); queued with their regions unless "legacy"
    "us": ("hubspot:7001", "hubspot:7002"),
    "eu": ("salesforce:003EU", "hubspot:7003"),
    "us-eu": ("hubspot:7002", "hubspot:7003"),
    "legacy us": ("segment:u-us", "hubspot:7002"),
    "legacy us-eu": ("segment:u-us", "segment:u-eu"),
}
US_REVIEWS = {"us", "legacy us"}


@dataclass
class World:
    settings: Settings
    engine: Engine
    pids: dict[str, str]
    eu_text: set[str]
    """Text naming EU people (grows as the WatchSegment case creates some)."""
    reviews: dict[str, str]
    forgets: dict[str, str] = field(default_factory=dict)
    """"us"/"eu" -> a forget request about a person of that region (made by the writer)."""
    channels: dict[str, grpc.Channel] = field(default_factory=dict)
    counter: Iterator[int] = field(default_factory=itertools.count)

    keys: dict[str, list] = field(default_factory=dict)
    """Metadata of US-limited keys standing in for the static tokens (``us-key``)."""

    def calls(self, served: str) -> Calls:
        if served == "us-key":
            return Calls(self, False, self.channels["all"], self.keys)
        return Calls(self, served == "all", self.channels[served])


class Calls:
    """The calls of one case on one server, and the text of every answer they got."""

    def __init__(self, world: World, serves_eu: bool, channel: grpc.Channel,
                 keys: dict[str, list] | None = None) -> None:
        self.world = world
        self.serves_eu = serves_eu
        self._keys = keys or {}
        self.admin = apb_grpc.AdminServiceStub(channel)
        self.profiles = pb_grpc.ProfileServiceStub(channel)
        self.segments = spb_grpc.SegmentServiceStub(channel)
        self.privacy = ppb_grpc.PrivacyServiceStub(channel)
        self.answers: list[str] = []

    def md(self, metadata: list) -> list:
        """``metadata``, or the US-limited key standing in for its token (``us-key``)."""
        return self._keys.get(metadata[0][1], metadata)

    def keep(self, message: Any) -> None:
        self.answers.append(text_format.MessageToString(message))

    def status(self, method: Callable, request: Any, metadata: list = METADATA
               ) -> tuple[grpc.StatusCode, Any]:
        """The call's status and response (None on an error, whose details are kept)."""
        try:
            response = method(request, metadata=self.md(metadata), timeout=20)
        except grpc.RpcError as exc:
            self.answers.append(exc.details() or "")
            return exc.code(), None
        self.keep(response)
        return grpc.StatusCode.OK, response

    def ok(self, method: Callable, request: Any, metadata: list = METADATA) -> Any:
        code, response = self.status(method, request, metadata)
        assert code == grpc.StatusCode.OK, self.answers[-1]
        return response

    def eu_subject(self, method: Callable, request: Any, metadata: list = METADATA) -> Any:
        """A call about an EU subject: NOT_FOUND (None) unless the server serves every
        region (then its response)."""
        code, response = self.status(method, request, metadata)
        expected = grpc.StatusCode.OK if self.serves_eu else grpc.StatusCode.NOT_FOUND
        assert code == expected, self.answers[-1]
        return response

    def stream(self, method: Callable, request: Any, metadata: list = METADATA) -> list:
        messages = list(method(request, metadata=self.md(metadata), timeout=20))
        for message in messages:
            self.keep(message)
        return messages


def _serve(settings: Settings, regions: list[str], closers: list) -> grpc.Channel:
    """A server reading the data dir as ``idgraph serve`` does, for ``regions``."""
    grpc_settings = GrpcSettings(steward_tokens=[STEWARD], privacy_tokens=[PRIVACY],
                                 served_regions=regions)
    served = open_served(settings.model_copy(update={"grpc": grpc_settings}))
    server, port = create_server(served.queries, grpc_settings, "127.0.0.1:0",
                                 **served.server_kwargs())
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    closers.extend([channel.close, lambda: server.stop(0).wait(), served.close])
    return channel


def _us_keys(settings: Settings) -> dict[str, list]:
    """US-limited keys with the static tokens' roles, by the token's metadata value."""
    admin, store = open_key_admin(settings, None)
    try:
        def key(*roles: str) -> list:
            text = admin.create("residency test", roles, regions=["us"],
                                unmask="marketer" in roles).text
            return [("authorization", f"Bearer {text}")]

        return {METADATA[0][1]: key("steward", "marketer", "activation"),
                PRIVACY_METADATA[0][1]: key("privacy"),
                ADMIN_METADATA[0][1]: key("admin", "operator")}
    finally:
        store.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("residency") / "data")
    engine = Engine(settings)
    closers: list[Callable[[], object]] = []
    try:
        engine.ingest(PEOPLE)
        app_account = engine.queries.lookup("user:segment:u-eu").profile.profile_id
        engine.ingest([LENA_LOGIN])
        engine.apply_matches([MatchEdge(
            record_a="hubspot:7002", record_b="salesforce:003EU", linked=False,
            rule="probabilistic:v0001", reason="conflict: the records name different people",
            match_weight=3.0, probability=0.9, model_version="v0001",
            contributions=CONTRIBUTIONS, source="batch", event_id="batch:v0001", at=170.0)])
        queued = {n: p for n, p in REVIEWS.items() if not n.startswith("legacy")}
        assert engine.matching.propose_reviews(
            [(a, b, 2.0, 0.95, "v0001", CONTRIBUTIONS) for a, b in queued.values()]) == 3
        assert engine.reviews.propose(  # as a queue written before reviews kept regions
            [(a, b, 2.0, 0.95, "v0001", CONTRIBUTIONS) for n, (a, b) in REVIEWS.items()
             if n.startswith("legacy")]) == 2

        pids = {name: engine.queries.lookup(ident).profile.profile_id
                for name, ident in [("ursula", URSULA), ("victor", VICTOR), ("lena", LENA),
                                    ("jonas", JONAS)]}
        lena = engine.store.get_profile(pids["lena"])
        assert lena.head.region == "eu" and app_account in lena.aliases
        pids["lena alias"] = app_account if app_account != pids["lena"] else lena.aliases[0]
        assert engine.queries.lookup(URSULA).profile.region == "us"
        w = World(settings, engine, pids,
                  EU_TEXT | {pids["lena"], pids["jonas"], *lena.aliases},
                  {n: review_id_for(a, b) for n, (a, b) in REVIEWS.items()})
        # a forget request about an EU person and one about a US person, made by the
        # writer (they stay pending until its next turn)
        engine.ingest(FORGOTTEN)
        for region, ident in (("eu", EVE), ("us", UMA)):
            pid = engine.queries.lookup(ident).profile.profile_id
            w.forgets[region] = request_forget(engine.ledger, engine.backends.keys,
                                               engine.queries, identifier=ident,
                                               actor="privacy:t").request_id
            if region == "eu":  # searched for, but named by no server: she is being forgotten
                w.eu_text.update({pid, "eve@example.de", "hubspot:7101"})
        w.channels = {"us": _serve(settings, ["us"], closers),
                      "all": _serve(settings, settings.regions.regions, closers)}
        w.keys = _us_keys(settings)
        admin, store = open_key_admin(settings, None)
        ADMIN_METADATA[:] = [("authorization", "Bearer " + admin.create(
            "residency test", ["admin", "operator"]).text)]
        store.close()
        pb_definition = spb.DefineSegmentRequest(name="Everyone",
                                                 definition="has_identifier(email)")
        spb_grpc.SegmentServiceStub(w.channels["all"]).DefineSegment(
            pb_definition, metadata=METADATA, timeout=10)
        while engine.segment_step():
            pass
        yield w
    finally:
        for close in reversed(closers):
            close()
        engine.close()


# ---------------------------------------------------------------- ProfileService cases


def lookup(calls: Calls) -> None:
    w = calls.world
    assert calls.ok(calls.profiles.Lookup, pb.LookupRequest(identifier=URSULA)) \
        .profile.profile_id == w.pids["ursula"]
    calls.eu_subject(calls.profiles.Lookup, pb.LookupRequest(identifier=LENA))
    calls.eu_subject(calls.profiles.Lookup, pb.LookupRequest(identifier=LENA_PHONE))
    # the tablet is attached to Ursula's and Lena's profiles
    tablet = calls.ok(calls.profiles.Lookup, pb.LookupRequest(identifier=TABLET))
    found = {tablet.profile.profile_id, *tablet.other_profile_ids}
    assert found == ({w.pids["ursula"], w.pids["lena"]} if calls.serves_eu
                     else {w.pids["ursula"]})


def get_profile(calls: Calls) -> None:
    w = calls.world
    calls.ok(calls.profiles.GetProfile, pb.GetProfileRequest(profile_id=w.pids["ursula"]))
    for name in ("lena", "lena alias", "jonas"):
        calls.eu_subject(calls.profiles.GetProfile,
                         pb.GetProfileRequest(profile_id=w.pids[name]))


def batch_lookup(calls: Calls) -> None:
    asked = [URSULA, LENA, LENA_PHONE, JONAS, TABLET, "fax:1"]
    response = calls.ok(calls.profiles.BatchLookup, pb.BatchLookupRequest(identifiers=asked))
    found = 0 if calls.serves_eu else 5
    assert [r.code for r in response.results] == [0, found, found, found, 0, 3]
    assert [r.identifier for r in response.results] == asked
    # the identifiers asked are echoed back as sent: the caller's own text, not data
    calls.answers.pop()
    for result in response.results:
        result.identifier = ""
    calls.keep(response)


def explain(calls: Calls) -> None:
    w = calls.world
    victor = calls.ok(calls.profiles.Explain, pb.ExplainRequest(profile_id=w.pids["victor"]))
    refused = [e for e in victor.edges if e.other_record]
    # the refused match to Lena's record: shown only where Lena's region is served
    assert [(e.record_key, e.other_record, e.linked) for e in refused] == (
        [("hubspot:7002", "salesforce:003EU", False)] if calls.serves_eu else [])
    assert {e.identifier for e in victor.edges if e.identifier} == {
        "crm:hubspot:7002", VICTOR}
    ursula = calls.ok(calls.profiles.Explain, pb.ExplainRequest(profile_id=w.pids["ursula"]))
    assert {e.record_key for e in ursula.edges} == {"hubspot:7001", "segment:u-us"}
    for name in ("lena", "lena alias", "jonas"):
        calls.eu_subject(calls.profiles.Explain, pb.ExplainRequest(profile_id=w.pids[name]))

    def pair(a: str, b: str) -> pb.ExplainRequest:
        return pb.ExplainRequest(pair=pb.IdentifierPair(identifier_a=a, identifier_b=b))

    path = calls.ok(calls.profiles.Explain, pair(URSULA, "user:segment:u-us"))
    assert path.joined and path.edges
    calls.eu_subject(calls.profiles.Explain, pair(LENA, "user:segment:u-eu"))
    different = calls.eu_subject(calls.profiles.Explain, pair(URSULA, LENA))
    assert different is None or (not different.joined
                                 and different.other_profile_id == w.pids["lena"])
    # the shared tablet is attached to Lena's profile too (not linked there)
    tablet = calls.ok(calls.profiles.Explain, pair(TABLET, URSULA))
    assert tablet.joined and tablet.profile_id == w.pids["ursula"]
    lena_tablet = calls.eu_subject(calls.profiles.Explain, pair(TABLET, LENA))
    assert lena_tablet is None or lena_tablet.other_profile_id == w.pids["lena"]


def list_reviews(calls: Calls) -> None:
    listed, token = [], ""
    while True:
        page = calls.ok(calls.profiles.ListReviews, pb.ListReviewsRequest(
            status="all", page_size=1, page_token=token))
        listed += [r.review_id for r in page.reviews]
        token = page.next_page_token
        if not token:
            break
    names = set(REVIEWS) if calls.serves_eu else US_REVIEWS
    assert sorted(listed) == sorted(calls.world.reviews[n] for n in names)
    # a page token naming a review of another region is no token here
    code, _ = calls.status(calls.profiles.ListReviews, pb.ListReviewsRequest(
        status="all", page_token=calls.world.reviews["eu"]))
    assert code == (grpc.StatusCode.OK if calls.serves_eu else grpc.StatusCode.INVALID_ARGUMENT)


def decide_review(calls: Calls) -> None:
    reviews = calls.world.reviews

    def reject(name: str) -> pb.DecideReviewRequest:
        return pb.DecideReviewRequest(review_id=reviews[name],
                                      decision=pb.DecideReviewRequest.REJECT)

    for name in US_REVIEWS:
        assert calls.ok(calls.profiles.DecideReview, reject(name)).status == "rejected"
    for name in set(REVIEWS) - US_REVIEWS:
        calls.eu_subject(calls.profiles.DecideReview, reject(name))
    if not calls.serves_eu:
        assert calls.world.engine.reviews.get(reviews["eu"]).status == "open"


def get_profile_history(calls: Calls) -> None:
    w = calls.world
    history = calls.ok(calls.profiles.GetProfileHistory,
                       pb.GetProfileHistoryRequest(profile_id=w.pids["ursula"]))
    assert history.profile_id == w.pids["ursula"] and history.events
    for name in ("lena", "lena alias", "jonas"):
        calls.eu_subject(calls.profiles.GetProfileHistory,
                         pb.GetProfileHistoryRequest(profile_id=w.pids[name]))


# ---------------------------------------------------------------- SegmentService cases


def define_segment(calls: Calls) -> None:
    calls.ok(calls.segments.DefineSegment, spb.DefineSegmentRequest(
        name="Everyone", definition="has_identifier(email)"))


def get_segment(calls: Calls) -> None:
    segment = calls.ok(calls.segments.GetSegment, spb.GetSegmentRequest(name="Everyone"))
    assert {b.region for b in segment.builds} <= ({"eu", "uk", "us", "apac"}
                                                  if calls.serves_eu else {"us"})


def list_segments(calls: Calls) -> None:
    assert "Everyone" in {s.name for s in calls.ok(calls.segments.ListSegments,
                                                   spb.ListSegmentsRequest()).segments}


def delete_segment(calls: Calls) -> None:
    name = f"Scratch {next(calls.world.counter)}"
    calls.ok(calls.segments.DefineSegment, spb.DefineSegmentRequest(
        name=name, definition='country = "DE"'))
    calls.ok(calls.segments.DeleteSegment, spb.DeleteSegmentRequest(name=name))


def evaluate_segments(calls: Calls) -> None:
    w = calls.world
    answer = calls.ok(calls.segments.EvaluateSegments, spb.EvaluateSegmentsRequest(
        identifier=URSULA, names=["Everyone"]))
    assert [m.member for m in answer.memberships] == [True]
    calls.eu_subject(calls.segments.EvaluateSegments, spb.EvaluateSegmentsRequest(
        identifier=LENA))
    for name in ("lena", "lena alias", "jonas"):
        calls.eu_subject(calls.segments.EvaluateSegments, spb.EvaluateSegmentsRequest(
            profile_id=w.pids[name]))


def count_segment(calls: Calls) -> None:
    count = calls.ok(calls.segments.CountSegment, spb.CountSegmentRequest(name="Everyone"))
    assert ("eu" in count.by_region) is calls.serves_eu and count.by_region["us"] >= 2


def list_segment_members(calls: Calls) -> None:
    pages = calls.stream(calls.segments.ListSegmentMembers, spb.ListSegmentMembersRequest(
        name="Everyone", page_size=1))
    members = {m.profile_id for p in pages for m in p.members}
    assert {calls.world.pids["ursula"], calls.world.pids["victor"]} <= members
    assert (calls.world.pids["lena"] in members) is calls.serves_eu


def watch_segment(calls: Calls) -> None:
    """Changes as the writer ingests an EU person, then a US one: the stream is read until
    the US change (the log is in order: an EU change would come before it)."""
    w = calls.world
    n = next(w.counter)
    eu_email, us_email = f"email:eu-watch-{n}@example.fr", f"email:us-watch-{n}@example.com"
    stream = calls.segments.WatchSegment(spb.WatchSegmentRequest(names=["Everyone"]),
                                         metadata=calls.md(METADATA), timeout=30)
    got: list[spb.SegmentChange] = []

    def read() -> None:
        for change in stream:
            got.append(change)
            if change.region == "us":
                return

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(0.5)  # the stream is open: it starts from now
    w.engine.ingest([record("hubspot", f"80{n}", f"w-eu-{n}", 1000 + n,
                            [f"crm:hubspot:80{n}", eu_email], country="FR")])
    w.engine.ingest([record("hubspot", f"90{n}", f"w-us-{n}", 1000 + n,
                            [f"crm:hubspot:90{n}", us_email], country="US")])
    reader.join(timeout=20)
    stream.cancel()
    for change in got:
        calls.keep(change)
    eu_pid = w.engine.queries.lookup(eu_email).profile.profile_id
    us_pid = w.engine.queries.lookup(us_email).profile.profile_id
    w.eu_text.update({eu_pid, eu_email.split(":", 1)[1], f"hubspot:80{n}"})
    seen = [c.profile_id for c in got]
    assert seen[-1:] == [us_pid]
    assert (eu_pid in seen) is calls.serves_eu


def check_segment(calls: Calls) -> None:
    checked = calls.ok(calls.segments.CheckSegment, spb.CheckSegmentRequest(
        definition='in_segment("Everyone") and country = "DE"'))
    assert list(checked.uses) == ["Everyone"]


def preview_segment(calls: Calls) -> None:
    preview = calls.ok(calls.segments.PreviewSegment, spb.PreviewSegmentRequest(
        definition="has_identifier(email)", samples=100))
    assert ("eu" in preview.count_by_region) is calls.serves_eu
    members = {m.profile_id for m in preview.samples}
    assert {calls.world.pids["ursula"], calls.world.pids["victor"]} <= members
    assert (calls.world.pids["lena"] in members) is calls.serves_eu


def get_segment_activity(calls: Calls) -> None:
    activity = calls.ok(calls.segments.GetSegmentActivity,
                        spb.GetSegmentActivityRequest(name="Everyone"))
    count = calls.ok(calls.segments.CountSegment, spb.CountSegmentRequest(name="Everyone"))
    assert activity.size == count.count and activity.entered >= 2


# ---------------------------------------------------------------- PrivacyService cases


def record_consent(calls: Calls) -> None:
    w = calls.world

    def state(identifier: str) -> ppb.RecordConsentRequest:
        return ppb.RecordConsentRequest(identifier=identifier, purpose="phone",
                                        status=ppb.RecordConsentRequest.GRANTED)

    assert calls.ok(calls.privacy.RecordConsent, state(URSULA)).profile_id == w.pids["ursula"]
    # an EU person's identifier: accepted (the caller knows it), resolved to nobody here
    answer = calls.ok(calls.privacy.RecordConsent, state(LENA))
    assert answer.profile_id == (w.pids["lena"] if calls.serves_eu else "")
    assert (len(answer.consent) > 0) is calls.serves_eu
    # the entry echoes the identifier asked about (normalised): the caller's own text
    assert answer.entry.subject == LENA
    calls.answers.pop()
    answer.entry.subject = ""
    calls.keep(answer)


def get_consent(calls: Calls) -> None:
    w = calls.world
    calls.ok(calls.privacy.GetConsent, ppb.GetConsentRequest(identifier=URSULA))
    calls.eu_subject(calls.privacy.GetConsent, ppb.GetConsentRequest(identifier=LENA))
    for name in ("lena", "lena alias", "jonas"):
        calls.eu_subject(calls.privacy.GetConsent, ppb.GetConsentRequest(profile_id=w.pids[name]))


def list_purposes(calls: Calls) -> None:
    assert calls.ok(calls.privacy.ListPurposes, ppb.ListPurposesRequest()).purposes


def get_forget_status(calls: Calls) -> None:
    w = calls.world
    calls.ok(calls.privacy.GetForgetStatus, ppb.GetForgetStatusRequest(
        request_id=w.forgets["us"]), PRIVACY_METADATA)
    calls.eu_subject(calls.privacy.GetForgetStatus, ppb.GetForgetStatusRequest(
        request_id=w.forgets["eu"]), PRIVACY_METADATA)


def list_forget_requests(calls: Calls) -> None:
    w = calls.world
    listed = calls.ok(calls.privacy.ListForgetRequests, ppb.ListForgetRequestsRequest(),
                      PRIVACY_METADATA)
    ids = {r.request_id for r in listed.requests}
    assert w.forgets["us"] in ids
    assert (w.forgets["eu"] in ids) is calls.serves_eu


def unsuppress(calls: Calls) -> None:
    w = calls.world
    if not calls.serves_eu:  # the control must not let Eve back before it names her
        calls.eu_subject(calls.privacy.Unsuppress, ppb.UnsuppressRequest(
            request_id=w.forgets["eu"], reason="test"), PRIVACY_METADATA)
    code, _ = calls.status(calls.privacy.Unsuppress, ppb.UnsuppressRequest(
        request_id="fr_unknown", reason="test"), PRIVACY_METADATA)
    assert code == grpc.StatusCode.NOT_FOUND


def export_subject(calls: Calls) -> None:
    w = calls.world
    chunks = calls.privacy.ExportSubject(ppb.ExportSubjectRequest(identifier=URSULA),
                                         metadata=calls.md(PRIVACY_METADATA), timeout=20)
    data = b"".join(c.data for c in chunks)
    calls.answers.append(data.decode("latin-1"))  # the zip's deflated bytes: see below
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for name in zf.namelist():
            calls.answers.append(zf.read(name).decode())
        assert json.loads(zf.read("manifest.json"))["subject"]["resolved_profile_id"] == \
            w.pids["ursula"]
    for name in ("lena", "jonas"):
        try:
            data = b"".join(c.data for c in calls.privacy.ExportSubject(
                ppb.ExportSubjectRequest(profile_id=w.pids[name]),
                metadata=calls.md(PRIVACY_METADATA),
                timeout=20))
        except grpc.RpcError as exc:
            calls.answers.append(exc.details() or "")
            assert exc.code() == grpc.StatusCode.NOT_FOUND and not calls.serves_eu
        else:
            assert calls.serves_eu
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                calls.answers.extend(zf.read(n).decode() for n in zf.namelist())


def forget(calls: Calls) -> None:
    """Last of all the cases: on the server of every region it forgets Lena."""
    status = calls.eu_subject(calls.privacy.Forget, ppb.ForgetRequest(identifier=LENA),
                              PRIVACY_METADATA)
    assert status is None or status.profile_ids == [calls.world.pids["lena"]]


# ---------------------------------------------------------------- AdminService cases
# (no personal data: keys, the audit log's hashes, the server's status)


def create_key(calls: Calls) -> None:
    issued = calls.ok(calls.admin.CreateKey, apb.CreateKeyRequest(
        owner="case", roles=["activation"], regions=["us"]), ADMIN_METADATA)
    assert issued.key_text.startswith("idg_")
    calls.answers[-1] = calls.answers[-1].replace(issued.key_text, "")


def list_keys(calls: Calls) -> None:
    assert calls.ok(calls.admin.ListKeys, apb.ListKeysRequest(), ADMIN_METADATA).keys


def rotate_key(calls: Calls) -> None:
    issued = calls.ok(calls.admin.CreateKey, apb.CreateKeyRequest(
        owner="case", roles=["activation"]), ADMIN_METADATA)
    rotated = calls.ok(calls.admin.RotateKey, apb.RotateKeyRequest(
        key_id=issued.key.key_id), ADMIN_METADATA)
    assert rotated.previous.rotated_to == rotated.successor.key.key_id
    calls.answers[-1] = calls.answers[-1].replace(rotated.successor.key_text, "")
    calls.answers[-2] = calls.answers[-2].replace(issued.key_text, "")


def revoke_key(calls: Calls) -> None:
    issued = calls.ok(calls.admin.CreateKey, apb.CreateKeyRequest(
        owner="case", roles=["activation"]), ADMIN_METADATA)
    calls.answers[-1] = calls.answers[-1].replace(issued.key_text, "")
    assert calls.ok(calls.admin.RevokeKey, apb.RevokeKeyRequest(
        key_id=issued.key.key_id), ADMIN_METADATA).state == "revoked"


def read_audit(calls: Calls) -> None:
    calls.ok(calls.admin.ReadAudit, apb.ReadAuditRequest(limit=1000), ADMIN_METADATA)


def verify_audit(calls: Calls) -> None:
    assert calls.ok(calls.admin.VerifyAudit, apb.VerifyAuditRequest(), ADMIN_METADATA).ok


def who_am_i(calls: Calls) -> None:
    me = calls.ok(calls.admin.WhoAmI, apb.WhoAmIRequest(), ADMIN_METADATA)
    assert set(me.roles) == {"admin", "operator"}


def get_server_status(calls: Calls) -> None:
    status = calls.ok(calls.admin.GetServerStatus, apb.GetServerStatusRequest(),
                      ADMIN_METADATA)
    assert ("eu" in status.served_regions) is (calls._keys == {} and calls.serves_eu) \
        or calls._keys != {}


#: service full name -> rpc name -> its case.
CASES: dict[str, dict[str, Callable[[Calls], None]]] = {
    "idgraph.v1.ProfileService": {
        "Lookup": lookup,
        "GetProfile": get_profile,
        "BatchLookup": batch_lookup,
        "Explain": explain,
        "ListReviews": list_reviews,
        "DecideReview": decide_review,
        "GetProfileHistory": get_profile_history,
    },
    "idgraph.v1.SegmentService": {
        "DefineSegment": define_segment,
        "GetSegment": get_segment,
        "ListSegments": list_segments,
        "DeleteSegment": delete_segment,
        "EvaluateSegments": evaluate_segments,
        "CountSegment": count_segment,
        "ListSegmentMembers": list_segment_members,
        "WatchSegment": watch_segment,
        "CheckSegment": check_segment,
        "PreviewSegment": preview_segment,
        "GetSegmentActivity": get_segment_activity,
    },
    "idgraph.v1.PrivacyService": {
        "RecordConsent": record_consent,
        "GetConsent": get_consent,
        "ListPurposes": list_purposes,
        "GetForgetStatus": get_forget_status,
        "Unsuppress": unsuppress,
        "ExportSubject": export_subject,
        "ListForgetRequests": list_forget_requests,
        "Forget": forget,
    },
    "idgraph.v1.AdminService": {
        "CreateKey": create_key,
        "ListKeys": list_keys,
        "RotateKey": rotate_key,
        "RevokeKey": revoke_key,
        "ReadAudit": read_audit,
        "VerifyAudit": verify_audit,
        "GetServerStatus": get_server_status,
        "WhoAmI": who_am_i,
    },
}
RPCS = [(service, rpc) for service, cases in CASES.items() for rpc in cases]


def _served_services(channel: grpc.Channel) -> set[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    (response,) = list(stub.ServerReflectionInfo(iter([request]), metadata=METADATA,
                                                 timeout=10))
    return {s.name for s in response.list_services_response.service} - NOT_SERVICES


def test_every_rpc_has_a_case(world: World) -> None:
    served = _served_services(world.channels["us"])
    assert served == set(CASES), "a service without cases in CASES (or cases of no service)"
    for name in sorted(served):
        methods = {m.name for m in descriptor_pool.Default().FindServiceByName(name).methods}
        assert set(CASES[name]) == methods, f"{name}: rpcs and cases differ"


@pytest.mark.parametrize("served", ["us", "us-key"])
@pytest.mark.parametrize(("service", "rpc"), RPCS,
                         ids=[f"{s.rsplit('.', 1)[-1]}.{r}" for s, r in RPCS])
def test_a_us_server_answers_nothing_of_the_eu(world: World, service: str, rpc: str,
                                               served: str) -> None:
    """On the US server with the static tokens, and on the server of every region with
    keys limited to ``us``."""
    calls = world.calls(served)
    CASES[service][rpc](calls)
    assert calls.answers, "the case called nothing"
    leaks = sorted({text for text in world.eu_text for answer in calls.answers
                    if text in answer})
    assert leaks == [], f"{rpc} answered with EU data: {leaks}"


def test_a_server_of_every_region_names_them(world: World) -> None:
    """The control: the same cases on a server of every region find the EU people, so the
    search above would see them."""
    calls = world.calls("all")
    for service, rpc in RPCS:
        CASES[service][rpc](calls)
    text = "\n".join(calls.answers)
    w = world
    named = EU_TEXT | {w.pids["lena"], w.pids["lena alias"], w.pids["jonas"]}
    assert sorted(t for t in named if t not in text) == []
