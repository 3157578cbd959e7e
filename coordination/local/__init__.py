"""The local coordination backends: files in the data dir, for writers on one machine."""

from coordination.local.models import DirectoryModelRegistry
from coordination.local.reviews import SqliteReviewQueue
from coordination.local.turns import WriterTurns

__all__ = ["DirectoryModelRegistry", "SqliteReviewQueue", "WriterTurns"]
