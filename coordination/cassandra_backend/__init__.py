"""The distributed coordination backends: the review queue and the model registry in
Cassandra's global keyspace, shared by the writers and servers of every machine (the
driver is imported when one is opened)."""

from idgraph.coordination.cassandra_backend.models import CassandraModelRegistry
from idgraph.coordination.cassandra_backend.reviews import CassandraReviewQueue

__all__ = ["CassandraModelRegistry", "CassandraReviewQueue"]
