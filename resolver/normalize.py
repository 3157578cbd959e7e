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
from phonenumbers import NumberParseException, PhoneNumberFormat

from idgraph.core.errors import ConfigError, InvalidIdentifierError
from idgraph.resolver.countries import country_code
from idgraph.resolver.model import Identifier
from idgraph.resolver.settings import NormalizationSettings

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
#: Extension words phonenumbers does not read (it reads ``ext``, ``extension``, ``x``, ``#``
#: and ``;ext=``), before the trailing extension digits: rewritten to ``ext.`` for it.
_PHONE_EXT_WORD_RE = re.compile(
    r"(?<![^\W\d_])(?:durchwahl|durchw|dw|apparat|app|nebenstelle|poste)(?![^\W\d_])\.?\s*:?\s*"
    r"(?=\d{1,10}\s*$)",
    re.IGNORECASE,
)
_MAX_ID_LEN = 256
#: Characters a Message-ID cannot contain once its angle brackets are removed.
_MESSAGE_ID_BAD_RE = re.compile(r"[\s<>\x00-\x1f\x7f]")
_SF_ID_RE = re.compile(r"[0-9A-Za-z]{15}(?:[0-9A-Za-z]{3})?")
_SF_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
#: Key prefixes of the Salesforce objects that are people (Contact, Lead).
_SF_PERSON_PREFIXES = ("003", "00Q")


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
    if _PHONE_KEY_CHARS.issuperset(key):
        return key
    return _PHONE_EXT_WORD_RE.sub(" ext. ", text)


@functools.lru_cache(maxsize=1 << 16)
def _phone_e164(text: str, region: str) -> tuple[str | None, str]:
    """Parse ``text`` (a :func:`_phone_key`) with default ``region``; return (E.164, "") or
    (None, problem). Cached (parsing costs tens of microseconds); failures are cached too.

    An extension (``ext. 204``, ``x204``, ``;ext=204``, ``Durchwahl 204``...) is kept in RFC
    3966 style, ``+14155552671;ext=204``: a direct line is not the switchboard number.
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
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    if number.extension:
        return f"{e164};ext={number.extension}", ""
    return e164, ""


# --------------------------------------------------------------------------- Salesforce IDs


def _salesforce_suffix(body: str) -> str:
    """The case-check suffix of a 15-character Salesforce ID (3 characters, one per 5
    characters of the ID, each encoding which of them are upper-case letters)."""
    suffix = ""
    for i in range(0, 15, 5):
        bits = 0
        for j, ch in enumerate(body[i : i + 5]):
            if "A" <= ch <= "Z":
                bits |= 1 << j
        suffix += _SF_SUFFIX[bits]
    return suffix


# --------------------------------------------------------------------------- custom arguments


def _arg_key(name: str) -> str:
    """Matching key of a custom-argument name: case-folded, ``_``, ``-`` and spaces removed."""
    return "".join(name.casefold().split()).replace("_", "").replace("-", "")


def _custom_arg_types(mapping: dict[str, str]) -> dict[str, str]:
    """``sendgrid_custom_args`` keyed by :func:`_arg_key`; raises ConfigError for a value
    that is not an identifier type."""
    out = {}
    for name, typ in mapping.items():
        where = f"normalization.sendgrid_custom_args.{name}"
        try:
            parsed, _ = Identifier.split_key(f"{typ}:x")
        except InvalidIdentifierError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if parsed != typ.strip().lower():
            raise ConfigError(
                f"{where}: {typ!r} is not an identifier type (TYPE or KIND:NAMESPACE)"
            )
        out[_arg_key(name)] = parsed
    return out


def _company_key(text: str) -> str:
    """Letters and digits of a company value, case-folded (``[N/A]`` -> ``na``)."""
    return "".join(c for c in text.casefold() if c.isalnum())


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
        self._custom_args = _custom_arg_types(s.sendgrid_custom_args)
        self._placeholder_companies = frozenset(_company_key(c) for c in s.placeholder_companies)
        self._by_type = {
            "email": self.email,
            "phone": self.phone,
            "device": self.device_id,
            "idfa": self._idfa,
            "gaid": self._gaid,
            "cookie": self.cookie,
            "message": self.message_id,
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

    @staticmethod
    def message_id(raw: str) -> str:
        """An email's Message-ID (a ``Message-ID``/``In-Reply-To`` header's ``msg-id``,
        SendGrid's ``smtp-id``): surrounding whitespace and angle brackets removed, the part
        after the last ``@`` lower case (a domain), the part before it kept as is:
        ``<14c5d75ce93.DFD.64b469@ISMTPD-555>`` -> ``14c5d75ce93.DFD.64b469@ismtpd-555``."""
        if not isinstance(raw, str):
            raise InvalidIdentifierError("message: not a string")
        text = raw.strip()
        if text.startswith("<") and text.endswith(">"):
            text = text[1:-1].strip()
        if not text:
            raise InvalidIdentifierError("message: empty")
        if len(text) > _MAX_ID_LEN:
            raise InvalidIdentifierError(f"message: longer than {_MAX_ID_LEN} characters")
        if _MESSAGE_ID_BAD_RE.search(text):
            raise InvalidIdentifierError(
                "message: contains whitespace, angle brackets or control characters"
            )
        local, at, domain = text.rpartition("@")
        if not at:
            raise InvalidIdentifierError("message: missing @")
        if not local:
            raise InvalidIdentifierError("message: empty part before the @")
        if not domain:
            raise InvalidIdentifierError("message: empty domain")
        return f"{local}@{domain.lower()}"

    @classmethod
    def salesforce_id(cls, raw: str, *, strict: bool = False) -> str:
        """A Salesforce record ID in the 18-character form the REST API returns (what the
        Salesforce adapter keys records by): a 15-character ID (reports, the UI's URLs) gets
        its case-check suffix, so both forms of one record are one identifier; an
        18-character ID is kept as is. A value that is neither is kept as
        :meth:`namespaced_value` keeps it, or with ``strict`` (values from free-form fields)
        rejected."""
        text = cls.namespaced_value(raw, "crm:salesforce")
        if len(text) == 15 and _SF_ID_RE.fullmatch(text):
            return text + _salesforce_suffix(text)
        if strict and not (len(text) == 18 and _SF_ID_RE.fullmatch(text)):
            raise InvalidIdentifierError(
                "crm:salesforce: not a Salesforce record ID (15 or 18 letters and digits)"
            )
        return text

    @staticmethod
    def is_salesforce_person_id(raw: object) -> bool:
        """Whether ``raw`` is shaped like the record ID of a Salesforce Contact (key prefix
        ``003``) or Lead (``00Q``): 15 letters and digits, or 18 whose last 3 are the
        case-check suffix of the first 15."""
        if not isinstance(raw, str):
            return False
        text = raw.strip()
        if not text.startswith(_SF_PERSON_PREFIXES) or not _SF_ID_RE.fullmatch(text):
            return False
        return len(text) == 15 or text[15:].upper() == _salesforce_suffix(text[:15])

    def typed_value(self, typ: str, raw: str, *, strict: bool = False) -> str:
        """Normalised value of an identifier of type ``typ`` (``email``, ``crm:salesforce``,
        ``user:segment``...): simple types by their method, ``crm:salesforce`` by
        :meth:`salesforce_id` (``strict`` passed on), other namespaced types by
        :meth:`namespaced_value`. Raises :class:`InvalidIdentifierError`."""
        normalise = self._by_type.get(typ)
        if normalise is not None:
            return normalise(raw)
        if typ == "crm:salesforce":
            return self.salesforce_id(raw, strict=strict)
        return self.namespaced_value(raw, typ)

    def custom_arg_type(self, name: str) -> str | None:
        """Identifier type of a custom argument of sent email (SendGrid ``custom_args``,
        Mandrill ``metadata``) by its name (``sendgrid_custom_args``), None when unmapped."""
        return self._custom_args.get(_arg_key(name))

    def identifier(self, text: str) -> Identifier:
        """Parse and normalise typed text ``TYPE:VALUE`` (client input of ``Lookup``).

        ``crm:*``, ``user:*`` and ``ext:*`` values are stripped and kept case-sensitive (a
        15-character Salesforce ID gets its 18-character form, see :meth:`salesforce_id`).
        Raises :class:`InvalidIdentifierError` naming the type and the problem.
        """
        typ, raw = Identifier.split_key(text)
        return Identifier(typ, self.typed_value(typ, raw))

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

    def company(self, raw: str | None) -> str | None:
        """Display form of a company name (as :meth:`text`); None also for a value that names
        no company: one of ``placeholder_companies`` (``Self-employed``, ``[N/A]``,
        ``Privatperson``..., compared on letters and digits, case-folded) or one without any
        letter or digit."""
        text = self.text(raw)
        if text is None:
            return None
        key = _company_key(text)
        if not key or key in self._placeholder_companies:
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
        languages); None when unknown. See :func:`idgraph.resolver.countries.country_code`."""
        return country_code(raw)

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
