"""Coordination: the writers' turns, the review queue and the model registry.

The interfaces are in :mod:`idgraph.coordination.base`; :mod:`idgraph.coordination.local` keeps them in the
data dir (one machine). The functions below open the configured backend; today the local
one is the only one.
"""

from __future__ import annotations

from pathlib import Path

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

__all__ = [
    "STATUSES", "CatchUp", "ModelRegistry", "Review", "ReviewQueue", "ReviewStateError",
    "WriterCoordination", "open_model_registry", "open_review_queue", "open_writer_turns",
    "review_id_for",
]


def open_writer_turns(data_dir: Path, wait_seconds: float) -> WriterCoordination:
    """The writers' turns of ``data_dir`` (waiting at most ``wait_seconds`` for one)."""
    from idgraph.coordination.local.turns import WriterTurns

    return WriterTurns(data_dir, wait_seconds)


def open_review_queue(data_dir: Path, create: bool = True) -> ReviewQueue | None:
    """The review queue of ``data_dir``; without ``create``, None when it has none yet."""
    from idgraph.coordination.local.reviews import SqliteReviewQueue

    path = Path(data_dir) / "reviews.sqlite"
    if not create and not path.exists():
        return None
    return SqliteReviewQueue(path)


def open_model_registry(data_dir: Path) -> ModelRegistry:
    """The trained models of ``data_dir``."""
    from idgraph.coordination.local.models import DirectoryModelRegistry

    return DirectoryModelRegistry(Path(data_dir) / "models")
