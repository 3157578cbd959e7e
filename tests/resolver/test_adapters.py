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
from idgraph.resolver.settings import NormalizationSettings

FIXTURES = Path(__file__).parent / "fixtures"
#: The Message-ID SendGrid's documented events carry as ``smtp-id``.
SMTP_ID = "14c5d75ce93.dfd.64b469@ismtpd-555"
#: A Salesforce Contact ID (18 characters, its case-check suffix matching) and its 15 form.
SF_CONTACT = "0035e00000AbCdEAAV"
SF_CONTACT_15 = "0035e00000AbCdE"


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


@pytest.fixture()
def md_events() -> list[dict]:
    return load("mandrill_events.json")


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


def test_salesforce_15_character_ids_get_the_18_character_form(sf_records, norm) -> None:
    # reports and the UI's URLs show 15-character IDs; the REST API returns 18
    r = one("salesforce", dict(sf_records[0], Id=SF_CONTACT_15), norm)
    assert r.record_key == f"salesforce:{SF_CONTACT}"
    assert keys(r)[0] == f"crm:salesforce:{SF_CONTACT}"
    lead = dict(sf_records[2], ConvertedContactId=SF_CONTACT_15)  # a converted Lead
    assert f"crm:salesforce:{SF_CONTACT}" in keys(one("salesforce", lead, norm))


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
    assert first.identifiers == (
        Identifier("email", "example@test.com"),
        Identifier("message", SMTP_ID),  # smtp-id: the sent message's Message-ID
    )
    assert [keys(r) for r in records[1:]] == [["email:example@test.com"]] * 4 + [
        ["email:bounce@example.org"]
    ]
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


def test_sendgrid_bad_smtp_id_is_rejected_not_fatal(sg_events, norm) -> None:
    r = one("sendgrid", dict(sg_events[0], **{"smtp-id": "<no-at-sign>"}), norm)
    assert keys(r) == ["email:example@test.com"]
    assert r.rejected == (RejectedIdentifier("message", "smtp-id", "message: missing @"),)


def test_sendgrid_custom_args_name_identifiers(sg_events, norm) -> None:
    # custom_args/unique_args arrive as extra top-level fields of the event
    e = dict(
        sg_events[2],
        userId="97980cfeA0067",
        sfdc_contact_id=SF_CONTACT_15,
        hs_object_id=51,
        customerAccountNumber="55555",
        activationAttempt="1",
    )
    r = one("sendgrid", e, norm)
    assert keys(r) == [
        "email:example@test.com",
        "user:segment:97980cfeA0067",
        f"crm:salesforce:{SF_CONTACT}",  # the 18-character form the Salesforce adapter keys by
        "crm:hubspot:51",
    ]
    assert r.rejected == ()
    assert set(r.attributes) == {"email"}
    assert r.source_record_id == "example@test.com"


@pytest.mark.parametrize("name", ["user_id", "userId", "uid", "app_user_id", "App-User-Id"])
def test_sendgrid_user_id_equals_the_segment_identifier(sg_events, seg_events, name, norm) -> None:
    seg = one("segment", seg_events[1], norm)
    (user,) = [i for i in seg.identifiers if i.type == "user:segment"]
    assert user in one("sendgrid", dict(sg_events[0], **{name: user.value}), norm).identifiers


@pytest.mark.parametrize("value", [SF_CONTACT, SF_CONTACT_15])
def test_sendgrid_salesforce_id_equals_the_salesforce_identifier(
    sg_events, sf_records, value, norm
) -> None:
    (sf_id,) = one("salesforce", dict(sf_records[0], Id=SF_CONTACT), norm).identifiers[:1]
    assert sf_id == Identifier("crm:salesforce", SF_CONTACT)
    for name in ("salesforce_id", "contact_id", "sf_lead_id", "recipientRef"):  # any name
        assert sf_id in one("sendgrid", dict(sg_events[0], **{name: value}), norm).identifiers


def test_sendgrid_lead_id_value_is_salesforce_whatever_its_name(sg_events, sf_records, norm):
    lead = one("salesforce", sf_records[2], norm)
    e = dict(sg_events[0], ref=sf_records[2]["Id"])
    assert lead.identifiers[0] in one("sendgrid", e, norm).identifiers


def test_sendgrid_unknown_custom_args_yield_nothing(sg_events, norm) -> None:
    e = dict(
        sg_events[0],
        customerAccountNumber="55555",
        account="0015e00000AbCdEAAV",  # an Account ID: not a person
        ref="0035e00000AbCdEAAB",  # 003 but a wrong case-check suffix
        order=12345,
        note={"user_id": "7"},
        flag=True,
    )
    r = one("sendgrid", e, norm)
    assert keys(r) == ["email:example@test.com", f"message:{SMTP_ID}"]
    assert r.rejected == ()  # never recorded either
    assert "55555" not in repr(r)


def test_sendgrid_documented_fields_are_not_custom_args(sg_events, norm) -> None:
    e = dict(
        sg_events[0],
        marketing_campaign_id=SF_CONTACT_15,
        singlesend_id=SF_CONTACT,
        sg_template_id=SF_CONTACT,
        asm_group_id=3,
        sg_user_id=123,
        type="bounce",
    )
    assert keys(one("sendgrid", e, norm)) == ["email:example@test.com", f"message:{SMTP_ID}"]


def test_sendgrid_mapped_custom_arg_failing_normalisation_is_rejected(sg_events, norm) -> None:
    e = dict(sg_events[0], contact_id="51", user_id=["7"], hubspot_id="  ", hs_contact_id=None)
    r = one("sendgrid", e, norm)
    assert keys(r) == ["email:example@test.com", f"message:{SMTP_ID}"]
    assert r.rejected == (  # blank and null values count as absent
        RejectedIdentifier(
            "crm:salesforce",
            "contact_id",
            "crm:salesforce: not a Salesforce record ID (15 or 18 letters and digits)",
        ),
        RejectedIdentifier("user:segment", "user_id", "user:segment: not a string"),
    )


def test_sendgrid_nested_unique_args(sg_events, norm) -> None:
    e = dict(sg_events[0], unique_args={"user_id": "42", "salesforce_id": "x"})
    r = one("sendgrid", e, norm)
    assert "user:segment:42" in keys(r)
    assert [(x.type, x.field) for x in r.rejected] == [
        ("crm:salesforce", "unique_args.salesforce_id")
    ]


def test_sendgrid_custom_args_follow_settings(sg_events) -> None:
    norm = Normalizer(NormalizationSettings(sendgrid_custom_args={"member_no": "ext:club"}))
    e = dict(sg_events[0], memberNo="M-1", user_id="7", ref=SF_CONTACT)
    assert keys(one("sendgrid", e, norm)) == [
        "email:example@test.com",
        f"message:{SMTP_ID}",
        "ext:club:M-1",
        f"crm:salesforce:{SF_CONTACT}",  # recognised by its shape, whatever the mapping
    ]


def test_sendgrid_bad_email_fails_even_with_custom_args(sg_events, norm) -> None:
    e = dict(sg_events[0], email="example(at)test.com", user_id="7")
    expect_error("sendgrid", e, "email", "no usable identifier", norm)


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


def test_segment_email_user_id_is_also_an_email(seg_events, norm) -> None:
    e = dict(seg_events[0], userId="Jane.Doe@Example.com")  # a legacy app's userId
    r = one("segment", e, norm)
    assert keys(r) == [
        "user:segment:Jane.Doe@Example.com",  # stays as it was
        "email:jane.doe@example.com",
        "cookie:507f191e810c19729de860ea",
    ]
    assert r.attributes == {"email": "jane.doe@example.com"}
    assert r.rejected == ()
    # an email trait stays the record's primary email
    ident = one("segment", dict(seg_events[1], userId="jane@acme.example"), norm)
    assert {"email:jane@acme.example", "email:janeobrien@gmail.com"} <= set(keys(ident))
    assert ident.attributes["email"] == "janeobrien@gmail.com"


@pytest.mark.parametrize("user_id", ["97980cfea0067", "jane@localhost", "@handle", "a@b@c.com"])
def test_segment_other_user_ids_are_no_email(seg_events, user_id, norm) -> None:
    r = one("segment", dict(seg_events[0], userId=user_id), norm)
    assert [i.type for i in r.identifiers] == ["user:segment", "cookie"]
    assert r.rejected == ()


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


# ----------------------------------------------------------------------------- mandrill


def test_mandrill_inbound_reply(md_events: list[dict], norm: Normalizer) -> None:
    r = one("mandrill", md_events[0], norm)
    assert r.source == "mandrill"
    assert r.record_key == "mandrill:jane@example.com"  # the SENDER of the reply
    assert r.event_type == "inbound"
    assert r.event_id == "mandrill:CAGs=3Kq1vV0bJx7@mail.gmail.com"  # its Message-Id
    assert r.event_time == datetime(2017, 12, 15, 1, 6, 40, tzinfo=UTC)
    # In-Reply-To names the message SendGrid sent her (its smtp-id)
    assert keys(r) == ["email:jane@example.com", f"message:{SMTP_ID}"]
    assert r.attributes == {"email": "jane@example.com", "given_name": "Jane", "family_name": "Doe"}
    assert r.consent == {} and r.rejected == ()


def test_mandrill_reply_shares_the_message_with_the_sendgrid_recipient(
    md_events, sg_events, norm
) -> None:
    sent = one("sendgrid", sg_events[0], norm)
    reply = one("mandrill", md_events[0], norm)
    assert set(sent.identifiers) & set(reply.identifiers) == {Identifier("message", SMTP_ID)}


def test_mandrill_reads_neither_body_nor_references_nor_recipients(md_events, norm) -> None:
    e = md_events[0]
    e["msg"]["html"] = "<p>Out of office: please contact bob.smith@example.com</p>"
    e["msg"]["headers"]["Cc"] = "Bob Smith <bob.smith@example.com>"
    e["msg"]["headers"]["Reply-To"] = "bob.smith@example.com"
    r = one("mandrill", e, norm)
    assert keys(r) == ["email:jane@example.com", f"message:{SMTP_ID}"]
    assert "bob" not in repr(r) and "0f1e2d3c" not in repr(r)  # nor References' other IDs
    assert "support@acme.example" not in repr(r)  # the route's address is not the sender's


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"in-reply-to": "<A1@X.example>", "message-id": "<m@x>"}, ["A1@x.example"]),
        ({"IN-REPLY-TO": "A1@X.example"}, ["A1@x.example"]),  # without brackets
        ({"In-Reply-To": "<a@x> (Jane's message of Friday)"}, ["a@x"]),  # comment skipped
        ({"In-Reply-To": "<a@x> <b@y>"}, ["a@x", "b@y"]),  # two parents
        ({"In-Reply-To": ["<a@x>", "<b@y>"]}, ["a@x", "b@y"]),  # a repeated header: a list
        ({"In-Reply-To": "   "}, []),
        ({}, []),
    ],
)
def test_mandrill_in_reply_to_variants(md_events, headers, expected, norm) -> None:
    e = md_events[0]
    e["msg"]["headers"] = headers
    r = one("mandrill", e, norm)
    assert [i.value for i in r.identifiers if i.type == "message"] == expected


def test_mandrill_bad_in_reply_to_is_rejected_not_fatal(md_events, norm) -> None:
    e = md_events[0]
    e["msg"]["headers"]["In-Reply-To"] = "<no-at-sign>"
    r = one("mandrill", e, norm)
    assert keys(r) == ["email:jane@example.com"]
    assert r.rejected == (
        RejectedIdentifier("message", "msg.headers.In-Reply-To", "message: missing @"),
    )


@pytest.mark.parametrize("name", ["Message-Id", "Message-ID", "message-id"])
def test_mandrill_event_id_from_message_id_header(md_events, name, norm) -> None:
    e = md_events[0]
    headers = e["msg"]["headers"]
    value = headers.pop("Message-Id")
    headers[name] = [value, "<second@x>"] if name == "message-id" else value  # first one wins
    assert one("mandrill", e, norm).event_id == "mandrill:CAGs=3Kq1vV0bJx7@mail.gmail.com"


def test_mandrill_event_id_without_message_id_is_a_stable_hash(md_events, norm) -> None:
    e = md_events[1]
    r = one("mandrill", e, norm)
    prefix = "mandrill:sha256:"
    assert r.event_id.startswith(prefix) and len(r.event_id) == len(prefix) + 32
    assert one("mandrill", copy.deepcopy(e), Normalizer()).event_id == r.event_id
    e["msg"]["headers"]["Message-Id"] = "<not an id>"  # unusable: the hash again
    assert one("mandrill", e, norm).event_id == r.event_id
    for change in ({"ts": 1513300101}, {"msg": dict(e["msg"], subject="Order 4712")},
                   {"msg": dict(e["msg"], from_email="other@initech.example")}):
        assert one("mandrill", dict(e, **change), norm).event_id != r.event_id


def test_mandrill_team_sender_name_is_not_a_person(md_events, norm) -> None:
    r = one("mandrill", md_events[1], norm)  # "Acme Procurement Team"
    assert r.attributes == {"email": "procurement@initech.example"}
    assert keys(r) == ["email:procurement@initech.example"]


def test_mandrill_message_events(md_events, norm) -> None:
    send, opened, unsub = (one("mandrill", e, norm) for e in md_events[2:])
    assert [r.event_type for r in (send, opened, unsub)] == ["send", "open", "unsub"]
    assert {r.record_key for r in (send, opened, unsub)} == {"mandrill:jane.doe@example.com"}
    assert send.event_id == "mandrill:7761629aa4a9480bbf4e5f7f3c8bbd5e:send:1513299001"
    assert opened.event_time == datetime(2017, 12, 15, 0, 56, 40, tzinfo=UTC)
    # msg.metadata is read like SendGrid's custom args
    assert keys(send) == ["email:jane.doe@example.com", "user:segment:97980cfea0067"]
    assert keys(unsub) == ["email:jane.doe@example.com", f"crm:salesforce:{SF_CONTACT}"]
    assert [r.consent for r in (send, opened, unsub)] == [{}, {}, {"email": False}]
    assert "255.255.255.255" not in repr(opened) and "INV-2017" not in repr(send)


@pytest.mark.parametrize("event", ["hard_bounce", "hard-bounce", "soft_bounce", "spam", "reject"])
def test_mandrill_other_message_events(md_events, event, norm) -> None:
    r = one("mandrill", dict(md_events[2], event=event), norm)
    assert r.event_type == event.replace("-", "_")
    assert r.consent == ({"email": False} if event == "spam" else {})


def test_mandrill_message_event_without_id_or_metadata(md_events, norm) -> None:
    e = md_events[2]
    del e["_id"], e["msg"]["_id"]
    e["msg"]["metadata"] = []  # an empty object as PHP encodes it
    r = one("mandrill", e, norm)
    assert r.event_id.startswith("mandrill:sha256:")
    assert keys(r) == ["email:jane.doe@example.com"]


@pytest.mark.parametrize(
    ("index", "mutate", "field", "problem"),
    [
        (0, lambda e: e.update(event="bounce"), "event", "unsupported event type"),
        (0, lambda e: e.pop("event"), "event", "missing"),
        (0, lambda e: e.update(ts="1513300000"), "ts", "not a number"),
        (0, lambda e: e.pop("ts"), "ts", "missing"),
        (0, lambda e: e.pop("msg"), "msg", "missing"),
        (0, lambda e: e.update(msg="raw"), "msg", "not an object"),
        (0, lambda e: e["msg"].pop("from_email"), "msg.from_email", "missing"),
        (0, lambda e: e["msg"].update(from_email=["a@b.com"]), "msg.from_email", "not a string"),
        (0, lambda e: e["msg"].update(from_email="jane(at)example.com"), "msg.from_email",
         "no usable identifier (email: missing @)"),
        (0, lambda e: e["msg"].update(from_name=7), "msg.from_name", "not a string"),
        (0, lambda e: e["msg"].update(headers=[]), "msg.headers", "not an object"),
        (0, lambda e: e["msg"]["headers"].update({"In-Reply-To": 7}), "msg.headers.In-Reply-To",
         "not a string or a list of strings"),
        (0, lambda e: e["msg"]["headers"].update({"In-Reply-To": ["<a@x>", None]}),
         "msg.headers.In-Reply-To[1]", "not a string"),
        (2, lambda e: e["msg"].pop("email"), "msg.email", "missing"),
        (2, lambda e: e["msg"].update(email="nobody"), "msg.email", "no usable identifier"),
        (2, lambda e: e["msg"].update(metadata="user_id=7"), "msg.metadata", "not an object"),
        (2, lambda e: e.update(_id=7), "_id", "not a string"),
        # an allowlist/denylist sync event names no message
        (0, lambda e: (e.clear(), e.update(type="blacklist", action="add", ts=1513300000)),
         "event", "sync event"),
    ],
)
def test_mandrill_errors(md_events, norm, index, mutate, field, problem) -> None:
    e = md_events[index]
    mutate(e)
    expect_error("mandrill", e, field, problem, norm)


# ----------------------------------------------------------------------------- companies


@pytest.mark.parametrize("company", ["Self-employed", "[N/A]", "Privatperson", "individual"])
def test_placeholder_company_gives_no_company(
    sf_records, hs_contacts, seg_events, company, norm
) -> None:
    lead = dict(sf_records[2], Company=company)
    contact = dict(sf_records[0], Account={"Name": company})
    hs = copy.deepcopy(hs_contacts[0])
    hs["properties"]["company"] = company
    seg = copy.deepcopy(seg_events[1])
    seg["traits"]["company"] = {"name": company}
    for source, payload in (("salesforce", lead), ("salesforce", contact), ("hubspot", hs),
                            ("segment", seg)):
        assert "company" not in one(source, payload, norm).attributes, source
    assert one("salesforce", dict(lead, Company="Initech AG"), norm).attributes["company"] == (
        "Initech AG"
    )


def test_file_row_placeholder_company_gives_no_company(norm: Normalizer) -> None:
    from idgraph.resolver.adapters.tabular import adapt_row

    at = datetime(2024, 5, 1, tzinfo=UTC)
    row = {"given_name": "Jane", "company": "Self-Employed", "city": "Berlin"}
    assert adapt_row("file:crm", "1", row, norm, at).attributes == {
        "given_name": "Jane",
        "city": "Berlin",
    }
    row["company"] = "Acme GmbH"
    assert adapt_row("file:crm", "1", row, norm, at).attributes["company"] == "Acme GmbH"


# ----------------------------------------------------------------------------- all sources


def test_fixture_records_are_utc_and_canonical(
    sf_records, hs_contacts, sg_events, seg_events, cal_events, md_events, norm
) -> None:
    from idgraph.resolver.model import CANONICAL_ATTRIBUTES

    payloads = (
        [("salesforce", p) for p in sf_records]
        + [("hubspot", p) for p in hs_contacts]
        + [("sendgrid", p) for p in sg_events]
        + [("segment", p) for p in seg_events]
        + [("google_calendar", p) for p in cal_events]
        + [("mandrill", p) for p in md_events]
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
    assert count == 3 + 2 + 6 + 5 + 5 + 5


# -- event properties (the profile's timeline, what segments count) ------------------------


def test_segment_track_keeps_its_event_name_and_spec_properties(seg_events, norm) -> None:
    r = one("segment", seg_events[2], norm)
    assert r.event_type == "track"  # the call type, as before
    assert r.event_name == "Order Completed" and r.activity == "Order Completed"
    assert r.properties == {"total": 27.5, "order_id": "50314b8e9bcf000000000000"}
    order = dict(seg_events[2], properties={
        "checkout_id": 9001, "revenue": "25.00", "price": 19, "value": "n/a", "currency": "EUR",
        "product_id": 507, "category": "Games", "coupon": "SPRING", "gift": True,
        "products": [{"product_id": "1"}], "shipping": {"method": "dhl"}, "discount": 2.5})
    assert one("segment", order, norm).properties == {
        # spec amounts first (a numeric string is a number; "n/a" is no amount: dropped)
        "revenue": 25.0, "price": 19.0,
        # spec text, IDs kept as text
        "currency": "EUR", "product_id": "507", "category": "Games",
        # then the others in payload order (no objects or lists); *_id numbers as text
        "checkout_id": "9001", "coupon": "SPRING", "gift": "true", "discount": 2.5,
    }


def test_segment_page_and_screen_properties(seg_events, norm) -> None:
    page = one("segment", seg_events[0], norm)
    assert page.activity == "page" and page.event_name == ""
    assert page.properties == {"name": "Pricing", "url": "https://example.com/pricing",
                               "path": "/pricing"}
    screen = one("segment", seg_events[3], norm)
    assert screen.activity == "screen" and screen.properties == {"name": "Home"}
    # identify and alias carry none
    assert one("segment", seg_events[1], norm).properties == {}
    assert one("segment", seg_events[4], norm).properties == {}


def test_segment_drops_over_long_and_excess_properties(seg_events, norm) -> None:
    many = {f"p{n:02d}": n for n in range(30)}
    payload = dict(seg_events[2], properties={
        "url": "https://example.com/" + "x" * 300, "total": 10, **many,
        "k" * 300: "long name"})
    r = one("segment", payload, norm)
    assert "url" not in r.properties  # longer than 256 characters: dropped, not cut
    assert len(r.properties) == 16
    assert list(r.properties)[:3] == ["total", "p00", "p01"]
    assert list(r.properties)[-1] == "p14"
    # a track name longer than the bound leaves the type "track"
    long_name = one("segment", dict(seg_events[2], event="E" * 300), norm)
    assert long_name.activity == "track"


def test_sendgrid_event_properties(sg_events, norm) -> None:
    processed, opened, clicked = (one("sendgrid", e, norm) for e in sg_events[:3])
    assert processed.properties == {"category": "cat facts"}
    assert opened.properties == {"category": "cat facts,newsletter"}  # a list, joined
    assert clicked.activity == "click"
    assert clicked.properties == {"url": "http://www.sendgrid.com/"}
    campaign = dict(sg_events[1], marketing_campaign_name="Spring Sale",
                    marketing_campaign_id=12345, sg_template_name="Spring v2")
    assert one("sendgrid", campaign, norm).properties == {
        "category": "cat facts,newsletter", "campaign": "Spring Sale", "campaign_id": "12345",
        "template": "Spring v2"}
    single = dict(sg_events[1], category=None, singlesend_name="Weekly",
                  singlesend_id="27f3-a1")
    assert one("sendgrid", single, norm).properties == {"campaign": "Weekly",
                                                       "campaign_id": "27f3-a1"}
    too_long = dict(sg_events[2], url="https://x.example/" + "a" * 400)
    assert one("sendgrid", too_long, norm).properties == {}


def test_crm_lifecycle_properties(hs_contacts, sf_records, norm) -> None:
    contact = copy.deepcopy(hs_contacts[0])
    contact["properties"].update(lifecyclestage="customer", hs_lead_status="CONNECTED")
    r = one("hubspot", contact, norm)
    assert r.activity == "contact"
    assert r.properties == {"lifecycle_stage": "customer", "lead_status": "CONNECTED"}
    assert one("hubspot", hs_contacts[0], norm).properties == {}

    lead = dict(sf_records[2], LeadSource="Web", Status="Working - Contacted")
    r = one("salesforce", lead, norm)
    assert r.activity == "lead"
    assert r.properties == {"lead_source": "Web", "lead_status": "Working - Contacted"}
    # a Contact's Status is no lead status
    contact_sf = dict(sf_records[0], LeadSource="Partner Referral", Status="ignored")
    assert one("salesforce", contact_sf, norm).properties == {"lead_source": "Partner Referral"}


def test_calendar_event_status_and_response(cal_events, norm) -> None:
    records = {r.source_record_id: r for r in adapt("google_calendar", cal_events[0], norm)}
    bob, jane = records["bob.miller@example.org"], records["janeobrien@gmail.com"]
    assert bob.activity == "organizer"
    assert bob.properties == {"status": "confirmed", "response_status": "accepted"}
    assert jane.properties == {"status": "confirmed", "response_status": "accepted"}
    cancelled = dict(cal_events[0], status="cancelled")
    assert {r.properties["status"] for r in adapt("google_calendar", cancelled, norm)} == {
        "cancelled"}
