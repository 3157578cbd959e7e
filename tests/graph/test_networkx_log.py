"""The embedded backend's link log: what the contract suite cannot see from outside."""

from __future__ import annotations

from idgraph.graph.networkx_backend import NetworkxGraph
from tests.graph.test_graph_contract import SHAREABLE, edge


def test_redelivered_batch_appends_nothing_to_the_log(tmp_path):
    g = NetworkxGraph(tmp_path / "links.sqlite", SHAREABLE)
    batch = ([("a:1", 1.0)], [edge("a:1", "email:a@x.com"), edge("a:1", "phone:+4915112345678")])
    g.apply(*batch)
    rows = sum(1 for _ in g._log.replay())
    g.apply(*batch)
    assert sum(1 for _ in g._log.replay()) == rows
    g.close()
