"""idgraph: identity resolution and unified customer profiles.

The composition root (:class:`idgraph.engine.Engine`) wires the normaliser, the link
planner, the probabilistic matcher, the identity graph and the profile store. Every writer
goes through it: the CLI's writing commands (ingest, train, resolve, match, review), the
demo, the benchmarks and the stream workers. The gRPC server (``idgraph serve``,
:mod:`idgraph.service.server`) is a reader in its own process and never opens an engine: it
answers lookups from the profile store through :class:`idgraph.queries.ProfileQueries`,
Explain from a read-only view of the graph, and the review rpcs from the review queue
(the next writer applies the decisions).
"""

__version__ = "0.1.0"
