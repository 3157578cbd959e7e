"""One connection to the global keyspace for a coordination backend: its tables created
(or required), its statements prepared, run concurrently, every driver error turned into
:class:`BackendError` naming the backend and the operation (never a key or a value)."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from idgraph.core.errors import BackendError
from idgraph.profile_store.cassandra_backend import schema as q
from idgraph.profile_store.cassandra_backend.connection import (
    backend_error,
    connect,
    driver_error_types,
    ensure_schema,
    global_replication,
)
from idgraph.profile_store.cassandra_backend.settings import CassandraSettings

CONDITIONAL_ATTEMPTS = 5

Call = tuple[Any, tuple]
"""(prepared statement, bind values)."""


class GlobalSession:
    """A session on ``{prefix}_global`` with the tables ``ddl`` names (table -> CQL with
    ``{ks}`` for the keyspace)."""

    def __init__(self, settings: CassandraSettings, ddl: Mapping[str, str], what: str,
                 create: bool = True) -> None:
        """Connect and create the missing tables (without ``create``: BackendError when
        the keyspace or a table is missing)."""
        self.what = what
        self.keyspace = q.global_keyspace(settings.keyspace_prefix)
        self._errors = driver_error_types()
        from cassandra import ReadTimeout, WriteTimeout

        self._timeouts = (ReadTimeout, WriteTimeout)
        self._concurrency = settings.concurrency
        self._cluster, self._session = connect(settings, [])
        try:
            ensure_schema(self._cluster, self._session,
                          [(None, self.keyspace, dict(ddl), global_replication(settings))],
                          readonly=not create, what=what)
        except BaseException as exc:
            self._cluster.shutdown()
            if isinstance(exc, self._errors):
                raise backend_error("open", None, exc, what) from exc
            raise

    @staticmethod
    def has_tables(settings: CassandraSettings, ddl: Mapping[str, str], what: str) -> bool:
        """Whether the global keyspace has every table of ``ddl`` (BackendError when the
        cluster cannot be reached)."""
        cluster, _ = connect(settings, [])
        try:
            keyspace = cluster.metadata.keyspaces.get(q.global_keyspace(settings.keyspace_prefix))
            return keyspace is not None and all(t in keyspace.tables for t in ddl)
        finally:
            cluster.shutdown()

    def prepare(self, cql: str) -> Any:
        """``cql`` (``{ks}`` for the keyspace) prepared."""
        try:
            return self._session.prepare(cql.format(ks=self.keyspace))
        except self._errors as exc:
            self.close()
            raise backend_error("prepare", None, exc, self.what) from exc

    def run(self, calls: Sequence[Call], operation: str, with_names: bool = False) -> list:
        """Run ``calls`` with at most ``cassandra.concurrency`` in flight; per call, in
        order, its rows (every page), or with ``with_names`` (a conditional statement)
        ``(applied, {column: value} of the row it saw)``. BackendError naming
        ``operation`` for the first call that failed (the others have run).

        A conditional statement that timed out (Paxos contention between machines makes
        2.1 answer WriteTimeout, its outcome unknown) is sent again, up to
        :data:`CONDITIONAL_ATTEMPTS` times: the callers' conditions make that safe, and
        they tell their own earlier success by what the row holds."""
        results: list = [None] * len(calls)
        pending = list(range(len(calls)))
        failure: BaseException | None = None
        for attempt in range(CONDITIONAL_ATTEMPTS if with_names else 1):
            if attempt:
                time.sleep(random.uniform(0.02, 0.1) * 2 ** attempt)
            failed: list[tuple[int, BaseException]] = []
            for start in range(0, len(pending), self._concurrency):
                part = pending[start:start + self._concurrency]
                futures = []
                for i in part:
                    statement, values = calls[i]
                    try:
                        futures.append(self._session.execute_async(statement, values))
                    except self._errors as exc:
                        futures.append(exc)
                for i, future in zip(part, futures, strict=True):
                    try:
                        if isinstance(future, BaseException):
                            raise future
                        rows = future.result()
                        results[i] = _outcome(rows) if with_names else list(rows)
                    except self._errors as exc:
                        failed.append((i, exc))
            retry = [i for i, exc in failed if isinstance(exc, self._timeouts)]
            failure = next((exc for _, exc in failed if not isinstance(exc, self._timeouts)),
                           failed[0][1] if failed else None)
            if not failed or len(retry) < len(failed):
                break
            pending = retry
        if failure is not None:
            raise backend_error(operation, None, failure, self.what) from failure
        return results

    def stream(self, statement: Any, values: tuple, page_size: int,
               operation: str) -> Iterator[tuple]:
        """The rows of one query, fetched ``page_size`` at a time as they are consumed."""
        try:
            bound = statement.bind(values)
            bound.fetch_size = page_size
            rows = iter(self._session.execute(bound))
            while True:
                try:
                    yield next(rows)
                except StopIteration:
                    return
        except self._errors as exc:
            raise backend_error(operation, None, exc, self.what) from exc

    def close(self) -> None:
        self._cluster.shutdown()


def _outcome(rows: Any) -> tuple[bool, dict[str, Any]]:
    """``(applied, the row the condition saw)`` of a conditional statement's result."""
    names = list(rows.column_names or [])
    first = rows.one()
    if first is None:
        raise BackendError("a conditional statement returned no row")
    seen = dict(zip(names, first, strict=False))
    return bool(seen.pop("[applied]", first[0])), seen
