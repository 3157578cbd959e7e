"""The composition root: one :class:`Engine` owns the resolver, graph and profile store.

Every path into the engine (the embedded runner, ``idgraph ingest``, the demo, the stream
workers, the tests) calls :meth:`Engine.ingest` or :meth:`Engine.ingest_payloads`.

Delivery contract of ``ingest``: effects are idempotent per event ID. A batch is applied
in this order: link decisions -> graph (durable, idempotent: existing edges are kept) ->
profile store (one atomic write that also records the batch's event IDs as processed).
A crash between the two writes leaves the events unprocessed; delivering them again
re-applies nothing to the graph and applies their profile effects once.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Self

from graph import create_graph
from graph.base import GraphChanges
from idgraph.errors import IdGraphError
from idgraph.queries import ProfileQueries
from idgraph.settings import Settings
from profile_store import create_store
from profile_store.base import StoreBatch, StoredRecord
from profile_store.survivorship import ProfileBuilder, apply_event, new_record_state
from resolver.adapters import adapt
from resolver.linking import LinkPlanner
from resolver.model import IdentityRecord
from resolver.normalize import Normalizer
from resolver.regions import RegionPolicy

log = logging.getLogger(__name__)

_RECORD_CACHE_LIMIT = 500_000


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
    rejection_reasons: Counter = field(default_factory=Counter)
    dead_letters: list[DeadLetter] = field(default_factory=list)

    def add(self, other: IngestResult) -> None:
        for name in ("events_received", "events_applied", "duplicate_events", "records_created",
                     "profiles_created", "merges", "splits", "links", "rejected_links",
                     "blocked_identifiers"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.rejection_reasons.update(other.rejection_reasons)
        self.dead_letters.extend(other.dead_letters)


class Engine:
    """Resolver + identity graph + profile store, built from settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.normalizer = Normalizer(settings.normalization)
        self.planner = LinkPlanner(settings.linking)
        self.region_policy = RegionPolicy(settings.regions)
        self.builder = ProfileBuilder(settings.survivorship)
        self.graph = create_graph(settings.graph_backend, settings.data_dir,
                                  self.planner.shareable_types())
        self.store = create_store(settings.profile_store_backend, settings.data_dir,
                                  settings.regions.regions)
        self.queries = ProfileQueries(self.store, self.normalizer)
        self._records: dict[str, StoredRecord] = {}

    # ------------------------------------------------------------------ ingest

    def ingest_payloads(self, items: Iterable[tuple[str, dict]],
                        batch_size: int | None = None) -> IngestResult:
        """Adapt raw ``(source kind, payload)`` items and ingest them in batches.

        A payload that fails adaptation becomes a dead letter with its reason; the rest of
        the batch goes on.
        """
        size = batch_size or self.settings.ingest_batch_size
        total = IngestResult()
        batch: list[IdentityRecord] = []
        dead: list[DeadLetter] = []
        for n, (source, payload) in enumerate(items):
            try:
                batch.extend(adapt(source, payload, self.normalizer))
            except IdGraphError as exc:
                dead.append(DeadLetter(source, f"item {n}", str(exc), payload))
            if len(batch) >= size:
                total.add(self.ingest(batch))
                batch = []
        if batch:
            total.add(self.ingest(batch))
        total.dead_letters.extend(dead)
        return total

    def ingest(self, records: list[IdentityRecord]) -> IngestResult:
        """Resolve and store a batch of canonical records (idempotent per event ID)."""
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
        fresh = [r for r in unique if r.event_id in new_ids]
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
        edges = self.graph.edges_of(keys)
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

        touched = set(changes.touched)
        touched.update(p for rk in keys if (p := self.graph.profile_of(rk)) is not None)
        self._write(touched, changes, [r.event_id for r in fresh], force_records=keys)

        result.events_applied = len(fresh)
        result.records_created = len(plan.new_records)
        result.links = sum(1 for e in plan.edges if e.linked)
        result.rejected_links = len(plan.edges) - result.links
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

    # ------------------------------------------------------------ unlink / forget

    def unlink(self, record_key: str, identifier: str) -> GraphChanges:
        """Remove one record-identifier edge; the profile may split (IDs per graph.ids)."""
        changes = self.graph.remove_link(record_key, identifier, time.time())
        state = self._load_records([record_key]).get(record_key)
        if state is not None and identifier in state.identifiers:
            del state.identifiers[identifier]
        self._write(changes.touched | changes.revived, changes, [], force_records=[record_key])
        return changes

    def forget_record(self, record_key: str) -> GraphChanges:
        """Remove a source record from the graph and the store; its profile may split."""
        changes = self.graph.remove_record(record_key, time.time())
        self._records.pop(record_key, None)
        self._write(changes.touched | changes.revived, changes, [], deleted_records=[record_key])
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

    def _write(self, touched: set[str], changes: GraphChanges, event_ids: list[str],
               force_records: Iterable[str] = (), deleted_records: Iterable[str] = ()) -> None:
        now = time.time()
        changed: dict[str, StoredRecord] = {}
        profiles = []
        aliases: dict[str, str] = {}
        for pid in sorted(touched):
            rks = self.graph.records_of(pid)
            if not rks:
                continue
            recs = self._load_records(rks)
            members = [recs[k] for k in rks if k in recs]
            region = self.region_policy.strictest(r.region for r in members)
            for rec in members:
                if rec.profile_id != pid or rec.home_region != region:
                    rec.profile_id, rec.home_region = pid, region
                    changed[rec.record_key] = rec
            al = self.graph.aliases_of(pid)
            aliases.update((a, pid) for a in al)
            profiles.append(self.builder.build(pid, region, members, al, now))
        for rk in force_records:
            rec = self._records.get(rk)
            if rec is not None:
                changed[rk] = rec
        deleted_profiles = [p for p in changes.retired if self.graph.resolve(p) is None]
        batch = StoreBatch(
            records=list(changed.values()), profiles=profiles, deleted_profiles=deleted_profiles,
            deleted_records=list(deleted_records), aliases=aliases,
            removed_aliases=sorted(changes.revived), history=changes.history,
            processed_event_ids=event_ids,
        )
        try:
            self.store.write(batch)
        except Exception:
            self._records.clear()  # the cache may hold effects that were not stored
            raise

    def close(self) -> None:
        self.graph.close()
        self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
