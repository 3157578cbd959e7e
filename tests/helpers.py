"""Small builders shared by tests (hand-made canonical records)."""

from __future__ import annotations

from datetime import UTC, datetime

from idgraph.resolver.model import Identifier, IdentityRecord


def ident(text: str) -> Identifier:
    return Identifier(*Identifier.split_key(text))


def record(source: str, rid: str, event_id: str, t: float, ids: list[str],
           consent: dict[str, bool] | None = None, **attributes: str) -> IdentityRecord:
    return IdentityRecord(
        source=source, source_record_id=rid, event_id=event_id,
        event_time=datetime.fromtimestamp(t, UTC),
        identifiers=tuple(ident(i) for i in ids), attributes=dict(attributes),
        consent=consent or {},
    )
