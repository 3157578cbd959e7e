"""Coordination: the writers' turns, the review queue and the model registry.

The interfaces are in :mod:`idgraph.coordination.base`; :mod:`idgraph.coordination.local`
keeps them in the data dir (one machine), :mod:`idgraph.coordination.cassandra_backend`
in Cassandra (every machine): the model registry and the writers' lease (with a fencing
token) in the global keyspace, which holds no personal data; what names records (the
review queue, the keys of the turn feed) in the keyspace of the records' home region.
The functions below open the backend they are given.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from idgraph.coordination.base import (
    STATUSES,
    CatchUp,
    ModelRegistry,
    Review,
    ReviewQueue,
    ReviewStateError,
    WriterCoordination,
    review_id_for,
)
from idgraph.core.errors import ConfigError

if TYPE_CHECKING:
    from idgraph.profile_store.cassandra_backend.settings import CassandraSettings

__all__ = [
    "STATUSES", "CatchUp", "ModelRegistry", "Review", "ReviewQueue", "ReviewStateError",
    "WriterCoordination", "mark_schema_created", "open_model_registry", "open_review_queue",
    "open_writer_turns", "review_id_for", "schema_created",
]


def open_writer_turns(data_dir: Path, wait_seconds: float, backend: str = "local",
                      cassandra: CassandraSettings | None = None,
                      lease_seconds: float = 10.0,
                      regions: Sequence[str] = ()) -> WriterCoordination:
    """The writers' turns of ``backend`` (waiting at most ``wait_seconds`` for one):
    ``local``, a file lock and feed in ``data_dir`` (one machine's writers); ``cassandra``,
    a lease of ``lease_seconds`` with a fencing token in the global keyspace of the
    cluster ``cassandra`` describes and the feed's record keys in the keyspaces of
    ``regions`` (the regions the writer writes; every machine's writers)."""
    if backend == "cassandra":
        from idgraph.coordination.cassandra_backend.turns import CassandraWriterTurns

        return CassandraWriterTurns(_cassandra(cassandra), regions, wait_seconds,
                                    lease_seconds)
    _check_local(backend)
    from idgraph.coordination.local.turns import WriterTurns

    return WriterTurns(data_dir, wait_seconds)


def mark_schema_created(backend: str, cassandra: CassandraSettings | None = None) -> None:
    """Record that every keyspace and table of the deployment exists (after ``idgraph
    schema`` created them): the ``cassandra`` backend's writers refuse to start before
    (:func:`schema_created`); nothing to record for ``local``."""
    if backend == "cassandra":
        from idgraph.coordination.cassandra_backend.turns import mark_schema_created as mark

        mark(_cassandra(cassandra))
        return
    _check_local(backend)


def schema_created(backend: str, cassandra: CassandraSettings | None = None) -> bool:
    """Whether writers may start: ``cassandra``, ``idgraph schema`` ran (writers creating
    tables at the same moment break them on Cassandra 2.1); ``local``, always (the first
    writer creates the files under a lock)."""
    if backend == "cassandra":
        from idgraph.coordination.cassandra_backend.turns import schema_created as created

        return created(_cassandra(cassandra))
    _check_local(backend)
    return True


def open_review_queue(data_dir: Path, create: bool = True, backend: str = "local",
                      cassandra: CassandraSettings | None = None,
                      regions: Sequence[str] = ()) -> ReviewQueue | None:
    """The review queue of ``backend``: ``local``, the SQLite file of ``data_dir``;
    ``cassandra``, the keyspaces of ``regions`` (those this process serves, strictest
    first: a review lives in the strictest home region of its two records) in the
    cluster ``cassandra`` describes. Without ``create``, None when it has none yet (no
    writer created it)."""
    if backend == "cassandra":
        from idgraph.coordination.cassandra_backend.reviews import CassandraReviewQueue

        settings = _cassandra(cassandra)
        if not create and not CassandraReviewQueue.exists(settings, regions):
            return None
        return CassandraReviewQueue(settings, regions, create=create)
    _check_local(backend)
    from idgraph.coordination.local.reviews import SqliteReviewQueue

    path = Path(data_dir) / "reviews.sqlite"
    if not create and not path.exists():
        return None
    return SqliteReviewQueue(path)


def open_model_registry(data_dir: Path, backend: str = "local",
                        cassandra: CassandraSettings | None = None) -> ModelRegistry:
    """The trained models of ``backend``: ``local``, files in ``data_dir/models``;
    ``cassandra``, the global keyspace of the cluster ``cassandra`` describes."""
    if backend == "cassandra":
        from idgraph.coordination.cassandra_backend.models import CassandraModelRegistry

        return CassandraModelRegistry(_cassandra(cassandra))
    _check_local(backend)
    from idgraph.coordination.local.models import DirectoryModelRegistry

    return DirectoryModelRegistry(Path(data_dir) / "models")


def _cassandra(settings: CassandraSettings | None) -> CassandraSettings:
    if settings is None:
        raise ConfigError("coordination_backend = cassandra needs the [cassandra] section")
    return settings


def _check_local(backend: str) -> None:
    if backend != "local":
        raise ConfigError(f"coordination_backend: unknown backend {backend!r} "
                          "(local or cassandra)")
