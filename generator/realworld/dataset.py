"""The real-world dataset: :func:`generate_realworld` and :class:`RealWorldDataset`.

Contract: everything is drawn from one ``random.Random(seed)`` (IDs included, no ``uuid4``, no
clock), so a seed reproduces the dataset byte for byte. The builders share that generator
through the :class:`~idgraph.generator.events.EventStream`, so the order in which
:func:`generate_realworld` runs them (population, CRM, Segment, Calendar, SendGrid, Mandrill)
is part of the output. Record keys and event IDs in the truth are what the real adapters
produce (:meth:`Ledger.resolve <idgraph.generator.realworld.ledger.Ledger.resolve>`).

Volume: about 14 identity records per person over a year (2024; a median of 13), most people
in two to four sources; 2,000 people generate in a few seconds.
"""

from __future__ import annotations

import gc
import random
from dataclasses import dataclass
from datetime import UTC, datetime

from idgraph.generator.emails import DOT_INSENSITIVE_DOMAINS
from idgraph.generator.events import EventStream
from idgraph.generator.realworld.calendar import RealCalendar
from idgraph.generator.realworld.crm import CrmSource
from idgraph.generator.realworld.ledger import Ledger
from idgraph.generator.realworld.mandrill import MandrillSource
from idgraph.generator.realworld.segment import RealSegment
from idgraph.generator.realworld.sendgrid import RealSendGrid
from idgraph.generator.realworld.spelling import Spelling
from idgraph.generator.realworld.traps import Tally
from idgraph.generator.realworld.world import World, build_world
from idgraph.generator.variation import Variation
from idgraph.resolver.normalize import Normalizer

__all__ = ["REALWORLD_SOURCES", "START", "RealWorldDataset", "generate_realworld"]

#: The source kinds of the real world (``mandrill``: Mailchimp Transactional inbound events).
REALWORLD_SOURCES = ("salesforce", "hubspot", "sendgrid", "segment", "google_calendar", "mandrill")
START = datetime(2024, 1, 1, tzinfo=UTC)
DAYS = 366


@dataclass
class RealWorldDataset:
    """Generated payloads in stream order, plus the ground truth behind them."""

    events: list[tuple[str, dict]]
    """(source kind, raw payload), ascending by the event time the adapters read."""
    event_truth: list[tuple[str, str, str, str]]
    """(source, event ID, record key, entity ID) for every IdentityRecord the adapters make,
    in event order. The entity is who the event is about: mostly the record's owner, but a
    shared device's or browser's records have events by several people."""
    record_truth: dict[str, str]
    """Record key -> entity ID: a device's anonymous record belongs to its first user, any
    other record to the entity most of its events belong to (the first on a tie)."""
    entities: dict[str, str]
    """Entity ID -> ``person`` | ``shared_mailbox`` | ``room`` (every entity of the world,
    including rooms the adapters skip)."""
    traps: dict[str, int]
    """Trap name (:data:`~idgraph.generator.realworld.traps.TRAPS`) -> instances."""
    seed: int = 0

    def payloads(self, source: str) -> list[dict]:
        """The payloads of one source, in event order."""
        return [p for s, p in self.events if s == source]

    @property
    def counts(self) -> dict[str, int]:
        """IdentityRecords per source."""
        out = dict.fromkeys(REALWORLD_SOURCES, 0)
        for source, _, _, _ in self.event_truth:
            out[source] = out.get(source, 0) + 1
        return out

    def clusters(self) -> dict[str, list[str]]:
        """Entity ID -> record keys (the ideal resolution)."""
        out: dict[str, list[str]] = {}
        for key, entity in self.record_truth.items():
            out.setdefault(entity, []).append(key)
        return out


def generate_realworld(n_people: int = 2000, seed: int = 7) -> RealWorldDataset:
    """Generate the real-world dataset of ``n_people`` people (and their companies'
    shared mailboxes and rooms) with ground truth."""
    if n_people < 10:
        raise ValueError("n_people must be at least 10")
    was_enabled = gc.isenabled()
    gc.disable()  # many small dicts, no reference cycles
    try:
        return _build(n_people, seed)
    finally:
        if was_enabled:
            gc.enable()


def _build(n_people: int, seed: int) -> RealWorldDataset:
    rng = random.Random(seed)
    norm = Normalizer()
    stream = EventStream(rng, START, DAYS, norm.email)
    world = build_world(stream, n_people)
    tally = Tally()
    ledger = Ledger(stream, tally)
    vary = Variation(stream, world.registry, typo_rate=0.03, junk_rate=0.0)
    spelling = Spelling(vary)

    crm = CrmSource(world, stream, vary, spelling, ledger, tally)
    for h in world.humans:
        crm.person(h)
    segment = RealSegment(world, stream, vary, ledger, tally)
    for h in world.humans:
        for d in h.p.devices:
            if d.owner == h.entity:
                segment.device(h, d)
    RealCalendar(world, stream, spelling, ledger).fill(round(n_people * 0.3))
    mail = RealSendGrid(world, stream, spelling, ledger, tally)
    mail.fill(crm.records, vary.typo_emails)
    MandrillSource(world, stream, spelling, ledger).replies(mail.delivered)

    events, rows, truth = ledger.resolve(norm)
    traps = tally.result()
    traps.update(_lookalikes(world, ledger.seen_emails, truth))
    return RealWorldDataset(
        events=events,
        event_truth=rows,
        record_truth=truth,
        entities=world.entities(),
        traps=traps,
        seed=seed,
    )


def _lookalikes(world: World, seen: set[str], truth: dict[str, str]) -> dict[str, int]:
    """Pairs of different people with one full name at one company (both in some record),
    and pairs of people's non-Gmail addresses, both in records, that differ only by dots."""
    in_records = set(truth.values())
    by_name: dict[tuple[str, str, str], int] = {}
    for h in world.humans:
        if h.org is not None and h.entity in in_records:
            key = (h.org.company.domain, h.p.given_name, h.p.family_name)
            by_name[key] = by_name.get(key, 0) + 1
    by_dots: dict[str, set[str]] = {}
    owners = world.registry.owner
    for email in seen:
        local, _, domain = email.rpartition("@")
        owner = owners.get(email)
        if owner is None or not owner.startswith("person-") or domain in DOT_INSENSITIVE_DOMAINS:
            continue
        by_dots.setdefault(f"{local.replace('.', '')}@{domain}", set()).add(owner)
    return {
        "same_name_same_company": sum(n * (n - 1) // 2 for n in by_name.values()),
        "non_gmail_dot_variant": sum(len(o) * (len(o) - 1) // 2 for o in by_dots.values()),
    }
