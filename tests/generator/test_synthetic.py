"""The synthetic generator: deterministic, sized, realistic, and readable by the adapters."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import orjson
import phonenumbers
import pytest

from idgraph.core.errors import InvalidPayloadError
from idgraph.generator import JUNK_EMAIL, ZERO_IDFA, generate, write_source_files
from idgraph.generator.people import COUNTRIES, INTERNATIONAL_STYLES, NATIONAL_STYLES, PeopleFactory
from idgraph.resolver.adapters import adapt
from idgraph.resolver.adapters.files import iter_payloads
from idgraph.resolver.normalize import Normalizer

N = 6000
#: The sources the synthetic generator produces (every source kind but ``mandrill``).
SOURCES = ("salesforce", "hubspot", "sendgrid", "segment", "google_calendar")


@pytest.fixture(scope="module")
def norm() -> Normalizer:
    return Normalizer()


@pytest.fixture(scope="module")
def ds():
    return generate(N, seed=7)


@pytest.fixture(scope="module")
def adapted(ds, norm):
    """[(source, payload, records)] for every event, in order."""
    return [(src, payload, adapt(src, payload, norm)) for src, payload in ds.events]


def _dump(events) -> bytes:
    return orjson.dumps(events)


def test_same_seed_same_output_different_seed_differs():
    a = generate(1500, seed=5)
    b = generate(1500, seed=5)
    c = generate(1500, seed=6)
    assert _dump(a.events) == _dump(b.events)
    assert a.truth == b.truth
    assert [p.person_id for p in a.people] == [p.person_id for p in b.people]
    assert _dump(a.events) != _dump(c.events)


@pytest.mark.parametrize("n", [400, 3000])
def test_size_within_five_percent(n, norm):
    data = generate(n, seed=n)
    produced = sum(len(adapt(src, p, norm)) for src, p in data.events)
    assert abs(produced - n) <= 0.05 * n
    assert produced == data.n_records


def test_every_source_present_with_a_realistic_mix(ds):
    counts = ds.counts
    assert set(counts) == set(SOURCES)
    assert sum(counts.values()) == pytest.approx(N, rel=0.05)
    for source in SOURCES:
        assert counts[source] >= 0.04 * N, source


def test_adapters_accept_every_payload_and_reject_only_junk(ds, norm):
    rejected = 0
    for src, payload in ds.events:
        try:
            records = adapt(src, payload, norm)
        except InvalidPayloadError as exc:  # pragma: no cover - failure path
            pytest.fail(f"{src} payload refused: {exc}")
        for record in records:
            if record.rejected:
                rejected += 1
                text = orjson.dumps(payload).decode()
                assert ZERO_IDFA in text or JUNK_EMAIL in text, record.rejected
    assert rejected > 0  # the zero IDFA is rejected as a placeholder


def test_record_keys_match_truth_exactly(ds, adapted):
    keys = {r.record_key for _, _, records in adapted for r in records}
    assert keys == set(ds.truth)
    people = {p.person_id for p in ds.people}
    assert set(ds.truth.values()) <= people


def test_events_are_in_event_time_order(adapted):
    last = None
    for _, _, records in adapted:
        for r in records:
            if last is not None:
                assert r.event_time >= last
            last = r.event_time


def test_identifiers_never_cross_people(ds, adapted):
    """An email, phone or user ID seen on records of one person is never on another's."""
    owners: dict[str, set[str]] = defaultdict(set)
    for _, _, records in adapted:
        for r in records:
            pid = ds.truth[r.record_key]
            for ident in r.identifiers:
                owners[ident.key].add(pid)
    for key, pids in owners.items():
        if key.startswith(("email:", "phone:", "user:", "crm:")) and key != f"email:{JUNK_EMAIL}":
            assert len(pids) == 1, key


def test_phones_valid_and_every_format_parses_back(ds, adapted):
    factory = PeopleFactory(random.Random(1))
    factory.make_companies(30)
    people = list(ds.people)
    prior: list = []
    for i in range(3000):  # more numbers, all countries
        prior.append(factory.make_person(i, prior=prior))
    phones = [(p.country, ph) for p in people + prior for ph in p.phones]
    assert {c for c, _ in phones} == set(COUNTRIES)
    for country, ph in phones:
        num = phonenumbers.parse(ph.e164)
        assert phonenumbers.is_valid_number(num), ph.e164
        for style in INTERNATIONAL_STYLES + NATIONAL_STYLES:
            parsed = phonenumbers.parse(ph.format(style), country)
            assert (
                phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) == ph.e164
            )
    # every phone the adapters extracted is one of the owner's real numbers
    by_person = {p.person_id: {ph.e164 for ph in p.phones} for p in people}
    seen = 0
    for _, _, records in adapted:
        for r in records:
            for ident in r.identifiers:
                if ident.type == "phone":
                    seen += 1
                    assert ident.value in by_person[ds.truth[r.record_key]]
    assert seen > 100


def test_people_span_countries_and_all_regions(ds):
    countries = Counter(p.country for p in ds.people)
    assert len(countries) >= 8
    assert {p.region for p in ds.people} == {"eu", "uk", "us", "apac"}
    p = ds.people[0]
    assert 1 <= len(p.emails) <= 3 and len(p.phones) <= 2 and len(p.devices) <= 3


def test_crm_duplicates_across_salesforce_and_hubspot(ds, adapted):
    sources_of: dict[str, set[str]] = defaultdict(set)
    sf_records: Counter = Counter()
    for key, pid in ds.truth.items():
        src = key.split(":", 1)[0]
        sources_of[pid].add(src)
        if src == "salesforce":
            sf_records[pid] += 1
    both = [pid for pid, s in sources_of.items() if {"salesforce", "hubspot"} <= s]
    assert len(both) >= 0.2 * len(ds.people)
    assert any(n >= 2 for n in sf_records.values())  # Contact + duplicate Lead

    raw_emails: dict[str, set[str]] = defaultdict(set)  # normalised -> raw spellings
    for src, payload, records in adapted:
        if src == "salesforce":
            raw = payload.get("Email")
        elif src == "hubspot":
            raw = payload["properties"].get("email")
        else:
            continue
        if raw and records[0].attributes.get("email"):
            raw_emails[records[0].attributes["email"]].add(raw)
    variants = [raws for raws in raw_emails.values() if len(raws) > 1]
    assert variants
    flat = [r for raws in raw_emails.values() for r in raws]
    assert any(r != r.strip() for r in flat)  # whitespace
    assert any(r.strip() != r.strip().lower() for r in flat)  # case
    assert any("+" in r and "gmail" in r for r in flat)  # plus tag
    phones = [p.get("Phone") or p.get("MobilePhone") for s, p in ds.events if s == "salesforce"]
    assert any(x and x.startswith("(") for x in phones)  # US national
    assert any(x and x.startswith("0") for x in phones)  # trunk-prefixed national
    assert any(x and x.startswith("+") for x in phones)


def test_name_and_email_typos_exist(ds, adapted):
    emails_of = {p.person_id: {e for e in p.emails} for p in ds.people}
    typo_emails = 0
    names_off = 0
    for src, _, records in adapted:
        if src not in ("salesforce", "hubspot"):
            continue
        r = records[0]
        person = ds.person(ds.truth[r.record_key])
        email = r.attributes.get("email")
        if (
            email
            and email != JUNK_EMAIL
            and email not in {Normalizer().email(e) for e in emails_of[person.person_id]}
        ):
            typo_emails += 1
        given = r.attributes.get("given_name")
        if given and given not in (person.given_name, person.nickname):
            names_off += 1
    assert typo_emails >= 1
    assert names_off >= 5


def test_shared_household_devices(ds):
    users_by_device: dict[str, list[str]] = defaultdict(list)
    for src, p in ds.events:
        if src == "segment" and p["type"] == "identify":
            dev = (p["context"].get("device") or {}).get("id")
            if dev and p["userId"] not in users_by_device[dev]:
                users_by_device[dev].append(p["userId"])
    shared = {d: u for d, u in users_by_device.items() if len(u) > 1}
    assert shared
    for dev, users in shared.items():
        owners = [ds.truth[f"segment:{u}"] for u in users]
        assert len(set(owners)) == len(owners)
        households = {ds.person(o).household_id for o in owners}
        assert len(households) == 1 and None not in households
    # the shared device's anonymous record belongs to whoever identified on it first
    first_identify: dict[str, str] = {}
    for src, p in ds.events:
        if src == "segment" and p["type"] == "identify":
            first_identify.setdefault(p["anonymousId"], p["userId"])
    for anon, user in first_identify.items():
        key = f"segment:{anon}"
        if key in ds.truth:
            assert ds.truth[key] == ds.truth[f"segment:{user}"]


def test_junk_values_are_rare(ds):
    junk = sum(1 for _, p in ds.events if JUNK_EMAIL in orjson.dumps(p).decode())
    zero = sum(1 for s, p in ds.events if s == "segment" and ZERO_IDFA in orjson.dumps(p).decode())
    assert junk + zero > 0
    assert (junk + zero) < 0.02 * len(ds.events)


def test_calendar_meetings_and_rooms(ds):
    events = ds.payloads("google_calendar")
    assert events
    assert all(2 <= sum(1 for a in e["attendees"] if not a.get("resource")) <= 5 for e in events)
    assert any(a.get("resource") for e in events for a in e["attendees"])


def test_sendgrid_event_types(ds):
    kinds = Counter(p["event"] for p in ds.payloads("sendgrid"))
    assert {"processed", "delivered", "open", "click"} <= set(kinds)
    assert kinds["delivered"] > kinds["open"] > kinds["click"]


def test_nothing_is_sent_after_an_unsubscribe(ds, norm):
    unsubscribed_at: dict[str, int] = {}
    for p in ds.payloads("sendgrid"):  # in time order
        key = norm.email(p["email"])
        if key in unsubscribed_at:
            assert p["timestamp"] < unsubscribed_at[key] + 3 * 86400  # only the in-flight mail
            assert p["event"] != "processed"
        if p["event"] == "unsubscribe":
            unsubscribed_at[key] = p["timestamp"]
    assert unsubscribed_at


def test_files_round_trip(ds, tmp_path):
    paths = write_source_files(ds, tmp_path)
    assert set(paths) == set(SOURCES)
    for source, path in paths.items():
        back = list(iter_payloads(source, path))
        original = ds.payloads(source)
        if source == "google_calendar":  # grouped by organiser calendar
            key = orjson.dumps
            assert sorted(map(key, back)) == sorted(map(key, original))
        else:
            assert back == original, source
    sf_pages = orjson.loads(paths["salesforce"].read_bytes())
    assert all(len(p["records"]) <= 2000 for p in sf_pages)
    assert sf_pages[-1]["done"] and "nextRecordsUrl" not in sf_pages[-1]
    hs_pages = orjson.loads(paths["hubspot"].read_bytes())
    assert all(len(p["results"]) <= 100 for p in hs_pages)
    assert "paging" not in hs_pages[-1] and all("paging" in p for p in hs_pages[:-1])
    sg = orjson.loads(paths["sendgrid"].read_bytes())
    assert all(isinstance(b, list) and len(b) <= 1000 for b in sg)


def test_files_round_trip_gzip(tmp_path):
    data = generate(500, seed=3)
    paths = write_source_files(data, tmp_path, compress=True)
    for source, path in paths.items():
        assert path.suffix == ".gz"
        assert len(list(iter_payloads(source, path))) == len(data.payloads(source))
