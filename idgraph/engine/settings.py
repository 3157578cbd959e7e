"""What the engine is configured with: the backends, the data dir and the resolver's sections.

:class:`EngineSettings` is the part of :class:`idgraph.settings.Settings` (which adds the
gRPC and Kafka sections and loads files and the environment) that the engine and the
backend builder read; each section is defined beside its component.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from idgraph.core.sections import Section
from idgraph.graph.neo4j_backend.settings import Neo4jSettings
from idgraph.privacy.settings import PrivacySettings
from idgraph.profile_store.cassandra_backend.settings import CassandraSettings
from idgraph.profile_store.settings import SurvivorshipSettings
from idgraph.resolver.settings import (
    LinkingSettings,
    MatchingSettings,
    NormalizationSettings,
    RegionSettings,
)


class SegmentSettings(Section):
    """How the writer keeps segment memberships (:mod:`idgraph.engine.segment_memberships`)."""

    log_retention_hours: float = Field(default=24.0, gt=0)
    """How long membership changes stay in the store's change log (``WatchSegment``
    resumes from a cursor within it)."""
    build_chunk_profiles: int = Field(default=2000, ge=1)
    """Profiles evaluated per round when a new or edited definition is evaluated over the
    stored profiles (each round is one atomic write, and one writer turn)."""
    tick_seconds: float = Field(default=0.25, gt=0)
    """How often a long-running writer (stream worker, ``idgraph segments run``) looks
    for deadlines that passed and definitions to evaluate."""


class EngineSettings(Section):
    """Everything a writing engine and the readers of its backends need."""

    data_dir: Path = Path(".idgraph")
    """Where the embedded backends keep their files (graph link log, profile database)."""
    graph_backend: Literal["networkx", "neo4j"] = "networkx"
    """``networkx``: embedded, in memory over a link log in ``data_dir``. ``neo4j``: the
    graph lives in Neo4j (``neo4j.*``)."""
    profile_store_backend: Literal["sqlite", "cassandra"] = "sqlite"
    """``sqlite``: embedded, in ``data_dir``. ``cassandra``: per-region keyspaces
    (``cassandra.*``)."""
    coordination_backend: Literal["local", "cassandra"] | None = None
    """Where the review queue and the model registry live. ``local``: files in
    ``data_dir`` (one machine's). ``cassandra``: the global keyspace of the ``cassandra.*``
    cluster, shared by the writers and servers of every machine. None (the default):
    ``cassandra`` when ``profile_store_backend`` is ``cassandra``, else ``local``. The
    writers' turns follow it: a file lock in ``data_dir``, or a lease with a fencing
    token in Cassandra (:mod:`idgraph.coordination.cassandra_backend.turns`)."""
    ingest_batch_size: int = Field(default=20_000, ge=1)
    """Records per atomic batch. Larger batches commit less often and coalesce writes to the
    same record: 2k -> 9.0k, 5k -> 10.9k, 20k -> 12.8k records/s at 100k (plateau after)."""
    normalization: NormalizationSettings = NormalizationSettings()
    linking: LinkingSettings = LinkingSettings()
    matching: MatchingSettings = MatchingSettings()
    survivorship: SurvivorshipSettings = SurvivorshipSettings()
    regions: RegionSettings = RegionSettings()
    neo4j: Neo4jSettings = Neo4jSettings()
    cassandra: CassandraSettings = CassandraSettings()
    segments: SegmentSettings = SegmentSettings()
    privacy: PrivacySettings = PrivacySettings()
    writer_lease_seconds: float = Field(default=10.0, gt=0)
    """With Cassandra coordination: how long a writer's turn outlives its last renewal (it
    is renewed every third of it while the turn runs), so how long a writer that died
    holding it blocks the others."""
    writer_turn_wait_seconds: float = Field(default=120.0, gt=0)
    """How long a writer waits for another writer of the same data dir to end its turn."""

    def coordination(self) -> str:
        """The coordination backend in use (``coordination_backend`` resolved)."""
        if self.coordination_backend is not None:
            return self.coordination_backend
        return "cassandra" if self.profile_store_backend == "cassandra" else "local"

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return v.expanduser()


