"""Canonical identity model shared by every stage.

Identifiers are typed and normalised; their canonical text form is ``TYPE:VALUE`` where
TYPE is one of :data:`SIMPLE_TYPES` or a namespaced type ``crm:<system>``,
``user:<source>`` or ``ext:<namespace>`` (source-scoped IDs keep their source), e.g.::

    email:jane@example.com        phone:+4915112345678
    device:6d9e...                idfa:AEBE52E7-03EE-455A-B3C4-E57283966239
    gaid:38400000-8cf0-11bd-b23e-10b96e40000d
    cookie:507f191e810c19729de860ea   (an anonymous web/app ID, e.g. Segment anonymousId)
    crm:salesforce:0035e00000AbCdEAAB crm:hubspot:51
    user:segment:97980cfea0067        ext:shopify:8472
    message:14c5d75ce93.dfd.64b469@ismtpd-555   (an email's Message-ID, brackets removed)

A record is one source record (a Salesforce Contact, a HubSpot contact, the SendGrid
recipient behind an email event, a Segment user or anonymous visitor, a calendar attendee,
the sender of an email reply received through Mandrill).
Its key is ``SOURCE:SOURCE_RECORD_ID``. Every event about it is an :class:`IdentityRecord`
carrying the identifiers and attributes that event saw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from idgraph.core.errors import InvalidIdentifierError

SIMPLE_TYPES = frozenset({"email", "phone", "device", "idfa", "gaid", "cookie", "message"})
NAMESPACED_TYPES = frozenset({"crm", "user", "ext"})

#: Canonical attribute names every adapter maps into (values are display-normalised strings).
CANONICAL_ATTRIBUTES = (
    "given_name",
    "middle_name",
    "family_name",
    "birth_date",  # ISO YYYY-MM-DD when the full date is known
    "birth_year",
    "birth_month",
    "birth_day",
    "email",  # the record's primary email (normalised)
    "phone",  # the record's primary phone (E.164, ``;ext=N`` appended for an extension)
    "street",
    "city",
    "postal_code",
    "state",
    "country",  # ISO 3166-1 alpha-2, upper case
    "company",
    "job_title",
    "national_id",  # a social-security/tax number from a file given to ``idgraph resolve``
)

#: An event property's value: text, or a number (every JSON number becomes a float).
PropertyValue = str | float

#: Default bounds of :attr:`IdentityRecord.properties` (what one event may carry): at most
#: this many properties, each text value (and name) at most this many characters. Beyond
#: them a property is dropped, never an error. Adapters apply them through
#: :class:`~idgraph.resolver.adapters._common.RecordBuilder` (``property_limits``).
MAX_EVENT_PROPERTIES = 16
MAX_PROPERTY_CHARS = 256

#: Source kinds the adapters understand.
SOURCES = ("salesforce", "hubspot", "sendgrid", "segment", "google_calendar", "mandrill")


class Identifier(NamedTuple):
    """A typed, normalised identifier. ``type`` may be namespaced (``crm:salesforce``).

    A named tuple rather than a frozen dataclass: adapters build several per record on the
    ingest hot path, and a tuple is built about five times faster.
    """

    type: str
    value: str

    @property
    def key(self) -> str:
        """Canonical text form ``TYPE:VALUE`` used as the graph node key and index key."""
        return f"{self.type}:{self.value}"

    @property
    def kind(self) -> str:
        """The type without its namespace (``crm:salesforce`` -> ``crm``)."""
        return self.type.split(":", 1)[0]

    def __str__(self) -> str:  # never logged with PII by our code; explicit for debugging
        return self.key

    @staticmethod
    def split_key(text: str) -> tuple[str, str]:
        """Split ``TYPE:VALUE`` text into (type, raw value) without normalising.

        Raises :class:`InvalidIdentifierError` naming what is missing or unknown.
        """
        if not isinstance(text, str) or ":" not in text:
            raise InvalidIdentifierError(
                "identifier must have the form TYPE:VALUE (e.g. email:jane@example.com)"
            )
        head, rest = text.split(":", 1)
        head = head.strip().lower()
        if head in SIMPLE_TYPES:
            typ, value = head, rest
        elif head in NAMESPACED_TYPES:
            if ":" not in rest:
                raise InvalidIdentifierError(
                    f"identifier type {head!r} needs a namespace: {head}:NAMESPACE:VALUE"
                )
            ns, value = rest.split(":", 1)
            ns = ns.strip().lower()
            if not ns:
                raise InvalidIdentifierError(f"identifier type {head!r} has an empty namespace")
            typ = f"{head}:{ns}"
        else:
            known = ", ".join(sorted(SIMPLE_TYPES | NAMESPACED_TYPES))
            # the part before ':' is not quoted back: a malformed identifier can put a
            # person's e-mail address there (error messages are PII-free by contract)
            raise InvalidIdentifierError(f"unknown identifier type (the text before the "
                                         f"first ':'); known types: {known}")
        if not value.strip():
            raise InvalidIdentifierError(f"identifier of type {head!r} has an empty value")
        return typ, value


@dataclass(frozen=True, slots=True)
class RejectedIdentifier:
    """An identifier the adapter or normaliser refused, with the reason (no raw value)."""

    type: str
    field: str
    reason: str


@dataclass(slots=True)
class IdentityRecord:
    """One event about one source record, in canonical form.

    ``event_time`` is timezone-aware UTC. ``attributes`` maps canonical attribute names
    (:data:`CANONICAL_ATTRIBUTES`) to display-normalised strings. ``region`` is filled by
    the engine's region policy when the adapter could not tell. ``consent`` maps a purpose
    (``email``, ``ads``, ``analytics``...) to granted/withdrawn as the source reported it.

    ``locale`` (BCP 47 or POSIX, ``en-GB``) and ``time_zone`` (an IANA name,
    ``Europe/Berlin``) are what the source reported about the person's settings: region
    evidence only (:mod:`idgraph.resolver.regions`), never attributes; "" when not reported.

    ``event_type`` is what the adapter calls the event (``contact``, ``open``, ``track``,
    ``attendee``...); ``event_name`` names what happened when the type is a generic call
    (a Segment ``track``'s ``event``, ``Order Completed``), else empty; :attr:`activity`
    is the type an event is kept under on the profile's timeline. ``properties`` are a
    bounded set of event properties read from documented payload fields (an order's
    ``revenue``, an email's ``campaign``; each adapter's docstring lists its own), bounded
    by :data:`MAX_EVENT_PROPERTIES` and :data:`MAX_PROPERTY_CHARS`.
    """

    source: str
    source_record_id: str
    event_id: str
    event_time: datetime
    identifiers: tuple[Identifier, ...]
    attributes: dict[str, str] = field(default_factory=dict)
    region: str | None = None
    consent: dict[str, bool] = field(default_factory=dict)
    event_type: str = ""
    rejected: tuple[RejectedIdentifier, ...] = ()
    properties: dict[str, PropertyValue] = field(default_factory=dict)
    event_name: str = ""
    locale: str = ""
    time_zone: str = ""

    @property
    def activity(self) -> str:
        """The event's type on the timeline: ``event_name`` when set, else ``event_type``."""
        return self.event_name or self.event_type

    @property
    def record_key(self) -> str:
        """Graph/store key of the source record: ``SOURCE:SOURCE_RECORD_ID``."""
        return f"{self.source}:{self.source_record_id}"

    @property
    def event_ts(self) -> float:
        """Event time as POSIX seconds (what the stores persist)."""
        return self.event_time.timestamp()

