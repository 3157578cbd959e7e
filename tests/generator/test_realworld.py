"""The real-world generator: deterministic, every trap present (in the tally and in the
payloads themselves), every payload readable by the adapters, truth for every record."""

from __future__ import annotations

import stat
import time
from collections import defaultdict

import orjson
import pytest

from idgraph.core.errors import InvalidPayloadError
from idgraph.generator.realworld import (
    REALWORLD_SOURCES,
    TRAPS,
    generate_realworld,
    write_realworld,
)
from idgraph.generator.realworld.ledger import mandrill_record
from idgraph.resolver.adapters import ADAPTERS, adapt
from idgraph.resolver.model import SOURCES
from idgraph.resolver.normalize import Normalizer

N_PEOPLE = 2000
FREE_MAIL = ("gmail.com", "yahoo.", "hotmail.", "outlook.", "icloud.com", "gmx.", "web.de")
ROLE_LOCALS = frozenset(
    ("info", "sales", "support", "hello", "team", "office", "contact", "kontakt", "vertrieb",
     "bureau", "ventas", "contacto", "verkoop", "enquiries")
)


@pytest.fixture(scope="module")
def norm() -> Normalizer:
    return Normalizer()


@pytest.fixture(scope="module")
def generated():
    t = time.perf_counter()
    ds = generate_realworld(N_PEOPLE, seed=7)
    return ds, time.perf_counter() - t


@pytest.fixture(scope="module")
def ds(generated):
    return generated[0]


def _records(source: str, payload: dict, norm: Normalizer) -> list[tuple[str, str, object]]:
    """(record key, event ID, IdentityRecord or None) as the engine keys them."""
    if source in ADAPTERS:
        return [(f"{source}:{r.source_record_id}", r.event_id, r) for r in adapt(source, payload, norm)]
    assert source == "mandrill"  # its adapter is not there yet: the documented rule
    record_id, event_id = mandrill_record(payload, norm)
    return [(f"mandrill:{record_id}", event_id, None)]


@pytest.fixture(scope="module")
def adapted(ds, norm):
    """[(source, payload, [(record key, event ID, record)])] for every event, in order."""
    return [(src, payload, _records(src, payload, norm)) for src, payload in ds.events]


@pytest.fixture(scope="module")
def entity_of(ds, adapted):
    """Per event: the entity of each of its records (from the event truth, in order)."""
    it = iter(ds.event_truth)
    out = []
    for _src, _payload, recs in adapted:
        out.append([next(it)[3] for _ in recs])
    return out


def _dump(ds) -> bytes:
    return orjson.dumps([ds.events, ds.event_truth, ds.record_truth, ds.entities, ds.traps])


def test_same_seed_same_output_different_seed_differs():
    a = generate_realworld(150, seed=3)
    b = generate_realworld(150, seed=3)
    c = generate_realworld(150, seed=4)
    assert _dump(a) == _dump(b)
    assert _dump(a) != _dump(c)


def test_generation_is_fast_and_realistically_sized(generated):
    ds, seconds = generated
    assert seconds < 30
    per_person = defaultdict(int)
    sources = defaultdict(set)
    for source, _, _, entity in ds.event_truth:
        if entity.startswith("person-"):
            per_person[entity] += 1
            sources[entity].add(source)
    assert 8 <= len(ds.event_truth) / N_PEOPLE <= 15
    in_two_to_four = sum(1 for s in sources.values() if 2 <= len(s) <= 4)
    assert in_two_to_four > 0.5 * len(sources)
    assert set(ds.counts) == set(REALWORLD_SOURCES)
    assert all(n > 0 for n in ds.counts.values()), ds.counts


def test_every_trap_is_counted(ds):
    assert list(ds.traps) == list(TRAPS)
    missing = [name for name, n in ds.traps.items() if n <= 0]
    assert not missing, missing


def test_adapters_accept_every_payload_and_reject_only_zero_ad_ids(ds, norm):
    rejected = set()
    for src, payload in ds.events:
        if src not in ADAPTERS:
            continue
        try:
            records = adapt(src, payload, norm)
        except InvalidPayloadError as exc:  # pragma: no cover - failure path
            pytest.fail(f"{src} payload refused: {exc}")
        for record in records:
            rejected.update(r.reason for r in record.rejected)
    assert all("all-zero" in reason for reason in rejected), rejected


def test_event_truth_covers_every_record(ds, adapted):
    produced = [(src, eid, key) for src, _, recs in adapted for key, eid, _ in recs]
    assert produced == [row[:3] for row in ds.event_truth]
    assert {key for _, _, key in produced} == set(ds.record_truth)
    assert set(ds.record_truth.values()) <= set(ds.entities)
    assert {e for *_, e in ds.event_truth} <= set(ds.entities)
    assert set(ds.entities.values()) == {"person", "shared_mailbox", "room"}
    times = []
    for src, payload, recs in adapted:
        if recs and recs[0][2] is not None:
            times.append(recs[0][2].event_time)
    assert times == sorted(times)


def test_crm_records_are_people_even_with_a_shared_email(ds, adapted, entity_of):
    kinds = ds.entities
    for (src, _, _), entities in zip(adapted, entity_of, strict=True):
        if src in ("salesforce", "hubspot", "segment"):
            assert all(kinds[e] == "person" for e in entities)


# ---- the traps, found in the payloads themselves --------------------------------------------


def _crm_identifiers(adapted, entity_of, typ: str) -> dict[str, set[str]]:
    """Identifier value of ``typ`` on CRM records -> the people whose records carry it."""
    out: dict[str, set[str]] = defaultdict(set)
    for (src, _, recs), entities in zip(adapted, entity_of, strict=True):
        if src not in ("salesforce", "hubspot"):
            continue
        for (_, _, record), entity in zip(recs, entities, strict=True):
            for ident in record.identifiers:
                if ident.type == typ:
                    out[ident.value].add(entity)
    return out


def test_shared_phone_and_role_mailbox_on_crm_records_of_different_people(ds, adapted, entity_of):
    phones = _crm_identifiers(adapted, entity_of, "phone")
    assert any(len(people) >= 2 for people in phones.values())
    emails = _crm_identifiers(adapted, entity_of, "email")
    mailbox_keys = {k for k, e in ds.record_truth.items() if ds.entities[e] == "shared_mailbox"}
    shared = {
        email
        for email, people in emails.items()
        if len(people) >= 2 and f"sendgrid:{email}" in mailbox_keys
    }
    # a role mailbox: the Email of CRM records of >= 2 people, and its mail is its own
    assert any(e.split("@")[0] in ROLE_LOCALS for e in shared), shared


def test_same_full_name_at_one_company_are_different_people(adapted, entity_of):
    seen: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for (src, _, recs), entities in zip(adapted, entity_of, strict=True):
        if src not in ("salesforce", "hubspot", "google_calendar"):
            continue
        for (_, _, record), entity in zip(recs, entities, strict=True):
            a = record.attributes
            email = a.get("email", "")
            domain = email.rpartition("@")[2]
            named = a.get("given_name") and a.get("family_name")
            if named and domain and not domain.startswith(FREE_MAIL):
                seen[(a["given_name"], a["family_name"], domain)].add(entity)
    assert any(len(people) >= 2 for people in seen.values())


def test_non_gmail_addresses_one_dot_apart_are_different_people(ds, adapted, entity_of):
    owner: dict[str, set[str]] = defaultdict(set)
    for (src, _, recs), entities in zip(adapted, entity_of, strict=True):
        for (key, _, _), entity in zip(recs, entities, strict=True):
            if src in ("sendgrid", "google_calendar", "mandrill") and "@" in key:
                owner[key.split(":", 1)[1]].add(entity)
    by_dots: dict[str, set[str]] = defaultdict(set)
    for email, entities in owner.items():
        local, _, domain = email.rpartition("@")
        if domain != "gmail.com" and len(entities) == 1:
            by_dots[f"{local.replace('.', '')}@{domain}"].add(email)
    pairs = [emails for emails in by_dots.values() if len(emails) >= 2]
    assert any(len({next(iter(owner[e])) for e in emails}) >= 2 for emails in pairs)

def test_gmail_dots_and_tags_are_one_mailbox(ds, norm):
    written = [p["Email"] for p in ds.payloads("salesforce") if p["Email"]]
    written += [p["properties"]["email"] for p in ds.payloads("hubspot")]
    variants = []  # Gmail addresses written with other dots or a +tag (one mailbox)
    for raw in written:
        key = norm.email(raw)
        local = raw.strip().lower().split("@")[0]
        if key.endswith("@gmail.com") and local != key.split("@")[0]:
            variants.append(local)
    assert any("+" in local for local in variants)
    assert any("+" not in local and "." in local for local in variants)


def test_mandrill_replies_answer_sendgrid_messages(ds, adapted, entity_of):
    sent: dict[str, tuple[str, str]] = {}  # smtp-id -> (recipient, entity)
    for (src, payload, recs), entities in zip(adapted, entity_of, strict=True):
        if src == "sendgrid":
            sent[payload["smtp-id"]] = (recs[0][0].split(":", 1)[1], entities[0])
    same = other = 0
    for (src, payload, recs), entities in zip(adapted, entity_of, strict=True):
        if src != "mandrill":
            continue
        in_reply_to = payload["msg"]["headers"]["In-Reply-To"]
        assert in_reply_to in sent
        recipient, recipient_entity = sent[in_reply_to]
        sender = recs[0][0].split(":", 1)[1]
        if sender == recipient:
            same += 1
            assert entities[0] == recipient_entity
        elif entities[0] == recipient_entity:
            other += 1  # the recipient's other address
    assert same > 0 and other > 0


def test_shared_devices_and_links(ds, adapted, entity_of):
    users_by_cookie: dict[str, set[str]] = defaultdict(set)
    segment_users: dict[str, str] = {}
    for (src, payload, _), entities in zip(adapted, entity_of, strict=True):
        if src == "segment" and payload["type"] == "identify":
            users_by_cookie[payload["anonymousId"]].add(payload["userId"])
            segment_users[payload["userId"]] = entities[0]
    assert any(len(users) >= 2 for users in users_by_cookie.values())
    # a SendGrid custom argument names the app user: the same person as the Segment user
    linked = 0
    for (src, _, recs), entities in zip(adapted, entity_of, strict=True):
        if src == "sendgrid" and recs[0][2] is not None:
            for ident in recs[0][2].identifiers:
                if ident.type == "user:segment" and ident.value in segment_users:
                    assert segment_users[ident.value] == entities[0]
                    linked += 1
    assert linked > 0
    # a converted Lead names the Contact it became, of the same person
    contacts = {}
    leads = []
    for (src, payload, _), entities in zip(adapted, entity_of, strict=True):
        if src == "salesforce":
            if payload["attributes"]["type"] == "Contact":
                contacts[payload["Id"]] = entities[0]
            elif payload["IsConverted"]:
                leads.append((payload["ConvertedContactId"], entities[0]))
    assert leads and all(contacts[cid] == entity for cid, entity in leads)
    # machine opens, rooms as their own entities
    assert any(p.get("sg_machine_open") is True for p in ds.payloads("sendgrid"))
    assert "room" in {ds.entities[e] for e in ds.record_truth.values()}
    assert any(
        a.get("resource") is True for p in ds.payloads("google_calendar") for a in p["attendees"]
    )


def test_written_files_are_owner_only_and_read_back(tmp_path, norm):
    from idgraph.resolver.adapters import files

    small = generate_realworld(120, seed=11)
    paths = write_realworld(small, tmp_path / "out")
    for path in paths.values():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for source in REALWORLD_SOURCES:
        if source not in SOURCES:  # pragma: no cover - no reader for it yet
            continue
        read = list(files.iter_payloads(source, paths[source]))
        if source == "google_calendar":  # grouped by the organiser's calendar
            assert sorted(map(orjson.dumps, read)) == sorted(map(orjson.dumps, small.payloads(source)))
        else:
            assert read == small.payloads(source)
    truth_lines = paths["truth_events"].read_text().splitlines()
    assert truth_lines[0] == "source,event_id,record_key,entity_id"
    assert len(truth_lines) == len(small.event_truth) + 1
    assert len(paths["truth_records"].read_text().splitlines()) == len(small.record_truth) + 1
    assert len(paths["entities"].read_text().splitlines()) == len(small.entities) + 1
    assert orjson.loads(paths["traps"].read_bytes()) == small.traps
