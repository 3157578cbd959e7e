"""Who is calling: a bearer credential or a client certificate turned into a
:class:`Principal` (its roles, permissions, regions and rate), with no transport in sight
(the gRPC interceptor and, later, the console both use it).

Credentials, in the order they are tried:

1. an API key (``idg_...``, :mod:`idgraph.auth.keys`): its checksum, then the stored key
   (cached ``cache_seconds``), then the HMAC of its secret compared in constant time, then
   its expiry and revocation;
2. a static token from the settings (``grpc.api_tokens``, ``grpc.steward_tokens``,
   ``grpc.privacy_tokens``; deprecated: they keep working for one release, with a
   warning at start). Their SHA-256 is compared with every configured token's, with no
   early exit;
3. the common name of a verified client certificate (mutual TLS), mapped to roles by
   ``auth.certificate_principals``.

A credential that is presented but wrong fails the call (UNAUTHENTICATED), even when a
client certificate would have been accepted: a caller is never silently someone else.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from idgraph.auth.keys import PREFIX, ApiKey, parse_key, secret_hash
from idgraph.auth.roles import ACTIVATION, MARKETER, PRIVACY, STEWARD, permissions_of
from idgraph.auth.settings import CertificatePrincipal
from idgraph.auth.store import KeyStore
from idgraph.core.errors import IdGraphError

LEGACY_ROLES = {
    "api": (ACTIVATION,),
    # a steward token could call every rpc but the privacy officer's ones, segment
    # definitions included: it keeps that for its deprecation release
    "steward": (STEWARD, MARKETER, ACTIVATION),
    "privacy": (PRIVACY,),
}
"""The roles each kind of static token had (they keep them until they are removed)."""

USAGE_FLUSH_SECONDS = 60.0
"""A key's last use is written to the key store at most this often per process."""

NEGATIVE_CACHE_LIMIT = 10_000
"""Unknown key IDs remembered (a flood of made-up IDs reads the store once each)."""


class AuthenticationError(IdGraphError):
    """The credential is missing, malformed, unknown, wrong, expired or revoked."""

    status = "UNAUTHENTICATED"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller.

    ``name`` is what audit entries and ``decided_by`` fields record: ``key:<key id>``,
    ``cert:<common name>``, ``<kind>:<8 hex of its SHA-256>`` (a static token of kind
    ``api``, ``steward`` or ``privacy``) or ``anonymous``
    (a loopback server with no credentials configured). ``regions`` empty: every region
    the server serves.
    """

    name: str
    roles: tuple[str, ...]
    permissions: frozenset[str]
    regions: tuple[str, ...] = ()
    rate_per_second: float | None = None
    key_id: str = ""
    masked: bool = field(default=False, compare=False)
    """Set per call by the transport: this call reads profiles masked."""
    request_id: str = field(default="", compare=False)
    """Set per call by the transport: the caller's ``x-request-id`` or a fresh one (what
    audit entries of the call carry)."""

    @property
    def role(self) -> str:
        """The roles as one audit field (``steward+marketer``)."""
        return "+".join(self.roles) if self.roles else "none"


ANONYMOUS = Principal("anonymous", (), frozenset({"*"}))
"""The caller on a server with no credentials (loopback only): every rpc is open."""


class Authenticator:
    """Turns credentials into principals (module docstring).

    ``store`` and ``server_secret`` serve API keys (None: keys are not accepted);
    ``static_tokens`` maps each configured token to its kind (``api``, ``steward``,
    ``privacy``); ``certificates`` maps client certificate common names to principals.
    """

    def __init__(self, store: KeyStore | None, server_secret: bytes | None, *,
                 static_tokens: Mapping[str, str] | None = None,
                 certificates: Mapping[str, CertificatePrincipal] | None = None,
                 cache_seconds: float = 0.5,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if (store is None) != (server_secret is None):
            raise ValueError("store and server_secret go together")
        self._store = store
        self._secret = server_secret
        self._tokens = [(hashlib.sha256(t.encode()).digest(), kind)
                        for t, kind in (static_tokens or {}).items()]
        self._certificates = dict(certificates or {})
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._monotonic = monotonic
        self._cache: dict[str, tuple[ApiKey | None, float]] = {}
        self._used: dict[str, float] = {}
        self._used_flushed = monotonic()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """False when no credential of any kind can be accepted: every call passes
        (servers allow that on loopback only)."""
        return bool(self._store is not None or self._tokens or self._certificates)

    @property
    def accepts_keys(self) -> bool:
        return self._store is not None

    @property
    def static_token_count(self) -> int:
        """How many static tokens (deprecated) are accepted."""
        return len(self._tokens)

    def authenticate(self, bearer: str | None, certificate_name: str | None = None
                     ) -> Principal:
        """The principal of a call presenting ``bearer`` (the token after ``Bearer``;
        None when the call sent none) and, on a mutual-TLS connection, the verified
        client certificate's common name. AuthenticationError saying why when there is
        none; its message names no secret."""
        if not self.enabled:
            return ANONYMOUS
        if bearer is not None:
            return self._bearer(bearer)
        if certificate_name is not None:
            return self._certificate(certificate_name)
        raise AuthenticationError(
            "missing bearer token: send metadata 'authorization: Bearer <key>'")

    def _bearer(self, token: str) -> Principal:
        if token.startswith(PREFIX) and self._store is not None:
            parts = parse_key(token)
            if parts is None:
                raise AuthenticationError("malformed API key (its checksum does not match: "
                                          "a truncated or mistyped copy)")
            key = self._key(parts.key_id)
            expected = key.secret_hash if key is not None else "0" * 64
            presented = secret_hash(self._secret, parts)  # type: ignore[arg-type]
            if not hmac.compare_digest(presented, expected) or key is None:
                raise AuthenticationError("invalid API key")
            now = self._clock()
            refusal = key.refusal(now)
            if refusal is not None:
                raise AuthenticationError(f"API key {key.key_id} is {refusal}")
            self._mark_used(key.key_id, now)
            return Principal(f"key:{key.key_id}", key.roles,
                             permissions_of(key.roles, key.unmask), key.regions,
                             key.rate_per_second, key.key_id)
        digest = hashlib.sha256(token.encode()).digest()
        found = None
        for candidate, kind in self._tokens:  # every digest compared: no early exit
            if hmac.compare_digest(digest, candidate):
                found = kind
        if found is None:
            raise AuthenticationError("invalid bearer token")
        roles = LEGACY_ROLES[found]
        return Principal(f"{found}:{digest.hex()[:8]}", roles,
                         permissions_of(roles, unmask=True))

    def _certificate(self, name: str) -> Principal:
        granted = self._certificates.get(name)
        if granted is None:
            return Principal(f"cert:{name}", (), frozenset())
        roles = tuple(granted.roles)
        return Principal(f"cert:{name}", roles, permissions_of(roles, granted.unmask),
                         tuple(granted.regions))

    def _key(self, key_id: str) -> ApiKey | None:
        now = self._monotonic()
        hit = self._cache.get(key_id)
        if hit is not None and now - hit[1] < self._cache_seconds:
            return hit[0]
        key = self._store.get(key_id)  # type: ignore[union-attr]
        with self._lock:
            if key is None and len(self._cache) >= NEGATIVE_CACHE_LIMIT:
                self._cache = {k: v for k, v in self._cache.items() if v[0] is not None}
            self._cache[key_id] = (key, now)
        return key

    def _mark_used(self, key_id: str, at: float) -> None:
        self._used[key_id] = at
        if self._monotonic() - self._used_flushed >= USAGE_FLUSH_SECONDS:
            self.flush_usage()

    def flush_usage(self) -> None:
        """Write the keys' last uses to the store (at most every
        :data:`USAGE_FLUSH_SECONDS` from calls; at shutdown by the server)."""
        with self._lock:
            used, self._used = self._used, {}
            self._used_flushed = self._monotonic()
        if used and self._store is not None:
            self._store.mark_used(used)


def static_tokens(api: Iterable[str], steward: Iterable[str], privacy: Iterable[str]
                  ) -> dict[str, str]:
    """The static tokens of the settings as ``{token: kind}``."""
    tokens = {t: "api" for t in api}
    tokens.update((t, "steward") for t in steward)
    tokens.update((t, "privacy") for t in privacy)
    return tokens
