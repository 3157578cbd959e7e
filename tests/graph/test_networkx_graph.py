"""Stable profile IDs through merges, splits and restarts (networkx backend)."""

from __future__ import annotations

from graph.base import LinkEdge
from graph.networkx_backend import NetworkxGraph

SHAREABLE = frozenset({"device", "cookie"})


def edge(rec: str, ident: str, linked: bool = True, at: float = 1.0) -> LinkEdge:
    t = ident.split(":", 1)[0]
    return LinkEdge(rec, ident, t, linked, f"deterministic:{t}" if linked else "rejected",
                    "" if linked else "test", rec.split(":", 1)[0], f"ev-{rec}-{ident}", at)


def open_graph(tmp_path) -> NetworkxGraph:
    return NetworkxGraph(tmp_path / "links.sqlite", SHAREABLE)


def test_merge_keeps_oldest_id_and_aliases_the_other(tmp_path):
    g = open_graph(tmp_path)
    g.apply([("crm:1", 1.0)], [edge("crm:1", "email:a@x.com")])
    g.apply([("crm:2", 2.0)], [edge("crm:2", "email:b@x.com")])
    p1, p2 = g.profile_of("crm:1"), g.profile_of("crm:2")
    assert p1 != p2
    changes = g.apply([("cal:3", 3.0)], [edge("cal:3", "email:a@x.com"), edge("cal:3", "email:b@x.com")])
    assert g.profile_of("cal:3") == g.profile_of("crm:2") == p1
    assert changes.retired == {p2}
    assert p1 in changes.touched and p2 not in changes.touched
    assert [h.kind for h in changes.history] == ["merged"]
    assert g.aliases_of(p1) == [p2]
    assert g.resolve(p2) == p1
    assert g.records_of(p1) == ["crm:1", "crm:2", "cal:3"]


def test_alias_chains_stay_one_hop(tmp_path):
    g = open_graph(tmp_path)
    for i in range(1, 4):
        g.apply([(f"r:{i}", float(i))], [edge(f"r:{i}", f"email:{i}@x.com")])
    p1, p2, p3 = (g.profile_of(f"r:{i}") for i in range(1, 4))
    g.apply([("j:23", 4.0)], [edge("j:23", "email:2@x.com"), edge("j:23", "email:3@x.com")])
    assert g.resolve(p3) == p2
    g.apply([("j:12", 5.0)], [edge("j:12", "email:1@x.com"), edge("j:12", "email:2@x.com")])
    assert g.aliases_of(p1) == sorted([p2, p3])
    assert g.resolve(p3) == p1 and g.resolve(p2) == p1


def test_split_after_merge_gives_back_the_merged_ids(tmp_path):
    g = open_graph(tmp_path)
    g.apply([("crm:1", 1.0)], [edge("crm:1", "email:a@x.com")])
    g.apply([("crm:2", 2.0)], [edge("crm:2", "email:b@x.com")])
    p1, p2 = g.profile_of("crm:1"), g.profile_of("crm:2")
    g.apply([("cal:3", 3.0)], [edge("cal:3", "email:a@x.com"), edge("cal:3", "email:b@x.com")])
    changes = g.remove_link("cal:3", "email:b@x.com", 4.0)
    assert g.profile_of("crm:1") == p1
    assert g.profile_of("cal:3") == p1
    assert g.profile_of("crm:2") == p2  # revived, not a new ID
    assert changes.revived == {p2}
    assert [h.kind for h in changes.history] == ["split"]
    assert changes.history[0].related_ids == [p2]
    assert g.resolve(p2) == p2 and g.aliases_of(p1) == []


def test_split_without_alias_gets_deterministic_new_id(tmp_path):
    def run(path):
        g = NetworkxGraph(path, SHAREABLE)
        g.apply([("a:1", 1.0), ("a:2", 1.0)],
                [edge("a:1", "email:a@x.com"), edge("a:2", "email:a@x.com"),
                 edge("a:2", "phone:+4915112345678")])
        g.apply([("a:3", 2.0)], [edge("a:3", "phone:+4915112345678")])
        before = g.profile_of("a:1")
        g.remove_link("a:2", "email:a@x.com", 3.0)
        out = (before, g.profile_of("a:1"), g.profile_of("a:2"), g.profile_of("a:3"))
        g.close()
        return out

    first = run(tmp_path / "one.sqlite")
    second = run(tmp_path / "two.sqlite")
    assert first == second
    before, a1, a2, a3 = first
    assert a1 == before  # the part holding the founding record keeps the ID
    assert a2 == a3 != before


def test_removing_last_record_deletes_profile(tmp_path):
    g = open_graph(tmp_path)
    g.apply([("a:1", 1.0)], [edge("a:1", "email:a@x.com")])
    pid = g.profile_of("a:1")
    changes = g.remove_record("a:1", 2.0)
    assert changes.retired == {pid}
    assert g.profile_ids() == [] and g.resolve(pid) is None


def test_restart_rebuilds_same_graph_and_ids(tmp_path):
    g = open_graph(tmp_path)
    g.apply([("crm:1", 1.0)], [edge("crm:1", "email:a@x.com")])
    g.apply([("crm:2", 2.0)], [edge("crm:2", "email:b@x.com"), edge("crm:2", "device:d1")])
    g.apply([("cal:3", 3.0), ("web:4", 3.0)],
            [edge("cal:3", "email:a@x.com"), edge("cal:3", "email:b@x.com"),
             edge("web:4", "device:d1", linked=False)])
    g.remove_link("cal:3", "email:b@x.com", 4.0)
    state = {r: g.profile_of(r) for r in ("crm:1", "crm:2", "cal:3", "web:4")}
    ids, aliases = g.profile_ids(), {p: g.aliases_of(p) for p in g.profile_ids()}
    edges = g.edges_of(state)
    g.close()
    g2 = open_graph(tmp_path)
    assert {r: g2.profile_of(r) for r in state} == state
    assert g2.profile_ids() == ids
    assert {p: g2.aliases_of(p) for p in ids} == aliases
    assert g2.edges_of(state) == edges
    assert edges["web:4"] == {"device:d1": False}


def test_apply_is_idempotent(tmp_path):
    g = open_graph(tmp_path)
    batch = ([("a:1", 1.0)], [edge("a:1", "email:a@x.com"), edge("a:1", "phone:+4915112345678")])
    g.apply(*batch)
    size = g._log.path.stat().st_size
    rows = sum(1 for _ in g._log.replay())
    changes = g.apply(*batch)
    assert changes.history == [] and changes.retired == set()
    assert sum(1 for _ in g._log.replay()) == rows
    assert g._log.path.stat().st_size >= size


def test_unlinked_edge_does_not_join_components(tmp_path):
    g = open_graph(tmp_path)
    g.apply([("a:1", 1.0)], [edge("a:1", "device:d1")])
    g.apply([("b:1", 2.0)], [edge("b:1", "device:d1", linked=False)])
    assert g.profile_of("a:1") != g.profile_of("b:1")
    recs, ids = g.component_info(["a:1", "b:1"], ["device:d1"])
    assert ids["device:d1"].component == recs["a:1"].component
    assert recs["a:1"].type_counts == {"device": 1} and recs["a:1"].known is False
