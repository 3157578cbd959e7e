"""The local coordination backends: files in the data dir, for writers on one machine."""

from idgraph.coordination.local.models import DirectoryModelRegistry
from idgraph.coordination.local.reviews import SqliteReviewQueue
from idgraph.coordination.local.turns import WriterTurns

__all__ = ["DirectoryModelRegistry", "SqliteReviewQueue", "WriterTurns"]
