"""The privacy ledger in a SQLite file beside the embedded profile store."""

from idgraph.privacy.sqlite_backend.ledger import SqlitePrivacyLedger

__all__ = ["SqlitePrivacyLedger"]
