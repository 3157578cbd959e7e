"""Failpoints: named places on the delivery path where a test can make this process die,
stop or fail, as etcd's ``gofail`` and TiKV's ``fail-rs`` do.

The crash tests and the fault-injection harness (``tests/faults/``) start real worker and
writer processes with ``IDGRAPH_FAILPOINTS`` set, for example::

    IDGRAPH_FAILPOINTS="stream.batch.stored=kill@3;stream.dead_letters.send=fail@1-4"

Each ``name=action[@hits]`` entry arms one point (``;`` separates entries):

- ``kill``: the process sends itself SIGKILL (no cleanup, no flush: a power cut);
- ``fail``: :class:`InjectedFault` is raised (a :class:`BackendError`: the backend or the
  broker refused);
- ``stop``: the process sends itself SIGSTOP (a long GC pause or a frozen VM, until a
  SIGCONT).

``@N`` fires on the N-th time the point is reached (counted from 1 in this process),
``@N-M`` on the N-th to the M-th, ``@N-`` from the N-th on; no ``@``: every time.

Unset (every production process), :func:`failpoint` is one lookup in an empty dict. The
variable is read once, at import; an entry naming no known point, or an unknown action,
raises :class:`ValueError` there, so a misspelt schedule never silently tests nothing.
Every point is listed in :data:`POINTS` with where it is and what a death there means.
"""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import dataclass

from idgraph.core.errors import BackendError

ENV = "IDGRAPH_FAILPOINTS"

POINTS: dict[str, str] = {
    # the Kafka worker (stream/delivery.py), in the order a batch passes them
    "stream.batch.stored": "the batch is stored (profiles, graph, outbox); its dead letters "
                           "are not sent and nothing is acknowledged yet",
    "stream.dead_letters.send": "a dead letter is about to be sent",
    "stream.changes.sent": "the outbox's changes are on the broker, not yet removed from "
                           "the outbox",
    "stream.batch.acknowledged": "everything of the batch is done; Faust acknowledges it "
                                 "next (its offsets are committed at the next commit)",
    # a writer's turn with an embedded store (idgraph/engine/, the networkx link log, the
    # SQLite store), in the order an ingest batch passes them
    "writer.turn.begun": "the writer's turn is open (its row in the turn feed says so); "
                         "nothing of the batch is written",
    "writer.graph.logging": "the link log's transaction holds the batch's rows but not its "
                            "commit row: nothing of it is committed",
    "writer.graph.applied": "the graph holds the batch's links, the store nothing of it",
    "writer.store.writing": "the SQLite store's transaction holds the batch's rows but not "
                            "its processed events: nothing of it is committed",
    "writer.store.committed": "the store holds the batch; the writer turn is not released",
    "writer.turn.ended": "the turn is closed with the keys it wrote and released; the "
                         "caller has not acknowledged the batch",
    # the Cassandra store's redo journal (profile_store/cassandra_backend/journal.py), in
    # the order a write passes them (recovery passes the step 3 ones again)
    "journal.pending": "step 1 in progress: the pending batch row is written; no region "
                       "points at it, no journal",
    "journal.pointed": "step 1 in progress: the pending batch row and the regions' "
                       "in-flight pointers are written, the journals not",
    "journal.begun": "step 1 done: the pending batch row and its journals are written, "
                     "the batch is not committed",
    "journal.fenced": "step 2 in progress (fenced writers): the fence passed with this "
                      "writer's token, the batch row still says pending",
    "journal.committed": "step 2 done: the batch is committed, none of its rows written",
    "journal.applying": "step 3 in progress: half the batch's rows are written, the rest "
                        "not (armed, the rows are sent in two rounds)",
    "journal.applied": "step 3: every row is written, the processed events not yet",
    "journal.processed": "step 3: the rows and the processed events are written, the "
                         "journals not yet removed",
    "journal.cleared": "step 3: the journals are removed, the committed batch row not yet",
    "journal.discarding": "recovery of a pending batch: its journals are removed, its "
                          "batch row not yet",
}


class InjectedFault(BackendError):
    """Raised by a failpoint armed with ``fail``."""

    status = "UNAVAILABLE"

    def __init__(self, point: str) -> None:
        super().__init__(f"injected fault at {point}")
        self.point = point


@dataclass(frozen=True, slots=True)
class _Arm:
    action: str
    first: int
    last: int | None  # None: no end


def _parse(spec: str) -> dict[str, _Arm]:
    arms: dict[str, _Arm] = {}
    for n, entry in enumerate(filter(None, (e.strip() for e in spec.split(";"))), 1):
        name, eq, rest = entry.partition("=")
        name = name.strip()
        action, at, hits = rest.strip().partition("@")
        where = f"{ENV} entry {n} ({entry!r})"
        if not eq or name not in POINTS:
            raise ValueError(f"{where}: unknown failpoint; known: {', '.join(POINTS)}")
        if action not in ("kill", "fail", "stop"):
            raise ValueError(f"{where}: the action must be kill, fail or stop")
        first, last = 1, None
        if at:
            lo, dash, hi = hits.partition("-")
            try:
                first = int(lo)
                last = (int(hi) if hi else None) if dash else first
            except ValueError:
                raise ValueError(f"{where}: hits must be N, N-M or N-") from None
            if first < 1 or (last is not None and last < first):
                raise ValueError(f"{where}: hits count from 1 and N <= M")
        arms[name] = _Arm(action, first, last)
    return arms


_ARMED: dict[str, _Arm] = _parse(os.environ.get(ENV, ""))
_hits: dict[str, int] = {}
_lock = threading.Lock()


def failpoint(name: str) -> None:
    """Mark the point ``name`` (a key of :data:`POINTS`) as reached; act when it is armed
    for this hit. Does nothing when :envvar:`IDGRAPH_FAILPOINTS` does not name it."""
    arm = _ARMED.get(name)
    if arm is None:
        return
    with _lock:
        hit = _hits[name] = _hits.get(name, 0) + 1
    if hit < arm.first or (arm.last is not None and hit > arm.last):
        return
    if arm.action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif arm.action == "stop":
        os.kill(os.getpid(), signal.SIGSTOP)
    else:
        raise InjectedFault(name)


def armed() -> tuple[str, ...]:
    """The points armed in this process (for a worker's start-up log line)."""
    return tuple(_ARMED)
