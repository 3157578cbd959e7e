"""One connection for a coordination backend: its tables in the global keyspace and, for
state that names records (personal data), in the keyspace of each region it serves;
created (or required), its statements prepared, run concurrently, every driver error
turned into :class:`BackendError` naming the backend and the operation (never a key or a
value).

A region's statements run in that region's execution profile (coordinated in its data
centre, as the profile store's: :mod:`idgraph.profile_store.cassandra_backend.connection`),
so a region's rows never pass through another data centre; the global keyspace holds no
personal data."""

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
    profile_name,
)
from idgraph.profile_store.cassandra_backend.settings import CassandraSettings

CONDITIONAL_ATTEMPTS = 5

Call = tuple[Any, tuple]
"""(prepared statement, bind values)."""


class GlobalSession:
    """A session on ``{prefix}_global`` with the tables ``ddl`` names (table -> CQL with
    ``{ks}`` for the keyspace) and, for each of ``regions``, on ``{prefix}_{region}`` with
    the tables ``region_ddl`` names."""

    def __init__(self, settings: CassandraSettings, ddl: Mapping[str, str], what: str,
                 create: bool = True, regions: Sequence[str] = (),
                 region_ddl: Mapping[str, str] | None = None) -> None:
        """Connect and create the missing keyspaces and tables (without ``create``:
        BackendError when one is missing)."""
        self.what = what
        self.keyspace = q.global_keyspace(settings.keyspace_prefix)
        self.regions = tuple(dict.fromkeys(regions))
        self._region_keyspaces = {r: q.region_keyspace(settings.keyspace_prefix, r)
                                  for r in self.regions}
        self._errors = driver_error_types()
        from cassandra import ReadTimeout, WriteTimeout

        self._timeouts = (ReadTimeout, WriteTimeout)
        self._concurrency = settings.concurrency
        self._cluster, self._session = connect(settings, self.regions)
        targets = [(None, self.keyspace, dict(ddl), global_replication(settings))]
        targets += [(r, ks, dict(region_ddl or {}), dict(settings.region_datacenters[r]))
                    for r, ks in self._region_keyspaces.items()]
        try:
            ensure_schema(self._cluster, self._session, targets, readonly=not create,
                          what=what)
        except BaseException as exc:
            self._cluster.shutdown()
            if isinstance(exc, self._errors):
                raise backend_error("open", None, exc, what) from exc
            raise

    @staticmethod
    def has_tables(settings: CassandraSettings, ddl: Mapping[str, str], what: str,
                   regions: Sequence[str] = (),
                   region_ddl: Mapping[str, str] | None = None) -> bool:
        """Whether the global keyspace has every table of ``ddl`` and each region's
        keyspace every table of ``region_ddl`` (BackendError when the cluster cannot be
        reached)."""
        cluster, _ = connect(settings, [])
        try:
            wanted = [(q.global_keyspace(settings.keyspace_prefix), ddl)]
            wanted += [(q.region_keyspace(settings.keyspace_prefix, r), region_ddl or {})
                       for r in regions]
            for name, tables in wanted:
                keyspace = cluster.metadata.keyspaces.get(name)
                if keyspace is None or any(t not in keyspace.tables for t in tables):
                    return False
            return True
        finally:
            cluster.shutdown()

    def prepare(self, cql: str, region: str | None = None) -> Any:
        """``cql`` prepared, ``{ks}`` naming the global keyspace (or ``region``'s)."""
        keyspace = self.keyspace if region is None else self._region_keyspaces[region]
        try:
            return self._session.prepare(cql.format(ks=keyspace))
        except self._errors as exc:
            self.close()
            raise backend_error("prepare", region, exc, self.what) from exc

    def run(self, calls: Sequence[Call], operation: str, with_names: bool = False,
            region: str | None = None) -> list:
        """Run ``calls`` (statements of the global keyspace, or all of ``region``'s, sent
        in that region's execution profile) with at most ``cassandra.concurrency`` in
        flight; per call, in order, its rows (every page), or with ``with_names`` (a
        conditional statement) ``(applied, {column: value} of the row it saw)``.
        BackendError naming ``operation`` (and the region) for the first call that failed
        (the others have run).

        A conditional statement that timed out (Paxos contention between machines makes
        2.1 answer WriteTimeout, its outcome unknown) is sent again, up to
        :data:`CONDITIONAL_ATTEMPTS` times: the callers' conditions make that safe, and
        they tell their own earlier success by what the row holds."""
        profile = profile_name(region)
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
                        futures.append(self._session.execute_async(
                            statement, values, execution_profile=profile))
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
            raise backend_error(operation, region, failure, self.what) from failure
        return results

    def stream(self, statement: Any, values: tuple, page_size: int,
               operation: str, region: str | None = None) -> Iterator[tuple]:
        """The rows of one query (of the global keyspace, or ``region``'s), fetched
        ``page_size`` at a time as they are consumed."""
        try:
            bound = statement.bind(values)
            bound.fetch_size = page_size
            rows = iter(self._session.execute(bound, execution_profile=profile_name(region)))
            while True:
                try:
                    yield next(rows)
                except StopIteration:
                    return
        except self._errors as exc:
            raise backend_error(operation, region, exc, self.what) from exc

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
