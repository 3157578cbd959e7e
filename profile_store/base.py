"""The profile-store seam: unified profiles, partitioned by home region.

A store persists what the engine computed; it makes no resolution decisions. It keeps, per
live profile, a head row (home region) and the states of its source records; the unified
profile is folded from those records when it is read (a profile has a few to a few dozen
records, a fold costs ~100 us), so an event costs one record upsert instead of rewriting the
whole profile. One :meth:`ProfileStore.write` call is atomic: the records, heads, aliases,
identifier index rows, history and processed event IDs of a batch land together or not at
all, so an event whose ID is recorded as processed always has its effects stored.

Residency: a store instance is opened for a set of regions. Every row carries its
profile's home region; writing or reading a profile of another region raises
:class:`idgraph.core.errors.ResidencyError` (writes) or finds nothing (reads).

Times are POSIX seconds (float, UTC).

A record's doc (its stored form, :func:`dump_record` / :func:`record_events`) is the
:class:`StoredRecord` as JSON, each of its ``events`` a positional array
``[type, source, at, event_id, {properties}]`` rather than an object, so that a record
holding hundreds of events stays compact. A doc written before events existed has no
``events``: it loads with none.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from idgraph.core.errors import DriverErrorBoundary
from idgraph.core.links import ProfileEvent
from idgraph.profile_store.segment_state import (
    Membership,
    SegmentBuild,
    SegmentChange,
    SegmentReader,
)


@dataclass(slots=True)
class AttributeValue:
    """The surviving value of one attribute and where it came from."""

    value: str
    source: str
    record_key: str
    observed_at: float
    rule: str
    """Survivorship rule that chose it: source_priority, most_recent or most_frequent."""


@dataclass(slots=True)
class ProfileIdentifier:
    """An identifier attached to a profile's records."""

    identifier: str  # canonical TYPE:VALUE
    type: str
    first_seen: float
    last_seen: float
    sources: list[str]
    linked: bool = True
    """False when the identifier is attached but did not link (a shared household device, a
    link rejected by a limit): it never merged this profile with another one."""


@dataclass(slots=True)
class SourceCounter:
    """Events and records per source, with first and last event time."""

    source: str
    event_count: int
    record_count: int
    first_seen: float
    last_seen: float


@dataclass(slots=True)
class ProfileChange:
    """A change notification for one profile (what the stream's change topic carries).

    It holds IDs and the home region only, never personal data: a consumer that needs the
    profile reads it over gRPC, where residency and authentication apply.
    """

    kind: str
    """created | updated | merged (``related_ids``: the absorbed IDs, now aliases) |
    split (``related_ids``: the IDs of the new parts) | deleted (forget removed its last
    record)."""
    profile_id: str
    related_ids: list[str]
    region: str
    at: float
    """Event time of the newest event of the batch that caused it (0 for non-event writes)."""
    change_id: str = ""
    """Unique per change (set by the store's outbox): consumers deduplicate on it."""


class RecordEvent(NamedTuple):
    """One event of a source record, as the profile's timeline and segments see it.

    ``type``: what happened (the record's :attr:`~idgraph.resolver.model.IdentityRecord.activity`:
    ``Order Completed``, ``open``, ``contact``...); ``source``: the source kind; ``at``: event
    time (POSIX seconds); ``event_id``: the source event's ID (unique per event);
    ``properties``: its bounded properties (text or float values)."""

    type: str
    source: str
    at: float
    event_id: str
    properties: dict[str, str | float]


@dataclass(slots=True)
class Profile:
    """One person: a connected component of the identity graph, materialised.

    ``events`` is the activity timeline: the events of all its records merged in time
    order (oldest first, newest last; ties by event ID), at most the newest
    ``SurvivorshipSettings.profile_events_limit`` of them
    (:meth:`~idgraph.profile_store.survivorship.ProfileBuilder.build`)."""

    profile_id: str
    region: str
    identifiers: list[ProfileIdentifier]
    attributes: dict[str, AttributeValue]
    sources: list[SourceCounter]
    record_keys: list[str]
    aliases: list[str] = field(default_factory=list)
    consent: dict[str, bool] = field(default_factory=dict)
    first_seen: float = 0.0
    last_seen: float = 0.0
    event_count: int = 0
    updated_at: float = 0.0  # wall-clock time of the write that produced this version
    events: list[RecordEvent] = field(default_factory=list)
    record_consent: list[tuple[str, str, bool, float]] = field(default_factory=list)
    """The consent its records carry: (record key, purpose, granted, event time). The
    privacy ledger folds it with the statements made elsewhere (``consent`` is these
    alone, latest per purpose)."""


@dataclass(slots=True)
class StoredRecord:
    """One source record's accumulated state (the input survivorship folds over)."""

    record_key: str
    source: str
    source_record_id: str
    region: str  # the region its own payload implied (the profile's home may be stricter)
    profile_id: str
    identifiers: dict[str, tuple[float, float, bool]]
    """identifier key -> (first_seen, last_seen, linked)."""
    attributes: dict[str, tuple[str, float]]
    """attribute -> (value, event time of the event that set it); newer events win."""
    consent: dict[str, tuple[bool, float]]
    event_count: int
    first_seen: float
    last_seen: float
    rejected: dict[str, str] = field(default_factory=dict)
    """identifier (or ``TYPE (field)`` when no value survived) -> why it was not attached."""
    home_region: str = ""
    """Home region of the profile the record belongs to: where the record is stored."""
    events: list[RecordEvent] = field(default_factory=list)
    """The record's events, in time order (oldest first; ties by event ID), bounded by
    retention and count (:func:`~idgraph.profile_store.survivorship.add_event`)."""


@dataclass(slots=True)
class IdentifierMatch:
    """A profile an identifier is attached to, with when its records were last active."""

    profile_id: str
    region: str
    last_seen: float
    linked: bool
    version: float = 0.0
    """The profile head's ``updated_at`` (changes with every write to the profile)."""


@dataclass(slots=True)
class ProfileHead:
    """A live profile's own row: its home region and last write time."""

    profile_id: str
    region: str
    updated_at: float


@dataclass(slots=True)
class StoredProfile:
    """What the store holds for one live profile; :mod:`idgraph.profile_store.survivorship` folds
    ``records`` into the :class:`Profile` that clients see."""

    head: ProfileHead
    aliases: list[str]
    records: list[StoredRecord]


@dataclass(slots=True)
class StoreBatch:
    """Everything one ingest batch changes, written atomically by :meth:`ProfileStore.write`.

    Applied in this order: ``reassign`` (merges move every row of the absorbed profile),
    ``regions`` moves, deletions, then the upserts.
    """

    records: list[StoredRecord] = field(default_factory=list)
    """Record states to upsert (with their ``profile_id`` and ``home_region``)."""
    identifier_links: list[tuple[str, str, bool]] = field(default_factory=list)
    """New (identifier, record_key, linked) rows of the identifier index."""
    heads: list[ProfileHead] = field(default_factory=list)
    """Live profile rows to upsert."""
    reassign: list[tuple[str, str]] = field(default_factory=list)
    """(absorbed profile ID, surviving profile ID), in merge order."""
    regions: list[tuple[str, str]] = field(default_factory=list)
    """(profile ID, new home region): every row of the profile moves there."""
    deleted_profiles: list[str] = field(default_factory=list)
    deleted_records: list[str] = field(default_factory=list)
    """Records to remove; their identifier index rows must be listed in ``unlinked``."""
    unlinked: list[tuple[str, str]] = field(default_factory=list)
    """(identifier, record_key) index rows to remove."""
    aliases: dict[str, str] = field(default_factory=dict)
    """alias profile ID -> live profile ID (upserted)."""
    removed_aliases: list[str] = field(default_factory=list)
    """aliases revived as live profiles by a split."""
    history: list[ProfileEvent] = field(default_factory=list)
    processed_event_ids: list[str] = field(default_factory=list)
    changes: list[ProfileChange | SegmentChange] = field(default_factory=list)
    """Change notifications to put in the outbox (in the same atomic write)."""
    memberships: list[Membership] = field(default_factory=list)
    """Segment membership rows to upsert (applied after the removals below)."""
    removed_memberships: list[tuple[str, str, str]] = field(default_factory=list)
    """(region, segment, profile ID) membership rows to delete."""
    segment_changes: list[SegmentChange] = field(default_factory=list)
    """Membership changes to append to the segment change log."""
    segment_builds: list[SegmentBuild] = field(default_factory=list)
    """Build progress rows to upsert."""
    segment_log_before: float = 0.0
    """When > 0: change-log entries older than this (wall clock) may be dropped."""
    erased_profiles: list[tuple[str, str]] = field(default_factory=list)
    """(region, profile ID) of forgotten profiles (and their aliases): every trace of the
    ID goes before the upserts of this batch: alias rows naming it, history rows naming
    it, memberships, change-log and outbox entries (the ``deleted`` change and the
    ``exited`` memberships of this batch are written after, so consumers learn of it)."""
    erased_event_ids: list[str] = field(default_factory=list)
    """Processed event IDs to forget (a forgotten person's events: suppression keeps
    their replays out, and an event ID can hold an identifier)."""
    erased_event_values: list[str] = field(default_factory=list)
    """Values (record keys, identifier values) a forgotten person's event IDs are built
    from (``hubspot:901:<time>``, ``google_calendar:<id>:<time>:<email>``): processed
    event IDs that hold one as a whole ``:``-separated part are forgotten too. A backend
    that stores event IDs only as hashes holds no such value and ignores this."""


class ProfileReader(SegmentReader):
    """Reads of profiles, records, history and the identifier index, and of segments
    (:class:`~idgraph.profile_store.segment_state.SegmentReader`): what readers get."""

    regions: frozenset[str]
    """The regions this store serves: rows of other regions are neither read nor written."""

    @abstractmethod
    def get_profile(self, profile_id: str) -> StoredProfile | None:
        """The live profile for ``profile_id`` (aliases followed) in a served region, or None."""

    def get_live_profiles(self, profile_ids: Iterable[str]) -> dict[str, StoredProfile]:
        """The given live profile IDs (no alias is followed) in served regions, by ID, with
        their records (aliases left empty): what evaluating many profiles reads. A backend
        may answer it in fewer round trips than one :meth:`get_profile` per ID."""
        out = {}
        for pid in profile_ids:
            stored = self.get_profile(pid)
            if stored is not None and stored.head.profile_id == pid:
                out[pid] = StoredProfile(stored.head, [], stored.records)
        return out

    @abstractmethod
    def lookup(self, identifier_key: str) -> list[IdentifierMatch]:
        """Live profiles (in served regions) the identifier is attached to, with their
        versions: linked first, then most recently active first."""

    @abstractmethod
    def get_records(self, record_keys: Iterable[str]) -> dict[str, StoredRecord]:
        """Stored state of the given records (missing keys are absent from the result)."""

    @abstractmethod
    def get_heads(self, profile_ids: Iterable[str]) -> dict[str, ProfileHead]:
        """Heads of the given live profiles (absent when unknown or not served)."""

    @abstractmethod
    def record_profiles(self) -> dict[str, str]:
        """record_key -> profile_id for every stored record in served regions."""

    @abstractmethod
    def history(self, profile_id: str) -> list[ProfileEvent]:
        """Merge/split history entries that name ``profile_id``, in sequence order."""

    @abstractmethod
    def iter_record_profiles(self) -> Iterator[tuple[str, str, str]]:
        """(source, source_record_id, profile_id) for every stored record, ordered by key."""

    @abstractmethod
    def profiles_by_region(self) -> dict[str, int]:
        """Live profiles per served region (regions with none are absent)."""

    @abstractmethod
    def counts(self) -> dict[str, int]:
        """Row counts: profiles, records, aliases, identifiers, processed_events."""

    @abstractmethod
    def close(self) -> None:
        """Release connections and files."""


class ChangeOutbox(ABC):
    """The change outbox (profile changes and segment membership changes), written with
    each batch and drained by a publisher."""

    @abstractmethod
    def pending_changes(self, limit: int) -> list[ProfileChange | SegmentChange]:
        """The oldest ``limit`` outbox entries of served regions not yet acknowledged, oldest
        first, each with its ``change_id``. Entries stay until :meth:`ack_changes`: a publisher that dies
        before acknowledging publishes them again (at-least-once)."""

    @abstractmethod
    def ack_changes(self, change_ids: Iterable[str]) -> None:
        """Remove published entries from the outbox (unknown IDs are ignored)."""


class ProfileStore(ProfileReader, ChangeOutbox, DriverErrorBoundary):
    """Persistence of profile heads, records, aliases, identifier index and history: the
    reads, the outbox and the atomic batch write.

    A backend implements this class once; opened read-only (:func:`idgraph.profile_store.create_reader`)
    it is typed and used as a :class:`ProfileReader`, and its writes refuse.

    A backend names its driver's exception classes in ``driver_errors``: every seam method
    then raises :class:`~idgraph.core.errors.BackendError` for them, described by
    ``describe_driver_error`` (see :class:`~idgraph.core.errors.DriverErrorBoundary`)."""

    seam_name = "profile store"

    @abstractmethod
    def write(self, batch: StoreBatch) -> None:
        """Apply ``batch`` atomically. Raises ResidencyError if a row's region is not served."""

    def fence(self, token: int | None) -> None:
        """Writes from now on carry the writer's fencing token (its turn number, from
        :attr:`idgraph.coordination.CatchUp.token`; None: none). A store that writers on
        several machines share refuses (BackendError) a write whose token is older than
        one a write already carried: a writer that lost its turn cannot commit. A store
        only one machine writes, under a file lock, needs none: the default ignores it."""

    @abstractmethod
    def unprocessed(self, event_ids: Iterable[str]) -> set[str]:
        """The subset of ``event_ids`` not yet recorded as processed."""


def encode_related(event: ProfileEvent) -> bytes:
    """The stored ``related`` cell of a history row: the related IDs as a JSON list, or,
    when the event has a reason, ``{"ids": [...], "reason": "..."}``."""
    if event.reason:
        return orjson.dumps({"ids": event.related_ids, "reason": event.reason})
    return orjson.dumps(event.related_ids)


def decode_event(kind: str, subject: str, related: bytes | str, at: float,
                 seq: int) -> ProfileEvent:
    """A history row back into a :class:`ProfileEvent` (both forms of ``related``)."""
    value = orjson.loads(related)
    if isinstance(value, dict):
        return ProfileEvent(kind, subject, list(value["ids"]), at, seq, value.get("reason", ""))
    return ProfileEvent(kind, subject, value, at, seq)


def dump_change(change: ProfileChange | SegmentChange) -> bytes:
    """The stored outbox doc of a change (:func:`load_change` reads it back)."""
    return orjson.dumps(change)


def load_change(doc: bytes | str, change_id: str) -> ProfileChange | SegmentChange:
    """An outbox doc as the change it holds (a segment change has a ``segment``), with
    its ``change_id``."""
    fields = orjson.loads(doc)
    fields["change_id"] = change_id
    if "segment" in fields:
        return SegmentChange(**fields)
    return ProfileChange(**fields)


def _encode_event(obj: Any) -> Any:
    """orjson ``default``: a :class:`RecordEvent` as its positional array."""
    if type(obj) is RecordEvent:
        return tuple(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def dump_record(record: StoredRecord) -> bytes:
    """The stored doc of a record (module docstring): what both backends write."""
    return orjson.dumps(record, default=_encode_event)


def record_events(doc: dict) -> list[RecordEvent]:
    """The events of a loaded record doc (none when the doc predates them)."""
    raw = doc.get("events")
    return list(map(RecordEvent._make, raw)) if raw else []
