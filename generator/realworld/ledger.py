"""The queue of generated payloads and the ground truth of every record the adapters make.

Contract: builders :meth:`Ledger.emit` a payload with its owner: one entity ID (every record
of the payload is about it) or, for a payload that yields several records (a calendar event),
a mapping normalised email -> entity ID. Payloads outside the stream's time window are not
queued, and their :class:`Marks` (trap instances) are not tallied. :meth:`Ledger.resolve` sorts
the payloads by event time (stably: same-time payloads keep their queue order, so a create
stays before its updates) and runs the real adapters
(:func:`idgraph.resolver.adapters.adapt`) on each, so record keys (``SOURCE:SOURCE_RECORD_ID``)
and event IDs are exactly the engine's. A source without an adapter yet (``mandrill``) is keyed
by its documented rule (:func:`mandrill_record`). Record truth is the entity of most of a
record's events (the first seen on a tie) unless a builder fixed it
(:attr:`Ledger.record_owner`: a device's anonymous record belongs to its first user).
:class:`Builder` is what the source builders that spell values share: the world, the stream
(and its ``rng``/``ri``/``clock``), the :class:`~idgraph.generator.realworld.spelling.Spelling`
and the ledger they emit to.
"""

from __future__ import annotations

from collections.abc import Mapping
from operator import itemgetter
from typing import TYPE_CHECKING

from idgraph.core.errors import InvalidPayloadError
from idgraph.generator.events import EventStream
from idgraph.generator.realworld.traps import Tally
from idgraph.resolver.normalize import Normalizer

if TYPE_CHECKING:
    from idgraph.generator.realworld.spelling import Spelling
    from idgraph.generator.realworld.world import World

__all__ = ["Builder", "Ledger", "Marks", "Owner", "mandrill_record"]

#: Who a payload's records are about: an entity ID, or normalised email -> entity ID.
Owner = str | Mapping[str, str]


class Marks:
    """Trap instances a payload carries, tallied only when it is queued."""

    __slots__ = ("shares", "traps")

    def __init__(self) -> None:
        self.traps: list[str] = []
        self.shares: list[tuple[str, str, str]] = []

    def add(self, name: str) -> None:
        self.traps.append(name)

    def share(self, name: str, value: str, user: str) -> None:
        self.shares.append((name, value, user))


def mandrill_record(payload: dict, norm: Normalizer) -> tuple[str, str]:
    """(source record ID, event ID) of a Mailchimp Transactional inbound event: the
    normalised ``msg.from_email`` and the ``Message-Id`` header without angle brackets."""
    msg = payload.get("msg")
    if not isinstance(msg, dict) or not isinstance(msg.get("from_email"), str):
        raise InvalidPayloadError("mandrill", "msg.from_email", "missing")
    headers = msg.get("headers")
    mid = headers.get("Message-Id") if isinstance(headers, dict) else None
    if not isinstance(mid, str) or not mid.strip():
        raise InvalidPayloadError("mandrill", "msg.headers.Message-Id", "missing")
    return norm.email(msg["from_email"]), mid.strip().strip("<>").strip()


class Ledger:
    """Queued ``(ms, seq, source, payload, owner)`` items."""

    def __init__(self, stream: EventStream, tally: Tally) -> None:
        self.stream = stream
        self.tally = tally
        self.items: list[tuple[int, int, str, dict, Owner]] = []
        self.record_owner: dict[str, str] = {}  # record key -> entity, fixed by a builder
        self.seen_emails: set[str] = set()  # normalised emails in the records (after resolve)

    def emit(self, ms: int, source: str, payload: dict, owner: Owner, marks: Marks | None = None
             ) -> bool:
        """Queue ``payload`` (event time ``ms``) unless it falls outside the window."""
        if not self.stream.t0 <= ms < self.stream.end:
            return False
        self.items.append((ms, len(self.items), source, payload, owner))
        if marks is not None:
            tally = self.tally
            for name in marks.traps:
                tally.add(name)
            for name, value, user in marks.shares:
                tally.share(name, value, user)
        return True

    def resolve(
        self, norm: Normalizer
    ) -> tuple[list[tuple[str, dict]], list[tuple[str, str, str, str]], dict[str, str]]:
        """(events in time order, event truth rows, record key -> entity)."""
        from idgraph.resolver import adapters

        self.items.sort(key=itemgetter(0, 1))
        events: list[tuple[str, dict]] = []
        rows: list[tuple[str, str, str, str]] = []
        seen: dict[str, dict[str, int]] = {}
        emails = self.seen_emails
        for _, _, source, payload, owner in self.items:
            events.append((source, payload))
            if source in adapters.ADAPTERS:
                recs = []
                for r in adapters.adapt(source, payload, norm):
                    recs.append((r.source_record_id, r.event_id))
                    emails.update(i.value for i in r.identifiers if i.type == "email")
            elif source == "mandrill":
                recs = [mandrill_record(payload, norm)]
                emails.add(recs[0][0])
            else:
                raise ValueError(f"no adapter and no record rule for source {source!r}")
            for record_id, event_id in recs:
                key = f"{source}:{record_id}"
                if isinstance(owner, str):
                    entity = owner
                else:
                    try:
                        entity = owner[record_id]
                    except KeyError:
                        raise ValueError(
                            f"{source} payload yields a record the generator did not expect: {key}"
                        ) from None
                rows.append((source, event_id, key, entity))
                per = seen.setdefault(key, {})
                per[entity] = per.get(entity, 0) + 1
        truth: dict[str, str] = {}
        for key, per in seen.items():
            fixed = self.record_owner.get(key)
            if fixed is not None:
                truth[key] = fixed
            else:
                best = max(per.values())
                truth[key] = next(e for e, n in per.items() if n == best)
        return events, rows, truth


class Builder:
    """A source builder: the world, the stream, the spelling and the ledger it emits to."""

    def __init__(self, world: World, stream: EventStream, spelling: Spelling, ledger: Ledger
                 ) -> None:
        self.world = world
        self.stream = stream
        self.spell = spelling
        self.ledger = ledger
        self.rng = stream.rng
        self.ri = stream.ri
        self.clock = stream.clock
