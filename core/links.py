"""The vocabulary of link decisions, shared by the resolver (which decides links) and the
identity graph (which applies them), and the two read roles the resolver needs of a graph.

Kept at the bottom so that neither the resolver nor the graph imports the other: the
resolver reads a graph only through :class:`GraphComponents` and :class:`GraphProfiles`,
which every graph backend implements (:mod:`idgraph.graph.base`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(slots=True)
class ProfileEvent:
    """One entry of a profile's merge/split history."""

    kind: str  # created | merged | split | revived
    profile_id: str
    related_ids: list[str]
    at: float  # event time of the batch's newest event that caused it
    seq: int  # graph log sequence number (orders history deterministically)
    reason: str = ""  # why, when the graph knows more than the kind (a split by a generic value)


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
    names: frozenset[str] = frozenset()
    """Name signatures (:func:`idgraph.resolver.names.name_signature`) of its records."""
    emails: frozenset[str] = frozenset()
    """Its linked email addresses (normalised values, without the ``email:`` prefix)."""


@dataclass(slots=True)
class IdentifierEvidence:
    """Who carries an identifier: what generic-value learning reads."""

    carriers: dict[str, str]
    """Record key -> name signature ("" when the record names nobody), for every record with
    an edge to the identifier, linked or not."""
    generic: str = ""
    """Why the identifier is generic (it no longer links anything), "" when it is not."""


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
    def identifier_evidence(self, identifiers: Iterable[str]) -> dict[str, IdentifierEvidence]:
        """The records carrying each identifier and its generic mark (absent if unknown)."""

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


class GraphReads(GraphComponents, GraphProfiles):
    """Everything the resolver reads of a graph: components, edges and profiles."""
