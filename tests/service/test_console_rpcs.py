"""The rpcs the web console calls, on a real server with real keys: WhoAmI, CheckSegment,
PreviewSegment, GetSegmentActivity, ListForgetRequests, GetProfileHistory, and the two
records of a review side by side.

The world: a writer (:class:`Engine`) on a temporary data dir, a server reading it the
way ``idgraph serve`` does (:func:`open_served`, :func:`create_server` with its keyword
arguments) and API keys made with :func:`open_key_admin`, one per role and two limited
to a region. Each test works on people of its own (the module shares one world), and
builds segments as the writer does (``engine.segment_step()`` until it has nothing left).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise

import grpc
import pytest
from helpers import ident, record

from idgraph.auth.roles import permissions_of
from idgraph.engine import Engine
from idgraph.proto.idgraph.v1 import admin_pb2 as apb
from idgraph.proto.idgraph.v1 import admin_pb2_grpc as apb_grpc
from idgraph.proto.idgraph.v1 import privacy_pb2 as ppb
from idgraph.proto.idgraph.v1 import privacy_pb2_grpc as ppb_grpc
from idgraph.proto.idgraph.v1 import profiles_pb2 as pb
from idgraph.proto.idgraph.v1 import profiles_pb2_grpc as pb_grpc
from idgraph.proto.idgraph.v1 import segments_pb2 as spb
from idgraph.proto.idgraph.v1 import segments_pb2_grpc as spb_grpc
from idgraph.resolver.model import IdentityRecord
from idgraph.service.client import ProfileClient
from idgraph.service.server import create_server
from idgraph.serving import open_key_admin, open_served
from idgraph.settings import Settings

PEOPLE = [
    record("salesforce", "003A", "p-1", 100, ["crm:salesforce:003A", "email:anna@acme.de"],
           given_name="Anna", country="DE"),
    record("hubspot", "51", "p-2", 110, ["crm:hubspot:51", "email:ben@acme.de",
                                         "phone:+4915112345678"], given_name="Ben",
           country="DE"),
    record("hubspot", "52", "p-3", 120, ["crm:hubspot:52", "email:cleo@x.fr"], country="FR"),
    record("segment", "u1", "p-4", 130, ["user:segment:u1", "email:sam@x.com"], country="US"),
]

#: key name -> (roles, keyword arguments of KeyAdmin.create)
KEYS: dict[str, tuple[list[str], dict]] = {
    "activation": (["activation"], {}),
    "marketer": (["marketer"], {}),
    "marketer unmasked": (["marketer"], {"unmask": True}),
    "steward": (["steward"], {}),
    "privacy": (["privacy"], {}),
    "operator": (["operator"], {}),
    "admin": (["admin"], {}),
    "marketer eu": (["marketer"], {"regions": ["eu"]}),
    "privacy us": (["privacy"], {"regions": ["us"]}),
}


@dataclass
class World:
    settings: Settings
    engine: Engine
    keys: dict[str, str]
    key_ids: dict[str, str]
    channel: grpc.Channel
    target: str
    closers: list = field(default_factory=list)

    @property
    def admin(self) -> apb_grpc.AdminServiceStub:
        return apb_grpc.AdminServiceStub(self.channel)

    @property
    def segments(self) -> spb_grpc.SegmentServiceStub:
        return spb_grpc.SegmentServiceStub(self.channel)

    @property
    def privacy(self) -> ppb_grpc.PrivacyServiceStub:
        return ppb_grpc.PrivacyServiceStub(self.channel)

    @property
    def profiles(self) -> pb_grpc.ProfileServiceStub:
        return pb_grpc.ProfileServiceStub(self.channel)

    def md(self, key: str) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.keys[key]}")]

    def pid(self, identifier: str) -> str:
        return self.engine.queries.lookup(identifier).profile.profile_id

    def build(self) -> None:
        """Evaluate new definitions over the stored profiles, as a writer does."""
        while self.engine.segment_step():
            pass

    def define(self, name: str, definition: str) -> None:
        """Define a segment (as a marketer), build it, and wait until the server's
        segment queries see it (they read the catalog again after half a second)."""
        md = self.md("marketer")
        self.segments.DefineSegment(spb.DefineSegmentRequest(
            name=name, definition=definition), metadata=md, timeout=10)
        self.build()
        deadline = time.monotonic() + 10
        while True:
            try:
                self.segments.CountSegment(spb.CountSegmentRequest(name=name), metadata=md,
                                           timeout=10)
                return
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.NOT_FOUND or time.monotonic() > deadline:
                    raise
            time.sleep(0.05)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("console-rpcs") / "data")
    engine = Engine(settings)
    closers: list = []
    try:
        engine.ingest(PEOPLE)
        admin, store = open_key_admin(settings, None)
        try:
            issued = {name: admin.create(name, roles, **kw) for name, (roles, kw) in KEYS.items()}
        finally:
            store.close()
        served = open_served(settings)
        closers.append(served.close)
        server, port = create_server(served.queries, settings.grpc, "127.0.0.1:0",
                                     **served.server_kwargs())
        server.start()
        closers.append(lambda: server.stop(0).wait())
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        closers.append(channel.close)
        yield World(settings, engine, {n: k.text for n, k in issued.items()},
                    {n: k.key.key_id for n, k in issued.items()}, channel,
                    f"127.0.0.1:{port}", closers)
    finally:
        for close in reversed(closers):
            close()
        engine.close()


def _refused(call, request, metadata) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call(request, metadata=metadata, timeout=30)
    return info.value.code(), info.value.details()


# ----------------------------------------------------------------------------- WhoAmI


@pytest.mark.parametrize("name", list(KEYS))
def test_who_am_i_tells_each_role_its_key_and_permissions(world: World, name: str) -> None:
    roles, kw = KEYS[name]
    me = world.admin.WhoAmI(apb.WhoAmIRequest(), metadata=world.md(name), timeout=10)
    assert me.principal == f"key:{world.key_ids[name]}" and me.key_id == world.key_ids[name]
    assert me.owner == name and list(me.roles) == roles
    assert list(me.regions) == kw.get("regions", [])
    assert list(me.permissions) == sorted(permissions_of(roles, kw.get("unmask", False)))
    assert "self.read" in me.permissions
    assert me.unmask is bool(kw.get("unmask"))
    assert me.expires_at.ToDatetime(UTC) > datetime.now(UTC)
    assert set(me.served_regions) == set(world.settings.served_regions)


def test_who_am_i_needs_a_credential(world: World) -> None:
    code, _ = _refused(world.admin.WhoAmI, apb.WhoAmIRequest(), [])
    assert code == grpc.StatusCode.UNAUTHENTICATED


# ----------------------------------------------------------------------------- CheckSegment


def test_check_segment_gives_the_canonical_forms_and_what_it_uses(world: World) -> None:
    check = world.segments.CheckSegment
    md = world.md("marketer")
    text = check(spb.CheckSegmentRequest(definition='country="DE"  and in_segment("B")'),
                 metadata=md, timeout=10)
    assert text.canonical_text == 'country = "DE" and in_segment("B")'
    assert list(text.uses) == ["B"]  # undefined: listed all the same
    again = check(spb.CheckSegmentRequest(definition=text.canonical_json), metadata=md,
                  timeout=10)
    assert (again.canonical_text, again.canonical_json) == (text.canonical_text,
                                                            text.canonical_json)
    assert world.segments.ListSegments(spb.ListSegmentsRequest(), metadata=md,
                                       timeout=10).segments == []  # nothing stored


@pytest.mark.parametrize("definition", ['country = = "DE"', 'country = "DE" and\n  ( x',
                                        '{"kind": "compare", ', '{"kind": "nope"}', ""])
def test_check_segment_refuses_a_draft_exactly_as_define_does(world: World,
                                                              definition: str) -> None:
    md = world.md("marketer")
    checked = _refused(world.segments.CheckSegment,
                       spb.CheckSegmentRequest(definition=definition), md)
    defined = _refused(world.segments.DefineSegment,
                       spb.DefineSegmentRequest(name="Never", definition=definition), md)
    assert checked == defined
    assert checked[0] == grpc.StatusCode.INVALID_ARGUMENT


def test_check_and_preview_are_the_marketers(world: World) -> None:
    for name in ("steward", "activation", "privacy"):
        for call, request in ((world.segments.CheckSegment,
                               spb.CheckSegmentRequest(definition="country exists")),
                              (world.segments.PreviewSegment,
                               spb.PreviewSegmentRequest(definition="country exists"))):
            code, details = _refused(call, request, world.md(name))
            assert code == grpc.StatusCode.PERMISSION_DENIED and "marketer" in details


def test_the_server_that_defines_or_deletes_a_segment_answers_with_it_at_once(
        world: World) -> None:
    md = world.md("marketer")
    world.segments.ListSegments(spb.ListSegmentsRequest(), metadata=md)  # catalog read now
    world.segments.DefineSegment(spb.DefineSegmentRequest(
        name="Read my write", definition="country exists"), metadata=md)
    counted = world.segments.CountSegment(spb.CountSegmentRequest(name="Read my write"),
                                          metadata=md)
    assert counted.count == 0  # not built yet, but known
    world.segments.DeleteSegment(spb.DeleteSegmentRequest(name="Read my write"), metadata=md)
    code, _ = _refused(world.segments.CountSegment,
                       spb.CountSegmentRequest(name="Read my write"), md)
    assert code == grpc.StatusCode.NOT_FOUND


# ----------------------------------------------------------------------------- PreviewSegment


def test_a_preview_counts_what_the_saved_segment_counts(world: World) -> None:
    md = world.md("marketer")
    world.define("Has email", "has_identifier(email)")
    draft = 'country = "DE" and has_identifier(email)'
    preview = world.segments.PreviewSegment(spb.PreviewSegmentRequest(
        definition=draft, name="Germans", samples=1), metadata=md, timeout=30)
    world.define("Germans", draft)
    count = world.segments.CountSegment(spb.CountSegmentRequest(name="Germans"), metadata=md,
                                        timeout=10)
    assert preview.count == count.count >= 2
    assert dict(preview.count_by_region) == dict(count.by_region) == {"eu": count.count}
    assert len(preview.samples) == 1  # as asked
    [sample] = preview.samples
    assert sample.region == "eu"
    assert list(sample.matched_clauses) == ['country = "DE"', "has_identifier(email)"]
    members = {m.profile_id for page in world.segments.ListSegmentMembers(
        spb.ListSegmentMembersRequest(name="Germans"), metadata=md, timeout=10)
        for m in page.members}
    assert sample.profile_id in members
    assert preview.identifier_types["email"] == count.count
    assert preview.identifier_types["crm"] >= 1 and "phone" in preview.identifier_types
    # the overlap names every other live segment (the draft's own name left out)
    assert dict(preview.overlap) == {"Has email": count.count}
    assert preview.profiles_evaluated == sum(
        world.engine.store.profiles_by_region().values())
    assert preview.canonical_text == draft
    # now that it is saved, a draft of another name overlaps with it too
    again = world.segments.PreviewSegment(spb.PreviewSegmentRequest(
        definition='in_segment("Germans")'), metadata=md, timeout=30)
    assert again.count == count.count
    assert dict(again.overlap) == {"Has email": count.count, "Germans": count.count}
    assert len(again.samples) == count.count  # 20 by default: every member here
    # the draft of a saved segment stands in for it (no overlap with itself); a segment
    # it shares no member with overlaps by 0
    edit = world.segments.PreviewSegment(spb.PreviewSegmentRequest(
        definition='country = "FR"', name="Germans"), metadata=md, timeout=30)
    assert edit.count == 1 and dict(edit.overlap) == {"Has email": 1}
    unnamed = world.segments.PreviewSegment(spb.PreviewSegmentRequest(
        definition='country = "FR"'), metadata=md, timeout=30)
    assert dict(unnamed.overlap) == {"Has email": 1, "Germans": 0}


def test_a_repeated_preview_sees_every_write_since_the_last(world: World) -> None:
    """Previews keep the folded profiles between calls (PreviewProfiles): a new profile
    and a changed one must count at once."""
    md = world.md("marketer")

    def count() -> int:
        return world.segments.PreviewSegment(spb.PreviewSegmentRequest(
            definition='country = "AT"'), metadata=md, timeout=30).count

    before = count()
    world.engine.ingest([record("hubspot", "9077", "p-9077a", 200,
                                ["crm:hubspot:9077", "email:lea@beispiel.at"], country="AT")])
    assert count() == before + 1  # a new profile
    world.engine.ingest([record("hubspot", "9077", "p-9077b", 300,
                                ["crm:hubspot:9077", "email:lea@beispiel.at"], country="DE")])
    assert count() == before  # the same profile, changed


def test_a_preview_sees_only_the_regions_of_the_key(world: World) -> None:
    request = spb.PreviewSegmentRequest(definition="has_identifier(email)", samples=100)
    every = world.segments.PreviewSegment(request, metadata=world.md("marketer"), timeout=30)
    eu = world.segments.PreviewSegment(request, metadata=world.md("marketer eu"), timeout=30)
    by_region = world.engine.store.profiles_by_region()
    assert {"eu", "us"} <= set(every.count_by_region)
    assert dict(eu.count_by_region) == {"eu": every.count_by_region["eu"]}
    assert eu.count == every.count_by_region["eu"]
    assert {s.region for s in eu.samples} == {"eu"}
    assert eu.profiles_evaluated == by_region["eu"]
    assert every.profiles_evaluated == sum(by_region.values())


def test_a_preview_of_a_draft_using_an_undefined_segment_is_refused(world: World) -> None:
    md = world.md("marketer")
    code, details = _refused(world.segments.PreviewSegment, spb.PreviewSegmentRequest(
        definition='in_segment("Ghost")'), md)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "Ghost" in details
    code, details = _refused(world.segments.PreviewSegment, spb.PreviewSegmentRequest(
        definition="country exists", samples=-1), md)
    assert code == grpc.StatusCode.INVALID_ARGUMENT


# ----------------------------------------------------------------------------- activity


def _watch(world: World, name: str, wanted: int) -> tuple[list[spb.SegmentChange],
                                                           threading.Thread, object]:
    got: list[spb.SegmentChange] = []
    stream = world.segments.WatchSegment(spb.WatchSegmentRequest(names=[name]),
                                         metadata=world.md("activation"), timeout=60)

    def read() -> None:
        try:
            for change in stream:
                got.append(change)
                if len(got) == wanted:
                    return
        except grpc.RpcError:
            pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.5)  # the stream is open: it starts from now
    return got, reader, stream


def test_activity_counts_what_watch_sees(world: World) -> None:
    md = world.md("marketer")
    world.define("Has email", "has_identifier(email)")  # changes of another segment too
    world.engine.ingest([
        record("hubspot", "61", "a-1", 200, ["crm:hubspot:61", "email:dora@x.at"],
               country="AT"),
        record("hubspot", "62", "a-2", 210, ["crm:hubspot:62", "email:emil@x.at"],
               country="AT")])
    world.segments.DefineSegment(spb.DefineSegmentRequest(
        name="Austrians", definition='country = "AT"'), metadata=md, timeout=10)
    time.sleep(0.6)  # the server's segment queries read the catalog again
    got, reader, stream = _watch(world, "Austrians", 4)
    world.build()  # both enter (cause definition)
    world.engine.ingest([record("hubspot", "63", "a-3", 220, ["email:fritz@x.at"],
                                country="AT")])  # enters
    world.engine.ingest([record("hubspot", "62", "a-4", 230, ["email:emil@x.at"],
                                country="DE")])  # Emil moved: exits
    reader.join(timeout=30)
    stream.cancel()
    assert len(got) == 4, got
    entered = sum(c.change == spb.SegmentChange.ENTERED for c in got)
    exited = sum(c.change == spb.SegmentChange.EXITED for c in got)
    assert (entered, exited) == (3, 1)

    activity = world.segments.GetSegmentActivity(spb.GetSegmentActivityRequest(
        name="Austrians", hours=1, bucket_minutes=5), metadata=md, timeout=30)
    count = world.segments.CountSegment(spb.CountSegmentRequest(name="Austrians"),
                                        metadata=md, timeout=10).count
    assert (activity.entered, activity.exited) == (entered, exited)
    assert activity.size == count == 2
    buckets = activity.buckets
    assert len(buckets) in (12, 13)  # the hour in 5-minute buckets, the last one running
    assert all(b.start.seconds % 300 == 0 for b in buckets)
    assert [b.start.seconds - buckets[0].start.seconds for b in buckets] == \
        [300 * i for i in range(len(buckets))]
    assert buckets[-1].start.ToDatetime(UTC) <= datetime.now(UTC)
    assert sum(b.entered for b in buckets) == entered
    assert sum(b.exited for b in buckets) == exited
    assert buckets[-1].size_at_end == count and buckets[0].size_at_end == 0
    for before, after in pairwise(buckets):
        assert after.size_at_end == before.size_at_end + after.entered - after.exited
    # who moved in or out: the same changes as the stream, newest first
    assert [(c.profile_id, c.change) for c in activity.recent] == \
        [(c.profile_id, c.change) for c in reversed(got)]
    assert activity.HasField("log_starts_at")
    assert activity.log_starts_at.ToDatetime(UTC) <= datetime.now(UTC)
    # the defaults: a day in hours
    default = world.segments.GetSegmentActivity(spb.GetSegmentActivityRequest(
        name="Austrians"), metadata=world.md("steward"), timeout=30)
    assert len(default.buckets) in (24, 25)
    assert (default.entered, default.exited, default.size) == (3, 1, 2)


def test_activity_of_an_unknown_segment_or_a_window_past_the_log(world: World) -> None:
    activity, md = world.segments.GetSegmentActivity, world.md("activation")
    code, details = _refused(activity, spb.GetSegmentActivityRequest(name="No such"), md)
    assert code == grpc.StatusCode.NOT_FOUND and "No such" not in details
    for request in (spb.GetSegmentActivityRequest(name="Germans", hours=25),
                    spb.GetSegmentActivityRequest(name="Germans", hours=-1),
                    spb.GetSegmentActivityRequest(name="Germans", bucket_minutes=4),
                    spb.GetSegmentActivityRequest(name="Germans", bucket_minutes=1441)):
        assert _refused(activity, request, md)[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert _refused(activity, spb.GetSegmentActivityRequest(name="Germans"),
                    world.md("privacy"))[0] == grpc.StatusCode.PERMISSION_DENIED


# ----------------------------------------------------------------------------- forget requests


def test_forget_requests_are_listed_newest_first_with_their_status(world: World) -> None:
    world.engine.ingest([
        record("hubspot", "81", "f-1", 300, ["crm:hubspot:81", "email:fay@x.com"],
               country="US"),
        record("hubspot", "82", "f-2", 310, ["crm:hubspot:82", "email:gus@x.com"],
               country="US"),
        record("salesforce", "83", "f-3", 320, ["crm:salesforce:83", "email:greta@x.de"],
               country="DE")])
    md, stub = world.md("privacy"), world.privacy
    made = [stub.Forget(ppb.ForgetRequest(identifier=who, reason="asked"), metadata=md,
                        timeout=30)
            for who in ("email:fay@x.com", "email:gus@x.com", "email:greta@x.de")]
    ids = [m.request_id for m in made]

    listed = stub.ListForgetRequests(ppb.ListForgetRequestsRequest(), metadata=md, timeout=10)
    assert [r.request_id for r in listed.requests] == ids[::-1]
    assert not listed.next_page_token
    newest = listed.requests[0]
    assert (newest.status, list(newest.profile_ids)) == ("pending", list(made[2].profile_ids))
    assert newest.requested_at == made[2].requested_at
    assert stub.ListForgetRequests(ppb.ListForgetRequestsRequest(status="completed"),
                                   metadata=md, timeout=10).requests == []

    # one a page, newest first, each page's token leading to the next
    pages, token = [], ""
    while True:
        page = stub.ListForgetRequests(ppb.ListForgetRequestsRequest(
            page_size=1, page_token=token), metadata=md, timeout=10)
        pages.append([r.request_id for r in page.requests])
        token = page.next_page_token
        if not token:
            break
    assert pages == [[i] for i in ids[::-1]]

    # a key limited to us does not see the request about an EU person
    us = stub.ListForgetRequests(ppb.ListForgetRequestsRequest(),
                                 metadata=world.md("privacy us"), timeout=10)
    assert [r.request_id for r in us.requests] == ids[1::-1]

    world.engine.segment_step()  # the writer carries the requests out
    done = stub.ListForgetRequests(ppb.ListForgetRequestsRequest(status="COMPLETED"),
                                   metadata=md, timeout=10)
    assert [r.request_id for r in done.requests] == ids[::-1]
    assert all(r.erased for r in done.requests)
    assert stub.ListForgetRequests(ppb.ListForgetRequestsRequest(status="pending"),
                                   metadata=md, timeout=10).requests == []


def test_forget_listing_refuses_what_it_cannot_read(world: World) -> None:
    stub, md = world.privacy, world.md("privacy")
    for request in (ppb.ListForgetRequestsRequest(status="done"),
                    ppb.ListForgetRequestsRequest(page_size=-1),
                    ppb.ListForgetRequestsRequest(page_token="not-a-token-we-gave"),
                    ppb.ListForgetRequestsRequest(page_token="bm90IGEgdGltZQ==")):
        code, details = _refused(stub.ListForgetRequests, request, md)
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert "not-a-token" not in details
    for name in ("steward", "marketer", "activation", "admin"):
        assert _refused(stub.ListForgetRequests, ppb.ListForgetRequestsRequest(),
                        world.md(name))[0] == grpc.StatusCode.PERMISSION_DENIED


# ----------------------------------------------------------------------------- history


def _event(source: str, rid: str, event_id: str, t: float, ids: list[str], kind: str,
           **properties: str | float) -> IdentityRecord:
    return IdentityRecord(
        source=source, source_record_id=rid, event_id=event_id,
        event_time=datetime.fromtimestamp(t, UTC), identifiers=tuple(map(ident, ids)),
        event_type=kind, properties=properties)


def test_profile_history_shows_a_merge_the_timeline_and_segment_changes(world: World) -> None:
    md = world.md("marketer")
    world.define("Phone owners", "has_identifier(phone)")
    world.engine.ingest([
        _event("hubspot", "70", "h-1", 1000, ["crm:hubspot:70", "email:hana@x.com"],
               "Order Completed", sku="H-1", total=42.5),
        _event("segment", "u70", "h-2", 1100, ["user:segment:u70", "phone:+14155550170"],
               "open")])
    hana, app = world.pid("email:hana@x.com"), world.pid("user:segment:u70")
    assert hana != app  # two people so far
    world.engine.ingest([_event("segment", "u70", "h-3", 1200,
                                ["user:segment:u70", "email:hana@x.com"], "login")])
    survivor = world.pid("email:hana@x.com")
    assert world.pid("user:segment:u70") == survivor
    absorbed = app if survivor == hana else hana

    history = world.profiles.GetProfileHistory(pb.GetProfileHistoryRequest(
        profile_id=absorbed), metadata=world.md("steward"), timeout=10)
    assert history.profile_id == survivor  # an alias resolves as GetProfile does
    merges = [h for h in history.history if h.kind == "merged"]
    assert [(h.subject, list(h.related)) for h in merges] == [(survivor, [absorbed])]
    events = history.events
    assert [(e.type, e.record_key) for e in events] == [
        ("login", "segment:u70"), ("open", "segment:u70"), ("Order Completed", "hubspot:70")]
    assert [e.at.seconds for e in events] == [1200, 1100, 1000]  # newest first
    assert dict(events[2].properties) == {"sku": "H-1", "total": "42.5"}
    assert history.event_count == 3
    # the survivor has a phone now: it entered "Phone owners" by the merge (or, had the
    # app's profile survived, when its phone came); the absorbed profile's changes (its
    # exit by the merge) are not the survivor's
    phones = [(m.entered, m.cause) for m in history.memberships
              if m.segment == "Phone owners"]
    assert phones == ([(True, "merge")] if survivor == hana else [(True, "event")])
    logged = [c for _at, c in world.engine.store.segment_log(profile_id=survivor)]
    assert [(m.segment, m.entered, m.cause, m.at.seconds) for m in history.memberships] == [
        (c.segment, c.change == "entered", c.cause, int(c.at)) for c in reversed(logged)]

    with ProfileClient(world.target, token=world.keys["steward"]) as client:
        fewer = client.profile_history(survivor, max_events=1)
    assert [e.type for e in fewer.events] == ["login"] and fewer.event_count == 3

    masked = world.profiles.GetProfileHistory(pb.GetProfileHistoryRequest(
        profile_id=survivor), metadata=md, timeout=10)
    assert [(e.type, e.record_key) for e in masked.events] == [
        ("login", "segment:***"), ("open", "segment:***"), ("Order Completed", "hubspot:***")]
    assert all(not e.properties for e in masked.events)
    text = str(masked)
    assert "u70" not in text and "hubspot:70" not in text and "H-1" not in text
    assert masked.history == history.history and masked.memberships == history.memberships
    whole = world.profiles.GetProfileHistory(pb.GetProfileHistoryRequest(
        profile_id=survivor), metadata=world.md("marketer unmasked"), timeout=10)
    assert whole.events == history.events


def test_profile_history_is_not_found_out_of_region_or_unknown(world: World) -> None:
    history, md = world.profiles.GetProfileHistory, world.md("activation")
    sam = world.pid("email:sam@x.com")  # a US person
    assert _refused(history, pb.GetProfileHistoryRequest(profile_id=sam),
                    world.md("marketer eu"))[0] == grpc.StatusCode.NOT_FOUND
    assert history(pb.GetProfileHistoryRequest(profile_id=sam), metadata=md,
                   timeout=10).profile_id == sam
    assert _refused(history, pb.GetProfileHistoryRequest(profile_id="p_unknown"),
                    md)[0] == grpc.StatusCode.NOT_FOUND
    for request in (pb.GetProfileHistoryRequest(profile_id=""),
                    pb.GetProfileHistoryRequest(profile_id=sam, max_events=-1)):
        assert _refused(history, request, md)[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert _refused(history, pb.GetProfileHistoryRequest(profile_id=sam),
                    world.md("admin"))[0] == grpc.StatusCode.PERMISSION_DENIED


# ----------------------------------------------------------------------------- reviews


def test_a_review_shows_both_records_side_by_side(world: World) -> None:
    world.engine.ingest([
        record("hubspot", "77", "r-1", 500, ["crm:hubspot:77", "email:joan@example.org"],
               given_name="Joan", family_name="Miller", company="Acme Inc", city="Berlin",
               country="DE"),
        record("segment", "u9", "r-2", 510, ["user:segment:u9", "phone:+4930123456"],
               given_name="Joan", family_name="Millar", country="DE")])
    contributions = (("given_name", "Exact match on given_name", 7.0),)
    assert world.engine.matching.propose_reviews(
        [("hubspot:77", "segment:u9", 3.1, 0.97, "v0001", contributions)]) == 1
    listed = world.profiles.ListReviews(pb.ListReviewsRequest(status="open"),
                                        metadata=world.md("steward"), timeout=10)
    [review] = [r for r in listed.reviews if {r.record_a, r.record_b} == {"hubspot:77",
                                                                         "segment:u9"}]
    pids = {"hubspot:77": world.pid("email:joan@example.org"),
            "segment:u9": world.pid("user:segment:u9")}
    assert (review.profile_a, review.profile_b) == (pids[review.record_a],
                                                    pids[review.record_b])
    values = {"hubspot:77": {"given_name": "Joan", "family_name": "Miller",
                             "email": "joan@example.org", "company": "Acme Inc",
                             "city": "Berlin", "country": "DE"},
              "segment:u9": {"given_name": "Joan", "family_name": "Millar",
                             "phone": "+4930123456", "country": "DE"}}
    a, b = values[review.record_a], values[review.record_b]
    assert {f.name: (f.value_a, f.value_b) for f in review.fields} == {
        name: (a.get(name, ""), b.get(name, "")) for name in {*a, *b}}
    # in the model's column order
    assert [f.name for f in review.fields] == [
        n for n in ("given_name", "family_name", "email", "phone", "company", "city",
                    "country") if n in {*a, *b}]
    decided = world.profiles.DecideReview(pb.DecideReviewRequest(
        review_id=review.review_id, decision=pb.DecideReviewRequest.REJECT),
        metadata=world.md("steward"), timeout=10)
    assert decided.status == "rejected" and decided.fields == review.fields
    assert (decided.profile_a, decided.profile_b) == (review.profile_a, review.profile_b)
