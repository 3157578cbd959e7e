"""Read-side domain queries the gRPC service (and the CLI) answer with.

The service layer converts protos to these calls and back; the logic (normalising the
identifier, following aliases, choosing among profiles a shared identifier is attached to,
folding a profile's records into one profile under the survivorship rules) lives here.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field

from idgraph.core.errors import IdGraphError, InvalidIdentifierError, NotFoundError
from idgraph.profile_store.base import Profile, ProfileReader, RecordEvent, StoredProfile
from idgraph.profile_store.settings import SurvivorshipSettings
from idgraph.profile_store.survivorship import ProfileBuilder
from idgraph.resolver.normalize import Normalizer


@dataclass(slots=True)
class LookupResult:
    """The profile an identifier resolves to.

    ``shared`` is True when the identifier is attached to several profiles (a household
    device): ``profile`` is then the one whose records used it most recently and
    ``other_profile_ids`` lists the rest.
    """

    identifier: str  # normalised TYPE:VALUE
    profile: Profile
    shared: bool = False
    other_profile_ids: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Located:
    """Where an identifier points: the live profile and its version (head ``updated_at``;
    every write to the profile changes it)."""

    identifier: str  # normalised TYPE:VALUE
    profile_id: str
    version: float
    shared: bool = False
    other_profile_ids: list[str] = field(default_factory=list)


class ProfileQueries:
    """Lookup, GetProfile and BatchLookup over a profile store."""

    def __init__(self, store: ProfileReader, normalizer: Normalizer,
                 survivorship: SurvivorshipSettings | None = None) -> None:
        self._store = store
        self._normalizer = normalizer
        self._builder = ProfileBuilder(survivorship or SurvivorshipSettings())

    @property
    def normalizer(self) -> Normalizer:
        """How identifiers in requests are normalised."""
        return self._normalizer

    @property
    def store(self) -> ProfileReader:
        """The store these queries read (segment queries read it too)."""
        return self._store

    def _fold(self, profile_id: str, all_events: bool = False,
              event_types: Collection[str] | None = None) -> Profile | None:
        return self._build(self._store.get_profile(profile_id), all_events, event_types)

    def _build(self, stored: StoredProfile | None, all_events: bool,
               event_types: Collection[str] | None) -> Profile | None:
        """A stored profile folded (None when gone or left without records)."""
        if stored is None or not stored.records:
            return None
        head = stored.head
        return self._builder.build(head.profile_id, head.region, stored.records, stored.aliases,
                                   head.updated_at, all_events=all_events,
                                   event_types=event_types)

    def profile_with_all_events(self, profile_id: str,
                                event_types: Collection[str] | None = None) -> Profile | None:
        """The folded live profile with every stored event of its records (what segment
        evaluation reads; ``profile`` shows the newest ``profile_events_limit``), only of
        ``event_types`` when given; None if gone."""
        return self._fold(profile_id, all_events=True, event_types=event_types)

    def live_profiles_with_events(self, profile_ids: Iterable[str],
                                  event_types: Collection[str] | None = None,
                                  page: int = 500) -> Iterator[Profile]:
        """:meth:`profile_with_all_events` of many live profile IDs (no alias followed, the
        gone skipped), in their order, read ``page`` at a time in one store call each
        (:meth:`~idgraph.profile_store.base.ProfileReader.get_live_profiles`): what a scan
        over every profile reads (a draft segment's preview)."""
        batch: list[str] = []
        for pid in profile_ids:
            batch.append(pid)
            if len(batch) >= page:
                yield from self._fold_many(batch, event_types)
                batch = []
        if batch:
            yield from self._fold_many(batch, event_types)

    def _fold_many(self, profile_ids: list[str], event_types: Collection[str] | None
                   ) -> Iterator[Profile]:
        stored = self._store.get_live_profiles(profile_ids)
        for pid in profile_ids:
            profile = self._build(stored.get(pid), True, event_types)
            if profile is not None:
                yield profile

    def locate(self, identifier: str) -> Located:
        """Which profile (and which version of it) a typed identifier resolves to, without
        folding the profile: callers that cache a rendered profile check ``version``.

        Raises InvalidIdentifierError for a malformed identifier, NotFoundError when no
        profile in the served regions has it.
        """
        ident = self._normalizer.identifier(identifier)
        matches = self._store.lookup(ident.key)  # live profiles only, with their versions
        if not matches:
            raise NotFoundError(f"no profile has this {ident.type} identifier")
        best = matches[0]
        return Located(ident.key, best.profile_id, best.version, shared=len(matches) > 1,
                       other_profile_ids=[m.profile_id for m in matches[1:]])

    def lookup(self, identifier: str) -> LookupResult:
        """Resolve a typed identifier (``TYPE:VALUE``, normalised here) to its profile.

        Raises InvalidIdentifierError for a malformed identifier, NotFoundError when no
        profile in the served regions has it.
        """
        located = self.locate(identifier)
        return LookupResult(located.identifier, self.profile(located.profile_id),
                            shared=located.shared, other_profile_ids=located.other_profile_ids)

    def profile(self, profile_id: str) -> Profile:
        """The folded live profile of an ID (aliases followed); NotFoundError if gone."""
        profile = self._fold(profile_id)
        if profile is None:
            raise NotFoundError("no profile with this ID in the served regions")
        return profile

    def get_profile(self, profile_id: str) -> Profile:
        """The live profile for an ID or one of its aliases."""
        profile_id = (profile_id or "").strip()
        if not profile_id:
            raise InvalidIdentifierError("profile_id is empty")
        return self.profile(profile_id)

    def timeline(self, profile_id: str) -> tuple[Profile, list[tuple[str, RecordEvent]]]:
        """The live profile for an ID or one of its aliases (as :meth:`get_profile`) and
        every stored event of its records, each with the key of the record it came from,
        newest first (ties by event ID: the profile's timeline order reversed); one read
        of the store. NotFoundError if gone."""
        profile_id = (profile_id or "").strip()
        if not profile_id:
            raise InvalidIdentifierError("profile_id is empty")
        stored = self._store.get_profile(profile_id)
        if stored is None or not stored.records:
            raise NotFoundError("no profile with this ID in the served regions")
        head = stored.head
        profile = self._builder.build(head.profile_id, head.region, stored.records,
                                      stored.aliases, head.updated_at)
        events = [(r.record_key, e) for r in stored.records for e in r.events]
        events.sort(key=lambda item: (item[1].at, item[1].event_id), reverse=True)
        return profile, events

    def batch_lookup(self, identifiers: list[str]) -> list[LookupResult | IdGraphError]:
        """One result or error per identifier, in request order."""
        out: list[LookupResult | IdGraphError] = []
        for text in identifiers:
            try:
                out.append(self.lookup(text))
            except IdGraphError as exc:
                out.append(exc)
        return out
