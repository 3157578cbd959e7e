"""The engine end to end on canonical records: idempotence, survivorship, merge/split, restart, regions."""

from __future__ import annotations

import pytest
from helpers import record

from idgraph.core.errors import NotFoundError, ResidencyError
from idgraph.engine import Engine
from idgraph.profile_store import create_store
from idgraph.settings import Settings


@pytest.fixture()
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture()
def engine(settings):
    with Engine(settings) as e:
        yield e


JANE_SF = record("salesforce", "003A", "sf-1", 100, ["crm:salesforce:003A", "email:jane@acme.com",
                                                   "phone:+14155552671"],
                 given_name="Jane", family_name="Doe", company="Acme", job_title="CTO", country="US")
JANE_HS = record("hubspot", "51", "hs-1", 200, ["crm:hubspot:51", "email:jane@acme.com", "email:jane@gmail.com"],
                 given_name="Janet", family_name="Doe", company="ACME Inc", job_title="Chief Technology Officer")


def test_redelivered_events_change_nothing(engine):
    first = engine.ingest([JANE_SF, JANE_HS])
    assert first.events_applied == 2
    profile = engine.queries.lookup("email:jane@acme.com").profile
    again = engine.ingest([JANE_SF, JANE_HS, JANE_SF])
    assert again.events_applied == 0 and again.duplicate_events == 3
    after = engine.queries.lookup("email:jane@acme.com").profile
    assert after.event_count == profile.event_count == 2
    assert after.sources == profile.sources
    assert engine.store.counts()["processed_events"] == 2


def test_survivorship_rules_and_provenance(engine):
    sendgrid = record("sendgrid", "jane@gmail.com", "sg-1", 300, ["email:jane@gmail.com"],
                      email="jane@gmail.com")
    sendgrid2 = record("sendgrid", "jane@gmail.com", "sg-2", 310, ["email:jane@gmail.com"],
                       email="jane@gmail.com")
    engine.ingest([JANE_SF, JANE_HS, sendgrid, sendgrid2])
    p = engine.queries.lookup("crm:hubspot:51").profile
    # source_priority: salesforce ranks above hubspot although hubspot is newer
    assert p.attributes["given_name"].value == "Jane"
    assert p.attributes["given_name"].source == "salesforce"
    assert p.attributes["given_name"].record_key == "salesforce:003A"
    assert p.attributes["given_name"].rule == "source_priority"
    # most_recent: the later hubspot title wins
    assert p.attributes["job_title"].value == "Chief Technology Officer"
    assert p.attributes["job_title"].rule == "most_recent"
    assert p.attributes["job_title"].observed_at == 200
    counters = {s.source: (s.event_count, s.record_count) for s in p.sources}
    assert counters == {"salesforce": (1, 1), "hubspot": (1, 1), "sendgrid": (2, 1)}
    assert p.first_seen == 100 and p.last_seen == 310 and p.event_count == 4


def test_most_frequent_rule(settings):
    settings.survivorship.rules["company"] = "most_frequent"
    with Engine(settings) as engine:
        engine.ingest([
            record("hubspot", "1", "a", 1, ["crm:hubspot:1", "email:k@x.com"], company="Initech"),
            record("salesforce", "003K", "b", 2, ["crm:salesforce:003K", "email:k@x.com"], company="Initrode"),
            record("segment", "k", "c", 3, ["user:segment:k", "email:k@x.com"], company="Initech"),
        ])
        attr = engine.queries.lookup("email:k@x.com").profile.attributes["company"]
        assert (attr.value, attr.rule, attr.source) == ("Initech", "most_frequent", "segment")


def test_late_event_does_not_override_newer_value(engine):
    engine.ingest([record("hubspot", "9", "new", 500, ["crm:hubspot:9"], job_title="VP Sales")])
    engine.ingest([record("hubspot", "9", "old", 100, ["crm:hubspot:9"], job_title="Intern")])
    p = engine.queries.lookup("crm:hubspot:9").profile
    assert p.attributes["job_title"].value == "VP Sales"
    assert p.event_count == 2 and p.first_seen == 100


def test_merge_keeps_old_id_resolvable_and_split_restores_it(engine):
    engine.ingest([JANE_SF])
    engine.ingest([record("hubspot", "77", "hs-77", 150, ["crm:hubspot:77", "email:jd@home.org"])])
    p_sf = engine.queries.lookup("crm:salesforce:003A").profile.profile_id
    p_hs = engine.queries.lookup("crm:hubspot:77").profile.profile_id
    assert p_sf != p_hs
    bridge = record("google_calendar", "jane@acme.com", "cal-1", 400, ["email:jane@acme.com", "email:jd@home.org"])
    result = engine.ingest([bridge])
    assert result.merges == 1
    merged = engine.queries.get_profile(p_hs)  # the absorbed ID still resolves
    assert merged.profile_id == p_sf and p_hs in merged.aliases
    assert engine.store.history(p_hs)[-1].kind == "merged"

    engine.unlink("google_calendar:jane@acme.com", "email:jd@home.org")
    assert engine.queries.lookup("crm:hubspot:77").profile.profile_id == p_hs
    assert engine.queries.lookup("crm:salesforce:003A").profile.profile_id == p_sf
    assert engine.queries.get_profile(p_hs).profile_id == p_hs
    assert [h.kind for h in engine.store.history(p_hs)][-1] == "split"
    assert engine.queries.lookup("email:jd@home.org").profile.profile_id == p_hs
    with pytest.raises(NotFoundError):
        engine.queries.lookup("email:never-seen@home.org")


def test_restart_reproduces_profiles_and_ids(settings):
    records = [JANE_SF, JANE_HS,
               record("segment", "anon", "s1", 50, ["cookie:anon", "device:d1"]),
               record("segment", "u1", "s2", 60, ["user:segment:u1", "cookie:anon", "email:jane@gmail.com"]),
               record("hubspot", "88", "h88", 70, ["crm:hubspot:88", "email:other@x.com"])]
    with Engine(settings) as engine:
        engine.ingest(records[:3])
        engine.ingest(records[3:])
        before = {k: engine.graph.profile_of(k) for k in
                  ("salesforce:003A", "hubspot:51", "segment:anon", "segment:u1", "hubspot:88")}
        docs = {p: engine.queries.get_profile(p) for p in set(before.values())}
    with Engine(settings) as engine:
        after = {k: engine.graph.profile_of(k) for k in before}
        assert after == before
        for pid, doc in docs.items():
            again = engine.queries.get_profile(pid)
            assert again.identifiers == doc.identifiers and again.attributes == doc.attributes
        # new events after restart extend the same profiles
        engine.ingest([record("sendgrid", "other@x.com", "sg9", 80, ["email:other@x.com"])])
        assert engine.queries.lookup("email:other@x.com").profile.profile_id == before["hubspot:88"]


def test_stricter_region_wins_on_merge_and_residency_is_enforced(settings):
    with Engine(settings) as engine:
        engine.ingest([record("hubspot", "1", "h1", 1, ["crm:hubspot:1", "email:max@x.de"], country="US")])
        assert engine.queries.lookup("crm:hubspot:1").profile.region == "us"
        engine.ingest([record("salesforce", "003M", "s1", 2, ["crm:salesforce:003M", "email:max@x.de"],
                              country="DE")])
        profile = engine.queries.lookup("crm:hubspot:1").profile
        assert profile.region == "eu"
    us_only = create_store("sqlite", settings.data_dir, ["us"], readonly=True)
    try:
        assert us_only.lookup("crm:hubspot:1") == []
        assert us_only.get_profile(profile.profile_id) is None
        assert us_only.get_records(["hubspot:1", "salesforce:003M"]) == {}
        assert us_only.record_profiles() == {}
    finally:
        us_only.close()
    writer = create_store("sqlite", settings.data_dir, ["us"])
    try:
        from idgraph.profile_store.base import ProfileHead, StoreBatch
        with pytest.raises(ResidencyError, match="region 'eu' is not served"):
            writer.write(StoreBatch(heads=[ProfileHead(profile.profile_id, "eu", 0.0)]))
    finally:
        writer.close()


def test_rejected_links_are_recorded_on_the_record(engine):
    engine.ingest([record("hubspot", "1", "h1", 1, ["crm:hubspot:1", "email:a@x.com"]),
                   record("hubspot", "2", "h2", 1, ["crm:hubspot:2", "email:b@x.com", "email:test@test.com"])])
    result = engine.ingest([record("google_calendar", "a@x.com", "c1", 2, ["email:a@x.com", "email:b@x.com"])])
    assert result.rejected_links == 1 and result.rejection_reasons["limit"] == 1
    stored = engine.store.get_records(["google_calendar:a@x.com", "hubspot:2"])
    assert stored["google_calendar:a@x.com"].rejected["email:b@x.com"].startswith("limit:")
    assert stored["hubspot:2"].rejected["email:test@test.com"].startswith("blocked value")
    assert stored["google_calendar:a@x.com"].identifiers["email:b@x.com"][2] is False


def test_unknown_region_is_no_evidence(settings):
    with Engine(settings) as engine:
        # an email event has no country: the profile gets the default region...
        engine.ingest([record("sendgrid", "aiko@x.jp", "sg1", 1, ["email:aiko@x.jp"])])
        assert engine.queries.lookup("email:aiko@x.jp").profile.region == settings.regions.default_region
        # ...until a record with a country says where the person lives
        engine.ingest([record("hubspot", "3", "h3", 2, ["crm:hubspot:3", "email:aiko@x.jp"], country="JP")])
        assert engine.queries.lookup("email:aiko@x.jp").profile.region == "apac"
        # a later record without a country does not pull it back to the default
        engine.ingest([record("google_calendar", "aiko@x.jp", "c1", 3, ["email:aiko@x.jp"])])
        assert engine.queries.lookup("email:aiko@x.jp").profile.region == "apac"
        stored = engine.store.get_records(["sendgrid:aiko@x.jp"])["sendgrid:aiko@x.jp"]
        assert (stored.region, stored.home_region) == ("", "apac")


def test_forget_record_removes_it_everywhere_and_keeps_the_rest(engine):
    engine.ingest([record("hubspot", "f1", "f1", 1, ["crm:hubspot:f1", "email:f@x.com"], given_name="Fay"),
                   record("sendgrid", "f@x.com", "f2", 2, ["email:f@x.com"])])
    engine.ingest([record("segment", "fu", "f3", 3, ["user:segment:fu", "email:f@x.com", "phone:+14155550123"])])
    pid = engine.queries.lookup("crm:hubspot:f1").profile.profile_id
    assert engine.queries.lookup("phone:+14155550123").profile.profile_id == pid

    engine.forget_record("segment:fu")
    with pytest.raises(NotFoundError):
        engine.queries.lookup("phone:+14155550123")  # only the forgotten record carried it
    with pytest.raises(NotFoundError):
        engine.queries.lookup("user:segment:fu")
    profile = engine.queries.lookup("email:f@x.com").profile
    assert profile.profile_id == pid
    assert sorted(profile.record_keys) == ["hubspot:f1", "sendgrid:f@x.com"]
    assert engine.store.get_records(["segment:fu"]) == {}

    # forgetting the founding record: the remaining part keeps the profile's ID
    engine.forget_record("hubspot:f1")
    assert engine.queries.lookup("email:f@x.com").profile.profile_id == pid
    assert "given_name" not in engine.queries.get_profile(pid).attributes

    engine.forget_record("sendgrid:f@x.com")
    with pytest.raises(NotFoundError):
        engine.queries.get_profile(pid)
    assert engine.store.counts()["records"] == 0


def test_batch_size_does_not_change_who_is_linked_with_whom(tmp_path):
    from idgraph.generator import generate

    events = generate(n_records=3000, seed=21).events

    def partition(batch_size: int, name: str) -> set[frozenset[str]]:
        with Engine(Settings(data_dir=tmp_path / name)) as engine:
            engine.ingest_payloads(events, batch_size=batch_size)
            groups: dict[str, set[str]] = {}
            for source, rid, pid in engine.store.iter_record_profiles():
                groups.setdefault(pid, set()).add(f"{source}:{rid}")
            return {frozenset(g) for g in groups.values()}

    one_batch = partition(100_000, "one")
    small_batches = partition(97, "small")
    assert one_batch == small_batches
    assert any(len(g) > 3 for g in one_batch)  # the data really links records


def test_crash_between_graph_and_store_write_loses_nothing(settings, tmp_path, monkeypatch):
    first = [record("hubspot", "c1", "c1", 1, ["crm:hubspot:c1", "email:a@c.com"]),
             record("salesforce", "003C", "c2", 2, ["crm:salesforce:003C", "email:b@c.com"])]
    bridge = [record("google_calendar", "a@c.com", "c3", 3, ["email:a@c.com", "email:b@c.com"]),
              record("sendgrid", "b@c.com", "c4", 4, ["email:b@c.com"])]

    def final_state(engine):
        return ({k: engine.graph.profile_of(k) for k in engine.store.record_profiles()},
                engine.store.record_profiles(), engine.store.counts(),
                engine.queries.lookup("email:b@c.com").profile.event_count)

    reference = Settings(data_dir=tmp_path / "reference")
    with Engine(reference) as engine:
        engine.ingest(first)
        engine.ingest(bridge)
        expected = final_state(engine)

    with Engine(settings) as engine:
        engine.ingest(first)
        from idgraph.core.errors import BackendError

        def crash(batch):
            raise BackendError("profile store: simulated crash before commit")

        monkeypatch.setattr(engine.store, "write", crash)
        with pytest.raises(BackendError):
            engine.ingest(bridge)  # the graph has the merge, the store does not
    monkeypatch.undo()
    with Engine(settings) as engine:  # restart: replay the graph log, reconcile the store
        stored = engine.store.record_profiles()
        assert stored["hubspot:c1"] == stored["salesforce:003C"]  # merge applied by reconcile
        engine.ingest(bridge)  # the unacknowledged events are delivered again
        engine.ingest(bridge)  # and again: nothing changes
        assert final_state(engine) == expected


def test_a_record_cache_smaller_than_the_data_changes_nothing(tmp_path, monkeypatch):
    """Results equal with a cache far smaller than the data, and the cache stays within its
    limit (or one batch's records, which a batch holds anyway) instead of keeping every
    record a writer ever created."""
    import idgraph.engine.materialise as materialise_module
    from idgraph.generator import generate

    events = generate(n_records=2000, seed=8).events
    sizes: list[int] = []

    def stored(name: str) -> tuple:
        with Engine(Settings(data_dir=tmp_path / name)) as engine:
            for start in range(0, len(events), 150):
                engine.ingest_payloads(events[start:start + 150], batch_size=150)
                sizes.append(len(engine.materialiser._records))
            records = engine.store.get_records(engine.store.record_profiles())
            return (engine.store.record_profiles(), engine.store.counts(),
                    {k: (r.event_count, r.attributes, r.identifiers, r.home_region)
                     for k, r in records.items()})

    normal = stored("normal")
    assert max(sizes) > 600  # every record of the data stays in the normal cache
    sizes.clear()
    monkeypatch.setattr(materialise_module, "_RECORD_CACHE_LIMIT", 40)  # cleared every batch
    assert stored("tiny-cache") == normal
    assert max(sizes) <= 150


def test_records_a_writer_creates_stay_within_the_cache_limit(tmp_path, monkeypatch):
    """A writer loading a million new records does not keep them all: past the limit the
    oldest half of the cache goes, the newest stay."""
    import idgraph.engine.materialise as materialise_module
    from idgraph.profile_store.survivorship import new_record_state

    monkeypatch.setattr(materialise_module, "_RECORD_CACHE_LIMIT", 40)
    with Engine(Settings(data_dir=tmp_path / "d")) as engine:
        cache = engine.materialiser
        sizes = []
        for n in range(100):
            cache.remember(new_record_state(
                record("hubspot", str(n), f"e{n}", n, [f"crm:hubspot:{n}"]), "eu"))
            sizes.append(len(cache._records))
        assert max(sizes) == 40
        assert "hubspot:99" in cache._records and "hubspot:0" not in cache._records


def test_a_shared_identifier_answers_with_every_profile_that_carries_it(tmp_path):
    """A household tablet seen on two known people: linked to neither merge, attached to
    both; a lookup by it names both profiles (the real store and queries, no fake)."""
    with Engine(Settings(data_dir=tmp_path / "d")) as engine:
        engine.ingest([
            record("hubspot", "1", "e1", 1, ["crm:hubspot:1", "email:ann@x.org", "device:tab-1"],
                   given_name="Ann"),
            record("hubspot", "2", "e2", 2, ["crm:hubspot:2", "email:bob@x.org", "device:tab-1"],
                   given_name="Bob"),
        ])
        ann, bob = engine.graph.profile_of("hubspot:1"), engine.graph.profile_of("hubspot:2")
        assert ann != bob
        found = engine.queries.lookup("device:tab-1")
        assert found.shared and len(found.other_profile_ids) == 1
        assert {found.profile.profile_id, *found.other_profile_ids} == {ann, bob}
        single = engine.queries.lookup("email:bob@x.org")
        assert not single.shared and single.other_profile_ids == []
        assert single.profile.profile_id == bob


def test_a_consent_keeps_the_newest_decision_whatever_the_arrival_order(tmp_path):
    with Engine(Settings(data_dir=tmp_path / "d")) as engine:
        engine.ingest([record("hubspot", "1", "new", 200, ["crm:hubspot:1"],
                              consent={"marketing": True})])
        engine.ingest([record("hubspot", "1", "old", 100, ["crm:hubspot:1"],
                              consent={"marketing": False})])  # older, delivered late
        state = engine.store.get_records(["hubspot:1"])["hubspot:1"]
        assert state.consent["marketing"] == (True, 200)


def test_identifier_first_and_last_seen_follow_event_time_not_arrival(tmp_path):
    with Engine(Settings(data_dir=tmp_path / "d")) as engine:
        engine.ingest([record("hubspot", "1", "e2", 200, ["crm:hubspot:1", "email:a@x.org"])])
        engine.ingest([record("hubspot", "1", "e1", 100, ["crm:hubspot:1", "email:a@x.org"])])
        engine.ingest([record("hubspot", "1", "e3", 300, ["crm:hubspot:1", "email:a@x.org"])])
        first, last, linked = engine.store.get_records(["hubspot:1"])["hubspot:1"].identifiers[
            "email:a@x.org"]
        assert (first, last, linked) == (100, 300, True)


def test_a_batch_is_applied_in_event_time_order_not_arrival_order(tmp_path):
    """Link decisions are first come, first served: within one batch, the earlier event
    keeps the shared email and the later one's link is refused (one HubSpot ID per profile)."""
    with Engine(Settings(data_dir=tmp_path / "d")) as engine:
        later = record("hubspot", "A", "eA", 2, ["crm:hubspot:A", "email:shared@x.org"])
        earlier = record("hubspot", "B", "eB", 1, ["crm:hubspot:B", "email:shared@x.org"])
        engine.ingest([later, earlier])  # arrives out of order
        stored = engine.store.get_records(["hubspot:A", "hubspot:B"])
        assert stored["hubspot:B"].identifiers["email:shared@x.org"][2] is True
        assert stored["hubspot:A"].identifiers["email:shared@x.org"][2] is False


def test_a_value_found_generic_splits_the_profile_it_merged_everywhere(tmp_path):
    """A company number first joins Anna's contact and an app user that names nobody;
    then Tom's contact carries it too. In that batch the number stops linking: the profile
    splits (history says so), Explain shows why, the store's index no longer treats the
    number as linking, and a lookup by it answers with every profile that carries it."""
    number = "phone:+4930123456"
    with Engine(Settings(data_dir=tmp_path / "d")) as engine:
        engine.ingest([
            record("salesforce", "003A", "e1", 1, ["crm:salesforce:003A", number],
                   given_name="Anna", family_name="Meyer"),
            record("segment", "u1", "e2", 2, ["user:segment:u1", number]),
        ])
        anna = engine.graph.profile_of("salesforce:003A")
        assert engine.graph.profile_of("segment:u1") == anna
        result = engine.ingest([record("salesforce", "003B", "e3", 3, ["crm:salesforce:003B",
                                                                     number],
                                       given_name="Tom", family_name="Berg")])
        assert result.splits == 1 and result.rejection_reasons["generic value"] == 1
        app = engine.graph.profile_of("segment:u1")
        assert app != anna and engine.graph.profile_of("salesforce:003A") == anna
        split = engine.store.history(anna)[-1]
        assert split.kind == "split" and split.related_ids == [app]
        assert split.reason == "generic value: carried by records of 2 different people (phone)"
        why = {e.record_key: e.reason for e in engine.graph.profile_edges(anna)
               if e.identifier == number}
        assert why == {"salesforce:003A": "generic value: carried by records of 2 different people"}
        stored = engine.store.get_records(["salesforce:003A", "segment:u1"])
        assert stored["salesforce:003A"].identifiers[number][2] is False
        found = engine.queries.lookup(number)
        assert found.shared
        assert {found.profile.profile_id, *found.other_profile_ids} == {
            anna, app, engine.graph.profile_of("salesforce:003B")}


# -- events: each record keeps its events; a profile's timeline merges them ----------------


def _track(message_id: str, when: str, event: str, **properties) -> dict:
    return {"type": "track", "event": event, "messageId": message_id, "userId": "u77",
            "properties": properties, "timestamp": when}


def _sendgrid_open(event_id: str, unix: int) -> dict:
    return {"email": "Ann@X.com", "timestamp": unix, "event": "open", "sg_event_id": event_id,
            "category": ["newsletter", "spring"], "marketing_campaign_name": "Spring Sale"}


def test_a_profile_timeline_merges_its_records_events_in_time_order(engine):
    # 2024-05-01T10:00Z = 1714557600; two records, two profiles; events out of time order
    engine.ingest_payloads([("sendgrid", _sendgrid_open("sg-2", 1714557600 + 3600)),
                            ("segment", _track("m-3", "2024-05-01T12:00:00Z", "Logout"))])
    engine.ingest_payloads([("segment", _track("m-1", "2024-05-01T09:00:00Z", "Order Completed",
                                               total=27.5, currency="EUR"))])
    ann = engine.queries.lookup("email:ann@x.com").profile
    user = engine.queries.lookup("user:segment:u77").profile
    assert ann.profile_id != user.profile_id
    assert [e.type for e in user.events] == ["Order Completed", "Logout"]

    # an identify gives the Segment user Ann's email: the two profiles merge
    identify = {"type": "identify", "messageId": "m-2", "userId": "u77",
                "traits": {"email": "ann@x.com"}, "timestamp": "2024-05-01T10:30:00Z"}
    assert engine.ingest_payloads([("segment", identify)]).merges == 1
    merged = engine.queries.lookup("email:ann@x.com").profile
    assert merged.profile_id == engine.queries.lookup("user:segment:u77").profile.profile_id
    assert [(e.type, e.source, e.event_id) for e in merged.events] == [
        ("Order Completed", "segment", "m-1"),
        ("identify", "segment", "m-2"),
        ("open", "sendgrid", "sg-2"),
        ("Logout", "segment", "m-3"),
    ]
    times = [e.at for e in merged.events]
    assert times == sorted(times) and times[0] == 1714554000.0
    assert merged.events[0].properties == {"total": 27.5, "currency": "EUR"}
    assert merged.events[2].properties == {"category": "newsletter,spring",
                                           "campaign": "Spring Sale"}

    # a redelivered event changes nothing; the store kept the events (a restart reads them)
    engine.ingest_payloads([("segment", _track("m-1", "2024-05-01T09:00:00Z", "Order Completed",
                                                total=27.5, currency="EUR"))])
    assert engine.store.get_records(["segment:u77"])["segment:u77"].events == [
        e for e in merged.events if e.source == "segment"]

    # a split keeps each record's events with its record
    engine.unlink("segment:u77", "email:ann@x.com")
    user = engine.queries.lookup("user:segment:u77").profile
    ann = engine.queries.lookup("email:ann@x.com").profile
    assert user.profile_id != ann.profile_id
    assert [e.event_id for e in user.events] == ["m-1", "m-2", "m-3"]
    assert [e.event_id for e in ann.events] == ["sg-2"]
