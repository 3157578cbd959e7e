"""The engine's demo data resolved with each graph backend gives identical profiles."""

from __future__ import annotations

import dataclasses

from idgraph.engine import Engine
from idgraph.generator import generate
from idgraph.settings import Settings


def _resolve(settings: Settings, events) -> dict:
    with Engine(settings) as engine:
        engine.ingest_payloads(events, batch_size=500)
        store = engine.store
        records = {(s, r): p for s, r, p in store.iter_record_profiles()}
        profiles = {}
        for pid in sorted(set(records.values())):
            profile = dataclasses.replace(engine.queries.profile(pid), updated_at=0.0)
            profiles[pid] = (profile, store.history(pid))
        explained = {pid: engine.graph.profile_edges(pid) for pid in sorted(profiles)[:50]}
        return {"records": records, "profiles": profiles, "explain": explained,
                "graph_ids": engine.graph.profile_ids()}


def test_demo_data_gives_identical_profiles_with_either_graph(neo4j_settings, tmp_path):
    dataset = generate(n_records=2500, seed=3)
    embedded = _resolve(Settings(data_dir=tmp_path / "nx"), dataset.events)
    in_neo4j = _resolve(Settings(data_dir=tmp_path / "neo", graph_backend="neo4j",
                                 neo4j=neo4j_settings), dataset.events)
    assert len(embedded["profiles"]) > 300
    # merges happened, so the comparison covers survivors and aliases
    assert any(p.aliases for p, _ in embedded["profiles"].values())
    assert in_neo4j["records"] == embedded["records"]
    assert in_neo4j["graph_ids"] == embedded["graph_ids"] == sorted(embedded["profiles"])
    for pid, want in embedded["profiles"].items():
        assert in_neo4j["profiles"][pid] == want, pid
    assert in_neo4j["explain"] == embedded["explain"]
