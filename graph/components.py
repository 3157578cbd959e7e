"""The identity graph's components and profile IDs, in memory: the one algorithm both
graph backends run.

:class:`ComponentState` holds a graph (or, for a database backend, the part of it a write
touches: every component involved, whole) with its connected components of linked edges
and their profile IDs, and implements the ID rules of :mod:`idgraph.graph.base` and
:mod:`idgraph.graph.ids`. Components are maintained incrementally (union by size, relabelling the
smaller side), so adding a batch costs about O(edges); a removal recomputes only the
component it touched. Node keys are prefixed internally (``r|`` records, ``i|``
identifiers) so a record key can never collide with an identifier key.

The embedded backend (:mod:`idgraph.graph.networkx_backend`) keeps one state for the whole graph
and logs the ops. The Neo4j backend (:mod:`idgraph.graph.neo4j_backend`) loads the components a
write touches into a fresh state, runs the same ops and writes the difference back, so
both give the same profile IDs, aliases and history for the same inputs.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Mapping
from itertools import pairwise

import networkx as nx

from idgraph.core.links import ProfileEvent
from idgraph.graph.base import (
    ComponentInfo,
    EdgeExplanation,
    GraphChanges,
    IdentifierEvidence,
    LinkEdge,
    MatchEdge,
)
from idgraph.graph.ids import profile_id_for

R = "r|"
I = "i|"

#: One op of a write, as the link log stores it:
#: (op, rec, ident, itype, linked, rule, reason, source, event_id, at, detail). ``op`` is
#: record | edge | match | name | generic | detach | unlink | remove_record | commit; a
#: ``match`` row has the second record in ``ident`` and its detail (weight, probability,
#: model, contributions) as JSON; a ``name`` row the record's name signature in ``detail``;
#: a ``generic`` row the identifier in ``ident`` and why in ``reason``; a ``detach`` row the
#: record in ``rec`` and why in ``reason``.
LogRow = tuple


class ComponentState:
    """A graph in memory with its components, profile IDs and aliases.

    Writes go through :meth:`apply_ops`, :meth:`unlink_op` and :meth:`remove_records_op`,
    then :meth:`commit` assigns IDs to new components and hands back the changes.
    """

    def __init__(self, shareable_types: frozenset[str] = frozenset()) -> None:
        self._shareable = shareable_types
        self._g = nx.Graph()
        self._comp: dict[str, int] = {}  # node -> component id (nodes in a profile only)
        self._members: dict[int, set[str]] = {}
        self._counts: dict[int, dict[str, int]] = {}
        self._known: dict[int, bool] = {}
        self._cid_pid: dict[int, str] = {}
        self._pid_cid: dict[str, int] = {}
        self._meta: dict[str, tuple[str, int]] = {}  # every pid ever: (founding record, seq)
        self._alias: dict[str, str] = {}  # alias -> live pid (always one hop)
        self._alias_children: dict[str, set[str]] = {}
        self._rec_seq: dict[str, int] = {}
        self._seq = 0
        self._next_cid = 0
        self._pending: set[int] = set()
        self._batch_at = 0.0  # newest event time of the batch being applied (for history)
        self._changes = GraphChanges()
        self._relinked: set[tuple[str, str]] = set()  # (record, identifier) edges demoted

    # ------------------------------------------------------------------ write ops

    def apply_ops(self, new_records: list[tuple[str, float]], edges: list[LinkEdge],
                  matches: Iterable[MatchEdge] = (), names: Mapping[str, str] | None = None,
                  generic: Mapping[str, str] | None = None,
                  detached: Mapping[str, str] | None = None) -> list[LogRow]:
        """Add what is new of the records, edges and matches, set record ``names`` (record
        key -> name signature), mark ``generic`` identifiers (key -> reason; their linked
        edges stop linking and the components they joined split) and detach records
        (``detached``: record key -> reason; every linked edge of the record stops linking);
        the log rows of what changed (existing records and edges are left as they were
        otherwise). Call :meth:`commit` after."""
        rows: list[LogRow] = []
        self._batch_at = max([at for _, at in new_records] + [e.at for e in edges] + [0.0])
        for key, at in new_records:
            if self._add_record(key):
                rows.append(("record", key, None, None, None, None, None, None, None, at, None))
        for e in edges:
            if (R + e.record_key) not in self._g:
                self._add_record(e.record_key)
                rows.append(("record", e.record_key, None, None, None, None, None, None, None,
                             e.at, None))
            if self._add_edge(e.record_key, e.identifier, e.identifier_type, e.linked, e.rule,
                              e.reason, e.source, e.event_id, e.at):
                rows.append(("edge", e.record_key, e.identifier, e.identifier_type, int(e.linked),
                             e.rule, e.reason, e.source, e.event_id, e.at, None))
        for m in matches:
            for key in (m.record_a, m.record_b):
                if self._add_record(key):
                    rows.append(("record", key, None, None, None, None, None, None, None, m.at,
                                 None))
            detail = {"w": m.match_weight, "p": m.probability, "m": m.model_version,
                      "c": [list(c) for c in m.contributions]}
            if self._add_match(m.record_a, m.record_b, m.linked, m.rule, m.reason, m.source,
                               m.event_id, m.at, detail):
                rows.append(("match", m.record_a, m.record_b, "record", int(m.linked), m.rule,
                             m.reason, m.source, m.event_id, m.at, json.dumps(detail)))
        for key, sig in (names or {}).items():
            if self._set_name(key, sig):
                rows.append(("name", key, None, None, None, None, None, None, None,
                             self._batch_at, sig))
        for ident, reason in (generic or {}).items():
            if self._mark_generic(ident, reason, self._batch_at):
                rows.append(("generic", None, ident, None, None, None, reason, None, None,
                             self._batch_at, None))
        for key, reason in (detached or {}).items():
            if self._detach_record(key, reason, self._batch_at):
                rows.append(("detach", key, None, None, None, None, reason, None, None,
                             self._batch_at, None))
        return rows

    def _detach_record(self, key: str, reason: str, at: float) -> bool:
        """Every linked edge of a record (identifier or match) becomes attached only (rule
        ``rejected``, the reason); its component splits. False if unknown or nothing linked."""
        rn = R + key
        if rn not in self._g:
            return False
        demoted = self._demote_edges(rn, reason)
        if demoted:
            self._resplit(self._comp[rn], at, reason)
        return demoted

    def _demote_edges(self, node: str, reason: str) -> bool:
        """Every linked edge of ``node`` becomes attached only (rule ``rejected``, the
        reason; remembered for a database backend's write-back); whether any was linked.
        The caller recomputes the component."""
        demoted = False
        for other, d in self._g._adj[node].items():
            if d["linked"]:
                d["linked"] = False
                d["rule"] = "rejected"
                d["reason"] = reason
                self._relinked.add((node, other))
                demoted = True
        return demoted

    def _set_name(self, key: str, sig: str) -> bool:
        """Set a known record's name signature; False if unknown or unchanged."""
        node = self._g.nodes.get(R + key)
        if node is None or node.get("name", "") == sig:
            return False
        node["name"] = sig
        return True

    def _mark_generic(self, ident: str, reason: str, at: float) -> bool:
        """Mark an identifier generic: every linked edge to it becomes attached only (rule
        ``rejected``, the reason), and its component splits into what stays linked without
        it. False if the identifier is unknown or already generic."""
        inode = I + ident
        g = self._g
        if inode not in g or g.nodes[inode].get("generic"):
            return False
        g.nodes[inode]["generic"] = reason
        cid = self._comp.get(inode)
        if self._demote_edges(inode, reason) and cid is not None:
            self._resplit(cid, at, f"{reason} ({g.nodes[inode]['type']})")
        return True

    def unlink_op(self, record_key: str, identifier: str, at: float) -> bool:
        """Remove one record-identifier edge; False if there is none."""
        if not self._g.has_edge(R + record_key, I + identifier):
            return False
        self._remove_link(record_key, identifier, at)
        return True

    def remove_record_op(self, record_key: str, at: float) -> bool:
        """Remove a record, its edges and the identifiers left with no edge; False if unknown."""
        return bool(self.remove_records_op([record_key], at))

    def remove_records_op(self, record_keys: Iterable[str], at: float) -> list[str]:
        """Remove records, their edges and the identifiers left with no edge, then
        recompute each component they were in once (removing a whole component deletes
        its profile, with no split on the way); the keys removed (unknown ones skipped,
        in order, once each)."""
        removed: list[str] = []
        touched: dict[int, None] = {}  # components, in the order first met
        for key in dict.fromkeys(record_keys):
            if (R + key) in self._g:
                touched.setdefault(self._take_record(R + key), None)
                removed.append(key)
        for cid in touched:
            self._resplit(cid, at)
        return removed

    # ---------------------------------------------------------------------- reads

    def component_info(
        self, record_keys: Iterable[str], identifiers: Iterable[str]
    ) -> tuple[dict[str, ComponentInfo], dict[str, ComponentInfo]]:
        infos: dict[int, ComponentInfo] = {}

        def info(cid: int) -> ComponentInfo:
            found = infos.get(cid)
            if found is None:
                found = infos[cid] = ComponentInfo(
                    component=f"c{cid}", type_counts=dict(self._counts[cid]), known=self._known[cid]
                )
            return found

        recs = {k: info(c) for k in record_keys if (c := self._comp.get(R + k)) is not None}
        ids = {k: info(c) for k in identifiers if (c := self._comp.get(I + k)) is not None}
        nodes = self._g.nodes
        for cid, found in infos.items():
            members = self._members[cid]
            found.names = frozenset(
                sig for n in members if n[0] == "r" and (sig := nodes[n].get("name")))
            found.emails = frozenset(n[8:] for n in members if n.startswith("i|email:"))
        return recs, ids

    def identifier_evidence(self, identifiers: Iterable[str]) -> dict[str, IdentifierEvidence]:
        out: dict[str, IdentifierEvidence] = {}
        g = self._g
        nodes = g.nodes
        for k in identifiers:
            inode = I + k
            if inode in g:
                out[k] = IdentifierEvidence(
                    carriers={rn[2:]: nodes[rn].get("name", "") for rn in g._adj[inode]},
                    generic=nodes[inode].get("generic", ""))
        return out

    def edges_of(self, record_keys: Iterable[str]) -> dict[str, dict[str, bool]]:
        return self._neighbours(record_keys, "i", keep_empty=True)

    def matches_of(self, record_keys: Iterable[str]) -> dict[str, dict[str, bool]]:
        return self._neighbours(record_keys, "r", keep_empty=False)

    def _neighbours(self, record_keys: Iterable[str], kind: str,
                    keep_empty: bool) -> dict[str, dict[str, bool]]:
        """Per known record: neighbour key -> linked, for neighbours of ``kind`` (``i``
        identifiers, ``r`` records)."""
        out: dict[str, dict[str, bool]] = {}
        # the raw adjacency dict (networkx's documented ``G._adj``): the public views wrap
        # every access in Python-level Mapping calls, measurable on the ingest hot path
        adj = self._g._adj
        for k in record_keys:
            nbrs = adj.get(R + k)
            if nbrs is not None:
                found = {n[2:]: d["linked"] for n, d in nbrs.items() if n[0] == kind}
                if found or keep_empty:
                    out[k] = found
        return out

    def profile_of(self, record_key: str) -> str | None:
        cid = self._comp.get(R + record_key)
        return None if cid is None else self._cid_pid.get(cid)

    def records_of(self, profile_id: str) -> list[str]:
        cid = self._pid_cid.get(profile_id)
        if cid is None:
            return []
        recs = [n for n in self._members[cid] if n.startswith(R)]
        recs.sort(key=self._rec_seq.__getitem__)
        return [n[2:] for n in recs]

    def aliases_of(self, profile_id: str) -> list[str]:
        return sorted(self._alias_children.get(profile_id, ()))

    def resolve(self, profile_id: str) -> str | None:
        if profile_id in self._pid_cid:
            return profile_id
        return self._alias.get(profile_id)

    def profile_ids(self) -> list[str]:
        return sorted(self._pid_cid)

    def profile_edges(self, profile_id: str) -> list[EdgeExplanation]:
        cid = self._pid_cid.get(profile_id)
        if cid is None:
            return []
        out = []
        adj = self._g._adj
        for node in sorted(n for n in self._members[cid] if n[0] == "r"):
            for other, d in sorted(adj[node].items()):
                if other[0] == "r" and other < node and self._comp.get(other) == cid:
                    continue  # a match edge inside the profile, listed once from its lower end
                out.append(self._explain(node, other, d))
        return out

    def path_between(self, identifier_a: str, identifier_b: str) -> list[EdgeExplanation] | None:
        a, b = I + identifier_a, I + identifier_b
        cid = self._comp.get(a)
        if cid is None or self._comp.get(b) != cid:
            return None
        if a == b:
            return []
        adj = self._g._adj
        prev: dict[str, str] = {a: a}
        queue = deque([a])
        while queue:
            n = queue.popleft()
            if n == b:
                break
            for m, d in adj[n].items():
                if d["linked"] and m not in prev:
                    prev[m] = n
                    queue.append(m)
        nodes = [b]
        while nodes[-1] != a:
            nodes.append(prev[nodes[-1]])
        nodes.reverse()
        return [self._explain(u, v, adj[u][v]) for u, v in pairwise(nodes)]

    @staticmethod
    def _explain(u: str, v: str, d: dict) -> EdgeExplanation:
        if u[0] == "r" and v[0] == "r":
            detail = d.get("detail") or {}
            return EdgeExplanation(
                record_key=u[2:], identifier="", other_record=v[2:], linked=d["linked"],
                rule=d["rule"], reason=d["reason"], source=d["source"],
                event_id=d["event_id"], at=d["at"], match_weight=detail.get("w"),
                probability=detail.get("p"), model_version=detail.get("m", ""),
                contributions=tuple((c, lbl, w) for c, lbl, w in detail.get("c", ())),
            )
        rec, ident = (u, v) if u[0] == "r" else (v, u)
        return EdgeExplanation(
            record_key=rec[2:], identifier=ident[2:], other_record="", linked=d["linked"],
            rule=d["rule"], reason=d["reason"], source=d["source"], event_id=d["event_id"],
            at=d["at"])

    # ---------------------------------------------------------------- internals

    def _is_shareable(self, itype: str) -> bool:
        return itype in self._shareable or itype.split(":", 1)[0] in self._shareable

    def _new_component(self, nodes: set[str]) -> int:
        cid = self._next_cid
        self._next_cid += 1
        self._members[cid] = nodes
        counts: dict[str, int] = {}
        known = False
        nodes_data = self._g.nodes
        for n in nodes:
            self._comp[n] = cid
            if n.startswith(I):
                t = nodes_data[n]["type"]
                counts[t] = counts.get(t, 0) + 1
                known = known or not self._is_shareable(t)
        self._counts[cid] = counts
        self._known[cid] = known
        self._pending.add(cid)
        return cid

    def _drop_component(self, cid: int) -> None:
        del self._members[cid], self._counts[cid], self._known[cid]
        pid = self._cid_pid.pop(cid, None)
        if pid is not None:
            del self._pid_cid[pid]
        self._pending.discard(cid)

    def _add_record(self, key: str) -> bool:
        node = R + key
        if node in self._g:
            return False
        self._seq += 1
        self._g.add_node(node)
        self._rec_seq[node] = self._seq
        self._new_component({node})
        return True

    def _add_edge(self, rec: str, ident: str, itype: str, linked: bool, rule: str, reason: str,
                  source: str, event_id: str, at: float) -> bool:
        rn, inode = R + rec, I + ident
        g = self._g
        if g.has_edge(rn, inode):
            return False
        if inode not in g:
            g.add_node(inode, type=itype)
        g.add_edge(rn, inode, linked=linked, rule=rule, reason=reason, source=source,
                   event_id=event_id, at=at)
        if not linked:
            return True
        rc = self._comp[rn]
        ic = self._comp.get(inode)
        if ic is None:
            self._members[rc].add(inode)
            self._comp[inode] = rc
            rcounts = self._counts[rc]
            rcounts[itype] = rcounts.get(itype, 0) + 1
            if not self._is_shareable(itype):
                self._known[rc] = True
            self._pending.add(rc)
        elif ic != rc:
            self._union(rc, ic, at)
        return True

    def _add_match(self, rec_a: str, rec_b: str, linked: bool, rule: str, reason: str,
                   source: str, event_id: str, at: float, detail: dict) -> bool:
        an, bn = R + rec_a, R + rec_b
        g = self._g
        if an == bn or g.has_edge(an, bn):
            return False
        g.add_edge(an, bn, linked=linked, rule=rule, reason=reason, source=source,
                   event_id=event_id, at=at, detail=detail)
        if linked:
            ca, cb = self._comp[an], self._comp[bn]
            if ca != cb:
                self._union(ca, cb, at)
            else:
                self._pending.add(ca)
        return True

    def _union(self, a: int, b: int, at: float) -> int:
        if len(self._members[a]) < len(self._members[b]):
            a, b = b, a  # a keeps its cid (the larger side); b's nodes move
        moved = self._members[b]
        for n in moved:
            self._comp[n] = a
        self._members[a] |= moved
        ca = self._counts[a]
        for t, n in self._counts[b].items():
            ca[t] = ca.get(t, 0) + n
        self._known[a] = self._known[a] or self._known[b]
        pa, pb = self._cid_pid.get(a), self._cid_pid.get(b)
        self._drop_component(b)
        survivor = pa or pb
        if pa and pb:
            survivor, absorbed = sorted((pa, pb), key=lambda p: self._meta[p][1])
            self._pid_cid.pop(absorbed, None)
            self._make_alias(absorbed, survivor)
            self._changes.retired.add(absorbed)
            self._changes.touched.discard(absorbed)
            self._changes.history.append(ProfileEvent("merged", survivor, [absorbed], at, self._seq))
        if survivor:
            self._cid_pid[a] = survivor
            self._pid_cid[survivor] = a
        self._pending.add(a)
        return a

    def _make_alias(self, alias: str, target: str) -> None:
        children = self._alias_children.pop(alias, set())
        children.add(alias)
        for c in children:
            self._alias[c] = target
        self._alias_children.setdefault(target, set()).update(children)

    def _is_used(self, pid: str) -> bool:
        return pid in self._meta

    def _new_profile_id(self, founding: str) -> str:
        """The ID of a new profile founded by record ``founding`` (:mod:`idgraph.graph.ids`).
        The embedded backend overrides it to give, replaying an erased history, the IDs it
        pinned (see :meth:`idgraph.graph.networkx_backend.NetworkxGraph.erase_history`)."""
        return profile_id_for(founding, self._is_used)

    def _still_used(self, pid: str) -> bool:
        """True for a live profile ID or an alias of one (what a caller can still resolve)."""
        return pid in self._pid_cid or self._alias.get(pid) in self._pid_cid

    def _forget_ids(self, pids: Iterable[str]) -> None:
        """Drop profile IDs that are neither live nor aliases of a live ID (those of an
        erased person, see ``erase_history``) as if they had never been assigned: they are
        no longer used (a new profile may be given one again), an alias of one resolves to
        nothing any more."""
        for pid in pids:
            del self._meta[pid]
            parent = self._alias.pop(pid, None)
            if parent is not None:
                siblings = self._alias_children.get(parent)
                if siblings is not None:
                    siblings.discard(pid)
                    if not siblings:
                        del self._alias_children[parent]
            for child in self._alias_children.pop(pid, ()):
                self._alias.pop(child, None)

    def _oldest_record(self, nodes: Iterable[str]) -> str:
        return min((n for n in nodes if n.startswith(R)), key=self._rec_seq.__getitem__)

    def commit(self) -> GraphChanges:
        """End of a batch: give every new component an ID; hand back what changed."""
        for cid in sorted(self._pending):
            if cid not in self._members:
                continue
            pid = self._cid_pid.get(cid)
            if pid is None:
                founding = self._oldest_record(self._members[cid])
                pid = self._new_profile_id(founding[2:])
                self._seq += 1
                self._meta[pid] = (founding[2:], self._seq)
                self._cid_pid[cid] = pid
                self._pid_cid[pid] = cid
                self._changes.history.append(ProfileEvent("created", pid, [], self._batch_at, self._seq))
            self._changes.touched.add(pid)
        self._pending.clear()
        changes, self._changes = self._changes, GraphChanges()
        changes.touched -= changes.retired
        return changes

    # removals -------------------------------------------------------------------

    def _remove_link(self, rec: str, ident: str, at: float) -> None:
        rn, inode = R + rec, I + ident
        linked = self._g.edges[rn, inode]["linked"]
        self._g.remove_edge(rn, inode)
        cid = self._comp[rn]
        if self._g.degree(inode) == 0:
            self._g.remove_node(inode)
            if self._comp.pop(inode, None) is not None:
                self._members[cid].discard(inode)
        if linked:
            self._resplit(cid, at)
        else:
            self._pending.add(cid)

    def _remove_record(self, rec: str, at: float) -> None:
        self._resplit(self._take_record(R + rec), at)

    def _take_record(self, rn: str) -> int:
        """Remove a record node, its edges and the identifiers left with no edge; the
        component it was in (to recompute)."""
        cid = self._comp[rn]
        nbrs = list(self._g.adj[rn])
        self._g.remove_node(rn)
        del self._comp[rn], self._rec_seq[rn]
        self._members[cid].discard(rn)
        for inode in nbrs:
            if inode[0] == "i" and self._g.degree(inode) == 0:
                self._g.remove_node(inode)
                # its component: the record's, or (in a batch) that of a record removed
                # before, still to be recomputed
                icid = self._comp.pop(inode, None)
                if icid is not None:
                    self._members[icid].discard(inode)
        return cid

    def _linked_parts(self, nodes: set[str]) -> list[set[str]]:
        adj = self._g.adj
        seen: set[str] = set()
        parts: list[set[str]] = []
        for start in nodes:
            if start in seen:
                continue
            part = {start}
            stack = [start]
            seen.add(start)
            while stack:
                n = stack.pop()
                for m, d in adj[n].items():
                    if d["linked"] and m not in seen:
                        seen.add(m)
                        part.add(m)
                        stack.append(m)
            parts.append(part)
        return parts

    def _resplit(self, cid: int, at: float, reason: str = "") -> None:
        """Recompute the component ``cid`` after a removal (or demotion: ``reason``) and
        assign IDs to its parts."""
        pid = self._cid_pid.get(cid)
        parts = self._linked_parts(self._members[cid])
        with_records = [p for p in parts if any(n.startswith(R) for n in p)]
        self._drop_component(cid)
        for p in parts:
            if p not in with_records:
                for n in p:
                    self._comp.pop(n, None)
        # parts in the order of their oldest record: a set's order follows the string hashes
        # of its members, which differ between processes (and for an erased key's token)
        with_records.sort(key=lambda p: self._rec_seq[self._oldest_record(p)])
        if pid is None:
            for p in with_records:
                self._new_component(p)
            return
        if not with_records:
            self._changes.retired.add(pid)
            self._changes.history.append(ProfileEvent("deleted", pid, [], at, self._seq))
            return
        founding = R + self._meta[pid][0]
        keeper = next((p for p in with_records if founding in p), with_records[0])
        assigned: list[tuple[set[str], str]] = [(keeper, pid)]
        aliases = sorted(self._alias_children.get(pid, ()), key=lambda a: self._meta[a][1])
        new_ids: list[str] = []
        for part in with_records:
            if part is keeper:
                continue
            revived = next((a for a in aliases if R + self._meta[a][0] in part), None)
            if revived is not None:
                aliases.remove(revived)
                self._alias_children[pid].discard(revived)
                del self._alias[revived]
                self._changes.revived.add(revived)
                self._changes.retired.discard(revived)
                part_pid = revived
            else:
                founding_rec = self._oldest_record(part)[2:]
                part_pid = self._new_profile_id(founding_rec)
                self._seq += 1
                self._meta[part_pid] = (founding_rec, self._seq)
            assigned.append((part, part_pid))
            new_ids.append(part_pid)
        # an alias resolves to the part holding its founding record (else stays with pid)
        owner = {n: p for part, p in assigned for n in part if n.startswith(R)}
        for a in aliases:
            target = owner.get(R + self._meta[a][0], pid)
            if target != pid:
                self._alias_children[pid].discard(a)
                self._alias[a] = target
                self._alias_children.setdefault(target, set()).add(a)
        for part, part_pid in assigned:
            new_cid = self._new_component(part)
            self._cid_pid[new_cid] = part_pid
            self._pid_cid[part_pid] = new_cid
        if new_ids:
            self._changes.history.append(
                ProfileEvent("split", pid, new_ids, at, self._seq, reason))
