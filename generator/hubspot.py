"""HubSpot: CRM v3 contact objects and their later updates.

Contract: :class:`HubSpotSource` queues payloads shaped like ``GET /crm/v3/objects/contacts``
results on the stream, each yielding one record keyed ``hubspot:<id>`` (an update re-sends the
whole object with a later ``updatedAt``; ``hs_additional_emails`` may list the person's other
addresses). Contact IDs are numeric strings, increasing. What
:mod:`idgraph.resolver.adapters.hubspot` reads back.
"""

from __future__ import annotations

from idgraph.generator.emails import canonical_email
from idgraph.generator.events import DAY_MS, HOUR_MS, EventStream
from idgraph.generator.model import Person
from idgraph.generator.names import promoted_title
from idgraph.generator.variation import Variation

__all__ = ["HubSpotSource", "contact_object", "contact_version"]


def contact_object(hid: str, props: dict, created_z: str, updated_z: str) -> dict:
    """A contact object: ``id``, ``properties``, ``createdAt``/``updatedAt``, not archived."""
    return {
        "id": hid,
        "properties": props,
        "createdAt": created_z,
        "updatedAt": updated_z,
        "archived": False,
    }


def contact_version(prev: dict, props: dict, z: str) -> dict:
    """A later version of contact object ``prev`` with properties ``props``, modified at ``z``
    (``lastmodifieddate`` and ``updatedAt``)."""
    props["lastmodifieddate"] = z
    return contact_object(prev["id"], props, prev["createdAt"], z)


class HubSpotSource:
    """One contact per person it is asked for (CRM duplicates live in Salesforce)."""

    def __init__(self, stream: EventStream, vary: Variation) -> None:
        self.stream = stream
        self.vary = vary
        self.rng = stream.rng
        self.ri = stream.ri
        self.clock = stream.clock
        self.emit = stream.emit
        self._next = 0  # the last contact id handed out

    def contact(self, p: Person) -> None:
        """Queue a contact for ``p`` and 0-2 later updates of it."""
        rng = self.rng
        if self._next == 0:
            self._next = self.ri(1000, 90000)
        self._next += self.ri(1, 60)
        hid = str(self._next)
        ms = self.stream.when(0.0, 0.85)
        addr, known = self.vary.address_fields(p, 0.55)
        phone, mob = self.vary.phone_fields(p, known)
        email = self.vary.crm_email(p, 0.55)
        extra = None
        others = [e for e in p.emails if canonical_email(e) != canonical_email(email)]
        if others and rng.random() < 0.3:
            extra = ";".join(self.vary.email_variant(e) for e in others)
        created = self.stream.created_before(ms)
        created_z, updated_z = self.clock.z(created), self.clock.z(ms)
        props = {
            "address": addr["street"],
            "city": addr["city"],
            "company": self.vary.company_variant(p.company)
            if p.company and rng.random() < 0.85
            else None,
            "country": addr["country"],
            "createdate": created_z,
            "date_of_birth": p.birth_date.isoformat() if rng.random() < 0.25 else None,
            "email": email,
            "firstname": self.vary.name_variant(p, True),
            "hs_additional_emails": extra,
            "hs_object_id": hid,
            "jobtitle": p.job_title if rng.random() < 0.7 else None,
            "lastmodifieddate": updated_z,
            "lastname": self.vary.name_variant(p, False),
            "mobilephone": mob,
            "phone": phone,
            "state": addr["state"],
            "zip": addr["postal"],
        }
        payload = contact_object(hid, props, created_z, updated_z)
        key = f"hubspot:{hid}"
        self.emit(ms, "hubspot", payload, key, p.person_id)
        n = 0 if rng.random() < 0.8 else (1 if rng.random() < 0.75 else 2)
        prev = payload
        for _ in range(n):
            ms += self.ri(HOUR_MS, 45 * DAY_MS)
            if ms >= self.stream.end:
                return
            props = dict(prev["properties"])
            r = rng.random()
            if r < 0.35:
                props["jobtitle"] = promoted_title(rng, props.get("jobtitle") or p.job_title)
            elif r < 0.6 and p.phones:
                props["phone"] = self.vary.phone_text(rng.choice(p.phones), known)
            elif r < 0.8 and len(p.emails) > 1:
                props["hs_additional_emails"] = ";".join(p.emails[1:])
            else:
                props["firstname"] = p.given_name
                props["lastname"] = p.family_name
            new = contact_version(prev, props, self.clock.z(ms))
            self.emit(ms, "hubspot", new, key, p.person_id)
            prev = new
