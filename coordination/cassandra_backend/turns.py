"""Writer turns across machines: a lease with a fencing token and the turn feed in
Cassandra's global keyspace (``{prefix}_global``, replicated to every data centre), and
the record keys of the feed in the region keyspaces (``{prefix}_{region}``).

=======================  ========================  ==========================================
table                    primary key               columns
=======================  ========================  ==========================================
global ``writer_lease``  ``((name))``              ``turn`` (the last turn handed out),
                                                   ``owner``, ``expires_at`` (holder's
                                                   clock, s)
global ``writer_turns``  ``((name), turn)``        ``writer``, ``state`` (open | closed),
                                                   ``regions`` (JSON list of the regions
                                                   whose key lists the turn wrote; null:
                                                   unknown)
region                   ``((name), turn)``        ``record_keys`` (JSON list), written
``writer_turn_keys``                               ``USING TTL`` :data:`KEY_TTL_SECONDS`
=======================  ========================  ==========================================

**Schema first.** Cassandra 2.1 gives a table that several processes create at the same
moment a different ID on each node, which breaks it; so ``idgraph schema`` creates every
keyspace and table once and then writes the ``writer_lease`` row ``schema``
(:func:`mark_schema_created`), and ``idgraph worker`` refuses to start without it
(:func:`schema_created`).

**The lease.** A writer takes the turn by a lightweight transaction (Paxos, ``SERIAL``:
across every data centre, so two machines anywhere cannot both win) on the one lease row:
``UPDATE ... SET turn = T+1, owner = me, expires_at = now + lease IF turn = T``, tried
when the row shows no owner, an expired lease, or this writer. The new token is the
turn's number and its **fencing token**. While the turn is open a thread renews the lease
(``IF turn = T+1``) every third of ``lease_seconds``; the turn ends by releasing it
(``owner = null IF turn = T+1``). A writer that dies holding the lease blocks the others
for at most ``lease_seconds`` (measured on the next writer's clock: clocks only need to
agree to well within the lease).

**Fencing.** A lease alone is not safe: a writer that stalls (a long GC pause, SIGSTOP, a
partition) can wake up after its lease expired and another writer took the turn, and go
on writing. So the token is handed to the store and the graph
(:attr:`CatchUp.token`), which refuse a write carrying a token older than the newest they
have seen (the Cassandra store's commit point is a transaction ``IF fence <= T``: see
:mod:`idgraph.profile_store.cassandra_backend.journal`). The stalled writer's batch then
fails before its commit point and is delivered again: the lease decides who *should*
write, the fence decides whose writes *count* (Kleppmann, "How to do distributed locking").

**The feed.** Each turn inserts its row *open* (under the lease, with its token as the
turn number) and closes it naming the regions it wrote records of, as the local feed
(:mod:`idgraph.coordination.local.turns`) does with the keys themselves; a writer catching
up reads the rows after its last turn. A row still open at the next turn means its writer
died inside the turn: the next writer reconciles. The newest ``KEEP_TURNS`` rows are kept.

**Residency of the keys.** Record keys are personal data (``sendgrid:<email>``), and the
global keyspace holds none. So the keys a turn wrote go, before its row is closed, to
``writer_turn_keys`` in the keyspace of the home region each record was written in
(:meth:`CassandraWriterTurns.end` is told it), in that region's data centre; the global
row names only the regions. A writer catching up reads the lists of the regions it
writes (a listed region's missing list, expired or erased, makes the catch-up unknown:
the writer rebuilds its caches); a list of a region it does not write names no record
it holds. A key whose region the writer does not know, or a region it does not write,
makes the turn's keys unknown rather than put the key anywhere else. Lists expire after
:data:`KEY_TTL_SECONDS` (a writer away longer rebuilds), so a key left in the list of a
region its record has since left is gone within that time; :meth:`erase` deletes the lists
naming a forgotten key in every region this writer writes.

Availability: the lease needs a quorum of the global keyspace's replicas in every data
centre (``SERIAL``). With a data centre down, writers wait (at most ``wait_seconds``, then
BackendError: the stream retries the batch) rather than risk two writers. A region's key
list is written and read at ``cassandra.consistency`` in its own data centre: with that
data centre down, turns that wrote records of the region fail (the store's write of them
already did).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import orjson
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from idgraph.coordination.base import CatchUp, TurnStatus, WriterCoordination
from idgraph.coordination.cassandra_backend.session import GlobalSession
from idgraph.core.errors import BackendError
from idgraph.profile_store.cassandra_backend.settings import CassandraSettings

WHAT = "writer turns"
LEASE = "writers"  # the one lease (and feed) of a deployment
KEEP_TURNS = 10_000
KEY_TTL_SECONDS = 3 * 24 * 3600
"""How long a region keeps a turn's record keys (a writer that missed them rebuilds)."""

DDL = {
    "writer_lease": "CREATE TABLE IF NOT EXISTS {ks}.writer_lease (name text PRIMARY KEY, "
                    "turn bigint, owner text, expires_at double)",
    "writer_turns": "CREATE TABLE IF NOT EXISTS {ks}.writer_turns (name text, turn bigint, "
                    "writer text, state text, regions blob, PRIMARY KEY (name, turn))",
}
REGION_DDL = {
    "writer_turn_keys": "CREATE TABLE IF NOT EXISTS {ks}.writer_turn_keys (name text, "
                        "turn bigint, record_keys blob, PRIMARY KEY (name, turn))",
}


SCHEMA_ROW = "schema"
"""The ``writer_lease`` row ``idgraph schema`` writes once every table exists
(:func:`mark_schema_created`); writers on several machines start only when it is there."""
SCHEMA_VERSION = 1  # raise it with every release that adds a table: workers then wait for
#                    `idgraph schema` to have created them


def mark_schema_created(settings: CassandraSettings) -> None:
    """Record that the deployment's keyspaces and tables exist (after ``idgraph schema``
    created them all): ``writer_lease`` row ``schema`` with the schema version."""
    db = GlobalSession(settings, DDL, WHAT)
    try:
        put = db.prepare("INSERT INTO {ks}.writer_lease (name, turn) VALUES (?, ?)")
        db.run([(put, (SCHEMA_ROW, SCHEMA_VERSION))], "mark the schema created")
    finally:
        db.close()


def schema_created(settings: CassandraSettings) -> bool:
    """Whether ``idgraph schema`` has created the deployment's schema (this version or a
    newer one). BackendError when the cluster cannot be reached."""
    if not GlobalSession.has_tables(settings, DDL, WHAT):
        return False
    db = GlobalSession(settings, DDL, WHAT, create=False)
    try:
        read = db.prepare("SELECT turn FROM {ks}.writer_lease WHERE name = ?")
        rows = db.run([(read, (SCHEMA_ROW,))], "read the schema mark")[0]
        return bool(rows) and (rows[0][0] or 0) >= SCHEMA_VERSION
    finally:
        db.close()


class _Busy(Exception):
    """The lease is held by another writer (retried until ``wait_seconds``)."""


class CassandraWriterTurns(WriterCoordination):
    """Lease, fencing token and turn feed (module docstring) of a writer that writes the
    records of ``regions``.

    ``clock`` is this writer's wall clock (tests replace it). One instance per writer
    process; not re-entrant.
    """

    def __init__(self, settings: CassandraSettings, regions: Sequence[str],
                 wait_seconds: float = 120.0, lease_seconds: float = 10.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.writer_id = f"{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.wait_seconds = wait_seconds
        self.lease_seconds = lease_seconds
        self._clock = clock
        self._db = GlobalSession(settings, DDL, WHAT, regions=regions, region_ddl=REGION_DDL)
        self.regions = self._db.regions
        self._token: int | None = None  # the held turn's token
        self._unknown = False  # an erase in this turn: end() names no keys
        self._renewer: threading.Thread | None = None
        self._stop_renewing = threading.Event()
        self.lost = threading.Event()
        """Set when a renewal found the lease taken: this turn's writes will be fenced."""
        self.renewals = 0
        self.turns_lost = 0
        self._held = 0  # the last turn this writer held
        try:
            self._prepare()
            self._applied("open", self._seed, (LEASE,))
            self._last = self._start_position()
        except BaseException:
            self._db.close()
            raise

    def _prepare(self) -> None:
        from cassandra import ConsistencyLevel

        ks, prepare = "{ks}", self._db.prepare
        self._seed = prepare(f"INSERT INTO {ks}.writer_lease (name, turn, expires_at) "
                             "VALUES (?, 0, 0) IF NOT EXISTS")
        self._read_lease = prepare(f"SELECT turn, owner, expires_at FROM {ks}.writer_lease "
                                   "WHERE name = ?")
        self._read_lease.consistency_level = ConsistencyLevel.SERIAL
        self._take = prepare(f"UPDATE {ks}.writer_lease SET turn = ?, owner = ?, "
                             "expires_at = ? WHERE name = ? IF turn = ?")
        self._renew = prepare(f"UPDATE {ks}.writer_lease SET expires_at = ? WHERE name = ? "
                              "IF turn = ?")
        self._release_lease = prepare(f"UPDATE {ks}.writer_lease SET owner = null, "
                                      "expires_at = 0 WHERE name = ? IF turn = ?")
        for stmt in (self._seed, self._take, self._renew, self._release_lease):
            stmt.serial_consistency_level = ConsistencyLevel.SERIAL
        self._put_turn = prepare(f"INSERT INTO {ks}.writer_turns (name, turn, writer, state) "
                                 "VALUES (?, ?, ?, 'open')")
        self._close_turn = prepare(f"UPDATE {ks}.writer_turns SET state = 'closed', "
                                   "regions = ? WHERE name = ? AND turn = ?")
        self._feed = prepare(f"SELECT turn, writer, state, regions FROM {ks}.writer_turns "
                             "WHERE name = ? AND turn > ?")
        self._prune = prepare(f"DELETE FROM {ks}.writer_turns WHERE name = ? AND turn = ?")
        self._mark_unknown = prepare(f"UPDATE {ks}.writer_turns SET regions = ? "
                                     "WHERE name = ? AND turn = ?")
        self._close_open = prepare(f"UPDATE {ks}.writer_turns SET state = 'closed' "
                                   "WHERE name = ? AND turn = ?")
        self._put_keys, self._read_keys, self._all_keys, self._drop_keys = {}, {}, {}, {}
        for r in self.regions:
            self._put_keys[r] = prepare(
                f"INSERT INTO {ks}.writer_turn_keys (name, turn, record_keys) VALUES (?, ?, ?) "
                f"USING TTL {KEY_TTL_SECONDS}", r)
            self._read_keys[r] = prepare(f"SELECT turn, record_keys FROM {ks}.writer_turn_keys "
                                         "WHERE name = ? AND turn > ? AND turn < ?", r)
            self._all_keys[r] = prepare(f"SELECT turn, record_keys FROM {ks}.writer_turn_keys "
                                        "WHERE name = ?", r)
            self._drop_keys[r] = prepare(f"DELETE FROM {ks}.writer_turn_keys WHERE name = ? "
                                         "AND turn = ?", r)

    def _run(self, operation: str, statement: Any, values: tuple,
             region: str | None = None) -> list:
        """The rows of one statement of the global keyspace (or ``region``'s);
        BackendError naming ``operation``."""
        return self._db.run([(statement, values)], operation, region=region)[0]

    def _applied(self, operation: str, statement: Any, values: tuple) -> bool:
        """Whether a conditional statement applied (a timed-out one is sent again: each
        condition names the turn, so a second send cannot do anything the first did not
        mean to)."""
        return self._db.run([(statement, values)], operation, with_names=True)[0][0]

    def _start_position(self) -> int:
        """A new writer has seen everything up to the last turn handed out (it starts from
        a full replay), except turns still open: their writers died, so it reconciles."""
        token = self._run("open", self._read_lease, (LEASE,))[0][0] or 0
        rows = self._run("open", self._feed, (LEASE, max(0, token - KEEP_TURNS)))
        open_turns = [turn for turn, _w, state, _k in rows if state == "open"]
        return min(open_turns) - 1 if open_turns else token

    # ------------------------------------------------------------------ the lease

    def status(self) -> TurnStatus:
        return TurnStatus(holding=self._token is not None, turn=self._held,
                          renewals=self.renewals, lost=self.turns_lost)

    @property
    def token(self) -> int | None:
        """The fencing token of the turn held now (None: no turn)."""
        return self._token

    def begin(self) -> CatchUp:
        """Take the lease (waiting at most ``wait_seconds``), open a turn, and say what
        other writers did since this writer's last turn; ``CatchUp.token`` fences the
        turn's writes."""
        if self._token is not None:
            raise RuntimeError("writer turns: a turn is already open in this process")
        waiting = Retrying(retry=retry_if_exception_type(_Busy),
                           wait=wait_exponential(multiplier=0.005, max=0.25),
                           stop=stop_after_delay(self.wait_seconds), reraise=True)
        try:
            token = waiting(self._try_take)
        except _Busy:
            raise BackendError(f"writer turns: another writer held the turn for more than "
                               f"{self.wait_seconds:.0f} s") from None
        self._token = self._held = token
        self.lost.clear()
        self._start_renewing(token)
        try:
            self._run("open a turn", self._put_turn, (LEASE, token, self.writer_id))
            catch = self._read_feed(token)
        except BaseException:
            self._release()
            raise
        catch.token = token
        return catch

    def _try_take(self) -> int:
        token, owner, expires_at = self._run("take the turn", self._read_lease, (LEASE,))[0]
        now = self._clock()
        if owner is not None and owner != self.writer_id and (expires_at or 0) > now:
            raise _Busy
        applied = self._applied("take the turn", self._take,
                                (token + 1, self.writer_id, now + self.lease_seconds, LEASE,
                                 token))
        if not applied:
            raise _Busy  # another writer took it between the read and the update
        return token + 1

    def _start_renewing(self, token: int) -> None:
        self._stop_renewing = stop = threading.Event()

        def renew() -> None:
            while not stop.wait(self.lease_seconds / 3):
                try:
                    applied = self._applied("renew the turn", self._renew,
                                            (self._clock() + self.lease_seconds, LEASE, token))
                except BackendError:
                    continue  # tried again at the next period; fencing keeps it safe
                if not applied:
                    self.lost.set()
                    self.turns_lost += 1
                    return
                self.renewals += 1

        self._renewer = threading.Thread(target=renew, name="idgraph-lease", daemon=True)
        self._renewer.start()

    def _release(self) -> None:
        """Stop renewing and give the lease back (if still ours)."""
        token, self._token = self._token, None
        self._stop_renewing.set()
        if self._renewer is not None:
            self._renewer.join()
            self._renewer = None
        if token is not None:
            try:
                self._applied("release the turn", self._release_lease, (LEASE, token))
            except BackendError:
                pass  # the lease expires by itself

    # ------------------------------------------------------------------ the feed

    def end(self, record_keys: Mapping[str, str]) -> None:
        """Close the turn with the keys it wrote (record key -> the home region it was
        written in): each region's keys in its keyspace, then the turn's row naming the
        regions (null after an :meth:`erase`, or when a key's region is unknown or not
        one this writer writes); release the lease."""
        by_region: dict[str, list[str]] = {}
        unknown = self._unknown
        for key, region in record_keys.items():
            if region not in self._put_keys:
                unknown = True
                break
            by_region.setdefault(region, []).append(key)
        self._unknown = False
        token = self._token
        try:
            if unknown:
                regions = None
            else:
                regions = sorted(by_region)
                for region in regions:
                    self._run("close the turn", self._put_keys[region],
                              (LEASE, token, orjson.dumps(sorted(by_region[region]))), region)
            self._run("close the turn", self._close_turn, (orjson.dumps(regions), LEASE, token))
            self._last = token
            if token % 1000 == 0:
                self._prune_feed(token)
        finally:
            self._release()

    def _prune_feed(self, token: int) -> None:
        """Delete the rows (and key lists) of the turns before the newest KEEP_TURNS."""
        turns = range(max(1, token - KEEP_TURNS - 1000), token - KEEP_TURNS + 1)
        if not turns:
            return
        self._db.run([(self._prune, (LEASE, t)) for t in turns], "prune the feed")
        for region, drop in self._drop_keys.items():
            self._db.run([(drop, (LEASE, t)) for t in turns], "prune the feed", region=region)

    def abort(self) -> None:
        """Release the lease leaving the turn open: the next turn reconciles."""
        self._last = (self._token or 1) - 1
        self._unknown = False
        self._release()

    def close(self) -> None:
        if self._token is not None:
            self.abort()
        self._db.close()

    def erase(self, record_keys: Iterable[str]) -> int:
        """Delete every key list naming one of ``record_keys`` in the regions this writer
        writes, and mark those turns unknown (their readers rebuild); this turn names no
        keys either. Returns how many turns were rewritten."""
        gone = set(record_keys)
        if not gone:
            return 0
        rewritten: set[int] = set()
        for region in self.regions:
            rows = self._run("erase from the feed", self._all_keys[region], (LEASE,), region)
            named = [turn for turn, keys in rows
                     if keys is not None and gone.intersection(orjson.loads(keys))]
            self._db.run([(self._drop_keys[region], (LEASE, t)) for t in named],
                         "erase from the feed", region=region)
            rewritten.update(named)
        self._db.run([(self._mark_unknown, (orjson.dumps(None), LEASE, t))
                      for t in sorted(rewritten)], "erase from the feed")
        self._unknown = True
        return len(rewritten)

    def _read_feed(self, token: int) -> CatchUp:
        rows = [r for r in self._run("catch up", self._feed, (LEASE, self._last))
                if r[0] < token]
        catch = CatchUp(record_keys=set())
        expected = self._last + 1
        listed: list[tuple[int, list[str]]] = []  # (turn, regions whose keys it wrote)
        for turn, writer, state, regions in rows:
            if turn != expected:
                catch.record_keys = None  # a gap: pruned, or a turn that never opened
            expected = turn + 1
            if state == "open":
                catch.crashed = True
                catch.record_keys = None
                self._run("catch up", self._close_open, (LEASE, turn))
            if writer != self.writer_id or state == "open":
                catch.foreign_turns += 1
            if catch.record_keys is not None and regions is not None:
                # no cell: a crashed turn closed by the writer that reconciled it (that
                # reconciliation is what the reader needed); JSON null: unknown keys
                named = orjson.loads(regions)
                if named is None:
                    catch.record_keys = None
                else:
                    listed.append((turn, [r for r in named if r in self._read_keys]))
        if expected != token:
            # turns handed out but never opened (a writer died between taking the lease
            # and opening its row): nothing says what they did
            catch.crashed = catch.crashed or expected < token
            catch.record_keys = None if expected < token else catch.record_keys
            catch.foreign_turns += token - expected
        if catch.record_keys is not None and listed:
            catch.record_keys = self._listed_keys(listed, token)
        return catch

    def _listed_keys(self, listed: list[tuple[int, list[str]]], token: int) -> set[str] | None:
        """The keys of the ``listed`` turns from their regions' lists (None when a list a
        turn names is gone: expired, or erased after the turn's row was read)."""
        wanted = {r for _, regions in listed for r in regions}
        lists: dict[tuple[int, str], bytes] = {}
        for region in sorted(wanted):
            for turn, keys in self._run("catch up", self._read_keys[region],
                                        (LEASE, self._last, token), region):
                lists[(turn, region)] = keys
        out: set[str] = set()
        for turn, regions in listed:
            for region in regions:
                keys = lists.get((turn, region))
                if keys is None:
                    return None
                out.update(orjson.loads(keys))
        return out
