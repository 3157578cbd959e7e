"""Neo4j identity graph over Bolt (``graph_backend = "neo4j"``).

The driver is imported when the graph module is (a missing driver is a ConfigError naming
the extra to install); importing this package, or its settings, does not import it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from idgraph.graph.neo4j_backend.graph import Neo4jGraph

__all__ = ["Neo4jGraph"]


def __getattr__(name: str) -> object:
    if name == "Neo4jGraph":
        from idgraph.graph.neo4j_backend.graph import Neo4jGraph

        return Neo4jGraph
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
