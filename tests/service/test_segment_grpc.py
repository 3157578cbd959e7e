"""The SegmentService over a real channel: define (steward only), read, evaluate, count,
list members, watch changes as the writer ingests, and residency.

The server reads the data directory the way ``idgraph serve`` does (read-only store, its
own segment catalog connection); the writer is a real :class:`Engine` on the same
directory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from helpers import record

from idgraph.engine import Engine
from idgraph.engine.backends import open_queries, open_reader_store, open_segment_catalog
from idgraph.proto.idgraph.v1 import segments_pb2 as spb
from idgraph.proto.idgraph.v1 import segments_pb2_grpc as spb_grpc
from idgraph.service.server import create_server
from idgraph.service.settings import GrpcSettings
from idgraph.settings import Settings

API = [("authorization", "Bearer api-1")]
STEWARD = [("authorization", "Bearer steward-1")]

PEOPLE = [
    record("salesforce", "003A", "e1", 100, ["crm:salesforce:003A", "email:anna@acme.de"],
           consent={"email": True}, country="DE"),
    record("hubspot", "51", "e2", 200, ["crm:hubspot:51", "email:ben@acme.de"],
           consent={"email": True}, country="DE"),
    record("hubspot", "52", "e3", 300, ["crm:hubspot:52", "email:cleo@x.fr"], country="FR"),
    record("segment", "u1", "e4", 400, ["user:segment:u1", "email:sam@x.com"], country="US"),
]


class Served:
    def __init__(self, tmp_path, regions: list[str] | None = None, **grpc_settings) -> None:
        self.settings = Settings(data_dir=tmp_path / "d")
        self.engine = Engine(self.settings)
        self.engine.ingest(PEOPLE)
        served = regions or self.settings.served_regions
        self.store = open_reader_store(self.settings, served)
        self.catalog = open_segment_catalog(self.settings)
        grpc_cfg = GrpcSettings(api_tokens=["api-1"], steward_tokens=["steward-1"],
                                **grpc_settings)
        self.server, port = create_server(open_queries(self.settings, self.store), grpc_cfg,
                                          "127.0.0.1:0", segment_catalog=self.catalog)
        self.server.start()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = spb_grpc.SegmentServiceStub(self.channel)

    def define(self, name: str, definition: str) -> spb.DefineSegmentResponse:
        return self.stub.DefineSegment(spb.DefineSegmentRequest(
            name=name, definition=definition), metadata=STEWARD)

    def build(self) -> None:
        while self.engine.segment_step():
            pass

    def close(self) -> None:
        self.channel.close()
        self.server.stop(0).wait()
        self.catalog.close()
        self.store.close()
        self.engine.close()


@pytest.fixture
def served(tmp_path) -> Iterator[Served]:
    s = Served(tmp_path)
    yield s
    s.close()


def _code(call, *args, **kwargs) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        result = call(*args, **kwargs)
        if hasattr(result, "__iter__") and not hasattr(result, "ListFields"):
            list(result)
    return info.value.code(), info.value.details()


def test_define_needs_a_steward_and_says_what_is_wrong(served):
    stub = served.stub
    request = spb.DefineSegmentRequest(name="Germans", definition='country = "DE"')
    assert _code(stub.DefineSegment, request, metadata=API)[0] \
        == grpc.StatusCode.PERMISSION_DENIED
    created = served.define("Germans", 'country = "DE"')
    assert (created.created, created.changed, created.segment.version) == (True, True, 1)
    assert created.segment.author.startswith("steward:")
    again = served.define("Germans", 'country="DE"')  # same definition, other spelling
    assert (again.created, again.changed, again.segment.version) == (False, False, 1)
    code, message = _code(stub.DefineSegment, spb.DefineSegmentRequest(
        name="Bad", definition='country = = "DE"'), metadata=STEWARD)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "line 1, column" in message
    code, message = _code(stub.DefineSegment, spb.DefineSegmentRequest(
        name="Uses ghost", definition='in_segment("Ghost")'), metadata=STEWARD)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "Ghost" in message
    code, _ = _code(stub.DefineSegment, spb.DefineSegmentRequest(
        name="", definition="country exists"), metadata=STEWARD)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    # the JSON form is accepted too and stored canonically
    as_json = created.segment.definition_json
    assert served.define("Germans 2", as_json).segment.definition == 'country = "DE"'


def test_get_list_and_delete(served):
    served.define("Known", "has_identifier(email)")
    served.define("Known DE", 'in_segment("Known") and country = "DE"')
    served.define("Known DE", 'in_segment("Known") and country in ("DE", "AT")')
    served.build()
    got = served.stub.GetSegment(spb.GetSegmentRequest(name="Known DE"), metadata=API)
    assert got.version == 2 and [v.version for v in got.versions] == [1, 2]
    assert list(got.uses) == ["Known"] and got.builds and all(b.done for b in got.builds)
    known = served.stub.GetSegment(spb.GetSegmentRequest(name="Known"), metadata=API)
    assert list(known.used_by) == ["Known DE"]
    listed = served.stub.ListSegments(spb.ListSegmentsRequest(), metadata=API)
    assert [s.name for s in listed.segments] == ["Known", "Known DE"]
    code, message = _code(served.stub.DeleteSegment, spb.DeleteSegmentRequest(name="Known"),
                          metadata=STEWARD)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "Known DE" in message
    assert _code(served.stub.DeleteSegment, spb.DeleteSegmentRequest(name="Known DE"),
                 metadata=API)[0] == grpc.StatusCode.PERMISSION_DENIED
    deleted = served.stub.DeleteSegment(spb.DeleteSegmentRequest(name="Known DE"),
                                        metadata=STEWARD)
    assert deleted.version == 3
    assert _code(served.stub.GetSegment, spb.GetSegmentRequest(name="Known DE"),
                 metadata=API)[0] == grpc.StatusCode.NOT_FOUND


def test_evaluate_count_and_members(served):
    served.define("Mailable DE", 'country = "DE" and consent("email") = granted')
    served.build()
    ev = served.stub.EvaluateSegments(spb.EvaluateSegmentsRequest(
        identifier="email:Anna@Acme.de", names=["Mailable DE"]), metadata=API)
    [m] = ev.memberships
    assert m.member and list(m.matched_clauses) == ['country = "DE"',
                                                    'consent("email") = granted']
    assert ev.region == "eu"
    other = served.stub.EvaluateSegments(spb.EvaluateSegmentsRequest(
        identifier="email:sam@x.com"), metadata=API)
    assert [(x.segment, x.member) for x in other.memberships] == [("Mailable DE", False)]
    assert _code(served.stub.EvaluateSegments, spb.EvaluateSegmentsRequest(
        identifier="email:sam@x.com", names=["Nope"]), metadata=API)[0] \
        == grpc.StatusCode.NOT_FOUND
    assert _code(served.stub.EvaluateSegments, spb.EvaluateSegmentsRequest(names=["x"]),
                 metadata=API)[0] == grpc.StatusCode.INVALID_ARGUMENT
    count = served.stub.CountSegment(spb.CountSegmentRequest(name="Mailable DE"), metadata=API)
    assert count.count == 2 and dict(count.by_region) == {"eu": 2}
    pages = list(served.stub.ListSegmentMembers(spb.ListSegmentMembersRequest(
        name="Mailable DE", page_size=1), metadata=API))
    assert [len(p.members) for p in pages] == [1, 1]
    assert pages[0].next_page_token and not pages[-1].next_page_token
    anna = served.engine.queries.lookup("email:anna@acme.de").profile.profile_id
    assert anna in {p.members[0].profile_id for p in pages}


def test_watch_sees_changes_as_the_writer_ingests(served):
    served.define("Germans", 'country = "DE"')
    served.build()
    got: list[spb.SegmentChange] = []
    stream = served.stub.WatchSegment(spb.WatchSegmentRequest(names=["Germans"]),
                                      metadata=API)

    def read() -> None:
        for change in stream:
            got.append(change)
            if len(got) == 2:
                return

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(0.3)  # the stream is open (it starts from now)
    served.engine.ingest([record("hubspot", "53", "e5", 500, ["email:dora@x.de"],
                                 country="DE")])
    served.engine.ingest([record("hubspot", "52", "e6", 600, ["email:cleo@x.fr"],
                                 country="DE")])  # Cleo moved
    reader.join(timeout=10)
    stream.cancel()
    assert [(c.change, c.cause) for c in got] == [(spb.SegmentChange.ENTERED, "attribute")] * 2
    assert got[-1].cursor and got[0].change_id != got[1].change_id
    # resuming from the first change's log position repeats nothing before it
    resumed = served.stub.WatchSegment(spb.WatchSegmentRequest(
        names=["Germans"], cursor=got[0].cursor or got[0].change_id), metadata=API)
    first = next(iter(resumed))
    resumed.cancel()
    assert first.change_id == got[1].change_id
    assert _code(served.stub.WatchSegment, spb.WatchSegmentRequest(cursor="not-a-cursor"),
                 metadata=API)[0] == grpc.StatusCode.INVALID_ARGUMENT


def test_watchers_are_limited(tmp_path):
    s = Served(tmp_path, max_watchers=1)
    try:
        s.define("Germans", 'country = "DE"')
        first = s.stub.WatchSegment(spb.WatchSegmentRequest(), metadata=API)

        def drain() -> None:
            try:
                list(first)
            except grpc.RpcError as exc:  # cancelled below
                assert exc.code() == grpc.StatusCode.CANCELLED

        threading.Thread(target=drain, daemon=True).start()
        time.sleep(0.3)
        assert _code(s.stub.WatchSegment, spb.WatchSegmentRequest(), metadata=API)[0] \
            == grpc.StatusCode.RESOURCE_EXHAUSTED
        first.cancel()
    finally:
        s.close()


def test_a_server_never_answers_with_members_of_regions_it_does_not_serve(tmp_path):
    s = Served(tmp_path, regions=["us"])
    try:
        s.define("Everyone", "has_identifier(email)")
        s.build()
        count = s.stub.CountSegment(spb.CountSegmentRequest(name="Everyone"), metadata=API)
        assert dict(count.by_region) == {"us": 1}
        [page] = list(s.stub.ListSegmentMembers(spb.ListSegmentMembersRequest(
            name="Everyone"), metadata=API))
        assert {m.region for m in page.members} == {"us"}
        anna = s.engine.queries.lookup("email:anna@acme.de").profile.profile_id
        assert _code(s.stub.EvaluateSegments, spb.EvaluateSegmentsRequest(
            profile_id=anna), metadata=API)[0] == grpc.StatusCode.NOT_FOUND
    finally:
        s.close()


def test_an_answer_is_not_reused_after_the_profile_changed(served):
    served.define("Germans", 'country = "DE"')
    cleo = served.engine.queries.lookup("email:cleo@x.fr").profile.profile_id

    def member(**subject) -> bool:
        [m] = served.stub.EvaluateSegments(spb.EvaluateSegmentsRequest(
            names=["Germans"], **subject), metadata=API).memberships
        return m.member

    assert not member(profile_id=cleo) and not member(identifier="email:cleo@x.fr")
    served.engine.ingest([record("hubspot", "52", "e9", 900, ["email:cleo@x.fr"],
                                 country="DE")])  # Cleo moved
    assert member(profile_id=cleo) and member(identifier="email:cleo@x.fr")
