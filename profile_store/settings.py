"""Settings of profile folding: survivorship rules (section ``[survivorship]``)."""

from __future__ import annotations

from typing import Literal

from idgraph.core.sections import Section

SurvivorshipRule = Literal["source_priority", "most_recent", "most_frequent"]


class SurvivorshipSettings(Section):
    """Which value of an attribute a profile shows when its records disagree.

    ``source_priority``: the value from the first source in ``source_priority`` that has
    one (ties: most recent); ``most_recent``: latest event time; ``most_frequent``: the value
    seen on most records (ties: most recent).
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

    def rule_for(self, attribute: str) -> SurvivorshipRule:
        return self.rules.get(attribute, self.default_rule)
