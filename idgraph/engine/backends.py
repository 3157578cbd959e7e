"""The one place that reads the backend setting strings and builds what they name.

Everything that opens a graph, a profile store, a review queue or the model registry (the
engine, the CLI's readers, ``idgraph serve``, the demos, the stream workers) goes through
these functions; below this module every component takes its backends as arguments.

* :func:`open_writer_backends`: what a writing engine owns (graph for writing, store for
  writing, review queue, model registry);
* :func:`open_reader_store`, :func:`open_queries`: the read-only store of the regions this
  process serves, and the profile queries over it;
* :func:`open_graph_view`: a read-only view of the graph (Explain);
* :func:`open_review_queue`, :func:`open_model_registry`: the review queue (if a writer
  created it) and the model registry of the coordination backend
  (``EngineSettings.coordination()``: the data dir's files, or Cassandra's global
  keyspace, shared by every machine);
* :func:`open_segment_catalog`: the store's segment definitions, for changes (a server
  or the CLI defines segments through it while its profile store is read-only);
* :func:`open_privacy`: the privacy ledger and the suppression key (writers check and
  write it, servers read consent and record statements in it).

Opening a reader never replays, reconciles or applies anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from idgraph.coordination import ModelRegistry, ReviewQueue
from idgraph.coordination import open_model_registry as _open_model_registry
from idgraph.coordination import open_review_queue as _open_review_queue
from idgraph.engine.queries import ProfileQueries
from idgraph.engine.settings import EngineSettings
from idgraph.graph import GraphView, IdentityGraph, create_graph, create_graph_view
from idgraph.privacy import PrivacyLedger, create_ledger
from idgraph.privacy.suppression import SuppressionKeys, load_keys
from idgraph.profile_store import (
    ProfileReader,
    ProfileStore,
    SegmentCatalog,
    create_reader,
    create_segment_catalog,
    create_store,
)
from idgraph.resolver.linking import LinkPlanner
from idgraph.resolver.normalize import Normalizer

__all__ = [
    "WriterBackends",
    "open_graph_view",
    "open_model_registry",
    "open_privacy",
    "open_queries",
    "open_reader_store",
    "open_review_queue",
    "open_segment_catalog",
    "open_writer_backends",
]


@dataclass
class WriterBackends:
    """What one writing engine owns; :meth:`close` releases all of it."""

    graph: IdentityGraph
    store: ProfileStore
    reviews: ReviewQueue
    models: ModelRegistry
    ledger: PrivacyLedger
    keys: SuppressionKeys

    def close(self) -> None:
        try:
            self.graph.close()
        finally:
            try:
                self.store.close()
            finally:
                try:
                    self.reviews.close()
                finally:
                    try:
                        self.models.close()
                    finally:
                        self.ledger.close()


def open_writer_backends(settings: EngineSettings, shareable_types: frozenset[str]) -> WriterBackends:
    """Open the configured graph and store for writing, the review queue and the model
    registry. A backend that fails to open closes the ones opened before it."""
    store = create_store(settings.profile_store_backend, settings.data_dir,
                         settings.regions.regions, cassandra=settings.cassandra)
    opened: list = [store]
    try:
        ledger, keys = open_privacy(settings)
        opened.append(ledger)
        reviews = _open_review_queue(settings.data_dir, backend=settings.coordination(),
                                     cassandra=settings.cassandra,
                                     regions=settings.regions.regions)
        opened.append(reviews)
        models = open_model_registry(settings)
        opened.append(models)
        graph = create_graph(settings.graph_backend, settings.data_dir, shareable_types,
                             neo4j=settings.neo4j)
    except BaseException:
        for part in reversed(opened):
            part.close()
        raise
    return WriterBackends(graph, store, reviews, models, ledger, keys)


def open_privacy(settings: EngineSettings) -> tuple[PrivacyLedger, SuppressionKeys]:
    """The privacy ledger of the configured store backend and the suppression key
    (:func:`idgraph.privacy.suppression.load_keys`: the embedded backend may generate
    it in the data dir; a distributed one must be given it). The key is checked first,
    so nothing is opened when it is missing."""
    p = settings.privacy
    keys = load_keys(p.suppression_key.get_secret_value() if p.suppression_key else None,
                     p.suppression_key_file, settings.data_dir,
                     generate=settings.profile_store_backend == "sqlite")
    return create_ledger(settings.profile_store_backend, settings.data_dir,
                         cassandra=settings.cassandra), keys


def open_reader_store(settings: EngineSettings, regions: Iterable[str]) -> ProfileReader:
    """The profile store, read-only, for ``regions`` (those this process serves)."""
    return create_reader(settings.profile_store_backend, settings.data_dir, regions,
                         cassandra=settings.cassandra)


def open_queries(settings: EngineSettings, store: ProfileReader) -> ProfileQueries:
    """Lookup and profile reads over ``store`` (normalised as the writers normalise)."""
    return ProfileQueries(store, Normalizer(settings.normalization), settings.survivorship)


def open_graph_view(settings: EngineSettings) -> GraphView:
    """A read-only view of the identity graph (it tails the writers' changes)."""
    return create_graph_view(settings.graph_backend, settings.data_dir,
                             LinkPlanner(settings.linking).shareable_types(), neo4j=settings.neo4j)


def open_review_queue(settings: EngineSettings,
                      regions: Iterable[str] | None = None) -> ReviewQueue | None:
    """The review queue of the coordination backend for ``regions`` (those this process
    serves; None: every region of the settings), or None before a writer created it."""
    order = settings.regions.regions  # strictest first
    served = order if regions is None else [r for r in order if r in set(regions)]
    return _open_review_queue(settings.data_dir, create=False, backend=settings.coordination(),
                              cassandra=settings.cassandra, regions=served)


def open_model_registry(settings: EngineSettings) -> ModelRegistry:
    """The model registry of the coordination backend."""
    return _open_model_registry(settings.data_dir, backend=settings.coordination(),
                                cassandra=settings.cassandra)


def open_segment_catalog(settings: EngineSettings) -> SegmentCatalog:
    """The configured store's segment definitions, opened for changes."""
    return create_segment_catalog(settings.profile_store_backend, settings.data_dir,
                                  cassandra=settings.cassandra)
