"""API keys in Cassandra's global keyspace."""

from idgraph.auth.cassandra_backend.keys import CassandraKeyStore

__all__ = ["CassandraKeyStore"]
