"""Access-control settings (the ``[auth]`` table of ``idgraph.toml``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, field_validator

from idgraph.auth.keys import DEFAULT_TTL_DAYS, MAX_TTL_DAYS
from idgraph.auth.roles import ROLES
from idgraph.core.sections import Section


class CertificatePrincipal(BaseModel):
    """What a client certificate may do (mutual TLS): its roles and region limit."""

    roles: list[str]
    regions: list[str] = []
    """Empty: every region the server serves."""
    unmask: bool = False

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, roles: list[str]) -> list[str]:
        unknown = sorted(set(roles) - set(ROLES))
        if unknown or not roles:
            raise ValueError(f"roles must be some of {', '.join(ROLES)} (got {roles})")
        return roles


class AuthSettings(Section):
    """API keys, their cache on servers, rate limits, principals of client certificates
    and the audit log."""

    key_secret: SecretStr | None = None
    """The HMAC key API keys' secrets are hashed with (at least 32 characters). Every
    server of a deployment must use the same one. Unset: the embedded backend keeps a
    random one in ``auth.key`` in the data dir (mode 0600); the Cassandra backend refuses
    to start without it."""
    key_secret_file: Path | None = None
    """A file holding ``key_secret`` instead (read once at start)."""
    default_key_days: int = Field(default=DEFAULT_TTL_DAYS, ge=1, le=MAX_TTL_DAYS)
    """Lifetime of a new key when the request names none."""
    cache_seconds: float = Field(default=0.5, ge=0, le=0.9)
    """How long a server trusts a key it read from the key store. A revocation reaches
    every running server within this time plus one read (kept under 1 s)."""
    rate_per_second: dict[str, float] = {
        "activation": 2000.0, "marketer": 50.0, "steward": 50.0, "privacy": 50.0,
        "operator": 20.0, "admin": 20.0,
    }
    """Calls per second a key of each role may make (a key with several roles gets the
    highest; a key's own ``rate_per_second`` overrides). More: RESOURCE_EXHAUSTED. Per
    server process."""
    burst_seconds: float = Field(default=2.0, gt=0)
    """A key may burst to ``rate * burst_seconds`` calls after being idle."""
    certificate_principals: dict[str, CertificatePrincipal] = {}
    """Client certificates (mutual TLS, ``grpc.tls_client_ca_file``) by subject common
    name: the roles and regions of a caller presenting one. A certificate whose name is
    not here is authenticated but may call nothing; it may still send a key."""
    personal_attributes: list[str] = [
        "given_name", "middle_name", "family_name", "full_name", "birth_date", "email",
        "phone", "mobile_phone", "street", "address", "postal_code", "city",
    ]
    """Profile attributes masked in a marketer's view (with every identifier and record
    key); a key granted ``unmask`` sees them."""
    audit_dir: Path | None = None
    """Where the audit log is written (``audit.jsonl`` and ``checkpoints.jsonl``, owner
    only). None: ``audit`` in the data dir."""
    audit_signing_key_file: Path | None = None
    """The Ed25519 key checkpoints are signed with (PEM). None: ``audit.key`` in the data
    dir, created when missing, its public half beside it (``audit.key.pub``)."""
    audit_checkpoint_every: int = Field(default=1000, ge=1)
    audit_checkpoint_seconds: float = Field(default=60.0, gt=0)
    audit_reads: bool = True
    """Audit every profile read (batched). Turn off only to measure its cost
    (``benchmarks/access_control.py``): changes and refusals are audited regardless."""
    audit_flush_seconds: float = Field(default=1.0, gt=0, le=60)
    """Profile reads are audited in batches written this often (one entry per caller and
    action per batch, naming every profile read as a keyed hash)."""
