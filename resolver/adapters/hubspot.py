"""HubSpot CRM v3 contact objects (``GET /crm/v3/objects/contacts`` results).

One contact -> one :class:`IdentityRecord` keyed ``hubspot:<id>``. Property values are
strings or null, as HubSpot delivers them (``hs_email_optout`` is ``"true"``/``"false"``).
Event properties (type ``contact``): ``lifecycle_stage`` (``lifecyclestage``: ``lead``,
``customer``...) and ``lead_status`` (``hs_lead_status``), as HubSpot's internal values.

Region evidence besides ``country`` (:mod:`idgraph.resolver.regions`): the phone numbers,
``hs_language`` (the contact's preferred language, ``en-gb``) as the locale and
``hs_timezone`` (HubSpot's spelling of an IANA zone, ``europe_slash_london``) as the time
zone.
"""

from __future__ import annotations

from idgraph.core.errors import InvalidPayloadError
from idgraph.resolver.adapters._common import (
    RecordBuilder,
    opt_bool,
    opt_str,
    parse_time,
    req_dict,
    req_str,
)
from idgraph.resolver.model import IdentityRecord
from idgraph.resolver.normalize import Normalizer

SOURCE = "hubspot"


def _iana_zone(value: str | None) -> str | None:
    """An IANA zone name (lower case) from HubSpot's ``hs_timezone`` option value, which
    spells ``/`` as ``_slash_`` and ``-`` as ``_hyphen_``
    (``america_slash_port_hyphen_au_hyphen_prince``: ``america/port-au-prince``)."""
    if value is None:
        return None
    return value.strip().lower().replace("_slash_", "/").replace("_hyphen_", "-")


def adapt(payload: dict, norm: Normalizer) -> list[IdentityRecord]:
    record_id = req_str(SOURCE, payload, "id", "id")
    props = req_dict(SOURCE, payload, "properties", "properties")

    def prop(name: str) -> str | None:
        return opt_str(SOURCE, props, name, f"properties.{name}")

    updated = opt_str(SOURCE, payload, "updatedAt", "updatedAt")
    if updated is not None:
        event_time = parse_time(SOURCE, "updatedAt", updated)
    else:
        updated = prop("lastmodifieddate")
        if updated is None:
            raise InvalidPayloadError(SOURCE, "updatedAt", "missing")
        event_time = parse_time(SOURCE, "properties.lastmodifieddate", updated)

    b = RecordBuilder(SOURCE, norm)
    b.add("crm:hubspot", record_id)
    country = norm.country(prop("country"))

    b.attr("email", b.email(prop("email"), "properties.email"))
    extra = prop("hs_additional_emails")
    if extra is not None:
        for part in extra.split(";"):
            if part.strip():
                b.email(part, "properties.hs_additional_emails")
    for name in ("phone", "mobilephone"):
        b.attr("phone", b.phone(prop(name), f"properties.{name}", country))

    b.name_attrs(prop("firstname"), None, prop("lastname"))
    b.text_attr("company", prop("company"))
    b.text_attr("job_title", prop("jobtitle"))
    b.text_attr("street", prop("address"))
    b.text_attr("city", prop("city"))
    b.text_attr("state", prop("state"))
    b.attr("postal_code", norm.postal_code(prop("zip")))
    b.attr("country", country)
    b.birth_date(prop("date_of_birth"))

    b.region_hints(prop("hs_language"), _iana_zone(prop("hs_timezone")))

    b.prop("lifecycle_stage", prop("lifecyclestage"))
    b.prop("lead_status", prop("hs_lead_status"))

    optout = opt_bool(SOURCE, props, "hs_email_optout", "properties.hs_email_optout")
    if optout is not None:
        b.consent["email"] = not optout

    return [b.build(record_id, f"{SOURCE}:{record_id}:{updated}", event_time, "contact", "id")]
