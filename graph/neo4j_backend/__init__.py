"""Neo4j identity graph over Bolt (``graph_backend = "neo4j"``); the driver is imported when
a graph is opened."""

from idgraph.graph.neo4j_backend.graph import Neo4jGraph

__all__ = ["Neo4jGraph"]
