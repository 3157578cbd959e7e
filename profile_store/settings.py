"""Settings of profile folding: survivorship rules and the events records keep (section
``[survivorship]``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from idgraph.core.sections import Section

SurvivorshipRule = Literal["source_priority", "most_recent", "most_frequent"]


class SurvivorshipSettings(Section):
    """Which value of an attribute a profile shows when its records disagree.

    ``source_priority``: the value from the first source in ``source_priority`` that has
    one (ties: most recent); ``most_recent``: latest event time; ``most_frequent``: the value
    seen on most records (ties: most recent).

    Events: each record keeps its events (the profile's activity timeline, what segments
    count) for ``event_retention_days`` before its newest event, at most
    ``max_events_per_record`` of them (the newest); each event keeps at most
    ``max_event_properties`` properties of at most ``max_event_property_chars`` characters
    (the adapters' own bound, :data:`~idgraph.resolver.model.MAX_EVENT_PROPERTIES`, is the
    ceiling). A folded profile shows its newest ``profile_events_limit`` events.
    """

    default_rule: SurvivorshipRule = "most_recent"
    rules: dict[str, SurvivorshipRule] = {
        "given_name": "source_priority",
        "middle_name": "source_priority",
        "family_name": "source_priority",
        "birth_date": "source_priority",
        "company": "source_priority",
        "job_title": "most_recent",
        "email": "most_frequent",
        "phone": "source_priority",
        "country": "most_frequent",
    }
    source_priority: list[str] = ["salesforce", "hubspot", "segment", "google_calendar", "sendgrid"]
    event_retention_days: int = Field(default=400, ge=1)
    """A record keeps the events at most this many days older than its newest event (400:
    the longest window the segment language allows). Relative to the record's newest event,
    not the clock, so a quiet record keeps its last months of history."""
    max_events_per_record: int = Field(default=500, ge=0)
    """A record keeps at most this many events, the newest; 0 keeps none. Every event
    rewrites its record, so this bounds the write per event (~100 bytes an event)."""
    max_event_properties: int = Field(default=16, ge=0)
    """Properties kept per event (the first ones the adapter read); the rest are dropped."""
    max_event_property_chars: int = Field(default=256, ge=1)
    """Longest text property value (and name) kept; longer ones are dropped, not cut."""
    profile_events_limit: int = Field(default=100, ge=0)
    """Events a folded profile shows (the newest of all its records' events; 0: none).
    Every Lookup and GetProfile folds: merging the newest 100 of five full records costs
    ~0.06 ms, 1000 ~0.5 ms. Readers that need every stored event (segment evaluation) ask
    the builder for them (``all_events``)."""

    def rule_for(self, attribute: str) -> SurvivorshipRule:
        return self.rules.get(attribute, self.default_rule)
