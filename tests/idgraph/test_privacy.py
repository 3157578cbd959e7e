"""Privacy end to end in the engine: consent from events and statements into one ledger,
gating of answers and of what ingest stores, merges and splits of consent, forget with
suppression (replays stay out), unsuppress, and subject exports."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest
from helpers import record

from idgraph.core.errors import NotFoundError
from idgraph.engine import Engine
from idgraph.engine.consent import (
    ConsentRefusedError,
    ConsentRequestError,
    ConsentService,
    Statement,
)
from idgraph.engine.export_subject import export_subject
from idgraph.engine.forget import AlreadyForgottenError, request_forget, unsuppress
from idgraph.privacy.purposes import Purpose
from idgraph.settings import Settings

FIXTURES = Path(__file__).parents[1] / "resolver" / "fixtures"
SENDGRID = json.loads((FIXTURES / "sendgrid_batch.json").read_text())
SEGMENT = [json.loads(line) for line in (FIXTURES / "segment_events.jsonl").read_text().splitlines()
           if line.strip()]


@pytest.fixture()
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture()
def engine(settings):
    with Engine(settings) as e:
        yield e


def service(engine, rule="deny_wins") -> ConsentService:
    return ConsentService(engine.ledger, engine.queries, engine.backends.keys, rule)


JANE_SF = record("salesforce", "003A", "sf-1", 100, ["crm:salesforce:003A", "email:jane@acme.com"],
                 given_name="Jane", family_name="Doe", job_title="CTO", country="US")
JANE_SG = record("sendgrid", "jane@acme.com", "sg-1", 200, ["email:jane@acme.com"],
                 email="jane@acme.com")
OTHER = record("hubspot", "77", "hs-9", 150, ["crm:hubspot:77", "email:bo@other.io"],
               given_name="Bo", family_name="Li", country="US")


def test_consent_stated_by_events_enters_the_ledger_with_its_event(engine):
    engine.ingest_payloads([("sendgrid", e) for e in SENDGRID])
    key = engine.backends.keys.hash("sendgrid:example@test.com")
    entries = engine.ledger.consent_entries([key])
    assert [(e.purpose, e.status, e.method, e.source) for e in entries] == [
        ("email", "withdrawn", "event", "sendgrid"), ("email", "granted", "event", "sendgrid")]
    assert entries[0].event_id == "zmzJhfJgAfUSOW80yEbPyw=="
    assert entries[0].captured_at == 1513299572 and entries[0].purpose_version == 1
    # redelivering the batch appends nothing
    engine.ingest_payloads([("sendgrid", e) for e in SENDGRID])
    assert len(engine.ledger.consent_entries([key])) == 2
    assert [e.subject for e in service(engine).entries(
        engine.queries.lookup("email:example@test.com").profile)] == [
        "sendgrid:example@test.com"] * 2  # shown in plain text to who knows the profile
    profile = engine.queries.lookup("email:example@test.com").profile
    assert service(engine).view(profile).decisions["email"].state == "granted"  # resubscribed


def test_a_withdrawal_refuses_the_purpose_and_leaves_other_answers(engine):
    engine.ingest([JANE_SF, JANE_SG, OTHER])
    consent = service(engine)
    jane = engine.queries.lookup("email:jane@acme.com").profile
    assert consent.gate(jane, "email").profile_id == jane.profile_id  # us: opt-out region
    entry, resolved = consent.record("email:JANE@acme.com", Statement("email", "withdrawn"),
                                     "api:test")
    assert resolved.profile_id == jane.profile_id
    assert set(entry.covers) >= {"email:jane@acme.com", "salesforce:003A", "sendgrid:jane@acme.com"}
    with pytest.raises(ConsentRefusedError, match="'email' is withdrawn"):
        consent.gate(jane, "email")
    assert consent.gate(jane, "analytics").consent == {"email": False}
    bo = engine.queries.lookup("email:bo@other.io").profile
    assert consent.gate(bo, "email").profile_id == bo.profile_id  # nobody else is touched
    with pytest.raises(ConsentRequestError, match=r"unknown purpose \(known: ads, analytics, email"):
        consent.gate(jane, "fax")


def test_opt_in_regions_need_a_grant(engine):
    eu = record("hubspot", "9", "h-eu", 100, ["crm:hubspot:9", "email:eu@x.de"],
                given_name="Ute", family_name="Kern", country="DE")
    engine.ingest([eu])
    consent = service(engine)
    profile = engine.queries.lookup("email:eu@x.de").profile
    assert profile.region == "eu"
    with pytest.raises(ConsentRefusedError, match="no consent for purpose 'ads' was given"):
        consent.gate(profile, "ads")
    consent.record("email:eu@x.de", Statement("ads", "granted"), "api:test")
    assert consent.gate(profile, "ads").consent == {"ads": True}


def test_withheld_data_leaves_answers_and_ingest_stops_storing_it(engine):
    engine.ledger.define_purposes([Purpose("recruiting", attributes=("job_title",),
                                           event_types=("Job Viewed",))], "test", 1.0)
    engine.ingest([JANE_SF])
    consent = service(engine)
    consent.record("crm:salesforce:003A", Statement("recruiting", "withdrawn"), "api:test")
    jane = engine.queries.lookup("email:jane@acme.com").profile
    shown = consent.gate(jane, None)
    assert "job_title" in jane.attributes and "job_title" not in shown.attributes
    assert shown.attributes["given_name"].value == "Jane"
    later = record("salesforce", "003A", "sf-2", 300, ["crm:salesforce:003A"],
                   job_title="VP Engineering", given_name="Jane")
    viewed = record("salesforce", "003A", "sf-3", 310, ["crm:salesforce:003A"])
    viewed.event_name = "Job Viewed"
    engine.ingest([later, viewed])
    stored = engine.store.get_records(["salesforce:003A"])["salesforce:003A"]
    assert stored.attributes["job_title"][0] == "CTO"  # the new title was not stored
    assert all(e.type != "Job Viewed" for e in stored.events)
    assert stored.attributes["given_name"][1] == 300  # the rest of the event was


@pytest.mark.parametrize(("rule", "expected"), [("deny_wins", "withdrawn"),
                                                ("latest_wins", "granted")])
def test_merge_rule(engine, rule, expected):
    withdrew = record("sendgrid", "jane@acme.com", "sg-1", 100, ["email:jane@acme.com"],
                      consent={"email": False})
    granted = record("hubspot", "51", "hs-1", 200, ["crm:hubspot:51", "email:jane@gmail.com"],
                     consent={"email": True}, given_name="Jane", family_name="Doe")
    engine.ingest([withdrew, granted])
    join = record("salesforce", "003A", "sf-1", 300,
                  ["crm:salesforce:003A", "email:jane@acme.com", "email:jane@gmail.com"],
                  given_name="Jane", family_name="Doe")
    engine.ingest([join])
    jane = engine.queries.lookup("email:jane@gmail.com").profile
    assert len(jane.record_keys) == 3
    consent = service(engine, rule)
    assert consent.view(jane).decisions["email"].state == expected
    # a grant given after the merge covers every record of the profile
    consent.record("email:jane@gmail.com", Statement("email", "granted", captured_at=400.0),
                   "api:test")
    assert consent.view(jane).decisions["email"].state == "granted"


def test_a_split_leaves_each_side_its_own_entries(engine):
    withdrew = record("sendgrid", "jane@acme.com", "sg-1", 100, ["email:jane@acme.com"],
                      consent={"email": False})
    crm = record("hubspot", "51", "hs-1", 200, ["crm:hubspot:51", "email:jane@acme.com"],
                 given_name="Jane", family_name="Doe")
    engine.ingest([withdrew, crm])
    consent = service(engine)
    assert consent.view(engine.queries.lookup("crm:hubspot:51").profile
                        ).decisions["email"].state == "withdrawn"
    engine.unlink("hubspot:51", "email:jane@acme.com")
    crm_side = engine.queries.lookup("crm:hubspot:51").profile
    assert "sendgrid:jane@acme.com" not in crm_side.record_keys
    assert consent.view(crm_side).decisions["email"].state == "unknown"
    mail_side = engine.queries.lookup("email:jane@acme.com").profile
    assert consent.view(mail_side).decisions["email"].state == "withdrawn"


def test_forget_erases_and_replays_stay_out(engine, settings):
    payloads = [("sendgrid", e) for e in SENDGRID] + [("segment", e) for e in SEGMENT]
    engine.ingest_payloads(payloads)
    bo = engine.ingest([OTHER])
    assert bo.events_applied == 1
    jane = engine.queries.lookup("email:jane.obrien@gmail.com").profile
    request = engine.forget(identifier="email:Jane.OBrien@gmail.com", reason="art. 17")
    assert request.status == "completed"
    assert request.erased["records"] == len(jane.record_keys)
    with pytest.raises(NotFoundError):
        engine.queries.lookup("email:jane.obrien@gmail.com")
    assert engine.store.get_profile(jane.profile_id) is None
    assert engine.ledger.consent_entries(
        [engine.backends.keys.hash(k) for k in jane.record_keys]) == []
    # the whole input again: nothing of hers comes back, and every event of hers is counted
    replay = engine.ingest_payloads(payloads)
    theirs = [p for p in payloads if _names_any(p[1], jane)]
    assert replay.suppressed_events == len(theirs) > 0
    with pytest.raises(NotFoundError):
        engine.queries.lookup("email:jane.obrien@gmail.com")
    assert engine.ledger.suppressed_counts() == {"forget": len(theirs)}
    assert engine.queries.lookup("email:bo@other.io").profile  # others untouched
    # a second forget of her, and a forget of nobody
    with pytest.raises(AlreadyForgottenError, match=request.request_id):
        engine.forget(identifier="email:jane.obrien@gmail.com")
    with pytest.raises(NotFoundError):
        engine.forget(identifier="email:nobody@nowhere.io")
    assert [r.request_id for r in engine.ledger.open_forget_requests()] == []


def _names_any(payload: dict, profile) -> bool:
    text = json.dumps(payload).lower()
    return any(i.identifier.split(":", 1)[1].lower() in text for i in profile.identifiers
               if i.type in ("email", "cookie", "user:segment"))


def test_no_plain_identifier_of_a_forgotten_person_remains_in_any_file(engine, settings):
    engine.ingest([JANE_SF, JANE_SG, OTHER])
    service(engine).record("email:jane@acme.com", Statement("email", "withdrawn"), "api:t")
    engine.forget(identifier="email:jane@acme.com")
    engine.close()
    found = {}
    for path in settings.data_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes().lower()
            for needle in (b"jane@acme.com", b"003a", b"\"cto\""):
                if needle in data:
                    found.setdefault(path.name, []).append(needle.decode())
    assert found == {}
    with Engine(settings) as again:  # the graph replays without her, others intact
        assert again.queries.lookup("email:bo@other.io").profile.attributes[
            "given_name"].value == "Bo"
        with pytest.raises(NotFoundError):
            again.queries.lookup("email:jane@acme.com")


def test_a_request_made_elsewhere_stops_answers_at_once_and_the_writer_carries_it_out(
        engine, settings):
    engine.ingest([JANE_SF, JANE_SG])
    consent = service(engine)
    jane = engine.queries.lookup("email:jane@acme.com").profile
    request = request_forget(engine.ledger, engine.backends.keys, engine.queries,
                             identifier="crm:salesforce:003A", actor="privacy:t")
    assert request.status == "pending" and request.suppressed == 4  # 2 records, 1 crm, 1 email
    with pytest.raises(NotFoundError):
        consent.gate(jane, None)
    engine.ingest([OTHER])  # the next writer turn carries it out
    done = engine.ledger.forget_request(request.request_id)
    assert done.status == "completed" and done.erased["records"] == 2
    assert engine.store.get_profile(jane.profile_id) is None


def test_unsuppress_lets_the_person_come_back(engine):
    engine.ingest([JANE_SF])
    request = engine.forget(identifier="email:jane@acme.com")
    assert engine.ingest([JANE_SF]).suppressed_events == 1
    with pytest.raises(ValueError if False else Exception, match="reason is required"):
        unsuppress(engine.ledger, request.request_id, "", "privacy:t")
    assert unsuppress(engine.ledger, request.request_id, "court order", "privacy:t") == 3
    again = engine.ingest([record("salesforce", "003A", "sf-new", 500,
                                  ["crm:salesforce:003A", "email:jane@acme.com"])])
    assert again.events_applied == 1
    assert [a.action for a in engine.ledger.audit_entries()][-1] == "unsuppress"


def test_export_holds_everything_with_checkable_hashes(engine):
    engine.ingest_payloads([("segment", e) for e in SEGMENT])
    consent = service(engine)
    consent.record("email:jane.obrien@gmail.com", Statement("ads", "denied"), "api:t")
    profile, data = export_subject(consent, identifier="email:JANE.OBRIEN@gmail.com",
                                   requested_by="privacy:t")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        assert manifest["subject"]["resolved_profile_id"] == profile.profile_id
        for name, meta in manifest["files"].items():
            body = zf.read(name)
            assert hashlib.sha256(body).hexdigest() == meta["sha256"]
            assert body.count(b"\n") == meta["lines"]
        events = [json.loads(x) for x in zf.read("events.jsonl").splitlines()]
        consent_rows = [json.loads(x) for x in zf.read("consent.jsonl").splitlines()]
    assert len(events) == profile.event_count
    # the Segment consent context granted ads (2024); the statement today denies it
    assert [c["status"] for c in consent_rows if c["purpose"] == "ads"] == ["granted", "denied"]
    assert manifest["files"]["identities.jsonl"]["lines"] > 0
    assert engine.ledger.audit_entries()[-1].action == "export_subject"


def test_a_failing_erasure_is_recorded_and_does_not_stop_ingest(engine, monkeypatch):
    engine.ingest([JANE_SF, JANE_SG])
    request = request_forget(engine.ledger, engine.backends.keys, engine.queries,
                             identifier="email:jane@acme.com", actor="privacy:t")

    def broken(_pid):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(engine.forgets, "erase", broken)
    assert engine.ingest([OTHER]).events_applied == 1  # the batch goes through
    failed = engine.ledger.forget_request(request.request_id)
    assert (failed.status, failed.error) == ("failed", "RuntimeError")
    assert engine.ingest([JANE_SF]).suppressed_events == 1  # she stays out meanwhile
    monkeypatch.undo()
    again = engine.forget(profile_id=failed.profile_ids[0], actor="privacy:t")
    assert again.status == "completed" and again.erased["records"] == 2
