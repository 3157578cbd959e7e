"""Seeded synthetic multi-source data with ground truth: :func:`generate`.

:func:`generate` draws a population of :class:`~idgraph.generator.model.Person` objects
(:mod:`~idgraph.generator.people`) and the raw payloads five source systems would deliver about
them, exactly in those systems' wire shapes, one builder module per source (as
``resolver/adapters`` has one adapter module per source):

* ``salesforce`` (:mod:`~idgraph.generator.salesforce`): REST sObject records (Contacts,
  duplicate Leads, later updates);
* ``hubspot`` (:mod:`~idgraph.generator.hubspot`): CRM v3 contact objects (and later updates);
* ``sendgrid`` (:mod:`~idgraph.generator.sendgrid`): Event Webhook events
  (processed/delivered/open/click/bounce/unsubscribe);
* ``segment`` (:mod:`~idgraph.generator.segment`): track/page/screen/identify events per device
  (anonymous first, then an identify, then known), including shared household tablets;
* ``google_calendar`` (:mod:`~idgraph.generator.google_calendar`): Calendar API v3 Event
  resources with 2-5 people (and meeting rooms).

The payloads carry the variation real data has (:mod:`~idgraph.generator.variation`):
different emails of the same person per system, case/whitespace and Gmail dot/plus variants,
phone numbers in national and international formats, name typos and nicknames, company suffix
variants, occasional email typos (genuinely different addresses), and rare placeholder junk
(``test@test.com``, the all-zero IDFA) that must never link anything.

``SyntheticDataset.truth`` maps every record key the adapters produce
(``SOURCE:SOURCE_RECORD_ID``) to the person who owns it; a shared device's anonymous
records belong to its owner (the first household member who logged in on it).

Contract: everything is drawn from one ``random.Random(seed)`` (IDs included, no ``uuid4``), so
a seed reproduces the dataset byte for byte. The builders share that generator through the
:class:`~idgraph.generator.events.EventStream`, so the order in which :func:`generate` runs
them (population, CRM, Segment, Calendar, then SendGrid filling up to ``n_records``) is part
of the output: reordering it changes every dataset.
"""

from __future__ import annotations

import gc
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from idgraph.generator.devices import share_household_devices
from idgraph.generator.emails import EmailRegistry, canonical_email
from idgraph.generator.events import EventStream
from idgraph.generator.google_calendar import CalendarSource
from idgraph.generator.hubspot import HubSpotSource
from idgraph.generator.ids import hex_id
from idgraph.generator.model import Person
from idgraph.generator.people import PeopleFactory
from idgraph.generator.salesforce import SalesforceSource
from idgraph.generator.segment import ZERO_IDFA, SegmentSource, hash_index
from idgraph.generator.sendgrid import SendGridSource
from idgraph.generator.variation import JUNK_EMAIL, Variation, email_caps

__all__ = ["JUNK_EMAIL", "ZERO_IDFA", "SyntheticDataset", "generate"]
# defined here before the split into per-source modules; still importable from here
__all__ += ["DEFAULT_START", "email_caps", "hash_index"]

DEFAULT_START = datetime(2024, 1, 1, tzinfo=UTC)

#: Approximate IdentityRecords per person before SendGrid fills up to ``n_records``.
_RECORDS_PER_PERSON = 10.0
#: Share of ``n_records`` given to calendar attendee records.
_CALENDAR_SHARE = 0.09

# --------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------


@dataclass
class SyntheticDataset:
    """Generated payloads in stream order, plus the ground truth behind them."""

    events: list[tuple[str, dict]]
    """(source kind, raw payload), ascending by the event time the adapters read."""
    truth: dict[str, str]
    """Record key (``SOURCE:SOURCE_RECORD_ID``) -> person ID, for every record produced."""
    people: list[Person]
    seed: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    """IdentityRecords the adapters will produce, per source (calendar: one per person)."""

    @property
    def n_records(self) -> int:
        return sum(self.counts.values())

    def payloads(self, source: str) -> list[dict]:
        """The payloads of one source, in event order."""
        return [p for s, p in self.events if s == source]

    def person(self, person_id: str) -> Person:
        idx = int(person_id.rsplit("-", 1)[1])
        return self.people[idx]

    def clusters(self) -> dict[str, list[str]]:
        """Person ID -> record keys (the ideal resolution)."""
        out: dict[str, list[str]] = {}
        for key, pid in self.truth.items():
            out.setdefault(pid, []).append(key)
        return out


# --------------------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------------------


def generate(
    n_records: int = 10_000,
    seed: int = 7,
    start: datetime = DEFAULT_START,
    days: int = 180,
    typo_rate: float = 0.03,
    *,
    junk_rate: float = 0.005,
    shared_device_rate: float = 0.03,
    household_rate: float = 0.15,
    email_key: Callable[[str], str] | None = None,
) -> SyntheticDataset:
    """Generate about ``n_records`` identity records (adapter outputs) with ground truth.

    ``typo_rate``: chance of a typo in a name field of a CRM record (emails get typos at a
    third of it). ``junk_rate``: share of CRM records carrying ``test@test.com`` instead of a
    real address (the all-zero IDFA shows up on a few iOS devices at a similar rate).
    ``shared_device_rate``: share of devices used by a second household member.
    ``email_key`` normalises emails into record keys (default: the engine's
    ``Normalizer().email`` with default settings).
    """
    if n_records < 1:
        raise ValueError("n_records must be at least 1")
    if days < 1:
        raise ValueError("days must be at least 1")
    if email_key is None:
        email_key = _default_email_key()
    # Millions of small dicts and no reference cycles: the cyclic GC would only rescan them.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _build(
            n_records,
            seed,
            start,
            days,
            typo_rate,
            junk_rate,
            shared_device_rate,
            household_rate,
            email_key,
        )
    finally:
        if was_enabled:
            gc.enable()


def _default_email_key() -> Callable[[str], str]:
    try:
        from idgraph.resolver.normalize import Normalizer
    except ImportError:  # pragma: no cover - the resolver is part of this repo
        return canonical_email
    return Normalizer().email


def _build(
    n_records: int,
    seed: int,
    start: datetime,
    days: int,
    typo_rate: float,
    junk_rate: float,
    shared_device_rate: float,
    household_rate: float,
    email_key: Callable[[str], str],
) -> SyntheticDataset:
    rng = random.Random(seed)
    stream = EventStream(rng, start, days, email_key)
    registry = EmailRegistry()
    registry.owner[canonical_email(JUNK_EMAIL)] = ""  # nobody's address
    factory = PeopleFactory(rng, registry)
    vary = Variation(stream, registry, typo_rate, junk_rate)

    # the population: companies, people, app accounts, shared household devices
    n_people = max(3, round(n_records / _RECORDS_PER_PERSON))
    factory.make_companies(max(2, n_people // 18))
    people: list[Person] = []
    for i in range(n_people):
        people.append(factory.make_person(i, household_rate=household_rate, prior=people))
    for p in people:
        if p.devices and rng.random() < 0.88:
            p.user_id = hex_id(rng, 13)
            p.app_email = (
                p.personal_emails[0] if p.personal_emails and rng.random() < 0.6 else p.emails[0]
            )
    n_devices = sum(len(p.devices) for p in people)
    share_household_devices(rng, factory.households(), n_devices, shared_device_rate)

    # the sources, in this order (they share one random.Random)
    salesforce = SalesforceSource(stream, vary)
    hubspot = HubSpotSource(stream, vary)
    for p in people:
        _crm(rng, p, salesforce, hubspot)
    segment = SegmentSource(stream, vary, people)
    for p in people:
        for d in p.devices:
            if d.owner == p.person_id:
                segment.device(p, d)
    CalendarSource(stream, people).fill(int(n_records * _CALENDAR_SHARE))
    remaining = n_records - stream.n_records()
    if remaining > 0:
        SendGridSource(stream, vary, people).fill(remaining)

    events, truth, counts = stream.finish(n_records)
    return SyntheticDataset(events=events, truth=truth, people=people, seed=seed, counts=counts)


def _crm(
    rng: random.Random, p: Person, salesforce: SalesforceSource, hubspot: HubSpotSource
) -> None:
    """Which CRMs hold ``p``: a Salesforce Contact (maybe with a duplicate Lead) or only a
    Lead, and/or a HubSpot contact; people with a company are in the CRMs more often."""
    in_sf = rng.random() < (0.7 if p.company else 0.35)
    contact_id = None
    if in_sf:
        contact_id = salesforce.contact(p)
        if rng.random() < 0.14:
            salesforce.lead(p, converted_to=contact_id if rng.random() < 0.3 else None)
    elif rng.random() < 0.12:
        salesforce.lead(p, converted_to=None)
    if rng.random() < (0.68 if in_sf else 0.4):
        hubspot.contact(p)
