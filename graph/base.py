"""The identity-graph seam.

Nodes are source records (key ``SOURCE:SOURCE_RECORD_ID``) and identifiers (key
``TYPE:VALUE``). A :class:`LinkEdge` joins a record to an identifier it carried; a
:class:`MatchEdge` joins two records the probabilistic model (or a reviewer) matched and
keeps the match weight, the model version and the weight of every comparison. Every edge
keeps its provenance (rule, source, event ID, time). Only *linked* edges connect people: a profile
is a connected component of the subgraph of linked edges that contains at least one record.
An edge that is attached but not linked (a rejected link: limit, shared household device,
non-linking identifier type) keeps the identifier on the record without merging anything.

Profile IDs are stable (see :mod:`graph.ids` for the rules): a component keeps the ID of
its oldest profile when components merge, the other IDs become aliases of it; when an
edge or record is removed and the component splits, the part holding the ID's founding
record keeps it, parts holding the founding record of one of its aliases get that alias
back, and other parts get a new ID derived from their oldest record.

Decisions about *which* edges link are the resolver's (``resolver.linking``); a graph
applies them. ``apply`` is idempotent: an edge that already exists is left as it was.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar

from idgraph.errors import translate_driver_errors
from profile_store.base import ProfileEvent


@dataclass(frozen=True, slots=True)
class LinkEdge:
    """A record-identifier edge with its decision and provenance."""

    record_key: str
    identifier: str  # TYPE:VALUE
    identifier_type: str
    linked: bool
    rule: str  # e.g. "deterministic:email", "attach"
    reason: str  # why it did not link ("" when linked)
    source: str
    event_id: str
    at: float


@dataclass(frozen=True, slots=True)
class MatchEdge:
    """A record-record edge from probabilistic matching or an accepted review."""

    record_a: str
    record_b: str
    linked: bool
    rule: str  # "probabilistic:<model version>" or "review:<model version>"
    reason: str  # why it did not link ("" when linked)
    match_weight: float
    probability: float
    model_version: str
    contributions: tuple[tuple[str, str, float], ...]
    """(comparison, level label, match weight) per comparison of the model."""
    source: str
    event_id: str
    at: float


@dataclass(frozen=True, slots=True)
class EdgeExplanation:
    """One edge as Explain shows it: an identifier edge or a record-record match."""

    record_key: str
    identifier: str  # "" for a match edge
    other_record: str  # "" for an identifier edge
    linked: bool
    rule: str
    reason: str
    source: str
    event_id: str
    at: float
    match_weight: float | None = None
    probability: float | None = None
    model_version: str = ""
    contributions: tuple[tuple[str, str, float], ...] = ()


@dataclass(slots=True)
class ComponentInfo:
    """What the link planner needs to know about the component a node is in."""

    component: str  # opaque token, equal for nodes of one component
    type_counts: dict[str, int]  # distinct linked identifiers per type
    known: bool  # holds a linked identifier of a non-shareable type


@dataclass(slots=True)
class GraphChanges:
    """What one apply/removal changed, for the profile store and the change stream."""

    touched: set[str] = field(default_factory=set)
    """Live profile IDs whose records or identifiers changed (to materialise again)."""
    retired: set[str] = field(default_factory=set)
    """Profile IDs that stopped being live (absorbed by a merge)."""
    revived: set[str] = field(default_factory=set)
    """Former aliases that are live profiles again after a split."""
    history: list[ProfileEvent] = field(default_factory=list)

    def extend(self, other: GraphChanges) -> None:
        self.touched |= other.touched
        self.retired |= other.retired
        self.revived |= other.revived
        self.history.extend(other.history)


class GraphComponents(ABC):
    """What link decisions read: components and existing edges (the planner's role)."""

    @abstractmethod
    def component_info(
        self, record_keys: Iterable[str], identifiers: Iterable[str]
    ) -> tuple[dict[str, ComponentInfo], dict[str, ComponentInfo]]:
        """Components of the given records and identifiers, as two dicts keyed like the input.

        A key is absent when the node is unknown or (for an identifier) in no component,
        i.e. it has no linked edge. Nodes of one component share one ``ComponentInfo``.
        """

    @abstractmethod
    def edges_of(self, record_keys: Iterable[str]) -> dict[str, dict[str, bool]]:
        """Existing edges per record: identifier -> linked (records absent if unknown)."""

    @abstractmethod
    def matches_of(self, record_keys: Iterable[str]) -> dict[str, dict[str, bool]]:
        """Existing match edges per record: other record -> linked (absent if none)."""


class GraphProfiles(ABC):
    """What materialising profiles reads: records, live IDs and aliases."""

    @abstractmethod
    def profile_of(self, record_key: str) -> str | None:
        """Live profile ID of a record."""

    def profiles_of(self, record_keys: Iterable[str]) -> dict[str, str]:
        """Live profile ID per known record (absent if unknown), in bulk: a database
        backend answers in one round trip."""
        return {k: p for k in record_keys if (p := self.profile_of(k)) is not None}

    @abstractmethod
    def records_of(self, profile_id: str) -> list[str]:
        """Record keys of a live profile (empty if not live), oldest first."""

    @abstractmethod
    def aliases_of(self, profile_id: str) -> list[str]:
        """Former IDs that now resolve to this live profile, sorted."""

    @abstractmethod
    def resolve(self, profile_id: str) -> str | None:
        """The live profile ID for a live ID or an alias; None if unknown."""

    @abstractmethod
    def profile_ids(self) -> list[str]:
        """Every live profile ID, sorted."""


class GraphExplain(ABC):
    """What Explain reads: every edge of a profile, and the path joining two identifiers."""

    @abstractmethod
    def profile_edges(self, profile_id: str) -> list[EdgeExplanation]:
        """Every edge of a live profile's records (linked or not); empty if not live."""

    @abstractmethod
    def path_between(self, identifier_a: str, identifier_b: str) -> list[EdgeExplanation] | None:
        """The shortest chain of linked edges joining two identifiers, in order from
        ``identifier_a``; None when they are not in one profile (or unknown)."""


class GraphView(GraphComponents, GraphProfiles, GraphExplain):
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


class IdentityGraph(GraphView):
    """A durable identity graph with stable profile IDs: a view plus the writes.

    A backend implements this class once; opened read-only (:func:`graph.create_graph_view`)
    it is typed and used as a :class:`GraphView`, and its write methods refuse.

    A backend names its driver's exception classes in ``driver_errors``: every seam method
    then raises :class:`~idgraph.errors.BackendError` for them, described by
    ``describe_driver_error`` (see :func:`~idgraph.errors.translate_driver_errors`)."""

    driver_errors: ClassVar[tuple[type[BaseException], ...]] = ()

    @staticmethod
    def describe_driver_error(exc: BaseException) -> str:
        """What failed, without keys or values (default: the exception's class)."""
        return type(exc).__name__

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        translate_driver_errors(cls, "graph", _SEAM_METHODS)

    @abstractmethod
    def apply(self, new_records: list[tuple[str, float]], edges: list[LinkEdge],
              matches: Iterable[MatchEdge] = ()) -> GraphChanges:
        """Add records ``(record_key, event time)``, identifier edges and match edges
        durably, as one step.

        Existing records and edges are left unchanged (idempotent; a match edge is the
        unordered pair). Every record ends in a profile; the returned changes name the
        profiles to materialise again.
        """

    @abstractmethod
    def remove_link(self, record_key: str, identifier: str, at: float) -> GraphChanges:
        """Remove one edge (unlink); the component may split."""

    @abstractmethod
    def remove_record(self, record_key: str, at: float) -> GraphChanges:
        """Remove a record and its edges (forget); orphaned identifiers go too."""


_SEAM_METHODS = frozenset(
    name for role in IdentityGraph.__mro__
    for name, value in vars(role).items()
    if callable(value) and not name.startswith("_") and name != "describe_driver_error"
)
