"""The graph seam's contract, run against every backend: the embedded networkx graph and
the Neo4j graph on a real Bolt server (``bolt_server`` in conftest.py: a local ArcadeDB, or
the Neo4j named by ``IDGRAPH_TEST_NEO4J_URI``).

Stable profile IDs through merges, splits and restarts, idempotent writes, the planner's
component queries, Explain's edges and paths, removals."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import pytest

from idgraph.graph.base import IdentityGraph, LinkEdge, MatchEdge
from idgraph.graph.ids import profile_id_for
from idgraph.graph.networkx_backend import NetworkxGraph

SHAREABLE = frozenset({"device", "cookie"})

@pytest.fixture(params=["networkx", "neo4j"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def open_graph(backend, tmp_path, request) -> Callable[..., IdentityGraph]:
    """Opens a graph of the test's backend; opening it again sees the same data (a
    restart). ``fresh=True`` starts from an empty graph (a Neo4j run starts from an empty
    database in any case)."""
    if backend == "networkx":
        return lambda name="links.sqlite", fresh=False: NetworkxGraph(tmp_path / name,
                                                                      SHAREABLE)
    from idgraph.graph.neo4j_backend import Neo4jGraph

    settings = request.getfixturevalue("neo4j_settings")
    reset = request.getfixturevalue("neo4j_reset")

    def open_neo4j(name: str = "", fresh: bool = False) -> IdentityGraph:
        if fresh:
            reset()
        return Neo4jGraph(settings, SHAREABLE)

    return open_neo4j


def edge(rec: str, ident: str, linked: bool = True, at: float = 1.0) -> LinkEdge:
    t = ident.split(":", 1)[0]
    return LinkEdge(rec, ident, t, linked, f"deterministic:{t}" if linked else "rejected",
                    "" if linked else "test", rec.split(":", 1)[0], f"ev-{rec}-{ident}", at)




def test_merge_keeps_oldest_id_and_aliases_the_other(open_graph):
    g = open_graph()
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


def test_alias_chains_stay_one_hop(open_graph):
    g = open_graph()
    for i in range(1, 4):
        g.apply([(f"r:{i}", float(i))], [edge(f"r:{i}", f"email:{i}@x.com")])
    p1, p2, p3 = (g.profile_of(f"r:{i}") for i in range(1, 4))
    g.apply([("j:23", 4.0)], [edge("j:23", "email:2@x.com"), edge("j:23", "email:3@x.com")])
    assert g.resolve(p3) == p2
    g.apply([("j:12", 5.0)], [edge("j:12", "email:1@x.com"), edge("j:12", "email:2@x.com")])
    assert g.aliases_of(p1) == sorted([p2, p3])
    assert g.resolve(p3) == p1 and g.resolve(p2) == p1


def test_split_after_merge_gives_back_the_merged_ids(open_graph):
    g = open_graph()
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


def test_split_without_alias_gets_deterministic_new_id(open_graph):
    def run(name):
        g = open_graph(name, fresh=True)
        g.apply([("a:1", 1.0), ("a:2", 1.0)],
                [edge("a:1", "email:a@x.com"), edge("a:2", "email:a@x.com"),
                 edge("a:2", "phone:+4915112345678")])
        g.apply([("a:3", 2.0)], [edge("a:3", "phone:+4915112345678")])
        before = g.profile_of("a:1")
        g.remove_link("a:2", "email:a@x.com", 3.0)
        out = (before, g.profile_of("a:1"), g.profile_of("a:2"), g.profile_of("a:3"))
        g.close()
        return out

    first = run("one.sqlite")
    second = run("two.sqlite")
    assert first == second
    before, a1, a2, a3 = first
    assert a1 == before  # the part holding the founding record keeps the ID
    assert a2 == a3 != before


def test_removing_last_record_deletes_profile(open_graph):
    g = open_graph()
    g.apply([("a:1", 1.0)], [edge("a:1", "email:a@x.com")])
    pid = g.profile_of("a:1")
    changes = g.remove_record("a:1", 2.0)
    assert changes.retired == {pid}
    assert g.profile_ids() == [] and g.resolve(pid) is None


def test_restart_rebuilds_same_graph_and_ids(open_graph):
    g = open_graph()
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
    g2 = open_graph()
    assert {r: g2.profile_of(r) for r in state} == state
    assert g2.profile_ids() == ids
    assert {p: g2.aliases_of(p) for p in ids} == aliases
    assert g2.edges_of(state) == edges
    assert edges["web:4"] == {"device:d1": False}


def test_apply_is_idempotent(open_graph):
    g = open_graph()
    batch = ([("a:1", 1.0)], [edge("a:1", "email:a@x.com"), edge("a:1", "phone:+4915112345678")],
             [match("a:1", "b:1")])
    first = g.apply(*batch)
    state = _snapshot(g, ["a:1", "b:1"])
    changes = g.apply(*batch)
    assert changes.history == [] and changes.retired == set()
    assert _snapshot(g, ["a:1", "b:1"]) == state
    # a match edge is the unordered pair
    reversed_pair = g.apply([], [], [match("b:1", "a:1")])
    assert reversed_pair.history == [] and _snapshot(g, ["a:1", "b:1"]) == state
    assert [h.kind for h in first.history] == ["created"]


def test_unlinked_edge_does_not_join_components(open_graph):
    g = open_graph()
    g.apply([("a:1", 1.0)], [edge("a:1", "device:d1")])
    g.apply([("b:1", 2.0)], [edge("b:1", "device:d1", linked=False)])
    assert g.profile_of("a:1") != g.profile_of("b:1")
    recs, ids = g.component_info(["a:1", "b:1"], ["device:d1"])
    assert ids["device:d1"].component == recs["a:1"].component
    assert recs["a:1"].type_counts == {"device": 1} and recs["a:1"].known is False


def match(a: str, b: str, linked: bool = True, at: float = 1.0, weight: float = 12.5) -> MatchEdge:
    return MatchEdge(a, b, linked, "probabilistic:v0001" if linked else "rejected",
                     "" if linked else "below threshold", weight, 0.999, "v0001",
                     (("email", "exact", 9.5), ("name", "jw>0.9", 3.0)), "splink",
                     f"ev-{a}-{b}", at)


def _snapshot(g: IdentityGraph, records: list[str]) -> dict:
    pids = g.profile_ids()
    return {
        "profiles": pids,
        "of": {r: g.profile_of(r) for r in records},
        "records": {p: g.records_of(p) for p in pids},
        "aliases": {p: g.aliases_of(p) for p in pids},
        "edges": g.edges_of(records),
        "matches": g.matches_of(records),
        "explain": {p: g.profile_edges(p) for p in pids},
    }


def test_component_info_and_edges(open_graph):
    g = open_graph()
    g.apply([("a:1", 1.0), ("a:2", 1.0)],
            [edge("a:1", "email:a@x.com"), edge("a:1", "device:d1"),
             edge("a:2", "device:d1", linked=False), edge("a:2", "cookie:c2")])
    recs, ids = g.component_info(["a:1", "a:2", "zz:9"], ["email:a@x.com", "device:d1",
                                                          "cookie:c2", "email:none@x.com"])
    assert set(recs) == {"a:1", "a:2"} and set(ids) == {"email:a@x.com", "device:d1",
                                                       "cookie:c2"}
    assert recs["a:1"].component == ids["email:a@x.com"].component == ids["device:d1"].component
    assert recs["a:2"].component == ids["cookie:c2"].component != recs["a:1"].component
    assert recs["a:1"].type_counts == {"email": 1, "device": 1} and recs["a:1"].known
    assert recs["a:2"].type_counts == {"cookie": 1} and not recs["a:2"].known
    assert g.edges_of(["a:1", "a:2", "zz:9"]) == {
        "a:1": {"email:a@x.com": True, "device:d1": True},
        "a:2": {"device:d1": False, "cookie:c2": True}}
    g.apply([("a:3", 2.0)], [])
    assert g.edges_of(["a:3"]) == {"a:3": {}}
    assert g.profiles_of(["a:1", "a:3", "zz:9"]) == {"a:1": g.profile_of("a:1"),
                                                     "a:3": g.profile_of("a:3")}
    assert g.matches_of(["a:1", "a:3"]) == {}


def test_match_edges_link_or_only_record(open_graph):
    g = open_graph()
    g.apply([("a:1", 1.0), ("b:1", 1.0), ("c:1", 1.0)],
            [edge("a:1", "email:a@x.com"), edge("b:1", "email:b@x.com"),
             edge("c:1", "email:c@x.com")])
    pa, pb, pc = (g.profile_of(r) for r in ("a:1", "b:1", "c:1"))
    changes = g.apply([], [], [match("b:1", "a:1", at=2.0), match("a:1", "c:1", linked=False)])
    assert g.profile_of("b:1") == g.profile_of("a:1") == pa and g.profile_of("c:1") == pc
    assert changes.retired == {pb} and g.resolve(pb) == pa
    assert g.matches_of(["a:1", "c:1"]) == {"a:1": {"b:1": True, "c:1": False},
                                            "c:1": {"a:1": False}}
    explained = g.profile_edges(pa)
    matches = [e for e in explained if e.other_record]
    # the linked match inside the profile once, the unlinked one to another profile too
    assert sorted((m.record_key, m.other_record, m.linked) for m in matches) == [
        ("a:1", "b:1", True),
        ("a:1", "c:1", False)]
    linked = next(m for m in matches if m.linked)
    assert linked.match_weight == 12.5 and linked.probability == 0.999
    assert linked.model_version == "v0001"
    assert linked.contributions == (("email", "exact", 9.5), ("name", "jw>0.9", 3.0))
    assert {(e.record_key, e.identifier) for e in explained if e.identifier} == {
        ("a:1", "email:a@x.com"), ("b:1", "email:b@x.com")}
    assert g.profile_edges("p_unknown") == []


def test_path_between_follows_linked_edges(open_graph):
    g = open_graph()
    # a@ - r1 - phone - r2 - b@, and a shortcut that does not link: r3 carries a@ and b@
    # but its b@ edge is rejected
    g.apply([("r:1", 1.0), ("r:2", 1.0), ("r:3", 1.0), ("r:4", 1.0)],
            [edge("r:1", "email:a@x.com"), edge("r:1", "phone:+4915112345678"),
             edge("r:2", "phone:+4915112345678"), edge("r:2", "email:b@x.com"),
             edge("r:3", "email:a@x.com"), edge("r:3", "email:b@x.com", linked=False),
             edge("r:4", "email:z@x.com")])
    path = g.path_between("email:a@x.com", "email:b@x.com")
    assert [(e.record_key, e.identifier) for e in path] == [
        ("r:1", "email:a@x.com"), ("r:1", "phone:+4915112345678"),
        ("r:2", "phone:+4915112345678"), ("r:2", "email:b@x.com")]
    assert all(e.linked and e.rule == f"deterministic:{e.identifier.split(':')[0]}"
               for e in path)
    assert g.path_between("email:a@x.com", "email:a@x.com") == []
    assert g.path_between("email:a@x.com", "email:z@x.com") is None
    assert g.path_between("email:a@x.com", "email:nobody@x.com") is None
    # through a match edge
    g.apply([], [], [match("r:2", "r:4", at=2.0)])
    via = g.path_between("email:b@x.com", "email:z@x.com")
    assert [(e.record_key, e.identifier, e.other_record) for e in via] == [
        ("r:2", "email:b@x.com", ""), ("r:2", "", "r:4"), ("r:4", "email:z@x.com", "")]
    assert via[1].match_weight == 12.5


def test_removing_a_record_keeps_identifiers_other_records_carry(open_graph):
    g = open_graph()
    g.apply([("a:1", 1.0), ("b:1", 1.0)],
            [edge("a:1", "email:a@x.com"), edge("a:1", "device:d1"),
             edge("b:1", "email:b@x.com"), edge("b:1", "device:d1", linked=False)])
    pa = g.profile_of("a:1")
    changes = g.remove_record("a:1", 2.0)
    assert changes.retired == {pa} and g.resolve(pa) is None
    assert [h.kind for h in changes.history] == ["deleted"]
    assert g.edges_of(["a:1", "b:1"]) == {"b:1": {"email:b@x.com": True, "device:d1": False}}
    recs, ids = g.component_info(["a:1"], ["email:a@x.com", "device:d1"])
    assert recs == {} and ids == {}  # a@ is gone; d1 stays, attached to b:1 but unlinked
    assert g.remove_record("a:1", 3.0).history == []
    assert g.remove_link("b:1", "email:none@x.com", 3.0).history == []
    # the device now links b:1's profile when attached with a link
    g.apply([("c:1", 4.0)], [edge("c:1", "device:d1")])
    assert g.profile_of("c:1") != g.profile_of("b:1")


def test_merge_chain_split_and_reopen_keep_ids(open_graph):
    g = open_graph()
    for i in range(1, 5):
        g.apply([(f"r:{i}", float(i))], [edge(f"r:{i}", f"email:{i}@x.com")])
    ids = [g.profile_of(f"r:{i}") for i in range(1, 5)]
    g.apply([("j:a", 5.0)], [edge("j:a", "email:3@x.com"), edge("j:a", "email:4@x.com")])
    g.apply([("j:b", 6.0)], [edge("j:b", "email:1@x.com"), edge("j:b", "email:2@x.com"),
                             edge("j:b", "email:3@x.com")])
    assert g.profile_ids() == [ids[0]] and g.aliases_of(ids[0]) == sorted(ids[1:])
    changes = g.remove_link("j:b", "email:3@x.com", 7.0)
    assert changes.revived == {ids[2]}
    assert g.profile_of("r:4") == g.profile_of("j:a") == ids[2]
    assert g.aliases_of(ids[2]) == [ids[3]] and g.aliases_of(ids[0]) == [ids[1]]
    before = _snapshot(g, [f"r:{i}" for i in range(1, 5)] + ["j:a", "j:b"])
    g.close()
    again = open_graph()
    assert _snapshot(again, [f"r:{i}" for i in range(1, 5)] + ["j:a", "j:b"]) == before


def test_generic_mark_demotes_links_splits_and_survives_a_restart(open_graph):
    g = open_graph()
    g.apply([("crm:1", 1.0), ("web:2", 1.0)],
            [edge("crm:1", "phone:+4930123456"), edge("crm:1", "email:a@x.com"),
             edge("web:2", "phone:+4930123456"), edge("web:2", "cookie:c2")],
            names={"crm:1": "anna|meyer"})
    merged = g.profile_of("crm:1")
    assert g.profile_of("web:2") == merged
    recs, _ = g.component_info(["crm:1"], [])
    assert recs["crm:1"].names == frozenset({"anna|meyer"})
    changes = g.apply([("crm:3", 2.0)], [edge("crm:3", "phone:+4930123456", linked=False)],
                      names={"crm:3": "tom|berg"},
                      generic={"phone:+4930123456": "generic value: carried by 2 people"})
    # the phone joined crm:1 and web:2; demoted, they fall apart (the older keeps the ID)
    assert g.profile_of("crm:1") == merged and g.profile_of("web:2") != merged
    [split] = [h for h in changes.history if h.kind == "split"]
    assert split.reason == "generic value: carried by 2 people (phone)"
    assert g.edges_of(["crm:1", "web:2"]) == {
        "crm:1": {"phone:+4930123456": False, "email:a@x.com": True},
        "web:2": {"phone:+4930123456": False, "cookie:c2": True}}
    why = {e.record_key: e.reason for e in g.profile_edges(merged)
           if e.identifier == "phone:+4930123456"}
    assert why == {"crm:1": "generic value: carried by 2 people"}
    state = _snapshot(g, ["crm:1", "web:2", "crm:3"])
    g.close()
    g = open_graph()
    assert _snapshot(g, ["crm:1", "web:2", "crm:3"]) == state
    ev = g.identifier_evidence(["phone:+4930123456", "email:a@x.com", "email:none@x.com"])
    assert set(ev) == {"phone:+4930123456", "email:a@x.com"}
    assert ev["phone:+4930123456"].generic == "generic value: carried by 2 people"
    assert ev["phone:+4930123456"].carriers == {"crm:1": "anna|meyer", "web:2": "",
                                               "crm:3": "tom|berg"}
    assert ev["email:a@x.com"].generic == "" and ev["email:a@x.com"].carriers == {
        "crm:1": "anna|meyer"}
    # marking again changes nothing; a name changes in place
    again = g.apply([], [], generic={"phone:+4930123456": "other reason"},
                    names={"crm:1": "anna|schmidt"})
    assert again.history == []
    assert g.identifier_evidence(["phone:+4930123456"])["phone:+4930123456"].generic == (
        "generic value: carried by 2 people")
    assert g.component_info(["crm:1"], [])[0]["crm:1"].names == frozenset({"anna|schmidt"})


def test_a_detached_record_links_nothing_and_survives_a_restart(open_graph):
    g = open_graph()
    g.apply([("crm:1", 1.0), ("mail:1", 1.0)],
            [edge("crm:1", "crm:c1"), edge("mail:1", "crm:c1"), edge("mail:1", "email:m@x.com")],
            [match("mail:1", "crm:1")])
    person = g.profile_of("crm:1")
    assert g.profile_of("mail:1") == person
    changes = g.apply([], [], detached={"mail:1": "shared mailbox record (test)"})
    assert g.profile_of("crm:1") == person and g.profile_of("mail:1") != person
    [split] = [h for h in changes.history if h.kind == "split"]
    assert split.reason == "shared mailbox record (test)"
    assert g.edges_of(["mail:1"]) == {"mail:1": {"crm:c1": False, "email:m@x.com": False}}
    assert g.matches_of(["mail:1"]) == {"mail:1": {"crm:1": False}}
    state = _snapshot(g, ["crm:1", "mail:1"])
    g.close()
    g = open_graph()
    assert _snapshot(g, ["crm:1", "mail:1"]) == state
    # detaching again changes nothing
    assert g.apply([], [], detached={"mail:1": "again"}).history == []


def test_remove_records_takes_a_whole_component_at_once(open_graph):
    g = open_graph()
    # a chain: a:1 - email - a:2 - phone - a:3 (removing a:2 alone would split it)
    g.apply([("a:1", 1.0), ("a:2", 1.0), ("a:3", 1.0), ("b:1", 1.0)],
            [edge("a:1", "email:a@x.com"), edge("a:2", "email:a@x.com"),
             edge("a:2", "phone:+4915112345678"), edge("a:3", "phone:+4915112345678"),
             edge("a:3", "device:d1"), edge("b:1", "device:d1", linked=False),
             edge("b:1", "email:b@x.com")])
    pid, other = g.profile_of("a:1"), g.profile_of("b:1")
    changes = g.remove_records(["a:2", "a:1", "a:3", "a:3", "zz:unknown"], 2.0)
    assert [(h.kind, h.profile_id) for h in changes.history] == [("deleted", pid)]
    assert changes.retired == {pid} and changes.revived == set()
    assert g.resolve(pid) is None and g.profile_ids() == [other]
    recs, ids = g.component_info(["a:1", "a:2", "a:3"], ["email:a@x.com", "device:d1"])
    assert recs == {} and ids == {}  # the device stays, attached to b:1 only
    assert g.edges_of(["a:1", "b:1"]) == {"b:1": {"device:d1": False, "email:b@x.com": True}}
    assert set(g.identifier_evidence(["email:a@x.com", "phone:+4915112345678",
                                      "device:d1"])) == {"device:d1"}
    assert g.remove_records(["a:1"], 3.0).history == []


def _token(value: str) -> str:
    return "forgotten:" + hashlib.sha256(b"test key\x00" + value.encode()).hexdigest()[:32]


def _everything_stored(backend: str, g: IdentityGraph, request) -> str:
    """Every byte the backend keeps (the embedded log and its -wal/-shm), or every property
    of every node and relationship of the Neo4j database, as text."""
    if backend == "networkx":
        path = g._log.path  # type: ignore[attr-defined]
        return "".join(p.read_bytes().decode("latin-1") for p in path.parent.iterdir()
                       if p.name.startswith(path.name))
    import neo4j

    s = request.getfixturevalue("neo4j_settings")
    with neo4j.GraphDatabase.driver(s.uri, auth=(s.user, s.password.get_secret_value())) as d:
        nodes = d.execute_query("MATCH (n) RETURN labels(n) AS l, properties(n) AS p",
                                database_=s.database).records
        rels = d.execute_query("MATCH ()-[e]->() RETURN type(e) AS t, properties(e) AS p",
                               database_=s.database).records
    return json.dumps([[r["l"], r["p"]] for r in nodes] + [[r["t"], r["p"]] for r in rels],
                      sort_keys=True, default=str)


def test_erase_history_leaves_nothing_of_the_person(open_graph, backend, request):
    g = open_graph()
    jane, cal, kim = "sendgrid:jane@example.com", "gcal:evt42", "web:kim"
    cal_event = "gcal:evt42:2024-05-01:jane@example.com"
    # Kim's record founds a profile that Lee joins; only Kim is forgotten: Lee keeps the ID
    g.apply([(kim, 1.0)], [edge(kim, "cookie:k1")], names={kim: "kim|park"})
    g.apply([("crm:lee", 2.0)], [edge("crm:lee", "cookie:k1"), edge("crm:lee", "email:lee@x.com")])
    lee = g.profile_of("crm:lee")
    assert lee == g.profile_of(kim)
    # Jane: two records, a name, an event ID holding her address, an address of hers
    # another profile had merged (an alias), an identifier of hers that became generic
    # (no linked edge left: the Neo4j node lingered), a device shared with Tom
    g.apply([("crm:tom", 3.0)], [edge("crm:tom", "email:tom@example.com"),
                                 edge("crm:tom", "device:tv", linked=False)],
            names={"crm:tom": "tom|berg"})
    g.apply([(jane, 4.0), (cal, 4.0)],
            [edge(jane, "email:jane@example.com"), edge(jane, "device:tv"),
             edge(jane, "email:info@jane-shop.example"),
             LinkEdge(cal, "email:jane@example.com", "email", True, "deterministic:email", "",
                      "gcal", cal_event, 4.0)],
            [match(jane, "crm:tom", linked=False, at=4.0)],
            names={jane: "jane|doe", cal: "jane|doe"})
    g.apply([("hub:j2", 5.0)], [edge("hub:j2", "email:j2@example.com")])
    g.apply([], [edge(jane, "email:j2@example.com", at=6.0)],
            generic={"email:info@jane-shop.example": "generic value: test"})
    person = g.profile_of(jane)
    absorbed = g.aliases_of(person)
    assert len(absorbed) == 1 and g.records_of(person) == [jane, cal, "hub:j2"]
    forgotten = [*g.records_of(person), kim]
    g.remove_records(forgotten, 7.0)
    keep = ["crm:lee", "crm:tom"]
    before = _snapshot(g, keep)
    assert g.profile_of("crm:lee") == lee
    exclusive = ["email:jane@example.com", "email:info@jane-shop.example",
                 "email:j2@example.com", "cookie:none", "device:tv"]  # the device: Tom's too
    assert g.erase_history(forgotten, exclusive, _token) > 0
    assert _snapshot(g, keep) == before
    g.close()
    g = open_graph()  # a restart (the embedded graph replays its rewritten log)
    assert _snapshot(g, keep) == before
    assert g.resolve(lee) == lee and g.resolve(person) is None and g.resolve(absorbed[0]) is None
    stored = _everything_stored(backend, g, request)
    for value in ("jane@example.com", "jane|doe", "evt42", "info@jane-shop.example",
                  "j2@example.com", "hub:j2", "web:kim", "kim|park", person, *absorbed):
        assert value not in stored, value
    assert _token(kim) in stored  # Lee's ID, founded by Kim, is kept by Kim's token
    for value in ("crm:lee", "lee@x.com", "crm:tom", "tom|berg", "device:tv", lee):
        assert value in stored, value
    # the person's IDs are forgotten as if never assigned: a record that comes back under
    # a forgotten key gets the ID it would get in a fresh graph, on every backend
    g.apply([(jane, 8.0)], [edge(jane, "email:jane@example.com", at=8.0)])
    assert g.profile_of(jane) == person == profile_id_for(jane, lambda _pid: False)
    with pytest.raises(ValueError, match="still in the graph"):
        g.erase_history([jane], [], _token)
    g.close()
