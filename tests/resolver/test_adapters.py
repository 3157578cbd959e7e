"""Source adapters: realistic payloads in, canonical identity records out."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from idgraph.core.errors import InvalidPayloadError
from idgraph.resolver.adapters import ADAPTERS, adapt
from idgraph.resolver.model import SOURCES, Identifier, IdentityRecord, RejectedIdentifier
from idgraph.resolver.normalize import Normalizer

FIXTURES = Path(__file__).parent / "fixtures"


def load(name: str):
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def norm() -> Normalizer:
    return Normalizer()


@pytest.fixture()
def sf_records() -> list[dict]:
    return load("salesforce_query.json")["records"]


@pytest.fixture()
def hs_contacts() -> list[dict]:
    return load("hubspot_page.json")["results"]


@pytest.fixture()
def sg_events() -> list[dict]:
    return load("sendgrid_batch.json")


@pytest.fixture()
def seg_events() -> list[dict]:
    lines = (FIXTURES / "segment_events.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture()
def cal_events() -> list[dict]:
    return load("google_calendar_events.json")["items"]


def one(source: str, payload: dict, norm: Normalizer) -> IdentityRecord:
    records = adapt(source, payload, norm)
    assert len(records) == 1
    return records[0]


def keys(record: IdentityRecord) -> list[str]:
    return [i.key for i in record.identifiers]


def expect_error(source: str, payload, field: str, problem: str, norm: Normalizer) -> None:
    with pytest.raises(InvalidPayloadError) as info:
        adapt(source, payload, norm)
    err = info.value
    assert (err.source, err.field) == (source, field)
    assert problem in err.problem
    assert source in str(err) and repr(field) in str(err)


# ----------------------------------------------------------------------------- dispatch


def test_adapters_cover_every_source() -> None:
    assert tuple(ADAPTERS) == SOURCES


def test_unknown_source(norm: Normalizer) -> None:
    with pytest.raises(InvalidPayloadError) as info:
        adapt("marketo", {"id": 1}, norm)
    assert info.value.field == "source"
    assert "unknown source kind" in info.value.problem
    assert "salesforce" in info.value.problem and "google_calendar" in info.value.problem


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("payload", [[{"Id": "x"}], "text", None, 42])
def test_payload_must_be_an_object(source: str, payload, norm: Normalizer) -> None:
    expect_error(source, payload, "$", "not a JSON object", norm)


def test_default_normalizer(sg_events: list[dict]) -> None:
    (record,) = adapt("sendgrid", sg_events[0])
    assert record.source_record_id == "example@test.com"


# ----------------------------------------------------------------------------- salesforce


def test_salesforce_contact(sf_records: list[dict], norm: Normalizer) -> None:
    r = one("salesforce", sf_records[0], norm)
    assert r.source == "salesforce"
    assert r.source_record_id == "0035e00000AbCdEAAB"
    assert r.record_key == "salesforce:0035e00000AbCdEAAB"
    assert r.event_type == "contact"
    assert r.event_id == "salesforce:0035e00000AbCdEAAB:2024-05-01T10:00:02.000+0000"
    assert r.event_time == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert r.event_time.tzinfo is not None and r.event_time.utcoffset().total_seconds() == 0
    assert keys(r) == [
        "crm:salesforce:0035e00000AbCdEAAB",
        "email:janeobrien@gmail.com",  # googlemail alias, +tag and dots removed
        "phone:+49301234567",  # national format read in the record's country (Germany)
        "phone:+4915112345678",
    ]
    assert r.rejected == (
        RejectedIdentifier("phone", "OtherPhone", "phone: not a valid number (default region DE)"),
    )
    assert r.attributes == {
        "given_name": "Jane",
        "family_name": "O'Brien",
        "email": "janeobrien@gmail.com",
        "phone": "+49301234567",
        "street": "Friedrichstraße 123 Aufgang B",
        "city": "Berlin",
        "postal_code": "10117",
        "country": "DE",
        "company": "Acme GmbH",
        "job_title": "Head of Procurement",
        "birth_date": "1985-04-12",
        "birth_year": "1985",
        "birth_month": "4",
        "birth_day": "12",
    }
    assert r.consent == {"email": True, "phone": False}
    assert r.region is None


def test_salesforce_us_contact_opted_out(sf_records: list[dict], norm: Normalizer) -> None:
    r = one("salesforce", sf_records[1], norm)
    assert keys(r) == [
        "crm:salesforce:0035e00000QrStUAAR",
        "email:bob.miller@example.org",
        "phone:+14155552671",
    ]
    assert r.consent == {"email": False}
    assert r.attributes["middle_name"] == "James"
    assert r.attributes["country"] == "US"
    assert r.attributes["state"] == "CA"
    assert "company" not in r.attributes  # Account is null
    assert "birth_date" not in r.attributes
    assert r.event_id.endswith(":2024-03-15T09:30:00.000+0000")


def test_salesforce_converted_lead(sf_records: list[dict], norm: Normalizer) -> None:
    r = one("salesforce", sf_records[2], norm)
    assert r.event_type == "lead"
    assert keys(r) == [
        "crm:salesforce:00Q5e00000LmNoPEAV",
        "crm:salesforce:0035e00000AbCdEAAB",  # the Contact it was converted to
        "email:janeobrien@gmail.com",
        "phone:+4915112345678",
    ]
    assert r.attributes["given_name"] == "Jane"
    assert r.attributes["family_name"] == "O'Brien"
    assert "company" not in r.attributes  # "[not provided]" placeholder
    assert r.attributes["country"] == "DE"


def test_salesforce_lead_company_and_country_code(sf_records: list[dict], norm: Normalizer) -> None:
    lead = sf_records[2]
    lead.update(
        Company="Initech AG",
        IsConverted=False,
        CountryCode="AT",
        Country="Germany",
        MobilePhone="0664 1234567",
    )
    r = one("salesforce", lead, norm)
    assert r.attributes["company"] == "Initech AG"
    assert r.attributes["country"] == "AT"  # CountryCode (picklist) wins over the label
    assert "phone:+436641234567" in keys(r)  # read in the Austrian numbering plan
    assert "crm:salesforce:0035e00000AbCdEAAB" not in keys(r)


def test_salesforce_bad_email_is_rejected_not_fatal(
    sf_records: list[dict], norm: Normalizer
) -> None:
    rec = sf_records[1]
    rec["Email"] = "bob.miller(at)example.org"
    r = one("salesforce", rec, norm)
    assert not any(i.type == "email" for i in r.identifiers)
    assert "email" not in r.attributes
    assert r.rejected == (RejectedIdentifier("email", "Email", "email: missing @"),)
    assert "bob.miller" not in r.rejected[0].reason


def test_salesforce_time_fallbacks(sf_records: list[dict], norm: Normalizer) -> None:
    rec = sf_records[1]
    del rec["LastModifiedDate"]
    rec["SystemModstamp"] = "2024-03-16T01:02:03.456+0200"
    r = one("salesforce", rec, norm)
    assert r.event_time == datetime(2024, 3, 15, 23, 2, 3, 456000, tzinfo=UTC)
    assert r.event_id == "salesforce:0035e00000QrStUAAR:2024-03-16T01:02:03.456+0200"


@pytest.mark.parametrize(
    ("mutate", "field", "problem"),
    [
        (lambda r: r.pop("attributes"), "attributes", "missing"),
        (lambda r: r.update(attributes="Contact"), "attributes", "not an object"),
        (lambda r: r["attributes"].update(type="Account"), "attributes.type", "unsupported"),
        (lambda r: r.pop("Id"), "Id", "missing"),
        (lambda r: r.update(Id=35), "Id", "not a string"),
        (lambda r: r.update(Id="  "), "Id", "empty"),
        (lambda r: r.update(Email=["a@b.com"]), "Email", "not a string"),
        (lambda r: r.update(Phone=4155552671), "Phone", "not a string"),
        (lambda r: r.update(HasOptedOutOfEmail="maybe"), "HasOptedOutOfEmail", "not a boolean"),
        (lambda r: r.update(LastModifiedDate="yesterday"), "LastModifiedDate", "ISO 8601"),
        (lambda r: r.update(Account=["Acme"]), "Account", "not an object"),
        (
            lambda r: [r.pop(k) for k in ("LastModifiedDate", "SystemModstamp", "CreatedDate")],
            "LastModifiedDate",
            "missing",
        ),
    ],
)
def test_salesforce_errors(sf_records, norm, mutate, field, problem) -> None:
    rec = sf_records[1]
    mutate(rec)
    expect_error("salesforce", rec, field, problem, norm)


# ----------------------------------------------------------------------------- hubspot


def test_hubspot_contact(hs_contacts: list[dict], norm: Normalizer) -> None:
    r = one("hubspot", hs_contacts[0], norm)
    assert r.source_record_id == "51"
    assert r.event_type == "contact"
    assert r.event_id == "hubspot:51:2024-06-01T12:30:45.123Z"
    assert r.event_time == datetime(2024, 6, 1, 12, 30, 45, 123000, tzinfo=UTC)
    assert keys(r) == [
        "crm:hubspot:51",
        "email:bh@hubspot.com",
        "email:brianhalligan@gmail.com",
        "email:b.h@outlook.com",
        "phone:+16175550123",
    ]
    assert r.rejected == (
        RejectedIdentifier("email", "properties.hs_additional_emails", "email: missing @"),
    )
    assert r.attributes == {
        "given_name": "Brian",
        "family_name": "Halligan",
        "email": "bh@hubspot.com",
        "phone": "+16175550123",
        "company": "HubSpot",
        "job_title": "CEO",
        "street": "25 First Street",
        "city": "Cambridge",
        "state": "MA",
        "postal_code": "02141",
        "country": "US",
        "birth_date": "1990-07-04",
        "birth_year": "1990",
        "birth_month": "7",
        "birth_day": "4",
    }
    assert r.consent == {"email": True}


def test_hubspot_uk_contact_opted_out(hs_contacts: list[dict], norm: Normalizer) -> None:
    r = one("hubspot", hs_contacts[1], norm)
    assert keys(r) == ["crm:hubspot:1001", "email:priya.patel@example.co.uk", "phone:+447911123456"]
    assert r.consent == {"email": False}
    assert r.attributes["country"] == "GB"
    assert r.attributes["postal_code"] == "SW1A 1AA"
    assert "company" not in r.attributes  # empty string
    assert "street" not in r.attributes  # null


def test_hubspot_without_email_keeps_crm_id(hs_contacts: list[dict], norm: Normalizer) -> None:
    c = hs_contacts[1]
    c["properties"].update(email=None, mobilephone="not a phone")
    r = one("hubspot", c, norm)
    assert keys(r) == ["crm:hubspot:1001"]
    assert [x.field for x in r.rejected] == ["properties.mobilephone"]


def test_hubspot_updated_at_fallback(hs_contacts: list[dict], norm: Normalizer) -> None:
    c = hs_contacts[1]
    del c["updatedAt"]
    r = one("hubspot", c, norm)
    assert r.event_time == datetime(2024, 2, 3, 11, 0, tzinfo=UTC)
    assert r.event_id == "hubspot:1001:2024-02-03T11:00:00.000Z"


@pytest.mark.parametrize(
    ("mutate", "field", "problem"),
    [
        (lambda c: c["properties"].update(email=42), "properties.email", "not a string"),
        (lambda c: c.pop("id"), "id", "missing"),
        (lambda c: c.update(id=51), "id", "not a string"),
        (lambda c: c.update(properties=None), "properties", "missing"),
        (lambda c: c.update(properties=[]), "properties", "not an object"),
        (lambda c: c.update(updatedAt="2024-13-45"), "updatedAt", "ISO 8601"),
        (
            lambda c: (c.pop("updatedAt"), c["properties"].pop("lastmodifieddate")),
            "updatedAt",
            "missing",
        ),
        (
            lambda c: c["properties"].update(hs_email_optout="sometimes"),
            "properties.hs_email_optout",
            "not a boolean",
        ),
    ],
)
def test_hubspot_errors(hs_contacts, norm, mutate, field, problem) -> None:
    c = hs_contacts[0]
    mutate(c)
    expect_error("hubspot", c, field, problem, norm)


# ----------------------------------------------------------------------------- sendgrid


def test_sendgrid_events(sg_events: list[dict], norm: Normalizer) -> None:
    records = [one("sendgrid", e, norm) for e in sg_events]
    assert [r.event_type for r in records] == [
        "processed",
        "open",
        "click",
        "unsubscribe",
        "group_resubscribe",
        "bounce",
    ]
    assert [r.consent for r in records] == [{}, {}, {}, {"email": False}, {"email": True}, {}]
    first = records[0]
    assert first.source_record_id == "example@test.com"
    assert first.event_id == "rbtnWrG1DVDGGGFHFyun0A=="
    assert first.event_time == datetime(2017, 12, 15, 0, 59, 29, tzinfo=UTC)
    assert first.identifiers == (Identifier("email", "example@test.com"),)
    for r in records:
        assert set(r.attributes) == {"email"}
        assert "255.255.255.255" not in repr(r) and "Mozilla" not in repr(r)


@pytest.mark.parametrize("event", ["spamreport", "group_unsubscribe"])
def test_sendgrid_withdrawals(event: str, sg_events: list[dict], norm: Normalizer) -> None:
    e = dict(sg_events[0], event=event, asm_group_id=3)
    assert one("sendgrid", e, norm).consent == {"email": False}


@pytest.mark.parametrize(
    ("mutate", "field", "problem"),
    [
        (lambda e: e.update(email="example(at)test.com"), "email", "no usable identifier"),
        (lambda e: e.pop("email"), "email", "missing"),
        (lambda e: e.update(timestamp="1513299569"), "timestamp", "not a number"),
        (lambda e: e.update(timestamp=True), "timestamp", "not a number"),
        (lambda e: e.update(timestamp=1e20), "timestamp", "out of range"),
        (lambda e: e.pop("timestamp"), "timestamp", "missing"),
        (lambda e: e.pop("sg_event_id"), "sg_event_id", "missing"),
        (lambda e: e.update(event=None), "event", "missing"),
    ],
)
def test_sendgrid_errors(sg_events, norm, mutate, field, problem) -> None:
    e = sg_events[0]
    mutate(e)
    expect_error("sendgrid", e, field, problem, norm)


def test_sendgrid_bad_email_message_has_no_pii(sg_events: list[dict], norm: Normalizer) -> None:
    e = dict(sg_events[0], email="secret.person@@test.com")
    with pytest.raises(InvalidPayloadError) as info:
        adapt("sendgrid", e, norm)
    assert "secret" not in str(info.value)
    assert "email: more than one @" in str(info.value)


# ----------------------------------------------------------------------------- segment


def test_segment_anonymous_then_identify(seg_events: list[dict], norm: Normalizer) -> None:
    page = one("segment", seg_events[0], norm)
    assert page.event_type == "page"
    assert page.source_record_id == "507f191e810c19729de860ea"
    assert keys(page) == ["cookie:507f191e810c19729de860ea"]
    assert page.attributes == {}

    ident = one("segment", seg_events[1], norm)
    assert ident.event_type == "identify"
    assert ident.source_record_id == "97980cfea0067"
    assert ident.event_id == "ajs-next-2b7c3d4e5f"
    assert ident.event_time == datetime(2024, 5, 1, 10, 2, tzinfo=UTC)
    assert keys(ident) == [
        "user:segment:97980cfea0067",
        "cookie:507f191e810c19729de860ea",  # links the anonymous page view
        "email:janeobrien@gmail.com",
        "phone:+4915112345678",  # national number read in the address country
    ]
    assert set(keys(page)) & set(keys(ident)) == {"cookie:507f191e810c19729de860ea"}
    assert ident.attributes == {
        "email": "janeobrien@gmail.com",
        "phone": "+4915112345678",
        "given_name": "Jane",
        "family_name": "O'Brien",
        "company": "Acme GmbH",
        "job_title": "Head of Procurement",
        "birth_date": "1985-04-12",
        "birth_year": "1985",
        "birth_month": "4",
        "birth_day": "12",
        "street": "Friedrichstraße 123",
        "city": "Berlin",
        "postal_code": "10117",
        "country": "DE",
    }
    assert "203.0.113.7" not in repr(ident)


def test_segment_ios_track(seg_events: list[dict], norm: Normalizer) -> None:
    r = one("segment", seg_events[2], norm)
    assert r.event_type == "track"
    assert keys(r) == [
        "user:segment:97980cfea0067",
        "cookie:6D5E2C1B-0A9F-4E3D-8C7B-6A5F4E3D2C1B",
        "device:b5372db0-c21e-11e4-8dfc-aa07a5b093db",
        "idfa:7A3CBEA0-BDF5-11E4-8DFC-AA07A5B093DB",
        "email:janeobrien@gmail.com",  # from context.traits
    ]
    assert r.consent == {"ads": True}
    assert r.attributes == {"email": "janeobrien@gmail.com"}


def test_segment_android_opt_out(seg_events: list[dict], norm: Normalizer) -> None:
    r = one("segment", seg_events[3], norm)
    assert keys(r) == ["cookie:0e9d8c7b-6a5f-4e3d-2c1b-0a9f8e7d6c5b", "device:a1b2c3d4e5f60718"]
    assert r.rejected == (
        RejectedIdentifier(
            "gaid", "context.device.advertisingId", "gaid: all-zero opt-out placeholder"
        ),
    )
    assert r.consent == {"ads": False}


def test_segment_android_gaid_kept_when_tracking_limited(seg_events, norm) -> None:
    e = seg_events[3]
    e["context"]["device"]["advertisingId"] = "38400000-8CF0-11BD-B23E-10B96E40000D"
    r = one("segment", e, norm)
    assert "gaid:38400000-8cf0-11bd-b23e-10b96e40000d" in keys(r)
    assert r.consent == {"ads": False}


def test_segment_unknown_platform_ad_id(seg_events, norm) -> None:
    e = seg_events[2]
    e["context"]["device"]["type"] = "web"
    e["context"]["os"]["name"] = "Linux"
    r = one("segment", e, norm)
    assert not any(i.type in ("idfa", "gaid") for i in r.identifiers)
    assert [x.type for x in r.rejected] == ["advertising_id"]


def test_segment_consent_categories(seg_events, norm) -> None:
    e = seg_events[0]
    e["context"]["consent"] = {
        "categoryPreferences": {"Advertising": False, "Analytics": True, "Functional": True}
    }
    assert one("segment", e, norm).consent == {"ads": False, "analytics": True}


def test_segment_alias(seg_events: list[dict], norm: Normalizer) -> None:
    r = one("segment", seg_events[4], norm)
    assert r.event_type == "alias"
    assert keys(r) == [
        "user:segment:97980cfea0067",
        "user:segment:legacy-user-4411",
        "cookie:507f191e810c19729de860ea",
    ]


def test_segment_alias_of_anonymous_id_is_a_cookie(seg_events, norm) -> None:
    e = seg_events[4]
    e["previousId"] = e["anonymousId"]
    r = one("segment", e, norm)
    assert keys(r) == ["user:segment:97980cfea0067", "cookie:507f191e810c19729de860ea"]


def test_segment_name_split_and_company_string(seg_events, norm) -> None:
    e = seg_events[1]
    traits = e["traits"]
    for k in ("firstName", "lastName"):
        del traits[k]
    traits.update(name="dr. jane quinn doe jr.", company="Initech", phone=4155552671)
    del traits["address"]
    del e["context"]["locale"]
    r = one("segment", e, norm)
    assert (
        r.attributes["given_name"],
        r.attributes["middle_name"],
        r.attributes["family_name"],
    ) == (
        "Jane",
        "Quinn",
        "Doe",
    )
    assert r.attributes["company"] == "Initech"
    # a numeric phone trait is accepted; no country/locale -> default region US
    assert r.attributes["phone"] == "+14155552671"
    assert "country" not in r.attributes


def test_segment_phone_region_from_locale(seg_events, norm) -> None:
    e = seg_events[2]
    e["context"]["traits"]["phone"] = "0151 12345678"
    r = one("segment", e, norm)
    assert "phone:+4915112345678" in keys(r)  # locale de-DE


def test_segment_bad_traits_are_skipped(seg_events, norm) -> None:
    e = seg_events[1]
    e["traits"].update(email=["jane@example.com"], firstName={"x": 1}, address="Berlin")
    r = one("segment", e, norm)
    assert RejectedIdentifier("email", "traits.email", "email: not a string") in r.rejected
    assert "given_name" not in r.attributes
    assert "city" not in r.attributes
    assert r.attributes["family_name"] == "O'Brien"


def test_segment_time_fallback_and_numeric_user_id(seg_events, norm) -> None:
    e = seg_events[4]
    del e["timestamp"]
    e["receivedAt"] = "2024-05-04T12:00:01.250Z"
    e["userId"] = 12345
    r = one("segment", e, norm)
    assert r.event_time == datetime(2024, 5, 4, 12, 0, 1, 250000, tzinfo=UTC)
    assert r.source_record_id == "12345"


def test_segment_placeholder_anonymous_id_only(seg_events, norm) -> None:
    e = seg_events[0]
    e["anonymousId"] = "00000000-0000-0000-0000-000000000000"
    expect_error("segment", e, "anonymousId", "no usable identifier", norm)


@pytest.mark.parametrize(
    ("index", "mutate", "field", "problem"),
    [
        (0, lambda e: e.pop("anonymousId"), "userId/anonymousId", "one of them is required"),
        (1, lambda e: e.update(type="purchase"), "type", "unsupported event type"),
        (1, lambda e: e.pop("type"), "type", "missing"),
        (1, lambda e: e.pop("messageId"), "messageId", "missing"),
        (1, lambda e: e.update(userId=["u"]), "userId", "not a string"),
        (1, lambda e: e.update(timestamp="05/01/2024"), "timestamp", "ISO 8601"),
        (
            1,
            lambda e: [e.pop(k) for k in ("timestamp", "sentAt", "receivedAt")],
            "timestamp",
            "missing",
        ),
        (2, lambda e: e["context"].update(device="iPhone"), "context.device", "not an object"),
        (1, lambda e: e.update(context=[]), "context", "not an object"),
        (1, lambda e: e.update(traits="jane"), "traits", "not an object"),
        (4, lambda e: e.pop("previousId"), "previousId", "missing"),
        (4, lambda e: e.pop("userId"), "userId", "alias needs userId"),
    ],
)
def test_segment_errors(seg_events, norm, index, mutate, field, problem) -> None:
    e = seg_events[index]
    mutate(e)
    expect_error("segment", e, field, problem, norm)


# ----------------------------------------------------------------------------- google calendar


def test_calendar_one_record_per_person(cal_events: list[dict], norm: Normalizer) -> None:
    records = adapt("google_calendar", cal_events[0], norm)
    by_email = {r.source_record_id: r for r in records}
    # organiser listed twice (organizer + attendee) -> one record; rooms skipped
    assert list(by_email) == [
        "bob.miller@example.org",
        "janeobrien@gmail.com",
        "procurement-team@acme.example",
        "priya.patel@example.co.uk",
    ]
    assert not any("calendar.google.com" in k for k in by_email)
    bob = by_email["bob.miller@example.org"]
    assert bob.event_type == "organizer"
    assert bob.event_id == (
        "google_calendar:7qr2aob4u7q3h8sf5dfn5cjdkb:2024-05-02T08:30:05.123Z:bob.miller@example.org"
    )
    assert bob.event_time == datetime(2024, 5, 2, 8, 30, 5, 123000, tzinfo=UTC)
    assert bob.identifiers == (Identifier("email", "bob.miller@example.org"),)
    assert bob.attributes == {
        "email": "bob.miller@example.org",
        "given_name": "Bob",
        "family_name": "Miller",
    }
    jane = by_email["janeobrien@gmail.com"]
    assert jane.event_type == "attendee"
    assert (jane.attributes["given_name"], jane.attributes["family_name"]) == ("Jane", "O'Brien")
    team = by_email["procurement-team@acme.example"]
    assert team.attributes == {"email": "procurement-team@acme.example"}  # not a person name
    assert by_email["priya.patel@example.co.uk"].attributes == {
        "email": "priya.patel@example.co.uk"
    }
    assert len({r.event_id for r in records}) == len(records)


def test_calendar_cancelled_event_and_group_calendar_organizer(cal_events, norm) -> None:
    records = adapt("google_calendar", cal_events[1], norm)
    assert [r.source_record_id for r in records] == ["lead@prospect.example"]
    (r,) = records
    assert r.event_type == "attendee"
    assert (r.attributes["given_name"], r.attributes["family_name"]) == ("Carlos", "García-López")


def test_calendar_resource_flag_skips_room_with_plain_address(cal_events, norm) -> None:
    e = cal_events[0]
    assert e["attendees"][3]["resource"] is True
    e["attendees"][3]["email"] = "berlin-boardroom@acme.example"
    records = adapt("google_calendar", e, norm)
    assert "berlin-boardroom@acme.example" not in {r.source_record_id for r in records}
    assert len(records) == 4


def test_calendar_deleted_stub_gives_no_records(cal_events, norm) -> None:
    assert adapt("google_calendar", cal_events[2], norm) == []


def test_calendar_only_rooms_gives_no_records(cal_events, norm) -> None:
    e = cal_events[0]
    e["organizer"] = {"email": "team@group.calendar.google.com"}
    e["attendees"] = [a for a in e["attendees"] if "calendar.google.com" in a["email"]]
    assert adapt("google_calendar", e, norm) == []


def test_calendar_skips_bad_attendee_email(cal_events, norm) -> None:
    e = cal_events[0]
    e["attendees"][2]["email"] = "procurement team"
    records = adapt("google_calendar", e, norm)
    assert "procurement-team@acme.example" not in {r.source_record_id for r in records}
    assert len(records) == 3


@pytest.mark.parametrize(
    ("mutate", "field", "problem"),
    [
        (lambda e: e.pop("id"), "id", "missing"),
        (lambda e: e.update(kind="calendar#calendarListEntry"), "kind", "not a calendar#event"),
        (lambda e: e.update(attendees={"email": "x@y.com"}), "attendees", "not a list"),
        (
            lambda e: e["attendees"].__setitem__(1, "jane@example.com"),
            "attendees[1]",
            "not an object",
        ),
        (lambda e: e["attendees"][1].update(email=7), "attendees[1].email", "not a string"),
        (lambda e: e["organizer"].update(email=7), "organizer.email", "not a string"),
        (lambda e: e.pop("updated"), "updated", "missing"),
        (lambda e: e.update(updated="tomorrow"), "updated", "ISO 8601"),
        (
            lambda e: (
                e.update(organizer={"email": "not-an-email"}),
                e.update(attendees=[{"email": "also bad"}]),
            ),
            "attendees",
            "no usable identifier",
        ),
    ],
)
def test_calendar_errors(cal_events, norm, mutate, field, problem) -> None:
    e = cal_events[0]
    mutate(e)
    expect_error("google_calendar", e, field, problem, norm)


# ----------------------------------------------------------------------------- all sources


def test_fixture_records_are_utc_and_canonical(
    sf_records, hs_contacts, sg_events, seg_events, cal_events, norm
) -> None:
    from idgraph.resolver.model import CANONICAL_ATTRIBUTES

    payloads = (
        [("salesforce", p) for p in sf_records]
        + [("hubspot", p) for p in hs_contacts]
        + [("sendgrid", p) for p in sg_events]
        + [("segment", p) for p in seg_events]
        + [("google_calendar", p) for p in cal_events]
    )
    count = 0
    for source, payload in payloads:
        before = copy.deepcopy(payload)
        for r in adapt(source, payload, norm):
            count += 1
            assert r.source == source
            assert r.event_time.utcoffset().total_seconds() == 0
            assert r.identifiers
            assert set(r.attributes) <= set(CANONICAL_ATTRIBUTES)
            assert all(isinstance(v, str) and v for v in r.attributes.values())
            assert r.region is None
        assert payload == before  # adapters do not mutate their input
    assert count == 3 + 2 + 6 + 5 + 5
