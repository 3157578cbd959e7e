"""Google Calendar API v3 Event resources.

One event -> one :class:`IdentityRecord` per person on it (the organiser and each
attendee), keyed ``google_calendar:<email>``, deduplicated by normalised email. Rooms and
other resources (``resource: true``, ``*.calendar.google.com`` addresses such as
``...@resource.calendar.google.com`` or ``...@group.calendar.google.com``) are skipped.

An event without any person (only rooms/calendars, or the ``{"id", "status":
"cancelled"}`` stub an incremental sync returns for a deleted event) yields no records.
When people are listed but none has a usable email, the payload is rejected.

Event type: the person's role (``organizer`` or ``attendee``). Event properties: ``status``
(the event's: ``confirmed``, ``tentative``, ``cancelled``) and ``response_status`` (the
person's ``responseStatus``: ``accepted``, ``declined``, ``tentative``, ``needsAction``).
"""

from __future__ import annotations

from idgraph.core.errors import InvalidIdentifierError, InvalidPayloadError
from idgraph.resolver.adapters._common import (
    RecordBuilder,
    opt_bool,
    opt_dict,
    opt_str,
    parse_time,
    person_name,
    req_str,
)
from idgraph.resolver.model import IdentityRecord
from idgraph.resolver.normalize import Normalizer

SOURCE = "google_calendar"

def _is_resource_address(raw: str) -> bool:
    return raw.strip().lower().rstrip(">").endswith("calendar.google.com")


def adapt(payload: dict, norm: Normalizer) -> list[IdentityRecord]:
    kind = opt_str(SOURCE, payload, "kind", "kind")
    if kind is not None and kind != "calendar#event":
        raise InvalidPayloadError(SOURCE, "kind", "not a calendar#event resource")
    event_id = req_str(SOURCE, payload, "id", "id")
    # "status" may be "cancelled": still valid, its people were on the invitation.
    status = opt_str(SOURCE, payload, "status", "status")

    # Candidates: (field path, raw email, display name, role, response status).
    candidates: list[tuple[str, str, str | None, str, object]] = []
    organizer = opt_dict(SOURCE, payload, "organizer", "organizer")
    if organizer is not None:
        email = opt_str(SOURCE, organizer, "email", "organizer.email")
        if email is not None and not _is_resource_address(email):
            display = opt_str(SOURCE, organizer, "displayName", "organizer.displayName")
            candidates.append(("organizer.email", email, display, "organizer", None))
    attendees = payload.get("attendees")
    if attendees is not None and not isinstance(attendees, list):
        raise InvalidPayloadError(SOURCE, "attendees", "not a list")
    for i, attendee in enumerate(attendees or ()):
        path = f"attendees[{i}]"
        if not isinstance(attendee, dict):
            raise InvalidPayloadError(SOURCE, path, "not an object")
        if opt_bool(SOURCE, attendee, "resource", f"{path}.resource"):
            continue
        email = opt_str(SOURCE, attendee, "email", f"{path}.email")
        if email is None or _is_resource_address(email):
            continue
        display = opt_str(SOURCE, attendee, "displayName", f"{path}.displayName")
        is_organizer = opt_bool(SOURCE, attendee, "organizer", f"{path}.organizer")
        role = "organizer" if is_organizer else "attendee"
        candidates.append((f"{path}.email", email, display, role,
                           attendee.get("responseStatus")))

    if not candidates:
        return []
    updated = opt_str(SOURCE, payload, "updated", "updated")
    if updated is None:
        raise InvalidPayloadError(SOURCE, "updated", "missing")
    event_time = parse_time(SOURCE, "updated", updated)

    # Deduplicate people by normalised email; the organiser role and a display name win.
    people: dict[str, list] = {}
    rejected: list[tuple[str, str]] = []
    for field, raw, display, role, response in candidates:
        try:
            email = norm.email(raw)
        except InvalidIdentifierError as exc:
            rejected.append((field, str(exc)))
            continue
        person = people.get(email)
        if person is None:
            people[email] = [display, role, response]
        else:
            if person[0] is None:
                person[0] = display
            if role == "organizer":
                person[1] = "organizer"
            if person[2] is None:
                person[2] = response
    if not people:
        reasons = "; ".join(reason for _, reason in rejected)
        raise InvalidPayloadError(SOURCE, "attendees", f"no usable identifier ({reasons})")

    records = []
    for email, (display, role, response) in people.items():
        b = RecordBuilder(SOURCE, norm)
        b.add("email", email)
        b.attr("email", email)
        for key, value in person_name(display, norm).items():
            b.attr(key, value)
        b.prop("status", status)
        b.prop("response_status", response)
        records.append(
            b.build(email, f"{SOURCE}:{event_id}:{updated}:{email}", event_time, role, "email")
        )
    return records
