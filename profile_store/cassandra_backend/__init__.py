"""Cassandra profile store: one keyspace per region (see :mod:`.store`).

``CassandraProfileStore`` is imported on first use, so importing this package (or its
``local_cluster`` test helper) does not need ``cassandra-driver``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from idgraph.profile_store.cassandra_backend.store import CassandraProfileStore

__all__ = ["CassandraProfileStore"]


def __getattr__(name: str) -> Any:
    if name == "CassandraProfileStore":
        from idgraph.profile_store.cassandra_backend.store import CassandraProfileStore

        return CassandraProfileStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
