"""Read-side segment queries the gRPC service answers with: evaluate, count, members, watch.

* :meth:`SegmentQueries.evaluate` evaluates live definitions against one profile *now*
  (the same evaluation the writer stores, :func:`~idgraph.engine.segment_memberships.evaluate_profile`),
  with the clauses that matched, and says how long the answer holds (the profile's
  version, the catalog version, the earliest deadline): the service caches its rendered
  answer that long, so a repeated call costs a lookup, not a fold.
* :meth:`SegmentQueries.count` and :meth:`SegmentQueries.members` read the stored
  memberships (exact, kept by the writer on every change; time-driven exits are applied
  within ``segments.tick_seconds`` of their deadline by a running writer).
* :meth:`SegmentQueries.watch` tails the store's change log from a cursor;
  :meth:`SegmentQueries.activity` counts one segment's entries and exits in it by the
  time they were logged.
* :meth:`SegmentQueries.preview` evaluates a draft definition over every stored profile
  (nothing stored).

Everything reads only the regions the store serves.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from idgraph.core.errors import IdGraphError, NotFoundError
from idgraph.engine.queries import ProfileQueries
from idgraph.engine.segment_memberships import EMPTY, LiveDefinitions, evaluate_profile
from idgraph.engine.segment_preview import SegmentPreview, preview_over_store
from idgraph.profile_store.base import ProfileReader
from idgraph.profile_store.segment_state import (
    ENTERED,
    Membership,
    SegmentBuild,
    SegmentChange,
)
from idgraph.segments import Node, Result

__all__ = ["Activity", "ActivityBucket", "Evaluation", "InvalidCursorError", "SegmentQueries"]

_CATALOG_TTL_SECONDS = 0.5


class InvalidCursorError(IdGraphError):
    """A page token or change-log cursor this server did not give."""

    status = "INVALID_ARGUMENT"


@dataclass(frozen=True, slots=True)
class ActivityBucket:
    """Changes of one segment logged in ``[start, start + bucket)`` and its members at
    the end of it."""

    start: float
    entered: int
    exited: int
    size_at_end: int


@dataclass(frozen=True, slots=True)
class Activity:
    """A segment's entries and exits over a window (:meth:`SegmentQueries.activity`)."""

    size: int
    """Members now (exact)."""
    entered: int
    exited: int
    buckets: list[ActivityBucket]
    """Oldest first."""
    log_starts_at: float | None
    """When the oldest change the log holds (of any segment) was logged; None: empty."""


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Memberships of one profile at ``at``: segment name -> result (matched, clauses,
    next change), and each segment's definition version."""

    profile_id: str
    region: str
    at: datetime
    results: dict[str, Result]
    versions: dict[str, int]
    version: float = 0.0
    """The profile's version (head ``updated_at``) evaluated."""
    catalog_version: int = 0
    valid_until: float = float("inf")
    """The earliest deadline of the answers: until then, with the same profile and
    catalog versions, the answers hold."""


class SegmentQueries:
    """Segment reads over a profile store (thread-safe)."""

    def __init__(self, store: ProfileReader, queries: ProfileQueries,
                 clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._queries = queries
        self._clock = clock
        self._live = EMPTY
        self._checked_at = float("-inf")
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Read the catalog again at the next :meth:`live`: the server that changed a
        definition answers with it at once (read your own writes); other servers see it
        within half a second."""
        with self._lock:
            self._checked_at = float("-inf")

    def live(self) -> LiveDefinitions:
        """The live definitions (the catalog is read again after half a second)."""
        now = time.monotonic()
        if now - self._checked_at >= _CATALOG_TTL_SECONDS:
            with self._lock:
                if now - self._checked_at >= _CATALOG_TTL_SECONDS:
                    version, definitions = self._store.segment_catalog()
                    if version != self._live.catalog_version:
                        self._live = LiveDefinitions.of(version, definitions)
                    self._checked_at = now
        return self._live

    def _names(self, live: LiveDefinitions, names: Iterable[str]) -> list[str]:
        wanted = [n.strip() for n in names]
        if not wanted:
            return list(live.order)
        unknown = [i for i, n in enumerate(wanted) if n not in live.trees]
        if unknown:
            raise NotFoundError(f"names[{unknown[0]}]: no segment with this name")
        return list(dict.fromkeys(wanted))

    def names(self, names: Iterable[str]) -> list[str]:
        """``names`` checked against the live definitions (every live one when empty), in
        request order without repeats; NotFoundError naming an unknown one."""
        return self._names(self.live(), names)

    def current(self, *, identifier: str = "", profile_id: str = "") -> tuple[str, float | None]:
        """The live profile ID ``identifier`` resolves to, or ``profile_id``, and its
        version (head ``updated_at``, changed by every write to it); the version is None
        when ``profile_id`` is not a live ID (an alias, or unknown: evaluating says)."""
        if identifier:
            located = self._queries.locate(identifier)
            return located.profile_id, located.version
        pid = profile_id.strip()
        head = self._store.get_heads([pid]).get(pid)
        return pid, (head.updated_at if head is not None else None)

    def evaluate(self, names: Iterable[str], *, identifier: str = "",
                 profile_id: str = "") -> Evaluation:
        """Memberships of the profile ``identifier`` resolves to (or ``profile_id``, aliases
        followed) in ``names`` (every live segment when empty), with their clauses, now.

        Raises NotFoundError for an unknown segment or profile, InvalidIdentifierError for
        a malformed identifier. Not cached: callers that answer often cache the rendered
        answer while :attr:`Evaluation.version`, :attr:`Evaluation.catalog_version` and
        :attr:`Evaluation.valid_until` hold (the service does)."""
        live = self.live()
        wanted = self._names(live, names)
        pid = self._queries.locate(identifier).profile_id if identifier else profile_id.strip()
        profile = self._queries.profile_with_all_events(pid, live.event_types)
        if profile is None:
            raise NotFoundError("no profile with this ID in the served regions")
        now = self._clock()
        at = datetime.fromtimestamp(now, UTC)
        results = evaluate_profile(live, profile, at, live.requirements(wanted))
        deadlines = [r.next_change.timestamp() for r in results.values() if r.next_change]
        return Evaluation(profile.profile_id, profile.region, at,
                          {n: results[n] for n in wanted},
                          {n: live.definitions[n].version for n in wanted},
                          version=profile.updated_at, catalog_version=live.catalog_version,
                          valid_until=min(deadlines, default=float("inf")))

    def builds(self) -> list[SegmentBuild]:
        """Progress of evaluating definitions over stored profiles (served regions)."""
        return self._store.segment_builds()

    def _known(self, name: str) -> None:
        if name not in self.live().trees:
            raise NotFoundError("no segment with this name")

    def count(self, name: str) -> dict[str, int]:
        """Members of ``name`` per served region (exact)."""
        self._known(name)
        return self._store.count_segment(name)

    def members(self, name: str, page_token: str, page_size: int) -> tuple[list[Membership], str]:
        """One page of members of ``name`` in profile-ID order and the next page token
        (empty after the last page). The token is the last profile ID of the page."""
        self._known(name)
        page = self._store.segment_members(name, page_token, page_size + 1)
        more = len(page) > page_size
        page = page[:page_size]
        return page, (page[-1].profile_id if more and page else "")

    def preview(self, draft: Node, name: str = "", samples: int = 20
                ) -> tuple[SegmentPreview, int]:
        """The exact preview of ``draft`` over every live profile of the served regions
        (:func:`~idgraph.engine.segment_preview.preview_over_store`), nothing stored, and
        how many profiles were evaluated. ``draft`` is evaluated with every live
        definition, as if saved under ``name`` (a live one of that name is replaced;
        unnamed, it takes a name no live segment has), so what it uses through
        ``in_segment`` is answered as the writer would and its overlap with every other
        live segment is exact: the overlap names each of them, 0 included. Raises
        ``UnknownSegmentError`` (FAILED_PRECONDITION) for a use of an undefined segment,
        ``SegmentCycleError`` for a loop through ``name``. Its cost grows with every
        stored profile and every live definition."""
        live = self.live()
        key = name or next(n for n in (f"draft {i}" if i else "draft" for i in itertools.count())
                           if n not in live.trees)
        definitions = {**live.trees, key: draft}
        views, evaluated = preview_over_store(
            definitions, self._store, self._queries.profile_with_all_events,
            datetime.fromtimestamp(self._clock(), UTC), samples)
        view = views[key]
        view.overlap.update(dict.fromkeys((n for n in live.trees if n != key), 0))
        return view, evaluated

    def activity(self, name: str, hours: float, bucket_seconds: int) -> Activity:
        """Entries and exits of live segment ``name`` logged over the last ``hours``, in
        buckets of ``bucket_seconds`` aligned on multiples of it since the epoch (the first
        holds the time ``hours`` ago, the last holds now), by the time the change was
        logged (when the membership changed in the store); each bucket's size at its end
        is computed backwards from the exact count now. The log holds only its retention:
        :attr:`Activity.log_starts_at` says where it begins (before it, buckets are
        empty and their sizes assume no change). NotFoundError for an unknown segment."""
        self._known(name)
        now = self._clock()
        size = sum(self._store.count_segment(name).values())
        first = int((now - hours * 3600) // bucket_seconds)
        n = int(now // bucket_seconds) - first + 1
        entered, exited = [0] * n, [0] * n
        for at, change in self._store.segment_log(first * bucket_seconds, segment=name):
            if at > now:  # logged after the count was read
                continue
            i = int(at // bucket_seconds) - first
            (entered if change.change == ENTERED else exited)[i] += 1
        buckets: list[ActivityBucket] = []
        end_size = size
        for i in reversed(range(n)):
            buckets.append(ActivityBucket((first + i) * bucket_seconds, entered[i], exited[i],
                                          end_size))
            end_size += exited[i] - entered[i]
        oldest = self._store.segment_log()
        try:
            start = next(oldest, None)
        finally:
            oldest.close()
        return Activity(size, sum(entered), sum(exited), buckets[::-1],
                        start[0] if start is not None else None)

    def watch(self, names: Iterable[str], cursor: str, active: Callable[[], bool],
              poll_seconds: float = 0.02) -> Iterator[tuple[SegmentChange, str]]:
        """Changes of ``names`` (every segment when empty) after ``cursor`` (from now when
        empty) until ``active()`` is False, each with a resume cursor: set on the last
        change of each read from the log (empty on the others). Resuming from the last
        cursor received redelivers at most the changes after it that were already seen
        (at-least-once; ``change_id`` tells them apart)."""
        wanted = {n.strip() for n in names if n.strip()}
        for name in wanted:
            self._known(name)
        position = cursor or self._store.segment_log_position()
        try:
            self._store.segment_changes_after(position, 1)
        except ValueError:
            raise InvalidCursorError("cursor is not one this server gave") from None
        while active():
            changes, after = self._store.segment_changes_after(position, 500)
            chosen = [c for c in changes if not wanted or c.segment in wanted]
            for i, change in enumerate(chosen):
                yield change, after if i == len(chosen) - 1 else ""
            if changes:
                position = after
            else:
                time.sleep(poll_seconds)
