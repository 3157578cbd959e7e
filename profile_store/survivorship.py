"""From events to record state, and from record states to one profile.

Record state (:func:`apply_event`): each attribute keeps the value of the newest event
that carried it, by *event time*, not arrival order: an older event arriving late does not
overwrite a newer value (it still counts as an event). Consent per purpose follows the same
rule. Identifiers keep first and last seen.

Profile (:meth:`ProfileBuilder.build`): a fold over the profile's records. For each
attribute the configured rule picks one value among the records' values:

* ``source_priority``: the value from the highest-priority source (order of
  ``SurvivorshipSettings.source_priority``; unlisted sources last); ties: most recent.
* ``most_recent``: the value with the latest event time; ties: source priority.
* ``most_frequent``: the value held by most records; ties: most recent, then source.

Every chosen value carries its provenance (source, record, event time, rule).
"""

from __future__ import annotations

from collections.abc import Iterable

from idgraph.profile_store.base import (
    AttributeValue,
    Profile,
    ProfileIdentifier,
    SourceCounter,
    StoredRecord,
)
from idgraph.profile_store.settings import SurvivorshipSettings
from idgraph.resolver.model import IdentityRecord


def new_record_state(rec: IdentityRecord, region: str) -> StoredRecord:
    t = rec.event_ts
    return StoredRecord(
        record_key=rec.record_key, source=rec.source, source_record_id=rec.source_record_id,
        region=region, profile_id="", identifiers={}, attributes={}, consent={},
        event_count=0, first_seen=t, last_seen=t,
    )


def apply_event(state: StoredRecord, rec: IdentityRecord, linked: dict[str, bool],
                blocked: dict[str, str] | None, region: str) -> None:
    """Fold one event into its record's state (the event is known to be new)."""
    t = rec.event_ts
    state.event_count += 1
    state.first_seen = min(state.first_seen, t)
    newest = t >= state.last_seen
    if newest:
        state.last_seen = t
        state.region = region
    attrs = state.attributes
    for name, value in rec.attributes.items():
        old = attrs.get(name)
        if old is None or t >= old[1]:
            attrs[name] = (value, t)
    for purpose, granted in rec.consent.items():
        old_c = state.consent.get(purpose)
        if old_c is None or t >= old_c[1]:
            state.consent[purpose] = (granted, t)
    ids = state.identifiers
    for ident in rec.identifiers:
        key = ident.key
        if key not in linked:
            continue  # blocked: never attached
        old_i = ids.get(key)
        if old_i is None:
            ids[key] = (t, t, linked[key])
        else:
            ids[key] = (min(old_i[0], t), max(old_i[1], t), linked[key])
    if blocked:
        state.rejected.update(blocked)
    for rej in rec.rejected:
        state.rejected[f"{rej.type} ({rej.field})"] = rej.reason


def identifier_type(key: str) -> str:
    """Type part of a canonical identifier key (``crm:hubspot:51`` -> ``crm:hubspot``)."""
    head, rest = key.split(":", 1)
    if head in ("crm", "user", "ext"):
        return f"{head}:{rest.split(':', 1)[0]}"
    return head


class ProfileBuilder:
    """Builds :class:`Profile` values from record states under the survivorship settings."""

    def __init__(self, settings: SurvivorshipSettings) -> None:
        self._settings = settings
        self._rank = {s: i for i, s in enumerate(settings.source_priority)}
        self._rules: dict[str, str] = {}

    def _rule(self, attribute: str) -> str:
        rule = self._rules.get(attribute)
        if rule is None:
            rule = self._rules[attribute] = self._settings.rule_for(attribute)
        return rule

    def build(self, profile_id: str, region: str, records: Iterable[StoredRecord],
              aliases: list[str], now: float) -> Profile:
        unlisted = len(self._rank)
        # attribute -> value -> [record count, best source rank, latest time, record, source]
        cands: dict[str, dict[str, list]] = {}
        idents: dict[str, list] = {}  # key -> [first, last, sources(set), linked]
        counters: dict[str, list] = {}  # source -> [events, records, first, last]
        consent: dict[str, tuple[bool, float]] = {}
        record_keys: list[str] = []
        first = last = None
        events = 0
        for rec in records:
            record_keys.append(rec.record_key)
            src = rec.source
            rank = self._rank.get(src, unlisted)
            for name, (value, t) in rec.attributes.items():
                per_value = cands.get(name)
                if per_value is None:
                    per_value = cands[name] = {}
                c = per_value.get(value)
                if c is None:
                    per_value[value] = [1, rank, t, rec.record_key, src]
                else:
                    c[0] += 1
                    c[1] = min(c[1], rank)
                    if t > c[2] or (t == c[2] and rec.record_key < c[3]):
                        c[2], c[3], c[4] = t, rec.record_key, src
            for key, (f, lst, linked) in rec.identifiers.items():
                i = idents.get(key)
                if i is None:
                    idents[key] = [f, lst, {src}, linked]
                else:
                    i[0] = min(i[0], f)
                    i[1] = max(i[1], lst)
                    i[2].add(src)
                    i[3] = i[3] or linked
            sc = counters.get(src)
            if sc is None:
                counters[src] = [rec.event_count, 1, rec.first_seen, rec.last_seen]
            else:
                sc[0] += rec.event_count
                sc[1] += 1
                sc[2] = min(sc[2], rec.first_seen)
                sc[3] = max(sc[3], rec.last_seen)
            for purpose, (granted, t) in rec.consent.items():
                old = consent.get(purpose)
                if old is None or t > old[1]:
                    consent[purpose] = (granted, t)
            events += rec.event_count
            first = rec.first_seen if first is None else min(first, rec.first_seen)
            last = rec.last_seen if last is None else max(last, rec.last_seen)

        attributes: dict[str, AttributeValue] = {}
        for name, per_value in cands.items():
            rule = self._rule(name)
            if len(per_value) == 1:
                value, c = next(iter(per_value.items()))
            elif rule == "source_priority":
                value, c = min(per_value.items(), key=lambda kv: (kv[1][1], -kv[1][2], kv[0]))
            elif rule == "most_frequent":
                value, c = min(per_value.items(),
                               key=lambda kv: (-kv[1][0], -kv[1][2], kv[1][1], kv[0]))
            else:
                value, c = min(per_value.items(), key=lambda kv: (-kv[1][2], kv[1][1], kv[0]))
            attributes[name] = AttributeValue(value, c[4], c[3], c[2], rule)

        return Profile(
            profile_id=profile_id,
            region=region,
            identifiers=[
                ProfileIdentifier(k, identifier_type(k), v[0], v[1], sorted(v[2]), v[3])
                for k, v in sorted(idents.items())
            ],
            attributes=dict(sorted(attributes.items())),
            sources=[SourceCounter(s, v[0], v[1], v[2], v[3]) for s, v in sorted(counters.items())],
            record_keys=record_keys,
            aliases=aliases,
            consent={p: g for p, (g, _) in sorted(consent.items())},
            first_seen=first or 0.0,
            last_seen=last or 0.0,
            event_count=events,
            updated_at=now,
        )
