"""Segment memberships kept by the writer: on ingest, merges, splits, forget, when time
passes and when a definition is applied or deleted (the real engine and SQLite store)."""

from __future__ import annotations

import dataclasses

import pytest
from helpers import record

from idgraph.engine import Engine
from idgraph.engine.consent import ConsentService, Statement
from idgraph.engine.queries import ProfileQueries
from idgraph.engine.segment_definitions import SegmentDefinitions
from idgraph.engine.segment_queries import SegmentQueries
from idgraph.profile_store.base import StoreBatch
from idgraph.profile_store.sqlite_backend.segment_catalog import SqliteSegmentCatalog
from idgraph.resolver.normalize import Normalizer
from idgraph.segments import SegmentInUseError, UnknownSegmentError
from idgraph.settings import Settings

DAY = 86400.0
T0 = 1_700_000_000.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def world(tmp_path):
    settings = Settings(data_dir=tmp_path / "d")
    clock = Clock(T0)
    engine = Engine(settings)
    engine.segments.clock = clock
    catalog = SqliteSegmentCatalog(settings.data_dir / "profiles.sqlite")
    definitions = SegmentDefinitions(engine.store, catalog, clock)
    yield engine, definitions, clock
    catalog.close()
    engine.close()


def opened(t: float, eid: str, email: str, **kw) -> object:
    r = record("sendgrid", email, eid, t, [f"email:{email}"], **kw)
    return dataclasses.replace(r, event_name="open", properties={"campaign": "spring"})


def rows(engine, segment: str) -> dict[str, bool]:
    return {m.profile_id: m.member for m in engine.store.segment_members(segment)}


def changes(engine) -> list:
    found, _ = engine.store.segment_changes_after("", 10_000)
    return found


def test_ingest_enters_and_logs_with_the_clauses_and_cause(world):
    engine, definitions, _clock = world
    definitions.apply("Openers", 'event("open").within(30d)', "ana")
    engine.ingest([opened(T0 - DAY, "e1", "a@x.io")])
    pid = engine.queries.lookup("email:a@x.io").profile.profile_id
    assert rows(engine, "Openers") == {pid: True}
    [change] = changes(engine)
    assert (change.profile_id, change.segment, change.change, change.cause, change.version) \
        == (pid, "Openers", "entered", "event", 1)
    assert change.clauses == ['event("open").within(30d).count() >= 1']
    assert change.at == T0 - DAY  # the event time of the batch that caused it


def test_membership_leaves_on_time_with_no_new_event(world):
    engine, definitions, clock = world
    definitions.apply("Openers", 'event("open").within(30d)', "ana")
    engine.ingest([opened(T0 - DAY, "e1", "a@x.io")])
    [row] = engine.store.segment_members("Openers")
    assert row.next_change == T0 - DAY + 30 * DAY  # the open leaves the window then
    clock.now = row.next_change - 1
    while engine.segment_step():  # the new definition's evaluation over stored profiles
        pass
    assert rows(engine, "Openers")  # not due yet
    assert [c.change for c in changes(engine)] == ["entered"]
    clock.now = row.next_change + 0.5
    assert engine.segment_step() == 1
    assert rows(engine, "Openers") == {}
    exit_ = changes(engine)[-1]
    assert (exit_.change, exit_.cause, exit_.at) == ("exited", "time", row.next_change)


def test_a_merge_leaves_one_membership_per_person(world):
    engine, definitions, _clock = world
    definitions.apply("Known", "has_identifier(email)", "ana")
    engine.ingest([record("salesforce", "003A", "e1", T0, ["crm:salesforce:003A", "email:a@x.io"]),
                   record("segment", "u1", "e2", T0, ["user:segment:u1", "email:b@x.io"])])
    assert len(rows(engine, "Known")) == 2
    # the app user turns out to be the CRM contact: one profile survives
    engine.ingest([record("segment", "u1", "e3", T0 + 1,
                          ["user:segment:u1", "email:b@x.io", "crm:salesforce:003A"])])
    survivor = engine.queries.lookup("email:a@x.io").profile.profile_id
    assert rows(engine, "Known") == {survivor: True}
    merge_exits = [c for c in changes(engine) if c.cause == "merge"]
    assert [c.change for c in merge_exits] == ["exited"]
    assert merge_exits[0].profile_id != survivor


def test_forget_exits_with_cause_forget(world):
    engine, definitions, _clock = world
    definitions.apply("Known", "has_identifier(email)", "ana")
    engine.ingest([record("hubspot", "51", "e1", T0, ["crm:hubspot:51", "email:a@x.io"])])
    engine.forget_record("hubspot:51")
    assert rows(engine, "Known") == {}
    assert changes(engine)[-1].cause == "forget"


def test_a_new_definition_is_evaluated_over_stored_profiles(world):
    engine, definitions, _clock = world
    engine.ingest([record("hubspot", str(i), f"e{i}", T0, [f"email:p{i}@x.io"],
                          country="DE" if i % 3 else "US") for i in range(10)])
    definitions.apply("Germans", 'country = "DE"', "ana")
    assert engine.segment_builds_pending()
    while engine.segment_step(budget=4):
        pass
    assert not engine.segment_builds_pending()
    assert len(rows(engine, "Germans")) == 6
    assert {c.cause for c in changes(engine)} == {"definition"}
    builds = {b.region: b for b in engine.store.segment_builds()}
    assert set(builds) == set(engine.store.regions)  # each served region, even empty ones
    assert sum(b.evaluated for b in builds.values()) == 10
    assert all(b.done and b.evaluated == b.total for b in builds.values())
    # an edit is a new version, evaluated again
    applied = definitions.apply("Germans", 'country = "DE" or country = "US"', "bo")
    assert applied.changed and "-country = \"DE\"" in applied.diff
    while engine.segment_step():
        pass
    assert len(rows(engine, "Germans")) == 10
    assert {m.version for m in engine.store.segment_members("Germans")} == {2}


def test_deleting_a_segment_ends_its_memberships_and_is_refused_while_used(world):
    engine, definitions, _clock = world
    definitions.apply("Known", "has_identifier(email)", "ana")
    definitions.apply("Known DE", 'in_segment("Known") and country = "DE"', "ana")
    engine.ingest([record("hubspot", "1", "e1", T0, ["email:a@x.io"], country="DE")])
    assert rows(engine, "Known DE")
    with pytest.raises(SegmentInUseError, match="Known DE"):
        definitions.delete("Known", "ana")
    definitions.delete("Known DE", "ana")
    while engine.segment_step():
        pass
    assert rows(engine, "Known DE") == {}
    assert changes(engine)[-1].cause == "definition"
    assert [v.deleted for v in definitions.versions("Known DE")] == [False, True]
    with pytest.raises(UnknownSegmentError):
        definitions.apply("X", 'in_segment("Known DE")', "ana")


def test_single_incremental_and_full_evaluation_agree(world, tmp_path):
    engine, definitions, clock = world
    definitions.apply("A", 'country in ("DE", "AT") or event("open").within(7d)', "ana")
    definitions.apply("B", 'in_segment("A") and consent("email") = granted', "ana")
    batch = [opened(T0 - i * DAY, f"o{i}", f"p{i}@x.io",
                    consent={"email": bool(i % 2)}, country=["DE", "US", "AT"][i % 3])
             for i in range(12)]
    engine.ingest(batch)
    incremental = {s: rows(engine, s) for s in ("A", "B")}
    # full: a fresh build of both definitions over the same store
    engine.store.write(StoreBatch(removed_memberships=[
        (m.region, m.segment, m.profile_id)
        for s in ("A", "B") for m in engine.store.segment_members(s)]))
    definitions.apply("A", 'event("open").within(7d) or country in ("DE", "AT")', "ana")
    definitions.apply("B", 'consent("email") = granted and in_segment("A")', "ana")
    while engine.segment_step():
        pass
    full = {s: rows(engine, s) for s in ("A", "B")}
    assert full == incremental
    queries = SegmentQueries(engine.store, ProfileQueries(engine.store, Normalizer(
        engine.settings.normalization), engine.settings.survivorship), clock)
    single = {"A": {}, "B": {}}
    for pid in engine.graph.profile_ids():
        ev = queries.evaluate([], profile_id=pid)
        for name, result in ev.results.items():
            if result.matched:
                single[name][pid] = True
    assert single == incremental
    assert incremental["A"] and incremental["B"]


# --- property: the three ways of evaluating agree ---------------------------------------

from hypothesis import given, settings
from hypothesis import strategies as st

from idgraph.engine.segment_preview import preview
from idgraph.profile_store.segment_state import SegmentBuild
from idgraph.segments import parse

_LEAVES = st.sampled_from([
    'country = "DE"', 'country in ("DE", "AT")', "country absent", 'country != "US"',
    'event("open").within(7d)', 'event("purchase").where(amount > 50).count() >= 1',
    'event("purchase").within(30d).sum(amount) >= 100', 'did_not event("open").within(3d)',
    'event("open") then event("purchase") within 2d', 'consent("email") = granted',
    'consent("email") = unknown', 'region in ("eu")', "has_identifier(crm)",
    "identifier_count(email) >= 2", "identifier_from(sendgrid)", 'given_name starts_with "A"',
])


def _trees(max_leaves: int = 4) -> st.SearchStrategy[str]:
    return st.recursive(_LEAVES, lambda inner: st.one_of(
        st.tuples(inner, inner).map(lambda p: f"({p[0]}) and ({p[1]})"),
        st.tuples(inner, inner).map(lambda p: f"({p[0]}) or ({p[1]})"),
        inner.map(lambda x: f"not ({x})")), max_leaves=max_leaves)


_EMAILS = [f"p{i}@x.io" for i in range(5)]


@st.composite
def _records(draw) -> list:
    out = []
    for n in range(draw(st.integers(1, 10))):
        source = draw(st.sampled_from(["hubspot", "segment", "sendgrid"]))
        emails = draw(st.lists(st.sampled_from(_EMAILS), min_size=1, max_size=2, unique=True))
        ids = [f"email:{e}" for e in emails]
        rid = draw(st.sampled_from(["1", "2", "3"]))
        if source == "hubspot":
            ids.append(f"crm:hubspot:{rid}")
        elif source == "segment":
            ids.append(f"user:segment:{rid}")
        t = T0 - draw(st.integers(0, 20)) * DAY / 2
        attrs = {}
        if draw(st.booleans()):
            attrs["country"] = draw(st.sampled_from(["DE", "US", "AT", "FR"]))
        if draw(st.booleans()):
            attrs["given_name"] = draw(st.sampled_from(["Anna", "Bo", "Al"]))
        consent = draw(st.sampled_from([{}, {"email": True}, {"email": False}]))
        r = record(source, f"{rid}-{emails[0]}" if source == "sendgrid" else rid, f"e{n}", t,
                   ids, consent=consent, **attrs)
        name = draw(st.sampled_from(["", "open", "purchase"]))
        if name:
            r = dataclasses.replace(r, event_name=name, properties={
                "amount": float(draw(st.integers(0, 120)))})
        out.append(r)
    return out


_UPDATES = st.lists(st.tuples(
    st.integers(0, 9), st.sampled_from([{}, {"email": True}, {"email": False}]),
    st.sampled_from([None, "DE", "US", "AT"]), st.sampled_from(["", "open", "purchase"]),
    st.integers(0, 120)), max_size=6)


def _updated(r, n: int, consent: dict, country: str | None, name: str, amount: int):
    """The same record (same identifiers: no merge) with a later event that changes its
    consent, country or behaviour: an update the writer evaluates incrementally."""
    attributes = dict(r.attributes) if country is None else {**r.attributes, "country": country}
    return dataclasses.replace(
        r, event_id=f"u{n}", event_time=r.event_time + __import__("datetime").timedelta(
            hours=n + 1), consent=consent, attributes=attributes, event_name=name,
        properties={"amount": float(amount)} if name else {})


@settings(max_examples=100, deadline=None, database=None)
@given(st.lists(_trees(), min_size=1, max_size=3), _records(), st.integers(0, 10), _UPDATES)
def test_property_single_incremental_and_full_evaluation_agree(tmp_path_factory, texts,
                                                                records, cut, updates):
    settings_ = Settings(data_dir=tmp_path_factory.mktemp("p") / "d")
    clock = Clock(T0)
    with Engine(settings_) as engine:
        engine.segments.clock = clock
        catalog = SqliteSegmentCatalog(settings_.data_dir / "profiles.sqlite")
        definitions = SegmentDefinitions(engine.store, catalog, clock)
        names = [f"S{i}" for i in range(len(texts))]
        definitions.apply("Base", 'has_identifier(email) and country exists', "t")
        for name, text in zip(names, texts, strict=True):
            definitions.apply(name, f'({text}) or (in_segment("Base") and {text})'
                              if name == "S0" else text, "t")
        # incremental: batches that create, update (the same records again, with other
        # attributes, consent and events) and merge profiles of earlier batches
        engine.ingest(records[:cut])
        for r in records[cut:]:
            engine.ingest([r])
        for n, (i, consent, country, name, amount) in enumerate(updates):
            engine.ingest([_updated(records[i % len(records)], n, consent, country, name,
                                    amount)])
        every = ["Base", *names]
        incremental = {s: set(rows(engine, s)) for s in every}

        queries = SegmentQueries(engine.store, ProfileQueries(
            engine.store, Normalizer(settings_.normalization), settings_.survivorship), clock)
        single = {s: set() for s in every}
        profiles = []
        for pid in engine.graph.profile_ids():
            profiles.append(engine.queries.profile_with_all_events(pid))
            for name, result in queries.evaluate([], profile_id=pid).results.items():
                if result.matched:
                    single[name].add(pid)
        assert single == incremental

        views, _ = preview({s: parse(d.text) for s, d in
                            ((d.name, d) for d in definitions.list())},
                           profiles, __import__("datetime").datetime.fromtimestamp(T0))
        assert {s: v.count for s, v in views.items()} == {s: len(m) for s, m in
                                                          incremental.items()}

        # full: every row dropped, every build restarted, evaluated from the stored profiles
        engine.store.write(StoreBatch(
            removed_memberships=[(m.region, m.segment, m.profile_id) for s in every
                                 for m in engine.store.segment_members(s, "", 10_000)],
            segment_builds=[SegmentBuild(region, s, definitions.get(s).version)
                            for region in engine.store.regions for s in every]))
        while engine.segment_step():
            pass
        assert {s: set(rows(engine, s)) for s in every} == incremental
        catalog.close()


def test_a_merge_that_moves_the_home_region_is_evaluated_in_the_new_region(world):
    engine, definitions, _clock = world
    definitions.apply("EU", 'region in ("eu")', "ana")
    definitions.apply("US", 'region in ("us")', "ana")
    # a US contact, then a German record of the same person: the stricter home (eu) wins
    engine.ingest([record("hubspot", "1", "e1", T0, ["crm:hubspot:1", "email:a@x.io"],
                          country="US")])
    engine.ingest([record("salesforce", "9", "e2", T0 + 1, ["crm:salesforce:9"],
                          country="DE")])
    # the German record turns out to have the address: only it is written by this batch
    engine.ingest([record("salesforce", "9", "e3", T0 + 2, ["crm:salesforce:9", "email:a@x.io"],
                          country="DE")])
    [profile] = [engine.queries.profile(p) for p in engine.graph.profile_ids()]
    assert profile.region == "eu"
    assert rows(engine, "EU") == {profile.profile_id: True}
    assert rows(engine, "US") == {}
    [member] = engine.store.segment_members("EU")
    assert member.region == "eu"


def test_an_update_is_evaluated_for_the_segments_reading_what_it_changed(world):
    engine, definitions, _clock = world
    definitions.apply("Asked", 'consent("email") = unknown', "ana")
    definitions.apply("Germans", 'country = "DE"', "ana")
    first = record("hubspot", "1", "e1", T0, ["crm:hubspot:1"], country="DE")
    engine.ingest([first])
    pid = engine.queries.profile(engine.graph.profile_ids()[0]).profile_id
    assert rows(engine, "Asked") == {pid: True} and rows(engine, "Germans") == {pid: True}
    # the same contact states consent: only consent changed (no merge, no new identifier)
    engine.ingest([dataclasses.replace(first, event_id="e2", consent={"email": True})])
    assert rows(engine, "Asked") == {}
    assert changes(engine)[-1].cause == "consent"
    assert rows(engine, "Germans") == {pid: True}


def test_a_profile_that_lost_the_facts_of_a_segment_leaves_it(world):
    engine, definitions, _clock = world
    definitions.apply("Openers", 'event("open").within(30d)', "ana")
    engine.ingest([record("hubspot", "1", "e1", T0, ["crm:hubspot:1", "email:a@x.io"]),
                   opened(T0 - DAY, "e2", "a@x.io")])
    assert len(rows(engine, "Openers")) == 1
    engine.forget_record("sendgrid:a@x.io")  # the profile keeps only its CRM record
    assert rows(engine, "Openers") == {}
    assert changes(engine)[-1].cause == "forget"


def test_a_statement_made_over_the_api_is_evaluated_by_the_next_tick(world):
    engine, definitions, _clock = world
    definitions.apply("mailable", 'consent("email") = granted', author="t")
    while engine.segment_step():
        pass
    engine.ingest([record("sendgrid", "a@x.io", "e1", T0 - 10, ["email:a@x.io"],
                          consent={"email": True})])
    pid = engine.queries.lookup("email:a@x.io").profile.profile_id
    assert rows(engine, "mailable") == {pid: True}
    consent = ConsentService(engine.ledger, engine.queries, engine.backends.keys)
    consent.record("email:a@x.io", Statement("email", "withdrawn", captured_at=T0),
                   "api:t")
    assert rows(engine, "mailable") == {pid: True}  # the writer has not ticked yet
    engine.segment_step()
    assert rows(engine, "mailable") == {}
    last = changes(engine)[-1]
    assert (last.profile_id, last.change, last.cause) == (pid, "exited", "consent")
    assert engine.segment_step() == 0  # the cursor moved on: nothing to do again
    # a new event of the profile keeps the ledger's answer (not the record's own grant)
    engine.ingest([record("sendgrid", "a@x.io", "e2", T0 + 5, ["email:a@x.io"])])
    assert rows(engine, "mailable") == {}
