"""Creating, listing, rotating and revoking API keys: what ``idgraph keys`` and the
admin rpcs do, over a :class:`~idgraph.auth.store.KeyStore`.

Every change is written to the audit log through ``audit`` (``key.created``,
``key.rotated``, ``key.revoked``) with the key ID as its resource and the SHA-256 of the
stored key before and after. A key's full text is returned once, by :meth:`create` and
:meth:`rotate`, and never stored.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from idgraph.auth.audit import AuditEvent
from idgraph.auth.keys import (
    DAY,
    ApiKey,
    KeyNotFoundError,
    KeyRequestError,
    expiry,
    new_key_text,
    secret_hash,
)
from idgraph.auth.roles import MARKETER, ROLES
from idgraph.auth.store import KeyStore

MAX_OVERLAP_DAYS = 30
"""Longest overlap of a rotation, in which the old key keeps working."""


@dataclass(frozen=True)
class IssuedKey:
    """A key just created or rotated: its text (shown once) and what is stored."""

    text: str
    key: ApiKey


@dataclass(frozen=True)
class KeyListing:
    """A stored key and when it was last used (None: never, or not yet flushed)."""

    key: ApiKey
    last_used: float | None
    state: str
    """``active``, ``expired`` or ``revoked`` at the time of listing."""


def _fingerprint(key: ApiKey | None) -> str:
    return hashlib.sha256(key.to_json()).hexdigest() if key is not None else ""


class KeyAdmin:
    """Key management over ``store``; ``known_regions`` are the deployment's regions (a
    key may only be limited to those)."""

    def __init__(self, store: KeyStore, server_secret: bytes, known_regions: Iterable[str],
                 *, default_days: float = 90,
                 audit: Callable[[AuditEvent], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._secret = server_secret
        self._regions = tuple(known_regions)
        self._default_days = default_days
        self._audit = audit or (lambda _event: None)
        self._clock = clock

    def _checked(self, roles: Iterable[str], regions: Iterable[str], unmask: bool,
                 rate: float | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
        roles = tuple(dict.fromkeys(r.strip() for r in roles if r.strip()))
        if not roles:
            raise KeyRequestError(f"roles: name at least one of {', '.join(ROLES)}")
        unknown = [r for r in roles if r not in ROLES]
        if unknown:
            raise KeyRequestError(f"roles: unknown role {unknown[0]!r}; known: "
                                  f"{', '.join(ROLES)}")
        regions = tuple(dict.fromkeys(r.strip() for r in regions if r.strip()))
        unknown = [r for r in regions if r not in self._regions]
        if unknown:
            raise KeyRequestError(f"regions: unknown region {unknown[0]!r}; known: "
                                  f"{', '.join(self._regions)}")
        if unmask and MARKETER not in roles:
            raise KeyRequestError("unmask is a grant of the marketer role; the other roles "
                                  "that read profiles see them whole")
        if rate is not None and not rate > 0:
            raise KeyRequestError("rate_per_second must be more than 0")
        return roles, regions

    def create(self, owner: str, roles: Iterable[str], *, regions: Iterable[str] = (),
               expires_in_days: float | None = None, unmask: bool = False,
               rate_per_second: float | None = None, description: str = "",
               by: str = "", by_role: str = "admin") -> IssuedKey:
        """A new key for ``owner`` (required: who answers for it). KeyRequestError for an
        unknown role or region, a lifetime out of bounds or an empty owner."""
        if not owner.strip():
            raise KeyRequestError("owner is required: who answers for this key")
        roles, regions = self._checked(roles, regions, unmask, rate_per_second)
        now = self._clock()
        days = self._default_days if expires_in_days is None else expires_in_days
        text, parts = new_key_text()
        key = ApiKey(key_id=parts.key_id, owner=owner.strip(), roles=roles,
                     created_at=now, expires_at=expiry(now, days),
                     secret_hash=secret_hash(self._secret, parts), regions=regions,
                     unmask=unmask, rate_per_second=rate_per_second, created_by=by,
                     description=description)
        self._store.insert(key)
        self._audit(AuditEvent(action="key.created", actor=by, role=by_role,
                               resource=f"key:{key.key_id}", after=_fingerprint(key)))
        return IssuedKey(text, key)

    def get(self, key_id: str) -> ApiKey:
        key = self._store.get(key_id)
        if key is None:
            raise KeyNotFoundError(f"no key with ID {key_id}")
        return key

    def list(self, include_inactive: bool = False) -> list[KeyListing]:
        """Every key (the active ones unless ``include_inactive``), oldest first."""
        now = self._clock()
        keys = self._store.list_keys()
        used = self._store.last_used(k.key_id for k in keys)
        listed = [KeyListing(k, used.get(k.key_id), k.refusal(now) or "active") for k in keys]
        return [k for k in listed if include_inactive or k.state == "active"]

    def rotate(self, key_id: str, *, overlap_seconds: float = 0.0,
               expires_in_days: float | None = None, by: str = "",
               by_role: str = "admin") -> tuple[IssuedKey, ApiKey]:
        """A successor of ``key_id`` (same owner, roles, regions, grants and rate) and the
        old key, now expiring ``overlap_seconds`` from now (at once for 0; never later
        than it would have). KeyRequestError for a revoked or expired key, or an overlap
        longer than :data:`MAX_OVERLAP_DAYS`."""
        old = self.get(key_id)
        if not 0 <= overlap_seconds <= MAX_OVERLAP_DAYS * DAY:
            raise KeyRequestError(f"overlap must be between 0 and {MAX_OVERLAP_DAYS} days")
        now = self._clock()
        refusal = old.refusal(now)
        if refusal is not None:
            raise KeyRequestError(f"key {key_id} is {refusal}: create a new key instead")
        if old.rotated_to:
            raise KeyRequestError(f"key {key_id} was rotated already (to {old.rotated_to})")
        issued = self.create(old.owner, old.roles, regions=old.regions,
                             expires_in_days=expires_in_days, unmask=old.unmask,
                             rate_per_second=old.rate_per_second,
                             description=old.description, by=by, by_role=by_role)
        new = dataclasses.replace(issued.key, rotated_from=old.key_id)
        self._store.replace(new)
        ended = dataclasses.replace(old, rotated_to=new.key_id,
                                    expires_at=min(old.expires_at, now + overlap_seconds))
        self._store.replace(ended)
        self._audit(AuditEvent(action="key.rotated", actor=by, role=by_role,
                               resource=f"key:{old.key_id}", before=_fingerprint(old),
                               after=_fingerprint(ended),
                               reason=f"successor key:{new.key_id}, overlap "
                                      f"{overlap_seconds:g} s"))
        return IssuedKey(issued.text, new), ended

    def revoke(self, key_id: str, *, by: str = "", by_role: str = "admin",
               reason: str = "") -> ApiKey:
        """End ``key_id`` now (a key revoked already stays as it was: idempotent)."""
        old = self.get(key_id)
        if old.revoked_at is not None:
            return old
        revoked = dataclasses.replace(old, revoked_at=self._clock(), revoked_by=by)
        self._store.replace(revoked)
        self._audit(AuditEvent(action="key.revoked", actor=by, role=by_role,
                               resource=f"key:{key_id}", before=_fingerprint(old),
                               after=_fingerprint(revoked), reason=reason))
        return revoked
