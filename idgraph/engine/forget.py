"""Forget: erase a person everywhere idgraph keeps them, and keep them out afterwards.

Two halves, so that a server without a writer can accept a request and stop answering at
once, and the writer (which alone changes the graph and the store) does the erasure:

1. :func:`request_forget` (a server's ``Forget`` rpc, ``idgraph forget``): resolve the
   whole profile; add the keyed hash (:mod:`idgraph.privacy.suppression`) of every record
   key and every identifier that belongs to this profile only to the suppression list, so
   ingest drops any event carrying one of them from now on (replays included) and answers
   about the profile stop (:class:`~idgraph.engine.consent.ConsentService`); store the
   request (``pending``) with the profile IDs, never an identifier. An identifier also
   attached to other profiles (a household device, a shared mailbox) is not suppressed:
   suppressing it would drop other people's events; it leaves the forgotten records only.
2. :class:`ForgetRunner` (the writer: every ingest turn and every segment tick runs the
   open requests): ``in_progress``, then, per profile (its aliases followed), in one
   writer turn: the records leave the identity graph in one batch and the graph's history
   is rewritten with keyed tokens (:meth:`~idgraph.graph.base.IdentityGraph.erase_history`);
   one atomic store write deletes the records, their identifier index rows, the head,
   the aliases, the merge/split history, the memberships, the change-log and outbox
   entries naming the profile and the processed event IDs of its events (and writes the
   ``deleted`` change and the ``forget`` exits consumers need); then the review queue, the
   consent ledger, the writers' turn feed and the dead-letter file lose every entry naming
   a forgotten record or identifier. ``completed`` with counts per place, or ``failed``
   with the error's class (its suppressions hold; a new request for the profile ID runs
   the erasure again: every step is idempotent, what was erased stays erased).
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

from idgraph.auth.audit import AuditEvent
from idgraph.core.errors import IdGraphError, InvalidIdentifierError, NotFoundError
from idgraph.engine.consent import hash_subjects
from idgraph.engine.queries import ProfileQueries
from idgraph.privacy.ledger import AuditEntry, ForgetRequest, PrivacyLedger, Suppression
from idgraph.privacy.suppression import SuppressionKeys
from idgraph.profile_store.base import Profile

log = logging.getLogger(__name__)

MAX_REASON = 1000
DEAD_LETTER_FILE = "dead-letters.jsonl"


class AlreadyForgottenError(IdGraphError):
    """The subject's identifier is suppressed already: it was forgotten."""

    status = "ALREADY_EXISTS"


class ForgetRequestError(IdGraphError):
    """A forget request that is not valid (the message names the field)."""

    status = "INVALID_ARGUMENT"


def _subject_key(queries: ProfileQueries, identifier: str, profile_id: str) -> str:
    if bool(identifier.strip()) == bool(profile_id.strip()):
        raise InvalidIdentifierError("set exactly one of identifier and profile_id")
    if identifier.strip():
        return queries.normalizer.identifier(identifier).key
    return "profile:" + profile_id.strip()


def exclusive_subjects(queries: ProfileQueries, profile: Profile) -> list[str]:
    """The record keys of the profile and those of its identifiers no other profile has
    (what a forget suppresses)."""
    out = list(profile.record_keys)
    for ident in profile.identifiers:
        others = {m.profile_id for m in queries.store.lookup(ident.identifier)}
        if others <= {profile.profile_id}:
            out.append(ident.identifier)
    return out


def request_forget(ledger: PrivacyLedger, keys: SuppressionKeys, queries: ProfileQueries,
                   *, identifier: str = "", profile_id: str = "", reason: str = "",
                   actor: str, clock: Callable[[], float] = time.time) -> ForgetRequest:
    """Record a forget request and suppress the person at once (module docstring, 1).

    InvalidIdentifierError for a malformed subject; ForgetRequestError for a reason over
    1000 characters; AlreadyForgottenError when the named identifier is suppressed;
    NotFoundError when no profile in the served regions has it (nothing is recorded)."""
    if len(reason) > MAX_REASON:
        raise ForgetRequestError(f"reason is longer than {MAX_REASON} characters")
    subject = _subject_key(queries, identifier, profile_id)
    subject_hash = keys.hash(subject)
    if not subject.startswith("profile:") and ledger.suppressed([subject_hash]):
        earlier = ledger.forget_requests_of(subject_hash)
        named = f" by request {earlier[-1].request_id}" if earlier else ""
        raise AlreadyForgottenError(f"this subject was forgotten already{named}")
    if identifier.strip():
        profile = queries.profile(queries.locate(identifier).profile_id)
    else:
        profile = queries.get_profile(profile_id)
    now = clock()
    request = ForgetRequest("fr_" + secrets.token_hex(10), subject_hash, "pending", actor,
                            now, now, [profile.profile_id], regions=[profile.region])
    hashes = sorted({keys.hash(s) for s in exclusive_subjects(queries, profile)})
    request.suppressed = ledger.suppress(
        Suppression(h, "forget", request.request_id, now) for h in hashes)
    ledger.put_forget_request(request)
    ledger.audit(AuditEntry(now, actor, "forget", request.request_id,
                            {"profiles": 1, "suppressed": request.suppressed,
                             "reason": reason}))
    return request


def forget_request(ledger: PrivacyLedger, request_id: str,
                   regions: Iterable[str] | None = None) -> ForgetRequest:
    """A forget request; NotFoundError when unknown or when it concerns a profile of a
    region not in ``regions`` (None: every region)."""
    request = ledger.forget_request(request_id.strip())
    if request is None or (regions is not None and not set(request.regions) <= set(regions)):
        raise NotFoundError("no forget request has this ID")
    return request


def unsuppress(ledger: PrivacyLedger, request_id: str, reason: str, actor: str,
               clock: Callable[[], float] = time.time,
               regions: Iterable[str] | None = None) -> int:
    """End the suppressions of a forget request (audited); returns how many. NotFoundError
    as :func:`forget_request`."""
    if not reason.strip():
        raise ForgetRequestError("reason is required")
    if len(reason) > MAX_REASON:
        raise ForgetRequestError(f"reason is longer than {MAX_REASON} characters")
    forget_request(ledger, request_id, regions)
    removed = ledger.unsuppress(request_id.strip())
    ledger.audit(AuditEntry(clock(), actor, "unsuppress", request_id.strip(),
                            {"removed": removed, "reason": reason}))
    return removed


class ForgetRunner:
    """Carries out open forget requests in the writer (module docstring, 2).

    ``erase`` is the engine's part, called inside a writer turn with the profile ID; it
    returns what it removed per place and the forgotten values (record keys and
    identifiers) for the places below it."""

    def __init__(self, ledger: PrivacyLedger, keys: SuppressionKeys, data_dir: Path,
                 erase: Callable[[str], tuple[Counter, list[str]]],
                 clock: Callable[[], float] = time.time,
                 recover: Callable[[], None] = lambda: None,
                 audit: Callable[[AuditEvent], object] | None = None) -> None:
        self.ledger = ledger
        self.audit = audit
        """Where ``forget.completed`` / ``forget.failed`` go (the tamper-evident audit log
        of the writer's machine); None: the privacy ledger's trail only."""
        self.keys = keys
        self.recover = recover
        """Called after a request failed in :meth:`run_open` (the engine drops its caches
        and reconciles the store with the graph) before the writer goes on."""
        self.data_dir = Path(data_dir)
        self.erase = erase
        self.clock = clock

    def run_open(self) -> int:
        """Carry out every open request; returns how many completed. A request that fails
        is left ``failed`` (its suppressions hold: nothing of the person comes in) and the
        writer goes on with its batch: one bad request must not stop ingest. Running
        ``idgraph forget --profile-id P`` again erases what is left."""
        done = 0
        for request in self.ledger.open_forget_requests():
            try:
                self.run(request)
            except Exception:  # noqa: BLE001 - recorded as failed by run(), logged there
                self.recover()
                continue
            done += 1
        return done

    def run(self, request: ForgetRequest) -> ForgetRequest:
        request.status, request.updated_at = "in_progress", self.clock()
        self.ledger.put_forget_request(request)
        erased: Counter = Counter(request.erased)
        try:
            values: list[str] = []
            for pid in request.profile_ids:
                counts, forgotten = self.erase(pid)
                erased.update(counts)
                values.extend(forgotten)
            erased["consent_entries"] += self.ledger.erase_consent(
                hash_subjects(self.keys, values))
            erased["dead_letters"] += erase_dead_letters(self.data_dir / DEAD_LETTER_FILE,
                                                         values)
        except Exception as exc:
            request.status, request.error = "failed", type(exc).__name__
            request.erased, request.updated_at = dict(erased), self.clock()
            self.ledger.put_forget_request(request)
            log.error("forget request %s failed (%s); its suppressions hold",
                      request.request_id, type(exc).__name__)
            self._audit(request, "forget.failed", "failed", type(exc).__name__)
            raise
        request.status, request.error = "completed", ""
        request.erased, request.updated_at = dict(erased), self.clock()
        self.ledger.put_forget_request(request)
        self.ledger.audit(AuditEntry(request.updated_at, "writer", "forget_completed",
                                     request.request_id, dict(erased)))
        self._audit(request, "forget.completed", "ok",
                    ", ".join(f"{k} {v}" for k, v in sorted(erased.items()) if v))
        log.info("forget request %s completed", request.request_id)
        return request

    def _audit(self, request: ForgetRequest, action: str, outcome: str, reason: str) -> None:
        if self.audit is None:
            return
        try:
            self.audit(AuditEvent(actor="writer", role="writer", action=action,
                                  resource=f"forget_request:{request.request_id}",
                                  outcome=outcome, reason=reason[:200]))
        except Exception:  # noqa: BLE001 - the erasure stands; the audit failure is logged
            log.error("could not write %s of %s to the audit log", action,
                      request.request_id)


def erase_dead_letters(path: Path, values: Iterable[str]) -> int:
    """Rewrite the dead-letter file without the lines naming any forgotten value (the
    identifier's value, compared without case: a payload spells it as the source did);
    returns how many lines went. The file is replaced atomically, owner-only."""
    if not path.exists():
        return 0
    needles = {v.split(":", 1)[-1].lower() for v in values if v} - {""}
    needles |= {v.lower() for v in values if v}
    kept, dropped = [], 0
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            low = line.lower()
            if any(n in low for n in needles):
                dropped += 1
            else:
                kept.append(line)
    if dropped:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.writelines(kept)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    return dropped


__all__ = ["AlreadyForgottenError", "ForgetRequestError", "ForgetRunner", "erase_dead_letters",
           "exclusive_subjects", "forget_request", "request_forget", "unsuppress"]
