"""Settings of the web console (section ``[console]``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from idgraph.core.sections import Section


class ConsoleSettings(Section):
    """``idgraph console``: where it listens and which gRPC server it talks to."""

    host: str = "127.0.0.1"
    """Loopback by default. Any other address needs ``tls_cert_file``/``tls_key_file``:
    the session cookie is a credential."""
    port: int = Field(default=8700, ge=0, le=65535)
    server: str = "127.0.0.1:50051"
    """``host:port`` of the gRPC server (``idgraph serve``) the console calls."""
    server_tls_ca_file: Path | None = None
    """The CA that signs the gRPC server's certificate; set it to call over TLS."""
    tls_cert_file: Path | None = None
    """The console's own certificate chain (PEM), to serve HTTPS."""
    tls_key_file: Path | None = None
    session_idle_minutes: float = Field(default=30, gt=0, le=24 * 60)
    """A session unused this long ends (the key is dropped from memory)."""
    session_max_hours: float = Field(default=12, gt=0, le=7 * 24)
    """A session ends this long after sign-in, used or not."""
    call_timeout_seconds: float = Field(default=10, gt=0, le=300)
    """Deadline of each gRPC call the console makes."""
