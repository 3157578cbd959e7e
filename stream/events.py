"""Kafka messages in and out: decoding input events, building dead letters and changes.

Pure functions with no broker in sight, so the rules are tested directly.

Input message contract (one topic per source kind, ``P.events.KIND``):

- value: the source system's payload as JSON, exactly as that system delivers it
  (a Salesforce Contact, a HubSpot v3 object, a SendGrid webhook event, a Segment call, a
  Google Calendar event, a Mandrill webhook event: one element of ``mandrill_events``), at
  most ``stream.max_event_bytes``;
- header ``source``: the system (``salesforce``, ``hubspot``...); it may be left out when
  the topic carries a single system (``stream.source_topics``);
- key: anything; key by the source record ID so one record's events stay in one partition
  (Kafka keeps order per partition only).

A message that breaks the contract is dead-lettered (:func:`dead_letter_headers`) with its
original key, value and headers, plus the reason and where it came from.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import orjson

from idgraph.profile_store.base import ProfileChange
from idgraph.profile_store.segment_state import SegmentChange

#: Header names of dead letters (Kafka Connect's ``__connect.errors.*`` idea, our prefix).
REASON = "idgraph.error.reason"
TOPIC = "idgraph.error.topic"
PARTITION = "idgraph.error.partition"
OFFSET = "idgraph.error.offset"
SOURCE = "idgraph.error.source"
FAILED_AT = "idgraph.error.at"


class EventRejected(Exception):
    """The message cannot be processed; ``str(exc)`` is the reason (no payload values)."""


@dataclass(slots=True)
class RawEvent:
    """One consumed message, as the broker delivered it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def header(event: RawEvent, name: str) -> bytes | None:
    """The last value of header ``name`` (None when absent)."""
    found = None
    for k, v in event.headers:
        if k == name:
            found = v
    return found


def decode(event: RawEvent, systems: list[str], max_bytes: int) -> tuple[str, object]:
    """``(system, payload)`` of an input message, or :class:`EventRejected` with the reason.

    ``systems`` are the systems the event's topic carries. The payload is parsed JSON of
    any type; the system's adapter checks its shape.
    """
    size = len(event.value or b"")
    if size > max_bytes:
        raise EventRejected(f"oversized payload: {size} bytes, more than "
                            f"stream.max_event_bytes ({max_bytes})")
    raw = header(event, "source")
    if raw is None:
        if len(systems) != 1:
            raise EventRejected(f"unknown source: no 'source' header, and topic {event.topic} "
                                f"carries {', '.join(systems)}")
        system = systems[0]
    else:
        try:
            system = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise EventRejected("unknown source: the 'source' header is not UTF-8") from None
        if system not in systems:
            shown = system if system.isidentifier() and len(system) <= 40 else "(unreadable)"
            raise EventRejected(f"unknown source {shown!r} for topic {event.topic}; it "
                                f"carries {', '.join(systems)}")
    if not event.value:
        raise EventRejected("empty message: no payload (a tombstone?)")
    try:
        payload = orjson.loads(event.value)
    except orjson.JSONDecodeError as exc:
        raise EventRejected(f"invalid JSON: {exc}") from None
    return system, payload


def dead_letter_headers(event: RawEvent, reason: str,
                        system: str | None = None) -> list[tuple[str, bytes]]:
    """The original headers plus why and where from (replaces older error headers)."""
    ours = {REASON, TOPIC, PARTITION, OFFSET, SOURCE, FAILED_AT}
    out = [(k, v) for k, v in event.headers if k not in ours]
    out += [(REASON, reason.encode()), (TOPIC, event.topic.encode()),
            (PARTITION, str(event.partition).encode()), (OFFSET, str(event.offset).encode()),
            (FAILED_AT, f"{time.time():.3f}".encode())]
    if system:
        out.append((SOURCE, system.encode()))
    return out


def change_message(change: ProfileChange) -> tuple[bytes, bytes]:
    """``(key, value)`` of a profile-change message: keyed by profile ID, JSON value."""
    value = orjson.dumps({
        "change_id": change.change_id, "kind": change.kind, "profile_id": change.profile_id,
        "related_ids": change.related_ids, "region": change.region, "event_time": change.at,
    })
    return change.profile_id.encode(), value


def segment_change_message(change: SegmentChange) -> tuple[bytes, bytes]:
    """``(key, value)`` of a ``segment-changes`` message: keyed by profile ID (one
    profile's changes stay in order in one partition), JSON value::

        {"change_id", "idempotency_key", "profile_id", "segment", "version",
         "change": "entered" | "exited", "at", "cause", "matched_clauses", "region"}

    ``idempotency_key`` is the same for the same profile, segment, definition version,
    change and time whichever writer or retry produced it; deduplicate on it."""
    value = orjson.dumps({
        "change_id": change.change_id, "idempotency_key": change.key,
        "profile_id": change.profile_id, "segment": change.segment, "version": change.version,
        "change": change.change, "at": change.at, "cause": change.cause,
        "matched_clauses": change.clauses, "region": change.region,
    })
    return change.profile_id.encode(), value
