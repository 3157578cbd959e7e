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

Two guards read who the records are (name signatures, :mod:`idgraph.resolver.names`):

* **generic values** (``LinkingSettings.generic``): a value of an email, phone or message
  type carried by records naming more than ``max_people`` different people (a company
  switchboard, a household landline, ``thesmiths@``), or seeded as one (role mailboxes such
  as ``info@``/``kontakt@``, listed values), links nothing any more. The batch's plan names
  the newly generic values (:attr:`LinkPlan.generic`); the graph demotes their linked
  edges in the same write, which splits the profiles they had merged. The decision is
  made for the whole batch before any link, so the order of the batch does not matter.
* **name conflicts** (``LinkingSettings.name_conflicts``): an edge that would join two
  profiles whose records name different people is rejected, unless the identifier is a CRM
  or user ID (``conflict_exempt_types``): a shared phone does not join ``John Smith`` and
  ``Mary Smith``. :meth:`LinkPlanner.match_blockers` applies the same guard to
  probabilistic and reviewed links.
* **shared mailbox records**: a record of a source keyed by an email address
  (``mailbox_sources``: SendGrid, Mandrill, Calendar) whose address is generic belongs to
  the mailbox, not to a person: none of its new edges link (a CRM ID in a custom argument
  of mail sent to ``info@``, the Message-ID a colleague replies to), and when the address
  becomes generic the record is detached (:attr:`LinkPlan.detached`): every edge it had
  linked stops linking in the same graph write.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from idgraph.core.links import GraphComponents, LinkEdge
from idgraph.resolver.domains import company_domain
from idgraph.resolver.model import Identifier, IdentityRecord
from idgraph.resolver.names import NameJudge, name_signature
from idgraph.resolver.settings import IdentifierRule, LinkingSettings

GENERIC = "generic value"
"""Reason prefix of an edge to a generic value."""
SHARED_MAILBOX = "shared mailbox record"
"""Reason prefix of an edge of a shared mailbox's record."""
NOT_THE_PERSONS = (GENERIC, SHARED_MAILBOX)
"""Reason prefixes of values that are not the record's person's own (the model skips them)."""
CONFLICT_REASON = "conflict: the profiles name different people"
ADDRESS_CONFLICT_REASON = "conflict: the profiles have different addresses at one company"
_NEW = "new:"
"""Prefix of the component token of a record the graph does not have yet (apart from the
graph's own tokens)."""


def record_signature(record: IdentityRecord) -> str:
    """The name signature of what one event says the record's person is called."""
    attrs = record.attributes
    return name_signature(attrs.get("given_name"), attrs.get("family_name"))


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
    names: dict[str, str] = field(default_factory=dict)
    """record key -> name signature, for the batch's records that name someone."""
    generic: dict[str, str] = field(default_factory=dict)
    """Identifiers this batch found generic -> why (the graph demotes their edges)."""
    detached: dict[str, str] = field(default_factory=dict)
    """Records of a shared mailbox found this batch -> why: every linked edge they have
    stops linking (the graph applies it with ``generic``)."""
    demoted: list[tuple[str, str]] = field(default_factory=list)
    """(identifier, record key) of existing edges that stop linking because of ``generic``
    or ``detached`` (for the identifier index)."""

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
        gen = settings.generic
        self._generic_on = gen.enabled
        self._generic_kinds = frozenset(gen.types)
        self._generic_max_people = gen.max_people
        self._role_locals = frozenset(_local_key(p.lower()) for p in gen.role_local_parts)
        self._generic_values = frozenset(v.strip().lower() for v in gen.values)
        self._max_per_source = dict(gen.max_records_per_source)
        self._household_local = tuple(re.compile(p) for p in gen.household_local_patterns)
        self._mailbox_sources = frozenset(settings.mailbox_sources)
        self._conflicts_on = settings.name_conflicts
        self._conflict_exempt = frozenset(settings.conflict_exempt_types)
        self.judge = NameJudge()

    def rule(self, identifier_type: str) -> IdentifierRule:
        if identifier_type not in self._rules:
            self._rules[identifier_type] = self._settings.rule_for(identifier_type)
        return self._rules[identifier_type]

    def shareable_types(self) -> frozenset[str]:
        return frozenset(t for t, r in self._settings.identifier_rules.items() if r.shareable)

    def blocked_reason(self, ident: Identifier) -> str | None:
        if ident.key.lower() in self._blocked:
            return "blocked value (configured placeholder)"
        if ident.type == "email" and ident.value.split("@")[0] in self._blocked_local:
            return "blocked value (no-reply mailbox)"
        return None

    def plan(self, records: list[IdentityRecord], graph: GraphComponents) -> LinkPlan:
        """Decide every new edge of ``records`` (in order); existing edges are kept as they
        are, except those to values this batch finds generic."""
        rec_keys = list(dict.fromkeys(r.record_key for r in records))
        ident_keys = list(dict.fromkeys(i.key for r in records for i in r.identifiers))
        rec_info, ident_info = graph.component_info(rec_keys, ident_keys)
        existing = graph.edges_of(rec_keys)
        components = _Components()
        for info in (*rec_info.values(), *ident_info.values()):
            components.add(info.component, info.type_counts, info.known, info.names,
                           _company_addresses(info.emails))
        token_of_rec = {k: i.component for k, i in rec_info.items()}
        token_of_ident = {k: i.component for k, i in ident_info.items()}

        plan = LinkPlan(record_edges=existing)
        for rec in records:  # the newest name an event gives a record wins
            sig = record_signature(rec)
            if sig:
                plan.names[rec.record_key] = sig
        generic = self._generic(records, graph, plan, existing)
        for rec in records:
            rk = rec.record_key
            token = token_of_rec.get(rk)
            if token is None:  # a new record founds a component of its own
                token = token_of_rec[rk] = _NEW + rk
                components.add(token, {})
                plan.new_records.append((rk, rec.event_ts))
            sig = plan.names.get(rk)
            if sig:
                components.add_name(components.find(token), sig)
            have = existing.setdefault(rk, {})
            own = frozenset(i.value for i in rec.identifiers if i.type == "email")
            why = (generic.get("email:" + rec.source_record_id)
                   if rec.source in self._mailbox_sources else None)
            mailbox = _mailbox_reason(why) if why else ""
            for ident in self._by_priority(rec.identifiers):
                if ident.key in have:
                    continue
                reason = self.blocked_reason(ident)
                if reason is not None:
                    plan.blocked.setdefault(rk, {})[ident.key] = reason
                    continue
                reason = generic.get(ident.key) or mailbox
                if reason:
                    linked, why = False, reason
                else:
                    linked, why = self._decide(ident, components.find(token), token_of_ident,
                                               components, own)
                have[ident.key] = linked
                plan.edges.append(LinkEdge(
                    record_key=rk, identifier=ident.key, identifier_type=ident.type,
                    linked=linked, rule=f"deterministic:{ident.type}" if linked else "rejected",
                    reason=why, source=rec.source, event_id=rec.event_id, at=rec.event_ts,
                ))
        return plan

    def _generic(self, records: list[IdentityRecord], graph: GraphComponents, plan: LinkPlan,
                 existing: dict[str, dict[str, bool]]) -> dict[str, str]:
        """Every generic value among the batch's identifiers -> why: those marked before
        and those the batch's evidence makes generic (recorded in ``plan.generic`` and
        ``plan.demoted``, and set unlinked in ``existing``)."""
        if not self._generic_on:
            return {}
        carried: dict[str, set[str]] = {}  # candidate identifier -> batch records carrying it
        kind_of: dict[str, str] = {}
        for rec in records:
            for ident in rec.identifiers:
                if ident.kind in self._generic_kinds:
                    carried.setdefault(ident.key, set()).add(rec.record_key)
                    kind_of[ident.key] = ident.kind
        if not carried:
            return {}
        evidence = graph.identifier_evidence(list(carried))
        out: dict[str, str] = {}
        for key, batch_carriers in carried.items():
            ev = evidence.get(key)
            if ev is not None and ev.generic:
                out[key] = ev.generic
                continue
            reason = self._seeded(key)
            per_source = self._max_per_source.get(kind_of[key])
            if reason is None and per_source is not None:
                sources = Counter(k.split(":")[0] for k in
                                  {*batch_carriers, *(ev.carriers if ev is not None else ())})
                if max(sources.values()) > per_source:
                    reason = f"{GENERIC}: carried by several records of one source"
            if reason is None:
                names = {plan.names.get(rk) or sig
                         for rk, sig in (ev.carriers.items() if ev is not None else ())}
                names.update(plan.names[rk] for rk in batch_carriers if rk in plan.names)
                names.discard("")
                people = self.judge.groups(names)
                if people > self._generic_max_people:
                    reason = f"{GENERIC}: carried by records of {people} different people"
            if reason is None:
                continue
            out[key] = plan.generic[key] = reason
            for rk in (ev.carriers if ev is not None else ()):
                plan.demoted.append((key, rk))
                edges = existing.get(rk)
                if edges is not None and key in edges:
                    edges[key] = False
            if key.startswith("email:"):
                self._detach_mailbox_records(key, reason, {*batch_carriers, *(
                    ev.carriers if ev is not None else ())}, graph, plan, existing)
        return out

    def _detach_mailbox_records(self, key: str, reason: str, carriers: set[str],
                                graph: GraphComponents, plan: LinkPlan,
                                existing: dict[str, dict[str, bool]]) -> None:
        """The records keyed by a newly generic address (``sendgrid:info@...``) are the
        mailbox's: whatever they linked before (a CRM ID from a custom argument, a reply's
        Message-ID) stops linking."""
        address = key[len("email:"):]
        why = _mailbox_reason(reason)
        keys = {f"{source}:{address}" for source in self._mailbox_sources}
        mailbox = [rk for rk in carriers if rk in keys]
        if not mailbox:
            return
        have = graph.edges_of(mailbox)
        for rk in mailbox:
            plan.detached[rk] = why
            for ident, linked in have.get(rk, {}).items():
                if linked and ident != key:
                    plan.demoted.append((ident, rk))
            for ident in existing.get(rk, {}):
                existing[rk][ident] = False

    def _seeded(self, key: str) -> str | None:
        """Why a value is generic from first sight (a role mailbox, a listed value), or None."""
        if key.lower() in self._generic_values:
            return f"{GENERIC}: listed as shared"
        if key.startswith("email:"):
            local = key[6:].split("@")[0]
            if _local_key(local) in self._role_locals:
                return f"{GENERIC}: role mailbox"
            if any(p.fullmatch(local) for p in self._household_local):
                return f"{GENERIC}: household mailbox"
        return None

    def _conflict_reason(self, components: _Components, a: str, b: str,
                         own: frozenset[str] = frozenset()) -> str:
        """Why components ``a`` and ``b`` are different people ('' if nothing says so):
        their records name different people, or they hold different addresses at one
        company domain (the company gives each person one: ``john.smith@acme.com`` and
        ``john.smith2@acme.com`` are two colleagues of the same name), unless both
        addresses are ``own``: carried by the one record being linked (a contact's
        additional emails, an alias)."""
        names_a, names_b = components.names[a], components.names[b]
        if self.judge.sets_disagree(names_a, names_b):
            return CONFLICT_REASON
        addr_a, addr_b = components.addresses[a], components.addresses[b]
        by_domain: dict[str, set[str]] = {}
        for x in addr_a:
            by_domain.setdefault(x.split("@")[1], set()).add(x)
        for y in addr_b - addr_a:
            for x in by_domain.get(y.split("@")[1], ()):
                if x not in addr_b and not (x in own and y in own):
                    return ADDRESS_CONFLICT_REASON
        return ""

    def _by_priority(self, identifiers: list[Identifier]) -> list[Identifier]:
        """Strong identifiers first, so the limits reject the weaker ones (stable)."""
        if len(identifiers) < 2:
            return identifiers
        return sorted(identifiers, key=lambda i: -self.rule(i.type).priority)

    def _decide(self, ident: Identifier, root: str, token_of_ident: dict[str, str],
                components: _Components, own: frozenset[str] = frozenset()) -> tuple[bool, str]:
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
            if ident.type == "email" and company_domain(ident.value):
                components.addresses[root].add(ident.value)
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
        if self._conflicts_on and ident.kind not in self._conflict_exempt:
            why = self._conflict_reason(components, root, other, own)
            if why:
                return False, why
        components.union(root, other)
        return True, ""

    def match_blockers(self, pairs: list[tuple[str, str]], graph: GraphComponents,
                       exempt: frozenset[str] = frozenset(),
                       check_names: Sequence[bool] | None = None) -> list[str]:
        """For record pairs to be linked in order, why each is refused ('' if it links).

        Applies the per-type identifier limits and the name-conflict guard to the profiles a
        pair would join, replaying the earlier pairs of the list as links (shareability does
        not apply: no identifier is involved). Limits of identifier kinds in ``exempt``
        (``crm``, ``user``) are not applied; the name-conflict guard is, to the pairs whose
        ``check_names`` entry is True (default: all). The callers leave it out for a pair a
        personal comparison supports (same birth date, national ID or email: a typo'd given
        name, not a relative) and for a steward's accepted review (a person decided).
        """
        keys = list(dict.fromkeys(k for pair in pairs for k in pair))
        rec_info, _ = graph.component_info(keys, ())
        components = _Components()
        token: dict[str, str] = {}
        for k in keys:
            info = rec_info.get(k)
            if info is None:
                token[k] = _NEW + k
                components.add(token[k], {})
            else:  # shareability does not apply: who is known does not matter here
                token[k] = info.component
                components.add(info.component, info.type_counts, names=info.names,
                               addresses=_company_addresses(info.emails))
        out = []
        checks = [True] * len(pairs) if check_names is None else list(check_names)
        for (a, b), check in zip(pairs, checks, strict=True):
            ta, tb = components.find(token[a]), components.find(token[b])
            why = "" if ta == tb else self._limit_blocker(components.counts[ta],
                                                          components.counts[tb], exempt)
            if ta != tb and not why and self._conflicts_on and check:
                why = self._conflict_reason(components, ta, tb)
            if ta != tb and not why:
                components.union(ta, tb)
            out.append(why)
        return out

    def _limit_blocker(self, ca: dict[str, int], cb: dict[str, int],
                       exempt: frozenset[str] = frozenset()) -> str:
        for t in ca.keys() & cb.keys():
            if t.split(":")[0] not in exempt:
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

    __slots__ = ("addresses", "counts", "known", "names", "parent")

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}
        self.counts: dict[str, dict[str, int]] = {}
        self.known: dict[str, bool] = {}
        self.names: dict[str, set[str]] = {}
        self.addresses: dict[str, set[str]] = {}  # company email addresses

    def add(self, token: str, type_counts: dict[str, int], known: bool = False,
            names: frozenset[str] = frozenset(),
            addresses: frozenset[str] = frozenset()) -> None:
        """A component as the graph has it (ignored when already added)."""
        if token not in self.parent:
            self.parent[token] = token
            self.counts[token] = dict(type_counts)
            self.known[token] = known
            self.names[token] = set(names)
            self.addresses[token] = set(addresses)

    def add_name(self, root: str, sig: str) -> None:
        self.names[root].add(sig)

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
        self.names[into] |= self.names.pop(other)
        self.addresses[into] |= self.addresses.pop(other)


def _local_key(local: str) -> str:
    """An email local part (lower case, as normalised) compared with the role list:
    ``.-_`` dropped."""
    return local.replace(".", "").replace("-", "").replace("_", "")


def _company_addresses(emails: frozenset[str]) -> frozenset[str]:
    return frozenset(e for e in emails if company_domain(e))


def _mailbox_reason(why: str) -> str:
    """Why an edge of a shared mailbox's record does not link (its address's reason)."""
    return f"{SHARED_MAILBOX} ({why})"
