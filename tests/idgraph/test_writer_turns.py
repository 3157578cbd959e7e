"""Several engines writing one data dir take turns and end where one engine would."""

from __future__ import annotations

import pytest
from helpers import record

from idgraph.core.errors import BackendError
from idgraph.engine import Engine
from idgraph.generator import generate
from idgraph.settings import Settings


def _state(engine: Engine) -> tuple:
    records = engine.store.get_records(engine.store.record_profiles())
    groups: dict[str, set[str]] = {}
    for key, pid in engine.store.record_profiles().items():
        groups.setdefault(pid, set()).add(key)
    return ({frozenset(g) for g in groups.values()},
            {k: (r.event_count, r.attributes, r.identifiers, r.home_region)
             for k, r in records.items()},
            engine.store.counts())


def _graph_partition(engine: Engine) -> set[frozenset[str]]:
    return {frozenset(engine.graph.records_of(p)) for p in engine.graph.profile_ids()}


@pytest.fixture(scope="module")
def events():
    return generate(n_records=3000, seed=33).events


def test_two_writers_taking_turns_equal_one_writer(tmp_path, events):
    chunks = [events[i:i + 250] for i in range(0, len(events), 250)]
    with Engine(Settings(data_dir=tmp_path / "one")) as one:
        for chunk in chunks:  # the same batches (profile IDs depend on batch boundaries)
            one.ingest_payloads(chunk, batch_size=250)
        expected = _state(one)
        expected_graph = _graph_partition(one)
        expected_aliases = dict(one.store.counts())

    shared = Settings(data_dir=tmp_path / "shared")
    with Engine(shared) as a, Engine(shared) as b:
        for n, chunk in enumerate(chunks):
            (a if n % 2 == 0 else b).ingest_payloads(chunk, batch_size=250)
        # redelivery to the other writer (a rebalance) applies nothing
        again = b.ingest_payloads(chunks[0], batch_size=250)
        assert again.events_applied == 0
        assert _state(a) == _state(b) == expected
        assert a.store.counts() == expected_aliases
        profile_ids = {pid for _s, _r, pid in a.store.iter_record_profiles()}
        a.graph.refresh()
        assert profile_ids == set(a.graph.profile_ids())  # the same IDs, not only groups
        a.ingest([record("sendgrid", "nobody@x.org", "turn-probe", 1, ["email:nobody@x.org"])])
        b.ingest([record("sendgrid", "nobody2@x.org", "turn-probe-2", 1,
                         ["email:nobody2@x.org"])])
        a.graph.refresh()
        assert _graph_partition(a) == _graph_partition(b)
        assert _graph_partition(a) - {frozenset({"sendgrid:nobody@x.org"}),
                                      frozenset({"sendgrid:nobody2@x.org"})} == expected_graph


def test_a_writer_dying_inside_its_turn_is_repaired_by_the_next(tmp_path, monkeypatch):
    first = [record("hubspot", "c1", "c1", 1, ["crm:hubspot:c1", "email:a@c.com"]),
             record("salesforce", "003C", "c2", 2, ["crm:salesforce:003C", "email:b@c.com"])]
    bridge = [record("google_calendar", "a@c.com", "c3", 3, ["email:a@c.com", "email:b@c.com"])]
    with Engine(Settings(data_dir=tmp_path / "ref")) as ref:
        ref.ingest(first)
        ref.ingest(bridge)
        expected = _state(ref)

    shared = Settings(data_dir=tmp_path / "shared")
    with Engine(shared) as a, Engine(shared) as b:
        a.ingest(first)

        def crash(batch):
            raise BackendError("profile store: simulated crash before commit")

        monkeypatch.setattr(a.store, "write", crash)
        with pytest.raises(BackendError):
            a.ingest(bridge)  # the link log has the merge, the store does not
        monkeypatch.undo()
        stored = b.store.record_profiles()
        assert stored["hubspot:c1"] != stored["salesforce:003C"]
        b.ingest(bridge)  # redelivered to the other writer: it reconciles, then applies
        assert _state(b) == expected
        b.ingest(bridge)
        assert _state(b) == expected


def test_a_writer_waits_for_the_turn_and_gives_up_with_a_clear_error(tmp_path):
    shared = Settings(data_dir=tmp_path / "shared", writer_turn_wait_seconds=0.2)
    with Engine(shared) as a, Engine(shared) as b:
        with a.session.turn(), pytest.raises(BackendError, match=r"held the lock for more than"):
            b.ingest([record("sendgrid", "x@y.org", "e1", 1, ["email:x@y.org"])])  # a waits
        assert b.ingest([record("sendgrid", "x@y.org", "e1", 1,
                                ["email:x@y.org"])]).events_applied == 1


def test_profile_changes_go_to_the_outbox_once(tmp_path):
    jane = [record("hubspot", "51", "h1", 10, ["crm:hubspot:51", "email:jane@acme.com"],
                   given_name="Jane", country="DE"),
            record("salesforce", "003A", "s1", 20, ["crm:salesforce:003A", "email:j@x.com"],
                   given_name="Jane", country="DE")]
    bridge = [record("google_calendar", "jane@acme.com", "g1", 30,
                     ["email:jane@acme.com", "email:j@x.com"])]
    with Engine(Settings(data_dir=tmp_path / "d"), publish_changes=True) as engine:
        created = engine.ingest(jane)
        assert sorted(c.kind for c in created.changes) == ["created", "created"]
        merged = engine.ingest(bridge)
        kinds = [c.kind for c in merged.changes]
        assert kinds == ["merged"]
        change = merged.changes[0]
        assert change.region == "eu" and change.at == 30 and len(change.related_ids) == 1
        again = engine.ingest(bridge + jane)
        assert again.changes == []
        updated = engine.ingest([record("hubspot", "51", "h2", 40, ["crm:hubspot:51"],
                                        job_title="CTO")])
        assert [(c.kind, c.profile_id) for c in updated.changes] == [
            ("updated", change.profile_id)]

        pending = engine.store.pending_changes(100)
        assert [c.kind for c in pending] == ["created", "created", "merged", "updated"]
        assert len({c.change_id for c in pending}) == 4
        text = repr(pending)
        assert "jane" not in text.lower() and "CTO" not in text  # IDs only, no PII
        engine.store.ack_changes(c.change_id for c in pending[:3])
        assert [c.kind for c in engine.store.pending_changes(100)] == ["updated"]

    with Engine(Settings(data_dir=tmp_path / "quiet")) as engine:  # no publisher: no outbox
        assert engine.ingest(jane).changes
        assert engine.store.pending_changes(10) == []


def test_writers_starting_at_once_on_a_fresh_data_dir(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = (
        "import sys; from idgraph.engine import Engine; from idgraph.settings import Settings\n"
        "sys.path.insert(0, 'tests'); from helpers import record\n"
        "with Engine(Settings(data_dir=sys.argv[1])) as e:\n"
        "    n = sys.argv[2]\n"
        "    e.ingest([record('sendgrid', f'w{n}@x.org', f'e{n}', 1, [f'email:w{n}@x.org'])])\n")
    root = Path(__file__).resolve().parents[2]
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "fresh"), str(n)],
                              cwd=root, stderr=subprocess.PIPE, text=True) for n in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
    with Engine(Settings(data_dir=tmp_path / "fresh")) as engine:
        assert engine.store.counts()["processed_events"] == 4


def test_a_turn_publishes_each_record_with_the_region_it_is_stored_in(tmp_path, monkeypatch):
    """What the feed learns per turn (the distributed feed keeps each key in that
    region's keyspace): a new record's home, both records of a merge at the stricter
    home, and a removed record where it was stored."""
    published: list[dict[str, str]] = []
    with Engine(Settings(data_dir=tmp_path / "d")) as engine:
        turns = engine.session._turns
        real_end = turns.end
        monkeypatch.setattr(turns, "end", lambda keys: (published.append(dict(keys)),
                                                         real_end(keys))[1])
        engine.ingest([record("hubspot", "1", "h1", 1, ["crm:hubspot:1", "email:max@x.de"],
                              country="US")])
        assert published[-1] == {"hubspot:1": "us"}
        engine.ingest([record("salesforce", "003M", "s1", 2,
                              ["crm:salesforce:003M", "email:max@x.de"], country="DE")])
        assert published[-1] == {"hubspot:1": "eu", "salesforce:003M": "eu"}
        engine.forget_record("salesforce:003M")
        assert published[-1]["salesforce:003M"] == "eu"
