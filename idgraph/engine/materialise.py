"""The materialiser: identity-graph changes become one atomic profile-store write.

This is the heart of the engine. The graph decides who is who (which records form which
profile, which IDs merged, split or retired); the store keeps what each profile looks
like, in its home region. After every graph write, :meth:`Materialiser.write` works out
everything the store must change so that it agrees with the graph again, and hands it to
the store as one :class:`~idgraph.profile_store.base.StoreBatch`:

* records moved to their current profile (merges reassign, splits redistribute);
* each touched profile's head with its home region, decided by its records' own regions
  under the region policy (the strictest regime wins); profiles whose home changed are
  moved between regions;
* aliases of absorbed and revived IDs, deleted profiles (their last record removed);
* the identifier index rows, the merge and split history, the processed event IDs;
* one :class:`~idgraph.profile_store.base.ProfileChange` per changed profile, in the store's
  outbox when ``publish_changes`` is on;
* the segment memberships of every changed profile and the membership changes
  (:class:`~idgraph.engine.segment_memberships.MembershipMaintainer`), when it has one.

The record and region caches it keeps are an optimisation only: they are dropped whenever
a write may not have reached the store, and when another writer changed those records.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterable, Mapping

from idgraph.engine.segment_memberships import MembershipMaintainer
from idgraph.graph.base import GraphChanges, GraphProfiles
from idgraph.profile_store.base import (
    ProfileChange,
    ProfileEvent,
    ProfileHead,
    ProfileStore,
    StoreBatch,
    StoredRecord,
)
from idgraph.resolver.regions import RegionPolicy

log = logging.getLogger(__name__)

#: Record states a writer keeps (about 1.5 kB each for a contact row; a million-record load
#: would otherwise keep them all).
_RECORD_CACHE_LIMIT = 100_000


class Materialiser:
    """Keeps the profile store in step with the identity graph (one writer, not thread-safe).

    ``record_written(keys)`` is told the record keys every write stores or deletes, each
    with the home region it is stored in or deleted from (the writer session publishes
    them to the other writers at the end of the turn).
    """

    def __init__(self, graph: GraphProfiles, store: ProfileStore, region_policy: RegionPolicy,
                 publish_changes: bool,
                 record_written: Callable[[Mapping[str, str]], None],
                 segments: MembershipMaintainer | None = None) -> None:
        self.graph = graph
        self.segments = segments
        self.store = store
        self.region_policy = region_policy
        self.publish_changes = publish_changes
        self._record_written = record_written
        self._records: dict[str, StoredRecord] = {}
        self._profile_regions: dict[str, str] = {}

    # ------------------------------------------------------------------ caches

    def load_records(self, keys: Iterable[str]) -> dict[str, StoredRecord]:
        """Stored state of ``keys`` (absent keys are not stored), through the cache.

        The states are the cached objects: a caller that changes one must write it."""
        cache = self._records
        keys = list(keys)
        missing = [k for k in keys if k not in cache]
        if missing:
            if len(cache) + len(missing) > _RECORD_CACHE_LIMIT:
                cache.clear()
                missing = keys
            cache.update(self.store.get_records(missing))
        return {k: cache[k] for k in keys if k in cache}

    def remember(self, state: StoredRecord) -> None:
        """Cache the state of a record created by this writer (not stored yet; the caller
        holds it until its batch is written). Past the cache's limit the oldest half of the
        cache goes first: a million-record load keeps at most the limit, not every record."""
        cache = self._records
        if len(cache) >= _RECORD_CACHE_LIMIT:
            for key in list(itertools.islice(cache, len(cache) // 2)):
                del cache[key]
        cache[state.record_key] = state

    def forget_records(self, keys: Iterable[str]) -> None:
        """Drop ``keys`` from the cache (another writer changed them, or they are gone)."""
        for k in keys:
            self._records.pop(k, None)

    def forget_regions(self) -> None:
        """Drop the cached home regions (another writer may have moved profiles)."""
        self._profile_regions.clear()

    def clear(self) -> None:
        """Drop every cache: they may hold effects that never reached the store."""
        self._records.clear()
        self._profile_regions.clear()

    def _regions_of(self, profile_ids: Iterable[str]) -> dict[str, str]:
        """Current home region of stored profiles (cached; absent if never stored)."""
        cache = self._profile_regions
        missing = [p for p in profile_ids if p not in cache]
        if missing:
            cache.update((pid, h.region) for pid, h in self.store.get_heads(missing).items())
        return cache

    # ------------------------------------------------------------------ writes

    def write(self, changes: GraphChanges, changed: dict[str, StoredRecord],
              event_ids: list[str], identifier_links: list[tuple[str, str, bool]] | None = None,
              deleted_records: Iterable[str] = (), unlinked: list[tuple[str, str]] | None = None,
              at: float = 0.0, causes: Mapping[str, str] | None = None,
              cause: str = "attribute",
              fact_keys: Mapping[str, frozenset[str]] | None = None,
              erased_profiles: Iterable[tuple[str, str]] = (),
              erased_event_ids: Iterable[str] = (),
              erased_event_values: Iterable[str] = ()) -> list[ProfileChange]:
        """Turn graph changes and new record states into one atomic store write; returns
        the profile changes it made (``at``: event time of the batch's newest event).

        ``causes`` (record key -> ``consent``/``event``/``attribute``) and ``cause`` (the
        default) say why the segment memberships of the profiles changed (a merge or split
        says so itself; :mod:`.segment_memberships`); ``fact_keys`` (record key -> the fact
        keys its new data carries) lets only the segments reading them be evaluated for a
        profile that changed in no other way.

        ``changed`` holds the record states the caller modified; ``identifier_links`` the
        identifier index rows ``(identifier, record key, linked)`` to upsert, ``unlinked``
        those to delete. ``erased_profiles`` ((region, profile ID)), ``erased_event_ids``
        and ``erased_event_values`` are a forget's: every trace of them goes in the same write (``StoreBatch``), and
        no history row of this write names them. On a failed store write every cache is dropped and the error is
        raised: nothing of the write is assumed stored."""
        graph = self.graph
        strictest = self.region_policy.strictest
        now = time.time()
        deleted_records = list(deleted_records)
        # ``changed`` holds the states this batch modified; states loaded below never
        # replace them (the cache may have been cleared and reloaded from the store)
        write = dict(changed)

        def states_of(keys: list[str]) -> list[StoredRecord]:
            missing = [k for k in keys if k not in write]
            loaded = self.load_records(missing) if missing else {}
            return [write[k] if k in write else loaded[k] for k in keys
                    if k in write or k in loaded]

        merged = [(h.related_ids[0], h.profile_id) for h in changes.history if h.kind == "merged"]
        split_ids: set[str] = set()
        for h in changes.history:
            if h.kind == "split":
                split_ids.add(h.profile_id)
                split_ids.update(h.related_ids)
        for pid in split_ids:
            for rec in states_of(graph.records_of(pid)):
                write.setdefault(rec.record_key, rec)
        for rec in write.values():
            rec.profile_id = graph.profile_of(rec.record_key) or ""

        live = (changes.touched | split_ids | {r.profile_id for r in write.values()}) - {""}
        prior = self._regions_of(live | {a for a, _ in merged})
        stored_in: dict[str, set[str]] = {pid: set() for pid in live}  # regions rows sit in now
        for pid in live:
            if pid in prior:
                stored_in[pid].add(prior[pid])
        for absorbed, _ in merged:
            final = graph.resolve(absorbed)
            if final in stored_in and absorbed in prior:
                stored_in[final].add(prior[absorbed])
        heads, moves = [], []
        records_of: dict[str, list[StoredRecord]] = {}
        for pid in sorted(live):
            # the home is decided by the records' own (known) regions, never by a default
            members = records_of[pid] = states_of(graph.records_of(pid))
            region = strictest(r.region for r in members)
            heads.append(ProfileHead(pid, region, now))
            if pid not in split_ids and any(r != region for r in stored_in[pid]):
                moves.append((pid, region))
        region_of = {h.profile_id: h.region for h in heads}
        for rec in write.values():
            if rec.profile_id:
                rec.home_region = region_of[rec.profile_id]

        aliases: dict[str, str] = {}
        for absorbed, _ in merged:
            final = graph.resolve(absorbed)
            if final is not None:
                aliases[absorbed] = final
        for pid in split_ids:
            aliases.update((a, pid) for a in graph.aliases_of(pid))
        deleted_profiles = [p for p in changes.retired if graph.resolve(p) is None]
        notes = profile_changes(changes, heads, prior, deleted_profiles, at)
        batch = StoreBatch(
            records=[r for r in write.values() if r.profile_id],
            identifier_links=identifier_links or [], heads=heads, reassign=merged,
            regions=moves, deleted_profiles=deleted_profiles,
            deleted_records=deleted_records, unlinked=unlinked or [], aliases=aliases,
            removed_aliases=sorted(changes.revived), history=changes.history,
            processed_event_ids=event_ids,
            changes=list(notes) if self.publish_changes else [],
            erased_profiles=list(erased_profiles), erased_event_ids=list(erased_event_ids),
            erased_event_values=list(erased_event_values),
        )
        if batch.erased_profiles:
            gone = {pid for _, pid in batch.erased_profiles}
            batch.history = [h for h in batch.history
                             if h.profile_id not in gone and gone.isdisjoint(h.related_ids)]
        if self.segments is not None:
            self.segments.fill(batch, records_of, region_of,
                               _profile_causes(changes, records_of, causes or {}, cause),
                               [a for a, _ in merged], deleted_profiles, at,
                               _changed_keys(changes, write, prior, region_of, fact_keys or {}))
        # where each record is stored now (those of moved profiles too), or was (a record
        # without a profile keeps its stored home: this write does not store it); one
        # never stored is in no other writer's cache
        written = {k: r.home_region for k, r in write.items()}
        written.update((r.record_key, home) for pid, home in moves for r in records_of[pid])
        if deleted_records:  # where they are (read uncached: they are going)
            stored = self.store.get_records(deleted_records)
            written.update((k, stored[k].home_region) for k in deleted_records if k in stored)
        self._record_written({k: region for k, region in written.items() if region})
        try:
            self.store.write(batch)
        except Exception:
            self.clear()
            raise
        for absorbed, _ in merged:
            self._profile_regions.pop(absorbed, None)
        for p in deleted_profiles:
            self._profile_regions.pop(p, None)
        self._profile_regions.update(region_of)
        return notes

    def reconcile(self) -> int:
        """Make the store's record -> profile assignment match the graph; returns fixes.

        The graph write of a batch precedes its store write. If the process died between
        the two, the batch's events are redelivered (they are not marked processed) but the
        graph no longer reports the merges they caused; this pass, run on start and after
        another writer died inside its turn, moves the stored records to the profiles the
        graph has them in.
        """
        graph = self.graph
        stored = self.store.record_profiles()
        in_graph = graph.profiles_of(stored)
        wrong = [rk for rk, pid in stored.items() if in_graph.get(rk) != pid]
        if not wrong:
            return 0
        involved = {graph.profile_of(rk) for rk in wrong} - {None}
        keys = [rk for pid in involved for rk in graph.records_of(pid) if rk in stored]
        changes = GraphChanges(touched=set(involved))
        gone = {stored[rk] for rk in wrong} - involved
        changes.history = [ProfileEvent("merged", graph.resolve(p), [p], 0.0, 0)
                           for p in sorted(gone) if graph.resolve(p) is not None]
        changes.retired = {p for p in gone if graph.resolve(p) is None}
        self.write(changes, self.load_records(keys + wrong), [])
        log.warning("reconciled %d stored records with the identity graph", len(wrong))
        return len(wrong)


_CAUSE_RANK = {"consent": 0, "event": 1, "attribute": 2}


def _profile_causes(changes: GraphChanges, records_of: Mapping[str, list[StoredRecord]],
                    causes: Mapping[str, str], default: str) -> dict[str, str]:
    """Why each profile's memberships are evaluated again: ``split`` or ``merge`` from the
    graph's history, else the strongest cause among the batch's records of it (consent,
    then event, then attribute), else ``default``."""
    out: dict[str, str] = {}
    for h in changes.history:
        if h.kind == "split":
            out.update((pid, "split") for pid in (h.profile_id, *h.related_ids))
        elif h.kind == "merged":
            out.setdefault(h.profile_id, "merge")
    for pid, records in records_of.items():
        if pid in out:
            continue
        found = [causes[r.record_key] for r in records if r.record_key in causes]
        out[pid] = min(found, key=_CAUSE_RANK.__getitem__) if found else default
    return out


def _changed_keys(changes: GraphChanges, written: Mapping[str, StoredRecord],
                  prior: Mapping[str, str], region_of: Mapping[str, str],
                  fact_keys: Mapping[str, frozenset[str]]) -> dict[str, frozenset[str]]:
    """Per profile whose only change is new data on its records: the fact keys of that
    data. Left out (evaluated against every segment that may apply): profiles the graph
    created, merged or split, profiles new to the store or whose home region moved, and
    profiles with a written record the caller gave no keys for."""
    fresh = {h.profile_id for h in changes.history}
    fresh.update(i for h in changes.history for i in h.related_ids)
    out: dict[str, set[str]] = {}
    for key, rec in written.items():
        pid = rec.profile_id
        if not pid or pid in fresh:
            continue
        keys = fact_keys.get(key)
        if keys is None or prior.get(pid) != region_of.get(pid):
            fresh.add(pid)
            out.pop(pid, None)
            continue
        out.setdefault(pid, set()).update(keys)
    return {pid: frozenset(keys) for pid, keys in out.items()}


def profile_changes(changes: GraphChanges, heads: list[ProfileHead], prior: dict[str, str],
                    deleted: list[str], at: float) -> list[ProfileChange]:
    """One notification per changed profile: its graph history (created, merged, split),
    else ``updated``; ``deleted`` for profiles whose last record was removed."""
    region_of = {h.profile_id: h.region for h in heads}
    out: list[ProfileChange] = []
    named: set[str] = set()
    for h in changes.history:
        if h.kind == "revived":
            continue  # reported by the split that revived it
        region = region_of.get(h.profile_id) or prior.get(h.profile_id, "")
        out.append(ProfileChange(h.kind, h.profile_id, list(h.related_ids), region, at))
        named.add(h.profile_id)
        if h.kind == "split":
            named.update(h.related_ids)
    out.extend(ProfileChange("updated", pid, [], region, at)
               for pid, region in sorted(region_of.items()) if pid not in named)
    out.extend(ProfileChange("deleted", pid, [], prior.get(pid, ""), at) for pid in deleted)
    return out
