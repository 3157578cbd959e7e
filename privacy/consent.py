"""Consent entries and the fold of a profile's consent states into one answer per purpose.

The ledger is append-only: an entry records one statement (granted, denied or withdrawn)
for one purpose, who made it, how and where, and what it covers. Beside the entries the
ledger keeps the *current state* of every (subject, purpose): the latest entry covering
that subject, by capture time, a denial winning a tie (the same rule survivorship uses for
consent in the same instant).

Subjects are record keys (``sendgrid:jane@example.com``, what an event's consent is
about) and identifier keys (``email:jane@example.com``, what an rpc names). An entry made
over the API ``covers`` the named identifier and every record key and linked identifier
of the profile it resolved to at that moment; an entry read from an event covers its
record. A profile's consent is folded from the current states of its own record keys and
identifiers, so a merge unites the states of both sides and a split leaves each side with
the entries of its own records.

Folding (:func:`fold`), per purpose:

* ``deny_wins`` (the default): a purpose is granted only when no subject of the profile
  is denied or withdrawn. A merge never turns one person's withdrawal into consent; a
  grant given after the merge covers every subject and ends the denial.
* ``latest_wins``: the latest statement over all subjects decides.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from idgraph.profile_store.base import Profile

GRANTED = "granted"
DENIED = "denied"
WITHDRAWN = "withdrawn"
STATUSES = (GRANTED, DENIED, WITHDRAWN)
"""What an entry states: ``granted``; ``denied`` (never given: the person refused when
asked); ``withdrawn`` (given, then taken back)."""

LEGAL_BASES = ("consent", "legitimate_interest", "contract", "legal_obligation",
               "vital_interest", "public_task")
"""The lawful bases of GDPR article 6(1) (CCPA and LGPD map onto them)."""

MergeRule = Literal["deny_wins", "latest_wins"]


@dataclass(slots=True)
class ConsentEntry:
    """One statement in the ledger (append-only; the entry ID makes appends idempotent)."""

    entry_id: str
    subject: str
    """What the statement named: an identifier key (``email:jane@example.com``) or a
    record key (``sendgrid:jane@example.com``)."""
    purpose: str
    purpose_version: int
    status: str
    """``granted``, ``denied`` or ``withdrawn``."""
    captured_at: float
    """When the person made the statement (POSIX seconds): what orders statements."""
    received_at: float
    """When the ledger received it."""
    covers: list[str] = field(default_factory=list)
    """Every subject the statement applies to (the subject first)."""
    legal_basis: str = "consent"
    source: str = ""
    """Where it came from: ``api``, or the source kind of the event (``sendgrid``...)."""
    collection_point: str = ""
    """Where it was collected (a form, a preference centre, a checkout page, a webhook)."""
    method: str = ""
    """How: ``api``, ``event``, ``form``, ``checkbox``, ``verbal``, ``gpc``..."""
    notice_version: str = ""
    """The version of the privacy notice shown when it was collected."""
    jurisdiction: str = ""
    """The regime it was collected under (``GDPR``, ``UK-GDPR``, ``CCPA``, ``LGPD``...)."""
    actor: str = ""
    """Who recorded it (the caller's identity, ``event:<source>`` for an event)."""
    region: str = ""
    """Home region of the profile it resolved to (empty: no profile yet)."""
    event_id: str = ""
    """The source event it was read from (empty for an rpc)."""
    profile_id: str = ""
    """The profile it resolved to when it was recorded (empty for an event's entry, whose
    write evaluates the profile anyway): what a writer evaluates segments of again."""


@dataclass(slots=True, frozen=True)
class ConsentState:
    """The current state of one (subject, purpose): the latest entry covering it."""

    subject: str
    purpose: str
    status: str
    captured_at: float
    entry_id: str

    @property
    def granted(self) -> bool:
        return self.status == GRANTED


def newer(candidate: ConsentState, current: ConsentState | None) -> bool:
    """Whether ``candidate`` replaces ``current`` as the state of its (subject, purpose):
    later capture time, a denial winning a tie, then the larger entry ID (so that every
    backend and every order of appends agrees)."""
    if current is None:
        return True
    a = (candidate.captured_at, not candidate.granted, candidate.entry_id)
    b = (current.captured_at, not current.granted, current.entry_id)
    return a > b


def fold(states: Iterable[ConsentState], rule: MergeRule = "deny_wins"
         ) -> dict[str, ConsentState]:
    """One state per purpose from states of a profile's subjects (see the module
    docstring); the returned state is the one that decided. Several states of one
    (subject, purpose) (the ledger's and the one a record carries) count as the newest."""
    latest: dict[tuple[str, str], ConsentState] = {}
    for s in states:
        if newer(s, latest.get((s.subject, s.purpose))):
            latest[(s.subject, s.purpose)] = s
    best: dict[str, ConsentState] = {}
    denial: dict[str, ConsentState] = {}
    for s in latest.values():
        if newer(s, best.get(s.purpose)):
            best[s.purpose] = s
        if not s.granted and newer(s, denial.get(s.purpose)):
            denial[s.purpose] = s
    if rule == "latest_wins":
        return best
    best.update(denial)
    return best


def subjects_of(profile: Profile) -> list[str]:
    """The ledger subjects of a profile: its record keys and linked identifiers."""
    return [*profile.record_keys, *(i.identifier for i in profile.identifiers if i.linked)]


def carried_states(profile: Profile) -> list[ConsentState]:
    """The consent the profile's records carry themselves, as states (an event's consent
    is in the ledger too, with the same time; stores written before the ledger hold only
    these)."""
    return record_states(profile.record_consent)


def record_states(consent: Iterable[tuple[str, str, bool, float]]) -> list[ConsentState]:
    """States of (record key, purpose, granted, time) statements records carry."""
    return [ConsentState(rk, purpose, GRANTED if granted else WITHDRAWN, at,
                         f"record:{rk}:{purpose}")
            for rk, purpose, granted, at in consent]
