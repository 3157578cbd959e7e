"""Deterministic link decisions with over-merge guards.

For a batch of records, :class:`LinkPlanner` decides for every (record, identifier) pair
whether the edge *links* (joins the record's profile with whatever the identifier already
belongs to) or is only *attached*, and why. It reads the components the graph already has
and replays the batch in order on a local union-find, so the decisions inside one batch
see each other exactly as the graph will apply them.

Rules, per identifier type (``LinkingSettings.identifier_rules``):

* ``links``: identical normalised values link records; other types are only attached.
* blocked values (placeholders such as ``test@test.com``) are never attached; they are
  recorded on the record with the reason.
* ``max_per_profile``: a link that would give the profile more distinct values of a type
  than the limit is rejected (recorded as an attached edge with the reason). Identifiers
  are considered in descending ``priority``, so strong identifiers (CRM IDs, user IDs,
  emails) link first and the limits reject the weaker ones.
* ``shareable`` (devices, advertising IDs, cookies): such an identifier may join an
  anonymous profile (one without any non-shareable identifier) to another profile, but
  never two known profiles: a household tablet does not merge the family. The link is
  rejected and the identifier stays attached to both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from idgraph.core.links import GraphComponents, LinkEdge
from idgraph.resolver.model import Identifier, IdentityRecord
from idgraph.resolver.settings import IdentifierRule, LinkingSettings


@dataclass(slots=True)
class LinkPlan:
    """Records to create, edges to add, and identifiers refused before reaching the graph."""

    new_records: list[tuple[str, float]] = field(default_factory=list)
    edges: list[LinkEdge] = field(default_factory=list)
    blocked: dict[str, dict[str, str]] = field(default_factory=dict)
    """record key -> identifier -> reason (blocked values)."""
    record_edges: dict[str, dict[str, bool]] = field(default_factory=dict)
    """record key -> identifier -> linked, for every edge each planned record has once the
    plan is applied (its existing edges and the new ones)."""

    @property
    def rejected_links(self) -> list[LinkEdge]:
        return [e for e in self.edges if not e.linked]


class LinkPlanner:
    """Decides links for one batch at a time against the current graph."""

    def __init__(self, settings: LinkingSettings) -> None:
        self._settings = settings
        self._rules: dict[str, IdentifierRule] = {}
        self._blocked = frozenset(v.strip().lower() for v in settings.blocked_values)
        self._blocked_local = frozenset(p.lower() for p in settings.blocked_email_local_parts)

    def rule(self, identifier_type: str) -> IdentifierRule:
        rule = self._rules.get(identifier_type)
        if rule is None:
            rule = self._rules[identifier_type] = self._settings.rule_for(identifier_type)
        return rule

    def shareable_types(self) -> frozenset[str]:
        return frozenset(t for t, r in self._settings.identifier_rules.items() if r.shareable)

    def blocked_reason(self, ident: Identifier) -> str | None:
        if ident.key.lower() in self._blocked:
            return "blocked value (configured placeholder)"
        if ident.type == "email" and ident.value.split("@", 1)[0] in self._blocked_local:
            return "blocked value (no-reply mailbox)"
        return None

    def plan(self, records: list[IdentityRecord], graph: GraphComponents) -> LinkPlan:
        """Decide every new edge of ``records`` (in order); existing edges are kept as they are."""
        rec_keys = list(dict.fromkeys(r.record_key for r in records))
        ident_keys = list(dict.fromkeys(i.key for r in records for i in r.identifiers))
        rec_info, ident_info = graph.component_info(rec_keys, ident_keys)
        existing = graph.edges_of(rec_keys)
        components = _Components()
        for info in (*rec_info.values(), *ident_info.values()):
            components.add(info.component, info.type_counts, info.known)
        token_of_rec = {k: i.component for k, i in rec_info.items()}
        token_of_ident = {k: i.component for k, i in ident_info.items()}

        plan = LinkPlan(record_edges=existing)
        for rec in records:
            rk = rec.record_key
            token = token_of_rec.get(rk)
            if token is None:  # a new record founds a component of its own
                token = token_of_rec[rk] = "new:" + rk
                components.add(token, {}, False)
                plan.new_records.append((rk, rec.event_ts))
            have = existing.setdefault(rk, {})
            for ident in self._by_priority(rec.identifiers):
                if ident.key in have:
                    continue
                reason = self.blocked_reason(ident)
                if reason is not None:
                    plan.blocked.setdefault(rk, {})[ident.key] = reason
                    continue
                linked, why = self._decide(ident, components.find(token), token_of_ident,
                                           components)
                have[ident.key] = linked
                plan.edges.append(LinkEdge(
                    record_key=rk, identifier=ident.key, identifier_type=ident.type,
                    linked=linked, rule=f"deterministic:{ident.type}" if linked else "rejected",
                    reason=why, source=rec.source, event_id=rec.event_id, at=rec.event_ts,
                ))
        return plan

    def _by_priority(self, identifiers: list[Identifier]) -> list[Identifier]:
        """Strong identifiers first, so the limits reject the weaker ones (stable)."""
        if len(identifiers) < 2:
            return identifiers
        return sorted(identifiers, key=lambda i: -self.rule(i.type).priority)

    def _decide(self, ident: Identifier, root: str, token_of_ident: dict[str, str],
                components: _Components) -> tuple[bool, str]:
        """Whether the edge from the record in component ``root`` to ``ident`` links, and
        why not; a link is applied to ``components`` at once, so later decisions see it."""
        rule = self.rule(ident.type)
        if not rule.links:
            return False, f"{ident.type} identifiers do not link (rule)"
        other = token_of_ident.get(ident.key)
        if other is None:  # an identifier no component has yet: it joins this one
            if components.counts[root].get(ident.type, 0) >= rule.max_per_profile:
                return False, (f"limit: profile already has {rule.max_per_profile} "
                               f"{ident.type} identifier(s)")
            components.add_identifier(root, ident.type, known=not rule.shareable)
            token_of_ident[ident.key] = root
            return True, ""
        other = components.find(other)
        if other == root:
            return True, ""
        why = self._merge_blocker(components.counts[root], components.known[root],
                                  components.counts[other], components.known[other], rule,
                                  ident.type)
        if why:
            return False, why
        components.union(root, other)
        return True, ""

    def match_blockers(self, pairs: list[tuple[str, str]], graph: GraphComponents,
                       exempt: frozenset[str] = frozenset()) -> list[str]:
        """For record pairs to be linked in order, why each is refused ('' if it links).

        Applies the per-type identifier limits to the profiles a pair would join, replaying
        the earlier pairs of the list as links (shareability does not apply: no identifier
        is involved). Limits of identifier kinds in ``exempt`` (``crm``, ``user``) are not
        applied.
        """
        keys = list(dict.fromkeys(k for pair in pairs for k in pair))
        rec_info, _ = graph.component_info(keys, ())
        components = _Components()
        token: dict[str, str] = {}
        for k in keys:
            info = rec_info.get(k)
            if info is None:
                token[k] = "new:" + k
                components.add(token[k], {}, False)
            else:
                token[k] = info.component
                components.add(info.component, info.type_counts, info.known)
        out = []
        for a, b in pairs:
            ta, tb = components.find(token[a]), components.find(token[b])
            why = "" if ta == tb else self._limit_blocker(components.counts[ta],
                                                          components.counts[tb], exempt)
            if ta != tb and not why:
                components.union(ta, tb)
            out.append(why)
        return out

    def _limit_blocker(self, ca: dict[str, int], cb: dict[str, int],
                       exempt: frozenset[str] = frozenset()) -> str:
        for t in ca.keys() & cb.keys():
            if t.split(":", 1)[0] in exempt:
                continue
            limit = self.rule(t).max_per_profile
            if ca[t] + cb[t] > limit:
                return f"limit: merge would give {ca[t] + cb[t]} {t} identifiers (max {limit})"
        return ""

    def _merge_blocker(self, ca: dict[str, int], ka: bool, cb: dict[str, int], kb: bool,
                       via: IdentifierRule, via_type: str) -> str:
        """Why joining two profiles through an identifier of ``via_type`` is refused ('' if not)."""
        if via.shareable and ka and kb:
            return f"shared {via_type}: both profiles already have a non-shareable identifier"
        return self._limit_blocker(ca, cb)


class _Components:
    """The components a batch touches, as the batch's decisions change them: a union-find
    over component tokens, with each root's count of distinct linked identifiers per type
    and whether it holds a non-shareable (known) identifier."""

    __slots__ = ("counts", "known", "parent")

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}
        self.counts: dict[str, dict[str, int]] = {}
        self.known: dict[str, bool] = {}

    def add(self, token: str, type_counts: dict[str, int], known: bool) -> None:
        """A component as the graph has it (ignored when already added)."""
        if token not in self.parent:
            self.parent[token] = token
            self.counts[token] = dict(type_counts)
            self.known[token] = known

    def find(self, token: str) -> str:
        """The root token of ``token``'s component (compressing the path)."""
        parent = self.parent
        root = token
        while parent[root] != root:
            root = parent[root]
        while parent[token] != root:
            parent[token], token = root, parent[token]
        return root

    def add_identifier(self, root: str, identifier_type: str, known: bool) -> None:
        counts = self.counts[root]
        counts[identifier_type] = counts.get(identifier_type, 0) + 1
        self.known[root] = self.known[root] or known

    def union(self, into: str, other: str) -> None:
        """Join root ``other`` into root ``into`` (counts added, known if either is)."""
        self.parent[other] = into
        counts = self.counts[into]
        for identifier_type, n in self.counts.pop(other).items():
            counts[identifier_type] = counts.get(identifier_type, 0) + n
        self.known[into] = self.known[into] or self.known.pop(other)
