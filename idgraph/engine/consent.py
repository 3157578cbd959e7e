"""Consent for the answering side: record statements, read a profile's consent, and gate
answers by purpose.

:class:`ConsentService` sits between the rpcs and the privacy ledger
(:class:`~idgraph.privacy.ledger.PrivacyLedger`). It reads the ledger on every call, so a
withdrawal committed by any process (another server, the CLI, a writer that read an
unsubscribe) is honoured by the next answer of every process: there is no cache to expire.

The ledger is keyed on keyed hashes of subjects (:func:`hash_subjects`): a statement's
``subject`` and ``covers`` are hashed before they are stored, and shown in plain text
again only to a reader who knows the profile (:meth:`ConsentService.entries`).

A profile's consent is folded (:func:`idgraph.privacy.consent.fold`, rule
``privacy.merge_rule``) from the current states of its *subjects*: its record keys and its
linked identifiers in the ledger, plus the consent its records carry themselves (stores
written before the ledger existed). What an answer then shows:

* a request that names a purpose is refused (:class:`ConsentRefusedError`,
  FAILED_PRECONDITION) unless the purpose is allowed for the profile
  (:meth:`~idgraph.privacy.purposes.PurposeRegistry.decide`); an unknown purpose is
  INVALID_ARGUMENT;
* every answer leaves out the attributes and event types used only by purposes that were
  denied or withdrawn (:meth:`~idgraph.privacy.purposes.PurposeRegistry.withheld`), and its
  ``consent`` map is the folded consent (granted: true; denied or withdrawn: false).
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from idgraph.core.errors import IdGraphError, InvalidIdentifierError, NotFoundError
from idgraph.engine.queries import ProfileQueries
from idgraph.privacy.consent import (
    LEGAL_BASES,
    STATUSES,
    ConsentEntry,
    ConsentState,
    MergeRule,
    carried_states,
    fold,
    record_states,
    subjects_of,
)
from idgraph.privacy.ledger import AuditEntry, PrivacyLedger, PurposeCache
from idgraph.privacy.purposes import Decision, PurposeRegistry
from idgraph.privacy.suppression import SuppressionKeys
from idgraph.profile_store.base import Profile

MAX_TEXT = 200
"""Longest free-text field of a statement (source, collection point, method...)."""



class ConsentRefusedError(IdGraphError):
    """The profile's consent does not allow the purpose the request named."""

    status = "FAILED_PRECONDITION"


class ConsentRequestError(IdGraphError):
    """A consent statement that is not valid (the message names the field)."""

    status = "INVALID_ARGUMENT"


def hash_subjects(keys: SuppressionKeys, subjects: Iterable[str]) -> list[str]:
    """The keyed hashes of subjects, in order, without repeats: what the privacy ledger is
    keyed on (consent entries, their ``covers`` and current states), so that no backend
    holds an identifier there, and a subject's entries are found again only by whoever
    knows the identifier and the key."""
    return list(dict.fromkeys(keys.hash(s) for s in subjects))


@dataclass(slots=True)
class ConsentView:
    """A profile's consent: the folded state per purpose and a decision per purpose."""

    profile_id: str
    region: str
    states: dict[str, ConsentState]
    decisions: dict[str, Decision]


@dataclass(slots=True)
class Answer:
    """What an answer about a profile shows of it (:meth:`ConsentService.answer`)."""

    consent: dict[str, bool]
    withheld_attributes: frozenset[str]
    withheld_event_types: frozenset[str]


@dataclass(slots=True)
class Statement:
    """What a caller states (``RecordConsent``); the service fills in the rest."""

    purpose: str
    status: str
    legal_basis: str = ""
    source: str = "api"
    collection_point: str = ""
    method: str = "api"
    notice_version: str = ""
    jurisdiction: str = ""
    captured_at: float = 0.0
    """When the person made it (0: now). Not in the future."""


class ConsentService:
    """Consent reads, statements and gating over one ledger and one profile store."""

    def __init__(self, ledger: PrivacyLedger, queries: ProfileQueries, keys: SuppressionKeys,
                 rule: MergeRule = "deny_wins", clock: Callable[[], float] = time.time
                 ) -> None:
        self.ledger = ledger
        self.queries = queries
        self.keys = keys
        self.rule = rule
        self.clock = clock
        self._purposes = PurposeCache(ledger)

    # --- reading -----------------------------------------------------------------

    def registry(self) -> PurposeRegistry:
        """The purpose registry (:class:`~idgraph.privacy.ledger.PurposeCache`)."""
        return self._purposes.get()

    def check_purpose(self, purpose: str) -> str:
        """The registered purpose name; ConsentRequestError naming the known ones."""
        try:
            return self.registry().get(purpose).name
        except IdGraphError as exc:
            raise ConsentRequestError(str(exc)) from None

    def hashed(self, subjects: Iterable[str]) -> list[str]:
        """The ledger's keys of subjects: their keyed hashes (the ledger never holds an
        identifier; see :func:`hash_subjects`)."""
        return hash_subjects(self.keys, subjects)

    def states_of(self, subjects: Iterable[str], carried: Iterable[ConsentState] = ()
                  ) -> dict[str, ConsentState]:
        """The folded consent of a profile with these (plain) subjects (``carried``: the
        states its records carry, :func:`carried_states`)."""
        own = [dataclasses.replace(c, subject=self.keys.hash(c.subject)) for c in carried]
        return fold([*own, *self.ledger.consent_states(self.hashed(subjects))], self.rule)

    def profile_states(self, profile: Profile) -> dict[str, ConsentState]:
        """The folded consent of a folded profile."""
        return self.states_of(subjects_of(profile), carried_states(profile))

    def view(self, profile: Profile) -> ConsentView:
        """The consent of a folded profile and a decision for every purpose."""
        states = self.profile_states(profile)
        decisions = self.registry().decisions(states, profile.region, self.clock())
        return ConsentView(profile.profile_id, profile.region, states, decisions)

    def answer(self, subjects: list[str], carried: Iterable[ConsentState], region: str,
               purpose: str | None) -> Answer:
        """What an answer about a profile (known by its subjects, the consent its records
        carry and its region) may show: NotFoundError when a subject is suppressed,
        ConsentRefusedError when ``purpose`` is named and not allowed
        (ConsentRequestError when it is unknown)."""
        self._check_not_suppressed(subjects)
        registry = self.registry()
        states = self.states_of(subjects, carried)
        if purpose:
            name = self.check_purpose(purpose)
            decision = registry.decide(name, states, region, self.clock())
            if not decision.allowed:
                raise ConsentRefusedError(decision.reason(region))
        attributes, event_types = registry.withheld(states)
        return Answer({p: s.granted for p, s in sorted(states.items())}, attributes,
                      event_types)

    def gate(self, profile: Profile, purpose: str | None) -> Profile:
        """The profile as an answer may show it (module docstring; :meth:`answer`):
        data used only for refused purposes left out, ``consent`` from the ledger.
        ``profile`` is not changed."""
        answer = self.answer(subjects_of(profile), carried_states(profile), profile.region,
                             purpose)
        if not answer.withheld_attributes and not answer.withheld_event_types \
                and answer.consent == profile.consent:
            return profile
        return dataclasses.replace(
            profile, consent=answer.consent,
            attributes={k: v for k, v in profile.attributes.items()
                        if k not in answer.withheld_attributes},
            events=[e for e in profile.events if e.type not in answer.withheld_event_types])

    def check_profiles(self, profile_ids: Iterable[str], purpose: str) -> set[str]:
        """Of the given live profiles, those whose consent allows ``purpose`` and that no
        forget was requested for, read in one go (what segment answers check)."""
        name = self.check_purpose(purpose)
        stored = self.queries.store.get_live_profiles(profile_ids)
        subjects: dict[str, list[str]] = {}
        carried: dict[str, list[ConsentState]] = {}
        for pid, sp in stored.items():
            subjects[pid] = [*(r.record_key for r in sp.records),
                             *(i for r in sp.records for i, (_, _, linked)
                               in r.identifiers.items() if linked)]
            carried[pid] = record_states((r.record_key, p, g, t) for r in sp.records
                                         for p, (g, t) in r.consent.items())
        hashes = {x: self.keys.hash(x) for subs in subjects.values() for x in subs}
        by_subject: dict[str, list[ConsentState]] = {}
        for state in self.ledger.consent_states(hashes.values()):
            by_subject.setdefault(state.subject, []).append(state)
        hit = self.ledger.suppressed(hashes.values())
        registry, now, out = self.registry(), self.clock(), set()
        for pid, subs in subjects.items():
            keys = [hashes[x] for x in subs]
            if hit and any(k in hit for k in keys):
                continue
            own = [dataclasses.replace(c, subject=hashes[c.subject]) for c in carried[pid]]
            states = fold([*own, *(st for k in keys for st in by_subject.get(k, ()))],
                          self.rule)
            if registry.decide(name, states, stored[pid].head.region, now).allowed:
                out.add(pid)
        return out

    def check_profile(self, profile_id: str, purpose: str) -> None:
        """ConsentRefusedError (NotFoundError after a forget request) unless the live
        profile's consent allows ``purpose``."""
        self.gate(self.queries.profile(profile_id), purpose)

    def _check_not_suppressed(self, subjects: Iterable[str]) -> None:
        """NotFoundError when a subject of the profile is suppressed: a forget was
        requested and the writer has not erased it yet (answers stop at the request)."""
        if self.ledger.suppressed(self.hashed(subjects)):
            raise NotFoundError("no profile with this ID in the served regions")

    def entries(self, profile: Profile, limit: int = 1000) -> list[ConsentEntry]:
        """The ledger entries covering the profile's subjects, oldest first, their
        ``subject`` and ``covers`` given back in plain text where they are the profile's
        own (a hash otherwise: a subject the profile no longer has)."""
        plain = {self.keys.hash(s): s for s in subjects_of(profile)}
        return [dataclasses.replace(e, subject=plain.get(e.subject, e.subject),
                                    covers=[plain.get(c, c) for c in e.covers])
                for e in self.ledger.consent_entries(plain, limit)]

    def record_read(self, actor: str, rpc: str, profile_ids: Iterable[str]) -> None:
        """Note in each subject's access history (the privacy ledger's audit trail)
        that a person read these profiles, so a subject's export can say who looked at
        their data. Callers pass reads by people only (stewards, privacy officers,
        marketers); activation channels' reads, the whole traffic, go to the
        tamper-evident audit log only (:mod:`idgraph.service.access`)."""
        now = self.clock()
        for pid in dict.fromkeys(profile_ids):
            if pid:
                self.ledger.audit(AuditEntry(now, actor, f"read:{rpc}", pid))

    # --- writing ------------------------------------------------------------------

    def record(self, identifier: str, statement: Statement, actor: str
               ) -> tuple[ConsentEntry, Profile | None]:
        """Append a statement about the person ``identifier`` resolves to and return it
        with the profile (None when no profile has the identifier yet: the statement is
        kept under the identifier and applies once records carry it).

        InvalidIdentifierError for a malformed identifier; ConsentRequestError for an
        unknown purpose, status or legal basis, a text over 200 characters or a capture
        time in the future."""
        purpose = self.check_purpose(statement.purpose)
        if statement.status not in STATUSES:
            raise ConsentRequestError(f"status must be one of {', '.join(STATUSES)}")
        basis = statement.legal_basis or self.registry().get(purpose).legal_basis
        if basis not in LEGAL_BASES:
            raise ConsentRequestError(f"legal_basis must be one of {', '.join(LEGAL_BASES)}")
        for name in ("source", "collection_point", "method", "notice_version", "jurisdiction"):
            if len(getattr(statement, name)) > MAX_TEXT:
                raise ConsentRequestError(f"{name} is longer than {MAX_TEXT} characters")
        now = self.clock()
        captured = statement.captured_at or now
        if captured > now + 5:
            raise ConsentRequestError("captured_at is in the future")
        key = self.queries.normalizer.identifier(identifier).key
        try:
            profile = self.queries.profile(self.queries.locate(identifier).profile_id)
        except NotFoundError:
            profile = None
        covers = [key, *(s for s in (subjects_of(profile) if profile else ()) if s != key)]
        version = self.registry().get(purpose).version
        entry_id = "ce_" + secrets.token_hex(12)
        entry = ConsentEntry(
            entry_id, self.keys.hash(key), purpose, version, statement.status, captured, now,
            self.hashed(covers),
            legal_basis=basis, source=statement.source or "api",
            collection_point=statement.collection_point, method=statement.method or "api",
            notice_version=statement.notice_version, jurisdiction=statement.jurisdiction,
            actor=actor, region=profile.region if profile else "",
            profile_id=profile.profile_id if profile else "")
        self.ledger.append_consent([entry])
        self.ledger.audit(AuditEntry(now, actor, "record_consent",
                                     profile.profile_id if profile else "",
                                     {"purpose": purpose, "status": statement.status,
                                      "entry_id": entry_id}))
        return dataclasses.replace(entry, subject=key, covers=covers), profile

    def resolve(self, identifier: str = "", profile_id: str = "") -> Profile:
        """The profile an identifier or a profile ID names (exactly one of them)."""
        if bool(identifier.strip()) == bool(profile_id.strip()):
            raise InvalidIdentifierError("set exactly one of identifier and profile_id")
        if identifier.strip():
            return self.queries.profile(self.queries.locate(identifier).profile_id)
        return self.queries.get_profile(profile_id)


class LedgerConsent:
    """The writer's view of the ledger for segment memberships.

    :meth:`apply` sets the ``consent`` of folded profiles from the ledger (what segment
    conditions on consent read); :meth:`pending` hands the profiles that statements made
    over the API named since the writers' shared cursor (``segments`` in the ledger), so
    their segments reading consent are evaluated again without waiting for an event, and
    :meth:`commit` moves the cursor once that evaluation is stored."""

    CURSOR = "segments"

    def __init__(self, ledger: PrivacyLedger, keys: SuppressionKeys,
                 rule: MergeRule = "deny_wins") -> None:
        self.ledger = ledger
        self.keys = keys
        self.rule = rule
        self._next: str | None = None

    def apply(self, profiles: Iterable[Profile]) -> None:
        profiles = list(profiles)
        if not profiles:
            return
        hashes = {x: self.keys.hash(x) for p in profiles for x in subjects_of(p)}
        by_subject: dict[str, list[ConsentState]] = {}
        for state in self.ledger.consent_states(set(hashes.values())):
            by_subject.setdefault(state.subject, []).append(state)
        for p in profiles:
            own = [dataclasses.replace(c, subject=hashes.get(c.subject) or
                                       self.keys.hash(c.subject)) for c in carried_states(p)]
            theirs = [st for x in subjects_of(p) for st in by_subject.get(hashes[x], ())]
            states = fold([*own, *theirs], self.rule)
            p.consent = {k: s.granted for k, s in sorted(states.items())}

    def pending(self, limit: int) -> dict[str, set[str]]:
        """Profile ID (as recorded; it may be an alias by now) -> purposes stated for it
        over the API since the cursor, at most ``limit`` entries read."""
        cursor = self.ledger.get_cursor(self.CURSOR)
        entries, after = self.ledger.consent_log_after(cursor, limit)
        self._next = after if after != cursor else None
        out: dict[str, set[str]] = {}
        for e in entries:
            if e.profile_id:
                out.setdefault(e.profile_id, set()).add(e.purpose)
        return out

    def commit(self) -> None:
        """Store the cursor after what :meth:`pending` handed (after the write)."""
        if self._next is not None:
            self.ledger.put_cursor(self.CURSOR, self._next)
            self._next = None
