"""idgraph: identity resolution and unified customer profiles.

Every folder of the repository installs under this package (``graph/`` is
:mod:`idgraph.graph`, ``proto/`` is :mod:`idgraph.proto`...). The composition root
(:class:`idgraph.engine.Engine`) wires the normaliser, the link planner, the probabilistic
matcher, the identity graph and the profile store. Every writer goes through it: the CLI's
writing commands (ingest, train, resolve, match), the demo, the benchmarks and the stream
workers. The gRPC server (``idgraph serve``,
:mod:`idgraph.service.server`) is a reader in its own process and never opens an engine: it
answers lookups from the profile store through :class:`idgraph.engine.queries.ProfileQueries`,
Explain from a read-only view of the graph, and the review rpcs from the review queue
(the next writer applies the decisions). This module imports nothing.
"""

__version__ = "0.1.0"
