"""Helpers shared by the source adapters: typed field access and a record builder.

Field paths in errors are dotted (``properties.email``, ``attendees[2].email``); messages
never contain field values.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from idgraph.core.errors import InvalidIdentifierError, InvalidPayloadError
from idgraph.resolver.model import (
    MAX_EVENT_PROPERTIES,
    MAX_PROPERTY_CHARS,
    Identifier,
    IdentityRecord,
    PropertyValue,
    RejectedIdentifier,
)
from idgraph.resolver.normalize import NAME_PARTICLES, Normalizer

_UTC = UTC

#: Title/suffix tokens ignored when a display name is split into parts.
_NAME_PREFIXES = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame"})
_NAME_SUFFIXES = frozenset({"jr", "sr", "ii", "iii", "iv", "phd", "md", "esq", "mba", "dds"})

#: Words that make a display name a team/room/mailbox rather than a person.
_NOT_PERSON_WORDS = frozenset(
    {
        "team",
        "room",
        "group",
        "calendar",
        "support",
        "sales",
        "info",
        "admin",
        "office",
        "meeting",
        "conference",
        "marketing",
        "dept",
        "department",
        "notifications",
        "noreply",
        "booking",
        "bookings",
        "reception",
        "holidays",
        "board",
        "hr",
        "it",
        "helpdesk",
        "service",
        "services",
        "all",
        "staff",
        "events",
        "floor",
        "building",
    }
)
_NAME_CHARS_EXTRA = frozenset("'’-.,")


def req_dict(source: str, obj: dict, key: str, path: str) -> dict:
    value = obj.get(key)
    if value is None:
        raise InvalidPayloadError(source, path, "missing")
    if not isinstance(value, dict):
        raise InvalidPayloadError(source, path, "not an object")
    return value


def opt_dict(source: str, obj: dict, key: str, path: str) -> dict | None:
    value = obj.get(key)
    if value is None or isinstance(value, dict):
        return value
    raise InvalidPayloadError(source, path, "not an object")


def req_str(source: str, obj: dict, key: str, path: str) -> str:
    value = obj.get(key)
    if value is None:
        raise InvalidPayloadError(source, path, "missing")
    if not isinstance(value, str):
        raise InvalidPayloadError(source, path, "not a string")
    value = value.strip()
    if not value:
        raise InvalidPayloadError(source, path, "empty")
    return value


def opt_str(source: str, obj: dict, key: str, path: str) -> str | None:
    """The field's string value, None when absent/null/blank; raises when not a string."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidPayloadError(source, path, "not a string")
    return value if value and not value.isspace() else None


def opt_bool(source: str, obj: dict, key: str, path: str) -> bool | None:
    """A JSON boolean, or the strings ``"true"``/``"false"`` (HubSpot property values)."""
    value = obj.get(key)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        low = value.strip().lower()
        if low == "true":
            return True
        if low == "false":
            return False
        if low == "":
            return None
    raise InvalidPayloadError(source, path, "not a boolean")


def req_unix_time(source: str, obj: dict, key: str, path: str) -> datetime:
    """A required Unix time in seconds (a JSON number) -> aware UTC."""
    ts = obj.get(key)
    if ts is None:
        raise InvalidPayloadError(source, path, "missing")
    if isinstance(ts, bool) or not isinstance(ts, (int, float)):
        raise InvalidPayloadError(source, path, "not a number (unix seconds)")
    try:
        return datetime.fromtimestamp(ts, tz=_UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidPayloadError(source, path, "out of range") from None


def parse_time(source: str, path: str, value: Any) -> datetime:
    """ISO 8601 text (``Z``, ``+0000``, ``+00:00``, fractional seconds) -> aware UTC."""
    if not isinstance(value, str):
        raise InvalidPayloadError(source, path, "not a string")
    try:
        dt = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidPayloadError(source, path, "not an ISO 8601 timestamp") from None
    if dt.tzinfo is None:
        return dt.replace(tzinfo=_UTC)
    return dt.astimezone(_UTC)


def split_person_name(display: str | None) -> dict[str, str]:
    """Split a display-normalised full name into given/middle/family name attributes.

    ``Jane Q. Doe`` -> given Jane, middle Q, family Doe; ``Doe, Jane`` -> given Jane, family
    Doe; ``Ludwig van Beethoven`` -> family ``van Beethoven``; titles (Dr.) and suffixes
    (Jr.) are dropped; one word -> given name only.
    """
    if not display:
        return {}
    if "," in display:
        family_part, _, given_part = display.partition(",")
        family_tokens = family_part.split()
        tokens = given_part.split()
        tokens = [t for t in tokens if t.strip(".").casefold() not in _NAME_SUFFIXES]
        if not family_tokens or not tokens:
            tokens = display.replace(",", " ").split()
        else:
            out = {"given_name": tokens[0], "family_name": " ".join(family_tokens)}
            if len(tokens) > 1:
                out["middle_name"] = " ".join(tokens[1:])
            return out
    tokens = display.split()
    while tokens and tokens[0].strip(".").casefold() in _NAME_PREFIXES and len(tokens) > 1:
        tokens = tokens[1:]
    while len(tokens) > 1 and tokens[-1].strip(".").casefold() in _NAME_SUFFIXES:
        tokens = tokens[:-1]
    if not tokens:
        return {}
    if len(tokens) == 1:
        return {"given_name": tokens[0]}
    start = len(tokens) - 1
    while start > 1 and tokens[start - 1].casefold() in NAME_PARTICLES:
        start -= 1
    out = {"given_name": tokens[0], "family_name": " ".join(tokens[start:])}
    if start > 1:
        out["middle_name"] = " ".join(tokens[1:start])
    return out


def person_name(display: str | None, norm: Normalizer) -> dict[str, str]:
    """Name parts of a display name (an email's From name, a calendar attendee's) when it
    looks like a person's name (2-4 words, letters only, no team/mailbox word such as
    ``Support`` or ``Team``, no ``@``); else empty."""
    name = norm.name(display)
    if name is None or "@" in name:
        return {}
    words = name.replace(",", " ").split()
    if not 2 <= len(words) <= 4:
        return {}
    for word in words:
        if word.casefold() in _NOT_PERSON_WORDS:
            return {}
        if not all(c.isalpha() or c in _NAME_CHARS_EXTRA for c in word):
            return {}
    return split_person_name(name)


def custom_args(
    b: RecordBuilder, args: dict, path: str, skip: frozenset[str] = frozenset()
) -> None:
    """Identifiers from the custom arguments of sent email (SendGrid ``custom_args``,
    Mandrill ``metadata``): an argument whose name ``sendgrid_custom_args`` maps gives an
    identifier of that type; an unmapped one whose value is shaped like a Salesforce
    Contact/Lead ID gives ``crm:salesforce``; the rest (and names in ``skip``) are ignored,
    never recorded. Values are strings or integers; blank ones count as absent. A mapped
    value that fails normalisation is rejected with field ``path + name``."""
    norm = b.norm
    for name, raw in args.items():
        if name in skip or raw is None or (isinstance(raw, str) and not raw.strip()):
            continue
        typ = norm.custom_arg_type(name)
        if typ is not None:
            b.typed(typ, raw, f"{path}{name}", strict=True)
        elif norm.is_salesforce_person_id(raw):
            b.typed("crm:salesforce", raw, f"{path}{name}", strict=True)


def property_value(raw: Any, *, text: bool = False,
                   max_chars: int = MAX_PROPERTY_CHARS) -> PropertyValue | None:
    """An event property's value, or None when it is unusable (dropped, never an error).

    Numbers become floats (NaN and infinities are dropped); with ``text`` (IDs such as an
    order or campaign ID) a number becomes its text instead (``1234``, not ``1234.0``).
    Booleans become ``"true"``/``"false"``. Text is stripped; blank text and text longer
    than ``max_chars`` are dropped (never truncated: a cut URL would be another URL). A list
    is joined with ``,`` (SendGrid ``category``: ``["newsletter", "spring"]`` ->
    ``"newsletter,spring"``) from its usable text items. Objects are dropped."""
    if raw is None:
        return None
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, (int, float)):
        number = float(raw)
        if not math.isfinite(number):
            return None
        if text:
            return str(int(number)) if number.is_integer() else repr(number)
        return number
    if isinstance(raw, str):
        value = raw.strip()
    elif isinstance(raw, list):
        parts = [p.strip() for p in raw if isinstance(p, str) and p.strip()]
        value = ",".join(parts)
    else:
        return None
    if not value or len(value) > max_chars:
        return None
    return value


class RecordBuilder:
    """Collects one record's identifiers (deduplicated, in order), rejected identifiers,
    attributes, consent, event properties and region evidence (``locale``, ``time_zone``:
    set them with :meth:`region_hints`), then builds the :class:`IdentityRecord`.

    Properties are bounded by ``max_properties`` and ``max_property_chars`` (class
    attributes, :data:`~idgraph.resolver.model.MAX_EVENT_PROPERTIES` and
    :data:`~idgraph.resolver.model.MAX_PROPERTY_CHARS` unless set on an instance): the
    first ones set are kept, the rest dropped."""

    __slots__ = ("_seen", "attributes", "consent", "event_name", "identifiers", "locale",
                 "norm", "properties", "rejected", "source", "time_zone")

    max_properties = MAX_EVENT_PROPERTIES
    max_property_chars = MAX_PROPERTY_CHARS

    def __init__(self, source: str, norm: Normalizer) -> None:
        self.source = source
        self.norm = norm
        self.identifiers: list[Identifier] = []
        self._seen: set[tuple[str, str]] = set()
        self.rejected: list[RejectedIdentifier] = []
        self.attributes: dict[str, str] = {}
        self.consent: dict[str, bool] = {}
        self.properties: dict[str, PropertyValue] = {}
        self.event_name = ""
        self.locale = ""
        self.time_zone = ""

    # identifiers --------------------------------------------------------------------

    def add(self, typ: str, value: str) -> None:
        """Add an already-normalised identifier (duplicates are ignored)."""
        key = (typ, value)
        if key not in self._seen:
            self._seen.add(key)
            self.identifiers.append(Identifier(typ, value))

    def reject(self, typ: str, field: str, reason: str) -> None:
        self.rejected.append(RejectedIdentifier(typ, field, reason))

    def email(self, raw: str | None, field: str) -> str | None:
        if raw is None:
            return None
        try:
            value = self.norm.email(raw)
        except InvalidIdentifierError as exc:
            self.reject("email", field, str(exc))
            return None
        self.add("email", value)
        return value

    def phone(self, raw: str | None, field: str, region: str | None) -> str | None:
        if raw is None:
            return None
        try:
            value = self.norm.phone(raw, region)
        except InvalidIdentifierError as exc:
            self.reject("phone", field, str(exc))
            return None
        self.add("phone", value)
        return value

    def device(self, raw: str | None, field: str) -> str | None:
        if raw is None:
            return None
        try:
            value = self.norm.device_id(raw)
        except InvalidIdentifierError as exc:
            self.reject("device", field, str(exc))
            return None
        self.add("device", value)
        return value

    def cookie(self, raw: str | None, field: str) -> str | None:
        if raw is None:
            return None
        try:
            value = self.norm.cookie(raw)
        except InvalidIdentifierError as exc:
            self.reject("cookie", field, str(exc))
            return None
        self.add("cookie", value)
        return value

    def advertising_id(self, raw: str | None, kind: str, field: str) -> str | None:
        if raw is None:
            return None
        try:
            value = self.norm.advertising_id(raw, kind)
        except InvalidIdentifierError as exc:
            self.reject(kind, field, str(exc))
            return None
        self.add(kind, value)
        return value

    def typed(self, typ: str, raw: Any, field: str, *, strict: bool = False) -> str | None:
        """Add an identifier of any type, normalised by :meth:`Normalizer.typed_value`."""
        if raw is None:
            return None
        try:
            value = self.norm.typed_value(typ, raw, strict=strict)
        except InvalidIdentifierError as exc:
            self.reject(typ, field, str(exc))
            return None
        self.add(typ, value)
        return value

    def namespaced(self, typ: str, raw: str | None, field: str) -> str | None:
        if raw is None:
            return None
        try:
            value = self.norm.namespaced_value(raw, typ)
        except InvalidIdentifierError as exc:
            self.reject(typ, field, str(exc))
            return None
        self.add(typ, value)
        return value

    # attributes ---------------------------------------------------------------------

    def attr(self, name: str, value: str | None) -> None:
        if value is not None and name not in self.attributes:
            self.attributes[name] = value

    def name_attrs(self, given: Any, middle: Any, family: Any) -> None:
        norm = self.norm
        self.attr("given_name", norm.name(given))
        self.attr("middle_name", norm.name(middle))
        self.attr("family_name", norm.name(family))

    def text_attr(self, name: str, raw: Any) -> None:
        """A free-text attribute; ``company`` drops values that name no company
        (:meth:`Normalizer.company`)."""
        norm = self.norm
        self.attr(name, norm.company(raw) if name == "company" else norm.text(raw))

    def birth_date(self, raw: Any) -> None:
        for key, value in self.norm.birth_date(raw).items():
            self.attr(key, value)

    def region_hints(self, locale: Any, time_zone: Any) -> None:
        """The person's locale and IANA time zone as the source reported them (region
        evidence, not attributes); a value that is no non-blank text (or longer than 64
        characters) is ignored, never an error."""
        for name, raw in (("locale", locale), ("time_zone", time_zone)):
            if isinstance(raw, str) and raw.strip() and len(raw) <= 64:
                setattr(self, name, raw.strip())

    # event properties ---------------------------------------------------------------

    def prop(self, name: str, raw: Any, *, text: bool = False, number: bool = False) -> None:
        """Set event property ``name`` from a raw payload value (:func:`property_value`),
        unless it is already set, unusable, or the record already has ``max_properties``.
        ``number``: a numeric string (``"27.50"``) becomes a float and other text is
        dropped (amounts); ``text``: numbers become text (IDs)."""
        props = self.properties
        if name in props or len(props) >= self.max_properties:
            return
        if len(name) > self.max_property_chars or not name.strip():
            return
        value = property_value(raw, text=text, max_chars=self.max_property_chars)
        if value is None:
            return
        if number and isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                return
            if not math.isfinite(value):
                return
        props[name] = value

    # result -------------------------------------------------------------------------

    def key_error(self, field: str) -> InvalidPayloadError:
        """The error for a record whose key identifier (the value at ``field``) was
        rejected: such a record cannot be keyed, whatever other identifiers it has."""
        reasons = "; ".join(r.reason for r in self.rejected if r.field == field)
        return InvalidPayloadError(self.source, field, f"no usable identifier ({reasons})")

    def build(
        self,
        source_record_id: str,
        event_id: str,
        event_time: datetime,
        event_type: str,
        id_field: str,
    ) -> IdentityRecord:
        """The record; raises InvalidPayloadError(source, id_field, ...) without identifiers."""
        if not self.identifiers:
            reasons = "; ".join(r.reason for r in self.rejected)
            problem = "no usable identifier" + (f" ({reasons})" if reasons else "")
            raise InvalidPayloadError(self.source, id_field, problem)
        return IdentityRecord(
            source=self.source,
            source_record_id=source_record_id,
            event_id=event_id,
            event_time=event_time,
            identifiers=tuple(self.identifiers),
            attributes=self.attributes,
            consent=self.consent,
            event_type=event_type,
            rejected=tuple(self.rejected),
            properties=self.properties,
            event_name=self.event_name,
            locale=self.locale,
            time_zone=self.time_zone,
        )
