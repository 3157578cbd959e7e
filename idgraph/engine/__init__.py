"""The composition root: the engine and what it is made of.

* :mod:`idgraph.engine.facade`: :class:`Engine`, the small facade every write path calls;
* :mod:`idgraph.engine.ingest`: the ingest pipeline (records -> graph -> store);
* :mod:`idgraph.engine.materialise`: graph changes -> one atomic store batch;
* :mod:`idgraph.engine.writer_session`: the writers' turns and catch-up;
* :mod:`idgraph.engine.matching_service`: the model, its candidate index, the reviews;
* :mod:`idgraph.engine.backends`: the one builder that reads the backend settings;
* :mod:`idgraph.engine.settings`: what the engine is configured with;
* :mod:`idgraph.engine.queries`, :mod:`idgraph.engine.explain`: profile reads and Explain,
  shared by gRPC and the CLI;
* :mod:`idgraph.engine.batch`: training and Splink batch passes over the engine's records.
"""

from idgraph.engine.facade import Engine
from idgraph.engine.ingest import DeadLetter, IngestResult

__all__ = ["DeadLetter", "Engine", "IngestResult"]
