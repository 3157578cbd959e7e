"""Probabilistic link decisions for a batch: candidates, scores, thresholds, guards.

:class:`Matcher` holds the compiled model and the candidate index of every matchable
record. For the records a batch touched it (1) re-indexes their matching rows, (2) scores
each against its candidates that are not already in its profile, (3) sorts the pairs by
the thresholds:

* probability >= ``link_threshold`` and no comparison of ``must_agree`` (the given name)
  counting against the pair unless one of ``personal`` (birth date, national ID, email)
  counts for it: a :class:`~idgraph.graph.base.MatchEdge` that links, unless an
  over-merge guard refuses it (the same per-type limits as deterministic links: two
  profiles each holding two different phone numbers' worth of the limit are not merged
  by a name match), except for the kinds in ``limit_exempt`` (CRM and user IDs: duplicate
  CRM contacts are what matching is for); a refused edge is kept with ``linked=False`` and the reason, so Explain can show it;
* ``review_threshold`` <= probability (and not linked above): a review proposal;
* below: nothing.

Pairs that already have a match edge, or a review entry (open or decided), are skipped,
so replaying a batch proposes nothing new.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from idgraph.core.links import GraphReads, MatchEdge
from idgraph.resolver.linking import LinkPlanner
from idgraph.resolver.probabilistic.features import different_addresses_at_one_company
from idgraph.resolver.probabilistic.scorer import CandidateIndex, MatchScore, RealtimeScorer
from idgraph.resolver.settings import MatchingSettings

Row = dict


@dataclass(slots=True)
class MatchPlan:
    edges: list[MatchEdge] = field(default_factory=list)
    reviews: list[tuple[str, str, float, float, str, tuple]] = field(default_factory=list)
    pairs_scored: int = 0


@dataclass(frozen=True, slots=True)
class Candidate:
    record_a: str
    record_b: str
    score: MatchScore
    trigger: str  # the batch record whose scoring found the pair


class Decisions:
    """What a scored pair becomes under the matching settings: the one policy the
    real-time matcher and the batch (Splink) pass both apply.

    The link threshold: with ``settings.thresholds == "model"`` and ``model_thresholds``
    (the ``thresholds`` of the model's training report,
    :func:`~idgraph.resolver.probabilistic.training.model_thresholds`), the model's own link
    threshold, never below the configured ``link_threshold``; otherwise the configured one.
    ``source`` says which (``model`` or ``settings``). The review band is the configured
    ``review_threshold`` up to the link threshold in use: a pair the model's evidence does
    not let link is reviewed, not dropped."""

    def __init__(self, settings: MatchingSettings,
                 model_thresholds: Mapping[str, Any] | None = None) -> None:
        self.link_threshold: float = settings.link_threshold
        self.source = "settings"
        if settings.thresholds == "model" and model_thresholds:
            # a model that links nothing (no pair within its false-link rate) says so
            # with ``link_weight`` None: nothing reaches an infinite threshold
            link = (math.inf if model_thresholds.get("link_weight", 0.0) is None
                    else float(model_thresholds["link"]))
            self.link_threshold = max(settings.link_threshold, link)
            self.source = "model"
        self.review_threshold: float = settings.review_threshold
        self.must_agree = frozenset(settings.must_agree)
        self.personal = frozenset(settings.personal)
        self.limit_exempt = frozenset(settings.limit_exempt_types)

    def decide(self, probability: float,
               contributions: Iterable[tuple[str, str, float]]) -> str | None:
        """``link``, ``review`` or None (nothing)."""
        if probability >= self.link_threshold and self.auto_linkable(contributions):
            return "link"
        return "review" if probability >= self.review_threshold else None

    def auto_linkable(self, contributions: Iterable[tuple[str, str, float]]) -> bool:
        """False when a comparison in ``must_agree`` counts against the pair (negative
        weight) and no comparison in ``personal`` counts for it: such a pair is at most
        reviewed, never linked automatically (household members, not one person)."""
        against = for_ = False
        for name, _label, w in contributions:
            if name in self.must_agree and w < 0:
                against = True
            elif name in self.personal and w > 0:
                for_ = True
        return for_ or not against


def personally_supported(decisions: Decisions,
                         contributions: Iterable[tuple[str, str, float]]) -> bool:
    """A comparison of ``personal`` (birth date, national ID, email) counts for the pair:
    the name-conflict guard of :meth:`~idgraph.resolver.linking.LinkPlanner.match_blockers`
    does not apply to it (a typo'd given name, not a relative)."""
    return any(name in decisions.personal and w > 0 for name, _label, w in contributions)


class Matcher:
    """Real-time probabilistic matching over a candidate index (one writer)."""

    def __init__(self, scorer: RealtimeScorer, planner: LinkPlanner,
                 settings: MatchingSettings) -> None:
        self.scorer = scorer
        self.planner = planner
        self.decisions = Decisions(settings)
        self.index = CandidateIndex(scorer, settings.max_block)
        self.decided: set[tuple[str, str]] = set()
        """Pairs with a review entry (any status): never proposed or auto-linked again."""

    @property
    def version(self) -> str:
        return self.scorer.version

    def update_rows(self, rows: Iterable[tuple[str, Row | None]]) -> list[str]:
        """Index the given rows (None: the record has nothing to match on); returns the keys
        whose rows are new or changed, in input order."""
        changed = []
        index = self.index
        for key, row in rows:
            if row is None:
                index.remove(key)
            elif index.put(key, row):
                changed.append(key)
        return changed

    def plan(self, record_keys: list[str], graph: GraphReads, source_of: Callable[[str], str],
             event_of: Callable[[str], str], at: float) -> MatchPlan:
        """Score ``record_keys`` (already indexed) against their candidates and decide."""
        plan = MatchPlan()
        index = self.index
        rows = index.rows
        existing = graph.matches_of(record_keys)
        seen: set[tuple[str, str]] = set()
        links: list[Candidate] = []
        profile_of = graph.profile_of
        score = self.scorer.score
        decide = self.decisions.decide
        for key in record_keys:
            row = rows.get(key)
            if row is None:
                continue
            pid = profile_of(key)
            have = existing.get(key, {})
            for other in index.candidates(key, row):
                a, b = (key, other) if key < other else (other, key)
                if (a, b) in seen or other in have or (a, b) in self.decided:
                    continue
                seen.add((a, b))
                if pid is not None and profile_of(other) == pid:
                    continue
                s = score(rows[a], rows[b])  # Splink puts the lower unique_id on the left
                plan.pairs_scored += 1
                decision = decide(s.probability, s.contributions)
                if decision == "link" and different_addresses_at_one_company(rows[a], rows[b]):
                    decision = "review"
                if decision == "link":
                    links.append(Candidate(a, b, s, key))
                elif decision == "review":
                    plan.reviews.append((a, b, s.match_weight, s.probability, self.version,
                                         s.contributions))
        links.sort(key=lambda c: (-c.score.match_weight, c.record_a, c.record_b))
        blocked = self.planner.match_blockers(
            [(c.record_a, c.record_b) for c in links], graph, self.decisions.limit_exempt,
            check_names=[not personally_supported(self.decisions, c.score.contributions)
                         for c in links])
        for c, why in zip(links, blocked, strict=True):
            plan.edges.append(self.edge(c.record_a, c.record_b, c.score, not why, why,
                                        f"probabilistic:{self.version}", source_of(c.trigger),
                                        event_of(c.trigger), at))
        return plan

    def edge(self, a: str, b: str, s: MatchScore, linked: bool, reason: str, rule: str,
             source: str, event_id: str, at: float) -> MatchEdge:
        return MatchEdge(record_a=a, record_b=b, linked=linked, rule=rule, reason=reason,
                         match_weight=s.match_weight, probability=s.probability,
                         model_version=self.version, contributions=s.contributions,
                         source=source, event_id=event_id, at=at)
