"""idgraph: identity resolution and unified customer profiles.

The composition root (:class:`idgraph.engine.Engine`) wires the resolver, the identity
graph, the profile store and (later) the segment evaluator; the CLI, the gRPC server and
the stream workers all go through it.
"""

__version__ = "0.1.0"
