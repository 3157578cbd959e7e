"""A pytest plugin loaded only by the mutation check (``tools/mutation/check.py``).

mutmut 3.7 reads ``Item._nodeid``, which pytest 9.2 no longer has (mutmut 3.8 reads
``nodeid``, but needs click >= 8.4.2, which faust-streaming 0.15.3 excludes). The property
gives mutmut the public ``nodeid`` under the old name; nothing else changes.
"""

from _pytest.nodes import Node

if not hasattr(Node, "_nodeid"):
    Node._nodeid = property(lambda self: self.nodeid)  # type: ignore[attr-defined]
