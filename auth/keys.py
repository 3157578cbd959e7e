"""API keys: their text form, their stored form and the rules of their lifetime.

A key as a caller holds it: ``idg_<key id>_<secret>_<checksum>``

* ``key id``: 12 base62 characters, public (it names the key in listings, audit entries
  and revocations);
* ``secret``: 43 base62 characters, 256 bits from :mod:`secrets`;
* ``checksum``: 6 base62 characters, the CRC32 of everything before it. It lets a scanner
  (:func:`find_keys`, ``idgraph keys scan``) tell a real key from a lookalike offline,
  with no call to the server, as GitHub's token format does.

What is stored (:class:`ApiKey`) is the key ID and ``HMAC-SHA256(server secret, key id :
secret)``, never the secret: a copy of the key store does not give working keys. The
presented secret's HMAC is compared with :func:`hmac.compare_digest` (constant time). The
whole key is shown once, when it is created or rotated.

Lifetime: every key expires (:data:`DEFAULT_TTL_DAYS` by default, at most
:data:`MAX_TTL_DAYS`). Rotation creates a successor with the same owner, roles, regions
and grants, and cuts the old key's expiry to the end of an overlap window (zero: at once),
so both work while callers switch over, as Stripe's rolled keys do. Revocation ends a key
at once (every running server drops it within ``auth.cache_seconds``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
import secrets
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import orjson

from idgraph.core.errors import IdGraphError, NotFoundError

PREFIX = "idg_"
KEY_ID_CHARS = 12
SECRET_CHARS = 43  # 62**43 > 2**256
CHECKSUM_CHARS = 6  # 62**6 > 2**32
DEFAULT_TTL_DAYS = 90
MAX_TTL_DAYS = 365
DAY = 86_400.0

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_B62 = "[0-9A-Za-z]"
KEY_PATTERN = re.compile(
    rf"(?<![0-9A-Za-z_]){PREFIX}({_B62}{{{KEY_ID_CHARS}}})_({_B62}{{{SECRET_CHARS}}})"
    rf"_({_B62}{{{CHECKSUM_CHARS}}})(?![0-9A-Za-z_])")
"""A key's shape (the checksum is checked by :func:`parse_key`, not by the pattern)."""


class KeyRequestError(IdGraphError):
    """A key request that cannot be carried out as given (a role or region that does not
    exist, a lifetime out of bounds, rotating a revoked key)."""

    status = "INVALID_ARGUMENT"


class KeyNotFoundError(NotFoundError):
    """No key with this ID."""


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        digits.append(_BASE62[digit])
    if number:
        raise ValueError("number does not fit the width")
    return "".join(reversed(digits))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), CHECKSUM_CHARS)


@dataclass(frozen=True, slots=True)
class KeyParts:
    """A presented key split into its ID and secret (the checksum matched)."""

    key_id: str
    secret: str


def new_key_text() -> tuple[str, KeyParts]:
    """A fresh key: its full text (shown once) and its parts."""
    key_id = _base62(secrets.randbits(71), KEY_ID_CHARS)
    secret = _base62(secrets.randbits(256), SECRET_CHARS)
    body = f"{PREFIX}{key_id}_{secret}"
    return f"{body}_{_checksum(body)}", KeyParts(key_id, secret)


def parse_key(text: str) -> KeyParts | None:
    """The parts of ``text`` when it is a well-formed key whose checksum matches; None
    otherwise (a static token, a typo, a truncated copy)."""
    match = KEY_PATTERN.fullmatch(text)
    if match is None:
        return None
    key_id, secret, checksum = match.groups()
    if not hmac.compare_digest(checksum, _checksum(f"{PREFIX}{key_id}_{secret}")):
        return None
    return KeyParts(key_id, secret)


def find_keys(text: str) -> Iterator[tuple[int, str]]:
    """``(offset, key ID)`` of every real key (checksum matching) in ``text``: what a scan
    of logs, repositories or pastes for leaked keys reports (never the secret)."""
    for match in KEY_PATTERN.finditer(text):
        parts = parse_key(match.group(0))
        if parts is not None:
            yield match.start(), parts.key_id


def secret_hash(server_secret: bytes, parts: KeyParts) -> str:
    """What is stored for a key: HMAC-SHA256 of ``key id : secret`` under the server's
    secret, hex."""
    message = f"{parts.key_id}:{parts.secret}".encode("ascii")
    return hmac.new(server_secret, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key (never its secret).

    ``roles``: names from :data:`idgraph.auth.roles.ROLES`; ``regions``: the regions the
    key may read or change (empty: every region the server serves); ``unmask``: a
    marketer key that may see personal fields; ``rate_per_second``: its own request rate
    limit (None: its roles' default). Times are Unix seconds. ``rotated_to`` names the
    successor of a rotated key, ``rotated_from`` the key a successor replaced.
    """

    key_id: str
    owner: str
    roles: tuple[str, ...]
    created_at: float
    expires_at: float
    secret_hash: str
    regions: tuple[str, ...] = ()
    unmask: bool = False
    rate_per_second: float | None = None
    created_by: str = ""
    description: str = ""
    revoked_at: float | None = None
    revoked_by: str = ""
    rotated_from: str = ""
    rotated_to: str = ""

    def refusal(self, now: float) -> str | None:
        """Why the key does not work at ``now`` (``"revoked"``, ``"expired"``); None when
        it works."""
        if self.revoked_at is not None and self.revoked_at <= now:
            return "revoked"
        if self.expires_at <= now:
            return "expired"
        return None

    def to_json(self) -> bytes:
        return orjson.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, doc: bytes | str) -> ApiKey:
        data = orjson.loads(doc)
        data["roles"] = tuple(data.get("roles", ()))
        data["regions"] = tuple(data.get("regions", ()))
        return cls(**data)


def expiry(now: float, ttl_days: float | None) -> float:
    """The expiry of a key created at ``now`` living ``ttl_days`` (default
    :data:`DEFAULT_TTL_DAYS`); InvalidRequestError beyond :data:`MAX_TTL_DAYS` or not
    positive."""
    days = DEFAULT_TTL_DAYS if ttl_days is None else ttl_days
    if not 0 < days <= MAX_TTL_DAYS:
        raise KeyRequestError(
            f"expires_in_days must be more than 0 and at most {MAX_TTL_DAYS} (got {days:g})")
    return now + days * DAY
