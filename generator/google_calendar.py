"""Google Calendar: API v3 Event resources of meetings between 2-5 people.

Contract: :class:`CalendarSource` queues ``calendar#event`` resources until about ``budget``
records are queued; each event yields one record per distinct attendee email (organiser
included), keyed ``google_calendar:<normalised email>``, and none for meeting rooms
(``resource`` attendees). Organisers and attendees are people with a work email; internal
meetings are mostly among colleagues of one company. Event times are local weekday office
hours in the organiser's time zone, a few days after the event was created
(:func:`meeting_times`; the resource itself: :func:`event_resource`, also used by
:mod:`idgraph.generator.realworld.calendar`). What
:mod:`idgraph.resolver.adapters.google_calendar` reads back.
"""

from __future__ import annotations

import base64
import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from idgraph.generator.events import EventStream, Owners
from idgraph.generator.ids import hex_id
from idgraph.generator.model import Person

__all__ = ["CalendarSource", "event_id", "event_resource", "meeting_times"]

_B32HEX = "0123456789abcdefghijklmnopqrstuv"

_MEETING_TITLES_INTERNAL = (
    "Weekly sync",
    "1:1",
    "Sprint planning",
    "Retro",
    "Project kickoff",
    "Roadmap review",
    "Hiring debrief",
    "Budget review",
    "Standup",
    "Design review",
)
_MEETING_TITLES_EXTERNAL = (
    "Intro call: {a} <> {b}",
    "{a} / {b} – demo",
    "QBR {b}",
    "Contract review with {b}",
    "{b} onboarding",
    "Partnership chat",
    "Lunch",
    "Follow-up: {b} pilot",
)
_ROOMS = ("Everest", "Kilimanjaro", "Fuji", "Matterhorn", "Denali", "Elbrus", "Olympus")

_ZONES: dict[str, ZoneInfo] = {}


def _zone(name: str) -> ZoneInfo:
    z = _ZONES.get(name)
    if z is None:
        z = _ZONES[name] = ZoneInfo(name)
    return z


def event_id(rng: random.Random) -> str:
    """A 26-character base32hex event ``id``."""
    return "".join(_B32HEX[rng.getrandbits(5)] for _ in range(26))


def meeting_times(stream: EventStream, ms: int, timezone: str) -> tuple[datetime, datetime]:
    """(start, end) of a meeting created at ``ms``: office hours in ``timezone`` on a weekday
    a few days later, 15-90 minutes long."""
    rng, ri = stream.rng, stream.ri
    tz = _zone(timezone)
    local = datetime.fromtimestamp(ms / 1000, tz) + timedelta(days=ri(1, 15))
    if local.weekday() >= 5:  # meetings happen on weekdays
        local += timedelta(days=7 - local.weekday())
    start = local.replace(hour=ri(8, 18), minute=rng.choice((0, 0, 30)), second=0, microsecond=0)
    start = datetime.fromtimestamp(start.timestamp(), tz)  # re-resolve the UTC offset
    end = start + timedelta(minutes=rng.choice((15, 30, 30, 45, 60, 60, 90)))
    return start, end


def event_resource(
    stream: EventStream,
    eid: str,
    ms: int,
    organizer: str,
    creator: dict,
    summary: str,
    times: tuple[datetime, datetime],
    timezone: str,
    attendees: list[dict],
) -> dict:
    """The ``calendar#event`` resource of event ``eid`` created at ``ms`` by ``organizer``'s
    calendar (a Meet link on 60% of them)."""
    rng = stream.rng
    start, end = times
    stamp = stream.clock.z(ms)
    eid_b64 = base64.urlsafe_b64encode(f"{eid} {organizer}".encode()).decode().rstrip("=")
    payload = {
        "kind": "calendar#event",
        "etag": f'"{3400000000000000 + ms}"',
        "id": eid,
        "status": "confirmed",
        "htmlLink": f"https://www.google.com/calendar/event?eid={eid_b64}",
        "created": stamp,
        "updated": stamp,
        "summary": summary,
        "creator": creator,
        "organizer": {"email": organizer, "self": True},
        "start": {"dateTime": start.isoformat(), "timeZone": timezone},
        "end": {"dateTime": end.isoformat(), "timeZone": timezone},
        "iCalUID": f"{eid}@google.com",
        "sequence": 0,
        "attendees": attendees,
        "reminders": {"useDefault": True},
        "eventType": "default",
    }
    if rng.random() < 0.6:
        code = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(10))
        payload["hangoutLink"] = f"https://meet.google.com/{code[:3]}-{code[3:7]}-{code[7:]}"
    return payload


class CalendarSource:
    """Meetings organised by people with a work email."""

    def __init__(self, stream: EventStream, people: list[Person]) -> None:
        self.stream = stream
        self.people = people
        self.rng = stream.rng
        self.ri = stream.ri
        self.clock = stream.clock

    def fill(self, budget: int) -> None:
        """Queue meetings until at least ``budget`` attendee records are queued."""
        rng = self.rng
        people = self.people
        workers = [p for p in people if p.work_email]
        if len(workers) < 2 or budget <= 0:
            return
        by_id = {p.person_id: p for p in workers}
        made = 0
        while made < budget:
            org = rng.choice(workers)
            size = rng.choice((2, 2, 2, 3, 3, 3, 4, 4, 5))
            internal = rng.random() < 0.6
            chosen = [org]
            chosen_ids = [org.person_id]
            colleagues = org.company.employees if internal and org.company else []
            tries = 0
            while len(chosen) < size and tries < 20:
                tries += 1
                if len(colleagues) > 1 and rng.random() < 0.9:
                    cand = by_id[rng.choice(colleagues)]
                else:
                    cand = rng.choice(workers)
                if cand.person_id not in chosen_ids:
                    chosen.append(cand)
                    chosen_ids.append(cand.person_id)
            if len(chosen) < 2:
                continue
            ms = self.stream.when(0.0, 1.0)
            payload, owners = self._event(org, chosen, ms, internal)
            self.stream.add(ms, "google_calendar", payload, owners)
            made += len(owners)

    def _event(
        self, org: Person, chosen: list[Person], ms: int, internal: bool
    ) -> tuple[dict, Owners]:
        rng = self.rng
        eid = event_id(rng)
        org_email = org.work_email
        assert org_email is not None
        attendees: list[dict] = []
        keys: list[str] = []
        owners: list[tuple[str, str]] = []
        for i, p in enumerate(chosen):
            if i == 0:
                email = org_email
            elif not internal and p.personal_emails and rng.random() < 0.1:
                email = p.personal_emails[0]
            else:
                email = p.work_email or p.emails[0]
            key = self.stream.email_key(email)
            if key in keys:
                continue
            keys.append(key)
            owners.append((f"google_calendar:{key}", p.person_id))
            if i > 0 and rng.random() < 0.08:
                email = email[:1].upper() + email[1:]
            a: dict = {"email": email}
            if i == 0:
                a["organizer"] = True
                a["self"] = True
                a["responseStatus"] = "accepted"
            else:
                if rng.random() < 0.55:
                    given = p.nickname if p.nickname and rng.random() < 0.2 else p.given_name
                    a["displayName"] = f"{given} {p.family_name}"
                a["responseStatus"] = rng.choice(
                    ("needsAction", "accepted", "accepted", "tentative", "declined")
                )
            attendees.append(a)
        if rng.random() < 0.2:
            attendees.append(
                {
                    "email": f"c_188{hex_id(rng, 20)}@resource.calendar.google.com",
                    "displayName": f"{org.city}-{self.ri(1, 9)}-{rng.choice(_ROOMS)} ({rng.choice((4, 6, 8, 12))})",
                    "resource": True,
                    "responseStatus": "accepted",
                }
            )
        times = meeting_times(self.stream, ms, org.timezone)
        if internal:
            summary = rng.choice(_MEETING_TITLES_INTERNAL)
        else:
            other = next((p for p in chosen[1:] if p.company is not org.company), chosen[1])
            a_name = org.company.short if org.company else org.family_name
            b_name = other.company.short if other.company else other.family_name
            summary = rng.choice(_MEETING_TITLES_EXTERNAL).format(a=a_name, b=b_name)
        creator = {"email": org_email, "self": True}
        payload = event_resource(
            self.stream, eid, ms, org_email, creator, summary, times, org.timezone, attendees
        )
        return payload, tuple(owners)
