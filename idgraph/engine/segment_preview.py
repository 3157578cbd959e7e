"""Segments over stored profiles: the bridge from a folded :class:`Profile` to the pure
evaluator of :mod:`idgraph.segments`, and an exact preview of a set of definitions.

:func:`profile_facts` is the one place that says what a segment sees of a profile: its
surviving attribute values (one per attribute, as ``GetProfile`` shows them), its
identifiers (linked or only attached: a shared tablet is still an identifier the person
uses), the sources that contributed identifiers, consent per purpose (absent: unknown),
the home region and the events of its records (the timeline), if the store keeps them.

:func:`preview` evaluates named definitions over profiles (``PreviewSegment`` gives it
every live profile of the served regions, :class:`~idgraph.engine.segment_queries.PreviewProfiles`):
the exact count of each and per region, sample
members with the clauses that matched, the identifier types the members have, and the
overlap with the other definitions. Definitions that use
others (``in_segment``) are evaluated in dependency order on the same profile, so a
profile is never counted in two contradictory memberships. It reads the store only. This
is the preview of a draft (a file not applied yet): its cost grows with every stored
profile.

:func:`preview_stored` previews a stored segment whose evaluation over the stored profiles
is done from the memberships the writer keeps: the same answer (they are exact and
current), at a cost that grows with the members, not with the profiles.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from idgraph.profile_store.base import Profile, ProfileReader
from idgraph.segments import (
    Event,
    Node,
    ProfileFacts,
    SegmentDependencies,
    evaluate,
    event_types,
)

__all__ = ["Member", "SegmentPreview", "preview", "preview_stored",
           "profile_facts", "profile_ids"]


def profile_facts(profile: Profile, memberships: Callable[[str], bool],
                  event_types: Collection[str] | None = None) -> ProfileFacts:
    """What segments see of ``profile`` (see the module docstring). With ``event_types``
    (what the definitions evaluated count, :func:`idgraph.segments.event_types`), only
    events of those types are read of the timeline: the others cannot change an answer."""
    # the type keeps its namespace (crm:salesforce), the value is what follows it
    identifiers = [(i.type, i.identifier[len(i.type) + 1:]) for i in profile.identifiers]
    sources = {s for i in profile.identifiers for s in i.sources}
    events = [Event(e.type, e.source, datetime.fromtimestamp(e.at, UTC), e.properties)
              for e in profile.events if event_types is None or e.type in event_types]
    return ProfileFacts(
        attributes={name: v.value for name, v in profile.attributes.items()},
        identifiers=identifiers, identifier_sources=sources, consent=dict(profile.consent),
        region=profile.region, events=events, memberships=memberships)


@dataclass(slots=True)
class Member:
    profile_id: str
    region: str
    clauses: list[str]
    """The clauses that held: why the profile is in."""


@dataclass(slots=True)
class SegmentPreview:
    """One definition's exact preview."""

    name: str
    count: int = 0
    samples: list[Member] = field(default_factory=list)
    identifier_types: Counter = field(default_factory=Counter)
    """Members having at least one identifier of each type."""
    overlap: Counter = field(default_factory=Counter)
    """Other definition name -> members in both."""
    by_region: Counter = field(default_factory=Counter)
    """Home region -> members (:func:`preview` counts them; :func:`preview_stored` not)."""
    members: set[str] = field(default_factory=set)
    """The members' profile IDs, when :func:`preview` was asked to ``collect`` them."""


def preview(definitions: Mapping[str, Node], profiles: Iterable[Profile], now: datetime,
            samples: int = 20, collect: Collection[str] = ()
            ) -> tuple[dict[str, SegmentPreview], int]:
    """Evaluate every definition on every profile; returns the previews by name and how
    many profiles were evaluated (the members of the names in ``collect`` are kept in
    :attr:`SegmentPreview.members`). Raises ``SegmentCycleError`` /
    ``UnknownSegmentError`` for ``in_segment`` loops or references to undefined
    segments."""
    deps = SegmentDependencies(definitions)
    order = deps.evaluation_order()
    types = frozenset().union(*(event_types(definitions[n]) for n in order))
    out = {name: SegmentPreview(name) for name in order}
    evaluated = 0
    for profile in profiles:
        evaluated += 1
        inside: dict[str, bool] = {}
        facts = profile_facts(profile, lambda name, inside=inside: inside.get(name, False),
                              types)
        for name in order:
            result = evaluate(definitions[name], facts, now)
            inside[name] = result.matched
            if not result.matched:
                continue
            view = out[name]
            view.count += 1
            view.by_region[profile.region] += 1
            if name in collect:
                view.members.add(profile.profile_id)
            if len(view.samples) < samples:
                view.samples.append(Member(profile.profile_id, profile.region, result.clauses))
            view.identifier_types.update({t.split(":", 1)[0] for t, _v in facts.identifiers})
        members = [n for n, yes in inside.items() if yes]
        for name in members:
            out[name].overlap.update(m for m in members if m != name)
    return out, evaluated


def profile_ids(store: ProfileReader, region: str, page: int = 10_000) -> Iterator[str]:
    """Every live profile ID of a served ``region``, read ``page`` at a time."""
    after = ""
    while True:
        ids = store.profile_ids_after(region, after, page)
        yield from ids
        if len(ids) < page:
            return
        after = ids[-1]


def live_profiles(profile_ids: Iterable[str], fold: Callable[[str], Profile | None]
                  ) -> Iterator[Profile]:
    """The folded profiles of ``profile_ids`` that are still live (skipping the gone)."""
    for pid in profile_ids:
        profile = fold(pid)
        if profile is not None:
            yield profile


def preview_stored(store: ProfileReader, name: str, fold: Callable[[str], Profile | None],
                   samples: int = 20, page: int = 5000) -> SegmentPreview:
    """The preview of stored segment ``name`` from its memberships (module docstring):
    the count, ``samples`` members with the clauses that matched, the identifier types of
    the members (each member folded once) and the members it shares with every other
    live segment."""
    view = SegmentPreview(name)
    members: set[str] = set()
    after = ""
    while True:
        rows = store.segment_members(name, after, page)
        for m in rows:
            members.add(m.profile_id)
            if len(view.samples) < samples:
                view.samples.append(Member(m.profile_id, m.region, list(m.clauses)))
            profile = fold(m.profile_id)
            if profile is not None:
                view.identifier_types.update({i.type.split(":", 1)[0]
                                              for i in profile.identifiers})
        if len(rows) < page:
            break
        after = rows[-1].profile_id
    view.count = len(members)
    _version, live = store.segment_catalog()
    for other in sorted(live):
        if other == name:
            continue
        after, shared = "", 0
        while True:
            rows = store.segment_members(other, after, page)
            shared += sum(m.profile_id in members for m in rows)
            if len(rows) < page:
                break
            after = rows[-1].profile_id
        if shared:
            view.overlap[other] = shared
    return view
