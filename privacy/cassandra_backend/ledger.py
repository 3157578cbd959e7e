"""The privacy ledger in the deployment's global keyspace (``{prefix}_global``, replicated
to every data centre of ``cassandra.region_datacenters``), beside the profile store's
processed-event IDs and segment definitions (see :mod:`idgraph.privacy.ledger` for the
contracts).

==============================  =========================================  ===============
table                           primary key                                columns
==============================  =========================================  ===============
``consent_entries``             ``((entry_id))``                           ``captured_at``,
                                                                           ``seq``, ``doc``
                                                                           (JSON)
``consent_by_subject``          ``((subject), captured_at, entry_id)``     ``seq``
                                                                           (timeuuid),
                                                                           ``doc``
``consent_current``             ``((subject), purpose)``                   ``status``,
                                                                           ``captured_at``,
                                                                           ``entry_id``
``purposes``                    ``((part), kind, name, version)``          ``value``,
                                                                           ``doc``
``suppressions``                ``((value_hash))``                         ``reason``,
                                                                           ``request_id``,
                                                                           ``at``, ``added``
``suppressions_by_request``     ``((request_id), value_hash)``
``suppressed_counts``           ``((reason))``                             ``events``
                                                                           (counter)
``forget_requests``             ``((request_id))``                         ``subject_hash``,
                                                                           ``requested_at``,
                                                                           ``doc``
``forget_requests_by_subject``  ``((subject_hash), requested_at,
                                request_id)``
``forget_requests_open``        ``((part), requested_at, request_id)``
``privacy_audit``               ``((day), at)``, ``at`` a timeuuid,        ``doc``
                                newest first
``privacy_audit_days``          ``((part), day)``, newest first
``privacy_audit_by_target``     ``((target), at)``, newest first           ``doc``
``consent_log``                 ``((bucket), seq)``, ``seq`` a timeuuid    ``entry_id``
``consent_log_buckets``         ``((part), bucket)``
``consent_log_cursors``         ``((name))``                               ``position``
==============================  =========================================  ===============

Subjects are keyed hashes (the callers hash them:
:func:`idgraph.engine.consent.hash_subjects`), never identifiers: the partition keys of
``consent_by_subject`` and ``consent_current`` are hashes, and so is every subject in an
entry's doc. The global keyspace therefore holds no identifier: the entry docs hold hashed
subjects and covers, purposes, statuses, times, sources, actors, regions and profile IDs;
the other tables hold hashes, IDs, purposes and counts.

Consent. An entry is one row of ``consent_entries`` and, denormalised, one row of
``consent_by_subject`` per subject it covers (what a history and an erase read). ``seq``
is a time UUID given when the entry is appended: entries captured in the same instant
come back in the order they were appended (the SQLite backend's insertion order).
``append_consent`` skips the entries whose row exists (read at the configured
consistency), then writes the log rows (The consent log: ``seq`` is the UUID of the
entry's log row), then the history rows, then moves the current states, then inserts
each entry's row with ``IF NOT EXISTS`` (a lightweight transaction): the entries it
applied are the new ones (``seq`` tells, when the answer was lost, whether the row is this
call's: see Contention). The entry row comes last, so its presence says the rest is
written: an append interrupted half-way is completed when the same entries are appended
again, and two processes appending one entry at once both write the same rows while only
one counts it.

Current states. Every write of ``consent_current`` is a lightweight transaction, and
one only writes a statement that is newer (:func:`idgraph.privacy.consent.newer`) than
the state it conditions on: ``INSERT ... IF NOT EXISTS`` when there is none, ``UPDATE
... IF entry_id = <the one read>`` otherwise (an entry ID stands for its status and
capture time: entries are immutable). A failed condition means another process moved
the state meanwhile: it is read again at ``SERIAL`` and the comparison made again. So
concurrent appenders, in any order and in any data centre, never move a state backwards.
The states are first read at the configured consistency: a stale answer only costs a
failed condition (states only move forwards, except an erase).

Erase. The entries covering the subjects are found in their history partitions; their
subjects' current states are deleted (``IF entry_id = ...``, chasing a state that moves
meanwhile), and so is the state another subject of an erased entry holds from it (as in
the SQLite backend, the other subject then has no state for that purpose); then the
log rows of the ``seq`` values the entry rows and history rows hold, then the entry rows
(``IF EXISTS``), then the history rows, those of the erased subjects last, so an
interrupted erase finds everything again when repeated.

The consent log (``consent_log_after``). Every appended entry has a row in
``consent_log`` (``seq`` -> entry ID, no doc) under the hour of ``seq``; the hours that
have rows are listed in ``consent_log_buckets``. A cursor is the ``seq`` of the last row a
reader passed (``""``: none passed). A read lists the hours from the cursor's one, reads
their rows after the cursor in ``seq`` order, and gives each row's entry as
``consent_entries`` holds it, so an erased entry never comes back, even from a log row
the erase did not find. The order is ``seq`` order: the append order, up to the
difference between the clocks of the processes that appended (the entries of one call in
their order). Appenders in several processes take their UUIDs from their own clocks and
commit in any order, so a row can become visible after a reader passed a later one; and
two appenders (or an append repeated after a failure) can write two rows for one entry.
What keeps a reader that follows cursors from missing or repeating an entry:

* Settle window. A reader reads no row younger than :data:`LOG_SETTLE_SECONDS` (2 s) by
  its clock. An appender writes its log rows before anything else and checks, by its
  clock, that their write was acknowledged within :data:`LOG_WRITE_SECONDS` (1 s) of
  their ``seq``; when it was not, it writes them again under new UUIDs (the old rows are
  then duplicates, below). So every row is committed before a reader reads past its
  ``seq``, as long as the clocks of two processes differ by less than the remaining
  second (NTP keeps them within milliseconds; Cassandra's last write wins needs as much).
* One row per entry. The entry row holds the ``seq`` of the log row that stands for it
  (it comes last, ``IF NOT EXISTS``); a row of an entry whose row holds another ``seq``
  (another appender's, a rewritten or repeated one) is skipped. A row whose entry row is
  missing, also when read again at ``SERIAL`` (which sees a conditional write in
  flight), is an append in progress: the read stops before it (and returns what it
  passed) until the row is :data:`LOG_ABANDON_SECONDS` (2 min) old; after that it is
  skipped (an append that failed: appended again, the entry gets a new row; or an erased
  entry). An appender whose log rows are older than :data:`LOG_REFRESH_SECONDS` (30 s)
  when it sends a round of entry rows writes new log rows first, so an entry row lands
  under a row no reader has given up on. (A reader's ``SERIAL`` read completes a round
  it finds accepted; a round of an append that failed, accepted by a minority of replicas
  the read did not ask, can still land later: that entry is then missing from the log.)
* Consistency. Log rows, hours and cursors are written and read at ``QUORUM`` (writes at
  the configured level when it is ``EACH_QUORUM`` or ``ALL``, reads at ``ALL`` when that
  is configured), not ``LOCAL_*``: a row acknowledged in one data centre is read by a
  reader in another. It costs appends no availability: their lightweight transactions
  already need a quorum of every replica.

A read returns the same cursor when it gives no entry (rows it skipped are read again
next time). Cursors are plain rows of ``consent_log_cursors`` (the writers take turns).
Log rows are never deleted but by an erase; entries appended before the log existed are
not in it.

Purposes. One partition, like the segment catalog: a counter row ``('c', '', 0)`` whose
``value`` is the number of purpose versions stored (the registry version) and a row per
version ``('v', name, version)``. A define reads the partition at ``SERIAL`` and writes
the new versions in one conditional batch with ``IF value = <read>`` (``IF NOT EXISTS``
for the first one), again when another definer won.

Suppressions. ``INSERT ... IF NOT EXISTS`` counts the new ones (``added``, a time UUID
of the call, settles a lost answer as ``seq`` does); their request's row in
``suppressions_by_request`` is written first. ``unsuppress`` deletes each hash its
request names ``IF request_id = <the request>`` (a hash another request suppressed
first stays) and then the request's partition. The counters are Cassandra counters (an
increment retried after a timeout may count twice).

Forget requests are written with their by-subject row, and their row in
``forget_requests_open`` while ``pending`` or ``in_progress`` (deleted once they are not),
in one logged batch (one write timestamp: the last put wins in every table); a listing of
every request (``list_forget_requests``) scans ``forget_requests`` (a few rows a day) and
sorts them in memory; audit entries
go to day partitions (the UTC day of a time UUID taken when the entry is appended, which
orders them) listed in ``privacy_audit_days``; ``audit_entries`` reads the days newest
first until it has enough.

Consistency. Reads and writes run at ``cassandra.consistency`` (the default execution
profile, coordinated in ``cassandra.local_datacenter``): with ``LOCAL_QUORUM`` a
statement one process committed is read by the next query of another in the same data
centre; ``QUORUM`` gives that across data centres. The lightweight transactions' Paxos
phase runs at ``SERIAL``, as the segment catalog's: concurrent writers anywhere are
serialised (it needs a quorum of every data centre's replicas).

Contention. Cassandra 2.1 gives a Paxos round that keeps losing to concurrent ones on the
same partition ``cas_contention_timeout_in_ms`` (1 s by default) and then answers
WriteTimeout (write type CAS): the round may or may not have landed. Such an answer is
settled, never raised: a state is read again at ``SERIAL`` (which completes a round left
in flight) and compared again; an insert reads back at ``SERIAL`` the time UUID its row
holds (``seq``, ``added``: this call's, it landed; none, it is sent again); a
conditional delete is sent again (an unsuppress whose delete landed in a round that timed
out does not count that hash); a purpose define reads the versions back. Each is retried
with a short random backoff, at most :data:`MAX_ROUNDS` times, then BackendError. A
coordinator that cannot reach the ``SERIAL`` quorum (Unavailable, NoHostAvailable) fails
the call at once.

Not atomic as the SQLite transaction is: a reader may see an entry's history rows before
the state it moves, and an append racing an erase of the same subjects may leave part of
the appended entry behind (a forget suppresses the subject before it erases).
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson

from idgraph.core.errors import BackendError
from idgraph.privacy.consent import ConsentEntry, ConsentState, newer
from idgraph.privacy.ledger import AuditEntry, ForgetRequest, PrivacyLedger, Suppression
from idgraph.privacy.purposes import Purpose, PurposeRegistry, default_purposes, registry_of
from idgraph.profile_store.cassandra_backend import schema as q
from idgraph.profile_store.cassandra_backend.clock import Clock, uuid_seconds
from idgraph.profile_store.cassandra_backend.connection import (
    Runner,
    backend_error,
    chunks,
    connect,
    describe,
    driver_error_types,
    ensure_schema,
    global_replication,
    profile_name,
)
from idgraph.profile_store.cassandra_backend.settings import CassandraSettings

WHAT = "privacy ledger"
IN_CHUNK = 100  # keys per IN query (as the profile store's IN reads)
MAX_ROUNDS = 50
"""Rounds of conditional writes (or ``SERIAL`` reads) per call before BackendError: each
failed one means another process changed the row meanwhile or won the Paxos round."""
BACKOFF_SECONDS = 0.02
"""Longest random pause before a round retried after losing (times the round's number,
up to 10 times this)."""
LOG_BUCKET_SECONDS = 3600
"""``consent_log`` partitions: the hour of a row's ``seq``."""
LOG_SETTLE_SECONDS = 2.0
"""A reader of the consent log reads no row younger than this (by its own clock): an
appender's log rows are committed within :data:`LOG_WRITE_SECONDS` of their ``seq`` (by
its clock), and the rest covers the difference between the processes' clocks (module
docstring, The consent log)."""
LOG_WRITE_SECONDS = 1.0
"""Longest time from taking a log row's ``seq`` to its write being acknowledged: an
appender that took longer writes its rows again under new UUIDs."""
LOG_WRITE_CHUNK = 500
"""Log rows written per chunk (each chunk takes its UUIDs just before its write)."""
LOG_WRITE_ATTEMPTS = 5
"""Writes of a chunk of log rows that were too slow before BackendError."""
LOG_REFRESH_SECONDS = 30.0
"""An appender whose log rows are older than this when it sends its entry rows writes new
ones first, so that an entry row never lands under a log row a reader gave up on."""
LOG_ABANDON_SECONDS = 120.0
"""A log row whose entry row is missing stops a reader until it is this old (an append
in progress); older, it is skipped (an append that failed, or an erased entry)."""
LOG_PAGE_SLACK = 16  # log rows read beyond what the reader still wants (rows it may skip)
_DAY = 86_400
_OPEN = ("pending", "in_progress")  # forget statuses a writer still has to carry out

_POINT_READS = (" WITH compression = {{'sstable_compression': 'LZ4Compressor',"
                " 'chunk_length_kb': 4}}")  # as the profile store's point-read tables

DDL = {
    "consent_entries": "CREATE TABLE IF NOT EXISTS {ks}.consent_entries (entry_id text,"
                       " captured_at double, seq timeuuid, doc blob,"
                       " PRIMARY KEY ((entry_id)))"
                       + _POINT_READS,
    "consent_by_subject": "CREATE TABLE IF NOT EXISTS {ks}.consent_by_subject (subject text,"
                          " captured_at double, entry_id text, seq timeuuid, doc blob,"
                          " PRIMARY KEY ((subject), captured_at, entry_id))" + _POINT_READS,
    "consent_current": "CREATE TABLE IF NOT EXISTS {ks}.consent_current (subject text,"
                       " purpose text, status text, captured_at double, entry_id text,"
                       " PRIMARY KEY ((subject), purpose))" + _POINT_READS,
    "purposes": "CREATE TABLE IF NOT EXISTS {ks}.purposes (part int, kind text, name text,"
                " version int, value bigint, doc blob, PRIMARY KEY ((part), kind, name,"
                " version))",
    "suppressions": "CREATE TABLE IF NOT EXISTS {ks}.suppressions (value_hash text,"
                    " reason text, request_id text, at double, added timeuuid,"
                    " PRIMARY KEY ((value_hash)))"
                    + _POINT_READS,
    "suppressions_by_request": "CREATE TABLE IF NOT EXISTS {ks}.suppressions_by_request"
                               " (request_id text, value_hash text,"
                               " PRIMARY KEY ((request_id), value_hash))",
    "suppressed_counts": "CREATE TABLE IF NOT EXISTS {ks}.suppressed_counts (reason text,"
                         " events counter, PRIMARY KEY ((reason)))",
    "forget_requests": "CREATE TABLE IF NOT EXISTS {ks}.forget_requests (request_id text,"
                       " subject_hash text, requested_at double, doc blob,"
                       " PRIMARY KEY ((request_id)))",
    "forget_requests_by_subject": "CREATE TABLE IF NOT EXISTS {ks}.forget_requests_by_subject"
                                  " (subject_hash text, requested_at double, request_id text,"
                                  " PRIMARY KEY ((subject_hash), requested_at, request_id))",
    "forget_requests_open": "CREATE TABLE IF NOT EXISTS {ks}.forget_requests_open (part int,"
                            " requested_at double, request_id text,"
                            " PRIMARY KEY ((part), requested_at, request_id))",
    "privacy_audit": "CREATE TABLE IF NOT EXISTS {ks}.privacy_audit (day bigint, at timeuuid,"
                     " doc blob, PRIMARY KEY ((day), at)) WITH CLUSTERING ORDER BY (at DESC)",
    "privacy_audit_days": "CREATE TABLE IF NOT EXISTS {ks}.privacy_audit_days (part int,"
                          " day bigint, PRIMARY KEY ((part), day))"
                          " WITH CLUSTERING ORDER BY (day DESC)",
    "privacy_audit_by_target": "CREATE TABLE IF NOT EXISTS {ks}.privacy_audit_by_target"
                               " (target text, at timeuuid, doc blob,"
                               " PRIMARY KEY ((target), at)) WITH CLUSTERING ORDER BY (at DESC)",
    "consent_log": "CREATE TABLE IF NOT EXISTS {ks}.consent_log (bucket bigint, seq timeuuid,"
                   " entry_id text, PRIMARY KEY ((bucket), seq))",
    "consent_log_buckets": "CREATE TABLE IF NOT EXISTS {ks}.consent_log_buckets (part int,"
                           " bucket bigint, PRIMARY KEY ((part), bucket))",
    "consent_log_cursors": "CREATE TABLE IF NOT EXISTS {ks}.consent_log_cursors (name text,"
                           " position text, PRIMARY KEY ((name)))",
}

QUERIES = {
    # consent
    "entries_in": "SELECT entry_id FROM {ks}.consent_entries WHERE entry_id IN ?",
    "entry_put": "INSERT INTO {ks}.consent_entries (entry_id, captured_at, seq, doc)"
                 " VALUES (?, ?, ?, ?) IF NOT EXISTS",
    "entry_seq": "SELECT seq FROM {ks}.consent_entries WHERE entry_id = ?",
    "entry_delete": "DELETE FROM {ks}.consent_entries WHERE entry_id = ? IF EXISTS",
    "entry_docs_in": "SELECT entry_id, seq, doc FROM {ks}.consent_entries"
                     " WHERE entry_id IN ?",
    "entry_doc": "SELECT seq, doc FROM {ks}.consent_entries WHERE entry_id = ?",
    "entry_seqs_in": "SELECT seq FROM {ks}.consent_entries WHERE entry_id IN ?",
    "history_put": "INSERT INTO {ks}.consent_by_subject (subject, captured_at, entry_id, seq,"
                   " doc) VALUES (?, ?, ?, ?, ?)",
    "history": "SELECT captured_at, entry_id, seq, doc FROM {ks}.consent_by_subject"
               " WHERE subject = ?",
    "history_newest": "SELECT captured_at, entry_id, seq, doc FROM {ks}.consent_by_subject"
                      " WHERE subject = ? ORDER BY captured_at DESC, entry_id DESC LIMIT ?",
    "history_at": "SELECT captured_at, entry_id, seq, doc FROM {ks}.consent_by_subject"
                  " WHERE subject = ? AND captured_at = ?",
    "history_delete": "DELETE FROM {ks}.consent_by_subject WHERE subject = ?"
                      " AND captured_at = ? AND entry_id = ?",
    "current_in": "SELECT subject, purpose, status, captured_at, entry_id"
                  " FROM {ks}.consent_current WHERE subject IN ?",
    "current": "SELECT status, captured_at, entry_id FROM {ks}.consent_current"
               " WHERE subject = ? AND purpose = ?",
    "current_insert": "INSERT INTO {ks}.consent_current (subject, purpose, status,"
                      " captured_at, entry_id) VALUES (?, ?, ?, ?, ?) IF NOT EXISTS",
    "current_update": "UPDATE {ks}.consent_current SET status = ?, captured_at = ?,"
                      " entry_id = ? WHERE subject = ? AND purpose = ? IF entry_id = ?",
    "current_delete": "DELETE FROM {ks}.consent_current WHERE subject = ? AND purpose = ?"
                      " IF entry_id = ?",
    # the consent log (statements run at the log's consistency: ``_Cql(log=True)``)
    "log_put": "INSERT INTO {ks}.consent_log (bucket, seq, entry_id) VALUES (?, ?, ?)",
    "log_bucket_put": "INSERT INTO {ks}.consent_log_buckets (part, bucket) VALUES (0, ?)",
    "log_buckets": "SELECT bucket FROM {ks}.consent_log_buckets WHERE part = 0"
                   " AND bucket >= ? AND bucket <= ?",
    "log_first": "SELECT seq, entry_id FROM {ks}.consent_log WHERE bucket = ? LIMIT ?",
    "log_after": "SELECT seq, entry_id FROM {ks}.consent_log WHERE bucket = ? AND seq > ?"
                 " LIMIT ?",
    "log_delete": "DELETE FROM {ks}.consent_log WHERE bucket = ? AND seq = ?",
    "cursor_get": "SELECT position FROM {ks}.consent_log_cursors WHERE name = ?",
    "cursor_put": "INSERT INTO {ks}.consent_log_cursors (name, position) VALUES (?, ?)",
    # purposes
    "purposes": "SELECT kind, name, version, value, doc FROM {ks}.purposes WHERE part = 0",
    "purpose_versions": "SELECT doc FROM {ks}.purposes WHERE part = 0 AND kind = 'v'"
                        " AND name = ?",
    "purposes_init": "INSERT INTO {ks}.purposes (part, kind, name, version, value)"
                     " VALUES (0, 'c', '', 0, ?) IF NOT EXISTS",
    "purposes_bump": "UPDATE {ks}.purposes SET value = ? WHERE part = 0 AND kind = 'c'"
                     " AND name = '' AND version = 0 IF value = ?",
    "purpose_put": "INSERT INTO {ks}.purposes (part, kind, name, version, doc)"
                   " VALUES (0, 'v', ?, ?, ?)",
    # suppressions
    "suppression_put": "INSERT INTO {ks}.suppressions (value_hash, reason, request_id, at,"
                       " added) VALUES (?, ?, ?, ?, ?) IF NOT EXISTS",
    "suppression_token": "SELECT added FROM {ks}.suppressions WHERE value_hash = ?",
    "suppressions_in": "SELECT value_hash, reason FROM {ks}.suppressions"
                       " WHERE value_hash IN ?",
    "suppression_delete": "DELETE FROM {ks}.suppressions WHERE value_hash = ?"
                          " IF request_id = ?",
    "by_request_put": "INSERT INTO {ks}.suppressions_by_request (request_id, value_hash)"
                      " VALUES (?, ?)",
    "by_request": "SELECT value_hash FROM {ks}.suppressions_by_request WHERE request_id = ?",
    "by_request_delete": "DELETE FROM {ks}.suppressions_by_request WHERE request_id = ?",
    "count_add": "UPDATE {ks}.suppressed_counts SET events = events + ? WHERE reason = ?",
    "counts": "SELECT reason, events FROM {ks}.suppressed_counts",
    # forget requests and audit
    "forget_put": "INSERT INTO {ks}.forget_requests (request_id, subject_hash, requested_at,"
                  " doc) VALUES (?, ?, ?, ?)",
    "forget_of_put": "INSERT INTO {ks}.forget_requests_by_subject (subject_hash,"
                     " requested_at, request_id) VALUES (?, ?, ?)",
    "forget_open_put": "INSERT INTO {ks}.forget_requests_open (part, requested_at,"
                       " request_id) VALUES (0, ?, ?)",
    "forget_open_delete": "DELETE FROM {ks}.forget_requests_open WHERE part = 0"
                          " AND requested_at = ? AND request_id = ?",
    "forget_open_ids": "SELECT request_id FROM {ks}.forget_requests_open WHERE part = 0",
    "forget": "SELECT doc FROM {ks}.forget_requests WHERE request_id = ?",
    "forgets_in": "SELECT doc FROM {ks}.forget_requests WHERE request_id IN ?",
    "forgets_all": "SELECT doc FROM {ks}.forget_requests",
    "forget_ids_of": "SELECT request_id FROM {ks}.forget_requests_by_subject"
                     " WHERE subject_hash = ?",
    "audit_put": "INSERT INTO {ks}.privacy_audit (day, at, doc) VALUES (?, ?, ?)",
    "audit_target_put": "INSERT INTO {ks}.privacy_audit_by_target (target, at, doc)"
                        " VALUES (?, ?, ?)",
    "audit_of": "SELECT doc FROM {ks}.privacy_audit_by_target WHERE target = ? LIMIT ?",
    "audit_day_put": "INSERT INTO {ks}.privacy_audit_days (part, day) VALUES (0, ?)",
    "audit_days": "SELECT day FROM {ks}.privacy_audit_days WHERE part = 0",
    "audit": "SELECT doc FROM {ks}.privacy_audit WHERE day = ? LIMIT ?",
}

Key = tuple[str, str]
"""(subject, purpose) of a current state."""

_PENDING = object()
"""A log row whose entry row is not written yet: a reader stops before it."""


def _bucket(seq: uuid.UUID) -> int:
    """The ``consent_log`` partition of a log row."""
    return int(uuid_seconds(seq) // LOG_BUCKET_SECONDS)


def _decode_cursor(cursor: str) -> uuid.UUID | None:
    """The ``seq`` of the last log row a cursor passed (None: from the first)."""
    if not cursor:
        return None
    try:
        seq = uuid.UUID(cursor)
    except ValueError:
        seq = None
    if seq is None or seq.version != 1:
        raise ValueError("not a consent log cursor of this ledger")
    return seq


def _covers(e: ConsentEntry) -> list[str]:
    return list(dict.fromkeys(e.covers or [e.subject]))


def _purpose(doc: bytes) -> Purpose:
    fields = orjson.loads(doc)
    for key in ("opt_in_regions", "attributes", "event_types"):
        fields[key] = tuple(fields.get(key, ()))
    return Purpose(**fields)


def _applied(rows: list[tuple]) -> bool:
    """Whether a lightweight transaction applied (its first column, ``[applied]``)."""
    return bool(rows and rows[0][0])


def _backoff(attempt: int) -> None:
    time.sleep(random.uniform(0, BACKOFF_SECONDS * min(attempt + 1, 10)))


def _contended(what: str, n: int) -> BackendError:
    return BackendError(f"{WHAT}: {what}: {n} row(s) still contended after {MAX_ROUNDS} "
                        "rounds of lightweight transactions")


class _Cql:
    """The statements above on one session, in the global keyspace: prepared once, bound
    (lightweight transactions with their Paxos phase at ``SERIAL``; the consent log's
    statements at the log's consistency), run concurrently through a :class:`Runner`."""

    def __init__(self, session: Any, keyspace: str, concurrency: int,
                 consistency: str = "LOCAL_QUORUM") -> None:
        from cassandra import ConsistencyLevel, ReadTimeout, WriteTimeout, WriteType

        self._session = session
        self._ks = keyspace
        # the log's: a quorum of every replica (module docstring, The consent log), or the
        # configured level where it is at least that
        configured = ConsistencyLevel.name_to_value[consistency]
        strong = (ConsistencyLevel.QUORUM, ConsistencyLevel.EACH_QUORUM, ConsistencyLevel.ALL)
        self._log_write = configured if configured in strong else ConsistencyLevel.QUORUM
        self._log_read = (ConsistencyLevel.ALL if configured == ConsistencyLevel.ALL
                          else ConsistencyLevel.QUORUM)  # no EACH_QUORUM reads in 2.1
        self._runner = Runner(session, concurrency)
        self._serial = ConsistencyLevel.SERIAL
        self._serial_levels = (ConsistencyLevel.SERIAL, ConsistencyLevel.LOCAL_SERIAL)
        self._timeouts = (ReadTimeout, WriteTimeout)
        self._cas = WriteType.CAS
        self._errors = driver_error_types()
        self._prepared: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __call__(self, name: str, values: Sequence = (), lwt: bool = False,
                 serial_read: bool = False, log: bool = False) -> Any:
        """Statement ``name`` bound to ``values``; ``lwt``: a conditional write (its Paxos
        phase at ``SERIAL``); ``serial_read``: a read at ``SERIAL`` (it sees a
        conditional write another process left in flight); ``log``: at the consent
        log's consistency."""
        stmt = self._prepared.get(name)
        if stmt is None:
            with self._lock:
                stmt = self._prepared.get(name)
                if stmt is None:
                    stmt = self._session.prepare(QUERIES[name].format(ks=self._ks))
                    self._prepared[name] = stmt
        bound = stmt.bind(values)
        if lwt or serial_read:
            bound.serial_consistency_level = self._serial
        if serial_read:
            bound.consistency_level = self._serial
        if log:
            bound.consistency_level = (self._log_read if QUERIES[name].startswith("SELECT")
                                       else self._log_write)
        return bound

    def batch(self, lwt: bool = False) -> Any:
        from cassandra.query import BatchStatement

        return BatchStatement(serial_consistency_level=self._serial) if lwt else BatchStatement()

    def contended(self, exc: BaseException) -> bool:
        """Whether ``exc`` is a Paxos round that timed out (under contention): a
        conditional write whose outcome is unknown, or a ``SERIAL`` read."""
        if not isinstance(exc, self._timeouts):
            return False
        return (getattr(exc, "write_type", None) == self._cas
                or exc.consistency in self._serial_levels)

    def run(self, statements: Sequence[Any], operation: str, settle: bool = False
            ) -> list[Any]:
        """Rows of each statement (bound or batch), in order, run concurrently; the first
        failure raises (BackendError naming ``operation`` for a driver error). With
        ``settle``, a Paxos round that timed out gives None in place of rows (the caller
        settles it)."""
        results = self._runner.run([(s, None, profile_name(None)) for s in statements])
        for i, res in enumerate(results):
            if isinstance(res, BaseException):
                if settle and self.contended(res):
                    results[i] = None
                elif isinstance(res, self._errors):
                    raise backend_error(operation, None, res, WHAT) from res
                else:
                    raise res
        return results

    def conditional(self, statements: Sequence[Any], operation: str) -> list[bool | None]:
        """Whether each lightweight transaction applied (None: its round timed out and it
        may or may not have)."""
        return [None if rows is None else _applied(rows)
                for rows in self.run(statements, operation, settle=True)]

    def serial_reads(self, name: str, keys: Sequence[Sequence], operation: str
                     ) -> list[list[tuple]]:
        """Rows of read ``name`` for each of ``keys`` at ``SERIAL``, a read whose round
        timed out sent again."""
        out: list[Any] = [None] * len(keys)
        todo = list(range(len(keys)))
        for attempt in range(MAX_ROUNDS):
            results = self.run([self(name, keys[i], serial_read=True) for i in todo],
                               operation, settle=True)
            for i, rows in zip(todo, results, strict=True):
                out[i] = rows
            todo = [i for i in todo if out[i] is None]
            if not todo:
                return out
            _backoff(attempt)
        raise _contended(operation, len(todo))

    def insert_new(self, put: str, read: str, rows: dict[str, tuple], tokens: dict[str, Any],
                   operation: str) -> int:
        """``INSERT ... IF NOT EXISTS`` of ``rows`` (key -> bound values, holding the key's
        token); how many this call inserted. A round that did not apply or whose answer
        was lost is settled by reading the key's token at ``SERIAL`` (read ``read``): this
        call's token, it landed; none, it is sent again; another, another call's won."""
        new, todo = 0, list(rows)
        for attempt in range(MAX_ROUNDS):
            applied = self.conditional([self(put, rows[k], lwt=True) for k in todo], operation)
            new += sum(1 for ok in applied if ok)
            unsure = [k for k, ok in zip(todo, applied, strict=True) if not ok]
            if not unsure:
                return new
            stored = self.serial_reads(read, [(k,) for k in unsure], operation)
            todo = []
            for k, found in zip(unsure, stored, strict=True):
                if not found:
                    todo.append(k)
                elif found[0][0] == tokens[k]:
                    new += 1
            if not todo:
                return new
            _backoff(attempt)
        raise _contended(operation, len(todo))

    def settle(self, statements: dict[Any, Any], operation: str) -> dict[Any, bool]:
        """Run conditional writes (key -> statement), those whose round timed out again,
        until each applied or not. A write applied in a round whose answer was lost then
        reads as not applied: callers only count what that cannot hide."""
        out: dict[Any, bool] = {}
        todo = list(statements)
        for attempt in range(MAX_ROUNDS):
            applied = self.conditional([statements[k] for k in todo], operation)
            for k, ok in zip(todo, applied, strict=True):
                if ok is not None:
                    out[k] = ok
            todo = [k for k in todo if k not in out]
            if not todo:
                return out
            _backoff(attempt)
        raise _contended(operation, len(todo))


class CassandraPrivacyLedger(PrivacyLedger):
    """The privacy ledger in the global keyspace of the cluster ``settings`` describes
    (module docstring)."""

    driver_errors = driver_error_types()
    describe_driver_error = staticmethod(describe)

    def __init__(self, settings: CassandraSettings) -> None:
        """Connect, create the keyspace and tables that are missing. ConfigError for
        settings that cannot work, BackendError when the cluster cannot be reached or the
        schema not made."""
        self.settings = settings
        self._ks = q.global_keyspace(settings.keyspace_prefix)
        self._clock = Clock()
        self._cluster, self._session = connect(settings, [])
        try:
            ensure_schema(self._cluster, self._session,
                          [(None, self._ks, DDL, global_replication(settings))],
                          readonly=False, what=WHAT)
            self._cql = _Cql(self._session, self._ks, settings.concurrency,
                             settings.consistency)
        except BaseException as exc:
            self._cluster.shutdown()
            if isinstance(exc, self.driver_errors):  # not a seam method: no boundary here
                raise backend_error("open", None, exc, WHAT) from exc
            raise

    # --- consent ---------------------------------------------------------------------

    def append_consent(self, entries: Iterable[ConsentEntry]) -> int:
        cql = self._cql
        todo: dict[str, ConsentEntry] = {}
        for e in entries:
            todo.setdefault(e.entry_id, e)
        if not todo:
            return 0
        for rows in cql.run([cql("entries_in", (chunk,)) for chunk in chunks(list(todo),
                                                                              IN_CHUNK)],
                            "append consent"):
            for (entry_id,) in rows:
                todo.pop(entry_id, None)
        if not todo:
            return 0
        docs = {entry_id: orjson.dumps(e) for entry_id, e in todo.items()}
        # the log rows first (module docstring, The consent log); their UUIDs give the
        # append order among equal capture times and tell which call inserted an entry's row
        seqs = self._write_log(list(todo))
        history, wanted = [], {}
        for entry_id, e in todo.items():
            for subject in _covers(e):
                history.append(cql("history_put", (subject, e.captured_at, entry_id,
                                                   seqs[entry_id], docs[entry_id])))
                candidate = ConsentState(subject, e.purpose, e.status, e.captured_at, entry_id)
                if newer(candidate, wanted.get((subject, e.purpose))):
                    wanted[(subject, e.purpose)] = candidate
        cql.run(history, "append consent")
        self._advance(wanted)
        return self._insert_entries(todo, docs, seqs)

    def _write_log(self, entry_ids: list[str]) -> dict[str, uuid.UUID]:
        """Write a consent log row per entry (and its hour's row in
        ``consent_log_buckets``), in chunks, each under UUIDs taken just before its write
        and written again under new ones when the write was not acknowledged within
        :data:`LOG_WRITE_SECONDS`; returns each entry's UUID."""
        cql = self._cql
        seqs: dict[str, uuid.UUID] = {}
        for chunk in chunks(entry_ids, LOG_WRITE_CHUNK):
            for _ in range(LOG_WRITE_ATTEMPTS):
                taken = {entry_id: self._clock.next_uuid() for entry_id in chunk}
                cql.run([cql("log_bucket_put", (b,), log=True)
                         for b in sorted({_bucket(u) for u in taken.values()})]
                        + [cql("log_put", (_bucket(u), u, entry_id), log=True)
                           for entry_id, u in taken.items()], "append consent")
                if time.time() - uuid_seconds(taken[chunk[0]]) <= LOG_WRITE_SECONDS:
                    seqs.update(taken)
                    break
            else:
                raise BackendError(
                    f"{WHAT}: append consent: {len(chunk)} consent log row(s) not written "
                    f"within {LOG_WRITE_SECONDS} s in {LOG_WRITE_ATTEMPTS} attempts")
        return seqs

    def _insert_entries(self, todo: dict[str, ConsentEntry], docs: dict[str, bytes],
                        seqs: dict[str, uuid.UUID]) -> int:
        """``INSERT ... IF NOT EXISTS`` of the entry rows, as :meth:`_Cql.insert_new`
        (how many this call inserted), each under the UUID of its log row; rows whose log
        rows are older than :data:`LOG_REFRESH_SECONDS` when a round is sent get new log
        rows first (every UUID this call gave an entry counts as its own)."""
        cql = self._cql
        seqs = dict(seqs)
        mine = {entry_id: {u} for entry_id, u in seqs.items()}
        new, pending = 0, list(todo)
        for attempt in range(MAX_ROUNDS):
            stale = [entry_id for entry_id in pending
                     if time.time() - uuid_seconds(seqs[entry_id]) > LOG_REFRESH_SECONDS]
            if stale:
                for entry_id, u in self._write_log(stale).items():
                    seqs[entry_id] = u
                    mine[entry_id].add(u)
            applied = cql.conditional(
                [cql("entry_put", (entry_id, todo[entry_id].captured_at, seqs[entry_id],
                                   docs[entry_id]), lwt=True) for entry_id in pending],
                "append consent")
            new += sum(1 for ok in applied if ok)
            unsure = [entry_id for entry_id, ok in zip(pending, applied, strict=True) if not ok]
            if not unsure:
                return new
            stored = cql.serial_reads("entry_seq", [(entry_id,) for entry_id in unsure],
                                      "append consent")
            pending = []
            for entry_id, found in zip(unsure, stored, strict=True):
                if not found:
                    pending.append(entry_id)
                elif found[0][0] in mine[entry_id]:
                    new += 1
            if not pending:
                return new
            _backoff(attempt)
        raise _contended("append consent", len(pending))

    def _current(self, subjects: Iterable[str], operation: str) -> dict[Key, ConsentState]:
        """The current states of ``subjects`` (at the configured consistency)."""
        subjects = list(dict.fromkeys(subjects))
        out = {}
        for rows in self._cql.run([self._cql("current_in", (chunk,))
                                   for chunk in chunks(subjects, IN_CHUNK)], operation):
            for row in rows:
                state = ConsentState(*row)
                out[(state.subject, state.purpose)] = state
        return out

    def _current_serial(self, keys: Sequence[Key], operation: str
                        ) -> dict[Key, ConsentState | None]:
        """The current state of each key, read at ``SERIAL``."""
        results = self._cql.serial_reads("current", keys, operation)
        return {key: ConsentState(*key, *rows[0]) if rows else None
                for key, rows in zip(keys, results, strict=True)}

    def _advance(self, wanted: dict[Key, ConsentState]) -> None:
        """Move the state of each key to the wanted one unless a newer one is stored,
        with conditional writes (module docstring)."""
        cql = self._cql
        current: dict[Key, ConsentState | None] = dict(
            self._current({s for s, _ in wanted}, "append consent"))
        pending = {k: c for k, c in wanted.items() if newer(c, current.get(k))}
        for attempt in range(MAX_ROUNDS):
            if not pending:
                return
            keys = list(pending)
            calls = []
            for key in keys:
                c, cur = pending[key], current.get(key)
                if cur is None:
                    calls.append(cql("current_insert", (c.subject, c.purpose, c.status,
                                                        c.captured_at, c.entry_id), lwt=True))
                else:
                    calls.append(cql("current_update", (c.status, c.captured_at, c.entry_id,
                                                        c.subject, c.purpose, cur.entry_id),
                                     lwt=True))
            applied = cql.conditional(calls, "append consent")
            # not applied: another process moved the state meanwhile; None: the round
            # timed out. Either way the state read at SERIAL decides (ours, if it landed,
            # is not newer than itself)
            lost = [key for key, ok in zip(keys, applied, strict=True) if not ok]
            if not lost:
                return
            current.update(self._current_serial(lost, "append consent"))
            pending = {k: pending[k] for k in lost if newer(pending[k], current.get(k))}
            if pending:
                _backoff(attempt)
        raise _contended("append consent", len(pending))

    def consent_states(self, subjects: Iterable[str]) -> list[ConsentState]:
        return list(self._current(subjects, "read consent states").values())

    def consent_entries(self, subjects: Iterable[str], limit: int = 1000
                        ) -> list[ConsentEntry]:
        cql = self._cql
        subjects = list(dict.fromkeys(subjects))
        if limit <= 0 or not subjects:
            return []
        # the newest ``limit`` of each subject by capture time, and every entry tied with
        # its oldest one: the newest ``limit`` of all are among them
        results = cql.run([cql("history_newest", (s, limit)) for s in subjects],
                          "read consent entries")
        rows = [row for part in results for row in part]
        ties = [(s, part[-1][0]) for s, part in zip(subjects, results, strict=True)
                if len(part) >= limit]
        for part in cql.run([cql("history_at", tie) for tie in ties], "read consent entries"):
            rows.extend(part)
        found = {entry_id: (captured_at, seq.time, doc)
                 for captured_at, entry_id, seq, doc in rows}
        newest = sorted(found.items(), key=lambda item: (item[1][0], item[1][1], item[0]))
        return [ConsentEntry(**orjson.loads(doc)) for _, (_, _, doc) in newest[-limit:]]

    def consent_log_after(self, cursor: str, limit: int) -> tuple[list[ConsentEntry], str]:
        """The log rows after the cursor's, hour by hour, up to :data:`LOG_SETTLE_SECONDS`
        ago, each giving its entry, skipped or stopping the read (module docstring, The
        consent log); the cursor is the ``seq`` of the last row passed."""
        cql = self._cql
        after = _decode_cursor(cursor)
        if limit <= 0:
            return [], cursor
        now = time.time()
        horizon = now - LOG_SETTLE_SECONDS
        first, last = (0 if after is None else _bucket(after)), int(horizon // LOG_BUCKET_SECONDS)
        if last < first:
            return [], cursor
        buckets = [b for (b,) in cql.run([cql("log_buckets", (first, last), log=True)],
                                         "read consent log")[0]]
        out: list[ConsentEntry] = []
        passed = after  # the last row given or skipped

        def answer() -> tuple[list[ConsentEntry], str]:
            return (out, str(passed)) if out else ([], cursor)

        for bucket in buckets:
            lower = passed if passed is not None and _bucket(passed) == bucket else None
            while True:
                page = limit - len(out) + LOG_PAGE_SLACK
                rows = cql.run([cql("log_first", (bucket, page), log=True) if lower is None
                                else cql("log_after", (bucket, lower, page), log=True)],
                               "read consent log")[0]
                settled = [(seq, entry_id) for seq, entry_id in rows
                           if uuid_seconds(seq) < horizon]
                for seq, entry in self._log_entries(settled, now):
                    if entry is _PENDING:
                        return answer()
                    passed = seq
                    if entry is not None:
                        out.append(entry)
                        if len(out) >= limit:
                            return answer()
                if len(settled) < len(rows):
                    return answer()  # the rest is younger than the settle window
                if len(rows) < page:
                    break
                lower = rows[-1][0]
        return answer()

    def _log_entries(self, rows: list[tuple[uuid.UUID, str]], now: float
                     ) -> list[tuple[uuid.UUID, Any]]:
        """What each log row (``seq``, entry ID) gives, in order: its entry when the entry
        row holds its ``seq``; None (skipped) when it holds another, or when it is missing
        and the log row is older than :data:`LOG_ABANDON_SECONDS`; ``_PENDING`` (and
        nothing after it) when it is missing, also at ``SERIAL``, and the row is younger."""
        cql = self._cql
        ids = list(dict.fromkeys(entry_id for _, entry_id in rows))
        found: dict[str, tuple[uuid.UUID, bytes]] = {}
        for part in cql.run([cql("entry_docs_in", (chunk,)) for chunk in chunks(ids, IN_CHUNK)],
                            "read consent log"):
            for entry_id, seq, doc in part:
                found[entry_id] = (seq, doc)
        missing = [entry_id for entry_id in ids if entry_id not in found]
        if missing:  # an append in flight (its entry row is written last), or gone
            stored = cql.serial_reads("entry_doc", [(entry_id,) for entry_id in missing],
                                      "read consent log")
            for entry_id, part in zip(missing, stored, strict=True):
                if part:
                    found[entry_id] = part[0]
        out: list[tuple[uuid.UUID, Any]] = []
        for seq, entry_id in rows:
            got = found.get(entry_id)
            if got is None and now - uuid_seconds(seq) < LOG_ABANDON_SECONDS:
                out.append((seq, _PENDING))
                break
            if got is None or got[0] != seq:
                out.append((seq, None))
            else:
                out.append((seq, ConsentEntry(**orjson.loads(got[1]))))
        return out

    def get_cursor(self, name: str) -> str:
        rows = self._cql.run([self._cql("cursor_get", (name,), log=True)], "read cursor")[0]
        return rows[0][0] if rows else ""

    def put_cursor(self, name: str, cursor: str) -> None:
        self._cql.run([self._cql("cursor_put", (name, cursor), log=True)], "put cursor")

    def erase_consent(self, subjects: Iterable[str]) -> int:
        cql = self._cql
        subjects = list(dict.fromkeys(subjects))
        if not subjects:
            return 0
        erased: dict[str, ConsentEntry] = {}
        own_rows, other_rows = [], []  # history rows of the subjects, of the other subjects
        seqs: set[uuid.UUID] = set()  # the UUIDs of the erased entries' log rows
        for rows in cql.run([cql("history", (s,)) for s in subjects], "erase consent"):
            for _, entry_id, seq, doc in rows:
                seqs.add(seq)
                if entry_id not in erased:
                    erased[entry_id] = ConsentEntry(**orjson.loads(doc))
        for rows in cql.run([cql("entry_seqs_in", (chunk,))
                             for chunk in chunks(list(erased), IN_CHUNK)], "erase consent"):
            seqs.update(seq for (seq,) in rows)
        gone = set(subjects)
        for entry_id, e in erased.items():
            for subject in _covers(e):
                (own_rows if subject in gone else other_rows).append(
                    (subject, e.captured_at, entry_id))
        # the subjects lose every state; another subject loses the state an erased entry set
        others = {(s, erased[entry_id].purpose) for s, _, entry_id in other_rows}
        own = {k: st.entry_id for k, st in self._current(subjects, "erase consent").items()}
        other = {k: st.entry_id for k, st in
                 self._current({s for s, _ in others}, "erase consent").items()
                 if k in others and st.entry_id in erased}
        self._delete_states(own, chase=True)
        self._delete_states(other, chase=False)
        cql.run([cql("log_delete", (_bucket(seq), seq), log=True) for seq in seqs if seq],
                "erase consent")
        cql.settle({entry_id: cql("entry_delete", (entry_id,), lwt=True) for entry_id in erased},
                   "erase consent")
        cql.run([cql("history_delete", row) for row in other_rows], "erase consent")
        cql.run([cql("history_delete", row) for row in own_rows], "erase consent")
        return len(erased)

    def _delete_states(self, expected: dict[Key, str], chase: bool) -> None:
        """Delete the state of each key if it still holds the expected entry; with
        ``chase``, whatever entry it holds (read again at ``SERIAL`` when it moved)."""
        cql = self._cql
        pending = dict(expected)
        for attempt in range(MAX_ROUNDS):
            if not pending:
                return
            applied = cql.settle({key: cql("current_delete", (*key, entry_id), lwt=True)
                                  for key, entry_id in pending.items()}, "erase consent")
            lost = [key for key, ok in applied.items() if not ok]
            if not chase or not lost:
                return
            pending = {key: st.entry_id for key, st in
                       self._current_serial(lost, "erase consent").items() if st is not None}
            if pending:
                _backoff(attempt)
        raise _contended("erase consent", len(pending))

    # --- purposes --------------------------------------------------------------------

    def _read_purposes(self, serial: bool) -> tuple[int | None, dict[tuple[str, int], Purpose]]:
        """(registry version, None when no purpose was ever defined; every version by
        (name, version)), in one read of the partition."""
        if serial:
            rows = self._cql.serial_reads("purposes", [()], "read purposes")[0]
        else:
            rows = self._cql.run([self._cql("purposes")], "read purposes")[0]
        version, versions = None, {}
        for kind, name, number, value, doc in rows:
            if kind == "c":
                version = value or 0
            elif kind == "v" and doc is not None:
                versions[(name, number)] = _purpose(doc)
        return version, versions

    @staticmethod
    def _latest(versions: dict[tuple[str, int], Purpose]) -> dict[str, Purpose]:
        latest: dict[str, Purpose] = {}
        for (name, _), p in sorted(versions.items()):
            latest[name] = p
        return latest

    def purposes(self) -> PurposeRegistry:
        version, versions = self._read_purposes(serial=False)
        if not versions:
            return registry_of(default_purposes(), 0)
        return registry_of(self._latest(versions).values(), version or 0)

    def purpose_versions(self, name: str) -> list[Purpose]:
        rows = self._cql.run([self._cql("purpose_versions", (name,))], "read purposes")[0]
        return [_purpose(doc) for (doc,) in rows]

    def define_purposes(self, purposes: Iterable[Purpose], author: str, at: float
                        ) -> list[Purpose]:
        cql = self._cql
        purposes = list(purposes)
        sent: list[Purpose] = []  # the rows of a batch whose round timed out
        added: list[Purpose] = []
        for attempt in range(MAX_ROUNDS):
            version, versions = self._read_purposes(serial=True)
            if sent and all(versions.get((p.name, p.version)) == p for p in sent):
                return added  # the batch whose answer was lost landed
            latest = self._latest(versions)
            rows: list[Purpose] = []
            if not latest:  # the defaults become version 1 before anything changes them
                for p in default_purposes():
                    p = dataclasses.replace(p, version=1, defined_at=at, author="default")
                    rows.append(p)
                    latest[p.name] = p
            added = []
            for p in purposes:
                old = latest.get(p.name)
                if old is not None and old.same_rules(p):
                    continue
                p = dataclasses.replace(p, version=(old.version if old else 0) + 1,
                                        defined_at=at, author=author)
                rows.append(p)
                latest[p.name] = p
                added.append(p)
            if not rows:
                return []
            batch = cql.batch(lwt=True)
            if version is None:
                batch.add(cql("purposes_init", (len(rows),)))
            else:
                batch.add(cql("purposes_bump", (version + len(rows), version)))
            for p in rows:
                batch.add(cql("purpose_put", (p.name, p.version, orjson.dumps(p))))
            applied = cql.conditional([batch], "define purposes")[0]
            if applied:
                return added
            sent = rows if applied is None else []
            _backoff(attempt)
        raise _contended("define purposes", 1)

    # --- suppression -----------------------------------------------------------------

    def suppress(self, suppressions: Iterable[Suppression]) -> int:
        cql = self._cql
        todo: dict[str, Suppression] = {}
        for s in suppressions:
            todo.setdefault(s.value_hash, s)
        if not todo:
            return 0
        # the request's row first: unsuppress finds every hash its request may have added
        cql.run([cql("by_request_put", (s.request_id, s.value_hash)) for s in todo.values()],
                "suppress")
        token = self._clock.next_uuid()
        return cql.insert_new(
            "suppression_put", "suppression_token",
            {h: (h, s.reason, s.request_id, s.at, token) for h, s in todo.items()},
            dict.fromkeys(todo, token), "suppress")

    def suppressed(self, value_hashes: Iterable[str]) -> dict[str, str]:
        hashes = list(dict.fromkeys(value_hashes))
        out: dict[str, str] = {}
        for rows in self._cql.run([self._cql("suppressions_in", (chunk,))
                                   for chunk in chunks(hashes, IN_CHUNK)], "read suppressions"):
            out.update(rows)
        return out

    def count_suppressed(self, events_by_reason: dict[str, int]) -> None:
        self._cql.run([self._cql("count_add", (n, reason))
                       for reason, n in events_by_reason.items() if n], "count suppressed")

    def suppressed_counts(self) -> dict[str, int]:
        rows = self._cql.run([self._cql("counts")], "read suppressed counts")[0]
        return dict(rows)

    def unsuppress(self, request_id: str) -> int:
        cql = self._cql
        hashes = [h for (h,) in cql.run([cql("by_request", (request_id,))], "unsuppress")[0]]
        removed = cql.settle({h: cql("suppression_delete", (h, request_id), lwt=True)
                              for h in hashes}, "unsuppress")
        cql.run([cql("by_request_delete", (request_id,))], "unsuppress")
        return sum(1 for ok in removed.values() if ok)

    # --- forget requests and audit ---------------------------------------------------

    def put_forget_request(self, request: ForgetRequest) -> None:
        cql = self._cql
        batch = cql.batch()
        batch.add(cql("forget_put", (request.request_id, request.subject_hash,
                                     request.requested_at, orjson.dumps(request))))
        batch.add(cql("forget_of_put", (request.subject_hash, request.requested_at,
                                        request.request_id)))
        batch.add(cql("forget_open_put" if request.status in _OPEN else "forget_open_delete",
                      (request.requested_at, request.request_id)))
        cql.run([batch], "put forget request")

    def forget_request(self, request_id: str) -> ForgetRequest | None:
        rows = self._cql.run([self._cql("forget", (request_id,))], "read forget request")[0]
        return ForgetRequest(**orjson.loads(rows[0][0])) if rows else None

    def forget_requests_of(self, subject_hash: str) -> list[ForgetRequest]:
        ids = self._cql.run([self._cql("forget_ids_of", (subject_hash,))],
                            "read forget requests")[0]
        return self._forget_requests([r for (r,) in ids],
                                     lambda r: r.subject_hash == subject_hash)

    def open_forget_requests(self) -> list[ForgetRequest]:
        ids = self._cql.run([self._cql("forget_open_ids")], "read forget requests")[0]
        return self._forget_requests([r for (r,) in ids], lambda r: r.status in _OPEN)

    def _forget_requests(self, ids: list[str], keep: Callable[[ForgetRequest], bool]
                         ) -> list[ForgetRequest]:
        """The stored requests of ``ids`` that ``keep`` accepts (an index row may be
        stale: a request put again with another subject hash or time leaves its old row),
        oldest first."""
        found = {}
        for rows in self._cql.run([self._cql("forgets_in", (chunk,))
                                   for chunk in chunks(list(dict.fromkeys(ids)), IN_CHUNK)],
                                  "read forget requests"):
            for (doc,) in rows:
                request = ForgetRequest(**orjson.loads(doc))
                if keep(request):
                    found[request.request_id] = request
        return sorted(found.values(), key=lambda r: (r.requested_at, r.request_id))

    def list_forget_requests(self, status: str = "", before: tuple[float, str] | None = None,
                             limit: int = 100) -> list[ForgetRequest]:
        """Reads every stored request (a scan of ``forget_requests``: one row per request
        ever made, a few per day) and pages in memory."""
        rows = self._cql.run([self._cql("forgets_all")], "read forget requests")[0]
        found = [r for r in (ForgetRequest(**orjson.loads(doc)) for (doc,) in rows)
                 if (not status or r.status == status)
                 and (before is None or (r.requested_at, r.request_id) < before)]
        found.sort(key=lambda r: (r.requested_at, r.request_id), reverse=True)
        return found[:max(limit, 0)]

    def audit(self, entry: AuditEntry) -> None:
        cql = self._cql
        at = self._clock.next_uuid()
        day = int(uuid_seconds(at) // _DAY)
        batch = cql.batch()
        batch.add(cql("audit_day_put", (day,)))
        doc = orjson.dumps(entry)
        batch.add(cql("audit_put", (day, at, doc)))
        if entry.target:
            batch.add(cql("audit_target_put", (entry.target, at, doc)))
        cql.run([batch], "audit")

    def audit_entries(self, limit: int = 1000) -> list[AuditEntry]:
        cql = self._cql
        if limit <= 0:
            return []
        docs: list[bytes] = []
        for (day,) in cql.run([cql("audit_days")], "read audit")[0]:
            rows = cql.run([cql("audit", (day, limit - len(docs)))], "read audit")[0]
            docs.extend(doc for (doc,) in rows)
            if len(docs) >= limit:
                break
        return [AuditEntry(**orjson.loads(doc)) for doc in reversed(docs)]

    def audit_of(self, target: str, limit: int = 10_000) -> list[AuditEntry]:
        cql = self._cql
        rows = cql.run([cql("audit_of", (target, limit))], "read audit")[0]
        return [AuditEntry(**orjson.loads(doc)) for (doc,) in reversed(list(rows))]

    def close(self) -> None:
        cluster, self._cluster = self._cluster, None
        if cluster is not None:
            cluster.shutdown()
