"""What the privacy ledger asks of ingest, before anything is resolved or stored.

:class:`IngestPrivacy` is called by the ingest pipeline for every batch:

* :meth:`~IngestPrivacy.screen` drops the records of forgotten people: a record whose key
  or any identifier hashes (keyed, :mod:`idgraph.privacy.suppression`) to a suppressed
  value never reaches identity resolution, replays included. Dropped events are counted by
  reason in the ledger (``suppressed_counts``) and in the batch result;
* :meth:`~IngestPrivacy.consent_entries`: the consent an event states (a SendGrid
  unsubscribe, a Segment consent context, a CRM opt-out field) becomes a ledger entry about
  its record, with the event's time and ID (idempotent per event and purpose), keyed on the
  record key's keyed hash as every ledger subject is
  (:func:`idgraph.engine.consent.hash_subjects`);
* :meth:`~IngestPrivacy.withheld`: the attributes and event types a record may no longer
  store, because every purpose that uses them was denied or withdrawn for the record's
  subjects (its key and identifiers) as the ledger stands before the batch.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from idgraph.privacy.consent import GRANTED, ConsentEntry, ConsentState, MergeRule, fold
from idgraph.privacy.ledger import PrivacyLedger, PurposeCache
from idgraph.privacy.suppression import SuppressionKeys
from idgraph.resolver.model import IdentityRecord


def record_subjects(record: IdentityRecord) -> list[str]:
    """The ledger subjects of an incoming record: its key and its identifiers."""
    return [record.record_key, *(i.key for i in record.identifiers)]


class IngestPrivacy:
    """Suppression, consent entries and consent-withheld data for one writer."""

    def __init__(self, ledger: PrivacyLedger, keys: SuppressionKeys,
                 rule: MergeRule = "deny_wins", clock: Callable[[], float] = time.time) -> None:
        self.ledger = ledger
        self.keys = keys
        self.rule = rule
        self.clock = clock
        self.purposes = PurposeCache(ledger)

    def screen(self, records: list[IdentityRecord]
               ) -> tuple[list[IdentityRecord], Counter]:
        """(the records to resolve, dropped events by reason)."""
        hashes = {s: self.keys.hash(s) for r in records for s in record_subjects(r)}
        hit = self.ledger.suppressed(set(hashes.values()))
        if not hit:
            return records, Counter()
        kept, dropped = [], Counter()
        for r in records:
            reasons = [hit[hashes[s]] for s in record_subjects(r) if hashes[s] in hit]
            if reasons:
                dropped[reasons[0]] += 1
            else:
                kept.append(r)
        return kept, dropped

    def consent_entries(self, records: list[IdentityRecord]) -> list[ConsentEntry]:
        """Ledger entries of the consent the records' events state."""
        now = self.clock()
        registry = self.purposes.get() if any(r.consent for r in records) else None
        out = []
        for r in records:
            for purpose, granted in sorted(r.consent.items()):
                known = registry.purposes.get(purpose) if registry else None
                # keyed: an event ID can hold an identifier (a calendar attendee)
                entry_id = "ev_" + self.keys.hash(f"{r.event_id}\x1f{purpose}")[:24]
                subject = self.keys.hash(r.record_key)
                out.append(ConsentEntry(
                    entry_id, subject, purpose, known.version if known else 0,
                    GRANTED if granted else "withdrawn", r.event_ts, now, [subject],
                    legal_basis=known.legal_basis if known else "consent", source=r.source,
                    collection_point=f"{r.source} {r.event_type}".strip(), method="event",
                    actor=f"event:{r.source}", region=r.region or "", event_id=r.event_id))
        return out

    def withheld(self, records: list[IdentityRecord]
                 ) -> dict[str, tuple[frozenset[str], frozenset[str]]]:
        """record key -> (attributes, event types) it may not store (only keys with some)."""
        subjects = {r.record_key: [self.keys.hash(s) for s in record_subjects(r)]
                    for r in records}
        states = self.ledger.consent_states({s for subs in subjects.values() for s in subs})
        refused = [s for s in states if s.status != GRANTED]
        if not refused:
            return {}
        by_subject: dict[str, list[ConsentState]] = {}
        for s in states:
            by_subject.setdefault(s.subject, []).append(s)
        registry = self.purposes.get()
        out = {}
        for key, subs in subjects.items():
            mine = [st for sub in subs for st in by_subject.get(sub, ())]
            if not mine:
                continue
            attributes, event_types = registry.withheld(fold(mine, self.rule))
            if attributes or event_types:
                out[key] = (attributes, event_types)
        return out
