"""The generator's building blocks on their own: IDs, clock, event stream, email helpers."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from idgraph.generator.emails import EmailRegistry, canonical_email
from idgraph.generator.events import SOURCES, Clock, EventStream
from idgraph.generator.ids import hex_id, uuid4_str
from idgraph.generator.people import PeopleFactory
from idgraph.generator.salesforce import SalesforceSource, id18
from idgraph.generator.variation import Variation
from idgraph.resolver.normalize import Normalizer


def _stream(seed: int = 1, days: int = 30) -> EventStream:
    return EventStream(random.Random(seed), datetime(2024, 1, 1, tzinfo=UTC), days, str.lower)


def test_salesforce_id18_matches_the_documented_example():
    assert id18("001D000000IqhSL") == "001D000000IqhSLIAZ"
    assert id18("a0B5e0000000000") == "a0B5e0000000000EAA"


def test_salesforce_ids_are_18_chars_increasing_per_prefix():
    stream = _stream()
    sf = SalesforceSource(stream, Variation(stream, EmailRegistry(), 0.0, 0.0))
    for prefix in ("003", "00Q", "001"):
        ids = [sf.new_id(prefix) for _ in range(50)]
        assert all(len(i) == 18 and i.startswith(prefix) and id18(i[:15]) == i for i in ids)
        assert len(set(ids)) == len(ids)
        # base-62 body with digits < upper < lower: the counter order is the text order
        key = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".index
        assert ids == sorted(ids, key=lambda i: [key(c) for c in i[6:15]])


def test_random_ids_are_well_formed_and_seeded():
    rng = random.Random(3)
    for _ in range(200):
        u = uuid.UUID(uuid4_str(rng))
        assert u.version == 4 and u.variant == uuid.RFC_4122
    assert uuid4_str(random.Random(9), upper=True) == uuid4_str(random.Random(9)).upper()
    h = hex_id(random.Random(4), 13)
    assert len(h) == 13 and int(h, 16) >= 0 and h == h.lower()


def test_clock_matches_datetime_formatting():
    clock = Clock()
    rng = random.Random(5)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for _ in range(500):
        ms = rng.randrange(1_600_000_000_000, 1_800_000_000_000)
        dt = epoch + timedelta(milliseconds=ms)
        assert clock.z(ms) == dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
        assert clock.sf(ms) == dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}+0000"


def test_event_stream_orders_stably_and_cuts_the_latest():
    stream = _stream()
    t = stream.t0
    stream.emit(t + 5, "hubspot", {"n": 1}, "hubspot:1", "p1")
    stream.emit(t + 1, "salesforce", {"n": 2}, "salesforce:a", "p1")
    stream.emit(t + 5, "hubspot", {"n": 3}, "hubspot:1", "p1")  # same time: after n=1
    stream.add(t + 7, "google_calendar", {"n": 4}, ())  # yields no record
    stream.add(t + 9, "google_calendar", {"n": 5}, (("g:a", "p1"), ("g:b", "p2")))
    assert stream.n_records() == 5
    events, truth, counts = stream.finish(3)
    assert [p["n"] for _, p in events] == [2, 1, 3, 4]  # n=5 (2 records) cut
    assert truth == {"salesforce:a": "p1", "hubspot:1": "p1"}
    assert list(counts) == list(SOURCES)
    assert counts["hubspot"] == 2 and counts["google_calendar"] == 0


def test_event_stream_draws_stay_in_the_window():
    stream = _stream(days=3)
    for _ in range(1000):
        assert stream.t0 <= stream.when(0.2, 0.9) < stream.end
        assert 5 <= stream.ri(5, 9) < 9
        assert 0 <= stream.ri(4) < 4
        ms = stream.t0 + 10**9
        assert ms - 700 * 86_400_000 <= stream.created_before(ms) <= ms


@pytest.fixture(scope="module")
def people():
    factory = PeopleFactory(random.Random(11))
    factory.make_companies(20)
    prior: list = []
    for i in range(400):
        prior.append(factory.make_person(i, prior=prior))
    return factory, prior


def test_canonical_email_mirrors_the_default_normaliser(people):
    """``canonical_email`` stands in for ``Normalizer().email`` when no normaliser is given."""
    _, persons = people
    norm = Normalizer()
    stream = _stream()
    vary = Variation(stream, EmailRegistry(), 0.0, 0.0)
    seen = 0
    for p in persons:
        for email in p.emails:
            for _ in range(5):
                raw = vary.email_variant(email)
                assert canonical_email(raw) == norm.email(raw), raw
                assert canonical_email(raw) == canonical_email(email), raw
                seen += 1
    assert seen > 1000


def test_email_typos_are_nobody_elses_address(people):
    factory, persons = people
    stream = _stream()
    vary = Variation(stream, factory.registry, 0.0, 0.0)
    made = 0
    for p in persons:
        for email in p.emails:
            typo = vary.email_typo(p, email)
            if typo is None:
                continue
            made += 1
            assert canonical_email(typo) != canonical_email(email)
            assert factory.registry.owner[canonical_email(typo)] == p.person_id
            assert typo in vary.typo_emails[p.person_id]
    assert made > 100
    owners = factory.registry.owner
    for p in persons:  # every real address is still its owner's
        assert all(owners[canonical_email(e)] == p.person_id for e in p.emails)
