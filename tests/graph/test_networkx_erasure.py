"""Erasure of a forgotten person from the embedded graph's link log (``erase_history``).

The log is rewritten in place with keyed tokens; replaying it must give exactly the graph
the writer holds for everyone else (same components, profile IDs, aliases, explained
edges), also after several erasures, records coming back under a forgotten key and
erasures done by a process that itself rebuilt its state from an erased log. No forgotten
key, identifier, name or event ID may remain in the file's bytes (nor its -wal, -shm).
"""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from idgraph.graph import create_graph_view
from idgraph.graph.base import IdentityGraph, LinkEdge, MatchEdge
from idgraph.graph.components import I, R
from idgraph.graph.ids import profile_id_for
from idgraph.graph.networkx_backend import NetworkxGraph
from idgraph.graph.networkx_backend.graph import ERASED

SHAREABLE = frozenset({"device"})
KEYS = [f"s{i % 3}:r{i:02d}" for i in range(10)]  # no key is a substring of another
IDENTS = ["email:ann@x.io", "email:bob@x.io", "email:cy@x.io", "email:dee@x.io",
          "phone:+4911", "phone:+4922", "phone:+4933", "device:dv1", "device:dv2"]
NAME = {k: f"first{i}|last{i}" for i, k in enumerate(KEYS)}


def token(value: str) -> str:
    return "forgotten:" + hmac.new(b"test key", value.encode(), hashlib.sha256).hexdigest()[:32]


def _edge(rec: str, ident: str, linked: bool, at: float) -> LinkEdge:
    t = ident.split(":", 1)[0]
    return LinkEdge(rec, ident, t, linked, f"deterministic:{t}" if linked else "rejected",
                    "" if linked else "limit", rec.split(":", 1)[0], f"ev-{rec}-{ident}", at)


def _match(a: str, b: str, linked: bool, at: float) -> MatchEdge:
    return MatchEdge(a, b, linked, "probabilistic:v1" if linked else "rejected",
                     "" if linked else "below", 11.0, 0.99, "v1", (("email", "exact", 11.0),),
                     "splink", f"m-{a}-{b}", at)


key = st.sampled_from(KEYS)
ident = st.sampled_from(IDENTS)
apply_op = st.tuples(
    st.just("apply"),
    st.lists(key, max_size=3, unique=True),
    st.lists(st.tuples(key, ident, st.booleans() | st.just(True)), max_size=4),
    st.lists(st.tuples(key, key, st.booleans()), max_size=1),
    st.lists(key, max_size=2, unique=True),  # records given their name
    st.lists(ident, max_size=1),  # marked generic
    st.lists(key, max_size=1),  # detached
)
OPS = st.lists(st.one_of(
    apply_op, apply_op, apply_op,
    st.tuples(st.just("unlink"), key, ident),
    st.tuples(st.just("remove"), st.lists(key, min_size=1, max_size=3, unique=True)),
    # forget: the component of a record (by its index among the records: True) or that
    # record and some others (False);
    # then, at random, pass the forgotten identifiers or leave them to the graph to find;
    # at random, the process continues from a reopened graph
    st.tuples(st.just("forget"), st.integers(0, 99), st.booleans(), st.lists(key, max_size=2),
              st.booleans(), st.booleans()),
), min_size=6, max_size=40)


class World:
    """The writer under test, a read-only view tailing its log, and what the test knows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.g = NetworkxGraph(path, SHAREABLE)  # creates the log: a view can open it
        self.view = create_graph_view("networkx", path.parent, SHAREABLE)
        self.t = 0.0
        # record -> identifiers its rows name in plain (none erased since)
        self.carried: dict[str, set[str]] = {}
        self.erasures = 0

    def run(self, op) -> None:
        self.t += 1.0
        g, t = self.g, self.t
        if op[0] == "apply":
            _, new, edges, matches, named, generic, detached = op
            for rec, idt, _ in edges:
                self.carried.setdefault(rec, set()).add(idt)
            g.apply([(k, t) for k in new], [_edge(r, i, linked, t) for r, i, linked in edges],
                    [_match(a, b, linked, t) for a, b, linked in matches],
                    names={k: NAME[k] for k in named},
                    generic={i: "generic value: test" for i in generic},
                    detached={k: "shared mailbox record (test)" for k in detached})
        elif op[0] == "unlink":
            g.remove_link(op[1], op[2], t)
        elif op[0] == "remove":
            g.remove_records(op[1], t)
        else:
            self.forget(*op[1:])

    def forget(self, pick: int | str, whole: bool, others: list[str], pass_identifiers: bool,
               reopen: bool) -> None:
        g = self.g
        records = _records(g)
        if not records:
            return
        rec = pick if isinstance(pick, str) else records[pick % len(records)]
        pid = g.profile_of(rec)
        keys = g.records_of(pid) if whole else sorted({rec, *others} & set(_records(g)))
        carried = {i for ids in g.edges_of(keys).values() for i in ids}
        g.remove_records(keys, self.t)
        before = remaining(g)
        state_before = internal(g)
        passed = sorted(i for i in carried if (I + i) not in g._g) if pass_identifiers else []
        changed = g.erase_history(keys, passed, token)
        assert changed > 0
        self.erasures += 1
        # the writer still answers the same for everyone else
        assert remaining(g) == before
        # the IDs that vanished are exactly those founded by forgotten keys and no longer
        # live nor an alias of a live ID; every other ID stays as it was
        gone = set(state_before["meta"]) - set(g._meta)
        live, alias = state_before["live"], state_before["alias"]
        assert all(p not in live and alias.get(p) not in live for p in gone)
        assert all(state_before["meta"][p][0] in {*keys, *(ERASED + t for t in g._erased)}
                   for p in gone)
        assert {p: m[1] for p, m in state_before["meta"].items() if p not in gone} == {
            p: m[1] for p, m in g._meta.items()}
        # nothing of the person is left in the file; their tokens are
        gone_idents = {i for k in keys for i in self.carried.pop(k, ())
                       if (I + i) not in g._g}
        for carried_by_other in self.carried.values():  # their rows are all tokens now
            carried_by_other -= gone_idents
        assert_erased(self.path, keys, gone_idents)
        assert not g._log._truncate_pending and _wal_size(self.path) == 0
        # a replay of the rewritten log gives the same graph, inside and out
        again = NetworkxGraph(self.path, SHAREABLE)
        assert internal(again) == internal(g)
        assert remaining(again) == before
        self.check_view()
        if reopen:  # the next ops (and erasures) run in the process that replayed
            g.close()
            self.g = again
        else:
            again.close()

    def check_view(self) -> None:
        self.view.refresh()
        assert internal(self.view) == internal(self.g)

    def close(self) -> None:
        self.g.close()
        self.view.close()


def _records(g: NetworkxGraph) -> list[str]:
    return sorted(n[2:] for n in g._g if n.startswith(R))


def remaining(g: NetworkxGraph) -> dict:
    """What the seam answers about the graph as it is: every record's profile, every live
    profile's records, aliases and explained edges, and what each ID still in use resolves to."""
    pids = g.profile_ids()
    used = [p for p in g._meta if g._still_used(p)]
    records = _records(g)
    comps, _ = g.component_info(records, [])
    return {
        "profile_of": {r: g.profile_of(r) for r in records},
        "records": {p: g.records_of(p) for p in pids},
        "aliases": {p: g.aliases_of(p) for p in pids},
        "resolve": {p: g.resolve(p) for p in used},
        "explain": {p: g.profile_edges(p) for p in pids},
        "edges": g.edges_of(records),
        "matches": g.matches_of(records),
        "components": {r: (i.type_counts, i.known, i.names, i.emails) for r, i in comps.items()},
    }


def internal(g: NetworkxGraph) -> dict:
    """The whole state a future write depends on (component numbers aside)."""
    return {
        "meta": dict(g._meta),
        "alias": dict(g._alias),
        "children": {p: set(c) for p, c in g._alias_children.items() if c},
        "live": {p: frozenset(g._members[c]) for p, c in g._pid_cid.items()},
        "rec_seq": dict(g._rec_seq),
        "seq": g._seq,
        "nodes": dict(g._g.nodes(data=True)),
        "edges": {tuple(sorted((u, v))): d for u, v, d in g._g.edges(data=True)},
        "pins": dict(g._pins),
        "watch": set(g._watch),
        "counter_ids": set(g._counter_ids),
        "erased": set(g._erased),
        "token_founded": {t: set(p) for t, p in g._token_founded.items() if p},
    }


def _files(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in path.parent.iterdir()
            if p.name.startswith(path.name)}


def _wal_size(path: Path) -> int:
    wal = Path(str(path) + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def assert_erased(path: Path, keys: list[str], identifiers: set[str]) -> None:
    files = _files(path)
    assert set(files) >= {path.name}
    for name, data in files.items():
        for k in keys:
            # the key is also in every event ID of its rows (ev-KEY-..., m-KEY-...)
            assert k.encode() not in data, (name, k)
            assert NAME[k].encode() not in data, (name, k)
        for i in identifiers:
            assert i.encode() not in data, (name, i)
    data = files[path.name]
    for k in keys:
        assert token(k).encode() in data, k
    for i in identifiers:
        assert token(i).encode() in data, i


@settings(max_examples=200, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=OPS)
def test_replaying_an_erased_log_gives_the_same_graph(ops, tmp_path_factory):
    path = tmp_path_factory.mktemp("erase") / "graph-links.sqlite"
    world = World(path)
    try:
        for op in ops:
            world.run(op)
        world.check_view()
        final = internal(world.g)
        world.g.close()
        world.g = NetworkxGraph(path, SHAREABLE)
        assert internal(world.g) == final
    finally:
        world.close()


# fixed scenarios: each ID case the random histories hit only now and then ----------------


def _world(tmp_path: Path) -> World:
    return World(tmp_path / "graph-links.sqlite")


def test_an_id_founded_by_the_forgotten_record_stays_with_the_remaining_part(tmp_path):
    w = _world(tmp_path)
    w.run(("apply", ["s0:r00"], [("s0:r00", "email:ann@x.io", True)], [], ["s0:r00"], [], []))
    w.run(("apply", ["s1:r01"], [("s1:r01", "email:ann@x.io", True),
                                 ("s1:r01", "phone:+4911", True)], [], [], [], []))
    pid = w.g.profile_of("s1:r01")
    assert pid == profile_id_for("s0:r00", lambda _: False)
    # the founder alone is forgotten: its ID stays with s1:r01, so it is pinned
    w.run(("forget", "s0:r00", False, [], True, False))
    assert w.g.profile_of("s1:r01") == pid
    assert w.g._pins == {1 + 1: (token("s0:r00"), pid)}  # record seq 1, the ID at seq 2
    # forgetting s1:r01 too: the pin goes, nothing of the first person stays in the log
    w.run(("forget", "s1:r01", True, [], True, False))
    assert w.g._pins == {} and w.g._meta == {}
    with sqlite3.connect(w.path) as db:
        assert db.execute("SELECT count(*) FROM pinned_ids").fetchone() == (0,)
    assert pid.encode() not in _files(w.path)[w.path.name]
    w.close()


def test_a_counter_id_survives_the_erasure_of_the_id_it_counted_past(tmp_path):
    """s0:r00 is forgotten while its ID lives on with s1:r01 (pinned); the key comes back
    and gets its ID with a counter; then s1:r01 is forgotten: the first ID vanishes, and the
    counter ID must still be what a replay gives."""
    w = _world(tmp_path)
    w.run(("apply", ["s0:r00"], [("s0:r00", "email:ann@x.io", True)], [], [], [], []))
    w.run(("apply", ["s1:r01"], [("s1:r01", "email:ann@x.io", True),
                                 ("s1:r01", "phone:+4911", True)], [], [], [], []))
    first = w.g.profile_of("s0:r00")
    w.run(("forget", "s0:r00", False, [], True, False))
    w.run(("apply", ["s0:r00"], [("s0:r00", "email:bob@x.io", True)], [], [], [], []))
    again = w.g.profile_of("s0:r00")
    assert first != again == profile_id_for("s0:r00", {first}.__contains__)
    w.run(("forget", "s1:r01", True, [], True, True))  # continues from the replayed graph
    assert w.g.profile_of("s0:r00") == again
    assert first not in w.g._meta
    assert list(w.g._pins.values()) == [("s0:r00", again)]
    # the key comes back once more after its first ID vanished: that ID is fresh again
    w.run(("forget", "s0:r00", True, [], True, False))
    w.run(("apply", ["s0:r00"], [("s0:r00", "email:cy@x.io", True)], [], [], [], []))
    assert w.g.profile_of("s0:r00") == first
    w.close()


def test_a_key_forgotten_twice_is_not_the_founder_of_its_first_ids(tmp_path):
    """s0:r00 founds an ID that s1:r01 keeps when s0:r00 is forgotten; the key comes back,
    joins that profile and is detached from it: the part of s1:r01 keeps the ID (the record
    that came back did not found it). Forgotten again, its rows get the same token as the
    first time: the replay must still not take it for the founder."""
    w = _world(tmp_path)
    w.run(("apply", [], [("s0:r00", "email:ann@x.io", True), ("s1:r01", "email:ann@x.io", True)],
           [], [], [], []))
    pid = w.g.profile_of("s1:r01")
    w.run(("forget", "s0:r00", False, [], False, False))
    w.run(("apply", [], [("s0:r00", "email:ann@x.io", True)], [], [], [], ["s0:r00"]))
    assert w.g.profile_of("s1:r01") == pid != w.g.profile_of("s0:r00")
    w.run(("forget", "s0:r00", False, [], False, False))  # replays and compares
    assert w.g.profile_of("s1:r01") == pid
    w.close()


def test_records_removed_together_release_an_identifier_of_another_component(tmp_path):
    """s2:r02 links cy@, s0:r09 carries it unlinked: removed in one batch, cy@ loses its
    last edge with the second record while it still counts in the first one's component."""
    w = _world(tmp_path)
    w.run(("apply", [], [("s0:r09", "email:cy@x.io", False)], [], [], [], []))
    w.run(("apply", [], [("s2:r02", "email:cy@x.io", True)], [], [], [], []))
    w.run(("remove", ["s2:r02", "s0:r09"]))
    assert w.g.profile_ids() == [] and (I + "email:cy@x.io") not in w.g._g
    assert internal(NetworkxGraph(w.path, SHAREABLE)) == internal(w.g)
    w.close()


def test_an_alias_of_the_forgotten_profile_resolves_to_nothing(tmp_path):
    w = _world(tmp_path)
    w.run(("apply", ["s0:r00"], [("s0:r00", "email:ann@x.io", True)], [], [], [], []))
    w.run(("apply", ["s1:r01"], [("s1:r01", "email:bob@x.io", True)], [], [], [], []))
    older, younger = w.g.profile_of("s0:r00"), w.g.profile_of("s1:r01")
    w.run(("apply", [], [("s1:r01", "email:ann@x.io", True)], [], [], [], []))
    assert w.g.resolve(younger) == older
    w.run(("forget", "s0:r00", True, [], False, False))
    assert w.g.resolve(older) is None and w.g.resolve(younger) is None
    assert w.g._meta == {}
    w.close()


def test_forgotten_values_are_gone_from_the_file_bytes(tmp_path):
    """Jane: a SendGrid record keyed by her address, a calendar record whose event ID holds
    her address, a name, an identifier unlinked before the forget; a household device she
    shares with Tom stays (his record carries it), so do Tom's own values."""
    path = tmp_path / "graph-links.sqlite"
    g = NetworkxGraph(path, SHAREABLE)
    jane, cal, tom = "sendgrid:jane@example.com", "gcal:evt42", "crm:tom"
    g.apply([(jane, 1.0), (cal, 1.0), (tom, 1.0)],
            [LinkEdge(jane, "email:jane@example.com", "email", True, "deterministic:email", "",
                      "sendgrid", "sg-ev-1", 1.0),
             LinkEdge(cal, "email:jane@example.com", "email", True, "deterministic:email", "",
                      "gcal", "gcal:evt42:2024-05-01:jane@example.com", 1.0),
             LinkEdge(cal, "phone:+4915112345678", "phone", True, "deterministic:phone", "",
                      "gcal", "gcal:evt42:2024-05-01:jane@example.com", 1.0),
             LinkEdge(jane, "email:jane.old@example.com", "email", True,
                      "deterministic:email", "", "sendgrid", "sg-ev-0", 1.0),
             LinkEdge(jane, "device:household-tv", "device", True, "deterministic:device", "",
                      "sendgrid", "sg-ev-1", 1.0),
             LinkEdge(tom, "device:household-tv", "device", False, "rejected", "shared",
                      "crm", "crm-ev-tom", 1.0),
             LinkEdge(tom, "email:tom@example.com", "email", True, "deterministic:email", "",
                      "crm", "crm-ev-tom", 1.0)],
            [_match(jane, tom, False, 1.0)],
            names={jane: "jane|doe", tom: "tom|berg"})
    g.remove_link(jane, "email:jane.old@example.com", 2.0)  # before the forget: unknown to it
    view = create_graph_view("networkx", tmp_path, SHAREABLE)
    pid = g.profile_of(jane)
    g.remove_records(g.records_of(pid), 3.0)
    tom_before = g.profile_edges(g.profile_of(tom))
    # the engine passes the identifiers only the person had (not the shared device)
    changed = g.erase_history([jane, cal], ["email:jane@example.com", "phone:+4915112345678"],
                              token)
    assert changed == 12
    files = _files(path)
    assert set(files) == {path.name, path.name + "-wal", path.name + "-shm"}
    assert len(files[path.name + "-wal"]) == 0
    blob = b"".join(files.values())
    for value in ("jane@example.com", "jane.old@example.com", "+4915112345678", "jane|doe",
                  "evt42", "sg-ev-1", "sg-ev-0", pid):
        assert value.encode() not in blob, value
    for value in (jane, cal, "email:jane@example.com", "email:jane.old@example.com",
                  "phone:+4915112345678", "sg-ev-1", "gcal:evt42:2024-05-01:jane@example.com"):
        assert token(value).encode() in files[path.name], value
    for value in ("device:household-tv", "tom@example.com", "tom|berg", "crm-ev-tom"):
        assert value.encode() in files[path.name], value
    # the view replays the rewritten log from the start: no trace of Jane, Tom unchanged
    view.refresh()
    assert internal(view) == internal(g)
    assert view.profile_edges(g.profile_of(tom)) == tom_before
    assert view.identifier_evidence(["device:household-tv"])["device:household-tv"].carriers == {
        tom: "tom|berg"}
    # a second call finds nothing more
    assert g.erase_history([jane, cal], ["email:jane@example.com"], token) == 0
    with pytest.raises(ValueError, match="still in the graph"):
        g.erase_history([tom], [], token)
    view.close()
    g.close()


def test_a_reader_in_the_middle_of_a_replay_neither_blocks_nor_breaks(tmp_path):
    """A view reading the log (one snapshot, a long replay) while the writer erases: the
    writer's VACUUM goes through; truncating the WAL waits a second for the reader and is
    retried after the next write; the reader finishes its snapshot, then its next refresh
    replays the rewritten log."""
    path = tmp_path / "graph-links.sqlite"
    w = World(path)
    for i, k in enumerate(KEYS):
        w.run(("apply", [k], [(k, IDENTS[i % 4], True), (k, IDENTS[4 + i % 3], True)], [],
               [k], [], []))
    rows = w.view._log.replay(0)
    next(rows), next(rows)  # the view's replay holds its snapshot open
    w.g.remove_records(["s0:r00"], 50.0)
    started = time.perf_counter()
    assert w.g.erase_history(["s0:r00"], [], token) > 0
    assert time.perf_counter() - started < 5
    assert w.g._log._truncate_pending  # the reader still held the old frames
    assert sum(1 for _ in rows) > 10  # the reader read its snapshot to the end
    w.g.apply([("s9:r99", 51.0)], [])  # the next write truncates the WAL
    assert not w.g._log._truncate_pending and _wal_size(path) == 0
    assert_erased(path, ["s0:r00"], set())
    w.check_view()
    w.close()


def test_erasing_needs_a_writer(tmp_path):
    g = NetworkxGraph(tmp_path / "graph-links.sqlite", SHAREABLE)
    g.apply([("s0:r00", 1.0)], [])
    view = create_graph_view("networkx", tmp_path, SHAREABLE)
    from idgraph.core.errors import BackendError

    with pytest.raises(BackendError, match="read-only"):
        view.erase_history(["s0:r00"], [], token)  # type: ignore[attr-defined]
    assert isinstance(g, IdentityGraph)
    view.close()
    g.close()
