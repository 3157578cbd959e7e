"""Cassandra profile store: one keyspace per region (see :mod:`.store`), and its segment
catalog (:mod:`.segment_catalog`).

``CassandraProfileStore`` and ``CassandraSegmentCatalog`` are imported on first use, so
importing this package (or its ``local_cluster`` test helper) does not need
``cassandra-driver``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from idgraph.profile_store.cassandra_backend.segment_catalog import CassandraSegmentCatalog
    from idgraph.profile_store.cassandra_backend.store import CassandraProfileStore

__all__ = ["CassandraProfileStore", "CassandraSegmentCatalog"]


def __getattr__(name: str) -> Any:
    if name == "CassandraProfileStore":
        from idgraph.profile_store.cassandra_backend.store import CassandraProfileStore

        return CassandraProfileStore
    if name == "CassandraSegmentCatalog":
        from idgraph.profile_store.cassandra_backend.segment_catalog import (
            CassandraSegmentCatalog,
        )

        return CassandraSegmentCatalog
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
