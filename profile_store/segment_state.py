"""The segment part of the profile-store seam: definitions, memberships, their change log.

What a store keeps for segments, in both backends:

* **Definitions** (:class:`SegmentDefinition`), versioned: every define or delete adds a
  version (author, time, canonical text and JSON), old versions are kept (``show`` diffs
  them). Definitions hold no personal data and are not partitioned by region. A
  *catalog version* counts every change of any definition; :meth:`SegmentCatalog.define`
  and :meth:`SegmentCatalog.delete` take the catalog version the caller validated against
  and refuse (:class:`CatalogChangedError`) when another change landed meanwhile, so two
  definers cannot together make an ``in_segment`` loop.
* **Memberships** (:class:`Membership`): where one profile stands with one segment. A row
  exists while the profile is a member *or* the answer has a pending deadline
  (``next_change``: a member leaving a 30-day window, a non-member whose renewal date comes
  within 7 days). Rows live in the profile's home region and are written in the same atomic
  batch as the profile change that decided them (:class:`~idgraph.profile_store.base.StoreBatch`
  ``memberships`` / ``removed_memberships``).
* **The change log** (:class:`SegmentChange`): every entered/exited, in commit order per
  region, retained ``segments.log_retention_hours``; ``WatchSegment`` tails it with a
  cursor. The same changes go to the outbox (``segment-changes`` topic) when the writer
  publishes changes.
* **Builds** (:class:`SegmentBuild`): the progress of evaluating a new or edited definition
  over every stored profile, per region.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from idgraph.core.errors import IdGraphError, NotFoundError

ENTERED = "entered"
EXITED = "exited"

CAUSES = ("event", "attribute", "time", "merge", "split", "consent", "definition", "forget")
"""Why a membership changed (:attr:`SegmentChange.cause`)."""


class CatalogChangedError(IdGraphError):
    """Another definition change landed after the caller read the catalog: read again."""

    status = "ABORTED"


@dataclass(slots=True)
class SegmentDefinition:
    """One version of a segment's definition."""

    name: str
    version: int
    definition: str
    """Canonical JSON (:func:`idgraph.segments.to_json`); empty for a deletion."""
    text: str
    """Canonical text (:func:`idgraph.segments.to_text`); empty for a deletion."""
    author: str
    defined_at: float
    description: str = ""
    deleted: bool = False
    """This version deleted the segment (its memberships end)."""


@dataclass(slots=True)
class Membership:
    """Where ``profile_id`` stands with ``segment`` after the evaluation of definition
    ``version``: ``member``, since when (``since``, the event time or wall-clock time of
    the change that made it so), the clauses that matched, and ``next_change`` (POSIX
    seconds; 0 when only new data can change the answer)."""

    segment: str
    profile_id: str
    region: str
    version: int
    member: bool
    since: float
    clauses: list[str] = field(default_factory=list)
    next_change: float = 0.0


@dataclass(slots=True)
class SegmentChange:
    """One profile entering or leaving one segment (what ``segment-changes`` carries):
    IDs, segment name, clauses and cause; never attribute or identifier values beyond
    what the definition itself says."""

    profile_id: str
    segment: str
    version: int
    change: str
    """:data:`ENTERED` or :data:`EXITED`."""
    at: float
    """When: event time of the batch that caused it, or the deadline that passed."""
    cause: str
    """One of :data:`CAUSES`."""
    clauses: list[str]
    """The clauses that matched (entered), or that had matched before (exited)."""
    region: str
    change_id: str = ""
    """Unique and stable per change (its idempotent key); set by the store."""

    @property
    def key(self) -> str:
        """Idempotent key: the same profile, segment, version, change and time."""
        return f"{self.segment}|{self.profile_id}|{self.version}|{self.change}|{self.at!r}"


@dataclass(slots=True)
class SegmentBuild:
    """Progress of evaluating ``segment`` version ``version`` over every stored profile
    of ``region``."""

    region: str
    segment: str
    version: int
    """The definition version evaluated; -1 for a deleted segment's teardown."""
    evaluated: int = 0
    total: int = 0
    after: str = ""
    """The last profile ID done, in :meth:`SegmentReader.profile_ids_after`'s order."""
    started_at: float = 0.0
    finished_at: float = 0.0

    @property
    def done(self) -> bool:
        return self.finished_at > 0


class SegmentReader(ABC):
    """Reads of segment definitions, memberships, the change log and builds."""

    @abstractmethod
    def segment_catalog(self) -> tuple[int, dict[str, SegmentDefinition]]:
        """The catalog version and the live (not deleted) definitions by name."""

    @abstractmethod
    def segment_versions(self, name: str) -> list[SegmentDefinition]:
        """Every version of ``name``, oldest first (empty when never defined)."""

    @abstractmethod
    def memberships(self, profile_ids: Iterable[str]) -> dict[str, list[Membership]]:
        """Membership rows of the given profile IDs (served regions), by profile ID."""

    @abstractmethod
    def segment_members(self, segment: str, after: str = "", limit: int = 1000
                        ) -> list[Membership]:
        """Members of ``segment`` in served regions with a profile ID above ``after``, in
        profile ID order, at most ``limit``."""

    @abstractmethod
    def count_segment(self, segment: str) -> dict[str, int]:
        """Members of ``segment`` per served region (regions with none are absent)."""

    @abstractmethod
    def due_memberships(self, now: float, limit: int) -> list[Membership]:
        """Rows of served regions whose ``next_change`` is due (0 < next_change <= now),
        earliest first."""

    @abstractmethod
    def segment_log_position(self) -> str:
        """A cursor at the end of the change log now (what a new watcher starts from)."""

    @abstractmethod
    def segment_changes_after(self, cursor: str, limit: int
                              ) -> tuple[list[SegmentChange], str]:
        """Logged changes of served regions after ``cursor`` (``""``: from the oldest kept;
        oldest first, at most ``limit``) and the cursor after them. Raises ``ValueError``
        for a cursor this store did not give. A change's ``change_id`` here is the log's;
        the same change in the outbox has another one (:attr:`SegmentChange.key` is the
        same everywhere)."""

    @abstractmethod
    def segment_log(self, since: float = 0.0, *, segment: str = "", profile_id: str = ""
                    ) -> Iterator[tuple[float, SegmentChange]]:
        """The logged changes of served regions logged at or after ``since`` (POSIX
        seconds, the wall clock of the writer that logged them), each with the time it
        was logged, oldest first (log order); only those of ``segment`` and of
        ``profile_id`` when given. The same changes, with the same ``change_id``, as
        :meth:`segment_changes_after` gives: what a segment's activity and a profile's
        history read (their times are when memberships changed in the store, not the
        event times of :attr:`SegmentChange.at`). Lazy: rows are read as the iterator is
        consumed, so the first item is the oldest change the log holds."""

    @abstractmethod
    def profile_ids_after(self, region: str, after: str, limit: int) -> list[str]:
        """Live profile IDs of a served ``region`` after ``after`` (``""``: from the first)
        in a stable order of the backend's (SQLite: by ID; Cassandra: by token), at most
        ``limit`` (what a build walks through; ``after`` is the last ID it was given)."""

    @abstractmethod
    def segment_builds(self) -> list[SegmentBuild]:
        """Build progress rows of served regions."""


class SegmentCatalog(ABC):
    """Writes of segment definitions (the ``DefineSegment``/``DeleteSegment`` side; a
    server may hold one while its profile store is read-only).

    A backend implements :meth:`add_version`; defining and deleting are built on it."""

    @abstractmethod
    def add_version(self, name: str, catalog_version: int,
                    build: Callable[[int], SegmentDefinition]) -> SegmentDefinition:
        """Store ``build(latest version of name, 0 if none)`` as the next version of
        ``name`` and bump the catalog version, atomically, if the catalog version is still
        ``catalog_version`` (else :class:`CatalogChangedError`); returns what was stored."""

    def define(self, name: str, definition: str, text: str, author: str, description: str,
               at: float, catalog_version: int) -> SegmentDefinition:
        """Add the next version of ``name``. Raises :class:`CatalogChangedError` when the
        catalog version is no longer ``catalog_version``."""
        return self.add_version(name, catalog_version, lambda last: SegmentDefinition(
            name, last + 1, definition, text, author, at, description))

    def delete(self, name: str, author: str, at: float,
               catalog_version: int) -> SegmentDefinition:
        """Add a deleting version of ``name`` (same check as :meth:`define`); NotFoundError
        when it was never defined."""
        def build(last: int) -> SegmentDefinition:
            if not last:
                raise NotFoundError("no segment with this name")
            return SegmentDefinition(name, last + 1, "", "", author, at, deleted=True)
        return self.add_version(name, catalog_version, build)

    @abstractmethod
    def close(self) -> None:
        """Release the connection."""
