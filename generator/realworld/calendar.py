"""Google Calendar API v3 Event resources of the real world, in the shape of
:mod:`idgraph.generator.google_calendar` and built by its helpers (``calendar#event`` with
``organizer``, ``creator`` and ``attendees``; :func:`~idgraph.generator.google_calendar.meeting_times`,
:func:`~idgraph.generator.google_calendar.event_resource`).

Contract: :meth:`RealCalendar.fill` queues meetings organised by people with an employer
(their work address at the meeting time: the old one before a job change, the new one
after). Each payload's owner maps every attendee's normalised email to its entity: people,
the team mailboxes some meetings invite (``team@``...: the mailbox entity), and rooms (the
room entity; Google resources ``...@resource.calendar.google.com`` with ``resource: true``,
which the adapter skips, and rooms set up as plain user accounts such as ``boardroom@``,
which it does not). Traps: rooms, room accounts, team mailboxes, events created by an
assistant on the organiser's calendar, meetings with people of three or more companies.
Draws only from the stream's ``random.Random``.
"""

from __future__ import annotations

from idgraph.generator.google_calendar import event_id, event_resource, meeting_times
from idgraph.generator.realworld.ledger import Builder, Marks
from idgraph.generator.realworld.world import Human, Org

__all__ = ["RealCalendar"]

_INTERNAL = ("Weekly sync", "1:1", "Sprint planning", "Retro", "Roadmap review",
             "Hiring debrief", "Budget review", "Standup", "Design review", "All hands")
_EXTERNAL = ("Intro call: {a} <> {b}", "{a} / {b} – demo", "QBR {b}", "Contract review with {b}",
             "{b} onboarding", "Partnership chat", "Follow-up: {b} pilot", "Joint workshop")


class RealCalendar(Builder):
    """Meetings inside one company and across several."""

    def _staff(self, org: Org, ms: int, exclude: list[Human]) -> list[Human]:
        return [m for m in org.staff if m.org_at(ms) is org and m not in exclude]

    def fill(self, n_meetings: int) -> None:
        rng = self.rng
        workers = [h for h in self.world.humans if h.org is not None]
        orgs = self.world.orgs
        if not workers:
            return
        for _ in range(n_meetings):
            ms = self.stream.when(0.0, 0.98)
            host = rng.choice(workers)
            org = host.org_at(ms)
            assert org is not None
            people = [host]
            internal = rng.random() < 0.55
            colleagues = self._staff(org, ms, people)
            if internal and colleagues:
                k = min(len(colleagues), rng.choice((1, 1, 2, 2, 3, 4)))
                people += rng.sample(colleagues, k)
            else:
                internal = False
                if colleagues and rng.random() < 0.6:
                    people.append(rng.choice(colleagues))
                for _ in range(2 if rng.random() < 0.3 else 1):
                    other = rng.choice(orgs)
                    guests = self._staff(other, ms, people) if other is not org else []
                    if guests:
                        people += rng.sample(guests, min(len(guests), rng.choice((1, 1, 2))))
            if len(people) < 2:
                continue
            self._meeting(host, org, people, ms, internal)

    def _meeting(self, host: Human, org: Org, people: list[Human], ms: int, internal: bool
                 ) -> None:
        rng = self.rng
        marks = Marks()
        norm = self.stream.email_key
        eid = event_id(rng)
        host_email = host.work_email_at(ms)
        assert host_email is not None
        owner: dict[str, str] = {}
        attendees: list[dict] = []
        companies = set()
        for i, h in enumerate(people):
            here = h.org_at(ms)
            companies.add(here.company.domain if here is not None else h.entity)
            email = h.work_email_at(ms) or h.p.emails[0]
            if i > 0 and not internal and h.personal_emails and rng.random() < 0.1:
                email = h.personal_emails[0]
            key = norm(email)
            if key in owner:
                continue
            owner[key] = h.entity
            a: dict = {"email": email if rng.random() < 0.93 else email[:1].upper() + email[1:]}
            if i == 0:
                a.update(organizer=True, self=True, responseStatus="accepted")
            else:
                if rng.random() < 0.6:
                    a["displayName"] = self.spell.display_name(h, marks)
                a["responseStatus"] = rng.choice(
                    ("needsAction", "accepted", "accepted", "tentative", "declined")
                )
            attendees.append(a)
        if len(companies) >= 3:
            marks.add("multi_company_meeting")
        if internal and org.roles and rng.random() < 0.07:
            mb = rng.choice(org.roles)
            owner[norm(mb.address)] = mb.entity_id
            attendees.append({"email": mb.address, "responseStatus": "needsAction"})
            marks.add("team_mailbox_attendee")
        if org.rooms and rng.random() < (0.4 if internal else 0.2):
            room = rng.choice(org.rooms)
            owner[norm(room.address)] = room.entity_id
            a = {"email": room.address, "displayName": room.name, "responseStatus": "accepted"}
            if room.resource:
                a["resource"] = True
                marks.add("calendar_room")
            else:
                marks.add("room_account_attendee")
            attendees.append(a)
        creator = {"email": host_email, "self": True}
        assistants = self._staff(org, ms, people)
        if assistants and rng.random() < 0.06:
            helper = rng.choice(assistants)
            creator = {"email": helper.work_email_at(ms)}
            marks.add("assistant_created_event")

        times = meeting_times(self.stream, ms, host.p.timezone)
        if internal:
            summary = rng.choice(_INTERNAL)
        else:
            guest = next((p for p in people[1:] if p.org_at(ms) is not org), people[1])
            guest_org = guest.org_at(ms)
            b = guest_org.company.short if guest_org is not None else guest.p.family_name
            summary = rng.choice(_EXTERNAL).format(a=org.company.short, b=b)
        payload = event_resource(
            self.stream, eid, ms, host_email, creator, summary, times, host.p.timezone, attendees
        )
        self.ledger.emit(ms, "google_calendar", payload, owner, marks)
