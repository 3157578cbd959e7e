"""Coordination seams: the state writers share besides the graph and the store.

Three concerns, each one small interface with a local backend of today (files in the data
dir, :mod:`idgraph.coordination.local`) and room for a distributed one, so that writers on several
machines can share nothing but Kafka, Neo4j and Cassandra:

* :class:`WriterCoordination`: who writes now, and what the others wrote since this
  writer's last turn (the turn feed);
* :class:`ReviewQueue`: record pairs the model scored between the two thresholds, and the
  decisions people took on them;
* :class:`ModelRegistry`: the trained models, by version.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from idgraph.core.errors import IdGraphError
from idgraph.resolver.probabilistic.training import TrainingReport

STATUSES = ("open", "accepted", "rejected", "applied")
"""Review statuses: ``open`` -> ``accepted`` -> ``applied``; ``open`` -> ``rejected``."""


# ------------------------------------------------------------------ writer coordination


@dataclass(slots=True)
class CatchUp:
    """What other writers did since this writer's previous turn."""

    foreign_turns: int = 0
    """Turns of other writers (0: this writer's view is current)."""
    record_keys: set[str] | None = None
    """Records they wrote; None when unknown (pruned feed, first turn after a crash)."""
    crashed: bool = False
    """A turn was left open: its writer died inside it, so the store may lag the graph."""
    token: int | None = None
    """The turn's fencing token (its number; newer turns have larger ones), which the
    writer hands to the store and graph it writes so they refuse it once a newer turn
    wrote (:meth:`idgraph.profile_store.ProfileStore.fence`); None from turns that need
    no fence (one machine's file lock)."""


@dataclass(frozen=True, slots=True)
class TurnStatus:
    """What a writer's turns look like now (for its metrics)."""

    holding: bool = False
    """This writer holds the turn."""
    turn: int = 0
    """The number (fencing token) of this writer's last turn; 0 when the backend numbers
    none."""
    renewals: int = 0
    """Lease renewals so far (a backend with a lease)."""
    lost: int = 0
    """Turns whose lease another writer took while this one held it (it stalled)."""


class WriterCoordination(ABC):
    """Mutual exclusion and a change feed for the writers of one deployment.

    One writer holds the turn at a time, from its catch-up to the end of its store write.
    """

    @abstractmethod
    def begin(self) -> CatchUp:
        """Wait for the turn (raises BackendError after the configured wait), open it, and
        say what other writers did since this writer's last turn (and the turn's fencing
        token, where the backend gives one)."""

    @abstractmethod
    def end(self, record_keys: Mapping[str, str]) -> None:
        """Close the open turn with the keys of the records it wrote or deleted, each with
        the home region it was written in (or deleted from; "" when unknown: a backend
        that keeps keys per region then tells the readers the keys are unknown); release
        the turn."""

    @abstractmethod
    def abort(self) -> None:
        """Release the turn leaving it open: the next turn (of any writer, this one
        included) treats it as a crash and reconciles."""

    @abstractmethod
    def close(self) -> None:
        """Release the turn if held, and every resource."""

    def status(self) -> TurnStatus:
        """This writer's turns now (safe from another thread: for metrics)."""
        return TurnStatus()

    @abstractmethod
    def erase(self, record_keys: Iterable[str]) -> int:
        """Remove the given record keys from every turn of the feed (a forget: the keys
        are personal data) and make the current turn tell the other writers to rebuild
        their caches instead of naming the keys; returns how many turns were rewritten.
        Call it inside a turn."""


# ------------------------------------------------------------------------- reviews


class ReviewStateError(IdGraphError):
    """A decision that the review's current status does not allow."""

    status = "FAILED_PRECONDITION"


@dataclass(frozen=True, slots=True)
class Review:
    """One pair awaiting (or having had) a decision."""

    review_id: str
    record_a: str
    record_b: str
    match_weight: float
    probability: float
    model_version: str
    contributions: tuple[tuple[str, str, float], ...]
    status: str
    created_at: float
    decided_at: float | None
    decided_by: str
    note: str
    region_a: str = ""
    region_b: str = ""
    """Home regions of the profiles of ``record_a`` and ``record_b`` when the pair was
    queued; "" when unknown (queued before regions were recorded, or the record was not
    stored). A server shows a review only when both records are in its regions."""


def may_be_in(review: Review, regions: Collection[str] | None) -> bool:
    """Whether ``review`` may concern only records of ``regions`` (None: every region):
    each recorded region is one of them or unknown (""). Records move between regions
    after a review is queued, so a caller serving some regions also checks the records
    against its store."""
    if regions is None:
        return True
    return all(r == "" or r in regions for r in (review.region_a, review.region_b))


def review_id_for(record_a: str, record_b: str) -> str:
    a, b = sorted((record_a, record_b))
    digest = hashlib.sha256(f"{a}\x00{b}".encode()).hexdigest()[:20]
    return "rv_" + digest




class ReviewQueue(ABC):
    """Durable queue of pairs awaiting a decision.

    ``accept`` and ``reject`` only record the decision; a writer applies accepted pairs to
    the graph at its next turn. Review IDs are deterministic (:func:`review_id_for`), so
    proposing the same pair twice keeps one entry; a rejected pair is never proposed again.

    Residency: each review keeps the home regions of its two records
    (:attr:`Review.region_a`, :attr:`Review.region_b`). ``regions`` on the reads and on
    :meth:`decide` restricts them to reviews that :func:`may_be_in` those regions (None:
    every review); a review outside them is not found, as if it did not exist.
    """

    @abstractmethod
    def propose(self, items: Iterable[tuple[str, str, float, float, str,
                                            tuple[tuple[str, str, float], ...]]],
                regions: Mapping[str, str] | None = None) -> int:
        """Queue ``(record_a, record_b, weight, probability, model, contributions)`` pairs
        with the home regions of their records (``regions``: record key -> region; a key
        absent is unknown, ""); pairs already queued or decided are left as they are.
        Returns how many were new."""

    @abstractmethod
    def get(self, review_id: str, regions: Collection[str] | None = None) -> Review:
        """One review; NotFoundError when unknown or not in ``regions``."""

    @abstractmethod
    def list(self, status: str = "open", limit: int = 100, after: str = "",
             regions: Collection[str] | None = None) -> list[Review]:
        """Reviews with ``status`` (``all`` for every status) that may be in ``regions``,
        oldest first, paged by ``after`` (the last review ID of the previous page); at
        most 1,000."""

    @abstractmethod
    def decide(self, review_id: str, accept: bool, decided_by: str = "", note: str = "",
               regions: Collection[str] | None = None) -> Review:
        """Record a decision on an open review (NotFoundError when unknown or not in
        ``regions``). Deciding again the same way is a no-op; reversing a decision is
        refused (:class:`ReviewStateError`)."""

    @abstractmethod
    def mark_applied(self, review_ids: Iterable[str]) -> None:
        """Accepted reviews a writer has applied to the graph."""

    @abstractmethod
    def decided_pairs(self) -> set[tuple[str, str]]:
        """Every pair with a decision or awaiting one (sorted tuples): never proposed again."""

    @abstractmethod
    def erase_records(self, record_keys: Iterable[str]) -> int:
        """Remove every review naming one of ``record_keys`` (a forget); returns how many.
        The pairs are then not "decided" any more: the records are gone."""

    @abstractmethod
    def counts(self) -> dict[str, int]:
        """Reviews per status (every status present)."""

    @abstractmethod
    def close(self) -> None:
        """Release resources."""


# -------------------------------------------------------------------------- models


class ModelRegistry(ABC):
    """Trained models by version (``v0001``, ``v0002``...): versions only grow, and a saved
    version is never rewritten. Each model is Splink's JSON as ``save_model_to_json``
    writes it."""

    @abstractmethod
    def versions(self) -> list[str]:
        """Saved versions, oldest first."""

    def latest(self) -> str | None:
        """The newest version, or None before the first is saved."""
        versions = self.versions()
        return versions[-1] if versions else None

    @abstractmethod
    def save(self, model: dict, report: TrainingReport, trained_on: str) -> str:
        """Store a new version; returns its name."""

    @abstractmethod
    def load(self, version: str | None = None) -> tuple[str, dict]:
        """``(version, model dict)``; the newest when ``version`` is None. NotFoundError
        when there is none, or not that one."""

    @abstractmethod
    def report(self, version: str) -> dict:
        """The training report of a version ({} when it has none)."""

    def close(self) -> None:
        """Release resources (a connection); nothing for a registry of files."""
