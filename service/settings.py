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
    """Bearer tokens accepted in the ``authorization`` metadata. Empty: no authentication
    (only allowed when ``host`` is a loopback address)."""
    steward_tokens: list[SecretStr] = []
    """Bearer tokens of data stewards: they may also call Explain, ListReviews and
    DecideReview (which show or change why records link). ``api_tokens`` (activation
    channels) may only look profiles up. With no tokens at all (loopback only), every rpc
    is open."""
    privacy_tokens: list[SecretStr] = []
    """Bearer tokens of privacy officers: they may forget a person, end a suppression and
    export a person's data (no other token may), record and read consent, look profiles
    up and call Explain."""
    client_token: SecretStr | None = None
    """Token the CLI client sends."""
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    served_regions: list[str] | None = None
    """Regions this server answers for; None: every region in ``regions.regions``."""
    max_batch_lookup: int = Field(default=1000, ge=1)
    max_watchers: int = Field(default=4, ge=0)
    """``WatchSegment`` streams served at once (per process). Each holds one of
    ``max_workers`` threads while open, so keep it below ``max_workers``; one more gets
    RESOURCE_EXHAUSTED."""
    watch_poll_seconds: float = Field(default=0.02, gt=0, le=5)
    """How often a ``WatchSegment`` stream reads the store's change log when idle."""
