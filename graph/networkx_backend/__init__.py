"""Embedded identity graph: networkx in memory, durable through an SQLite link log."""

from idgraph.graph.networkx_backend.graph import NetworkxGraph

__all__ = ["NetworkxGraph"]
