"""Explain: why records and identifiers are one profile (the read side of every link).

For a profile, :meth:`Explainer.profile` lists every edge of its records: identifier edges
with the deterministic rule (or why they did not link) and record-record match edges with
their match weight, probability, model version and the weight of each comparison. For two
identifiers, :meth:`Explainer.between` returns the shortest chain of linked edges that
joins them, edge by edge with the same reasons.

Residency holds as for lookups: only profiles in the served regions are explained (the
store answers which profile an identifier or ID is, the graph answers why), and every edge
returned names only records stored in the served regions. The identity graph is global: a
profile's records can have unlinked match edges (a refused probabilistic match) to records
of other profiles, which may live in another region. Such an edge is **dropped**, not
redacted: an edge with its other record blanked would read as an identifier edge, and its
rule, weights and event ID describe the other person too. So a profile's listing on a
server that does not serve every region may lack edges that a server of every region shows
(only unlinked ones: a linked edge never leaves its profile). For the same reason a chain
between two identifiers that would pass a record the store does not serve here (the graph
is ahead of the store while a profile moves to another region) is answered as not joined.

The graph view is refreshed before each answer, so a server process sees the writer's links.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from idgraph.core.errors import InvalidIdentifierError, NotFoundError
from idgraph.engine.queries import ProfileQueries
from idgraph.graph.base import EdgeExplanation, GraphView


def _record_keys(edges: Iterable[EdgeExplanation]) -> set[str]:
    keys: set[str] = set()
    for e in edges:
        keys.add(e.record_key)
        if e.other_record:
            keys.add(e.other_record)
    return keys


@dataclass(slots=True)
class Explanation:
    profile_id: str
    edges: list[EdgeExplanation] = field(default_factory=list)
    joined: bool = True
    """For two identifiers: whether they are in one profile (``edges`` is then the path)."""
    other_profile_id: str = ""
    """For two identifiers in different profiles: the second one's profile."""


class Explainer:
    """Explain queries over a graph view and the store's residency-checked reads."""

    def __init__(self, graph: GraphView, queries: ProfileQueries) -> None:
        self._graph = graph
        self._queries = queries
        self._lock = threading.Lock()  # the view's refresh mutates it

    def _served(self, record_keys: set[str]) -> set[str]:
        """The keys of records stored in the served regions (the store reads no others)."""
        return set(self._queries.store.get_records(record_keys)) if record_keys else set()

    def profile(self, profile_id: str) -> Explanation:
        """Every edge of a live profile (an alias resolves to its live profile) whose
        records are all stored in the served regions: an unlinked match edge to a record
        of another region is dropped (module docstring)."""
        profile_id = (profile_id or "").strip()
        if not profile_id:
            raise InvalidIdentifierError("profile_id is empty")
        live = self._queries.profile(profile_id).profile_id  # NotFound outside served regions
        with self._lock:
            self._graph.refresh()
            edges = self._graph.profile_edges(live)
        if not edges:
            raise NotFoundError("no profile with this ID in the identity graph")
        served = self._served(_record_keys(edges))
        return Explanation(live, [e for e in edges if e.record_key in served
                                  and (not e.other_record or e.other_record in served)])

    def between(self, identifier_a: str, identifier_b: str) -> Explanation:
        """The chain of linked edges joining two identifiers, or ``joined=False`` (also
        when the chain names a record not stored in the served regions)."""
        a = self._queries.locate(identifier_a)
        b = self._queries.locate(identifier_b)
        if a.profile_id != b.profile_id:
            return Explanation(a.profile_id, [], joined=False, other_profile_id=b.profile_id)
        with self._lock:
            self._graph.refresh()
            path = self._graph.path_between(a.identifier, b.identifier)
        keys = _record_keys(path or ())
        if path is None or keys - self._served(keys):
            # the store's view is newer than the graph's (or older: a record the store does
            # not serve here), or the identifier is attached without being linked (a shared
            # household device)
            return Explanation(a.profile_id, [], joined=False, other_profile_id=b.profile_id)
        return Explanation(a.profile_id, path)
