"""Identity graph: the seam (:mod:`idgraph.graph.base`) and one package per backend."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from idgraph.graph.base import (
    ComponentInfo,
    EdgeExplanation,
    GraphChanges,
    GraphComponents,
    GraphExplain,
    GraphProfiles,
    GraphView,
    IdentityGraph,
    LinkEdge,
    MatchEdge,
)

if TYPE_CHECKING:
    from idgraph.graph.neo4j_backend.settings import Neo4jSettings

__all__ = ["ComponentInfo", "EdgeExplanation", "GraphChanges", "GraphComponents", "GraphExplain",
           "GraphProfiles", "GraphView", "IdentityGraph", "LinkEdge", "MatchEdge", "create_graph",
           "create_graph_view"]


def create_graph(backend: str, data_dir: Path, shareable_types: frozenset[str],
                 read_only: bool = False, neo4j: Neo4jSettings | None = None) -> IdentityGraph:
    """Open the configured graph backend (drivers are imported lazily).

    ``read_only`` opens a reader's view (``idgraph serve``): it never writes, and
    :meth:`IdentityGraph.refresh` catches up with the writer. ``neo4j`` configures the
    Neo4j backend (its defaults when None).
    """
    if backend == "networkx":
        from idgraph.graph.networkx_backend import NetworkxGraph

        return NetworkxGraph(Path(data_dir) / "graph-links.sqlite", shareable_types,
                             read_only=read_only)
    if backend == "neo4j":
        from idgraph.graph.neo4j_backend import Neo4jGraph
        from idgraph.graph.neo4j_backend.settings import Neo4jSettings

        return Neo4jGraph(neo4j or Neo4jSettings(), shareable_types, read_only=read_only)
    raise ValueError(f"graph_backend: unknown backend {backend!r}; known: networkx, neo4j")


def create_graph_view(backend: str, data_dir: Path, shareable_types: frozenset[str],
                      neo4j: Neo4jSettings | None = None) -> GraphView:
    """A read-only view of the configured graph (``idgraph serve``, Explain): typed as a
    :class:`GraphView`, it has no write methods, and the backend refuses writes anyway."""
    return create_graph(backend, data_dir, shareable_types, read_only=True, neo4j=neo4j)
