"""What a server needs to control access: the authenticator, the rate limits, key
administration, the audit log and how to serve a key limited to fewer regions.

:func:`static_access` builds the old form (static tokens of the ``[grpc]`` settings only,
no key store, no audit log) for embedders and tests; ``idgraph serve`` builds the whole
thing (:func:`idgraph.cli_auth.open_access`).

The audit log gets, from the server:

* every refused call (``auth.failed``, ``auth.denied``, ``auth.rate_limited``), batched
  per caller with the methods as resources;
* every profile read (``profile.read``), batched per caller, each profile as a keyed hash
  (``profile:<hash>``): the same key as the suppression list, so a forget needs no edit
  of the log and the hash of one profile is stable across entries;
* every call that changes something or reads linking data (:data:`AUDITED_CALLS`), one
  entry per call with its outcome, the subject as a keyed hash.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from idgraph.auth.authenticator import Authenticator, Principal, static_tokens
from idgraph.auth.ratelimit import RateLimiter

if TYPE_CHECKING:
    from idgraph.auth.audit_buffer import AuditBuffer
    from idgraph.auth.key_admin import KeyAdmin
    from idgraph.service.scopes import ScopeBackends

_LOG = logging.getLogger(__name__)

_P = "/idgraph.v1.ProfileService/"
_S = "/idgraph.v1.SegmentService/"
_V = "/idgraph.v1.PrivacyService/"
_A = "/idgraph.v1.AdminService/"

_CONSENT_ACTIONS = {1: "consent.granted", 2: "consent.denied", 3: "consent.withdrawn"}


def _subject(request: Any) -> str:
    """The person a request names: ``identifier`` or ``profile_id`` (hashed later)."""
    for name in ("identifier", "profile_id"):
        value = getattr(request, name, "")
        if value:
            return f"{name}:{value}"
    return ""


AUDITED_CALLS: dict[str, tuple[Callable[[Any], str], Callable[[Any], str], bool]] = {
    # method: (action of the request, resource of the request, resource names a person)
    _P + "Explain": (lambda r: "links.explained", _subject, True),
    _P + "DecideReview": (lambda r: "review.decided", lambda r: f"review:{r.review_id}",
                          False),
    _S + "DefineSegment": (lambda r: "segment.updated", lambda r: f"segment:{r.name}", False),
    _S + "DeleteSegment": (lambda r: "segment.deleted", lambda r: f"segment:{r.name}", False),
    _V + "RecordConsent": (lambda r: _CONSENT_ACTIONS.get(r.status, "consent.recorded"),
                           _subject, True),
    _V + "Forget": (lambda r: "forget.requested", _subject, True),
    _V + "Unsuppress": (lambda r: "suppression.ended",
                        lambda r: f"forget_request:{r.request_id}", False),
    _V + "ExportSubject": (lambda r: "subject.exported", _subject, True),
    _A + "ReadAudit": (lambda r: "audit.read", lambda r: "audit", False),
    _A + "VerifyAudit": (lambda r: "audit.verified", lambda r: "audit", False),
}
"""Calls audited one entry each (key changes are audited by
:class:`~idgraph.auth.key_admin.KeyAdmin` itself, with the key's hashes)."""


@dataclass
class Access:
    """Access control of one server (module docstring)."""

    authenticator: Authenticator
    rates: dict[str, float] = field(default_factory=dict)
    burst_seconds: float = 2.0
    keys: KeyAdmin | None = None
    audit: AuditBuffer | None = None
    audit_dir: Path | None = None
    audit_public_key: Any = None
    subject_hash: Callable[[str], str] | None = None
    """Keyed hash of a profile ID or identifier (the suppression key's)."""
    personal_attributes: frozenset[str] = frozenset()
    audit_reads: bool = True
    """False: profile reads are not audited (changes and refusals still are)."""
    open_scope: Callable[[tuple[str, ...]], ScopeBackends] | None = None
    """Backends for a key limited to some of the served regions (None: such keys get
    PERMISSION_DENIED unless they cover every served region)."""
    limiter: RateLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.limiter = RateLimiter(self.burst_seconds)

    @property
    def static_token_count(self) -> int:
        return self.authenticator.static_token_count

    def _hash(self, value: str) -> str:
        if self.subject_hash is None:
            return ""
        return self.subject_hash(value)

    def refusal(self, actor: str, role: str, action: str, method: str, reason: str) -> None:
        """A refused call, batched per caller (the method is the resource)."""
        if self.audit is not None:
            self.audit.record_read(actor, role, action, method, "", outcome="denied")

    def reads(self, principal: Principal, action: str, profile_ids: Iterable[str],
              region: str = "") -> None:
        """Profiles read by ``principal`` (batched, each as a keyed hash)."""
        if self.audit is None or not self.audit_reads:
            return
        for pid in dict.fromkeys(profile_ids):
            if pid:
                self.audit.record_read(principal.name, principal.role, action,
                                       f"profile:{self._hash(pid)}", region,
                                       request_id=principal.request_id)

    def call(self, principal: Principal, method: str, request: Any, outcome: str,
             reason: str) -> None:
        """One audited call (:data:`AUDITED_CALLS`) and how it ended."""
        audited = AUDITED_CALLS.get(method)
        if self.audit is None or audited is None:
            return
        from idgraph.auth.audit import AuditEvent

        action_of, resource_of, personal = audited
        try:
            action, resource = action_of(request), resource_of(request)
        except AttributeError:  # a request without the field: audit the call anyway
            action, resource = method.rsplit("/", 1)[-1], ""
        if personal and resource:
            kind, _, value = resource.partition(":")
            resource = f"{kind}:{self._hash(value)}"
        self.audit.record(AuditEvent(actor=principal.name, role=principal.role,
                                     action=action, resource=resource, outcome=outcome,
                                     reason=reason[:200], request_id=principal.request_id))

    def close(self) -> None:
        """Write keys' last uses and flush and close the audit log."""
        try:
            self.authenticator.flush_usage()
        except Exception:  # noqa: BLE001 - shutting down: log the class, go on
            _LOG.warning("could not record the keys' last uses at shutdown", exc_info=False)
        if self.audit is not None:
            self.audit.close()


def static_access(api_tokens: Iterable[str] = (), steward_tokens: Iterable[str] = (),
                  privacy_tokens: Iterable[str] = ()) -> Access:
    """Access by static tokens only (no keys, no audit log): the form before keys."""
    tokens = static_tokens(api_tokens, steward_tokens, privacy_tokens)
    return Access(Authenticator(None, None, static_tokens=tokens))
