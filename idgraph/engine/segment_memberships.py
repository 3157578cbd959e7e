"""Segment memberships kept current: on every write, when time passes, when definitions change.

:class:`MembershipMaintainer` is the writer's side of segments. It never writes on its own
account except through :meth:`MembershipMaintainer.step`; the rest fills the
:class:`~idgraph.profile_store.base.StoreBatch` the materialiser is about to write, so a
profile change and the membership changes it causes land in one atomic write:

* **Ingest** (:meth:`MembershipMaintainer.fill`): every profile the batch created, updated,
  merged or split is folded from the record states being written and evaluated against
  every live definition, in ``in_segment`` order. A profile absorbed by a merge leaves its
  segments (cause ``merge``), the survivor is evaluated (cause ``merge``); the parts of a
  split are evaluated (cause ``split``); a deleted profile leaves everything (``forget``).
  Otherwise the cause is ``consent`` when the batch changed a consent of the profile,
  ``event`` when it brought an event, else ``attribute``. Because one write replaces the
  memberships of the old and the new profiles, a person is never in two contradictory
  memberships, and a reader never sees the merged profile with the absorbed one's rows.
* **Time** (:meth:`MembershipMaintainer.step`): rows whose ``next_change`` has passed are
  evaluated again (cause ``time``), with no new event; the change's ``at`` is the deadline.
* **Definitions** (:meth:`MembershipMaintainer.step`): a new, edited or deleted definition
  is evaluated over every stored profile of each served region in profile-ID order, a
  chunk per step, progress kept in :class:`~idgraph.profile_store.segment_state.SegmentBuild`
  rows (cause ``definition``). Profiles changed by ingest meanwhile are already evaluated
  with the new definition; the build only catches up the others. The segments that use a
  changed one (``in_segment``) are evaluated with it.

What a row holds and when one exists: :mod:`idgraph.profile_store.segment_state`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from idgraph.engine.segment_definitions import tree_of
from idgraph.engine.segment_preview import profile_facts
from idgraph.profile_store.base import Profile, ProfileStore, StoreBatch, StoredRecord
from idgraph.profile_store.segment_state import (
    ENTERED,
    EXITED,
    Membership,
    SegmentBuild,
    SegmentChange,
    SegmentDefinition,
)
from idgraph.profile_store.survivorship import ProfileBuilder

if TYPE_CHECKING:
    from idgraph.engine.consent import LedgerConsent
from idgraph.segments import (
    Node,
    ProfileFacts,
    Result,
    SegmentDependencies,
    evaluate,
    event_types,
    fact_keys,
    intern_leaves,
    reads,
)

__all__ = ["LiveDefinitions", "MembershipMaintainer", "evaluate_profile"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LiveDefinitions:
    """The live definitions of one catalog version, parsed, in evaluation order."""

    catalog_version: int
    definitions: Mapping[str, SegmentDefinition]
    trees: Mapping[str, Node]
    order: tuple[str, ...]
    dependencies: SegmentDependencies
    event_types: frozenset[str] = frozenset()
    """Every event type a live definition counts (the rest of a timeline is not read)."""
    by_key: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Fact key (:func:`idgraph.segments.reads`) -> the segments that read it, directly or
    through the segments they use."""
    hold_when_empty: frozenset[str] = frozenset()
    """Segments a profile with no facts at all is in (``company absent``, ``not ...``)."""

    @classmethod
    def of(cls, version: int, definitions: Mapping[str, SegmentDefinition]) -> LiveDefinitions:
        # equal leaves shared: a profile evaluates each distinct condition once
        trees = intern_leaves({name: tree_of(d) for name, d in definitions.items()})
        deps = SegmentDependencies(trees)
        order = deps.evaluation_order()
        types = frozenset().union(*map(event_types, trees.values()))
        keys: dict[str, set[str]] = {}
        for name in order:  # a segment reads what the segments it uses read
            own = reads(trees[name])
            keys[name] = {k for k in own if not k.startswith("segment:")}
            for used in deps.uses(name):
                keys[name] |= keys[used]
        by_key: dict[str, set[str]] = {}
        for name, found in keys.items():
            for key in found:
                by_key.setdefault(key, set()).add(name)
        empty: dict[str, bool] = {}
        facts = ProfileFacts(memberships=lambda n: empty.get(n, False))
        epoch = datetime.fromtimestamp(0, UTC)
        for name in order:
            result = evaluate(trees[name], facts, epoch)
            empty[name] = result.matched or result.next_change is not None
        return cls(version, dict(definitions), trees, order, deps, types,
                   {k: frozenset(v) for k, v in by_key.items()},
                   frozenset(n for n, held in empty.items() if held))

    def requirements(self, names: Iterable[str]) -> tuple[str, ...]:
        """``names`` and every segment they use, directly or not, in evaluation order (what
        answering ``names`` alone needs)."""
        wanted: set[str] = set()
        pending = [n for n in names if n in self.trees]
        while pending:
            name = pending.pop()
            if name not in wanted:
                wanted.add(name)
                pending.extend(self.dependencies.uses(name))
        return tuple(n for n in self.order if n in wanted)

    def reading(self, keys: Iterable[str]) -> set[str]:
        """The segments that read any of ``keys``."""
        out: set[str] = set()
        for key in keys:
            out |= self.by_key.get(key, frozenset())
        return out

    def closure(self, names: Iterable[str]) -> tuple[str, ...]:
        """``names`` (those still live) and every segment using them, in evaluation order."""
        wanted = {n for n in names if n in self.trees}
        for name in list(wanted):
            wanted.update(self.dependencies.dependents(name))
        return tuple(n for n in self.order if n in wanted)


EMPTY = LiveDefinitions(0, {}, {}, (), SegmentDependencies({}))


def profile_keys(profile: Profile) -> set[str]:
    """Every fact key (:func:`idgraph.segments.reads`) a folded profile has."""
    return fact_keys(attributes=profile.attributes, event_types={e.type for e in profile.events},
                     consent=profile.consent,
                     identifier_types={i.type for i in profile.identifiers},
                     sources={s for i in profile.identifiers for s in i.sources}, region=True)


def evaluate_profile(live: LiveDefinitions, profile: Profile, now: datetime,
                     names: Iterable[str] | None = None,
                     prior: Mapping[str, bool] | None = None) -> dict[str, Result]:
    """Evaluate ``names`` (default: every live definition) and the segments that use
    them for ``profile`` at ``now``, in dependency order. ``in_segment`` of a segment not
    evaluated here answers from ``prior`` (segment -> member); to answer ``names`` with no
    prior, pass :meth:`LiveDefinitions.requirements` of them."""
    results: dict[str, Result] = {}
    prior = prior or {}

    def member(name: str) -> bool:
        done = results.get(name)
        return done.matched if done is not None else bool(prior.get(name, False))

    facts = profile_facts(profile, member, live.event_types)
    order = live.order if names is None else live.closure(names)
    for name in order:
        results[name] = evaluate(live.trees[name], facts, now)
    return results


def _seconds(moment: datetime | None) -> float:
    return 0.0 if moment is None else moment.timestamp()


@dataclass(slots=True)
class _Outcome:
    upserts: list[Membership] = field(default_factory=list)
    removals: list[tuple[str, str, str]] = field(default_factory=list)
    changes: list[SegmentChange] = field(default_factory=list)

    def into(self, batch: StoreBatch, publish: bool) -> None:
        batch.memberships.extend(self.upserts)
        batch.removed_memberships.extend(self.removals)
        batch.segment_changes.extend(self.changes)
        if publish:
            batch.changes.extend(self.changes)


class MembershipMaintainer:
    """Evaluates segments for the writer (module docstring). Not thread-safe: the writer's
    turn serialises it."""

    def __init__(self, store: ProfileStore, builder: ProfileBuilder, *,
                 publish_changes: bool = False, log_retention_hours: float = 24.0,
                 build_chunk: int = 2000, clock: Callable[[], float] = time.time,
                 consent: LedgerConsent | None = None) -> None:
        self.consent = consent
        """The consent ledger's part (:class:`~idgraph.engine.consent.LedgerConsent`):
        folded profiles take their consent from it, and statements made over the API get
        their profiles evaluated again (:meth:`step`). None: the records' own consent."""
        self.store = store
        self.builder = builder
        self.publish_changes = publish_changes
        self.log_retention_seconds = log_retention_hours * 3600
        self.build_chunk = build_chunk
        self.clock = clock
        self.live = EMPTY
        self._stubs_due = False
        """The catalog changed: the next profile write creates the missing build rows."""
        self._last_prune = 0.0

    # ------------------------------------------------------------------ definitions

    def refresh(self) -> LiveDefinitions:
        """The live definitions, read from the store (parsed again only when the catalog
        version changed). Called in every write: a definition stored before the writer's
        turn is evaluated by it."""
        version, definitions = self.store.segment_catalog()
        if version != self.live.catalog_version:
            self.live = LiveDefinitions.of(version, definitions)
            self._stubs_due = True
        return self.live

    # ------------------------------------------------------------------ evaluation

    def _evaluate(self, live: LiveDefinitions, profile: Profile, prior: list[Membership],
                  names: Iterable[str] | None, cause: str, at: float, now: float,
                  out: _Outcome) -> None:
        before = {m.segment: m for m in prior}
        results = evaluate_profile(live, profile, datetime.fromtimestamp(now, UTC), names,
                                   {s: m.member for s, m in before.items()})
        region = profile.region
        for name, result in results.items():
            old = before.get(name)
            was = old is not None and old.member
            version = live.definitions[name].version
            deadline = _seconds(result.next_change)
            if was != result.matched:
                out.changes.append(SegmentChange(
                    profile.profile_id, name, version, ENTERED if result.matched else EXITED,
                    at, cause, result.clauses if result.matched else old.clauses,  # type: ignore[union-attr]
                    region))
            keep = result.matched or bool(deadline)
            if old is not None and (not keep or old.region != region):
                out.removals.append((old.region, name, profile.profile_id))
            if keep:
                since = old.since if old is not None and was == result.matched else at
                row = Membership(name, profile.profile_id, region, version, result.matched,
                                 since, result.clauses, deadline)
                if row != old:  # a moved row differs by its region
                    out.upserts.append(row)

    def _leave_all(self, profile_id: str, prior: list[Membership], cause: str, at: float,
                   out: _Outcome, segments: Iterable[str] | None = None) -> None:
        """Every row of ``profile_id`` (of ``segments``) removed; members exit."""
        wanted = None if segments is None else set(segments)
        for old in prior:
            if wanted is not None and old.segment not in wanted:
                continue
            if old.member:
                version = self.live.definitions[old.segment].version \
                    if old.segment in self.live.definitions else old.version
                out.changes.append(SegmentChange(profile_id, old.segment, version, EXITED, at,
                                                 cause, old.clauses, old.region))
            out.removals.append((old.region, old.segment, profile_id))

    def fill(self, batch: StoreBatch, records_of: Mapping[str, list[StoredRecord]],
             region_of: Mapping[str, str], causes: Mapping[str, str], absorbed: Iterable[str],
             deleted: Iterable[str], at: float,
             changed_keys: Mapping[str, frozenset[str]] | None = None) -> None:
        """Add the memberships of a profile write to ``batch`` (module docstring).

        ``records_of``: every live profile the batch touched -> all its record states after
        the batch; ``region_of``: their home regions after it; ``causes``: profile ID ->
        cause; ``absorbed``/``deleted``: profiles that stop existing (merged into another /
        last record removed).

        ``changed_keys``: for a profile whose only change is new data on its records (not
        created, merged, split, moved or shrunk), the fact keys that data carries
        (:func:`idgraph.segments.reads`): only the segments reading one of them are
        evaluated, the others' answers cannot have changed. Any other profile gets every
        segment that reads a fact it has, holds for a profile with no facts, or has a row
        for it."""
        # read in every write (no cache): a definition stored before this writer's turn is
        # evaluated by it, so a build started later never misses a profile written now
        live = self.refresh()
        absorbed, deleted = list(absorbed), list(deleted)
        gone = {**{p: "merge" for p in absorbed}, **{p: "forget" for p in deleted}}
        for pid in records_of:  # revived by a split in the same batch: evaluated below
            gone.pop(pid, None)
        if not live.order and not gone:
            return
        prior = self.store.memberships([*records_of, *gone])
        if not live.order and not any(prior.get(pid) for pid in gone):
            return
        now = self.clock()
        at = at or now
        out = _Outcome()
        for pid, cause in gone.items():
            self._leave_all(pid, prior.get(pid, []), cause, at, out)
        changed_keys = changed_keys or {}
        todo: list[tuple[str, Profile, set[str] | None]] = []
        for pid, records in records_of.items():
            delta = changed_keys.get(pid)
            names: set[str] | None = None
            if delta is not None:
                names = live.reading(delta)
                if not names:
                    continue
            todo.append((pid, self.builder.build(pid, region_of[pid], records, [], now,
                                                 all_events=True,
                                                 event_types=live.event_types), names))
        if self.consent is not None:  # one read of the ledger for the whole write
            self.consent.apply(p for _, p, _ in todo)
        for pid, profile, names in todo:
            rows = prior.get(pid, [])
            if names is None:
                names = live.reading(profile_keys(profile)) | live.hold_when_empty
                names.update(m.segment for m in rows)
            self._evaluate(live, profile, rows, names, causes.get(pid, "attribute"), at, now,
                           out)
            self._drop_undefined(pid, rows, live, at, out)
        out.into(batch, self.publish_changes)
        if self._stubs_due:
            batch.segment_builds.extend(self._missing_builds(live, now))
            self._stubs_due = False
        self._maybe_prune(batch, now)

    def _missing_builds(self, live: LiveDefinitions, now: float) -> list[SegmentBuild]:
        """Build rows for live segments that have none, so that every segment that may get
        membership rows has one (a deletion then finds what to tear down). Read in the
        writer's turn: a region with no stored profile has nothing to evaluate (every
        profile it gets from now on is evaluated by the write that creates it), so its
        build is done at once."""
        built = {(b.region, b.segment) for b in self.store.segment_builds()}
        stored = self.store.profiles_by_region()
        out = []
        for region in sorted(self.store.regions):
            for name, d in live.definitions.items():
                if (region, name) in built:
                    continue
                empty = not stored.get(region)
                out.append(SegmentBuild(region, name, d.version, started_at=now if empty else 0,
                                        finished_at=now if empty else 0))
        return out

    def _drop_undefined(self, pid: str, prior: list[Membership], live: LiveDefinitions,
                        at: float, out: _Outcome) -> None:
        """Rows of segments no longer defined: removed (exits, cause ``definition``)."""
        stale = [m for m in prior if m.segment not in live.trees]
        if stale:
            self._leave_all(pid, stale, "definition", at, out)

    def _maybe_prune(self, batch: StoreBatch, now: float) -> None:
        if now - self._last_prune > 60:
            batch.segment_log_before = now - self.log_retention_seconds
            self._last_prune = now

    # ------------------------------------------------------------------ time and builds

    def _folds(self, profile_ids: list[str]) -> dict[str, Profile]:
        """The live profiles among ``profile_ids``, folded (read in one go), by ID."""
        out = {}
        for pid, stored in self.store.get_live_profiles(profile_ids).items():
            if stored.records:
                head = stored.head
                out[pid] = self.builder.build(pid, head.region, stored.records, [],
                                              head.updated_at, all_events=True,
                                              event_types=self.live.event_types)
        if self.consent is not None:
            self.consent.apply(out.values())
        return out

    def step(self, budget: int | None = None) -> tuple[StoreBatch, int]:
        """One round of the work no event triggers: memberships whose deadline passed or,
        when none is due, a chunk of the oldest unfinished build. Returns the batch to write (it may be
        empty) and how many profiles were evaluated."""
        live = self.refresh()
        budget = budget or self.build_chunk
        now = self.clock()
        out = _Outcome()
        batch = StoreBatch()
        # one kind of work, and one build, per round: each evaluates a profile at most once
        evaluated = self._consent_stated(live, now, budget, out)
        if not evaluated:
            evaluated = self._expire(live, now, budget, out)
        if not evaluated:
            evaluated = self._build(live, now, budget, out, batch)
        out.into(batch, self.publish_changes)
        if evaluated:
            self._maybe_prune(batch, now)
        return batch, evaluated

    def _consent_stated(self, live: LiveDefinitions, now: float, budget: int,
                        out: _Outcome) -> int:
        """Profiles that consent statements made over the API named (an event's consent is
        evaluated by its own write): the segments reading those purposes, cause
        ``consent``. The caller commits the ledger cursor after the write."""
        if self.consent is None:
            return 0
        named = self.consent.pending(budget)
        if not named:
            return 0
        live_ids: dict[str, set[str]] = {}
        for pid, purposes in named.items():
            stored = self.store.get_profile(pid)  # an alias resolves to its profile
            if stored is not None:
                live_ids.setdefault(stored.head.profile_id, set()).update(purposes)
        folded = self._folds(list(live_ids))
        prior = self.store.memberships(list(folded))
        for pid, profile in folded.items():
            names = live.reading(f"consent:{p}" for p in live_ids[pid])
            if names:
                self._evaluate(live, profile, prior.get(pid, []), names, "consent", now, now,
                               out)
        return max(1, len(folded))

    def _expire(self, live: LiveDefinitions, now: float, budget: int, out: _Outcome) -> int:
        due = self.store.due_memberships(now, budget)
        by_profile: dict[str, list[Membership]] = {}
        for m in due:
            by_profile.setdefault(m.profile_id, []).append(m)
        if not by_profile:
            return 0
        prior = self.store.memberships(by_profile)
        folded = self._folds(list(by_profile))
        for pid, rows in by_profile.items():
            profile = folded.get(pid)
            if profile is None:  # gone meanwhile: its rows go too
                self._leave_all(pid, prior.get(pid, []), "forget", now, out)
                continue
            deadline = min(m.next_change for m in rows)
            self._evaluate(live, profile, prior.get(pid, []), {m.segment for m in rows},
                           "time", deadline, now, out)
            self._drop_undefined(pid, prior.get(pid, []), live, now, out)
        return len(by_profile)

    def pending_builds(self) -> list[SegmentBuild]:
        """Builds to run: one per served region and definition change not yet evaluated
        over that region's profiles."""
        live = self.live
        done = {(b.region, b.segment): b for b in self.store.segment_builds()}
        wanted: list[SegmentBuild] = []
        for region in sorted(self.store.regions):
            for name, definition in live.definitions.items():
                b = done.get((region, name))
                if b is None or b.version != definition.version:
                    wanted.append(SegmentBuild(region, name, definition.version))
                elif not b.done:
                    wanted.append(b)
            for (r, name), b in done.items():  # deleted: its members must leave
                if r != region or name in live.definitions or (b.version == -1 and b.done):
                    continue
                wanted.append(b if b.version == -1 else SegmentBuild(region, name, -1))
        return wanted

    def _build(self, live: LiveDefinitions, now: float, budget: int, out: _Outcome,
               batch: StoreBatch) -> int:
        """A chunk of the oldest pending build. Builds of the same region at the same
        position (a file of definitions applied at once) go together: each profile is
        folded once for all of them."""
        pending = self.pending_builds()
        if not pending:
            return 0
        first = pending[0]
        if first.version == -1:
            group = [first]
        else:
            group = [b for b in pending if b.region == first.region and b.version != -1
                     and b.after == first.after and bool(b.started_at) == bool(first.started_at)]
        for build in group:
            if not build.started_at:
                build.started_at = now
                build.total = self.store.profiles_by_region().get(build.region, 0)
                build.evaluated, build.after = 0, ""
        if first.version == -1:
            evaluated = self._teardown(first, budget, now, out)
        else:
            ids = self.store.profile_ids_after(first.region, first.after, budget)
            prior = self.store.memberships(ids)
            names = [b.segment for b in group]
            folded = self._folds(ids)
            for pid in ids:
                profile = folded.get(pid)
                if profile is not None:
                    self._evaluate(live, profile, prior.get(pid, []), names, "definition",
                                   now, now, out)
            evaluated = len(ids)
            for build in group:
                build.evaluated += len(ids)
                if ids:
                    build.after = ids[-1]
                if len(ids) < budget:
                    build.finished_at = now
        for build in group:
            batch.segment_builds.append(build)
            if build.finished_at:
                log.info("segment %s v%d evaluated over %d profiles of %s", build.segment,
                         build.version, build.evaluated, build.region)
        return evaluated

    def _teardown(self, build: SegmentBuild, budget: int, now: float, out: _Outcome) -> int:
        """A deleted segment: its members of the build's region leave (cause
        ``definition``) and their rows go, a page per round. Rows of non-members waiting
        on a deadline go when that deadline is due (:meth:`_expire`)."""
        found: list[Membership] = []
        after = build.after
        while len(found) < budget:
            page = self.store.segment_members(build.segment, after, budget)
            found += [m for m in page if m.region == build.region]
            if len(page) < budget:
                build.finished_at = now
                break
            after = page[-1].profile_id
        found = found[:budget]
        for m in found:
            self._leave_all(m.profile_id, [m], "definition", now, out)
        if found:
            build.after = found[-1].profile_id
        build.evaluated += len(found)
        return len(found)
