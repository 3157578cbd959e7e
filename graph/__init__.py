"""Identity graph: the seam (:mod:`graph.base`) and one package per backend."""

from __future__ import annotations

from pathlib import Path

from graph.base import ComponentInfo, GraphChanges, IdentityGraph, LinkEdge

__all__ = ["ComponentInfo", "GraphChanges", "IdentityGraph", "LinkEdge", "create_graph"]


def create_graph(backend: str, data_dir: Path, shareable_types: frozenset[str]) -> IdentityGraph:
    """Open the configured graph backend (drivers are imported lazily)."""
    if backend == "networkx":
        from graph.networkx_backend import NetworkxGraph

        return NetworkxGraph(Path(data_dir) / "graph-links.sqlite", shareable_types)
    raise ValueError(f"graph_backend: unknown backend {backend!r}; known: networkx")
