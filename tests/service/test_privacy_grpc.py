"""PrivacyService and consent gating over real channels: two ``idgraph serve`` processes
on one data directory (as in production, each reading the ledger itself) and a writer
:class:`Engine` in the test process.

A withdrawal recorded on one server is refused by the other at its next call; forget
requests stop answers at once and the writer carries them out; roles keep erasure and
export to privacy tokens; bad requests get their status.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import time
import zipfile

import grpc
import pytest
from helpers import record

from idgraph.engine import Engine
from idgraph.proto.idgraph.v1 import privacy_pb2 as ppb
from idgraph.proto.idgraph.v1 import privacy_pb2_grpc as ppb_grpc
from idgraph.proto.idgraph.v1 import profiles_pb2 as pb
from idgraph.proto.idgraph.v1 import profiles_pb2_grpc as pb_grpc
from idgraph.proto.idgraph.v1 import segments_pb2 as spb
from idgraph.proto.idgraph.v1 import segments_pb2_grpc as spb_grpc
from idgraph.settings import Settings
from tests.idgraph.test_e2e_grpc import TOKEN, start_server

API = [("authorization", f"Bearer {TOKEN}")]
STEWARD = [("authorization", "Bearer steward-1")]
PRIVACY = [("authorization", "Bearer privacy-1")]

PEOPLE = [
    record("salesforce", "003A", "e1", 100, ["crm:salesforce:003A", "email:anna@acme.com"],
           given_name="Anna", family_name="Berg", job_title="CFO", country="US"),
    record("sendgrid", "anna@acme.com", "e2", 150, ["email:anna@acme.com"],
           consent={"email": True}, email="anna@acme.com"),
    record("hubspot", "51", "e3", 200, ["crm:hubspot:51", "email:ben@acme.com"],
           given_name="Ben", family_name="Ode", country="US"),
    record("hubspot", "60", "e4", 250, ["crm:hubspot:60", "email:eva@acme.de"],
           given_name="Eva", family_name="Korn", country="DE"),
]


def _serve(data_dir) -> tuple[subprocess.Popen, grpc.Channel]:
    proc, port = start_server(data_dir, ("IDGRAPH_GRPC__STEWARD_TOKENS", '["steward-1"]'),
                              ("IDGRAPH_GRPC__PRIVACY_TOKENS", '["privacy-1"]'))
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    grpc.channel_ready_future(channel).result(timeout=30)
    return proc, channel


class World:
    def __init__(self, tmp_path) -> None:
        self.settings = Settings(data_dir=tmp_path / "d")
        self.engine = Engine(self.settings)
        self.engine.ingest(PEOPLE)
        self.procs, self.channels = [], []
        for _ in range(2):
            proc, channel = _serve(self.settings.data_dir)
            self.procs.append(proc)
            self.channels.append(channel)
        self.a_privacy = ppb_grpc.PrivacyServiceStub(self.channels[0])
        self.b_profiles = pb_grpc.ProfileServiceStub(self.channels[1])
        self.b_segments = spb_grpc.SegmentServiceStub(self.channels[1])
        self.b_privacy = ppb_grpc.PrivacyServiceStub(self.channels[1])

    def close(self) -> None:
        for channel in self.channels:
            channel.close()
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(timeout=10)
        self.engine.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = World(tmp_path_factory.mktemp("privacy"))
    yield w
    w.close()


def _code(call, request, metadata=API) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        result = call(request, metadata=metadata)
        if hasattr(result, "__next__"):  # a stream fails when read
            list(result)
    return info.value.code(), info.value.details()


def test_a_withdrawal_on_one_server_is_refused_by_the_other(world):
    lookup = pb.LookupRequest(identifier="email:anna@acme.com", purpose="email")
    assert world.b_profiles.Lookup(lookup, metadata=API).profile.consent["email"] is True
    world.a_privacy.RecordConsent(ppb.RecordConsentRequest(
        identifier="email:anna@acme.com", purpose="email",
        status=ppb.RecordConsentRequest.WITHDRAWN, collection_point="preference-centre",
        notice_version="2026-11"), metadata=API)
    code, message = _code(world.b_profiles.Lookup, lookup)
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert message == "consent for purpose 'email' is withdrawn"
    plain = world.b_profiles.Lookup(pb.LookupRequest(identifier="email:anna@acme.com"),
                                    metadata=API)
    assert plain.profile.consent["email"] is False
    pid = plain.profile.profile_id
    code, _ = _code(world.b_profiles.GetProfile, pb.GetProfileRequest(profile_id=pid,
                                                                      purpose="email"))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    code, _ = _code(world.b_segments.EvaluateSegments, spb.EvaluateSegmentsRequest(
        profile_id=pid, purpose="email"))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    batch = world.b_profiles.BatchLookup(pb.BatchLookupRequest(
        identifiers=["email:anna@acme.com", "email:ben@acme.com"], purpose="email"),
        metadata=API)
    assert [r.code for r in batch.results] == [9, 0]
    got = world.b_privacy.GetConsent(ppb.GetConsentRequest(identifier="email:anna@acme.com"),
                                     metadata=API)
    email = next(c for c in got.consent if c.purpose == "email")
    assert (email.state, email.allowed) == ("withdrawn", False)
    assert [h.status for h in got.history if h.purpose == "email"] == ["granted", "withdrawn"]
    assert got.history[-1].notice_version == "2026-11"
    assert got.history[-1].subject == "email:anna@acme.com"


def test_eu_profiles_need_an_explicit_grant(world):
    lookup = pb.LookupRequest(identifier="email:eva@acme.de", purpose="ads")
    code, message = _code(world.b_profiles.Lookup, lookup)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "needs one in eu" in message
    world.a_privacy.RecordConsent(ppb.RecordConsentRequest(
        identifier="email:eva@acme.de", purpose="ads",
        status=ppb.RecordConsentRequest.GRANTED), metadata=API)
    assert world.b_profiles.Lookup(lookup, metadata=API).profile.consent["ads"] is True


@pytest.mark.parametrize(("request_", "field"), [
    (ppb.RecordConsentRequest(identifier="email:ben@acme.com", purpose="fax",
                              status=ppb.RecordConsentRequest.GRANTED), "unknown purpose (known:"),
    (ppb.RecordConsentRequest(identifier="email:ben@acme.com", purpose="email"),
     "status is required"),
    (ppb.RecordConsentRequest(identifier="email:not-an-email", purpose="email",
                              status=ppb.RecordConsentRequest.GRANTED), "email"),
    (ppb.RecordConsentRequest(identifier="email:ben@acme.com", purpose="email",
                              status=ppb.RecordConsentRequest.GRANTED, legal_basis="vibes"),
     "legal_basis must be one of"),
])
def test_bad_statements_are_invalid_and_store_nothing(world, request_, field):
    before = world.b_privacy.GetConsent(ppb.GetConsentRequest(identifier="email:ben@acme.com"),
                                        metadata=API).history
    code, message = _code(world.a_privacy.RecordConsent, request_)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and field in message
    after = world.b_privacy.GetConsent(ppb.GetConsentRequest(identifier="email:ben@acme.com"),
                                       metadata=API).history
    assert after == before


def test_an_unknown_purpose_on_a_lookup_is_invalid(world):
    code, message = _code(world.b_profiles.Lookup,
                          pb.LookupRequest(identifier="email:ben@acme.com", purpose="fax"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "unknown purpose" in message


@pytest.mark.parametrize("rpc", ["Forget", "Unsuppress", "ExportSubject", "GetForgetStatus"])
@pytest.mark.parametrize("token", [API, STEWARD])
def test_only_privacy_tokens_erase_unsuppress_and_export(world, rpc, token):
    request = {"Forget": ppb.ForgetRequest(identifier="email:ben@acme.com"),
               "Unsuppress": ppb.UnsuppressRequest(request_id="fr_x", reason="r"),
               "ExportSubject": ppb.ExportSubjectRequest(identifier="email:ben@acme.com"),
               "GetForgetStatus": ppb.GetForgetStatusRequest(request_id="fr_x")}[rpc]
    code, message = _code(getattr(world.a_privacy, rpc), request, token)
    assert code == grpc.StatusCode.PERMISSION_DENIED and "with role privacy" in message


def test_a_privacy_token_may_not_decide_reviews(world):
    code, _ = _code(pb_grpc.ProfileServiceStub(world.channels[0]).DecideReview,
                    pb.DecideReviewRequest(review_id="rv_x", decision=1), PRIVACY)
    assert code == grpc.StatusCode.PERMISSION_DENIED


def test_export_over_grpc_has_a_manifest_that_checks(world):
    chunks = world.b_privacy.ExportSubject(
        ppb.ExportSubjectRequest(identifier="email:ben@acme.com"), metadata=PRIVACY)
    data = b"".join(c.data for c in chunks)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        assert set(manifest["files"]) == {"profile.jsonl", "identities.jsonl", "records.jsonl",
                                          "events.jsonl", "consent.jsonl", "segments.jsonl",
                                          "access.jsonl"}
        for name, meta in manifest["files"].items():
            assert hashlib.sha256(zf.read(name)).hexdigest() == meta["sha256"]
        identities = [json.loads(x) for x in zf.read("identities.jsonl").splitlines()]
    assert {i["identifier"] for i in identities} >= {"email:ben@acme.com", "crm:hubspot:51"}
    assert all(i["rule"] for i in identities)  # each edge with the rule that made it


def test_forget_stops_answers_at_once_and_the_writer_completes_it(world):
    status = world.a_privacy.Forget(ppb.ForgetRequest(identifier="email:ben@acme.com",
                                                      reason="ticket 42"), metadata=PRIVACY)
    assert status.status == "pending" and status.suppressed == 3
    code, _ = _code(world.b_profiles.Lookup, pb.LookupRequest(identifier="crm:hubspot:51"))
    assert code == grpc.StatusCode.NOT_FOUND
    code, message = _code(world.b_privacy.Forget,
                          ppb.ForgetRequest(identifier="email:ben@acme.com"), PRIVACY)
    assert code == grpc.StatusCode.ALREADY_EXISTS and status.request_id in message
    code, _ = _code(world.b_privacy.Forget, ppb.ForgetRequest(identifier="email:no@one.io"),
                    PRIVACY)
    assert code == grpc.StatusCode.NOT_FOUND
    world.engine.segment_step()  # a writer's tick carries it out
    done = world.b_privacy.GetForgetStatus(ppb.GetForgetStatusRequest(
        request_id=status.request_id), metadata=PRIVACY)
    assert done.status == "completed" and done.erased["records"] == 1
    code, _ = _code(world.b_privacy.Unsuppress, ppb.UnsuppressRequest(
        request_id=status.request_id), PRIVACY)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    removed = world.b_privacy.Unsuppress(ppb.UnsuppressRequest(
        request_id=status.request_id, reason="restored by court order"), metadata=PRIVACY)
    assert removed.removed == 3
    time.sleep(0)  # nothing to wait for: the ledger is read on every call


def test_who_read_a_profile_is_in_its_export(world):
    steward = pb_grpc.ProfileServiceStub(world.channels[0])
    steward.Lookup(pb.LookupRequest(identifier="email:eva@acme.de"), metadata=STEWARD)
    world.b_profiles.Lookup(pb.LookupRequest(identifier="email:eva@acme.de"), metadata=API)
    data = b"".join(c.data for c in world.b_privacy.ExportSubject(
        ppb.ExportSubjectRequest(identifier="email:eva@acme.de"), metadata=PRIVACY))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        access = [json.loads(x) for x in zf.read("access.jsonl").splitlines()]
    reads = [(a["action"], a["actor"].split(":")[0]) for a in access
             if a["action"].startswith("read:")]
    assert reads == [("read:Lookup", "steward")]  # a channel's read is not logged
