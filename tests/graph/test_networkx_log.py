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


_SPLIT_IN_ONE_BATCH = """
import sys
from idgraph.graph.base import MatchEdge
from idgraph.graph.networkx_backend import NetworkxGraph
g = NetworkxGraph(sys.argv[1])
m = MatchEdge("s0:r00", "s1:r01", True, "probabilistic:v1", "", 11.0, 0.99, "v1", (), "splink",
              "m-1", 1.0)
g.apply([], [], [m], detached={"s0:r00": "shared mailbox record (test)"})
print(sorted((seq, founder) for founder, seq in g._meta.values()))
"""


def test_ids_do_not_depend_on_the_process_string_hashes(tmp_path):
    """A component formed and split in one batch: its parts get their IDs in the order of
    their oldest records, not in a set's order (which follows the process's string hashes:
    a restart would replay the log into other ID sequence numbers)."""
    import os
    import subprocess
    import sys

    out = set()
    for seed in range(8):
        env = {**os.environ, "PYTHONHASHSEED": str(seed)}
        run = subprocess.run([sys.executable, "-c", _SPLIT_IN_ONE_BATCH,
                              str(tmp_path / f"links{seed}.sqlite")],
                             capture_output=True, text=True, env=env, check=True)
        out.add(run.stdout)
    assert out == {"[(3, 's0:r00'), (4, 's1:r01')]\n"}
