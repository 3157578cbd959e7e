"""The ingest pipeline: canonical records in, a durable graph and profile store out.

One batch goes: drop duplicates and events already processed -> drop the events of
forgotten people (suppression, :mod:`~idgraph.engine.ingest_privacy`) -> consent stated by
events into the ledger, data refused consent left out -> regions -> deterministic
link decisions (:class:`~idgraph.resolver.linking.LinkPlanner`) -> graph write -> record states
folded (survivorship) -> probabilistic matching of the changed records -> one atomic store
write (:class:`~idgraph.engine.materialise.Materialiser`). The caller holds the writer's turn.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from idgraph.core.errors import IdGraphError
from idgraph.core.failpoints import failpoint
from idgraph.engine.ingest_privacy import IngestPrivacy
from idgraph.engine.matching_service import MatchingService
from idgraph.engine.materialise import Materialiser
from idgraph.graph.base import IdentityGraph
from idgraph.profile_store.base import ProfileChange, ProfileStore
from idgraph.profile_store.settings import SurvivorshipSettings
from idgraph.profile_store.survivorship import apply_event, new_record_state
from idgraph.resolver.adapters import adapt
from idgraph.resolver.linking import LinkPlanner
from idgraph.resolver.model import IdentityRecord
from idgraph.resolver.normalize import Normalizer
from idgraph.resolver.regions import RegionPolicy
from idgraph.segments import fact_keys


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
    suppressed_events: int = 0
    """Events dropped because they carry a forgotten person's identifier."""
    rejection_reasons: Counter = field(default_factory=Counter)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    changes: list[ProfileChange] = field(default_factory=list)
    """Profiles this call created, updated, merged, split or deleted (IDs only)."""

    def add(self, other: IngestResult) -> None:
        for name in ("events_received", "events_applied", "duplicate_events", "records_created",
                     "profiles_created", "merges", "splits", "links", "rejected_links",
                     "blocked_identifiers", "pairs_scored", "probabilistic_links",
                     "reviews_queued", "suppressed_events"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.rejection_reasons.update(other.rejection_reasons)
        self.dead_letters.extend(other.dead_letters)
        self.changes.extend(other.changes)


_RECORD_UPDATE_SOURCES = frozenset({"salesforce", "hubspot"})
"""Sources whose events are changes of a record (a CRM contact or lead edited), not
behaviour."""


def _segment_cause(record: IdentityRecord) -> str:
    """Why a record's event may change segment memberships: ``consent`` when it states
    consent; ``attribute`` for a record update (a CRM contact or lead changed, a row of an
    imported file); ``event`` for behaviour (an email open, a purchase, a page view)."""
    if record.consent:
        return "consent"
    if record.source in _RECORD_UPDATE_SOURCES or record.event_type == "row":
        return "attribute"
    return "event"


def _fact_keys(records: list[IdentityRecord]) -> dict[str, frozenset[str]]:
    """Record key -> the fact keys (:func:`idgraph.segments.fact_keys`) its events of this
    batch carry: the segments reading none of them need no evaluation."""
    out: dict[str, set[str]] = {}
    for r in records:
        out.setdefault(r.record_key, set()).update(fact_keys(
            attributes=r.attributes, event_types=(r.activity,), consent=r.consent,
            identifier_types={i.type for i in r.identifiers},
            sources=(r.source,) if r.identifiers else ()))
    return {k: frozenset(v) for k, v in out.items()}


def _event_time(record: IdentityRecord) -> float:
    return record.event_ts


def adapt_payloads(items: Iterable[tuple[str, dict]], normalizer: Normalizer,
                   dead: list[DeadLetter]) -> Iterable[IdentityRecord]:
    """Records of raw ``(source kind, payload)`` items; a payload that fails adaptation is
    appended to ``dead`` with its reason and position, and the rest go on."""
    for n, (source, payload) in enumerate(items):
        try:
            yield from adapt(source, payload, normalizer)
        except IdGraphError as exc:
            dead.append(DeadLetter(source, f"item {n}", str(exc), payload))


class IngestPipeline:
    """Applies batches of canonical records (idempotent per event ID; one writer)."""

    def __init__(self, planner: LinkPlanner, region_policy: RegionPolicy, graph: IdentityGraph,
                 store: ProfileStore, materialiser: Materialiser,
                 matching: MatchingService,
                 survivorship: SurvivorshipSettings | None = None,
                 privacy: IngestPrivacy | None = None) -> None:
        self.planner = planner
        self.privacy = privacy
        self.survivorship = survivorship or SurvivorshipSettings()
        self.region_policy = region_policy
        self.graph = graph
        self.store = store
        self.materialiser = materialiser
        self.matching = matching

    def apply(self, records: list[IdentityRecord]) -> IngestResult:
        """Resolve and store one batch; returns once it is durable. The caller holds the
        writer's turn."""
        result = IngestResult(events_received=len(records))
        if self.privacy is not None and records:
            # before anything else, duplicates included: every replayed event of a
            # forgotten person is counted, and none is even looked up by its event ID
            records, dropped = self.privacy.screen(records)
            if dropped:
                # counted before the store write: a batch redelivered after a crash counts
                # its suppressed events again (they are never marked processed)
                self.privacy.ledger.count_suppressed(dict(dropped))
                result.suppressed_events = sum(dropped.values())
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
        withheld: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
        if self.privacy is not None and fresh:
            # the consent events state lands in the ledger first: a crash before the store
            # write redelivers them, and appending an entry again changes nothing
            self.privacy.ledger.append_consent(self.privacy.consent_entries(fresh))
            withheld = self.privacy.withheld(fresh)
        if not fresh:
            return result
        for r in fresh:
            if r.region is None:
                r.region = self.region_policy.decide(r).region

        plan = self.planner.plan(fresh, self.graph)
        changes = self.graph.apply(plan.new_records, plan.edges, names=plan.names,
                                   generic=plan.generic, detached=plan.detached)
        failpoint("writer.graph.applied")

        keys = list(dict.fromkeys(r.record_key for r in fresh))
        states = self.materialiser.load_records(keys)
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
                state = states[rk] = new_record_state(r, r.region)
                self.materialiser.remember(state)
            refused = withheld.get(rk)
            if refused is not None and refused[0]:
                r.attributes = {k: v for k, v in r.attributes.items() if k not in refused[0]}
            # an event with no region evidence keeps the record's region: absence of
            # evidence never moves a profile back to the default region
            apply_event(state, r, edges.get(rk, {}), rejected_by_record.get(rk),
                        r.region or state.region, self.survivorship)
            if refused is not None and refused[1]:  # stored no more, older ones included
                state.events = [e for e in state.events if e.type not in refused[1]]

        # records outside the batch whose edge to a newly generic value stopped linking
        demoted = [(ident, rk) for ident, rk in plan.demoted if rk not in states]
        if demoted:
            others = self.materialiser.load_records(list(dict.fromkeys(rk for _, rk in demoted)))
            for ident, rk in demoted:
                state = others.get(rk)
                if state is not None and ident in state.identifiers:
                    first, last, _linked = state.identifiers[ident]
                    state.identifiers[ident] = (first, last, False)
                    state.rejected[ident] = plan.generic.get(ident) or plan.detached[rk]
            states.update(others)

        matched = self.matching.match(keys, states, fresh)
        if matched is not None:
            changes.extend(matched[0])

        # index rows for every edge of the batch's records, not only the new ones: after a
        # crash between the graph and store writes, redelivered events add no new edges,
        # yet the index rows of the lost write must still appear (upserts: idempotent)
        links = [(ident, rk, linked) for rk in keys for ident, linked in edges.get(rk, {}).items()]
        links += [(ident, rk, False) for ident, rk in demoted]
        written = {k: states[k] for k in keys}
        written.update((rk, states[rk]) for _, rk in demoted if rk in states)
        result.changes = self.materialiser.write(
            changes, written, [r.event_id for r in fresh],
            identifier_links=links, at=max(r.event_ts for r in fresh),
            causes={r.record_key: _segment_cause(r) for r in fresh},
            fact_keys=_fact_keys(fresh))
        failpoint("writer.store.committed")

        if matched is not None:
            plan_m = matched[1]
            result.pairs_scored = plan_m.pairs_scored
            result.probabilistic_links = sum(1 for e in plan_m.edges if e.linked)
            result.rejected_links += sum(1 for e in plan_m.edges if not e.linked)
            for e in plan_m.edges:
                if not e.linked:
                    result.rejection_reasons[e.reason.split(":", 1)[0]] += 1
            result.reviews_queued = self.matching.queue_reviews(plan_m)
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
