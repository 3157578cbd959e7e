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
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from idgraph.core.errors import IdGraphError, NotFoundError
from idgraph.engine.queries import ProfileQueries
from idgraph.engine.segment_memberships import EMPTY, LiveDefinitions, evaluate_profile
from idgraph.engine.segment_preview import SegmentPreview, preview, profile_ids
from idgraph.profile_store.base import Profile, ProfileReader
from idgraph.profile_store.segment_state import (
    ENTERED,
    Membership,
    SegmentBuild,
    SegmentChange,
)
from idgraph.segments import Node, Result, SegmentDependencies, event_types

__all__ = ["Activity", "ActivityBucket", "Evaluation", "InvalidCursorError", "SegmentQueries"]

_LOG = logging.getLogger(__name__)
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
    recent: list[SegmentChange] = field(default_factory=list)
    """The newest changes of the window, newest first (who moved in or out)."""


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


class PreviewProfiles:
    """The folded live profiles a draft's preview evaluates, kept between previews: a
    marketer previews a draft again and again while editing it, and folding every profile
    is most of a preview's cost. Each profile is kept with its version (head
    ``updated_at``, changed by every write to it); before each preview the versions of
    every live profile are read (one query per 500) and only new or changed profiles are
    folded again, so the answer stays exact. Kept only while the served regions hold at
    most ``max_profiles`` live profiles (memory: the profiles with their events); above
    that each preview folds as it goes. Thread-safe (one preview refreshes at a time)."""

    def __init__(self, store: ProfileReader, queries: ProfileQueries,
                 max_profiles: int = 100_000) -> None:
        self._store = store
        self._queries = queries
        self.max_profiles = max_profiles
        self._lock = threading.Lock()
        self._warming = threading.Lock()
        self._kept: dict[str, tuple[float, Profile]] = {}

    def __len__(self) -> int:
        return len(self._kept)

    def warm(self) -> None:
        """Fold what changed since the last preview, in a background thread (one at a
        time): called when someone starts editing a draft, so that the first preview
        finds the profiles folded."""
        if not self._warming.acquire(blocking=False):
            return

        def run() -> None:
            try:
                self._refresh(self._ids())
            except Exception:  # noqa: BLE001 - a warm-up is best effort; previews fold anyway
                _LOG.warning("warming the preview profiles failed", exc_info=True)
            finally:
                self._warming.release()

        threading.Thread(target=run, name="preview-warm", daemon=True).start()

    def profiles(self, event_types: Collection[str]) -> Iterator[Profile]:
        """Every live profile of the served regions, folded with every stored event (of
        ``event_types`` at least), region by region in the store's order."""
        ids = self._ids()
        snapshot = self._refresh(ids)
        if snapshot is None:
            yield from self._queries.live_profiles_with_events(ids, event_types)
        else:
            yield from snapshot

    def _ids(self) -> list[str]:
        return [pid for region in sorted(self._store.regions)
                for pid in profile_ids(self._store, region)]

    def _refresh(self, ids: list[str]) -> list[Profile] | None:
        """The kept profiles of ``ids`` after folding the new and changed ones, or None
        (nothing kept) when there are more than ``max_profiles``."""
        if len(ids) > self.max_profiles:
            self._kept = {}
            return None
        with self._lock:
            heads = self._store.get_heads(ids)
            stale = [pid for pid in ids if pid in heads and (
                pid not in self._kept or self._kept[pid][0] != heads[pid].updated_at)]
            folded = {p.profile_id: p for p in self._queries.live_profiles_with_events(stale)}
            kept = {}
            for pid in ids:
                head = heads.get(pid)
                if head is None:
                    continue
                profile = folded.get(pid) or self._kept.get(pid, (0.0, None))[1]
                if profile is not None:
                    kept[pid] = (head.updated_at, profile)
            self._kept = kept
            return [profile for _v, profile in kept.values()]


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
        self.preview_profiles = PreviewProfiles(store, queries)

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
        (:func:`~idgraph.engine.segment_preview.preview` over :class:`PreviewProfiles`),
        nothing stored, and
        how many profiles were evaluated. ``draft`` is evaluated with every live
        definition, as if saved under ``name`` (a live one of that name is replaced;
        unnamed, it takes a name no live segment has), so what it uses through
        ``in_segment`` is answered as the writer would and its overlap with every other
        live segment is exact: the overlap names each of them, 0 included. Raises
        ``UnknownSegmentError`` (FAILED_PRECONDITION) for a use of an undefined segment,
        ``SegmentCycleError`` for a loop through ``name``. Its cost grows with every
        stored profile.

        Only the draft, the segments it uses (through ``in_segment``, transitively) and
        live segments whose memberships are not built yet are evaluated; the overlap with
        every other live segment is read from its stored memberships, which are exact and
        current once built (as ``CountSegment`` answers). Each profile is folded with the
        events of the types those evaluated definitions count, no others."""
        live = self.live()
        key = name or next(n for n in (f"draft {i}" if i else "draft" for i in itertools.count())
                           if n not in live.trees)
        everything = {**live.trees, key: draft}
        deps = SegmentDependencies(everything)  # unknown uses and loops are refused here
        built = self._built(live)
        wanted = {key}
        pending = [key]
        while pending:
            for used in deps.uses(pending.pop()):
                if used not in wanted:
                    wanted.add(used)
                    pending.append(used)
        # as if saved: what uses a live segment of the draft's name is evaluated with the
        # draft; live segments still being built have no exact memberships to read yet
        wanted |= set(deps.dependents(key))
        wanted |= {n for n in live.trees if n not in built}
        views, evaluated = preview(
            {n: everything[n] for n in wanted},
            self.preview_profiles.profiles(
                frozenset().union(*(event_types(everything[n]) for n in wanted))),
            datetime.fromtimestamp(self._clock(), UTC), samples, collect={key})
        view = views[key]
        for other in sorted(live.trees):
            if other == key:
                continue
            if other in views:
                view.overlap[other] = view.overlap.get(other, 0)
            else:
                view.overlap[other] = self._shared_members(other, view.members)
        view.members = set()
        return view, evaluated

    def _built(self, live: LiveDefinitions) -> set[str]:
        """The live segments evaluated over the stored profiles of every served region at
        their current version: their stored memberships are then exact."""
        builds: dict[tuple[str, str], SegmentBuild] = {
            (b.segment, b.region): b for b in self._store.segment_builds()}
        out = set()
        for name, definition in live.definitions.items():
            if all((b := builds.get((name, region))) is not None and b.done
                   and b.version == definition.version for region in self._store.regions):
                out.add(name)
        return out

    def _shared_members(self, name: str, members: set[str], page: int = 5000) -> int:
        """How many of ``members`` are stored members of ``name``."""
        shared, after = 0, ""
        while True:
            rows = self._store.segment_members(name, after, page)
            shared += sum(m.profile_id in members for m in rows)
            if len(rows) < page:
                return shared
            after = rows[-1].profile_id

    def activity(self, name: str, hours: float, bucket_seconds: int, recent: int = 50
                 ) -> Activity:
        """Entries and exits of live segment ``name`` logged over the last ``hours``, in
        buckets of ``bucket_seconds`` aligned on multiples of it since the epoch (the first
        holds the time ``hours`` ago, the last holds now), by the time the change was
        logged (when the membership changed in the store); each bucket's size at its end
        is computed backwards from the exact count now. The log holds only its retention:
        :attr:`Activity.log_starts_at` says where it begins (before it, buckets are
        empty and their sizes assume no change). The ``recent`` newest changes come with
        it, newest first. NotFoundError for an unknown segment."""
        self._known(name)
        now = self._clock()
        size = sum(self._store.count_segment(name).values())
        first = int((now - hours * 3600) // bucket_seconds)
        n = int(now // bucket_seconds) - first + 1
        entered, exited = [0] * n, [0] * n
        newest: deque[SegmentChange] = deque(maxlen=recent)
        for at, change in self._store.segment_log(first * bucket_seconds, segment=name):
            if at > now:  # logged after the count was read
                continue
            i = int(at // bucket_seconds) - first
            (entered if change.change == ENTERED else exited)[i] += 1
            newest.append(change)
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
                        start[0] if start is not None else None,
                        recent=list(reversed(newest)))

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
