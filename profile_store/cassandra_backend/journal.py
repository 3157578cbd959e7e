"""The redo journal: how a planned batch is written atomically, and how a batch an
interrupted write left behind is finished or discarded.

Contract (what :meth:`Journal.write` and :meth:`Journal.recover` guarantee). Cassandra has
no multi-partition transactions, so a batch the store has planned (:mod:`.plan`: the final
rows to write and delete per region, all with one write timestamp) is written in steps:

1. (begin) a ``pending`` row for the batch (regions touched, hashed event IDs) is written
   to the global ``batches`` table, each touched region's ``meta`` row ``inflight`` is
   pointed at the batch, and each region's part of the plan is written to that region's
   ``journal`` (compressed, in parts of at most :data:`JOURNAL_PART_BYTES`);
2. (commit) the batch row is set to ``committed``: the commit point, a single-row write;
3. (finish) the rows are written (unlogged batches, concurrently), then the processed
   event IDs; then the journal partitions and the batch row are deleted.

Recovery runs before a writable store's first operation, and before the next one after a
write failed (:meth:`Journal.recover_if_needed`): it follows the ``inflight`` pointers of
the served regions; a committed batch's journals are applied again and its event IDs
recorded, a pending one's journals are discarded. Replaying writes the same cells with the
same timestamps, so it is idempotent and never overwrites a later write. Hence: a batch
whose event IDs are recorded as processed is fully stored, and a batch either lands
entirely (at the latest when the writer next opens or writes) or not at all, before the
writer reads or writes anything else. A crash before the commit point leaves the events
unprocessed, so they are delivered again and applied once. Each step is a failpoint
(``journal.*`` in :mod:`idgraph.core.failpoints`) where the crash tests
(``tests/profile_store/test_journal_crash.py``) kill a writer process, also mid-recovery.

Erasure (``StoreBatch.erased_profiles``, ``erased_event_ids``; :mod:`.erasure`) is part
of the plan like any other row: the deletions and rewrites that remove every trace of the
erased IDs are journaled with the batch and applied in step 3, so a crash mid-erasure is
finished by recovery, and replaying it deletes the same rows at the same timestamp again.
The deletions of processed event IDs (global keyspace, :data:`.schema.GLOBAL_MUTATIONS`)
travel in a region's journal and are applied in the global keyspace, before the batch's own
event IDs are recorded (at a later timestamp: an ID both erased and processed by a batch
ends up processed, as in SQLite).

Fencing (writers on several machines, :mod:`idgraph.coordination.cassandra_backend.turns`).
With a fencing token set (:meth:`Journal.fence`, the writer's turn number), the commit
point is first a lightweight transaction on the one ``writer_fence`` row: ``fence = T,
last_batch = B IF fence = F``, where ``F`` is the newest token seen (a refusal returns the
current one, and it is tried again while that is not above ``T``). A writer whose token is
older than one a commit already carried (it stalled and lost its turn to a newer writer)
is refused there, before anything of its batch is visible: BackendError, and the pending
batch is discarded by recovery. Recovery counts a pending batch as committed when the
fence row's ``last_batch`` names it (a crash between the transaction and the batch row
update); a newer commit overwrites ``last_batch`` only after the newer writer's own
recovery of the regions it serves.

Limits: readers in other processes may see a batch half-applied until the writer has
finished or recovered it (as with Cassandra's own logged batches); recovering a committed
batch needs a store serving all the regions it touched (it says so with BackendError);
write timestamps assume writers of the same profiles take turns (the engine's writer
turns, fenced as above) on clocks that agree. Writes and recovery take turns on :attr:`Journal.lock`.

Codec. A region's mutations are stored as JSON compressed with zlib, not pickle (the
journal is read back from the database): each mutation is ``[statement code, [values]]``,
bytes in base64 and UUIDs as text, as the statement's kinds in :data:`.schema.MUTATIONS`
say. Floats and integers survive JSON exactly, so a replayed mutation binds the same values
(and write timestamp) as the first.
"""

from __future__ import annotations

import base64
import threading
import uuid
import zlib
from collections.abc import Callable

import orjson

from idgraph.core.errors import BackendError
from idgraph.core.failpoints import armed, failpoint
from idgraph.profile_store.cassandra_backend import schema as q
from idgraph.profile_store.cassandra_backend.connection import Statements, chunks
from idgraph.profile_store.cassandra_backend.plan import Mutation

BATCH_STATEMENTS = 40  # statements per unlogged batch
BATCH_BYTES = 48 * 1024  # ... and about this many bytes of values
JOURNAL_PART_BYTES = 512 * 1024  # well below half the smallest commit log segment
PENDING_BATCH_TTL = 30 * 86_400  # a batch row that never committed disappears by itself
INFLIGHT = "inflight"  # the ``meta`` row pointing at a region's batch in flight
PENDING, COMMITTED = "pending", "committed"
FENCE = "writers"  # the one fence row of a deployment

Plan = dict[str, list[Mutation]]
"""A planned batch: the mutations of each region it touches."""


def encode_journal(mutations: list[Mutation]) -> bytes:
    """Mutations as compressed JSON (bytes in base64, UUIDs as text, per statement kinds)."""
    out = []
    for code, values in mutations:
        kinds = q.MUTATIONS[code][1]
        out.append([code, [base64.b64encode(v).decode() if k == "b" else
                           str(v) if k == "u" else v
                           for k, v in zip(kinds, values, strict=True)]])
    return zlib.compress(orjson.dumps(out), 1)


def decode_journal(data: bytes) -> list[Mutation]:
    """The mutations :func:`encode_journal` encoded, in order."""
    out: list[Mutation] = []
    for code, values in orjson.loads(zlib.decompress(data)):
        kinds = q.MUTATIONS[code][1]
        out.append((code, tuple(base64.b64decode(v) if k == "b" else
                                uuid.UUID(v) if k == "u" else v
                                for k, v in zip(kinds, values, strict=True))))
    return out


class Journal:
    """The redo journal of a store serving ``regions`` (module docstring).

    ``next_ts`` gives write timestamps above every one the store used (the processed event
    IDs of a finished batch are written at a fresh one). A writable store's journal starts
    out needing recovery; a read-only store's never recovers.
    """

    def __init__(self, statements: Statements, regions: frozenset[str],
                 next_ts: Callable[[], int], writable: bool) -> None:
        self.lock = threading.RLock()
        """Held by a write and by recovery: they take turns."""
        self._db = statements
        self._regions = regions
        self._next_ts = next_ts
        self._needs_recovery = writable
        self._token: int | None = None
        self._fence_seen = 0  # the newest fence value this journal has read

    def fence(self, token: int | None) -> None:
        """Commits from now on carry fencing token ``token`` (module docstring); None:
        unfenced (a single writer, or turns that need no fence)."""
        if token is not None and self._token is None:
            self._db.run([(None, "fence_seed", (FENCE,))], "fence")
        self._token = token

    # ------------------------------------------------------------------ writing

    def write(self, batch_id: uuid.UUID, plan: Plan, events: list[bytes]) -> None:
        """Write a planned, non-empty batch atomically: begin, commit, finish (module
        docstring). The caller holds :attr:`lock`. Should this raise, the batch is
        finished or discarded before the store's next operation."""
        self._needs_recovery = True  # until the batch is finished, recover first
        self.begin(batch_id, plan, events)
        self.commit(batch_id, plan, events)
        self.finish(batch_id, plan, events, sorted(plan))
        self._needs_recovery = False

    def begin(self, batch_id: uuid.UUID, plan: Plan, events: list[bytes]) -> None:
        """Step 1: the pending batch row, the in-flight pointers, the journals."""
        regions = ",".join(sorted(plan))
        self._db.run([(None, "batch_put", (batch_id, PENDING, regions, b"".join(events),
                                           PENDING_BATCH_TTL))], "write (begin)")
        failpoint("journal.pending")
        self._db.run([(r, "meta_put", (r, INFLIGHT, str(batch_id))) for r in sorted(plan)],
                     "write (begin)")
        failpoint("journal.pointed")
        calls = []
        for region, mutations in sorted(plan.items()):
            data = encode_journal(mutations)
            for part, chunk in enumerate(chunks(data, JOURNAL_PART_BYTES)):
                calls.append((region, "journal_put", (region, batch_id, part, bytes(chunk))))
        self._db.run(calls, "write (journal)")
        failpoint("journal.begun")

    def commit(self, batch_id: uuid.UUID, plan: Plan, events: list[bytes]) -> None:
        """Step 2, the commit point: the fence passed (when fenced), the batch row says
        ``committed``."""
        if self._token is not None:
            self._pass_fence(batch_id, self._token)
        self._db.run([(None, "batch_put", (batch_id, COMMITTED, ",".join(sorted(plan)),
                                           b"".join(events), 0))], "write (commit)")
        failpoint("journal.committed")

    def _pass_fence(self, batch_id: uuid.UUID, token: int) -> None:
        """The fenced commit: ``fence = token IF fence = <newest seen>``, until applied or
        the fence is above ``token`` (BackendError: this writer lost its turn)."""
        while True:
            if self._fence_seen > token:
                raise BackendError(
                    f"profile store: write refused: turn {self._fence_seen} of another "
                    f"writer committed after this writer's turn {token} began (this writer "
                    "lost its turn); the batch is not stored")
            row = self._db.run([(None, "fence_commit", (token, batch_id, FENCE,
                                                        self._fence_seen))],
                               "write (fence)")[0][0]
            if row[0]:  # applied
                self._fence_seen = token
                failpoint("journal.fenced")
                return
            self._fence_seen = row[1] if row[1] is not None else 0

    def finish(self, batch_id: uuid.UUID, plan: Plan, events: list[bytes],
               regions: list[str]) -> None:
        """Step 3: the rows, the processed events, then the journals of ``regions`` and
        the batch row are dropped."""
        self.apply(plan)
        failpoint("journal.applied")
        self.put_processed(events, self._next_ts())
        failpoint("journal.processed")
        self._db.run([(r, "journal_delete", (r, batch_id)) for r in regions],
                     "write (clean up)")
        failpoint("journal.cleared")
        self._db.run([(None, "batch_delete", (batch_id,))], "write (clean up)")

    def apply(self, plan: Plan) -> None:
        """Write the planned rows: unlogged batches per region, all at once."""
        from cassandra.query import BatchStatement, BatchType

        calls: list[tuple[object, object, str | None]] = []
        for region, mutations in sorted(plan.items()):
            open_batches: dict[str | None, list] = {}  # keyspace's region -> [batch, bytes]
            for code, values in sorted(mutations, key=lambda m: m[0]):
                # an erasure's global rows (processed events) travel in a region's journal
                target = None if code in q.GLOBAL_MUTATIONS else region
                stmt = self._db.prepared(target, code)
                n = sum(len(v) for v in values if isinstance(v, bytes | str))
                if n >= BATCH_BYTES:
                    # a row this large (a record holding hundreds of events) goes alone, as
                    # a plain statement: Cassandra 2.2+ refuses batches over 50 kB
                    # (batch_size_fail_threshold_in_kb), whatever they hold
                    calls.append((stmt, values, target))
                    continue
                current = open_batches.get(target)
                if current is None or len(current[0]) >= BATCH_STATEMENTS or \
                        current[1] + n > BATCH_BYTES:
                    current = open_batches[target] = [
                        BatchStatement(batch_type=BatchType.UNLOGGED), 0]
                    calls.append((current[0], None, target))
                current[0].add(stmt, values)
                current[1] += n
        if len(calls) > 1 and "journal.applying" in armed():
            # a crash test: half the calls land, then the point (unarmed: one round)
            self._db.execute(calls[:len(calls) // 2], "write")
            failpoint("journal.applying")
            calls = calls[len(calls) // 2:]
        self._db.execute(calls, "write")

    def put_processed(self, events: list[bytes], ts: int) -> None:
        """Record hashed event IDs as processed, at write timestamp ``ts``."""
        from cassandra.query import BatchStatement, BatchType

        calls = []
        for chunk in chunks(events, BATCH_STATEMENTS * 4):
            batch = BatchStatement(batch_type=BatchType.UNLOGGED)
            for h in chunk:
                batch.add(self._db.prepared(None, "processed_put"), (h, ts))
            calls.append((batch, None, None))
        self._db.execute(calls, "write (processed events)")

    # ------------------------------------------------------------------ recovery

    def recover_if_needed(self) -> None:
        """Recover first if this store has not yet, or a write failed since."""
        if self._needs_recovery:
            with self.lock:
                if self._needs_recovery:
                    self.recover()

    def recover(self) -> int:
        """Finish or discard the batches an interrupted write left (module docstring);
        returns how many were found."""
        with self.lock:
            regions = sorted(self._regions)
            rows = self._db.run([(r, "meta", (r, INFLIGHT)) for r in regions], "recover")
            pointers: dict[uuid.UUID, list[str]] = {}
            for region, res in zip(regions, rows, strict=True):
                if res and res[0][0]:
                    pointers.setdefault(uuid.UUID(res[0][0]), []).append(region)
            found = 0
            for batch_id, pointing in sorted(pointers.items()):
                found += self._recover_batch(batch_id, pointing)
            self._needs_recovery = False
            return found

    def _fence_names(self, batch_id: uuid.UUID) -> bool:
        """Whether the fence row's ``last_batch`` is ``batch_id``."""
        rows = self._db.run([(None, "fence_last", (FENCE,))], "recover")[0]
        return bool(rows) and rows[0][0] == batch_id

    def _recover_batch(self, batch_id: uuid.UUID, pointing: list[str]) -> int:
        row = self._db.run([(None, "batch", (batch_id,))], "recover")[0]
        if not row:  # finished (or expired while pending): drop any journal left behind
            self._db.run([(r, "journal_delete", (r, batch_id)) for r in pointing], "recover")
            return 0
        state, regions_text, events_blob = row[0]
        regions = [r for r in (regions_text or "").split(",") if r]
        events = [events_blob[i:i + 16] for i in range(0, len(events_blob or b""), 16)]
        unserved = sorted(set(regions) - self._regions)
        if state != COMMITTED and self._fence_names(batch_id):
            state = COMMITTED  # the fenced commit landed, the batch row update did not
        if state != COMMITTED:
            self._db.run([(r, "journal_delete", (r, batch_id)) for r in regions
                          if r in self._regions], "recover (discard)")
            failpoint("journal.discarding")
            if not unserved:
                self._db.run([(None, "batch_delete", (batch_id,))], "recover (discard)")
            return 1
        if unserved:
            raise BackendError(
                "profile store: recover: an interrupted write also touched regions "
                f"{unserved}; open a store serving {sorted(regions)} to finish it")
        results = self._db.run([(r, "journal", (r, batch_id)) for r in regions], "recover")
        plan = {}
        for region, parts in zip(regions, results, strict=True):
            if parts:
                data = b"".join(chunk for _, chunk in sorted(parts))
                plan[region] = decode_journal(data)
        self.finish(batch_id, plan, events, regions)
        return 1
