"""Identifier and attribute normalisation.

Every adapter and the gRPC ``Lookup`` go through one :class:`Normalizer`, so a value typed by
a client and the same value seen in a payload always end up as the same canonical text.

Error messages name the identifier type and the problem, never the raw value (no PII in
errors or logs).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from datetime import UTC, date, datetime

import phonenumbers
from idgraph.core.errors import InvalidIdentifierError
from idgraph.resolver.model import Identifier
from idgraph.resolver.settings import NormalizationSettings
from phonenumbers import NumberParseException, PhoneNumberFormat

__all__ = ["Normalizer"]

# --------------------------------------------------------------------------- constants

#: Values that mean "no value" for device IDs and cookies (compared lower-case).
_ID_PLACEHOLDERS = frozenset(
    {"unknown", "null", "undefined", "none", "nil", "0", "n/a", "(null)", "<null>", "nan", "-"}
)

#: Display values that mean "no name / no value" (compared case-folded).
_TEXT_PLACEHOLDERS = frozenset(
    {
        "unknown",
        "[unknown]",
        "(unknown)",
        "n/a",
        "n.a.",
        "-",
        "--",
        "---",
        ".",
        "?",
        "??",
        "none",
        "(none)",
        "[none]",
        "null",
        "nil",
        "undefined",
        "[not provided]",
        "not provided",
        "not available",
        "not specified",
        "[not specified]",
    }
)

#: Name particles ("van", "de", "al"...): kept lower-case inside a title-cased name, and
#: part of the family name when a full name is split.
NAME_PARTICLES = frozenset(
    {
        "al",
        "bin",
        "da",
        "das",
        "de",
        "del",
        "della",
        "den",
        "der",
        "di",
        "do",
        "dos",
        "du",
        "el",
        "ibn",
        "la",
        "le",
        "ten",
        "ter",
        "van",
        "von",
        "y",
        "zu",
    }
)

#: Characters stripped from both ends of display names.
_NAME_END_PUNCT = " \t.,;:!?\"'`()[]{}<>/\\|*_-~#+=\u2018\u2019\u201c\u201d\u00ab\u00bb\u2013\u2014"
_TEXT_END_PUNCT = ' \t,;:"`|*_~#=\u201c\u201d\u00ab\u00bb'

_APOSTROPHES = "'\u2019"
_ZERO_UUID = "00000000-0000-0000-0000-000000000000"

_UUID_RE = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_HEX32_RE = re.compile(r"[0-9a-fA-F]{32}")
_EMAIL_LOCAL_RE = re.compile(r"[^\s@<>()\[\]\\,;:\"]+")
_EMAIL_DOMAIN_RE = re.compile(
    r"(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+(?:[^\W\d_]{2,63}|xn--[a-z0-9-]{1,59})"
)
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_APOS_SPLIT_RE = re.compile(r"(['\u2019])")
_DATE_RE = re.compile(r"(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?(?:[T ].*)?")
_US_DATE_RE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")

#: Letters NFKD does not decompose, mapped to their usual ASCII matching form.
_NAME_KEY_FOLD = str.maketrans(
    {
        "ø": "o",
        "ł": "l",
        "đ": "d",
        "ð": "d",
        "þ": "th",
        "æ": "ae",
        "œ": "oe",
        "ı": "i",
        "ħ": "h",
        "ŧ": "t",
        "ŀ": "l",
    }
)
_NAME_KEY_SEPARATORS = frozenset("-_\u2010\u2011\u2012\u2013\u2014/.,")

_PHONE_ERRORS = {
    NumberParseException.INVALID_COUNTRY_CODE: "unknown or missing country calling code",
    NumberParseException.NOT_A_NUMBER: "not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_LONG: "too long",
}
_PHONE_REGIONS = frozenset(phonenumbers.SUPPORTED_REGIONS)
_MAX_ID_LEN = 256


# --------------------------------------------------------------------------- phones


def _is_valid(number: phonenumbers.PhoneNumber) -> bool:
    """``is_valid_number``, trying the calling code's main region first (for +1 that skips
    the scan over the ~25 NANP regions)."""
    main = phonenumbers.region_code_for_country_code(number.country_code)
    return phonenumbers.is_valid_number_for_region(number, main) or phonenumbers.is_valid_number(
        number
    )


_PHONE_SEPARATORS = str.maketrans("", "", " -./\u00a0\t\u2010\u2011\u2012\u2013")
_PHONE_KEY_CHARS = frozenset("+()0123456789")


def _phone_key(raw: str) -> str:
    """Cache key of a raw phone text: separators removed when the rest is plain digits,
    ``+`` and parentheses (``(415) 555-2671`` and ``415.555.2671`` share one parse)."""
    text = raw.strip()
    if text[:4].lower() == "tel:":
        text = text[4:].strip()
    key = text.translate(_PHONE_SEPARATORS)
    return key if _PHONE_KEY_CHARS.issuperset(key) else text


@functools.lru_cache(maxsize=1 << 16)
def _phone_e164(text: str, region: str) -> tuple[str | None, str]:
    """Parse ``text`` (a :func:`_phone_key`) with default ``region``; return (E.164, "") or
    (None, problem). Cached (parsing costs tens of microseconds); failures are cached too.
    """
    if not text:
        return None, "empty"
    if len(text) > 64:
        return None, "too long"
    if not any(c.isdigit() for c in text):
        return None, "not a phone number"
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        return None, _PHONE_ERRORS.get(exc.error_type, "cannot be parsed")
    if not _is_valid(number):
        # An international number written without its "+" ("49 151 ..."): only plain digit
        # strings of E.164 length without a trunk "0", so national numbers of other
        # countries (10-digit North American ones) are not misread.
        if len(text) >= 11 and text.isdigit() and text[0] != "0":
            try:
                alt = phonenumbers.parse("+" + text, None)
            except NumberParseException:
                alt = None
            if alt is not None and _is_valid(alt):
                return phonenumbers.format_number(alt, PhoneNumberFormat.E164), ""
        return None, f"not a valid number (default region {region})"
    return phonenumbers.format_number(number, PhoneNumberFormat.E164), ""


# --------------------------------------------------------------------------- names


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _cap(part: str) -> str:
    return part[:1].upper() + part[1:].lower()


def _title_apostrophes(part: str) -> str:
    """``o'brien`` -> ``O'Brien``; ``ma'ilo`` -> ``Ma'ilo`` (only after a one-letter prefix)."""
    if "'" not in part and "\u2019" not in part:
        return _cap(part)
    pieces = _APOS_SPLIT_RE.split(part)
    out = [_cap(pieces[0])]
    for i in range(1, len(pieces), 2):
        follow = pieces[i + 1] if i + 1 < len(pieces) else ""
        prev = pieces[i - 1]
        out.append(pieces[i])
        out.append(_cap(follow) if len(prev) == 1 and prev.isalpha() else follow.lower())
    return "".join(out)


def _title_name(text: str) -> str:
    tokens = text.split(" ")
    out = []
    for i, tok in enumerate(tokens):
        low = tok.lower()
        if i > 0 and low in NAME_PARTICLES and len(tokens) > 1:
            out.append(low)
        else:
            out.append("-".join(_title_apostrophes(p) for p in tok.split("-")))
    return " ".join(out)


@functools.lru_cache(maxsize=1 << 15)
def _display_name(raw: str) -> str | None:
    text = _collapse(unicodedata.normalize("NFC", raw))
    if not text or text.casefold() in _TEXT_PLACEHOLDERS:
        return None
    text = text.strip(_NAME_END_PUNCT)
    if not text or text.casefold() in _TEXT_PLACEHOLDERS:
        return None
    if text.isupper() or text.islower():
        text = _title_name(text)
    return text


@functools.lru_cache(maxsize=1 << 15)
def _name_key(raw: str) -> str:
    folded = unicodedata.normalize("NFKD", raw.casefold())
    chars = []
    for c in folded:
        if c.isalnum():
            if not unicodedata.combining(c):
                chars.append(c)
        elif c.isspace() or c in _NAME_KEY_SEPARATORS:
            chars.append(" ")
    return " ".join("".join(chars).translate(_NAME_KEY_FOLD).split())


# --------------------------------------------------------------------------- countries

_COUNTRY_TABLE = """\
AD|AND|Andorra|Principality of Andorra
AE|ARE|United Arab Emirates
AF|AFG|Afghanistan|Islamic Republic of Afghanistan
AG|ATG|Antigua and Barbuda
AI|AIA|Anguilla
AL|ALB|Albania|Republic of Albania
AM|ARM|Armenia|Republic of Armenia
AO|AGO|Angola|Republic of Angola
AQ|ATA|Antarctica
AR|ARG|Argentina|Argentine Republic
AS|ASM|American Samoa
AT|AUT|Austria|Republic of Austria
AU|AUS|Australia
AW|ABW|Aruba
AX|ALA|Åland Islands
AZ|AZE|Azerbaijan|Republic of Azerbaijan
BA|BIH|Bosnia and Herzegovina|Republic of Bosnia and Herzegovina
BB|BRB|Barbados
BD|BGD|Bangladesh|People's Republic of Bangladesh
BE|BEL|Belgium|Kingdom of Belgium
BF|BFA|Burkina Faso
BG|BGR|Bulgaria|Republic of Bulgaria
BH|BHR|Bahrain|Kingdom of Bahrain
BI|BDI|Burundi|Republic of Burundi
BJ|BEN|Benin|Republic of Benin
BL|BLM|Saint Barthélemy
BM|BMU|Bermuda
BN|BRN|Brunei Darussalam|Brunei
BO|BOL|Bolivia|Bolivia, Plurinational State of|Plurinational State of Bolivia
BQ|BES|Bonaire, Sint Eustatius and Saba
BR|BRA|Brazil|Federative Republic of Brazil
BS|BHS|Bahamas|Commonwealth of the Bahamas
BT|BTN|Bhutan|Kingdom of Bhutan
BV|BVT|Bouvet Island
BW|BWA|Botswana|Republic of Botswana
BY|BLR|Belarus|Republic of Belarus
BZ|BLZ|Belize
CA|CAN|Canada
CC|CCK|Cocos (Keeling) Islands|Cocos Islands
CD|COD|Congo, The Democratic Republic of the|The Democratic Republic Of Congo
CF|CAF|Central African Republic
CG|COG|Congo|Republic of the Congo
CH|CHE|Switzerland|Swiss Confederation
CI|CIV|Côte d'Ivoire|Republic of Côte d'Ivoire
CK|COK|Cook Islands
CL|CHL|Chile|Republic of Chile
CM|CMR|Cameroon|Republic of Cameroon
CN|CHN|China|People's Republic of China
CO|COL|Colombia|Republic of Colombia
CR|CRI|Costa Rica|Republic of Costa Rica
CU|CUB|Cuba|Republic of Cuba
CV|CPV|Cabo Verde|Republic of Cabo Verde|Cape Verde
CW|CUW|Curaçao
CX|CXR|Christmas Island
CY|CYP|Cyprus|Republic of Cyprus
CZ|CZE|Czechia|Czech Republic
DE|DEU|Germany|Federal Republic of Germany
DJ|DJI|Djibouti|Republic of Djibouti
DK|DNK|Denmark|Kingdom of Denmark
DM|DMA|Dominica|Commonwealth of Dominica
DO|DOM|Dominican Republic
DZ|DZA|Algeria|People's Democratic Republic of Algeria
EC|ECU|Ecuador|Republic of Ecuador
EE|EST|Estonia|Republic of Estonia
EG|EGY|Egypt|Arab Republic of Egypt
EH|ESH|Western Sahara
ER|ERI|Eritrea|the State of Eritrea
ES|ESP|Spain|Kingdom of Spain
ET|ETH|Ethiopia|Federal Democratic Republic of Ethiopia
FI|FIN|Finland|Republic of Finland
FJ|FJI|Fiji|Republic of Fiji
FK|FLK|Falkland Islands (Malvinas)|Falkland Islands
FM|FSM|Micronesia, Federated States of|Federated States of Micronesia|Micronesia
FO|FRO|Faroe Islands
FR|FRA|France|French Republic
GA|GAB|Gabon|Gabonese Republic
GB|GBR|United Kingdom|United Kingdom of Great Britain and Northern Ireland
GD|GRD|Grenada
GE|GEO|Georgia
GF|GUF|French Guiana
GG|GGY|Guernsey
GH|GHA|Ghana|Republic of Ghana
GI|GIB|Gibraltar
GL|GRL|Greenland
GM|GMB|Gambia|Republic of the Gambia
GN|GIN|Guinea|Republic of Guinea
GP|GLP|Guadeloupe
GQ|GNQ|Equatorial Guinea|Republic of Equatorial Guinea
GR|GRC|Greece|Hellenic Republic
GS|SGS|South Georgia and the South Sandwich Islands
GT|GTM|Guatemala|Republic of Guatemala
GU|GUM|Guam
GW|GNB|Guinea-Bissau|Republic of Guinea-Bissau
GY|GUY|Guyana|Republic of Guyana
HK|HKG|Hong Kong|Hong Kong Special Administrative Region of China
HM|HMD|Heard Island and McDonald Islands
HN|HND|Honduras|Republic of Honduras
HR|HRV|Croatia|Republic of Croatia
HT|HTI|Haiti|Republic of Haiti
HU|HUN|Hungary
ID|IDN|Indonesia|Republic of Indonesia
IE|IRL|Ireland
IL|ISR|Israel|State of Israel
IM|IMN|Isle of Man
IN|IND|India|Republic of India
IO|IOT|British Indian Ocean Territory
IQ|IRQ|Iraq|Republic of Iraq
IR|IRN|Iran|Iran, Islamic Republic of|Islamic Republic of Iran
IS|ISL|Iceland|Republic of Iceland
IT|ITA|Italy|Italian Republic
JE|JEY|Jersey
JM|JAM|Jamaica
JO|JOR|Jordan|Hashemite Kingdom of Jordan
JP|JPN|Japan
KE|KEN|Kenya|Republic of Kenya
KG|KGZ|Kyrgyzstan|Kyrgyz Republic
KH|KHM|Cambodia|Kingdom of Cambodia
KI|KIR|Kiribati|Republic of Kiribati
KM|COM|Comoros|Union of the Comoros
KN|KNA|Saint Kitts and Nevis
KP|PRK|North Korea|Korea, Democratic People's Republic of|Democratic People's Republic of Korea
KR|KOR|South Korea|Korea, Republic of
KW|KWT|Kuwait|State of Kuwait
KY|CYM|Cayman Islands
KZ|KAZ|Kazakhstan|Republic of Kazakhstan
LA|LAO|Laos|Lao People's Democratic Republic
LB|LBN|Lebanon|Lebanese Republic
LC|LCA|Saint Lucia
LI|LIE|Liechtenstein|Principality of Liechtenstein
LK|LKA|Sri Lanka|Democratic Socialist Republic of Sri Lanka
LR|LBR|Liberia|Republic of Liberia
LS|LSO|Lesotho|Kingdom of Lesotho
LT|LTU|Lithuania|Republic of Lithuania
LU|LUX|Luxembourg|Grand Duchy of Luxembourg
LV|LVA|Latvia|Republic of Latvia
LY|LBY|Libya
MA|MAR|Morocco|Kingdom of Morocco
MC|MCO|Monaco|Principality of Monaco
MD|MDA|Moldova|Moldova, Republic of|Republic of Moldova
ME|MNE|Montenegro
MF|MAF|Saint Martin (French part)|Saint Martin
MG|MDG|Madagascar|Republic of Madagascar
MH|MHL|Marshall Islands|Republic of the Marshall Islands
MK|MKD|North Macedonia|Republic of North Macedonia|Macedonia
ML|MLI|Mali|Republic of Mali
MM|MMR|Myanmar|Republic of Myanmar
MN|MNG|Mongolia
MO|MAC|Macao|Macao Special Administrative Region of China
MP|MNP|Northern Mariana Islands|Commonwealth of the Northern Mariana Islands
MQ|MTQ|Martinique
MR|MRT|Mauritania|Islamic Republic of Mauritania
MS|MSR|Montserrat
MT|MLT|Malta|Republic of Malta
MU|MUS|Mauritius|Republic of Mauritius
MV|MDV|Maldives|Republic of Maldives
MW|MWI|Malawi|Republic of Malawi
MX|MEX|Mexico|United Mexican States
MY|MYS|Malaysia
MZ|MOZ|Mozambique|Republic of Mozambique
NA|NAM|Namibia|Republic of Namibia
NC|NCL|New Caledonia
NE|NER|Niger|Republic of the Niger
NF|NFK|Norfolk Island
NG|NGA|Nigeria|Federal Republic of Nigeria
NI|NIC|Nicaragua|Republic of Nicaragua
NL|NLD|Netherlands|Kingdom of the Netherlands
NO|NOR|Norway|Kingdom of Norway
NP|NPL|Nepal|Federal Democratic Republic of Nepal
NR|NRU|Nauru|Republic of Nauru
NU|NIU|Niue
NZ|NZL|New Zealand
OM|OMN|Oman|Sultanate of Oman
PA|PAN|Panama|Republic of Panama
PE|PER|Peru|Republic of Peru
PF|PYF|French Polynesia
PG|PNG|Papua New Guinea|Independent State of Papua New Guinea
PH|PHL|Philippines|Republic of the Philippines
PK|PAK|Pakistan|Islamic Republic of Pakistan
PL|POL|Poland|Republic of Poland
PM|SPM|Saint Pierre and Miquelon
PN|PCN|Pitcairn
PR|PRI|Puerto Rico
PS|PSE|Palestine, State of|the State of Palestine|Palestine
PT|PRT|Portugal|Portuguese Republic
PW|PLW|Palau|Republic of Palau
PY|PRY|Paraguay|Republic of Paraguay
QA|QAT|Qatar|State of Qatar
RE|REU|Réunion|Reunion
RO|ROU|Romania
RS|SRB|Serbia|Republic of Serbia
RU|RUS|Russian Federation|Russia
RW|RWA|Rwanda|Rwandese Republic
SA|SAU|Saudi Arabia|Kingdom of Saudi Arabia
SB|SLB|Solomon Islands
SC|SYC|Seychelles|Republic of Seychelles
SD|SDN|Sudan|Republic of the Sudan
SE|SWE|Sweden|Kingdom of Sweden
SG|SGP|Singapore|Republic of Singapore
SH|SHN|Saint Helena, Ascension and Tristan da Cunha|Saint Helena
SI|SVN|Slovenia|Republic of Slovenia
SJ|SJM|Svalbard and Jan Mayen
SK|SVK|Slovakia|Slovak Republic
SL|SLE|Sierra Leone|Republic of Sierra Leone
SM|SMR|San Marino|Republic of San Marino
SN|SEN|Senegal|Republic of Senegal
SO|SOM|Somalia|Federal Republic of Somalia
SR|SUR|Suriname|Republic of Suriname
SS|SSD|South Sudan|Republic of South Sudan
ST|STP|Sao Tome and Principe|Democratic Republic of Sao Tome and Principe
SV|SLV|El Salvador|Republic of El Salvador
SX|SXM|Sint Maarten (Dutch part)
SY|SYR|Syria|Syrian Arab Republic
SZ|SWZ|Eswatini|Kingdom of Eswatini|Swaziland
TC|TCA|Turks and Caicos Islands
TD|TCD|Chad|Republic of Chad
TF|ATF|French Southern Territories
TG|TGO|Togo|Togolese Republic
TH|THA|Thailand|Kingdom of Thailand
TJ|TJK|Tajikistan|Republic of Tajikistan
TK|TKL|Tokelau
TL|TLS|Timor-Leste|Democratic Republic of Timor-Leste
TM|TKM|Turkmenistan
TN|TUN|Tunisia|Republic of Tunisia
TO|TON|Tonga|Kingdom of Tonga
TR|TUR|Türkiye|Republic of Türkiye|Turkey
TT|TTO|Trinidad and Tobago|Republic of Trinidad and Tobago
TV|TUV|Tuvalu
TW|TWN|Taiwan|Taiwan, Province of China
TZ|TZA|Tanzania|Tanzania, United Republic of|United Republic of Tanzania
UA|UKR|Ukraine
UG|UGA|Uganda|Republic of Uganda
UM|UMI|United States Minor Outlying Islands
US|USA|United States|United States of America
UY|URY|Uruguay|Eastern Republic of Uruguay
UZ|UZB|Uzbekistan|Republic of Uzbekistan
VA|VAT|Holy See (Vatican City State)|Vatican
VC|VCT|Saint Vincent and the Grenadines
VE|VEN|Venezuela|Venezuela, Bolivarian Republic of|Bolivarian Republic of Venezuela
VG|VGB|Virgin Islands, British|British Virgin Islands
VI|VIR|Virgin Islands, U.S.|Virgin Islands of the United States|U.S. Virgin Islands
VN|VNM|Vietnam|Viet Nam|Socialist Republic of Viet Nam
VU|VUT|Vanuatu|Republic of Vanuatu
WF|WLF|Wallis and Futuna
WS|WSM|Samoa|Independent State of Samoa
XK|XKX|Kosovo
YE|YEM|Yemen|Republic of Yemen
YT|MYT|Mayotte
ZA|ZAF|South Africa|Republic of South Africa
ZM|ZMB|Zambia|Republic of Zambia
ZW|ZWE|Zimbabwe|Republic of Zimbabwe
"""
"""ISO 3166-1: ``alpha-2|alpha-3|English name|other English names...`` (with XK, Kosovo)."""

#: Common English aliases and abbreviations not in the table (keys in _country_key form).
_COUNTRY_ALIASES = {
    "uk": "GB",
    "u k": "GB",
    "great britain": "GB",
    "britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "united kingdom of great britain": "GB",
    "us": "US",
    "u s": "US",
    "usa": "US",
    "u s a": "US",
    "america": "US",
    "united states america": "US",
    "us of a": "US",
    "korea": "KR",
    "republic of korea": "KR",
    "korea south": "KR",
    "korea north": "KP",
    "dprk": "KP",
    "holland": "NL",
    "ivory coast": "CI",
    "czech republic": "CZ",
    "czechia": "CZ",
    "turkey": "TR",
    "turkiye": "TR",
    "uae": "AE",
    "u a e": "AE",
    "emirates": "AE",
    "russia": "RU",
    "vatican city": "VA",
    "vatican": "VA",
    "holy see": "VA",
    "burma": "MM",
    "cape verde": "CV",
    "macau": "MO",
    "macao": "MO",
    "laos": "LA",
    "syria": "SY",
    "moldova": "MD",
    "tanzania": "TZ",
    "venezuela": "VE",
    "bolivia": "BO",
    "iran": "IR",
    "vietnam": "VN",
    "viet nam": "VN",
    "brunei": "BN",
    "palestine": "PS",
    "micronesia": "FM",
    "taiwan": "TW",
    "hong kong sar": "HK",
    "macedonia": "MK",
    "north macedonia": "MK",
    "swaziland": "SZ",
    "east timor": "TL",
    "dr congo": "CD",
    "drc": "CD",
    "democratic republic of congo": "CD",
    "congo kinshasa": "CD",
    "congo brazzaville": "CG",
    "republic of congo": "CG",
    "kosovo": "XK",
    "the bahamas": "BS",
    "the gambia": "GM",
    "deutschland": "DE",
    "osterreich": "AT",
    "schweiz": "CH",
    "suisse": "CH",
    "espana": "ES",
    "italia": "IT",
    "nederland": "NL",
    "belgique": "BE",
    "belgie": "BE",
    "sverige": "SE",
    "norge": "NO",
    "danmark": "DK",
    "suomi": "FI",
    "polska": "PL",
    "brasil": "BR",
    "mexico": "MX",
    "nippon": "JP",
    "osterreichische republik": "AT",
}
_COUNTRY_KEY_DROP = str.maketrans({c: " " for c in ".,'’()-/&"})
#: Languages whose country names (from phonenumbers' geodata) are accepted as a fallback.
_COUNTRY_FALLBACK_LANGS = ("de", "fr", "es", "it", "nl", "pt", "sv", "pl", "da", "fi", "cs")


def _country_key(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.casefold())
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    words = folded.translate(_COUNTRY_KEY_DROP).split()
    if words and words[0] == "the":
        words = words[1:]
    return " ".join("saint" if w == "st" else ("and" if w == "&" else w) for w in words)


def _build_country_tables() -> tuple[frozenset[str], dict[str, str], dict[str, str]]:
    alpha2: set[str] = set()
    alpha3: dict[str, str] = {}
    names: dict[str, str] = {}
    for line in _COUNTRY_TABLE.splitlines():
        if not line:
            continue
        a2, a3, *country_names = line.split("|")
        alpha2.add(a2)
        alpha3[a3] = a2
        for name in country_names:
            names.setdefault(_country_key(name), a2)
            if "," in name:  # "Korea, Republic of" -> "Republic of Korea"
                head, _, tail = name.partition(",")
                names.setdefault(_country_key(f"{tail} {head}"), a2)
    for alias, a2 in _COUNTRY_ALIASES.items():
        names.setdefault(alias, a2)
    return frozenset(alpha2), alpha3, names


_ALPHA2, _ALPHA3, _COUNTRY_NAMES = _build_country_tables()


@functools.lru_cache(maxsize=1)
def _foreign_country_names() -> dict[str, str]:
    """Country names in a few European languages (loaded on first need: ~0.4 s import)."""
    from phonenumbers.geodata.locale import LOCALE_DATA

    out: dict[str, str] = {}
    for a2, by_lang in LOCALE_DATA.items():
        if a2 not in _ALPHA2:
            continue
        for lang in _COUNTRY_FALLBACK_LANGS:
            name = by_lang.get(lang)
            if name and not name.startswith("*"):
                out.setdefault(_country_key(name), a2)
    return out


@functools.lru_cache(maxsize=4096)
def _country(raw: str) -> str | None:
    text = raw.strip()
    if not text:
        return None
    if len(text) == 2:
        code = text.upper()
        if code == "UK":
            return "GB"
        if code in _ALPHA2:
            return code
    elif len(text) == 3 and text.isalpha():
        a2 = _ALPHA3.get(text.upper())
        if a2 is not None:
            return a2
    key = _country_key(text)
    a2 = _COUNTRY_NAMES.get(key)
    if a2 is None and key:
        a2 = _foreign_country_names().get(key)
    return a2


# --------------------------------------------------------------------------- normaliser


@functools.lru_cache(maxsize=262_144)
def _opaque_id_cached(raw: str, typ: str, lower: bool) -> str:
    """Validation of device IDs and cookies, cached: a device sends many events."""
    text = raw.strip()
    if not text:
        raise InvalidIdentifierError(f"{typ}: empty")
    low = text.lower()
    if low in _ID_PLACEHOLDERS:
        raise InvalidIdentifierError(f"{typ}: placeholder value")
    if len(set(low.replace("-", ""))) <= 1:
        raise InvalidIdentifierError(f"{typ}: placeholder value (one repeated character)")
    if len(text) > _MAX_ID_LEN:
        raise InvalidIdentifierError(f"{typ}: longer than {_MAX_ID_LEN} characters")
    if _CONTROL_RE.search(text):
        raise InvalidIdentifierError(f"{typ}: contains control characters")
    return low if lower else text


class Normalizer:
    """Normalises identifiers (raising :class:`InvalidIdentifierError`) and display values.

    Instances are cheap to share and thread-safe (the caches are ``functools.lru_cache``).
    """

    def __init__(self, settings: NormalizationSettings | None = None) -> None:
        self.settings = settings if settings is not None else NormalizationSettings()
        s = self.settings
        self._aliases = {k.strip().lower(): v.strip().lower() for k, v in s.domain_aliases.items()}
        self._plus_domains = frozenset(d.strip().lower() for d in s.plus_tag_domains)
        self._dot_domains = (
            frozenset(d.strip().lower() for d in s.dot_insensitive_domains)
            if s.gmail_remove_dots
            else frozenset()
        )
        region = s.default_phone_region.strip().upper()
        self._default_region = region if region in _PHONE_REGIONS else "ZZ"
        self._email_cached = functools.lru_cache(maxsize=1 << 16)(self._email)
        self._by_type = {
            "email": self.email,
            "phone": self.phone,
            "device": self.device_id,
            "idfa": self._idfa,
            "gaid": self._gaid,
            "cookie": self.cookie,
        }

    # ------------------------------------------------------------------ identifiers

    def email(self, raw: str) -> str:
        """Canonical email: lower case, display/mailto wrappers removed, provider rules applied."""
        if not isinstance(raw, str):
            raise InvalidIdentifierError("email: not a string")
        return self._email_cached(raw)

    def _email(self, raw: str) -> str:
        text = raw.strip()
        if text.endswith(">") and "<" in text:  # "Jane Doe" <jane@x.com>
            text = text[text.rindex("<") + 1 : -1].strip()
        if text[:7].lower() == "mailto:":
            text = text[7:].split("?", 1)[0].strip()
        if not text:
            raise InvalidIdentifierError("email: empty")
        text = text.lower()
        ats = text.count("@")
        if ats == 0:
            raise InvalidIdentifierError("email: missing @")
        if ats > 1:
            raise InvalidIdentifierError("email: more than one @")
        if len(text.split()) != 1:
            raise InvalidIdentifierError("email: contains whitespace")
        if len(text) > 254:
            raise InvalidIdentifierError("email: longer than 254 characters")
        local, domain = text.split("@")
        if not local:
            raise InvalidIdentifierError("email: empty local part")
        if not domain:
            raise InvalidIdentifierError("email: empty domain")
        if "." not in domain:
            raise InvalidIdentifierError("email: domain has no dot")
        if not _EMAIL_LOCAL_RE.fullmatch(local):
            raise InvalidIdentifierError("email: invalid character in local part")
        if not _EMAIL_DOMAIN_RE.fullmatch(domain):
            raise InvalidIdentifierError("email: malformed domain")
        domain = self._aliases.get(domain, domain)
        if domain in self._plus_domains and "+" in local:
            local = local.split("+", 1)[0]
            if not local:
                raise InvalidIdentifierError("email: empty local part before the +tag")
        if domain in self._dot_domains and "." in local:
            local = local.replace(".", "")
            if not local:
                raise InvalidIdentifierError("email: local part has only dots")
        return f"{local}@{domain}"

    def phone(self, raw: str, country: str | None = None) -> str:
        """E.164 form of a phone number; national formats are read in ``country``'s plan
        (ISO alpha-2, or a name/alpha-3 that :meth:`country` understands), else in the
        ``default_phone_region``."""
        if not isinstance(raw, str):
            raise InvalidIdentifierError("phone: not a string")
        region = self._default_region
        if country:
            code = country.upper() if len(country) == 2 else self.country(country)
            if code == "UK":
                code = "GB"
            if code in _PHONE_REGIONS:
                region = code
        e164, problem = _phone_e164(_phone_key(raw), region)
        if e164 is None:
            raise InvalidIdentifierError(f"phone: {problem}")
        return e164

    def device_id(self, raw: str) -> str:
        """Device ID (e.g. IDFV, Android ID): stripped, lower case; placeholders rejected."""
        return self._opaque_id(raw, "device", lower=True)

    def cookie(self, raw: str) -> str:
        """Anonymous web/app ID (e.g. Segment ``anonymousId``): stripped, case kept."""
        return self._opaque_id(raw, "cookie", lower=False)

    @staticmethod
    def _opaque_id(raw: str, typ: str, *, lower: bool) -> str:
        if not isinstance(raw, str):
            raise InvalidIdentifierError(f"{typ}: not a string")
        return _opaque_id_cached(raw, typ, lower)

    def advertising_id(self, raw: str, kind: str) -> str:
        """Mobile advertising ID: ``idfa`` (upper-case UUID) or ``gaid`` (lower-case UUID).

        The all-zero UUID (what iOS/Android report when the user limits ad tracking) is
        rejected as a placeholder.
        """
        if kind not in ("idfa", "gaid"):
            raise ValueError(f"advertising id kind must be 'idfa' or 'gaid', not {kind!r}")
        if not isinstance(raw, str):
            raise InvalidIdentifierError(f"{kind}: not a string")
        text = raw.strip()
        if len(text) == 32 and _HEX32_RE.fullmatch(text):
            text = f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
        elif len(text) == 38 and text[0] == "{" and text[-1] == "}":
            text = text[1:-1]
        if len(text) != 36 or not _UUID_RE.fullmatch(text):
            raise InvalidIdentifierError(f"{kind}: not a UUID")
        low = text.lower()
        if low == _ZERO_UUID:
            raise InvalidIdentifierError(f"{kind}: all-zero opt-out placeholder")
        if len(set(low.replace("-", ""))) == 1:
            raise InvalidIdentifierError(f"{kind}: placeholder value (one repeated character)")
        return text.upper() if kind == "idfa" else low

    def _idfa(self, raw: str) -> str:
        return self.advertising_id(raw, "idfa")

    def _gaid(self, raw: str) -> str:
        return self.advertising_id(raw, "gaid")

    def identifier(self, text: str) -> Identifier:
        """Parse and normalise typed text ``TYPE:VALUE`` (client input of ``Lookup``).

        ``crm:*``, ``user:*`` and ``ext:*`` values are stripped and kept case-sensitive.
        Raises :class:`InvalidIdentifierError` naming the type and the problem.
        """
        typ, raw = Identifier.split_key(text)
        normalise = self._by_type.get(typ)
        if normalise is not None:
            return Identifier(typ, normalise(raw))
        return Identifier(typ, self.namespaced_value(raw, typ))

    @staticmethod
    def namespaced_value(raw: str, typ: str = "id") -> str:
        """Value of a ``crm:*``/``user:*``/``ext:*`` identifier: stripped, case kept."""
        if not isinstance(raw, (str, int)) or isinstance(raw, bool):
            raise InvalidIdentifierError(f"{typ}: not a string")
        text = str(raw).strip()
        if not text:
            raise InvalidIdentifierError(f"{typ}: empty")
        if len(text) > _MAX_ID_LEN:
            raise InvalidIdentifierError(f"{typ}: longer than {_MAX_ID_LEN} characters")
        if _CONTROL_RE.search(text):
            raise InvalidIdentifierError(f"{typ}: contains control characters")
        return text

    # ------------------------------------------------------------------ display values

    @staticmethod
    def name(raw: str | None) -> str | None:
        """Display form of a person's name part, or None for empty/placeholder values.

        NFC, whitespace collapsed, stray punctuation at the ends removed; an all-upper or
        all-lower value is title-cased (``o'brien`` -> ``O'Brien``, ``anne-marie`` ->
        ``Anne-Marie``, particles such as ``van``/``de`` inside a name stay lower case);
        mixed-case values (``McDonald``) are kept.
        """
        if not isinstance(raw, str):
            return None
        return _display_name(raw)

    @staticmethod
    def name_key(raw: str) -> str:
        """Matching key: case-folded, accents stripped, letters/digits/single spaces only
        (hyphens and similar separators become spaces, other punctuation is dropped)."""
        if not isinstance(raw, str):
            return ""
        return _name_key(raw)

    @staticmethod
    def text(raw: str | None) -> str | None:
        """Display form of a free-text attribute (city, company, job title): NFC, whitespace
        collapsed, stray punctuation at the ends removed, case kept; None when empty or a
        placeholder (``[not provided]``, ``n/a``...)."""
        if not isinstance(raw, str):
            return None
        text = _collapse(unicodedata.normalize("NFC", raw))
        if not text or text.casefold() in _TEXT_PLACEHOLDERS:
            return None
        text = text.strip(_TEXT_END_PUNCT)
        if not text or text.casefold() in _TEXT_PLACEHOLDERS:
            return None
        return text

    @classmethod
    def postal_code(cls, raw: str | None) -> str | None:
        """Postal code: like :meth:`text`, upper case (``sw1a 1aa`` -> ``SW1A 1AA``)."""
        text = cls.text(raw)
        return text.upper() if text is not None else None

    @staticmethod
    def country(raw: str | None) -> str | None:
        """ISO 3166-1 alpha-2 (upper case) from an alpha-2/alpha-3 code or a country name
        (English, a few aliases such as ``UK``/``USA``, and names in some European
        languages); None when unknown."""
        if not isinstance(raw, str):
            return None
        return _country(raw)

    @staticmethod
    def birth_date(raw: str | int | None) -> dict[str, str]:
        """Birth date attributes from ``YYYY-MM-DD`` (optionally with a time part),
        ``YYYYMMDD``, ``YYYY-MM``, ``YYYY``, ``MM/DD/YYYY`` or epoch milliseconds (HubSpot date
        properties). Returns a subset of ``birth_date``/``birth_year``/``birth_month``/
        ``birth_day`` (decimal strings, no zero padding except in ``birth_date``); empty when
        the value is not a plausible birth date."""
        if isinstance(raw, bool) or raw is None:
            return {}
        if isinstance(raw, int):
            text = str(raw)
        elif isinstance(raw, str):
            text = raw.strip()
        else:
            return {}
        year = month = day = None
        m = _DATE_RE.fullmatch(text)
        if m is not None and not (text.isdigit() and len(text) > 4):
            year = int(m.group(1))
            month = int(m.group(2)) if m.group(2) else None
            day = int(m.group(3)) if m.group(3) else None
        elif len(text) == 8 and text.isdigit() and text[:2] in ("19", "20"):  # YYYYMMDD
            year, month, day = int(text[:4]), int(text[4:6]), int(text[6:])
        elif (m := _US_DATE_RE.fullmatch(text)) is not None:
            month, day, year = int(m.group(1)), int(m.group(2)), int(m.group(3))
        elif text.lstrip("-").isdigit() and len(text) >= 6:  # epoch milliseconds
            try:
                d = datetime.fromtimestamp(int(text) / 1000, tz=UTC).date()
            except (OverflowError, OSError, ValueError):
                return {}
            year, month, day = d.year, d.month, d.day
        else:
            return {}
        if not 1900 <= year <= date.today().year:
            return {}
        out = {"birth_year": str(year)}
        if month is not None:
            if not 1 <= month <= 12:
                return {}
            out["birth_month"] = str(month)
            if day is not None:
                try:
                    full = date(year, month, day)
                except ValueError:
                    return {}
                out["birth_day"] = str(day)
                out["birth_date"] = full.isoformat()
        return out
