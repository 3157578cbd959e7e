"""Settings of the gRPC server and client (section ``[grpc]``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from idgraph.core.sections import Section


class GrpcSettings(Section):
    """The gRPC server (``idgraph serve``) and client (``idgraph lookup``)."""

    host: str = "127.0.0.1"
    port: int = Field(default=50051, ge=0, le=65535)
    max_workers: int = Field(default=8, ge=1)
    processes: int = Field(default=1, ge=1, le=64)
    """Server processes sharing the port (SO_REUSEPORT). grpc Python runs handlers under one
    GIL per process and a call costs ~0.4 ms of CPU before any work, so one process tops out
    near 1,000-1,500 lookups/s; use one process per core. The kernel spreads connections
    (not single calls) across processes."""
    api_tokens: list[SecretStr] = []
    """Deprecated (use API keys: ``idgraph keys create``); kept for this release, with a
    warning at start. Static bearer tokens with the ``activation`` role."""
    steward_tokens: list[SecretStr] = []
    """Deprecated, as ``api_tokens``: static tokens with the ``steward``, ``marketer``
    (unmasked) and ``activation`` roles (what a steward token could do before roles)."""
    privacy_tokens: list[SecretStr] = []
    """Deprecated, as ``api_tokens``: static tokens with the ``privacy`` role."""
    client_token: SecretStr | None = None
    """The key (or token) the CLI client sends."""
    tls_cert_file: Path | None = None
    """The server's certificate chain (PEM). TLS is required off loopback (see
    ``allow_plaintext``)."""
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    """CA bundle (PEM) client certificates are verified against: mutual TLS, every
    connection must present a certificate it signed (gRPC Python cannot ask for an
    optional one). A verified certificate's common name is a principal
    (``auth.certificate_principals``); a key sent as well takes precedence."""
    allow_plaintext: bool = False
    """Serve a non-loopback address without TLS (only behind a proxy or mesh that
    terminates TLS in front of the server)."""
    tls_ca_file: Path | None = None
    """Client side (``idgraph lookup``, ``idgraph keys`` over gRPC): the CA that signs the
    server's certificate; set it to connect over TLS."""
    tls_client_cert_file: Path | None = None
    """Client side: a client certificate to present (mutual TLS)."""
    tls_client_key_file: Path | None = None
    max_request_bytes: int = Field(default=1 << 20, ge=1024, le=64 << 20)
    """Largest request message accepted (RESOURCE_EXHAUSTED above)."""
    max_metadata_bytes: int = Field(default=16 << 10, ge=1024, le=1 << 20)
    """Largest request metadata accepted."""
    served_regions: list[str] | None = None
    """Regions this server answers for; None: every region in ``regions.regions``."""
    max_batch_lookup: int = Field(default=1000, ge=1)
    max_watchers: int = Field(default=4, ge=0)
    """``WatchSegment`` streams served at once (per process). Each holds one of
    ``max_workers`` threads while open, so keep it below ``max_workers``; one more gets
    RESOURCE_EXHAUSTED."""
    watch_poll_seconds: float = Field(default=0.02, gt=0, le=5)
    """How often a ``WatchSegment`` stream reads the store's change log when idle."""
