"""Access control on a real server, as ``idgraph serve`` builds it (:func:`open_access`):
the marketer's masked view, rate limits, request size limits, the audit log of reads,
changes and refusals, and mutual TLS with a client certificate as the principal."""

from __future__ import annotations

import datetime
import time
from pathlib import Path

import grpc
import pytest
from helpers import record

from idgraph.auth.audit_check import read_entries, verify
from idgraph.auth.settings import CertificatePrincipal
from idgraph.devservers.tls import make_certificates
from idgraph.engine import Engine
from idgraph.proto.idgraph.v1 import profiles_pb2 as pb
from idgraph.proto.idgraph.v1 import profiles_pb2_grpc as pb_grpc
from idgraph.proto.idgraph.v1 import segments_pb2 as spb
from idgraph.proto.idgraph.v1 import segments_pb2_grpc as spb_grpc
from idgraph.service.client import ProfileClient
from idgraph.service.server import create_server
from idgraph.service.settings import GrpcSettings
from idgraph.serving import audit_dir, audit_public_key, open_key_admin, open_served
from idgraph.settings import Settings

JANE = "email:jane.doe@acme.com"
PEOPLE = [record("hubspot", "501", "e-1", 100, ["crm:hubspot:501", JANE,
                                                "phone:+14155550123"],
                 given_name="Jane", family_name="Doe", company="Acme", country="US")]


def _serve(settings: Settings, grpc_settings: GrpcSettings, closers: list,
           address: str = "127.0.0.1:0") -> int:
    settings = settings.model_copy(update={"grpc": grpc_settings})
    served = open_served(settings)
    closers.append(served.close)
    server, port = create_server(served.queries, grpc_settings, address,
                                 **served.server_kwargs())
    server.start()
    closers.append(lambda: server.stop(0).wait())
    return port


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    settings = Settings(data_dir=tmp_path_factory.mktemp("access") / "data")
    engine = Engine(settings)
    engine.ingest(PEOPLE)
    admin, store = open_key_admin(settings, None)
    keys = {name: admin.create(name, roles, **kw).text for name, roles, kw in [
        ("activation", ["activation"], {}),
        ("marketer", ["marketer"], {}),
        ("marketer unmasked", ["marketer"], {"unmask": True}),
        ("slow", ["activation"], {"rate_per_second": 1.0}),
        ("audited", ["activation"], {}),  # read once: its batch keeps the request ID
    ]}
    store.close()
    closers: list = []
    port = _serve(settings, GrpcSettings(), closers)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield settings, engine, keys, channel
    channel.close()
    for close in reversed(closers):
        close()
    engine.close()


def _md(key: str) -> list:
    return [("authorization", f"Bearer {key}")]


def test_a_marketer_reads_profiles_masked_unless_granted(world):
    _, _, keys, channel = world
    lookup = pb_grpc.ProfileServiceStub(channel).Lookup
    full = lookup(pb.LookupRequest(identifier=JANE), metadata=_md(keys["activation"]))
    masked = lookup(pb.LookupRequest(identifier=JANE), metadata=_md(keys["marketer"]))
    unmasked = lookup(pb.LookupRequest(identifier=JANE),
                      metadata=_md(keys["marketer unmasked"]))
    assert unmasked == full
    assert {i.identifier for i in full.profile.identifiers} >= {JANE, "phone:+14155550123"}
    assert {i.identifier for i in masked.profile.identifiers} >= {
        "email:j***@acme.com", "phone:***23", "crm:***"}
    assert masked.matched_identifier == "email:j***@acme.com"
    assert masked.profile.attributes["given_name"].value == "***"
    assert masked.profile.attributes["company"].value == "Acme"  # not personal
    text = str(masked)
    assert "jane.doe" not in text and "Jane" not in text and "5550123" not in text
    assert "hubspot:501" not in text  # record keys masked too
    assert masked.profile.profile_id == full.profile.profile_id


def test_a_key_over_its_rate_is_told_to_back_off(world):
    _, _, keys, channel = world
    lookup = pb_grpc.ProfileServiceStub(channel).Lookup
    codes = []
    for _ in range(6):  # 1/s with a 2 s burst: two pass
        try:
            lookup(pb.LookupRequest(identifier=JANE), metadata=_md(keys["slow"]))
            codes.append(grpc.StatusCode.OK)
        except grpc.RpcError as exc:
            codes.append(exc.code())
            assert "rate limit" in exc.details()
    assert codes.count(grpc.StatusCode.OK) == 2
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 4
    # another key is not slowed by it
    lookup(pb.LookupRequest(identifier=JANE), metadata=_md(keys["activation"]))


def test_an_oversized_request_is_refused(world):
    _, _, keys, channel = world
    with pytest.raises(grpc.RpcError) as err:
        pb_grpc.ProfileServiceStub(channel).Lookup(
            pb.LookupRequest(identifier="email:" + "x" * (2 << 20) + "@a.com"),
            metadata=_md(keys["activation"]))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_reads_changes_and_refusals_reach_the_audit_log(world):
    settings, engine, keys, channel = world
    pid = engine.queries.lookup(JANE).profile.profile_id
    pb_grpc.ProfileServiceStub(channel).Lookup(
        pb.LookupRequest(identifier=JANE),
        metadata=[*_md(keys["audited"]), ("x-request-id", "req-42")])
    segments = spb_grpc.SegmentServiceStub(channel)
    segments.DefineSegment(spb.DefineSegmentRequest(name="Acme", definition='company = "Acme"'),
                           metadata=_md(keys["marketer"]))
    with pytest.raises(grpc.RpcError):
        segments.DefineSegment(spb.DefineSegmentRequest(name="X", definition="true"),
                               metadata=_md(keys["activation"]))
    with pytest.raises(grpc.RpcError):
        segments.ListSegments(spb.ListSegmentsRequest(), metadata=_md("idg_made_up"))
    settings_dir = audit_dir(settings)
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=5)
    wanted = {"profile.read", "segment.updated", "auth.denied", "auth.failed"}
    while True:  # the server writes its batch every auth.audit_flush_seconds (1 s)
        entries = read_entries(settings_dir, limit=1000)
        if wanted <= {e.action for e in entries} or datetime.datetime.now() > deadline:
            break
        time.sleep(0.1)
    by_action = {e.action: e for e in entries}
    assert wanted <= set(by_action)
    reads = [e for e in entries if e.action == "profile.read"
             and e.actor == f"key:{keys['audited'].split('_')[1]}"]
    assert reads and all(r.resources and r.resources[0].startswith("profile:") for r in reads)
    assert any(r.request_id == "req-42" and r.region == "us" for r in reads)
    log_text = (settings_dir / "audit.jsonl").read_text()
    assert pid not in log_text and "jane" not in log_text  # people only as keyed hashes
    assert by_action["segment.updated"].resource == "segment:Acme"
    assert by_action["segment.updated"].outcome == "ok"
    assert by_action["auth.denied"].outcome == "denied"
    assert by_action["auth.failed"].outcome == "denied"
    assert verify(settings_dir, audit_public_key(settings)).ok


# --- mutual TLS --------------------------------------------------------------------------


def _certificates(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1, client certificates it signed (``crm``,
    ``stranger``) and one another CA signed with the same name (``forged``)."""
    certs = make_certificates(directory / "ours", client_name="crm-sync.internal",
                              other_clients=["stranger.internal"])
    forged = make_certificates(directory / "theirs", client_name="crm-sync.internal")
    stranger = certs.other_clients["stranger.internal"]
    return {"ca.crt": certs.ca_file, "server.crt": certs.server_cert_file,
            "server.key": certs.server_key_file, "crm.crt": certs.client_cert_file,
            "crm.key": certs.client_key_file, "stranger.crt": stranger[0],
            "stranger.key": stranger[1], "forged.crt": forged.client_cert_file,
            "forged.key": forged.client_key_file}


def _tls_channel(port: int, certs: dict[str, Path], client: str | None) -> grpc.Channel:
    creds = grpc.ssl_channel_credentials(
        root_certificates=certs["ca.crt"].read_bytes(),
        private_key=certs[f"{client}.key"].read_bytes() if client else None,
        certificate_chain=certs[f"{client}.crt"].read_bytes() if client else None)
    return grpc.secure_channel(f"127.0.0.1:{port}", creds,
                               options=[("grpc.ssl_target_name_override", "localhost")])


def test_a_client_certificate_is_a_principal(world, tmp_path):
    settings, _, keys, _ = world
    certs = _certificates(tmp_path)
    settings = settings.model_copy(update={"auth": settings.auth.model_copy(update={
        "certificate_principals": {
            "crm-sync.internal": CertificatePrincipal(roles=["activation"])}})})
    closers: list = []
    port = _serve(settings, GrpcSettings(tls_cert_file=certs["server.crt"],
                                         tls_key_file=certs["server.key"],
                                         tls_client_ca_file=certs["ca.crt"]), closers)
    try:
        def lookup(client, metadata=()):
            with _tls_channel(port, certs, client) as channel:
                return pb_grpc.ProfileServiceStub(channel).Lookup(
                    pb.LookupRequest(identifier=JANE), metadata=list(metadata), timeout=10)

        assert lookup("crm").profile.record_count == 1  # the certificate alone
        with pytest.raises(grpc.RpcError) as err:  # verified, but granted nothing
            lookup("stranger")
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        for client in ("forged", None):  # another CA's certificate, or none: no handshake
            with pytest.raises(grpc.RpcError) as err:
                lookup(client, _md(keys["activation"]))
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE, client
        # a key sent over the certificate's connection takes precedence
        with pytest.raises(grpc.RpcError) as err:
            lookup("crm", _md("idg_not_a_key"))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        masked = lookup("stranger", _md(keys["marketer"]))
        assert masked.matched_identifier == "email:j***@acme.com"
        # the project's client, as `idgraph lookup --server` uses it with grpc.tls_* set
        with ProfileClient(f"localhost:{port}", tls_ca=certs["ca.crt"],
                           client_cert=certs["crm.crt"], client_key=certs["crm.key"]) as client:
            assert client.lookup(JANE).profile.record_count == 1
    finally:
        for close in reversed(closers):
            close()


def test_the_settings_name_every_tls_mistake(world, tmp_path):
    settings, *_ = world
    closers: list = []
    with pytest.raises(Exception, match="tls_client_ca_file needs grpc.tls_cert_file"):
        _serve(settings, GrpcSettings(tls_client_ca_file=tmp_path / "ca.crt"), closers)
    for close in reversed(closers):
        close()
