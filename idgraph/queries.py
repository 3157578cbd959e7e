"""Read-side domain queries the gRPC service (and the CLI) answer with.

The service layer converts protos to these calls and back; the logic (normalising the
identifier, following aliases, choosing among profiles a shared identifier is attached to,
folding a profile's records into one profile under the survivorship rules) lives here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from idgraph.errors import IdGraphError, InvalidIdentifierError, NotFoundError
from idgraph.settings import SurvivorshipSettings
from profile_store.base import Profile, ProfileStore
from profile_store.survivorship import ProfileBuilder
from resolver.normalize import Normalizer


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


class ProfileQueries:
    """Lookup, GetProfile and BatchLookup over a profile store."""

    def __init__(self, store: ProfileStore, normalizer: Normalizer,
                 survivorship: SurvivorshipSettings | None = None,
                 cache_size: int = 100_000) -> None:
        self._store = store
        self._normalizer = normalizer
        self._builder = ProfileBuilder(survivorship or SurvivorshipSettings())
        self._cache: dict[str, Profile] = {}
        self._cache_size = cache_size

    def _profile(self, profile_id: str) -> Profile | None:
        """The folded profile, from a cache checked against the head's ``updated_at``.

        Every write to a profile rewrites its head with a new ``updated_at``, so a cached
        fold is reused only while nothing about the profile changed. The check costs one
        primary-key read; a fold costs the profile's records and ~100 us of CPU.
        """
        head = self._store.get_head(profile_id)
        if head is None:
            return None
        cached = self._cache.get(head.profile_id)
        if cached is not None and cached.updated_at == head.updated_at:
            return cached
        stored = self._store.get_profile(head.profile_id)
        if stored is None or not stored.records:
            return None
        head = stored.head
        profile = self._builder.build(head.profile_id, head.region, stored.records,
                                      stored.aliases, head.updated_at)
        if len(self._cache) >= self._cache_size:
            self._cache.clear()  # crude but bounded; hot profiles come back at once
        self._cache[head.profile_id] = profile
        return profile

    def lookup(self, identifier: str) -> LookupResult:
        """Resolve a typed identifier (``TYPE:VALUE``, normalised here).

        Raises InvalidIdentifierError for a malformed identifier, NotFoundError when no
        profile in the served regions has it.
        """
        ident = self._normalizer.identifier(identifier)
        matches = self._store.lookup(ident.key)
        if not matches:
            raise NotFoundError(f"no profile has this {ident.type} identifier")
        for i, match in enumerate(matches):
            profile = self._profile(match.profile_id)
            if profile is not None:
                others = [m.profile_id for j, m in enumerate(matches) if j != i]
                return LookupResult(ident.key, profile, shared=len(matches) > 1,
                                    other_profile_ids=others)
        raise NotFoundError(f"no profile has this {ident.type} identifier")

    def get_profile(self, profile_id: str) -> Profile:
        """The live profile for an ID or one of its aliases."""
        profile_id = (profile_id or "").strip()
        if not profile_id:
            raise InvalidIdentifierError("profile_id is empty")
        profile = self._profile(profile_id)
        if profile is None:
            raise NotFoundError("no profile with this ID in the served regions")
        return profile

    def batch_lookup(self, identifiers: list[str]) -> list[LookupResult | IdGraphError]:
        """One result or error per identifier, in request order."""
        out: list[LookupResult | IdGraphError] = []
        for text in identifiers:
            try:
                out.append(self.lookup(text))
            except IdGraphError as exc:
                out.append(exc)
        return out
