"""The distributed coordination backends, in Cassandra's global keyspace and shared by the
writers and servers of every machine: the writers' turns (a lease with a fencing token, and
the turn feed), the review queue and the model registry (the driver is imported when one is
opened)."""

from idgraph.coordination.cassandra_backend.models import CassandraModelRegistry
from idgraph.coordination.cassandra_backend.reviews import CassandraReviewQueue
from idgraph.coordination.cassandra_backend.turns import CassandraWriterTurns

__all__ = ["CassandraModelRegistry", "CassandraReviewQueue", "CassandraWriterTurns"]
