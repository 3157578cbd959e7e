"""The composition root: one :class:`Engine` owns the resolver, graph and profile store.

Every path into the engine (the embedded runner, ``idgraph ingest``, the demo, the stream
workers, the tests) calls :meth:`Engine.ingest` or :meth:`Engine.ingest_payloads`.

Delivery contract of ``ingest``: effects are idempotent per event ID, and ``ingest``
returns once the batch is durable. A batch is applied in this order: link decisions ->
graph (durable, idempotent: existing edges are kept) -> profile store (one atomic write
that also records the batch's event IDs as processed). A crash between the two writes
leaves the events unprocessed; delivering them again re-applies nothing to the graph and
applies their profile effects once (``reconcile`` repairs record assignments on start).
A writer thread overlapping batch N's writes with batch N+1 was measured slower (GIL
contention: 7.7k vs 9.1k records/s at 100k), so writes are synchronous.
"""

from __future__ import annotations

import gc
import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Self

from graph import create_graph
from graph.base import GraphChanges, MatchEdge
from idgraph.errors import IdGraphError
from idgraph.queries import ProfileQueries
from idgraph.settings import Settings
from idgraph.turns import CatchUp, WriterTurns
from profile_store import create_store
from profile_store.base import (
    ProfileChange,
    ProfileEvent,
    ProfileHead,
    StoreBatch,
    StoredRecord,
)
from profile_store.survivorship import apply_event, new_record_state
from resolver.adapters import adapt
from resolver.linking import LinkPlanner
from resolver.model import IdentityRecord
from resolver.normalize import Normalizer
from resolver.probabilistic.features import match_row
from resolver.probabilistic.matcher import Matcher
from resolver.probabilistic.registry import ModelRegistry
from resolver.probabilistic.review import ReviewQueue
from resolver.regions import RegionPolicy

log = logging.getLogger(__name__)

_RECORD_CACHE_LIMIT = 500_000


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic collector during a batch, then freeze what survived it.

    The graph and caches are millions of long-lived objects, and every full collection
    rescans them all: measured, a third of ingest time at 100k records. Ingest creates no
    reference cycles of its own; temporaries are freed by reference counting. Survivors
    are moved to the permanent generation so later collections skip them.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def _event_time(record: IdentityRecord) -> float:
    return record.event_ts


def _row_of(state: StoredRecord) -> dict | None:
    """The matching row of a stored record (see :mod:`resolver.probabilistic.features`)."""
    return match_row({a: v for a, (v, _t) in state.attributes.items()}, state.identifiers)


@dataclass(slots=True)
class DeadLetter:
    """An input that could not be processed, with the reason (no payload values)."""

    source: str
    position: str
    reason: str
    payload: object = None


@dataclass(slots=True)
class IngestResult:
    """What one ingest call did. Counters add up across calls with :meth:`add`."""

    events_received: int = 0
    events_applied: int = 0
    duplicate_events: int = 0
    records_created: int = 0
    profiles_created: int = 0
    merges: int = 0
    splits: int = 0
    links: int = 0
    rejected_links: int = 0
    blocked_identifiers: int = 0
    pairs_scored: int = 0
    probabilistic_links: int = 0
    reviews_queued: int = 0
    rejection_reasons: Counter = field(default_factory=Counter)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    changes: list[ProfileChange] = field(default_factory=list)
    """Profiles this call created, updated, merged, split or deleted (IDs only)."""

    def add(self, other: IngestResult) -> None:
        for name in ("events_received", "events_applied", "duplicate_events", "records_created",
                     "profiles_created", "merges", "splits", "links", "rejected_links",
                     "blocked_identifiers", "pairs_scored", "probabilistic_links",
                     "reviews_queued"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.rejection_reasons.update(other.rejection_reasons)
        self.dead_letters.extend(other.dead_letters)
        self.changes.extend(other.changes)


class Engine:
    """Resolver + identity graph + profile store, built from settings."""

    def __init__(self, settings: Settings, publish_changes: bool = False) -> None:
        """Open the backends of ``settings`` (several engines may share one data dir: they
        take turns, see :mod:`idgraph.turns`).

        ``publish_changes`` puts a :class:`ProfileChange` for every changed profile in the
        store's outbox, in the same atomic write (stream workers publish them); without it
        changes are only reported in :attr:`IngestResult.changes`.
        """
        self.settings = settings
        self.publish_changes = publish_changes
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._turns = WriterTurns(settings.data_dir, settings.writer_turn_wait_seconds)
        self._in_turn = False
        self._written: set[str] = set()
        self.graph = None
        self.store = None
        self.reviews = None
        try:
            self.normalizer = Normalizer(settings.normalization)
            self.planner = LinkPlanner(settings.linking)
            self.region_policy = RegionPolicy(settings.regions)
            self._records: dict[str, StoredRecord] = {}
            self._profile_regions: dict[str, str] = {}
            self.models = ModelRegistry(settings.data_dir / "models")
            self.matcher: Matcher | None = None
            self._index_ready = False
            with self._turn():
                # backends are created and the graph replayed inside a turn: no other
                # writer initialises a file or appends meanwhile
                self.store = create_store(settings.profile_store_backend, settings.data_dir,
                                          settings.regions.regions, cassandra=settings.cassandra)
                self.queries = ProfileQueries(self.store, self.normalizer, settings.survivorship)
                self.reviews = ReviewQueue(settings.data_dir / "reviews.sqlite")
                self.graph = create_graph(settings.graph_backend, settings.data_dir,
                                          self.planner.shareable_types(), neo4j=settings.neo4j)
                self.reconcile()
                self.load_model()
                self.apply_review_decisions()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ ingest

    def ingest_payloads(self, items: Iterable[tuple[str, dict]],
                        batch_size: int | None = None) -> IngestResult:
        """Adapt raw ``(source kind, payload)`` items and ingest them in batches.

        A payload that fails adaptation becomes a dead letter with its reason; the rest of
        the batch goes on.
        """
        size = batch_size or self.settings.ingest_batch_size
        with _no_cyclic_gc():
            return self._ingest_payloads(items, size)

    def _ingest_payloads(self, items: Iterable[tuple[str, dict]], size: int) -> IngestResult:
        total = IngestResult()
        batch: list[IdentityRecord] = []
        dead: list[DeadLetter] = []
        for n, (source, payload) in enumerate(items):
            try:
                batch.extend(adapt(source, payload, self.normalizer))
            except IdGraphError as exc:
                dead.append(DeadLetter(source, f"item {n}", str(exc), payload))
            if len(batch) >= size:
                total.add(self._ingest_turn(batch))
                batch = []
        if batch:
            total.add(self._ingest_turn(batch))
        total.dead_letters.extend(dead)
        return total

    def ingest(self, records: list[IdentityRecord]) -> IngestResult:
        """Resolve and store a batch of canonical records (idempotent per event ID).

        Returns once the batch is durable in the graph and the profile store.
        """
        with _no_cyclic_gc():
            return self._ingest_turn(records)

    def _ingest_turn(self, records: list[IdentityRecord]) -> IngestResult:
        if not records:
            return IngestResult()
        with self._turn():
            self.apply_review_decisions()
            return self._ingest(records)

    def _ingest(self, records: list[IdentityRecord]) -> IngestResult:
        result = IngestResult(events_received=len(records))
        seen: set[str] = set()
        unique: list[IdentityRecord] = []
        for r in records:
            if r.event_id in seen:
                result.duplicate_events += 1
                continue
            seen.add(r.event_id)
            unique.append(r)
        new_ids = self.store.unprocessed(seen)
        # applied in event-time order (stable: ties keep arrival order). The guards are
        # first come, first served, and a stream read from several partitions interleaves
        # them; within a batch, time order is restored
        fresh = sorted((r for r in unique if r.event_id in new_ids), key=_event_time)
        result.duplicate_events += len(unique) - len(fresh)
        if not fresh:
            return result
        for r in fresh:
            if r.region is None:
                r.region = self.region_policy.region_of(r.source, r.attributes.get("country"))

        plan = self.planner.plan(fresh, self.graph)
        changes = self.graph.apply(plan.new_records, plan.edges)

        keys = list(dict.fromkeys(r.record_key for r in fresh))
        states = self._load_records(keys)
        edges = plan.record_edges  # the planner already holds every edge of these records
        rejected_by_record: dict[str, dict[str, str]] = {}
        for e in plan.edges:
            if not e.linked:
                rejected_by_record.setdefault(e.record_key, {})[e.identifier] = e.reason
        for rk, blocked in plan.blocked.items():
            rejected_by_record.setdefault(rk, {}).update(blocked)
        for r in fresh:
            rk = r.record_key
            state = states.get(rk)
            if state is None:
                state = states[rk] = self._records[rk] = new_record_state(r, r.region)
            apply_event(state, r, edges.get(rk, {}), rejected_by_record.get(rk), r.region)

        matched = self._match(keys, states, fresh)
        if matched is not None:
            changes.extend(matched[0])

        # index rows for every edge of the batch's records, not only the new ones: after a
        # crash between the graph and store writes, redelivered events add no new edges,
        # yet the index rows of the lost write must still appear (upserts: idempotent)
        links = [(ident, rk, linked) for rk in keys for ident, linked in edges.get(rk, {}).items()]
        result.changes = self._write(changes, {k: states[k] for k in keys},
                                     [r.event_id for r in fresh], identifier_links=links,
                                     at=max(r.event_ts for r in fresh))

        if matched is not None:
            plan_m = matched[1]
            result.pairs_scored = plan_m.pairs_scored
            result.probabilistic_links = sum(1 for e in plan_m.edges if e.linked)
            result.rejected_links += sum(1 for e in plan_m.edges if not e.linked)
            for e in plan_m.edges:
                if not e.linked:
                    result.rejection_reasons[e.reason.split(":", 1)[0]] += 1
            if plan_m.reviews:
                result.reviews_queued = self.reviews.propose(plan_m.reviews)
                self.matcher.decided.update((a, b) for a, b, *_ in plan_m.reviews)
        result.events_applied = len(fresh)
        result.records_created = len(plan.new_records)
        result.links = sum(1 for e in plan.edges if e.linked)
        result.rejected_links += len(plan.edges) - result.links
        result.blocked_identifiers = sum(len(b) for b in plan.blocked.values())
        for e in plan.edges:
            if not e.linked:
                result.rejection_reasons[e.reason.split(":", 1)[0]] += 1
        for h in changes.history:
            if h.kind == "created":
                result.profiles_created += 1
            elif h.kind == "merged":
                result.merges += 1
            elif h.kind == "split":
                result.splits += 1
        return result

    # ------------------------------------------------------------ probabilistic matching

    def load_model(self) -> str | None:
        """(Re)load the configured model; the candidate index is rebuilt from the store
        when the next batch needs it (commands that never ingest do not pay for it).

        Returns the model version in use, or None when matching is off or no model has
        been trained yet (deterministic rules only).
        """
        cfg = self.settings.matching
        self.matcher = None
        if not cfg.enabled:
            return None
        if cfg.model_version:
            version, model = self.models.load(cfg.model_version)
        elif (latest := self.models.latest()) is not None:
            version, model = self.models.load(latest)
        else:
            return None
        from resolver.probabilistic.scorer import RealtimeScorer

        matcher = Matcher(RealtimeScorer(model, version), self.planner, cfg)
        matcher.decided = self.reviews.decided_pairs()
        self.matcher = matcher
        self._index_ready = False
        return version

    def matching_rows(self) -> Iterator[tuple[str, dict | None]]:
        """``(record key, matching row)`` of every stored record, in key order (a row is
        None when the record has nothing to match on)."""
        keys = sorted(self.store.record_profiles())
        for start in range(0, len(keys), 50_000):
            part = keys[start:start + 50_000]
            chunk = self.store.get_records(part)
            yield from ((k, _row_of(chunk[k])) for k in part if k in chunk)

    def apply_matches(self, edges: list[MatchEdge]) -> GraphChanges:
        """Add match edges (decided elsewhere: batch resolution, reviews) durably and
        materialise the profiles they change."""
        if not edges:
            return GraphChanges()
        with _no_cyclic_gc(), self._turn():
            changes = self.graph.apply([], [], edges)
            self._write(changes, {}, [], at=max(e.at for e in edges))
        return changes

    def _match(self, keys: list[str], states: dict[str, StoredRecord],
               fresh: list[IdentityRecord]):
        matcher = self.matcher
        if matcher is None:
            return None
        if not self._index_ready:
            matcher.update_rows(self.matching_rows())
            self._index_ready = True
            log.info("matching with model %s over %d indexed records", matcher.version,
                     len(matcher.index))
        changed = matcher.update_rows((k, _row_of(states[k])) for k in keys if k in states)
        if not changed:
            return None
        last = {r.record_key: r for r in fresh}
        at = max(r.event_ts for r in fresh)
        plan = matcher.plan(changed, self.graph, lambda k: last[k].source,
                            lambda k: last[k].event_id, at)
        changes = self.graph.apply([], [], plan.edges) if plan.edges else GraphChanges()
        return changes, plan

    def apply_review_decisions(self) -> int:
        """Link the pairs reviewers accepted (over the CLI or gRPC); returns how many.

        The per-type limits still apply: an accepted pair they refuse is recorded as a
        refused edge with the reason. Reviews are marked ``applied`` after the store write.
        """
        with self._turn():
            return self._apply_review_decisions()

    def _apply_review_decisions(self) -> int:
        accepted = self.reviews.list("accepted", limit=1000)
        if not accepted:
            return 0
        pairs = [(r.record_a, r.record_b) for r in accepted]
        blockers = self.planner.match_blockers(
            pairs, self.graph, frozenset(self.settings.matching.limit_exempt_types))
        now = time.time()
        edges = [MatchEdge(record_a=r.record_a, record_b=r.record_b, linked=not why,
                           rule=f"review:{r.model_version}", reason=why,
                           match_weight=r.match_weight, probability=r.probability,
                           model_version=r.model_version, contributions=r.contributions,
                           source="review", event_id=r.review_id, at=now)
                 for r, why in zip(accepted, blockers, strict=True)]
        self.apply_matches(edges)
        self.reviews.mark_applied(r.review_id for r in accepted)
        return len(accepted) + self._apply_review_decisions()

    # ------------------------------------------------------------ unlink / forget

    def unlink(self, record_key: str, identifier: str) -> GraphChanges:
        """Remove one record-identifier edge; the profile may split (IDs per graph.ids)."""
        with self._turn():
            return self._unlink(record_key, identifier)

    def _unlink(self, record_key: str, identifier: str) -> GraphChanges:
        changes = self.graph.remove_link(record_key, identifier, time.time())
        state = self._load_records([record_key]).get(record_key)
        if state is not None:
            state.identifiers.pop(identifier, None)
        self._write(changes, {record_key: state} if state is not None else {}, [],
                    unlinked=[(identifier, record_key)])
        return changes

    def forget_record(self, record_key: str) -> GraphChanges:
        """Remove a source record from the graph and the store; its profile may split."""
        with self._turn():
            return self._forget_record(record_key)

    def _forget_record(self, record_key: str) -> GraphChanges:
        state = self._load_records([record_key]).get(record_key)
        changes = self.graph.remove_record(record_key, time.time())
        self._records.pop(record_key, None)
        index_rows = [(i, record_key) for i in state.identifiers] if state is not None else []
        self._write(changes, {}, [], deleted_records=[record_key], unlinked=index_rows)
        return changes

    # ------------------------------------------------------------------ internals

    def _load_records(self, keys: Iterable[str]) -> dict[str, StoredRecord]:
        cache = self._records
        keys = list(keys)
        missing = [k for k in keys if k not in cache]
        if missing:
            if len(cache) + len(missing) > _RECORD_CACHE_LIMIT:
                cache.clear()
                missing = keys
            cache.update(self.store.get_records(missing))
        return {k: cache[k] for k in keys if k in cache}

    def _regions_of(self, profile_ids: Iterable[str]) -> dict[str, str]:
        """Current home region of stored profiles (cached; absent if never stored)."""
        cache = self._profile_regions
        missing = [p for p in profile_ids if p not in cache]
        if missing:
            cache.update((pid, h.region) for pid, h in self.store.get_heads(missing).items())
        return cache

    def _write(self, changes: GraphChanges, changed: dict[str, StoredRecord], event_ids: list[str],
               identifier_links: list[tuple[str, str, bool]] | None = None,
               deleted_records: Iterable[str] = (),
               unlinked: list[tuple[str, str]] | None = None,
               at: float = 0.0) -> list[ProfileChange]:
        """Turn graph changes and new record states into one atomic store write; returns
        the profile changes it made (``at``: event time of the batch's newest event)."""
        graph = self.graph
        strictest = self.region_policy.strictest
        now = time.time()
        # ``changed`` holds the states this batch modified; states loaded below never
        # replace them (the cache may have been cleared and reloaded from the store)
        write = dict(changed)

        def states_of(keys: list[str]) -> list[StoredRecord]:
            missing = [k for k in keys if k not in write]
            loaded = self._load_records(missing) if missing else {}
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
        for pid in sorted(live):
            # the home is decided by the records' own (known) regions, never by a default
            members = states_of(graph.records_of(pid))
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
        notes = self._profile_changes(changes, heads, prior, deleted_profiles, at)
        batch = StoreBatch(
            records=[r for r in write.values() if r.profile_id],
            identifier_links=identifier_links or [], heads=heads, reassign=merged,
            regions=moves, deleted_profiles=deleted_profiles,
            deleted_records=list(deleted_records), unlinked=unlinked or [], aliases=aliases,
            removed_aliases=sorted(changes.revived), history=changes.history,
            processed_event_ids=event_ids,
            changes=notes if self.publish_changes else [],
        )
        self._written.update(write)
        self._written.update(deleted_records)
        try:
            self.store.write(batch)
        except Exception:
            self._records.clear()  # the caches may hold effects that were not stored
            self._profile_regions.clear()
            raise
        for absorbed, _ in merged:
            self._profile_regions.pop(absorbed, None)
        for p in deleted_profiles:
            self._profile_regions.pop(p, None)
        self._profile_regions.update(region_of)
        return notes

    @staticmethod
    def _profile_changes(changes: GraphChanges, heads: list[ProfileHead], prior: dict[str, str],
                         deleted: list[str], at: float) -> list[ProfileChange]:
        """One notification per changed profile: its graph history (created, merged,
        split), else ``updated``; ``deleted`` for profiles whose last record was removed."""
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

    def reconcile(self) -> int:
        """Make the store's record -> profile assignment match the graph; returns fixes.

        The graph write of a batch precedes its store write. If the process died between
        the two, the batch's events are redelivered (they are not marked processed) but the
        graph no longer reports the merges they caused; this pass, run on start and after
        another writer died inside its turn, moves the stored records to the profiles the
        graph has them in.
        """
        with self._turn():
            return self._reconcile()

    def _reconcile(self) -> int:
        stored = self.store.record_profiles()
        in_graph = self.graph.profiles_of(stored)
        wrong = [rk for rk, pid in stored.items() if in_graph.get(rk) != pid]
        if not wrong:
            return 0
        involved = {self.graph.profile_of(rk) for rk in wrong} - {None}
        keys = [rk for pid in involved for rk in self.graph.records_of(pid) if rk in stored]
        changes = GraphChanges(touched=set(involved))
        gone = {stored[rk] for rk in wrong} - involved
        changes.history = [ProfileEvent("merged", self.graph.resolve(p), [p], 0.0, 0)
                           for p in sorted(gone) if self.graph.resolve(p) is not None]
        changes.retired = {p for p in gone if self.graph.resolve(p) is None}
        self._write(changes, self._load_records(keys + wrong), [])
        log.warning("reconciled %d stored records with the identity graph", len(wrong))
        return len(wrong)

    # ------------------------------------------------------------------ writer turns

    @contextmanager
    def _turn(self) -> Iterator[None]:
        """Hold the data dir's writer turn (re-entrant within this engine): catch up with
        the other writers first; publish the records written when the turn ends."""
        if self._in_turn:
            yield
            return
        catch = self._turns.begin()
        self._in_turn = True
        self._written = set()
        try:
            if catch.foreign_turns and self.graph is not None:
                self._catch_up(catch)
            yield
        except BaseException:
            self._records.clear()  # the caches may hold effects that were not stored
            self._profile_regions.clear()
            self._turns.abort()
            raise
        else:
            self._turns.end(self._written)
        finally:
            self._in_turn = False

    def _catch_up(self, catch: CatchUp) -> None:
        """Apply what other writers did since our last turn to the in-memory state."""
        self.graph.refresh()
        self._profile_regions.clear()
        keys = catch.record_keys
        if keys is None:  # unknown (pruned feed or a writer died in its turn): start over
            self._records.clear()
            self.load_model()
            if catch.crashed:
                self._reconcile()
            return
        for k in keys:
            self._records.pop(k, None)
        if self.matcher is not None:
            if self._index_ready and keys:
                states = self.store.get_records(keys)
                self.matcher.update_rows(
                    (k, _row_of(states[k]) if k in states else None) for k in sorted(keys))
            self.matcher.decided = self.reviews.decided_pairs()

    def close(self) -> None:
        """Release the backends (safe on a half-built engine)."""
        try:
            for part in (self.graph, self.store, self.reviews):
                if part is not None:
                    part.close()
        finally:
            self._turns.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
