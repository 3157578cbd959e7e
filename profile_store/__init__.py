"""Profile store: the seam (:mod:`idgraph.profile_store.base`) and one package per backend."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from idgraph.profile_store.base import ChangeOutbox, ProfileReader, ProfileStore
from idgraph.profile_store.segment_state import SegmentCatalog

if TYPE_CHECKING:
    from idgraph.profile_store.cassandra_backend.settings import CassandraSettings

__all__ = ["ChangeOutbox", "ProfileReader", "ProfileStore", "SegmentCatalog", "create_reader",
           "create_segment_catalog", "create_store"]


def create_store(backend: str, data_dir: Path, regions: Iterable[str],
                 readonly: bool = False, cassandra: CassandraSettings | None = None
                 ) -> ProfileStore:
    """Open the configured profile-store backend for ``regions`` (drivers imported lazily).

    ``sqlite`` keeps one file in ``data_dir``; ``cassandra`` uses one keyspace per region
    on the cluster ``cassandra`` describes (defaults when None; ``data_dir`` unused). A
    missing driver raises ConfigError naming the extra to install."""
    if backend == "sqlite":
        from idgraph.profile_store.sqlite_backend import SqliteProfileStore

        return SqliteProfileStore(Path(data_dir) / "profiles.sqlite", regions, readonly=readonly)
    if backend == "cassandra":
        from idgraph.profile_store.cassandra_backend import CassandraProfileStore
        from idgraph.profile_store.cassandra_backend.settings import CassandraSettings

        return CassandraProfileStore(cassandra or CassandraSettings(), regions,
                                     readonly=readonly)
    raise ValueError(f"profile_store_backend: unknown backend {backend!r}; "
                     "known: sqlite, cassandra")


def create_reader(backend: str, data_dir: Path, regions: Iterable[str],
                  cassandra: CassandraSettings | None = None) -> ProfileReader:
    """The configured store opened read-only for ``regions``: typed as a
    :class:`ProfileReader`, it has no write methods, and the backend refuses writes anyway."""
    return create_store(backend, data_dir, regions, readonly=True, cassandra=cassandra)


def create_segment_catalog(backend: str, data_dir: Path,
                           cassandra: CassandraSettings | None = None) -> SegmentCatalog:
    """The configured store's segment definitions, opened for changes only (a server whose
    profile store is read-only defines segments through it)."""
    if backend == "sqlite":
        from idgraph.profile_store.sqlite_backend.segment_catalog import SqliteSegmentCatalog

        return SqliteSegmentCatalog(Path(data_dir) / "profiles.sqlite")
    if backend == "cassandra":
        from idgraph.profile_store.cassandra_backend.segment_catalog import (
            CassandraSegmentCatalog,
        )
        from idgraph.profile_store.cassandra_backend.settings import CassandraSettings

        return CassandraSegmentCatalog(cassandra or CassandraSettings())
    raise ValueError(f"profile_store_backend: unknown backend {backend!r}; "
                     "known: sqlite, cassandra")
