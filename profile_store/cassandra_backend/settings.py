"""Settings of the Cassandra profile store (section ``[cassandra]``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from idgraph.core.sections import Section


class CassandraSettings(Section):
    """The Cassandra profile store (``profile_store_backend = "cassandra"``).

    One keyspace per region (``KEYSPACE_PREFIX_REGION``), replicated only to that
    region's data centres: a profile's rows exist only where its region allows.
    """

    contact_points: list[str] = ["127.0.0.1"]
    port: int = Field(default=9042, ge=1, le=65535)
    local_datacenter: str = "dc1"
    """Data centre this process talks to (DCAwareRoundRobinPolicy + token awareness)."""
    protocol_version: int | None = None
    """Native protocol version; None lets the driver negotiate (Cassandra 2.1 needs 3)."""
    consistency: Literal["ONE", "LOCAL_ONE", "LOCAL_QUORUM", "QUORUM", "EACH_QUORUM", "ALL"] = \
        "LOCAL_QUORUM"
    """Consistency of every read and write."""
    keyspace_prefix: str = Field(default="idgraph", pattern=r"^[a-z][a-z0-9_]*$")
    region_datacenters: dict[str, dict[str, int]] = {
        "eu": {"dc1": 1}, "uk": {"dc1": 1}, "us": {"dc2": 1}, "apac": {"dc2": 1},
    }
    """Region -> {data centre: replication factor} of its keyspace (NetworkTopologyStrategy)."""
    username: str = ""
    password: SecretStr = SecretStr("")
    ssl_ca_file: Path | None = None
    ssl_cert_file: Path | None = None
    ssl_key_file: Path | None = None
    request_timeout_seconds: float = Field(default=10.0, gt=0)
    concurrency: int = Field(default=64, ge=1)
    """In-flight statements when a batch is written or read concurrently."""
    anonymous_ttl_seconds: int = Field(default=0, ge=0)
    """TTL of the rows of profiles with no known (non-shareable) identifier; 0: none."""
    anonymous_identifier_types: list[str] = ["device", "idfa", "gaid", "cookie"]
    """Identifier kinds that do not make a profile known (for ``anonymous_ttl_seconds``):
    the default linking rules' shareable types."""
    segment_log_ttl_seconds: int = Field(default=86_400, ge=60)
    """TTL of the segment change log's rows (what ``WatchSegment`` resumes from): keep it
    at least ``segments.log_retention_hours``; this store ignores that setting's pruning
    hint (``StoreBatch.segment_log_before``) and lets the rows expire instead."""
