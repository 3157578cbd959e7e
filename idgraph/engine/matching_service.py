"""The matching service: the probabilistic model a writer scores new records with.

It owns the model registry (trained Splink models), the review queue (pairs between the
two thresholds) and the real-time :class:`~idgraph.resolver.probabilistic.matcher.Matcher` with
its candidate index. The index is built from the store the first time a batch needs it,
so commands that never ingest never pay for it.

Models trained elsewhere. A writer that follows the newest model (no
``matching.model_version`` pinned) asks the registry for its newest version before
scoring each batch (:meth:`MatchingService.refresh_model`: one read) and loads it when it
changed, so a model saved on any machine (a shared registry) or by another process is
scored with from every writer's next batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator

from idgraph.coordination import ModelRegistry, ReviewQueue
from idgraph.graph.base import GraphChanges, IdentityGraph, MatchEdge
from idgraph.profile_store.base import ProfileReader, StoredRecord
from idgraph.resolver.linking import NOT_THE_PERSONS, LinkPlanner
from idgraph.resolver.model import IdentityRecord
from idgraph.resolver.probabilistic.features import match_row
from idgraph.resolver.probabilistic.matcher import Decisions, Matcher, MatchPlan
from idgraph.resolver.settings import MatchingSettings

log = logging.getLogger(__name__)

_ROWS_PER_READ = 50_000


def row_of(state: StoredRecord) -> dict | None:
    """The matching row of a stored record (see :mod:`idgraph.resolver.probabilistic.features`),
    without the email and phone values the linker found generic: a switchboard number or
    ``info@`` agreeing says nothing about two records being one person."""
    attributes = {a: v for a, (v, _t) in state.attributes.items()}
    shared = {k for k, why in state.rejected.items() if why.startswith(NOT_THE_PERSONS)}
    if not shared:
        return match_row(attributes, state.identifiers)
    for kind in ("email", "phone"):
        if f"{kind}:{attributes.get(kind)}" in shared:
            del attributes[kind]
    return match_row(attributes, [i for i in state.identifiers if i not in shared])


class MatchingService:
    """Model, candidate index and review queue of one writer (not thread-safe)."""

    def __init__(self, settings: MatchingSettings, models: ModelRegistry, reviews: ReviewQueue,
                 planner: LinkPlanner, graph: IdentityGraph, store: ProfileReader) -> None:
        self.settings = settings
        self.models = models
        self.reviews = reviews
        self.planner = planner
        self.graph = graph
        self.store = store
        self.matcher: Matcher | None = None
        self._index_ready = False
        self._seen_version: str | None = None
        """The registry's newest version when the model was last loaded."""
        self._suspended = False

    def load_model(self) -> str | None:
        """(Re)load the configured model; the candidate index is rebuilt from the store
        when the next batch needs it.

        Returns the model version in use, or None when matching is off or no model has
        been trained yet (deterministic rules only).
        """
        cfg = self.settings
        self.matcher = None
        self._suspended = False
        if not cfg.enabled:
            return None
        if cfg.model_version:
            version, model = self.models.load(cfg.model_version)
        elif (latest := self.models.latest()) is not None:
            self._seen_version = latest
            version, model = self.models.load(latest)
        else:
            self._seen_version = None
            return None
        from idgraph.resolver.probabilistic.scorer import RealtimeScorer

        matcher = Matcher(RealtimeScorer(model, version), self.planner, cfg)
        matcher.decisions = Decisions(cfg, self.models.report(version).get("thresholds"))
        matcher.decided = self.reviews.decided_pairs()
        self.matcher = matcher
        self._index_ready = False
        return version

    def suspend(self) -> None:
        """Score nothing until the next :meth:`load_model` (a batch pass scores instead)."""
        self.matcher = None
        self._suspended = True

    def refresh_model(self) -> str | None:
        """Load the registry's newest model when it is not the one loaded (another machine
        or process saved one); one read of :meth:`ModelRegistry.latest`. Does nothing
        when matching is off, a version is pinned (``matching.model_version``) or scoring
        is suspended. Returns the version in use (None: no model)."""
        cfg = self.settings
        if cfg.enabled and not cfg.model_version and not self._suspended:
            newest = self.models.latest()
            if newest != self._seen_version:
                log.info("model %s saved since %s: loading it", newest,
                         self._seen_version or "none")
                return self.load_model()
        return self.matcher.version if self.matcher is not None else None

    def matching_rows(self) -> Iterator[tuple[str, dict | None]]:
        """``(record key, matching row)`` of every stored record, in key order (a row is
        None when the record has nothing to match on)."""
        keys = sorted(self.store.record_profiles())
        for start in range(0, len(keys), _ROWS_PER_READ):
            part = keys[start:start + _ROWS_PER_READ]
            chunk = self.store.get_records(part)
            yield from ((k, row_of(chunk[k])) for k in part if k in chunk)

    def match(self, keys: list[str], states: dict[str, StoredRecord],
              fresh: list[IdentityRecord]) -> tuple[GraphChanges, MatchPlan] | None:
        """Score the batch's records against their candidates and apply the links the
        model decides to the graph; None when there is no model or nothing changed. The
        newest model is loaded first when it changed (:meth:`refresh_model`)."""
        self.refresh_model()
        matcher = self.matcher
        if matcher is None:
            return None
        if not self._index_ready:
            matcher.update_rows(self.matching_rows())
            self._index_ready = True
            log.info("matching with model %s over %d indexed records", matcher.version,
                     len(matcher.index))
        changed = matcher.update_rows((k, row_of(states[k])) for k in keys if k in states)
        if not changed:
            return None
        last = {r.record_key: r for r in fresh}
        at = max(r.event_ts for r in fresh)
        plan = matcher.plan(changed, self.graph, lambda k: last[k].source,
                            lambda k: last[k].event_id, at)
        changes = self.graph.apply([], [], plan.edges) if plan.edges else GraphChanges()
        return changes, plan

    def queue_reviews(self, plan: MatchPlan) -> int:
        """Put the plan's pairs between the thresholds in the review queue; returns how
        many were new."""
        return self.propose_reviews(plan.reviews)

    def propose_reviews(self, items: list[tuple[str, str, float, float, str,
                                                 tuple[tuple[str, str, float], ...]]]) -> int:
        """Queue ``(record_a, record_b, weight, probability, model, contributions)`` pairs
        with the home regions their records' profiles have now (read from the store, which
        the batch was written to first), so that a server shows a review only where both
        records are served; returns how many were new."""
        if not items:
            return 0
        keys = list(dict.fromkeys(k for a, b, *_ in items for k in (a, b)))
        regions = {k: s.home_region for k, s in self.store.get_records(keys).items()}
        queued = self.reviews.propose(items, regions)
        if self.matcher is not None:
            self.matcher.decided.update((a, b) for a, b, *_ in items)
        return queued

    def accepted_review_edges(self) -> tuple[list[MatchEdge], list[str]]:
        """Match edges for the reviews accepted and not yet applied (at most 1,000), and
        their review IDs. The per-type limits still apply (a pair they refuse becomes an
        unlinked edge with the reason); the name-conflict guard does not: a steward decided."""
        accepted = self.reviews.list("accepted", limit=1000)
        if not accepted:
            return [], []
        pairs = [(r.record_a, r.record_b) for r in accepted]
        blockers = self.planner.match_blockers(
            pairs, self.graph, frozenset(self.settings.limit_exempt_types),
            check_names=[False] * len(pairs))
        now = time.time()
        edges = [MatchEdge(record_a=r.record_a, record_b=r.record_b, linked=not why,
                           rule=f"review:{r.model_version}", reason=why,
                           match_weight=r.match_weight, probability=r.probability,
                           model_version=r.model_version, contributions=r.contributions,
                           source="review", event_id=r.review_id, at=now)
                 for r, why in zip(accepted, blockers, strict=True)]
        return edges, [r.review_id for r in accepted]

    def catch_up(self, record_keys: Iterable[str]) -> None:
        """Re-index records other writers changed, and learn their review decisions."""
        if self.matcher is None:
            return
        keys = sorted(record_keys)
        if self._index_ready and keys:
            states = self.store.get_records(keys)
            self.matcher.update_rows(
                (k, row_of(states[k]) if k in states else None) for k in keys)
        self.matcher.decided = self.reviews.decided_pairs()
