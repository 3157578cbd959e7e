"""Home regions from every kind of evidence (resolver/regions.py): country, phone, locale,
time zone, then the per-source override; through the adapters and through the engine.

The HubSpot payloads follow the CRM v3 contact object (``GET /crm/v3/objects/contacts``):
``id``, ``properties`` (strings or null, HubSpot's internal property names: ``phone``,
``hs_language`` such as ``en-gb``, ``hs_timezone`` such as ``europe_slash_london``),
``createdAt``, ``updatedAt``, ``archived``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import phonenumbers
import pytest
from helpers import record
from phonenumbers import PhoneNumberFormat, PhoneNumberType
from pydantic import ValidationError

from idgraph.engine import Engine
from idgraph.resolver.adapters import adapt
from idgraph.resolver.normalize import Normalizer
from idgraph.resolver.regions import (
    NO_EVIDENCE,
    RegionDecision,
    RegionPolicy,
    locale_country,
    phone_country,
    timezone_country,
    zone_countries,
)
from idgraph.resolver.settings import RegionSettings
from idgraph.settings import Settings
from idgraph.stream.events import RawEvent
from idgraph.stream.processor import BatchProcessor
from idgraph.stream.produce import topic_of_system

UK_PHONE = "+44 20 7946 0018"  # an Ofcom drama number: London, never assigned


def hubspot_contact(contact_id: str, **properties: str | None) -> dict:
    """A CRM v3 contact object as HubSpot's API returns it."""
    return {
        "id": contact_id,
        "properties": {
            "createdate": "2024-03-01T09:00:00.000Z",
            "email": None,
            "firstname": "Olivia",
            "hs_object_id": contact_id,
            "lastmodifieddate": "2024-03-02T10:15:00.000Z",
            "lastname": "Bennett",
            **properties,
        },
        "createdAt": "2024-03-01T09:00:00.000Z",
        "updatedAt": "2024-03-02T10:15:00.000Z",
        "archived": False,
    }


@pytest.fixture(scope="module")
def policy() -> RegionPolicy:
    return RegionPolicy(RegionSettings())


@pytest.fixture(scope="module")
def norm() -> Normalizer:
    return Normalizer()


def decide(policy: RegionPolicy, source: str, payload: dict, norm: Normalizer) -> RegionDecision:
    [r] = adapt(source, payload, norm)
    return policy.decide(r)


# ------------------------------------------------------------------- pieces of evidence


@pytest.mark.parametrize(("locale", "country"), [
    ("en-GB", "GB"), ("en-gb", "GB"), ("de_DE.UTF-8", "DE"), ("de_DE@euro", "DE"),
    ("zh-Hant-TW", "TW"), ("en-UK", "GB"), ("pt-BR", "BR"),
    ("en", None), ("de", None), ("es-419", None), ("zh-chs", None), ("en-x-gb", None), ("", None),
    (None, None),
])
def test_locale_country_is_the_region_subtag(locale: str | None, country: str | None) -> None:
    assert locale_country(locale) == country


@pytest.mark.parametrize(("zone", "country"), [
    ("Europe/Berlin", "DE"), ("europe/london", "GB"), ("America/New_York", "US"),
    ("Asia/Kolkata", "IN"), ("America/Argentina/Buenos_Aires", "AR"),
    ("america/port-au-prince", "HT"),
    # not in zone.tab: no country (a backward link may name another country's zone)
    ("UTC", None), ("Etc/GMT+1", None), ("US/Eastern", None), ("Eire", None), ("", None),
])
def test_timezone_country_reads_zone_tab(zone: str, country: str | None) -> None:
    assert zone_countries(), "no zone.tab: the tzdata package or a system zoneinfo is needed"
    assert timezone_country(zone) == country


@pytest.mark.parametrize(("phone", "country"), [
    ("+442079460018", "GB"), ("+14155550123", "US"), ("+4915112345678", "DE"),
    ("+61460802617", "AU"), ("+14155550123;ext=12", "US"),
    ("+80012345678", None),  # international freephone: no country
    ("+15555555555", None),  # unassigned
])
def test_phone_country(phone: str, country: str | None) -> None:
    assert phone_country(phone) == country


def _every_example_number() -> list[str]:
    """An example number of every type of every region phonenumbers knows, in E.164."""
    out = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in (PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE,
                     PhoneNumberType.TOLL_FREE, PhoneNumberType.VOIP):
            n = phonenumbers.example_number_for_type(region, kind)
            if n is not None:
                out.append(phonenumbers.format_number(n, PhoneNumberFormat.E164))
    for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
        n = phonenumbers.example_number_for_non_geo_entity(code)
        if n is not None:
            out.append(phonenumbers.format_number(n, PhoneNumberFormat.E164))
    return out


def test_phone_country_without_a_parse_equals_the_parse_for_every_region():
    """The calling-code shortcut gives what phonenumbers' own parse gives, for example
    numbers of every region (lone and shared calling codes, non-geographic ones)."""
    numbers = _every_example_number()
    assert len(numbers) > 600
    for number in numbers:
        parsed = phonenumbers.region_code_for_number(phonenumbers.parse(number))
        expected = parsed if parsed and parsed.isalpha() else None
        assert phone_country(number) == expected, number
        assert phone_country(number + ";ext=12") == expected, number


# -------------------------------------------------------------------------- the order


def test_evidence_order_country_phone_locale_timezone_source(policy: RegionPolicy) -> None:
    def r(ids=(), locale="", time_zone="", source="hubspot", **attributes):
        rec = record(source, "1", "e1", 1, list(ids), **attributes)
        rec.locale, rec.time_zone = locale, time_zone
        return rec

    everything = {"ids": ["phone:+442079460018"], "locale": "de-DE", "time_zone": "Asia/Tokyo"}
    assert policy.decide(r(country="US", **everything)) == ("us", "country")
    assert policy.decide(r(**everything)) == ("uk", "phone")
    assert policy.decide(r(locale="de-DE", time_zone="Asia/Tokyo")) == ("eu", "locale")
    assert policy.decide(r(locale="en", time_zone="Asia/Tokyo")) == ("apac", "timezone")
    # evidence naming no country of country_regions is passed over, not a stop
    assert policy.decide(r(country="ZA", locale="en-ZA", time_zone="Europe/Paris")) == (
        "eu", "timezone")
    assert policy.decide(r(ids=["phone:+80012345678"])) == ("", NO_EVIDENCE)
    assert policy.decide(r(source="sendgrid")) == ("", NO_EVIDENCE)
    # disagreeing phones: the strictest of their regions
    assert policy.decide(r(ids=["phone:+14155550123", "phone:+4915112345678"])) == (
        "eu", "phone")

    sendgrid_eu = RegionPolicy(RegionSettings(source_regions={"sendgrid": "eu"}))
    assert sendgrid_eu.decide(r(source="sendgrid")) == ("eu", "source")
    assert sendgrid_eu.decide(r(source="sendgrid", time_zone="America/Chicago")) == (
        "us", "timezone")
    assert policy.region_of("hubspot", "gb") == "uk"  # country and source alone, as before


def test_evidence_kinds_are_configurable(policy: RegionPolicy) -> None:
    only_country = RegionPolicy(RegionSettings(evidence=["country"]))
    rec = record("hubspot", "1", "e1", 1, ["phone:+442079460018"])
    assert policy.decide(rec) == ("uk", "phone")
    assert only_country.decide(rec) == ("", NO_EVIDENCE)
    with pytest.raises(ValidationError, match="listed twice"):
        RegionSettings(evidence=["phone", "phone"])
    with pytest.raises(ValidationError):
        RegionSettings(evidence=["ip_address"])


# ------------------------------------------------------------------------ the adapters


def test_hubspot_contact_with_a_uk_phone_and_no_country_is_uk(
    policy: RegionPolicy, norm: Normalizer
) -> None:
    contact = hubspot_contact("4201", email="olivia.bennett@example.com", phone=UK_PHONE)
    assert "country" not in contact["properties"]
    [r] = adapt("hubspot", contact, norm)
    assert "country" not in r.attributes and r.attributes["phone"] == "+442079460018"
    assert policy.decide(r) == RegionDecision("uk", "phone")
    # a mobile number counts as well; a Guernsey one (+44 7911 12...) is GG, no region
    mobile = hubspot_contact("4202", mobilephone="+44 7400 123456", phone=None)
    assert decide(policy, "hubspot", mobile, norm) == ("uk", "phone")
    guernsey = hubspot_contact("4204", mobilephone="+44 7911 123456", hs_language="en-gb")
    assert decide(policy, "hubspot", guernsey, norm) == ("uk", "locale")
    # an explicit country field still wins over the phone
    abroad = hubspot_contact("4203", phone=UK_PHONE, country="Germany")
    assert decide(policy, "hubspot", abroad, norm) == ("eu", "country")


def test_hubspot_language_and_time_zone_are_evidence(policy: RegionPolicy,
                                                      norm: Normalizer) -> None:
    british = hubspot_contact("4301", email="a@example.org", hs_language="en-gb")
    [r] = adapt("hubspot", british, norm)
    assert (r.locale, "locale" in r.attributes) == ("en-gb", False)
    assert policy.decide(r) == ("uk", "locale")
    london = hubspot_contact("4302", email="b@example.org", hs_language="en",
                             hs_timezone="europe_slash_london")
    [r] = adapt("hubspot", london, norm)
    assert r.time_zone == "europe/london"
    assert policy.decide(r) == ("uk", "timezone")
    haiti = hubspot_contact("4303", email="c@example.org",
                            hs_timezone="america_slash_port_hyphen_au_hyphen_prince")
    assert adapt("hubspot", haiti, norm)[0].time_zone == "america/port-au-prince"
    nothing = hubspot_contact("4304", email="d@example.org", hs_language="en")
    assert decide(policy, "hubspot", nothing, norm) == ("", NO_EVIDENCE)


def test_segment_context_locale_and_timezone_are_evidence(policy: RegionPolicy,
                                                           norm: Normalizer) -> None:
    def track(context: dict) -> dict:
        return {"type": "track", "event": "Order Completed", "messageId": "m-1",
                "anonymousId": "a-1", "timestamp": "2024-03-02T10:15:00.000Z",
                "properties": {"total": 12.5}, "context": context}

    assert decide(policy, "segment", track({"locale": "de-DE"}), norm) == ("eu", "locale")
    assert decide(policy, "segment", track({"locale": "en-US", "timezone": "Europe/Berlin"}),
                  norm) == ("us", "locale")
    assert decide(policy, "segment", track({"locale": "en", "timezone": "Europe/Berlin"}),
                  norm) == ("eu", "timezone")
    assert decide(policy, "segment", track({"timezone": 5}), norm) == ("", NO_EVIDENCE)
    [r] = adapt("segment", track({"locale": "en-GB", "timezone": "Europe/London"}), norm)
    assert (r.locale, r.time_zone) == ("en-GB", "Europe/London")
    assert "locale" not in r.attributes and "time_zone" not in r.properties


# -------------------------------------------------------------------------- the engine


@pytest.fixture
def engine(tmp_path):
    with Engine(Settings(data_dir=tmp_path / "d")) as e:
        yield e


def test_a_hubspot_contact_on_the_crm_topic_with_a_uk_phone_is_stored_in_uk(engine) -> None:
    """The worker's path (no broker): the contact produced to the crm topic as HubSpot's
    API returns it, with a UK phone and no country."""
    stream = Settings().stream
    contact = hubspot_contact("4401", email="olivia.bennett@example.com", phone=UK_PHONE)
    topic = topic_of_system(stream)["hubspot"]
    outcome = BatchProcessor(engine, stream).process([RawEvent(
        topic, 0, 0, b"4401", orjson.dumps(contact), [("source", b"hubspot")])])
    assert outcome.result.events_applied == 1 and not outcome.dead
    profile = engine.queries.lookup("phone:+442079460018").profile
    assert profile.region == "uk"
    stored = engine.store.get_records(["hubspot:4401"])["hubspot:4401"]
    assert (stored.region, stored.home_region) == ("uk", "uk")


def test_a_default_region_profile_moves_when_evidence_arrives(engine) -> None:
    email = "noor@example.net"
    engine.ingest([record("sendgrid", email, "sg-1", 1, [f"email:{email}"])])
    profile = engine.queries.lookup(f"email:{email}").profile
    default = engine.settings.regions.default_region
    assert profile.region == default
    # nothing says where Noor lives: the home is only the default (no record has a region)
    assert [r.region for r in engine.store.get_profile(profile.profile_id).records] == [""]

    contact = hubspot_contact("4501", email=email, phone=UK_PHONE)
    result = engine.ingest_payloads([("hubspot", contact)])
    assert result.events_applied == 1
    moved = engine.queries.lookup(f"email:{email}").profile
    assert (moved.profile_id, moved.region) == (profile.profile_id, "uk")
    assert engine.queries.lookup(f"email:{email}").profile.region == "uk"


def test_an_event_without_evidence_keeps_the_records_region(engine) -> None:
    """A Segment identify with a locale, then server-side track calls with no context: the
    record keeps its region (absence of evidence does not move the profile back)."""
    def call(n: int, context: dict) -> dict:
        return {"type": "track" if n else "identify", "event": "Viewed", "messageId": f"m-{n}",
                "userId": "u-77", "timestamp": datetime.fromtimestamp(1_700_000_000 + n, UTC)
                .isoformat(), "context": context, "traits": {"email": "kai@example.org"}}

    engine.ingest_payloads([("segment", call(0, {"locale": "en-GB"}))])
    assert engine.queries.lookup("user:segment:u-77").profile.region == "uk"
    engine.ingest_payloads([("segment", call(1, {}))])
    assert engine.queries.lookup("user:segment:u-77").profile.region == "uk"
    assert engine.store.get_records(["segment:u-77"])["segment:u-77"].region == "uk"
    # newer evidence does change it
    engine.ingest_payloads([("segment", call(2, {"locale": "de-DE"}))])
    assert engine.queries.lookup("user:segment:u-77").profile.region == "eu"
