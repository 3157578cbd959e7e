"""Settings of the Neo4j identity graph (section ``[neo4j]``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from idgraph.core.sections import Section


class Neo4jSettings(Section):
    """The Neo4j identity graph (``graph_backend = "neo4j"``), over Bolt with the official
    driver. Any Bolt server speaking Neo4j 5 Cypher works (ArcadeDB in the tests)."""

    uri: str = "bolt://127.0.0.1:7687"
    """``bolt://`` or ``neo4j://`` (routing); ``+s``/``+ssc`` schemes turn TLS on."""
    user: str = "neo4j"
    password: SecretStr = SecretStr("")
    database: str = "neo4j"
    max_connection_pool_size: int = Field(default=16, ge=1)
    connection_timeout_seconds: float = Field(default=10.0, gt=0)
    max_transaction_retry_seconds: float = Field(default=30.0, gt=0)
    """How long a write is retried on transient errors and concurrent-write conflicts."""
    encrypted: bool = False
    """TLS for ``bolt://``/``neo4j://`` URIs (the ``+s`` and ``+ssc`` schemes turn it on
    themselves; ``+ssc`` accepts any certificate)."""
    trusted_ca_file: Path | None = None
    """CA bundle (PEM) that signs the server's certificate; None: the system's CAs. Used
    with ``encrypted = true`` or a ``+s`` URI; refused with ``+ssc`` or with TLS off."""
    write_batch_size: int = Field(default=2000, ge=1)
    """Rows per ``UNWIND`` statement when writing a batch's nodes and edges."""
