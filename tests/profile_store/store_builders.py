"""Builders of profile-store batches shared by the store tests."""

from __future__ import annotations

from idgraph.profile_store.base import ProfileEvent, ProfileHead, StoreBatch, StoredRecord


def rec(key: str, pid: str, region: str, ids: dict[str, bool] | list[str], t: float = 1.0,
        *, first: float | None = None, events: int = 1, **attrs: str) -> StoredRecord:
    """A record state of profile ``pid`` stored in ``region``: its identifiers (linked
    unless a dict says otherwise) seen from ``first`` (default ``t``) to ``t``."""
    source, rid = key.split(":", 1)
    ids = {i: True for i in ids} if isinstance(ids, list) else ids
    return StoredRecord(
        record_key=key, source=source, source_record_id=rid, region=region, profile_id=pid,
        identifiers={i: (first or t, t, linked) for i, linked in ids.items()},
        attributes={a: (v, t) for a, v in attrs.items()}, consent={"email": (True, t)},
        event_count=events, first_seen=first or t, last_seen=t,
        rejected={"phone (phone)": "blocked value"}, home_region=region)


def links(*records: StoredRecord) -> list[tuple[str, str, bool]]:
    """The identifier index rows of ``records``."""
    return [(i, r.record_key, v[2]) for r in records for i, v in r.identifiers.items()]


def created(pid: str, seq: int, at: float = 1.0) -> ProfileEvent:
    """A ``created`` history entry."""
    return ProfileEvent("created", pid, [], at, seq)


def seed(store, *records: StoredRecord, at: float = 10.0, events: list[str] | None = None):
    """Write ``records`` as new profiles (one head per profile, created history)."""
    heads = {r.profile_id: r.home_region for r in records}
    store.write(StoreBatch(
        records=list(records), identifier_links=links(*records),
        heads=[ProfileHead(p, region, at) for p, region in heads.items()],
        history=[created(p, n) for n, p in enumerate(heads, 1)],
        processed_event_ids=events or []))
