"""The engine: a small facade over the parts that write identities and profiles.

Every path into the engine (the embedded runner, ``idgraph ingest``, the demo, the stream
workers, the tests) calls :meth:`Engine.ingest` or :meth:`Engine.ingest_payloads`. The
work is done by four parts, each in its own module:

* :class:`~idgraph.engine.ingest.IngestPipeline`: a batch of records -> link decisions -> graph ->
  record states -> matching -> one store write;
* :class:`~idgraph.engine.materialise.Materialiser`: graph changes -> one atomic store batch;
* :class:`~idgraph.engine.writer_session.WriterSession`: the writers' turns and the catch-up with
  what other writers did;
* :class:`~idgraph.engine.matching_service.MatchingService`: the model, its candidate index and
  the review queue.

The backends come from :mod:`idgraph.engine.backends` (the one builder that reads the backend
settings) unless they are injected.

Delivery contract of ``ingest``: effects are idempotent per event ID, and ``ingest``
returns once the batch is durable. A batch is applied in this order: link decisions ->
graph (durable, idempotent: existing edges are kept) -> profile store (one atomic write
that also records the batch's event IDs as processed). A crash between the two writes
leaves the events unprocessed; delivering them again re-applies nothing to the graph and
applies their profile effects once (``reconcile`` repairs record assignments on start).
A writer thread overlapping batch N's writes with batch N+1 was measured slower (GIL
contention: 7.7k vs 9.1k records/s at 100k), so writes are synchronous.
"""

from __future__ import annotations

import gc
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Self

from idgraph.auth.audit import AuditEvent
from idgraph.coordination import CatchUp, open_writer_turns
from idgraph.core.private_files import make_private_dir
from idgraph.engine.backends import WriterBackends, open_writer_backends
from idgraph.engine.consent import LedgerConsent
from idgraph.engine.forget import ForgetRunner, request_forget
from idgraph.engine.ingest import DeadLetter, IngestPipeline, IngestResult, adapt_payloads
from idgraph.engine.ingest_privacy import IngestPrivacy
from idgraph.engine.matching_service import MatchingService
from idgraph.engine.materialise import Materialiser
from idgraph.engine.queries import ProfileQueries
from idgraph.engine.segment_memberships import MembershipMaintainer
from idgraph.engine.settings import EngineSettings
from idgraph.engine.writer_session import WriterSession
from idgraph.graph.base import GraphChanges, MatchEdge
from idgraph.privacy.ledger import ForgetRequest
from idgraph.profile_store.survivorship import ProfileBuilder
from idgraph.resolver.linking import LinkPlanner
from idgraph.resolver.model import IdentityRecord
from idgraph.resolver.normalize import Normalizer
from idgraph.resolver.regions import RegionPolicy

__all__ = ["DeadLetter", "Engine", "IngestResult"]


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic collector during a batch, then freeze what survived it.

    The graph and caches are millions of long-lived objects, and every full collection
    rescans them all: measured, a third of ingest time at 100k records. Ingest creates no
    reference cycles of its own; temporaries are freed by reference counting. Survivors
    are moved to the permanent generation so later collections skip them.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


class Engine:
    """Resolver + identity graph + profile store of one writer."""

    def __init__(self, settings: EngineSettings, publish_changes: bool = False,
                 open_backends: Callable[[EngineSettings, frozenset[str]], WriterBackends]
                 = open_writer_backends,
                 audit: Callable[[AuditEvent], object] | None = None) -> None:
        """Open the backends of ``settings`` with ``open_backends`` (several engines may
        share one data dir: they take turns, see :mod:`idgraph.coordination`), then make the
        store agree with the graph, load the model and apply accepted reviews.

        ``audit`` receives ``forget.completed`` / ``forget.failed`` for the audit log of
        this machine (:func:`idgraph.serving.open_audit_log`); None: not written there.

        ``publish_changes`` puts a :class:`ProfileChange` for every changed profile in the
        store's outbox, in the same atomic write (stream workers publish them); without it
        changes are only reported in :attr:`IngestResult.changes`.
        """
        self.settings = settings
        self.publish_changes = publish_changes
        make_private_dir(settings.data_dir)  # 0700, also when it exists: personal data
        self.session = WriterSession(
            open_writer_turns(settings.data_dir, settings.writer_turn_wait_seconds,
                              settings.coordination(), settings.cassandra,
                              settings.writer_lease_seconds, settings.regions.regions))
        self.backends: WriterBackends | None = None
        try:
            self.normalizer = Normalizer(settings.normalization)
            self.planner = LinkPlanner(settings.linking)
            self.region_policy = RegionPolicy(settings.regions)
            with self.session.turn():
                # backends are created and the graph replayed inside a turn: no other
                # writer initialises a file or appends meanwhile
                backends = self.backends = open_backends(settings, self.planner.shareable_types())
                self._fence(self.session.token)  # this first turn's, from now on
                self.session.fence = self._fence
                self.queries = ProfileQueries(backends.store, self.normalizer,
                                              settings.survivorship)
                self.segments = MembershipMaintainer(
                    backends.store, ProfileBuilder(settings.survivorship),
                    publish_changes=publish_changes,
                    log_retention_hours=settings.segments.log_retention_hours,
                    build_chunk=settings.segments.build_chunk_profiles,
                    consent=LedgerConsent(backends.ledger, backends.keys,
                                          settings.privacy.merge_rule))
                self.materialiser = Materialiser(backends.graph, backends.store,
                                                 self.region_policy, publish_changes,
                                                 self.session.record_written, self.segments)
                self.matching = MatchingService(settings.matching, backends.models,
                                                backends.reviews, self.planner, backends.graph,
                                                backends.store)
                self.privacy = IngestPrivacy(backends.ledger, backends.keys,
                                             settings.privacy.merge_rule)
                self.pipeline = IngestPipeline(self.planner, self.region_policy, backends.graph,
                                               backends.store, self.materialiser, self.matching,
                                               settings.survivorship, self.privacy)
                self.forgets = ForgetRunner(backends.ledger, backends.keys, settings.data_dir,
                                            self._erase_profile, recover=self._recover,
                                            audit=audit)
                self.session.catch_up = self._catch_up
                self.session.abandon = self.materialiser.clear
                self.materialiser.reconcile()
                self.matching.load_model()
                self._apply_review_decisions()
                self.forgets.run_open()
        except BaseException:
            self.close()
            raise

    # the backends, for callers that read them directly (CLI, tests, benchmarks)
    @property
    def graph(self):
        return self.backends.graph

    @property
    def store(self):
        return self.backends.store

    @property
    def reviews(self):
        return self.backends.reviews

    @property
    def models(self):
        return self.backends.models

    @property
    def ledger(self):
        return self.backends.ledger

    @property
    def matcher(self):
        return self.matching.matcher

    # ------------------------------------------------------------------ ingest

    def ingest_payloads(self, items: Iterable[tuple[str, dict]],
                        batch_size: int | None = None) -> IngestResult:
        """Adapt raw ``(source kind, payload)`` items and ingest them in batches.

        A payload that fails adaptation becomes a dead letter with its reason; the rest of
        the batch goes on.
        """
        size = batch_size or self.settings.ingest_batch_size
        total = IngestResult()
        dead: list[DeadLetter] = []
        batch: list[IdentityRecord] = []
        with _no_cyclic_gc():
            for record in adapt_payloads(items, self.normalizer, dead):
                batch.append(record)
                if len(batch) >= size:
                    total.add(self._ingest_turn(batch))
                    batch = []
            if batch:
                total.add(self._ingest_turn(batch))
        total.dead_letters.extend(dead)
        return total

    def ingest(self, records: list[IdentityRecord]) -> IngestResult:
        """Resolve and store a batch of canonical records (idempotent per event ID).

        Returns once the batch is durable in the graph and the profile store.
        """
        with _no_cyclic_gc():
            return self._ingest_turn(records)

    def _ingest_turn(self, records: list[IdentityRecord]) -> IngestResult:
        if not records:
            return IngestResult()
        with self.session.turn():
            self._apply_review_decisions()
            self.forgets.run_open()
            return self.pipeline.apply(records)

    # ------------------------------------------------------------ probabilistic matching

    def load_model(self) -> str | None:
        """(Re)load the configured model (see :meth:`MatchingService.load_model`)."""
        return self.matching.load_model()

    def matching_rows(self) -> Iterator[tuple[str, dict | None]]:
        """``(record key, matching row)`` of every stored record, in key order."""
        return self.matching.matching_rows()

    def apply_matches(self, edges: list[MatchEdge]) -> GraphChanges:
        """Add match edges (decided elsewhere: batch resolution, reviews) durably and
        materialise the profiles they change."""
        if not edges:
            return GraphChanges()
        with _no_cyclic_gc(), self.session.turn():
            changes = self.graph.apply([], [], edges)
            self.materialiser.write(changes, {}, [], at=max(e.at for e in edges))
        return changes

    def apply_review_decisions(self) -> int:
        """Link the pairs reviewers accepted (over the CLI or gRPC); returns how many.

        The per-type limits still apply: an accepted pair they refuse is recorded as a
        refused edge with the reason. Reviews are marked ``applied`` after the store write.
        """
        with self.session.turn():
            return self._apply_review_decisions()

    def _apply_review_decisions(self) -> int:
        applied = 0
        while True:
            edges, review_ids = self.matching.accepted_review_edges()
            if not edges:
                return applied
            self.apply_matches(edges)
            self.reviews.mark_applied(review_ids)
            applied += len(review_ids)

    # ------------------------------------------------------------ unlink / forget

    def unlink(self, record_key: str, identifier: str) -> GraphChanges:
        """Remove one record-identifier edge; the profile may split (IDs per graph.ids)."""
        with self.session.turn():
            changes = self.graph.remove_link(record_key, identifier, time.time())
            state = self.materialiser.load_records([record_key]).get(record_key)
            if state is not None:
                state.identifiers.pop(identifier, None)
            self.materialiser.write(changes, {record_key: state} if state is not None else {},
                                    [], unlinked=[(identifier, record_key)])
            return changes

    def forget_record(self, record_key: str) -> GraphChanges:
        """Remove a source record from the graph and the store; its profile may split
        (a correction, not a privacy erasure: see :meth:`forget`)."""
        with self.session.turn():
            state = self.materialiser.load_records([record_key]).get(record_key)
            changes = self.graph.remove_record(record_key, time.time())
            self.materialiser.forget_records([record_key])
            index_rows = [(i, record_key) for i in state.identifiers] if state is not None else []
            self.materialiser.write(changes, {}, [], deleted_records=[record_key],
                                    unlinked=index_rows, cause="forget")
            return changes

    def forget(self, *, identifier: str = "", profile_id: str = "", reason: str = "",
               actor: str = "cli") -> ForgetRequest:
        """Forget a person now (:mod:`idgraph.engine.forget`): the request, its
        suppressions, then the erasure in this writer; returns the completed request.
        Errors as :func:`~idgraph.engine.forget.request_forget`."""
        with _no_cyclic_gc(), self.session.turn():
            request = request_forget(self.ledger, self.backends.keys, self.queries,
                                     identifier=identifier, profile_id=profile_id,
                                     reason=reason, actor=actor)
            return self.forgets.run(request)

    def _erase_profile(self, profile_id: str) -> tuple[Counter, list[str]]:
        """Erase one profile (aliases followed) from the graph, the store, the review queue,
        the turn feed and the matcher's index, in the caller's writer turn; returns the
        counts per place and the forgotten record keys and identifiers (those no other
        profile has)."""
        counts: Counter = Counter()
        stored = self.store.get_profile(profile_id)
        if stored is None:  # erased by an earlier run of the request, or never stored
            return counts, []
        live = stored.head.profile_id
        ids = list(dict.fromkeys([live, *stored.aliases, *self.graph.aliases_of(live)]))
        keys = [r.record_key for r in stored.records]
        idents = {i for r in stored.records for i in r.identifiers}
        shared = {i for i in idents
                  if any(m.profile_id not in ids for m in self.store.lookup(i))}
        exclusive = sorted(idents - shared)
        event_ids = [e.event_id for r in stored.records for e in r.events]
        index_rows = [(i, r.record_key) for r in stored.records for i in r.identifiers]
        changes = self.graph.remove_records(keys, time.time())
        self.materialiser.forget_records(keys)
        self.materialiser.write(changes, {}, [], deleted_records=keys, unlinked=index_rows,
                                cause="forget",
                                erased_profiles=[(stored.head.region, p) for p in ids],
                                erased_event_ids=event_ids,
                                erased_event_values=[*keys, *(
                                    v for v in (i.split(":", 1)[1] for i in exclusive
                                                if ":" in i) if len(v) >= 6)])
        keys_hash = self.backends.keys.hash
        counts["graph_history"] += self.graph.erase_history(
            keys, exclusive, lambda v: "forgotten:" + keys_hash(v)[:32])
        counts["reviews"] += self.reviews.erase_records(keys)
        counts["turn_feed"] += self.session.erase(keys)
        self.matching.catch_up(keys)
        counts["profiles"] += len(ids)
        counts["records"] += len(keys)
        counts["identifiers"] += len(exclusive)
        counts["processed_events"] += len(event_ids)
        return counts, [*keys, *exclusive]

    # ------------------------------------------------------------ segments

    def segment_step(self, budget: int | None = None) -> int:
        """One round of segment work no event triggers (deadlines that passed, a chunk of
        a definition's evaluation over stored profiles; see
        :meth:`MembershipMaintainer.step`), written atomically. Returns how many profiles
        were evaluated, plus one per build advanced: 0 when there was nothing to do."""
        with _no_cyclic_gc(), self.session.turn():
            forgotten = self.forgets.run_open()
            batch, evaluated = self.segments.step(budget)
            if batch.memberships or batch.removed_memberships or batch.segment_builds \
                    or batch.segment_changes:
                self.store.write(batch)
            if self.segments.consent is not None:
                self.segments.consent.commit()  # after the write: a crash re-evaluates
            return evaluated + len(batch.segment_builds) + forgotten

    def segment_builds_pending(self) -> bool:
        """Whether a definition still waits to be evaluated over stored profiles."""
        with self.session.turn():
            self.segments.refresh()
            return bool(self.segments.pending_builds())

    def _recover(self) -> None:
        """After a failed erasure inside a turn: drop the caches and make the store agree
        with the graph again (the graph may have lost records the store still has)."""
        self.materialiser.clear()
        self.materialiser.reconcile()

    def reconcile(self) -> int:
        """Make the store agree with the graph (see :meth:`Materialiser.reconcile`)."""
        with self.session.turn():
            return self.materialiser.reconcile()

    # ------------------------------------------------------------------ writer turns

    def _fence(self, token: int | None) -> None:
        """The turn's fencing token to the backends writers share (a no-op for the
        embedded ones): a write of a turn older than one they saw is refused."""
        self.backends.store.fence(token)
        self.backends.graph.fence(token)

    def _catch_up(self, catch: CatchUp) -> None:
        """Apply what other writers did since our last turn to the in-memory state."""
        self.graph.refresh()
        self.materialiser.forget_regions()
        keys = catch.record_keys
        if keys is None:  # unknown (pruned feed or a writer died in its turn): start over
            self.materialiser.clear()
            self.matching.load_model()
            if catch.crashed:
                self.materialiser.reconcile()
            return
        self.materialiser.forget_records(keys)
        self.matching.catch_up(keys)

    def close(self) -> None:
        """Release the backends (safe on a half-built engine)."""
        try:
            if self.backends is not None:
                self.backends.close()
        finally:
            self.session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
