"""The engine's demo data stored with each profile-store backend gives identical profiles
and identical segment memberships.

The same generated stream (``generator.generate``) is ingested by one engine on the
SQLite store and by another on the Cassandra store (the real two-data-centre cluster,
``eu``/``uk`` in dc1, ``us``/``apac`` in dc2), in batches of 2,000 as ``idgraph demo``
does, then some identifiers are unlinked (splits) and some records forgotten (deletes).
Every profile is then folded through :class:`idgraph.engine.queries.ProfileQueries` and
compared, with every stored record, every history, every alias and the lookups of the
identifiers several records carry (plus a sample of the others). The head's
``updated_at`` is a wall-clock write time, so it is the one field left out.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from cassandra_testing import cassandra_settings, drop_keyspaces, fresh_prefix

from idgraph.engine import Engine
from idgraph.engine.backends import open_segment_catalog
from idgraph.engine.segment_definitions import SegmentDefinitions
from idgraph.generator import generate
from idgraph.settings import Settings

pytestmark = pytest.mark.slow

RECORDS = 4000
SEED = 11
LOOKUP_SAMPLE = 300
SEGMENTS = {  # defined before the stream: every batch, merge, split and forget keeps them
    "EU": 'region in ("eu", "uk")',
    "Known in CRM": "has_identifier(crm)",
    "Mailable": 'consent("email") = granted and has_identifier(email)',
    "Spent 200": 'event("Order Completed").sum(total) >= 200',
    "Multi-device": "identifier_count(device) >= 2",
    "EU mailable": 'in_segment("EU") and in_segment("Mailable")',
    "No company": "company absent",
}


def _snapshot(engine: Engine, since: float) -> dict:
    """Everything the store answers; history times from ``since`` on (wall clock: the
    removals' times) are left out. Point reads run on 8 threads (the stores are thread
    safe for reads; on Cassandra each read waits on round trips)."""
    store, queries = engine.store, engine.queries
    stored = store.record_profiles()
    pids = sorted(set(stored.values()))
    records = store.get_records(sorted(stored))
    # every identifier several records carry (shared devices, merge bridges: where the
    # order of matches matters), and a seeded sample of the others
    uses = Counter(i for r in records.values() for i in r.identifiers)
    several = sorted(i for i, n in uses.items() if n > 1)
    once = sorted(i for i, n in uses.items() if n == 1)
    identifiers = several + random.Random(SEED).sample(once, min(LOOKUP_SAMPLE, len(once)))

    def profile(pid: str):
        folded = queries.get_profile(pid)
        folded.updated_at = 0.0
        return folded

    def history(pid: str) -> list:
        return [(h.kind, h.profile_id, h.related_ids, h.seq, h.at if h.at < since else "now")
                for h in store.history(pid)]

    def lookup(ident: str) -> list:
        return [(m.profile_id, m.region, m.last_seen, m.linked) for m in store.lookup(ident)]

    with ThreadPoolExecutor(8) as pool:
        profiles = dict(zip(pids, pool.map(profile, pids), strict=True))
        aliases = sorted(a for p in profiles.values() for a in p.aliases)
        return {
            "record_profiles": stored,
            "iter_record_profiles": list(store.iter_record_profiles()),
            "profiles": profiles,
            "records": records,
            "lookups": dict(zip(identifiers, pool.map(lookup, identifiers), strict=True)),
            "aliases_resolve": dict(zip(aliases, (p.profile_id for p in pool.map(
                queries.get_profile, aliases)), strict=True)),
            "history": dict(zip([*pids, *aliases], pool.map(history, [*pids, *aliases]),
                                strict=True)),
            "counts": store.counts(),
            "by_region": store.profiles_by_region(),
            "memberships": {name: sorted((m.profile_id, m.region, m.member, tuple(m.clauses))
                                         for m in store.segment_members(name, "", 1_000_000))
                            for name in SEGMENTS},
            "member_counts": {name: store.count_segment(name) for name in SEGMENTS},
            "membership_changes": sorted(
                (c.profile_id, c.segment, c.change, c.cause, tuple(c.clauses), c.region)
                for c in store.segment_changes_after("", 10_000_000)[0]),
        }


def _forget_and_unlink_plan(engine: Engine) -> list[tuple[str, str, str]]:
    """Deterministic removals on profiles of several records: unlink one linked identifier
    in some (a split when it was a bridge), forget the founding record of others."""
    records = engine.store.get_records(engine.store.record_profiles())
    by_profile: dict[str, list] = {}
    for rec in records.values():
        by_profile.setdefault(rec.profile_id, []).append(rec)
    multi = [sorted(recs, key=lambda r: (r.first_seen, r.record_key))
             for _, recs in sorted(by_profile.items()) if len(recs) >= 2]
    ops = []
    for recs in multi[:15]:
        rec = max(recs, key=lambda r: (len(r.identifiers), r.record_key))
        linked = sorted(i for i, (_, _, ok) in rec.identifiers.items() if ok)
        if linked:
            ops.append(("unlink", rec.record_key, linked[0]))
    ops += [("forget", recs[0].record_key, "") for recs in multi[15:30]]
    return ops


def _ingest(settings: Settings, events: list,
            ops: list[tuple[str, str, str]] | None) -> tuple[dict, float, list]:
    """Ingest, then apply ``ops`` (planned on this engine when None); the snapshot."""
    with Engine(settings) as engine:
        catalog = open_segment_catalog(settings)
        try:
            for name, text in SEGMENTS.items():
                SegmentDefinitions(engine.store, catalog).apply(name, text, "test")
        finally:
            catalog.close()
        write, moves = engine.store.write, []

        def counting(batch):
            moves.extend(batch.regions)
            write(batch)

        engine.store.write = counting
        t0 = time.perf_counter()
        result = engine.ingest_payloads(events, batch_size=2000)
        seconds = time.perf_counter() - t0
        assert not result.dead_letters
        assert result.events_applied == result.events_received
        assert moves  # merges across regions moved profiles to the stricter region
        ops = _forget_and_unlink_plan(engine) if ops is None else ops
        since = time.time()
        for kind, key, ident in ops:
            if kind == "unlink":
                engine.unlink(key, ident)
            else:
                engine.forget_record(key)
        return _snapshot(engine, since), seconds, ops


def test_demo_data_stored_with_each_backend_gives_identical_profiles(cassandra_cluster, tmp_path):
    dataset = generate(n_records=RECORDS, seed=SEED)
    prefix = fresh_prefix("e")
    try:
        sqlite, sqlite_s, ops = _ingest(Settings(data_dir=tmp_path / "sqlite"), dataset.events,
                                        None)
        cassandra, cassandra_s, _ = _ingest(
            Settings(data_dir=tmp_path / "cassandra", profile_store_backend="cassandra",
                     cassandra=cassandra_settings(cassandra_cluster, prefix),
                     privacy={"suppression_key": "test-suppression-key-" + "k" * 16}),
            dataset.events, ops)
    finally:
        drop_keyspaces(cassandra_cluster, prefix)
    print(f"ingest of {len(dataset.events)} payloads: sqlite {sqlite_s:.1f}s, "
          f"cassandra {cassandra_s:.1f}s")

    assert len(sqlite["profiles"]) > 500 and len(sqlite["records"]) > 1500
    assert sqlite["counts"]["aliases"] > 0  # the stream merges profiles
    assert len(sqlite["by_region"]) == 4  # profiles in every region, on both data centres
    assert len(ops) == 30
    assert all(sqlite["memberships"][name] for name in SEGMENTS)  # each has members
    assert any(c[3] == "merge" for c in sqlite["membership_changes"])
    assert any(c[3] == "forget" for c in sqlite["membership_changes"])
    for key in sqlite:
        assert cassandra[key] == sqlite[key], key
