"""The privacy ledger in Cassandra's global keyspace."""

from idgraph.privacy.cassandra_backend.ledger import CassandraPrivacyLedger

__all__ = ["CassandraPrivacyLedger"]
