"""Normalizer: identifiers (email, phone, device/ad IDs, cookies, typed text) and display values."""

from __future__ import annotations

import pytest

from idgraph.core.errors import ConfigError, InvalidIdentifierError
from idgraph.resolver.model import Identifier
from idgraph.resolver.normalize import Normalizer
from idgraph.resolver.settings import NormalizationSettings


@pytest.fixture(scope="module")
def norm() -> Normalizer:
    return Normalizer()


# ----------------------------------------------------------------------------- email


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Jane.Doe@Example.COM ", "jane.doe@example.com"),
        ("Jane.Doe+news@GMail.com", "janedoe@gmail.com"),
        ("j.a.n.e@googlemail.com", "jane@gmail.com"),  # alias, then Gmail dot rule
        ("jane+work+x@outlook.com", "jane@outlook.com"),
        ("jane.doe+tag@example.com", "jane.doe+tag@example.com"),  # not a plus-tag domain
        ("first.last@outlook.com", "first.last@outlook.com"),  # dots only matter on Gmail
        ("mailto:Jane@Example.com", "jane@example.com"),
        ("MAILTO:jane@example.com?subject=Hi", "jane@example.com"),
        ('"Jane Doe" <Jane@Example.com>', "jane@example.com"),
        ("Jane Doe <jane.doe+x@gmail.com>", "janedoe@gmail.com"),
        ("<jane@example.com>", "jane@example.com"),
        ("jürgen@münchen.de", "jürgen@münchen.de"),
        ("x@xn--80ak6aa92e.com", "x@xn--80ak6aa92e.com"),
    ],
)
def test_email_normalises(norm: Normalizer, raw: str, expected: str) -> None:
    assert norm.email(raw) == expected


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("jane.example.com", "missing @"),
        ("jane@doe@example.com", "more than one @"),
        ("@example.com", "empty local part"),
        ("jane@", "empty domain"),
        ("jane@localhost", "domain has no dot"),
        ("jane doe@example.com", "whitespace"),
        ("jane@exa mple.com", "whitespace"),
        ("jane,doe@example.com", "invalid character"),
        ("jane@-example.com", "malformed domain"),
        ("jane@example..com", "malformed domain"),
        ("jane@example.c", "malformed domain"),
        ("+news@gmail.com", "empty local part before the +tag"),
    ],
)
def test_email_rejects_without_leaking_value(norm: Normalizer, raw: str, problem: str) -> None:
    with pytest.raises(InvalidIdentifierError) as info:
        norm.email(raw)
    message = str(info.value)
    assert message.startswith("email: ")
    assert problem in message
    local = raw.split("@")[0].strip()
    if len(local) > 2:
        assert local not in message  # no PII in the error


def test_email_rejects_non_string(norm: Normalizer) -> None:
    with pytest.raises(InvalidIdentifierError, match="email: not a string"):
        norm.email(12345)  # type: ignore[arg-type]


def test_email_rules_follow_settings() -> None:
    plain = Normalizer(
        NormalizationSettings(
            gmail_remove_dots=False, plus_tag_domains=["example.com"], domain_aliases={}
        )
    )
    assert plain.email("Jane.Doe+x@gmail.com") == "jane.doe+x@gmail.com"
    assert plain.email("jane.doe+x@example.com") == "jane.doe@example.com"
    assert plain.email("jane@googlemail.com") == "jane@googlemail.com"


# ----------------------------------------------------------------------------- phone


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("+49 151 1234 5678", None, "+4915112345678"),
        ("0151 12345678", "DE", "+4915112345678"),
        ("0049 151 12345678", "DE", "+4915112345678"),
        ("(415) 555-2671", None, "+14155552671"),  # default region US
        ("415.555.2671", "US", "+14155552671"),
        ("+1-415-555-2671", "DE", "+14155552671"),  # international ignores the region
        ("tel:+1-415-555-2671", None, "+14155552671"),
        ("07911 123456", "GB", "+447911123456"),
        ("07911 123456", "UK", "+447911123456"),
        ("07911 123456", "United Kingdom", "+447911123456"),  # names are mapped too
        ("49 151 12345678", None, "+4915112345678"),  # international without the "+"
        ("(415) 555-2671 ext. 12", "US", "+14155552671;ext=12"),  # extension kept
    ],
)
def test_phone_e164(norm: Normalizer, raw: str, country: str | None, expected: str) -> None:
    assert norm.phone(raw, country) == expected


@pytest.mark.parametrize(
    ("raw", "country", "problem"),
    [
        ("", None, "empty"),
        ("n/a", None, "not a phone number"),
        ("12", "DE", "not a valid number"),
        ("555-5555", "US", "not a valid number"),
        ("0151 12345678", None, "not a valid number (default region US)"),
        ("+999 1234 5678", None, "unknown or missing country calling code"),
        ("1" * 80, None, "too long"),
    ],
)
def test_phone_rejects(norm: Normalizer, raw: str, country: str | None, problem: str) -> None:
    with pytest.raises(InvalidIdentifierError) as info:
        norm.phone(raw, country)
    assert str(info.value).startswith("phone: ")
    assert problem in str(info.value)


@pytest.mark.parametrize("raw", ["(647) 874-6072", "6478746072", "647 874 6072"])
def test_phone_national_number_not_misread_as_international(norm: Normalizer, raw: str) -> None:
    # a North American number in a British record is invalid there; it must not become
    # +64 (New Zealand) by guessing a missing "+"
    with pytest.raises(InvalidIdentifierError, match="default region GB"):
        norm.phone(raw, "GB")
    assert norm.phone(raw, "CA") == "+16478746072"


def test_phone_international_without_plus(norm: Normalizer) -> None:
    assert norm.phone("14155552671", "DE") == "+14155552671"
    assert norm.phone("44 7911 123456", "US") == "+447911123456"


def test_phone_default_region_from_settings() -> None:
    de = Normalizer(NormalizationSettings(default_phone_region="DE"))
    assert de.phone("0151 12345678") == "+4915112345678"
    # an unknown country falls back to the default region
    assert de.phone("0151 12345678", "Narnia") == "+4915112345678"


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("+49 30 1234567 Durchwahl 204", None, "+49301234567;ext=204"),
        ("030 1234567 Durchwahl: 204", "DE", "+49301234567;ext=204"),
        ("+49 30 1234567 DW 204", None, "+49301234567;ext=204"),  # was misread as +49301234567204
        ("+49 30 1234567 Dw. 204", None, "+49301234567;ext=204"),
        ("+49 30 1234567 Apparat 204", None, "+49301234567;ext=204"),
        ("+33 1 23 45 67 89 poste 204", None, "+33123456789;ext=204"),
        ("(415) 555-2671 ext. 204", "US", "+14155552671;ext=204"),
        ("415-555-2671 extension 204", "US", "+14155552671;ext=204"),
        ("415-555-2671 x204", "US", "+14155552671;ext=204"),
        ("415.555.2671x204", "US", "+14155552671;ext=204"),
        ("+1 415 555 2671;ext=204", None, "+14155552671;ext=204"),
        ("tel:+1-415-555-2671;ext=204", None, "+14155552671;ext=204"),
        ("+14155552671;ext=204", None, "+14155552671;ext=204"),  # the canonical form is stable
    ],
)
def test_phone_extension_kept(norm: Normalizer, raw: str, country: str | None, expected: str):
    assert norm.phone(raw, country) == expected


def test_phone_extension_is_not_the_switchboard(norm: Normalizer) -> None:
    main = norm.phone("+49 30 1234567")
    assert main == "+49301234567"
    assert norm.phone("+49 30 1234567 Durchwahl 204") != main
    assert norm.phone("+49 30 1234567 Durchwahl 205") != norm.phone("+49 30 1234567 DW 204")
    assert norm.identifier("phone:+49 30 1234567 ext. 204") == Identifier(
        "phone", "+49301234567;ext=204"
    )


def test_phone_failures_are_cached_and_still_raise(norm: Normalizer) -> None:
    for _ in range(3):
        with pytest.raises(InvalidIdentifierError):
            norm.phone("12", "DE")


# ----------------------------------------------------------------------------- device/ad IDs


def test_device_id(norm: Normalizer) -> None:
    assert norm.device_id(" B5372DB0-C21E-11E4-8DFC-AA07A5B093DB ") == (
        "b5372db0-c21e-11e4-8dfc-aa07a5b093db"
    )
    assert norm.device_id("a1b2c3d4e5f60718") == "a1b2c3d4e5f60718"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "  ",
        "unknown",
        "NULL",
        "undefined",
        "None",
        "0",
        "00000000-0000-0000-0000-000000000000",
        "ffffffff-ffff-ffff-ffff-ffffffffffff",
        "aaaa",
    ],
)
def test_device_id_placeholders_rejected(norm: Normalizer, raw: str) -> None:
    with pytest.raises(InvalidIdentifierError, match="^device: "):
        norm.device_id(raw)


def test_advertising_ids(norm: Normalizer) -> None:
    assert norm.advertising_id("aebe52e7-03ee-455a-b3c4-e57283966239", "idfa") == (
        "AEBE52E7-03EE-455A-B3C4-E57283966239"
    )
    assert norm.advertising_id(" 38400000-8CF0-11BD-B23E-10B96E40000D", "gaid") == (
        "38400000-8cf0-11bd-b23e-10b96e40000d"
    )
    assert norm.advertising_id("384000008cf011bdb23e10b96e40000d", "gaid") == (
        "38400000-8cf0-11bd-b23e-10b96e40000d"
    )


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("00000000-0000-0000-0000-000000000000", "all-zero opt-out placeholder"),
        ("not-a-uuid", "not a UUID"),
        ("38400000-8cf0-11bd-b23e-10b96e40000", "not a UUID"),
        ("38400000-8cf0-11bd-b23e-10b96e40000g", "not a UUID"),
    ],
)
@pytest.mark.parametrize("kind", ["idfa", "gaid"])
def test_advertising_id_rejects(norm: Normalizer, raw: str, problem: str, kind: str) -> None:
    with pytest.raises(InvalidIdentifierError) as info:
        norm.advertising_id(raw, kind)
    assert str(info.value) == f"{kind}: {problem}"


def test_advertising_id_unknown_kind(norm: Normalizer) -> None:
    with pytest.raises(ValueError):
        norm.advertising_id("aebe52e7-03ee-455a-b3c4-e57283966239", "adid")


def test_cookie_keeps_case(norm: Normalizer) -> None:
    assert norm.cookie(" 6D5E2C1B-0a9f ") == "6D5E2C1B-0a9f"
    for raw in ("", "undefined", "null", "0", "00000000-0000-0000-0000-000000000000"):
        with pytest.raises(InvalidIdentifierError, match="^cookie: "):
            norm.cookie(raw)


# ----------------------------------------------------------------------------- typed text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("email: Jane.Doe+news@GMail.com ", Identifier("email", "janedoe@gmail.com")),
        ("EMAIL:jane@example.com", Identifier("email", "jane@example.com")),
        ("phone:+49 151 1234 5678", Identifier("phone", "+4915112345678")),
        ("phone:(415) 555-2671", Identifier("phone", "+14155552671")),
        (
            "device:B5372DB0-C21E-11E4-8DFC-AA07A5B093DB",
            Identifier("device", "b5372db0-c21e-11e4-8dfc-aa07a5b093db"),
        ),
        (
            "idfa:aebe52e7-03ee-455a-b3c4-e57283966239",
            Identifier("idfa", "AEBE52E7-03EE-455A-B3C4-E57283966239"),
        ),
        (
            "gaid:38400000-8CF0-11BD-B23E-10B96E40000D",
            Identifier("gaid", "38400000-8cf0-11bd-b23e-10b96e40000d"),
        ),
        ("cookie:507f191e810c19729de860EA", Identifier("cookie", "507f191e810c19729de860EA")),
        ("crm:salesforce: 0035e00000AbCdEAAB ", Identifier("crm:salesforce", "0035e00000AbCdEAAB")),
        ("CRM:HubSpot:51", Identifier("crm:hubspot", "51")),
        ("user:segment:97980cfeA0067", Identifier("user:segment", "97980cfeA0067")),
        ("ext:shopify:8472", Identifier("ext:shopify", "8472")),
        (
            "message:<14c5d75ce93.dfd.64b469@ISMTPD-555>",
            Identifier("message", "14c5d75ce93.dfd.64b469@ismtpd-555"),
        ),
        # a 15-character Salesforce ID is looked up in the 18-character form records carry
        ("crm:salesforce:0035e00000AbCdE", Identifier("crm:salesforce", "0035e00000AbCdEAAV")),
    ],
)
def test_identifier_parses_and_normalises(
    norm: Normalizer, text: str, expected: Identifier
) -> None:
    assert norm.identifier(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("janedoe@gmail.com", "TYPE:VALUE"),
        ("twitter:@jane", "unknown identifier type (the text before the first ':')"),
        ("email:   ", "empty value"),
        ("crm:51", "needs a namespace"),
        ("email:jane.example.com", "email: missing @"),
        ("phone:12", "phone: not a valid number"),
        ("idfa:00000000-0000-0000-0000-000000000000", "idfa: all-zero"),
        ("gaid:xyz", "gaid: not a UUID"),
        ("device:unknown", "device: placeholder"),
        ("cookie:null", "cookie: placeholder"),
        ("crm:salesforce:" + "x" * 300, "crm:salesforce: longer than"),
        ("message:no-at-sign", "message: missing @"),
    ],
)
def test_identifier_errors_name_type_and_problem(
    norm: Normalizer, text: str, fragment: str
) -> None:
    with pytest.raises(InvalidIdentifierError) as info:
        norm.identifier(text)
    assert fragment in str(info.value)


# ----------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("jane", "Jane"),
        ("JANE", "Jane"),
        ("o'brien", "O'Brien"),
        ("O'BRIEN", "O'Brien"),
        ("d\u2019angelo", "D\u2019Angelo"),
        ("mcdonald", "Mcdonald"),
        ("McDonald", "McDonald"),  # mixed case is kept
        ("DeVito", "DeVito"),
        ("anne-marie", "Anne-Marie"),
        ("JEAN-PAUL SARTRE", "Jean-Paul Sartre"),
        ("ludwig van beethoven", "Ludwig van Beethoven"),
        ("van der berg", "Van der Berg"),
        ("  Mary   Ann  ", "Mary Ann"),
        ("Smith,", "Smith"),
        ('"Jane"', "Jane"),
        ("Jose\u0301", "Jos\u00e9"),  # NFC
        ("ZOË", "Zoë"),
        ("李小龍", "李小龍"),
    ],
)
def test_name_display(norm: Normalizer, raw: str, expected: str) -> None:
    assert norm.name(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [None, "", "   ", "unknown", "UNKNOWN", "n/a", "N/A", "-", "[not provided]", "null", "..."],
)
def test_name_placeholders(norm: Normalizer, raw: str | None) -> None:
    assert norm.name(raw) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("José", "jose"),
        ("JOSÉ", "jose"),
        ("Müller", "muller"),
        ("Straße", "strasse"),
        ("O'Brien", "obrien"),
        ("Anne-Marie  Dupont", "anne marie dupont"),
        ("Ørsted", "orsted"),
        ("Łukasz", "lukasz"),
        ("  Zoë  ", "zoe"),
        ("J.R.R. Tolkien", "j r r tolkien"),
    ],
)
def test_name_key(norm: Normalizer, raw: str, expected: str) -> None:
    assert norm.name_key(raw) == expected


def test_name_key_equates_variants(norm: Normalizer) -> None:
    assert norm.name_key("JOSÉ GARCÍA") == norm.name_key("jose garcia")
    assert norm.name_key("Müller") != norm.name_key("Miller")


# ----------------------------------------------------------------------------- country & co


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("de", "DE"),
        ("DE", "DE"),
        ("DEU", "DE"),
        ("deu", "DE"),
        ("Germany", "DE"),
        (" germany ", "DE"),
        ("Deutschland", "DE"),
        ("United States", "US"),
        ("United States of America", "US"),
        ("USA", "US"),
        ("U.S.A.", "US"),
        ("UK", "GB"),
        ("United Kingdom", "GB"),
        ("Great Britain", "GB"),
        ("GBR", "GB"),
        ("the Netherlands", "NL"),
        ("Korea, Republic of", "KR"),
        ("South Korea", "KR"),
        ("Côte d'Ivoire", "CI"),
        ("Cote d'Ivoire", "CI"),
        ("St. Lucia", "LC"),
        ("Türkiye", "TR"),
        ("Turkey", "TR"),
        ("España", "ES"),
        ("Brasil", "BR"),
    ],
)
def test_country(norm: Normalizer, raw: str, expected: str) -> None:
    assert norm.country(raw) == expected


@pytest.mark.parametrize("raw", [None, "", "  ", "XX", "ZZZ", "Narnia", "Atlantis"])
def test_country_unknown(norm: Normalizer, raw: str | None) -> None:
    assert norm.country(raw) is None


def test_text_and_postal_code(norm: Normalizer) -> None:
    assert norm.text("  Head of   Procurement ") == "Head of Procurement"
    assert norm.text("[not provided]") is None
    assert norm.text("VP, Sales") == "VP, Sales"
    assert norm.postal_code(" sw1a 1aa ") == "SW1A 1AA"
    assert norm.postal_code("") is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "1985-04-12",
            {
                "birth_date": "1985-04-12",
                "birth_year": "1985",
                "birth_month": "4",
                "birth_day": "12",
            },
        ),
        (
            "1985-04-12T00:00:00.000Z",
            {
                "birth_date": "1985-04-12",
                "birth_year": "1985",
                "birth_month": "4",
                "birth_day": "12",
            },
        ),
        (
            "04/12/1985",
            {
                "birth_date": "1985-04-12",
                "birth_year": "1985",
                "birth_month": "4",
                "birth_day": "12",
            },
        ),
        (
            "482112000000",
            {
                "birth_date": "1985-04-12",
                "birth_year": "1985",
                "birth_month": "4",
                "birth_day": "12",
            },
        ),
        ("1985-04", {"birth_year": "1985", "birth_month": "4"}),
        ("1985", {"birth_year": "1985"}),
        ("1985-02-30", {}),
        ("1985-13-01", {}),
        ("1850-01-01", {}),
        ("2999-01-01", {}),
        ("last tuesday", {}),
        (None, {}),
    ],
)
def test_birth_date(norm: Normalizer, raw: str | None, expected: dict) -> None:
    assert norm.birth_date(raw) == expected


# ----------------------------------------------------------------------------- Message-IDs


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("<14c5d75ce93.dfd.64b469@ismtpd-555>", "14c5d75ce93.dfd.64b469@ismtpd-555"),
        ("  <14c5d75ce93.dfd.64b469@ismtpd-555>\r\n", "14c5d75ce93.dfd.64b469@ismtpd-555"),
        ("14c5d75ce93.dfd.64b469@ismtpd-555", "14c5d75ce93.dfd.64b469@ismtpd-555"),
        # the local part keeps its case, the domain part is lower-cased
        ("<CAGs=3Kq1vV0bJx7@Mail.Gmail.COM>", "CAGs=3Kq1vV0bJx7@mail.gmail.com"),
        ("< 518d4a28.5080@mail115.example.com >", "518d4a28.5080@mail115.example.com"),
    ],
)
def test_message_id_normalises(norm: Normalizer, raw: str, expected: str) -> None:
    assert norm.message_id(raw) == expected


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("", "message: empty"),
        ("<>", "message: empty"),
        ("<secret-id.example.com>", "message: missing @"),
        ("<@example.com>", "message: empty part before the @"),
        ("<secret-id@>", "message: empty domain"),
        ("<secret id@example.com>", "message: contains whitespace"),
        ("<secret@x> <other@y>", "message: contains whitespace, angle brackets"),
        ("<" + "x" * 300 + "@example.com>", "message: longer than"),
        (42, "message: not a string"),
    ],
)
def test_message_id_rejects_without_leaking_value(norm: Normalizer, raw, problem: str) -> None:
    with pytest.raises(InvalidIdentifierError) as info:
        norm.message_id(raw)
    assert str(info.value).startswith(problem)
    assert "secret" not in str(info.value)


# ----------------------------------------------------------------------------- Salesforce IDs


def test_salesforce_id_15_gets_the_18_character_form(norm: Normalizer) -> None:
    # the suffix encodes which of the first 15 characters are upper case
    assert norm.salesforce_id("0035e00000AbCdE") == "0035e00000AbCdEAAV"
    assert norm.salesforce_id(" 00Q5e00000LmNoP ") == "00Q5e00000LmNoPEAV"
    assert norm.salesforce_id("003000000000000") == "003000000000000AAA"
    assert norm.salesforce_id("0035e00000AbCdEAAV") == "0035e00000AbCdEAAV"
    assert norm.salesforce_id("0035e00000AbCdEAAB") == "0035e00000AbCdEAAB"  # 18 kept as is
    assert norm.salesforce_id("51") == "51"  # not an ID: kept (the adapter's Id, lookups)


def test_salesforce_id_strict(norm: Normalizer) -> None:
    assert norm.salesforce_id("0035e00000AbCdE", strict=True) == "0035e00000AbCdEAAV"
    for raw in ("51", "0035e00000AbCdEAA", "0035e00000AbC-EAAV"):
        with pytest.raises(InvalidIdentifierError, match="crm:salesforce: not a Salesforce"):
            norm.salesforce_id(raw, strict=True)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0035e00000AbCdE", True),  # Contact, 15 characters
        ("0035e00000AbCdEAAV", True),  # Contact, 18 with its suffix
        ("0035e00000abcdeAAA", True),
        ("00Q5e00000LmNoPEAV", True),  # Lead
        ("00Q5e00000LmNoPeav", True),  # suffix compared case-insensitively
        ("0035e00000AbCdEAAB", False),  # wrong case-check suffix
        ("0015e00000AbCdEAAV", False),  # an Account
        ("003-5e00000AbCdE", False),
        ("0035e00000AbCd", False),
        (3512345678901234, False),
        (None, False),
    ],
)
def test_is_salesforce_person_id(norm: Normalizer, raw, expected: bool) -> None:
    assert norm.is_salesforce_person_id(raw) is expected


# ----------------------------------------------------------------------------- custom arguments


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("user_id", "user:segment"),
        ("userId", "user:segment"),
        ("USER-ID", "user:segment"),
        ("uid", "user:segment"),
        ("appUserId", "user:segment"),
        ("salesforce_id", "crm:salesforce"),
        ("sfdcContactId", "crm:salesforce"),
        ("salesforce_contact_id", "crm:salesforce"),
        ("sf_lead_id", "crm:salesforce"),
        ("contact_id", "crm:salesforce"),
        ("leadId", "crm:salesforce"),
        ("hubspot_id", "crm:hubspot"),
        ("hs_contact_id", "crm:hubspot"),
        ("hubspotContactId", "crm:hubspot"),
        ("hs_object_id", "crm:hubspot"),
        ("customerAccountNumber", None),
        ("campaign", None),
        ("user", None),
    ],
)
def test_custom_arg_type(norm: Normalizer, name: str, expected: str | None) -> None:
    assert norm.custom_arg_type(name) == expected


def test_custom_arg_types_follow_settings() -> None:
    custom = Normalizer(NormalizationSettings(sendgrid_custom_args={"Member No": "ext:club"}))
    assert custom.custom_arg_type("member_no") == "ext:club"
    assert custom.custom_arg_type("user_id") is None  # the mapping replaces the defaults


@pytest.mark.parametrize("typ", ["crm", "twitter", "user:segment:x", ""])
def test_custom_arg_types_must_be_identifier_types(typ: str) -> None:
    with pytest.raises(ConfigError, match="normalization.sendgrid_custom_args.member"):
        Normalizer(NormalizationSettings(sendgrid_custom_args={"member": typ}))


# ----------------------------------------------------------------------------- company


@pytest.mark.parametrize(
    "raw",
    [
        "Individual",
        "PRIVATE",
        "self",
        "Self-employed",
        "self employed",
        "(Self-Employed)",
        "N/A",
        "NA",
        "n.a.",
        "[N/A]",
        "none",
        "-",
        "--",
        "[not provided]",
        "Not Provided",
        "unknown",
        "Privat",
        "Privatperson",
        "particulier",
        "Home",
        "[Test]",
        "  test ",
    ],
)
def test_company_placeholders_name_no_company(norm: Normalizer, raw: str) -> None:
    assert norm.company(raw) is None
    assert norm.text(raw) is None or norm.text(raw) == raw.strip()  # text() is unchanged


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Acme GmbH", "Acme GmbH"),
        ("  Home Depot ", "Home Depot"),
        ("Private Equity Partners", "Private Equity Partners"),
        ("Individual Systems Inc.", "Individual Systems Inc."),
        ("3M", "3M"),
        (None, None),
    ],
)
def test_company_keeps_real_companies(norm: Normalizer, raw, expected) -> None:
    assert norm.company(raw) == expected


def test_placeholder_companies_follow_settings() -> None:
    custom = Normalizer(NormalizationSettings(placeholder_companies=["Freelance"]))
    assert custom.company("[FREELANCE]") is None
    assert custom.company("Self-employed") == "Self-employed"
