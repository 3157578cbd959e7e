"""From events to record state, and from record states to one profile.

Record state (:func:`apply_event`): each attribute keeps the value of the newest event
that carried it, by *event time*, not arrival order: an older event arriving late does not
overwrite a newer value (it still counts as an event). Consent per purpose follows the same
rule. Identifiers keep first and last seen.

Events (:func:`add_event`): a record keeps its events in time order (ties by event ID),
each once per event ID (a redelivered event carries its ID and time, and applying it again
changes nothing), the ones at most ``event_retention_days`` older than the record's newest
event, at most ``max_events_per_record`` (the newest), each with its properties bounded.

Profile (:meth:`ProfileBuilder.build`): a fold over the profile's records. For each
attribute the configured rule picks one value among the records' values:

* ``source_priority``: the value from the highest-priority source (order of
  ``SurvivorshipSettings.source_priority``; unlisted sources last); ties: most recent.
* ``most_recent``: the value with the latest event time; ties: source priority.
* ``most_frequent``: the value held by most records; ties: most recent, then source.

Every chosen value carries its provenance (source, record, event time, rule).

The profile's ``events`` (its activity timeline) are its records' events merged in time
order, the newest ``profile_events_limit`` of them (or all with ``all_events``); ties by
event ID, so the same records give the same timeline whatever order they are read in.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections.abc import Collection, Iterable, Sequence
from itertools import islice

from idgraph.profile_store.base import (
    AttributeValue,
    Profile,
    ProfileIdentifier,
    RecordEvent,
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


_DEFAULTS = SurvivorshipSettings()
_DAY = 86_400.0


def _event_order(event: RecordEvent) -> tuple[float, str]:
    return event.at, event.event_id


def add_event(events: list[RecordEvent], event: RecordEvent, retention_seconds: float,
              max_events: int) -> bool:
    """Insert ``event`` into ``events`` (kept in (time, event ID) order), then drop the
    events more than ``retention_seconds`` older than the newest one and the oldest beyond
    ``max_events``. Returns False, changing nothing, when an event with the same ID and
    time is already there; True otherwise (even when the event itself is too old to keep)."""
    key = (event.at, event.event_id)
    if not events or key > _event_order(events[-1]):
        events.append(event)  # the usual case: the newest event so far
    else:
        # here the newest event is not older than this one, so events[i] exists
        i = bisect_left(events, key, key=_event_order)
        if _event_order(events[i]) == key:
            return False
        events.insert(i, event)
    cutoff = events[-1].at - retention_seconds
    del events[:bisect_left(events, cutoff, key=lambda e: e.at)]
    del events[:max(0, len(events) - max_events)]
    return True


def bounded_properties(properties: dict[str, str | float], max_properties: int,
                       max_chars: int) -> dict[str, str | float]:
    """``properties`` without text (values or names) longer than ``max_chars``, and without
    those beyond the first ``max_properties`` (of the ones kept); a new dict."""
    kept = ((k, v) for k, v in properties.items()
            if len(k) <= max_chars and (not isinstance(v, str) or len(v) <= max_chars))
    return dict(islice(kept, max_properties))


def apply_event(state: StoredRecord, rec: IdentityRecord, linked: dict[str, bool],
                blocked: dict[str, str] | None, region: str,
                settings: SurvivorshipSettings | None = None) -> bool:
    """Fold one event into its record's state and its events (bounded by ``settings``'
    event fields; the defaults when None).

    Returns False, changing nothing, when the record already holds this event (its ID and
    time): a redelivered event is not counted twice even if it gets past the processed
    event IDs."""
    s = settings if settings is not None else _DEFAULTS
    t = rec.event_ts
    props = rec.properties
    if props:
        props = bounded_properties(props, s.max_event_properties, s.max_event_property_chars)
    event = RecordEvent(rec.activity, rec.source, t, rec.event_id, props)
    if not add_event(state.events, event, s.event_retention_days * _DAY,
                     s.max_events_per_record):
        return False
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
        # a later statement wins; at the same instant the withdrawal does, whatever the
        # order the events arrive in
        if old_c is None or t > old_c[1] or (t == old_c[1] and not granted):
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
    return True


def merge_events(per_record: Sequence[list[RecordEvent]], limit: int | None
                 ) -> list[RecordEvent]:
    """Records' event lists (each in (time, event ID) order) merged into one in that order:
    all of them (``limit`` None) or the newest ``limit``."""
    lists = [events for events in per_record if events]
    if not lists or limit == 0:
        return []
    if len(lists) == 1:
        return lists[0][-limit:] if limit is not None else list(lists[0])
    if limit is None:
        return list(heapq.merge(*lists, key=_event_order))
    newest = list(islice(heapq.merge(*map(reversed, lists), key=_event_order, reverse=True),
                         limit))
    newest.reverse()
    return newest


def identifier_type(key: str) -> str:
    """Type part of a canonical identifier key (``crm:hubspot:51`` -> ``crm:hubspot``)."""
    head, rest = key.split(":", 1)
    if head in ("crm", "user", "ext"):
        return f"{head}:{rest.partition(':')[0]}"
    return head


class ProfileBuilder:
    """Builds :class:`Profile` values from record states under the survivorship settings."""

    def __init__(self, settings: SurvivorshipSettings) -> None:
        self._settings = settings
        self._rank = {s: i for i, s in enumerate(settings.source_priority)}
        self._unlisted = len(self._rank)

    def _survivor(self, name: str, holders_of: dict[str, list[tuple[float, str, str]]]
                  ) -> AttributeValue:
        """The value of attribute ``name`` its rule picks among ``holders_of`` (value ->
        the (event time, record key, source) of each record holding it), with the
        provenance of its latest holder (ties: the smallest record key)."""
        rule = self._settings.rule_for(name)
        candidates: dict[tuple, AttributeValue] = {}
        for value, holders in holders_of.items():
            t, record_key, source = min(holders, key=lambda h: (-h[0], h[1]))
            rank = min(self._rank.get(s, self._unlisted) for _, _, s in holders)
            # the value ends each order: a full tie goes to the smallest value, so the
            # order the records are read in never matters
            if rule == "source_priority":
                order = (rank, -t, value)
            elif rule == "most_frequent":
                order = (-len(holders), -t, rank, value)
            else:
                order = (-t, rank, value)
            candidates[order] = AttributeValue(value, source, record_key, t, rule)
        return candidates[min(candidates)]

    def build(self, profile_id: str, region: str, records: Iterable[StoredRecord],
              aliases: list[str], now: float, *, all_events: bool = False,
              event_types: Collection[str] | None = None) -> Profile:
        """The folded profile; its ``events`` are the newest ``profile_events_limit`` of
        its records' events, or every stored one with ``all_events`` (segment evaluation),
        only of ``event_types`` when given (what the segments evaluated count)."""
        # attribute -> value -> (event time, record key, source) of each record holding it
        held: dict[str, dict[str, list[tuple[float, str, str]]]] = {}
        idents: dict[str, list] = {}  # key -> [first, last, sources(set), linked]
        counters: dict[str, list] = {}  # source -> [events, records, first, last]
        consent: dict[str, bool] = {}
        carried: list[tuple[str, str, bool, float]] = []
        record_keys: list[str] = []
        timelines: list[list[RecordEvent]] = []
        first = last = None
        events = 0
        for rec in records:
            record_keys.append(rec.record_key)
            timelines.append(rec.events)
            src = rec.source
            for name, (value, t) in rec.attributes.items():
                held.setdefault(name, {}).setdefault(value, []).append(
                    (t, rec.record_key, src))
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
                carried.append((rec.record_key, purpose, granted, t))
                # across records a withdrawal wins (each record's own latest statement
                # counts), as the privacy ledger folds a profile's subjects by default
                # (privacy.merge_rule "deny_wins"): a profile read without the ledger
                # answers as one read with it.
                consent[purpose] = consent.get(purpose, True) and granted
            events += rec.event_count
            first = rec.first_seen if first is None else min(first, rec.first_seen)
            last = rec.last_seen if last is None else max(last, rec.last_seen)

        return Profile(
            profile_id=profile_id,
            region=region,
            identifiers=[
                ProfileIdentifier(k, identifier_type(k), v[0], v[1], sorted(v[2]), v[3])
                for k, v in sorted(idents.items())
            ],
            attributes={name: self._survivor(name, held[name]) for name in sorted(held)},
            sources=[SourceCounter(s, v[0], v[1], v[2], v[3]) for s, v in sorted(counters.items())],
            record_keys=record_keys,
            aliases=aliases,
            consent=dict(sorted(consent.items())),
            record_consent=carried,
            first_seen=first or 0.0,
            last_seen=last or 0.0,
            event_count=events,
            updated_at=now,
            events=merge_events(
                timelines if event_types is None else
                [[e for e in t if e.type in event_types] for t in timelines],
                None if all_events else self._settings.profile_events_limit),
        )
