"""The identity-graph seam.

Nodes are source records (key ``SOURCE:SOURCE_RECORD_ID``) and identifiers (key
``TYPE:VALUE``). A :class:`LinkEdge` joins a record to an identifier it carried; a
:class:`MatchEdge` joins two records the probabilistic model (or a reviewer) matched and
keeps the match weight, the model version and the weight of every comparison. Every edge
keeps its provenance (rule, source, event ID, time). Only *linked* edges connect people: a profile
is a connected component of the subgraph of linked edges that contains at least one record.
An edge that is attached but not linked (a rejected link: limit, shared household device,
non-linking identifier type) keeps the identifier on the record without merging anything.

Profile IDs are stable (see :mod:`idgraph.graph.ids` for the rules): a component keeps the ID of
its oldest profile when components merge, the other IDs become aliases of it; when an
edge or record is removed and the component splits, the part holding the ID's founding
record keeps it, parts holding the founding record of one of its aliases get that alias
back, and other parts get a new ID derived from their oldest record.

Decisions about *which* edges link are the resolver's (``resolver.linking``); a graph
applies them. ``apply`` is idempotent: an edge that already exists is left as it was.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Mapping

from idgraph.core.errors import DriverErrorBoundary
from idgraph.core.links import (
    ComponentInfo,
    EdgeExplanation,
    GraphChanges,
    GraphComponents,
    GraphProfiles,
    GraphReads,
    IdentifierEvidence,
    LinkEdge,
    MatchEdge,
    ProfileEvent,
)

__all__ = [  # the seam: its roles, and the link vocabulary of core.links it speaks
    "ComponentInfo", "EdgeExplanation", "GraphChanges", "GraphComponents", "GraphExplain",
    "GraphProfiles", "GraphReads", "GraphView", "IdentifierEvidence", "IdentityGraph",
    "LinkEdge", "MatchEdge",
    "ProfileEvent",
]


class GraphExplain(ABC):
    """What Explain reads: every edge of a profile, and the path joining two identifiers."""

    @abstractmethod
    def profile_edges(self, profile_id: str) -> list[EdgeExplanation]:
        """Every edge of a live profile's records (linked or not); empty if not live."""

    @abstractmethod
    def path_between(self, identifier_a: str, identifier_b: str) -> list[EdgeExplanation] | None:
        """The shortest chain of linked edges joining two identifiers, in order from
        ``identifier_a``; None when they are not in one profile (or unknown)."""


class GraphView(GraphReads, GraphExplain):
    """A graph that is only read: what ``idgraph serve`` and other readers get. It has no
    write methods; :meth:`refresh` catches up with the writers."""

    def refresh(self) -> None:
        """Catch up with writes made by other processes: the other writers of a shared
        backend (called at the start of each writer turn) or, for a read-only view, the
        writers. A backend whose state is not held in process memory needs no catch-up:
        no-op by default."""

    @abstractmethod
    def close(self) -> None:
        """Flush and release resources."""


class IdentityGraph(GraphView, DriverErrorBoundary):
    """A durable identity graph with stable profile IDs: a view plus the writes.

    A backend implements this class once; opened read-only (:func:`idgraph.graph.create_graph_view`)
    it is typed and used as a :class:`GraphView`, and its write methods refuse.

    A backend names its driver's exception classes in ``driver_errors``: every seam method
    then raises :class:`~idgraph.core.errors.BackendError` for them, described by
    ``describe_driver_error`` (see :class:`~idgraph.core.errors.DriverErrorBoundary`)."""

    def fence(self, token: int | None) -> None:
        """Writes from now on carry the writer's fencing token (its turn number, from
        :attr:`idgraph.coordination.CatchUp.token`; None: none). A graph that writers on
        several machines share refuses (BackendError) a write whose token is older than
        one a write already carried. A graph only one machine writes, under a file lock,
        needs none: the default ignores it."""

    seam_name = "graph"

    @abstractmethod
    def apply(self, new_records: list[tuple[str, float]], edges: list[LinkEdge],
              matches: Iterable[MatchEdge] = (), names: Mapping[str, str] | None = None,
              generic: Mapping[str, str] | None = None,
              detached: Mapping[str, str] | None = None) -> GraphChanges:
        """Add records ``(record_key, event time)``, identifier edges and match edges
        durably, as one step; in the same step set record name signatures (``names``:
        record key -> signature) and mark identifiers generic (``generic``: identifier ->
        reason).

        Existing records and edges are left unchanged (idempotent; a match edge is the
        unordered pair), except that every linked edge to a newly generic identifier, and
        every linked edge of a ``detached`` record (record key -> reason: a shared mailbox's
        record), becomes attached only (rule ``rejected``, the reason), which may split the
        profile it joined.
        Every record ends in a profile; the returned changes name the profiles to
        materialise again.
        """

    @abstractmethod
    def remove_link(self, record_key: str, identifier: str, at: float) -> GraphChanges:
        """Remove one edge (unlink); the component may split."""

    def remove_record(self, record_key: str, at: float) -> GraphChanges:
        """Remove a record and its edges (forget); orphaned identifiers go too."""
        return self.remove_records([record_key], at)

    @abstractmethod
    def remove_records(self, record_keys: list[str], at: float) -> GraphChanges:
        """Remove records and their edges in one batch (a forget of a whole profile: the
        component goes at once, with no intermediate split); orphaned identifiers go too.
        Unknown keys are ignored."""

    @abstractmethod
    def erase_history(self, record_keys: Collection[str], identifiers: Collection[str],
                      token: Callable[[str], str]) -> int:
        """After :meth:`remove_records` (``record_keys``): remove the forgotten values from
        whatever history the backend keeps, so that no plain record key or identifier of
        the forgotten person remains; returns how many rows/nodes were changed.

        ``identifiers`` are the person's identifier keys no remaining record carries (one
        still carried, e.g. a shared household device, stays as it is); ``token(value)``
        gives a keyed hash token for a value (same input, same token). The names and event
        IDs of the forgotten records go too.

        Every remaining record keeps its profile, ID, aliases and explained edges, also
        after a restart. Profile IDs that vanished with the person (neither live nor an
        alias of a live ID) are forgotten as if never assigned: the graph no longer knows
        them as used, and an alias of one resolves to nothing. A record key still in the
        graph is a ValueError."""
