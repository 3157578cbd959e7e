"""API keys: their format, their lifetime (creation, expiry, rotation with an overlap,
revocation) and what the authenticator makes of them, over a real SQLite key store shared
by two "servers" (two authenticators, as two processes would)."""

from __future__ import annotations

import dataclasses

import pytest

from idgraph.auth.authenticator import AuthenticationError, Authenticator
from idgraph.auth.key_admin import KeyAdmin
from idgraph.auth.keys import (
    DAY,
    KeyRequestError,
    find_keys,
    new_key_text,
    parse_key,
    secret_hash,
)
from idgraph.auth.ratelimit import RateLimiter
from idgraph.auth.roles import MASKED_READ
from idgraph.auth.settings import CertificatePrincipal
from idgraph.auth.sqlite_backend import SqliteKeyStore

SECRET = b"s" * 32
REGIONS = ("eu", "uk", "us", "apac")


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(tmp_path):
    s = SqliteKeyStore(tmp_path / "auth.sqlite")
    yield s
    s.close()


@pytest.fixture
def admin(store, clock):
    events = []
    a = KeyAdmin(store, SECRET, REGIONS, audit=events.append, clock=clock)
    a.events = events
    return a


def authenticator(store, clock, mono=None, **kw):
    return Authenticator(store, SECRET, clock=clock, monotonic=mono or clock, **kw)


def test_a_key_is_prefixed_checksummed_and_256_bits():
    text, parts = new_key_text()
    prefix, key_id, secret, checksum = text.split("_")
    assert prefix == "idg" and len(key_id) == 12 and len(secret) == 43 and len(checksum) == 6
    assert parse_key(text) == parts and parts.key_id == key_id
    # any change to one character breaks the checksum: a typo is no key
    for i in (5, 20, len(text) - 1):
        broken = text[:i] + ("A" if text[i] != "A" else "B") + text[i + 1:]
        assert parse_key(broken) is None
    assert parse_key(text[:-1]) is None and parse_key("steward-token") is None
    assert len({new_key_text()[1].secret for _ in range(100)}) == 100


def test_scanning_finds_real_keys_and_not_lookalikes():
    real, parts = new_key_text()
    fake = real[:-6] + ("000000" if not real.endswith("000000") else "111111")
    text = f"export KEY={real}\nsomething {fake} else\nurl?k={real}&x=1"
    assert [key_id for _, key_id in find_keys(text)] == [parts.key_id, parts.key_id]
    assert "".join(k for _, k in find_keys(text)).find(parts.secret) == -1


def test_only_a_keyed_hash_of_the_secret_is_stored(admin, store):
    issued = admin.create("crm sync", ["activation"])
    stored = store.get(issued.key.key_id)
    parts = parse_key(issued.text)
    assert parts.secret not in stored.to_json().decode()
    assert stored.secret_hash == secret_hash(SECRET, parts)
    assert stored.secret_hash != secret_hash(b"t" * 32, parts)  # keyed by the server secret


def test_creation_checks_roles_regions_lifetime_and_owner(admin, clock):
    with pytest.raises(KeyRequestError, match="unknown role 'root'"):
        admin.create("o", ["root"])
    with pytest.raises(KeyRequestError, match="name at least one"):
        admin.create("o", [])
    with pytest.raises(KeyRequestError, match="unknown region 'mars'"):
        admin.create("o", ["activation"], regions=["mars"])
    with pytest.raises(KeyRequestError, match="at most 365"):
        admin.create("o", ["activation"], expires_in_days=366)
    with pytest.raises(KeyRequestError, match="owner is required"):
        admin.create(" ", ["activation"])
    with pytest.raises(KeyRequestError, match="unmask is a grant of the marketer"):
        admin.create("o", ["activation"], unmask=True)
    key = admin.create("o", ["activation"]).key
    assert key.expires_at == clock.now + 90 * DAY  # the default lifetime
    assert [e.action for e in admin.events] == ["key.created"]
    assert admin.events[0].resource == f"key:{key.key_id}" and admin.events[0].after


def test_a_key_authenticates_until_it_expires(admin, store, clock):
    issued = admin.create("o", ["activation", "marketer"], regions=["eu"],
                          expires_in_days=1)
    auth = authenticator(store, clock)
    who = auth.authenticate(issued.text)
    assert who.name == f"key:{issued.key.key_id}" and who.regions == ("eu",)
    assert "profiles.read" in who.permissions and "segments.write" in who.permissions
    clock.now += DAY
    with pytest.raises(AuthenticationError, match="is expired"):
        auth.authenticate(issued.text)


def test_a_wrong_secret_or_unknown_key_is_refused_alike(admin, store, clock):
    issued = admin.create("o", ["activation"])
    auth = authenticator(store, clock)
    other_text, _ = new_key_text()
    body = f"idg_{issued.key.key_id}_{other_text.split('_')[2]}"
    import zlib

    from idgraph.auth.keys import _base62
    forged = f"{body}_{_base62(zlib.crc32(body.encode()), 6)}"  # right ID and checksum
    for text in (forged, other_text):
        with pytest.raises(AuthenticationError, match="^invalid API key$"):
            auth.authenticate(text)
    with pytest.raises(AuthenticationError, match="malformed API key"):
        auth.authenticate(issued.text[:-1] + "x")
    with pytest.raises(AuthenticationError, match="missing bearer token"):
        auth.authenticate(None)


def test_a_revocation_reaches_another_server_within_its_cache_time(admin, store, clock,
                                                                   tmp_path):
    issued = admin.create("o", ["activation"])
    mono = Clock(0.0)
    # another process: its own store connection and cache
    other = authenticator(SqliteKeyStore(tmp_path / "auth.sqlite"), clock, mono,
                          cache_seconds=0.5)
    assert other.authenticate(issued.text).key_id == issued.key.key_id
    admin.revoke(issued.key.key_id, by="key:admin", reason="leaked")
    mono.now = 0.4  # still trusted from its cache
    assert other.authenticate(issued.text).key_id == issued.key.key_id
    mono.now = 0.5
    with pytest.raises(AuthenticationError, match="is revoked"):
        other.authenticate(issued.text)
    assert admin.revoke(issued.key.key_id).revoked_by == "key:admin"  # idempotent
    assert [e.action for e in admin.events] == ["key.created", "key.revoked"]


def test_rotation_keeps_the_old_key_for_the_overlap_only(admin, store, clock):
    old = admin.create("crm", ["activation"], regions=["us"], rate_per_second=7.0)
    new, ended = admin.rotate(old.key.key_id, overlap_seconds=3600, by="key:admin")
    assert (new.key.roles, new.key.regions, new.key.rate_per_second, new.key.owner) == \
        (("activation",), ("us",), 7.0, "crm")
    assert new.key.rotated_from == old.key.key_id and ended.rotated_to == new.key.key_id
    auth = authenticator(store, clock, cache_seconds=0)
    assert auth.authenticate(old.text).key_id == old.key.key_id
    assert auth.authenticate(new.text).key_id == new.key.key_id
    clock.now += 3600
    with pytest.raises(AuthenticationError, match="is expired"):
        auth.authenticate(old.text)
    assert auth.authenticate(new.text)
    with pytest.raises(KeyRequestError, match="is expired"):
        admin.rotate(old.key.key_id)
    again, _ = admin.rotate(new.key.key_id)  # no overlap: the old one stops at once
    with pytest.raises(AuthenticationError):
        auth.authenticate(new.text)
    assert auth.authenticate(again.text)
    with pytest.raises(KeyRequestError, match="overlap"):
        admin.rotate(again.key.key_id, overlap_seconds=31 * DAY)
    assert "key.rotated" in [e.action for e in admin.events]


def test_listing_reports_state_and_last_use(admin, store, clock):
    a = admin.create("a", ["activation"])
    b = admin.create("b", ["admin"])
    admin.revoke(b.key.key_id)
    auth = authenticator(store, clock)
    auth.authenticate(a.text)
    auth.flush_usage()
    listed = admin.list()
    assert [(k.key.key_id, k.state, k.last_used) for k in listed] == \
        [(a.key.key_id, "active", clock.now)]
    assert {k.state for k in admin.list(include_inactive=True)} == {"active", "revoked"}


def test_static_tokens_keep_their_old_roles():
    auth = Authenticator(None, None, static_tokens={"t-api": "api", "t-st": "steward",
                                                     "t-pr": "privacy"})
    api, steward, privacy = (auth.authenticate(t) for t in ("t-api", "t-st", "t-pr"))
    assert api.name.startswith("api:") and "t-api" not in api.name
    assert "links.explain" not in api.permissions and "profiles.read" in api.permissions
    assert {"links.explain", "segments.write", "reviews.decide"} <= steward.permissions
    assert "subjects.forget" not in steward.permissions
    assert "subjects.forget" in privacy.permissions
    with pytest.raises(AuthenticationError, match="invalid bearer token"):
        auth.authenticate("t-apix")


def test_a_client_certificate_is_a_principal_unless_a_credential_is_sent(admin, store, clock):
    auth = authenticator(store, clock, certificates={
        "crm-sync.internal": CertificatePrincipal(roles=["marketer"], regions=["eu"])})
    who = auth.authenticate(None, "crm-sync.internal")
    assert who.name == "cert:crm-sync.internal" and who.regions == ("eu",)
    assert MASKED_READ in who.permissions and "profiles.read" not in who.permissions
    assert auth.authenticate(None, "unknown.internal").permissions == frozenset()
    with pytest.raises(AuthenticationError):  # a wrong key is never taken for the cert
        auth.authenticate("idg_wrong", "crm-sync.internal")


def test_no_credential_configured_lets_everyone_in():
    assert not Authenticator(None, None).enabled
    assert Authenticator(None, None).authenticate(None).name == "anonymous"


def test_the_rate_limiter_allows_a_burst_then_the_rate():
    clock = Clock(0.0)
    limiter = RateLimiter(burst_seconds=2.0, clock=clock)
    assert sum(limiter.allow("key:a", 10.0) for _ in range(30)) == 20  # the burst
    assert not limiter.allow("key:a", 10.0)
    assert limiter.allow("key:b", 10.0)  # callers have their own buckets
    clock.now = 0.5
    assert sum(limiter.allow("key:a", 10.0) for _ in range(10)) == 5  # 10/s refilled


def test_a_key_text_round_trips_its_record(admin, store):
    issued = admin.create("o", ["marketer"], unmask=True, description="segments team")
    assert dataclasses.asdict(store.get(issued.key.key_id)) == dataclasses.asdict(issued.key)
