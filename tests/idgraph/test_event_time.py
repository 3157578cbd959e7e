"""Through the engine, event time decides, not the order events arrive in: a profile's
consent and its identifiers' first and last seen as a lookup answers them, whether the
events come in separate batches or shuffled in one, and the order a batch is applied in
(first come, first served guards see the events in time order; ties keep arrival order).
"""

from __future__ import annotations

from itertools import permutations
from pathlib import Path

import pytest
from helpers import record

from idgraph.engine import Engine
from idgraph.resolver.model import IdentityRecord
from idgraph.settings import Settings

CRM = "crm:hubspot:1"
EMAIL = "email:ann@example.org"
SHARED = "email:pat.lane@example.org"

# arrival orders of three events at 100, 200 and 300 in which neither the first nor the
# last to arrive is the earliest or the latest in time
MISLEADING = [(200.0, 100.0, 300.0), (100.0, 300.0, 200.0), (200.0, 300.0, 100.0),
              (300.0, 100.0, 200.0)]


def ingest(tmp_path: Path, batches: list[list[IdentityRecord]]) -> Engine:
    engine = Engine(Settings(data_dir=tmp_path / "d"))
    for batch in batches:
        engine.ingest(batch)
    return engine


def statement(t: float, granted: bool) -> IdentityRecord:
    return record("hubspot", "1", f"e{t:.0f}", t, [CRM, EMAIL],
                  consent={"email_marketing": granted})


@pytest.mark.parametrize("one_batch", [False, True], ids=["batches", "one-batch"])
@pytest.mark.parametrize("order", MISLEADING)
@pytest.mark.parametrize("granted_last", [True, False])
def test_a_lookup_answers_the_latest_consent_and_the_identifier_span_in_event_time(
        tmp_path, order, one_batch, granted_last):
    """Ann says one thing at 100 and 200 and the opposite at 300; whatever the arrival
    order, the profile holds what she said at 300, and her email was first seen at 100 and
    last at 300."""
    said = {100.0: not granted_last, 200.0: not granted_last, 300.0: granted_last}
    events = [statement(t, said[t]) for t in order]
    with ingest(tmp_path, [events] if one_batch else [[e] for e in events]) as engine:
        profile = engine.queries.lookup(EMAIL).profile
        assert profile.consent == {"email_marketing": granted_last}
        assert profile.record_consent == [("hubspot:1", "email_marketing", granted_last,
                                           300.0)]
        seen = {i.identifier: (i.first_seen, i.last_seen) for i in profile.identifiers}
        assert seen == {CRM: (100.0, 300.0), EMAIL: (100.0, 300.0)}
        assert (profile.first_seen, profile.last_seen, profile.event_count) == (100.0, 300.0, 3)


def _contenders() -> dict[float, IdentityRecord]:
    """Three HubSpot contacts with one email address: a profile holds one HubSpot ID, so the
    address links only the contact whose event is applied first; the others keep it
    unlinked. B's event is the earliest, then C's, then A's."""
    return {t: record("hubspot", rid, f"e{rid}", t, [f"crm:hubspot:{rid}", SHARED])
            for rid, t in (("A", 3.0), ("B", 1.0), ("C", 2.0))}


@pytest.mark.parametrize("order", list(permutations((1.0, 2.0, 3.0))))
def test_a_batch_is_applied_in_event_time_order_whatever_the_arrival_order(tmp_path, order):
    contenders = _contenders()
    with ingest(tmp_path, [[contenders[t] for t in order]]) as engine:
        stored = engine.store.get_records(["hubspot:A", "hubspot:B", "hubspot:C"])
        linked = {key: state.identifiers[SHARED][2] for key, state in stored.items()}
        assert linked == {"hubspot:A": False, "hubspot:B": True, "hubspot:C": False}
        found = engine.queries.lookup(SHARED)
        assert found.profile.record_keys == ["hubspot:B"]  # where it is linked comes first


def test_events_at_the_same_instant_are_applied_in_arrival_order(tmp_path):
    """The sort is stable: of two events at one time, the one that arrived first is applied
    first (not, say, the one whose event ID sorts first)."""
    first = record("hubspot", "X", "z-arrived-first", 5.0, ["crm:hubspot:X", SHARED])
    second = record("hubspot", "Y", "a-arrived-second", 5.0, ["crm:hubspot:Y", SHARED])
    with ingest(tmp_path, [[first, second]]) as engine:
        stored = engine.store.get_records(["hubspot:X", "hubspot:Y"])
        assert stored["hubspot:X"].identifiers[SHARED][2] is True
        assert stored["hubspot:Y"].identifiers[SHARED][2] is False
