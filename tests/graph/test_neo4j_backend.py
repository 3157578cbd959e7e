"""The Neo4j graph against a real Bolt server: the same answers as the embedded graph for the
same operations, correctness with concurrent writers, every statement linted by Neo4j's own
parser, clear errors."""

from __future__ import annotations

import random
import sys
import threading
from collections import defaultdict

import neo4j
import networkx as nx
import pytest
from cypher_lint import lint_cypher
from pydantic import SecretStr

import idgraph.graph.neo4j_backend.graph as neo4j_graph_module
from idgraph.core.errors import BackendError, ConfigError
from idgraph.graph.base import GraphChanges, IdentityGraph, LinkEdge, MatchEdge
from idgraph.graph.neo4j_backend import Neo4jGraph, cypher
from idgraph.graph.neo4j_backend.settings import Neo4jSettings
from idgraph.graph.networkx_backend import NetworkxGraph
from tests.graph.test_graph_contract import SHAREABLE, _snapshot, edge

TYPES = ["email", "phone", "device", "cookie", "crm:salesforce"]
NAMES = ["anna|meyer", "tom|berg", "jo|lee", ""]


def _random_ops(seed: int, n_ops: int, prefix: str = "", pool: int = 60):
    """A reproducible mix of batches (records, identifier edges linked or not, matches,
    record names, generic marks), unlinks and record removals, over a small identifier
    pool so components merge often."""
    rng = random.Random(seed)
    records: list[str] = []
    ops = []
    t = 0.0
    for _ in range(n_ops):
        t += 1.0
        roll = rng.random()
        if roll < 0.72 or len(records) < 4:
            new = [f"{prefix}src{rng.randint(1, 3)}:{len(records) + i}" for i in
                   range(rng.randint(1, 5))]
            edges = []
            for rec in new + rng.sample(records, min(len(records), rng.randint(0, 2))):
                for _ in range(rng.randint(0, 3)):
                    itype = rng.choice(TYPES)
                    ident = f"{itype}:v{rng.randint(1, pool)}"
                    linked = rng.random() < 0.85
                    edges.append(LinkEdge(rec, ident, itype, linked,
                                          f"deterministic:{itype}" if linked else "rejected",
                                          "" if linked else "limit", rec.split(":")[0],
                                          f"ev-{rec}-{ident}", t))
            records.extend(new)
            matches = []
            if len(records) > 6 and rng.random() < 0.4:
                a, b = rng.sample(records, 2)
                linked = rng.random() < 0.6
                matches.append(MatchEdge(a, b, linked, "probabilistic:v1" if linked else "rej",
                                         "" if linked else "below", 11.0, 0.995, "v1",
                                         (("name", "exact", 11.0),), "splink", f"m-{a}-{b}", t))
            names = {k: rng.choice(NAMES) for k in new if rng.random() < 0.5}
            generic = {}
            if edges and rng.random() < 0.15:
                generic[rng.choice(edges).identifier] = "generic value: test"
            detached = {}
            if records and rng.random() < 0.1:
                detached[rng.choice(records)] = "shared mailbox record (test)"
            ops.append(("apply", [(k, t) for k in new], edges, matches, names, generic,
                        detached))
        elif roll < 0.88:
            rec = rng.choice(records)
            ops.append(("unlink", rec, f"{rng.choice(TYPES)}:v{rng.randint(1, pool)}", t))
        else:
            ops.append(("remove", rng.choice(records), t))
    return ops, records


def _run_op(g: IdentityGraph, op) -> GraphChanges:
    if op[0] == "apply":
        return g.apply(op[1], op[2], op[3], names=op[4], generic=op[5], detached=op[6])
    if op[0] == "unlink":
        return g.remove_link(op[1], op[2], op[3])
    return g.remove_record(op[1], op[2])


def _identifiers(ops) -> list[str]:
    return sorted({e.identifier for op in ops if op[0] == "apply" for e in op[2]})


def _state(g: IdentityGraph, records: list[str], identifiers: list[str]) -> dict:
    """Everything the seam answers about these records and identifiers."""
    recs, ids = g.component_info(records, identifiers)
    token_pid = {i.component: g.profile_of(r) for r, i in recs.items()}
    return {
        **_snapshot(g, records),
        "counts": {r: (i.type_counts, i.known, i.names, i.emails) for r, i in recs.items()},
        "evidence": g.identifier_evidence(identifiers),
        # component tokens are opaque: compare the profile each identifier's component is
        "id_profiles": {k: token_pid[i.component] for k, i in ids.items()},
    }


def test_random_operations_give_the_embedded_graphs_answers(neo4j_settings, tmp_path):
    ops, records = _random_ops(seed=11, n_ops=160)
    identifiers = _identifiers(ops)
    embedded = NetworkxGraph(tmp_path / "links.sqlite", SHAREABLE)
    graph = Neo4jGraph(neo4j_settings, SHAREABLE)
    kinds = defaultdict(int)
    for n, op in enumerate(ops):
        want, got = _run_op(embedded, op), _run_op(graph, op)
        assert (got.touched, got.retired, got.revived, got.history) == (
            want.touched, want.retired, want.revived, want.history), f"op {n}: {op[0]}"
        for h in want.history:
            kinds[h.kind] += 1
        if n % 40 == 39:
            assert _state(graph, records, identifiers) == _state(embedded, records, identifiers)
    # the random mix exercised every kind of ID change
    assert {"created", "merged", "split", "deleted"} <= set(kinds), dict(kinds)
    final = _state(embedded, records, identifiers)
    assert _state(graph, records, identifiers) == final
    for a in identifiers[:25]:
        for b in identifiers[25:45]:
            want, got = embedded.path_between(a, b), graph.path_between(a, b)
            assert (want is None) == (got is None), (a, b)
            if want is not None:  # ties between shortest paths may be broken differently
                assert len(got) == len(want) and all(e.linked for e in got)
                _assert_chain(got, a, b)
    graph.close()
    reopened = Neo4jGraph(neo4j_settings, SHAREABLE)  # no cache of the last write
    assert _state(reopened, records, identifiers) == final
    for pid in final["profiles"][:20]:
        assert reopened.history_of(pid) == sorted(
            reopened.history_of(pid), key=lambda h: h.seq)
    reopened.close()
    embedded.close()


def test_random_forgets_give_the_embedded_graphs_answers(neo4j_settings, tmp_path):
    """Forgets (a whole profile, or some records of one) between random operations:
    remove_records then erase_history on both backends give the same answers, also about
    the IDs that vanished (they resolve to nothing) and the ID a forgotten key gets when
    it comes back."""
    ops, records = _random_ops(seed=23, n_ops=150)
    identifiers = _identifiers(ops)
    embedded = NetworkxGraph(tmp_path / "links.sqlite", SHAREABLE)
    graph = Neo4jGraph(neo4j_settings, SHAREABLE)
    rng = random.Random(7)
    seen_ids: set[str] = set()
    forgets = 0
    for n, op in enumerate(ops):
        for g in (embedded, graph):
            _run_op(g, op)
        seen_ids.update(embedded.profile_ids())
        if n % 25 != 24:
            continue
        live = [r for r in records if embedded.profile_of(r) is not None]
        pid = embedded.profile_of(rng.choice(live))
        keys = embedded.records_of(pid)
        if n % 50 == 49 and len(keys) > 1:  # some records of the profile only
            keys = rng.sample(keys, len(keys) // 2)
        idents = sorted({i for ids in embedded.edges_of(keys).values() for i in ids})
        for g in (embedded, graph):
            g.remove_records(keys, 1000.0 + n)
            gone = [i for i in idents if not g.identifier_evidence([i])]
            assert g.erase_history(keys, gone, lambda v: "forgotten:" + v[::-1]) > 0
        forgets += 1
        assert _state(graph, records, identifiers) == _state(embedded, records, identifiers)
        assert {p: graph.resolve(p) for p in seen_ids} == {
            p: embedded.resolve(p) for p in seen_ids}
        back = keys[0]  # comes back with a new identifier
        for g in (embedded, graph):
            g.apply([(back, 2000.0 + n)], [LinkEdge(back, f"email:back{n}@x.io", "email", True,
                                                    "deterministic:email", "", "src",
                                                    f"ev-back-{n}", 2000.0 + n)])
        assert graph.profile_of(back) == embedded.profile_of(back)
    assert forgets >= 5
    assert _state(graph, records, identifiers) == _state(embedded, records, identifiers)
    graph.close()
    embedded.close()
    again = NetworkxGraph(tmp_path / "links.sqlite", SHAREABLE)
    reopened = Neo4jGraph(neo4j_settings, SHAREABLE)
    assert _state(reopened, records, identifiers) == _state(again, records, identifiers)
    reopened.close()
    again.close()


def _assert_chain(path, a: str, b: str) -> None:
    """Consecutive edges share a node, from identifier ``a`` to identifier ``b``."""
    at = ("i", a)
    for e in path:
        ends = {("r", e.record_key), ("i", e.identifier) if e.identifier else ("r", e.other_record)}
        assert at in ends, (at, e)
        (at,) = ends - {at}
    assert at == ("i", b)


def _check_consistent(settings) -> int:
    """The stored graph's invariants, from the raw database: every component of linked edges
    with a record has one live ID on all its nodes, distinct components distinct IDs,
    identifiers with no linked edge have none, aliases point at live IDs. Returns the
    number of profiles."""
    with neo4j.GraphDatabase.driver(settings.uri, auth=(
            settings.user, settings.password.get_secret_value())) as driver:
        def q(text):
            return driver.execute_query(text, database_=settings.database).records

        nodes = {("r", r["k"]): r["p"] for r in q("MATCH (n:Record) RETURN n.key AS k, n.pid AS p")}
        nodes.update({("i", r["k"]): r["p"] for r in q(
            "MATCH (n:Identifier) RETURN n.key AS k, n.pid AS p")})
        edges = q("MATCH (a:Record)-[e]->(b) RETURN a.key AS a, b.key AS b, "
                  "labels(b) AS l, type(e) AS t, e.linked AS linked")
        profiles = {r["p"]: (r["live"], r["alias"]) for r in q(
            "MATCH (m:Profile) RETURN m.pid AS p, m.live AS live, m.alias_of AS alias")}
    g = nx.Graph()
    g.add_nodes_from(nodes)
    for e in edges:
        assert e["linked"] == (e["t"] in ("LINKS", "SAME_AS")), e
        if e["linked"]:
            g.add_edge(("r", e["a"]), ("r" if "Record" in e["l"] else "i", e["b"]))
    seen: set[str] = set()
    for comp in nx.connected_components(g):
        pids = {nodes[n] for n in comp}
        if not any(n[0] == "r" for n in comp):
            assert pids == {None}, comp
            continue
        assert len(pids) == 1 and None not in pids, comp
        (pid,) = pids
        assert pid not in seen
        seen.add(pid)
        assert profiles[pid] == (True, None)
    assert {p for p, (live, _) in profiles.items() if live} == seen
    for p, (live, alias) in profiles.items():
        if alias is not None:
            assert not live and profiles[alias][0], p
    return len(seen)


def test_concurrent_writers_keep_the_graph_consistent(neo4j_settings):
    """Three writers (separate driver pools, as separate workers) apply overlapping batches
    at once; conflicts are retried and the stored graph stays consistent."""
    ops = [_random_ops(seed=s, n_ops=40, prefix=f"w{s}-", pool=25)[0] for s in (1, 2, 3)]
    errors: list[BaseException] = []

    def writer(my_ops):
        g = Neo4jGraph(neo4j_settings, SHAREABLE)
        try:
            for op in my_ops:
                _run_op(g, op)
        except BaseException as exc:  # noqa: BLE001  (reported by the main thread)
            errors.append(exc)
        finally:
            g.close()

    threads = [threading.Thread(target=writer, args=(o,)) for o in ops]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors
    assert _check_consistent(neo4j_settings) > 10


def test_every_statement_sent_is_one_neo4j_parses(neo4j_settings, monkeypatch):
    problems = lint_cypher(list(cypher.STATEMENTS))
    assert {s: p for s, p in zip(cypher.STATEMENTS, problems, strict=True) if p} == {}
    sent: list[str] = []
    real_run = neo4j_graph_module._run

    def spy(tx, query, **params):
        sent.append(query)
        return real_run(tx, query, **params)

    monkeypatch.setattr(neo4j_graph_module, "_run", spy)
    ops, records = _random_ops(seed=5, n_ops=60)
    g = Neo4jGraph(neo4j_settings, SHAREABLE)
    for op in ops:
        _run_op(g, op)
    identifiers = _identifiers(ops)
    g.refresh()
    _state(g, records, identifiers)
    g.path_between(identifiers[0], identifiers[1])
    for pid in g.profile_ids()[:5]:
        g.history_of(pid)
        g.resolve(pid)
    for pid in g.profile_ids()[:3]:  # a forget: the profile's records, then their history
        keys = g.records_of(pid)
        idents = sorted({i for ids in g.edges_of(keys).values() for i in ids})
        g.remove_records(keys, 1000.0)
        g.erase_history(keys, idents, lambda v: "forgotten:" + v[::-1])
    g.close()
    assert set(sent) <= set(cypher.STATEMENTS)
    # the run exercised nearly all of them (the rest are schema statements sent at open)
    assert len(set(sent)) >= len(cypher.STATEMENTS) - 3


def test_a_write_with_a_fencing_token_older_than_one_written_is_refused(neo4j_settings):
    """Two machines' graphs: once a write carried turn 5, a write of turn 4 (a writer that
    stalled past its lease) is refused and changes nothing, its forget included; turn 5
    again (the same turn's next write) and 6 pass; a graph with no token is not fenced
    (one machine's writer)."""
    a, b = Neo4jGraph(neo4j_settings, SHAREABLE), Neo4jGraph(neo4j_settings, SHAREABLE)

    def stored(g) -> set[str]:
        return set(g.component_info([f"crm:{n}" for n in range(1, 6)], [])[0])

    try:
        a.fence(5)
        a.apply([("crm:1", 1.0)], [edge("crm:1", "email:a@x.io")])
        b.fence(4)
        with pytest.raises(BackendError, match="turn 5 of another writer"):
            b.apply([("crm:2", 2.0)], [edge("crm:2", "email:b@x.io")])
        with pytest.raises(BackendError, match="lost its turn"):
            b.erase_history(["crm:9"], [], lambda v: "t")
        assert stored(b) == {"crm:1"}
        for token, key in ((5, "crm:3"), (6, "crm:4")):
            b.fence(token)
            b.apply([(key, 3.0)], [edge(key, f"email:{key[-1]}@x.io")])
        a.fence(None)
        a.apply([("crm:5", 4.0)], [edge("crm:5", "email:5@x.io")])
        assert stored(b) == {"crm:1", "crm:3", "crm:4", "crm:5"}
    finally:
        a.close()
        b.close()


def test_read_only_view_refuses_writes(neo4j_settings):
    writer = Neo4jGraph(neo4j_settings, SHAREABLE)
    writer.apply([("a:1", 1.0)], [])
    view = Neo4jGraph(neo4j_settings, SHAREABLE, read_only=True)
    assert view.profile_of("a:1") == writer.profile_of("a:1") is not None
    with pytest.raises(BackendError, match="read-only"):
        view.apply([("a:2", 1.0)], [])
    view.close()
    writer.close()


def test_unreachable_server_and_wrong_password_fail_clearly(neo4j_settings):
    wrong = neo4j_settings.model_copy(update={"password": SecretStr("not-the-password")})
    with pytest.raises(BackendError, match="refused the credentials|cannot reach"):
        Neo4jGraph(wrong, SHAREABLE)
    nowhere = neo4j_settings.model_copy(update={"uri": "bolt://127.0.0.1:1",
                                                "connection_timeout_seconds": 2.0})
    with pytest.raises(BackendError, match=r"cannot reach Neo4j at bolt://127\.0\.0\.1:1"):
        Neo4jGraph(nowhere, SHAREABLE)


def test_a_failed_write_gives_up_without_quoting_the_servers_message(neo4j_settings,
                                                                     monkeypatch):
    """Servers quote the offending values (identifiers, personal data) in constraint
    errors: the BackendError names the error and its code only."""
    from neo4j.exceptions import ConstraintError

    def conflict(tx, query, **params):
        raise ConstraintError("Node(7) already exists with key 'email:jane@example.com'")

    settings = neo4j_settings.model_copy(update={"max_transaction_retry_seconds": 0.3})
    g = Neo4jGraph(settings, SHAREABLE)
    monkeypatch.setattr(neo4j_graph_module, "_run", conflict)
    with pytest.raises(BackendError,
                       match=r"^graph: apply failed: write failed after \d+ attempt") as err:
        g.apply([("a:1", 1.0)], [LinkEdge("a:1", "email:jane@example.com", "email", True,
                                          "deterministic:email", "", "a", "e1", 1.0)])
    assert "jane" not in str(err.value) and "ConstraintError" in str(err.value)
    monkeypatch.undo()
    g.close()


def test_a_write_conflict_is_retried_with_backoff_until_it_goes_through(neo4j_settings,
                                                                       monkeypatch, caplog,
                                                                       tmp_path):
    """A ConstraintError (two writers creating one node: ArcadeDB's form of a lock wait) is
    retried after pauses of 50 ms doubling, each times a random factor in [1, 2); each retry
    is logged by the error's type only; the write that goes through is applied once."""
    from neo4j.exceptions import ConstraintError

    real_run, real_wait = neo4j_graph_module._run, neo4j_graph_module._write_retry_wait
    conflicts = 3
    turns: list[str] = []

    def conflicting(tx, query, **params):
        if query == cypher.TAKE_TURN:
            turns.append(query)
            if len(turns) <= conflicts:
                raise ConstraintError("Node(7) already exists with key 'email:jane@example.com'")
        return real_run(tx, query, **params)

    pauses: list[float] = []

    def no_pause(state):
        pauses.append(real_wait(state))
        return 0.0

    g = Neo4jGraph(neo4j_settings, SHAREABLE)
    monkeypatch.setattr(neo4j_graph_module, "_run", conflicting)
    monkeypatch.setattr(neo4j_graph_module, "_write_retry_wait", no_pause)
    edge = LinkEdge("a:1", "email:jane@example.com", "email", True, "deterministic:email", "",
                    "a", "e1", 1.0)
    with caplog.at_level("INFO", logger=neo4j_graph_module.__name__):
        changes = g.apply([("a:1", 1.0)], [edge])
    assert len(turns) == conflicts + 1
    for pause, base in zip(pauses, (0.05, 0.1, 0.2), strict=True):
        assert base <= pause < 2 * base
    retries = [r.getMessage() for r in caplog.records if r.name == neo4j_graph_module.__name__]
    assert retries == ["graph: write conflict (ConstraintError), retrying"] * conflicts
    monkeypatch.undo()
    embedded = NetworkxGraph(tmp_path / "links.sqlite", SHAREABLE)
    want = embedded.apply([("a:1", 1.0)], [edge])
    assert (changes.touched, changes.history) == (want.touched, want.history)
    g.refresh()
    assert _snapshot(g, ["a:1"]) == _snapshot(embedded, ["a:1"])
    embedded.close()
    g.close()


def test_an_error_that_is_not_a_conflict_is_not_retried(neo4j_settings, monkeypatch):
    from neo4j.exceptions import CypherSyntaxError

    attempts: list[str] = []

    def broken(tx, query, **params):
        attempts.append(query)
        raise CypherSyntaxError("Invalid input 'jane@example.com'")

    g = Neo4jGraph(neo4j_settings, SHAREABLE)
    monkeypatch.setattr(neo4j_graph_module, "_run", broken)
    monkeypatch.setattr(neo4j_graph_module, "_write_retry_wait", lambda state: 0.0)
    with pytest.raises(BackendError,
                       match=r"^graph: apply failed: write failed after 1 attempt\(s\)") as err:
        g.apply([("a:1", 1.0)], [])
    assert len(attempts) == 1 and "jane" not in str(err.value)
    monkeypatch.undo()
    g.close()


def test_a_driver_error_in_a_seam_method_names_the_seam_and_the_method_not_the_values(
        neo4j_settings):
    """The driver's errors leave the graph at the seam's boundary: BackendError naming the
    seam and the method, never a key or a value. Here the driver is closed underneath the
    graph, so every session it opens fails with the driver's own DriverError."""
    key, email = "crm:jane.doe@example.com", "email:jane.doe@example.com"
    g = Neo4jGraph(neo4j_settings, SHAREABLE)
    g.apply([(key, 1.0)], [LinkEdge(key, email, "email", True, "deterministic:email", "",
                                    "crm", "e1", 1.0)])
    pid = g.profile_of(key)
    g.refresh()  # the reads below go to the server, not to the last write's working set
    g._driver.close()
    reads = {
        "profile_of": lambda: g.profile_of(key),
        "component_info": lambda: g.component_info([key], [email]),
        "records_of": lambda: g.records_of(pid),
        "path_between": lambda: g.path_between(email, "phone:+15550100"),
        "history_of": lambda: g.history_of(pid),  # public, not on the seam: covered too
    }
    for method, call in reads.items():
        with pytest.raises(BackendError) as err:
            call()
        assert str(err.value) == f"graph: {method} failed: DriverError", method
        assert isinstance(err.value.__cause__, neo4j.exceptions.DriverError)
    # a write says how many attempts it made (the driver's error is not retried)
    with pytest.raises(BackendError) as err:
        g.remove_link(key, email, 2.0)
    assert str(err.value) == ("graph: remove_link failed: write failed after 1 attempt(s): "
                              "DriverError")
    g.close()


def test_a_missing_driver_names_the_extra_to_install(monkeypatch, tmp_path):
    from idgraph.graph import create_graph

    monkeypatch.setitem(sys.modules, "neo4j", None)  # what `import neo4j` meets without it
    monkeypatch.delitem(sys.modules, "idgraph.graph.neo4j_backend.graph")
    with pytest.raises(ConfigError, match=r"pip install 'idgraph\[neo4j\]'"):
        create_graph("neo4j", tmp_path, SHAREABLE, neo4j=Neo4jSettings())
