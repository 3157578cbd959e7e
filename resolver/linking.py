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

        parent: dict[str, str] = {}
        counts: dict[str, dict[str, int]] = {}
        known: dict[str, bool] = {}
        for info in list(rec_info.values()) + list(ident_info.values()):
            if info.component not in parent:
                parent[info.component] = info.component
                counts[info.component] = dict(info.type_counts)
                known[info.component] = info.known

        def find(t: str) -> str:
            root = t
            while parent[root] != root:
                root = parent[root]
            while parent[t] != root:
                parent[t], t = root, parent[t]
            return root

        token_of_rec = {k: i.component for k, i in rec_info.items()}
        token_of_ident = {k: i.component for k, i in ident_info.items()}
        plan = LinkPlan(record_edges=existing)
        rule = self.rule
        for rec in records:
            rk = rec.record_key
            tok = token_of_rec.get(rk)
            if tok is None:
                tok = token_of_rec[rk] = "new:" + rk
                parent[tok], counts[tok], known[tok] = tok, {}, False
                plan.new_records.append((rk, rec.event_ts))
            have = existing.setdefault(rk, {})
            at = rec.event_ts
            idents = rec.identifiers
            if len(idents) > 1:
                idents = sorted(idents, key=lambda i: -rule(i.type).priority)
            for ident in idents:
                key = ident.key
                if key in have:
                    continue
                reason = self.blocked_reason(ident)
                if reason is not None:
                    plan.blocked.setdefault(rk, {})[key] = reason
                    continue
                r = rule(ident.type)
                t = find(tok)
                linked, why = True, ""
                if not r.links:
                    linked, why = False, f"{ident.type} identifiers do not link (rule)"
                else:
                    it = token_of_ident.get(key)
                    if it is None:
                        ct = counts[t]
                        if ct.get(ident.type, 0) >= r.max_per_profile:
                            linked = False
                            why = (f"limit: profile already has {r.max_per_profile} "
                                   f"{ident.type} identifier(s)")
                        else:
                            ct[ident.type] = ct.get(ident.type, 0) + 1
                            known[t] = known[t] or not r.shareable
                            token_of_ident[key] = t
                    else:
                        it = find(it)
                        if it != t:
                            why = self._merge_blocker(counts[t], known[t], counts[it], known[it], r,
                                                      ident.type)
                            if why:
                                linked = False
                            else:
                                parent[it] = t
                                ct = counts[t]
                                for typ, n in counts.pop(it).items():
                                    ct[typ] = ct.get(typ, 0) + n
                                known[t] = known[t] or known.pop(it)
                have[key] = linked
                plan.edges.append(LinkEdge(
                    record_key=rk, identifier=key, identifier_type=ident.type, linked=linked,
                    rule=f"deterministic:{ident.type}" if linked else "rejected", reason=why,
                    source=rec.source, event_id=rec.event_id, at=at,
                ))
        return plan

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
        parent: dict[str, str] = {}
        counts: dict[str, dict[str, int]] = {}
        token: dict[str, str] = {}
        for k in keys:
            info = rec_info.get(k)
            tok = info.component if info is not None else "new:" + k
            token[k] = tok
            if tok not in parent:
                parent[tok] = tok
                counts[tok] = dict(info.type_counts) if info is not None else {}

        def find(t: str) -> str:
            while parent[t] != t:
                parent[t] = parent[parent[t]]
                t = parent[t]
            return t

        out = []
        for a, b in pairs:
            ta, tb = find(token[a]), find(token[b])
            if ta == tb:
                out.append("")
                continue
            why = self._limit_blocker(counts[ta], counts[tb], exempt)
            if not why:
                parent[tb] = ta
                ca = counts[ta]
                for typ, n in counts.pop(tb).items():
                    ca[typ] = ca.get(typ, 0) + n
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
