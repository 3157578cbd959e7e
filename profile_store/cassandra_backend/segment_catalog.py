"""Segment definitions in the global keyspace (see
:mod:`idgraph.profile_store.segment_state` for the contract).

Definitions are no personal data, so they live in ``{prefix}_global`` (replicated to every
data centre of ``region_datacenters``), in one partition of ``segment_catalog``:

==========================  ==============================================================
clustering (kind, name,     what
version)
==========================  ==============================================================
``('c', '', 0)``            ``value``: the catalog version (every define or delete adds 1)
``('h', NAME, 0)``          ``doc``: the current version of ``NAME`` (a deleting one when
                            deleted)
``('v', NAME, VERSION)``    ``doc``: every version, kept
==========================  ==============================================================

A define or delete is one conditional batch on that partition: ``UPDATE ... SET value =
V + 1 ... IF value = V`` with the two definition rows, a lightweight transaction at
``SERIAL`` (a Paxos round over every data centre: concurrent definers anywhere are
serialised, and a change needs a quorum of all the catalog's replicas). Before it, the
catalog version and the name's current row are read at ``SERIAL`` too, so a change another
definer left in flight is seen. When the condition fails, or the version read is not the
one the caller validated against, :class:`CatalogChangedError`. A write that times out may
or may not have landed (BackendError): the caller reads the catalog again.

Readers (the store's ``segment_catalog``/``segment_versions``, :func:`read_catalog`,
:func:`read_versions`) read the partition at the configured consistency: the catalog
version and the current rows in one slice, so in one snapshot.

:class:`CassandraSegmentCatalog` is opened on its own (``idgraph serve`` holds one while its
profile store is read-only): it connects with no region, creates the global keyspace and
the table when missing, and the catalog version row when absent. Changes need the
``SERIAL`` quorum (with the test cluster's one replica per data centre: both up); reads
of the catalog do not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from idgraph.core.errors import translate_driver_errors
from idgraph.profile_store.cassandra_backend import schema as q
from idgraph.profile_store.cassandra_backend.connection import (
    Statements,
    backend_error,
    connect,
    describe,
    driver_error_types,
    ensure_schema,
    global_replication,
    profile_name,
)
from idgraph.profile_store.cassandra_backend.settings import CassandraSettings
from idgraph.profile_store.segment_state import (
    CatalogChangedError,
    SegmentCatalog,
    SegmentDefinition,
)

WHAT = "segment catalog"


def _definition(doc: bytes) -> SegmentDefinition:
    return SegmentDefinition(**orjson.loads(doc))


def read_catalog(db: Statements) -> tuple[int, dict[str, SegmentDefinition]]:
    """The catalog version and the live definitions (current version of each name, unless
    it deleted it), by name, read in one slice of the catalog partition."""
    rows = db.run([(None, "catalog", None)], "read segment catalog")[0]
    version, live = 0, {}
    for kind, _name, value, doc in rows:
        if kind == "c":
            version = value or 0
        elif kind == "h" and doc is not None:
            definition = _definition(doc)
            if not definition.deleted:
                live[definition.name] = definition
    return version, dict(sorted(live.items()))


def read_versions(db: Statements, name: str) -> list[SegmentDefinition]:
    """Every version of ``name``, oldest first."""
    rows = db.run([(None, "catalog_versions", (name,))], "read segment versions")[0]
    return [_definition(doc) for (doc,) in rows]


class CassandraSegmentCatalog(SegmentCatalog):
    """The segment definitions of the cluster ``settings`` describes (module docstring)."""

    driver_errors = driver_error_types()
    describe_driver_error = staticmethod(describe)

    def __init__(self, settings: CassandraSettings) -> None:
        """Connect, create what is missing. ConfigError for settings that cannot work,
        BackendError when the cluster cannot be reached or the schema not made."""
        from cassandra import ConsistencyLevel

        self.settings = settings
        self._serial = ConsistencyLevel.SERIAL
        self._ks = q.global_keyspace(settings.keyspace_prefix)
        self._cluster, self._session = connect(settings, [])
        self._db = Statements(self._session, lambda _region: self._ks, settings.concurrency)
        try:
            ensure_schema(self._cluster, self._session,
                          [(None, self._ks, {"segment_catalog": q.GLOBAL_DDL["segment_catalog"]},
                            global_replication(settings))], readonly=False, what=WHAT)
            # the version row is made once (a lightweight transaction: it needs every data
            # centre's quorum); later opens only read it
            if not self._db.run([(None, "catalog_version", None)], "open")[0]:
                self._execute(self._bound("catalog_init", serial_read=False))
        except BaseException as exc:
            self._cluster.shutdown()
            if isinstance(exc, self.driver_errors):  # not a seam method: no boundary here
                raise backend_error("open", None, exc, WHAT) from exc
            raise

    def _bound(self, name: str, values: tuple = (), serial_read: bool = True) -> Any:
        """Statement ``name`` bound to ``values`` with its Paxos phase at ``SERIAL`` and,
        for a read (``serial_read``), read at ``SERIAL`` too: it sees a change another
        definer left in flight."""
        bound = self._db.prepared(None, name).bind(values)
        bound.serial_consistency_level = self._serial
        if serial_read:
            bound.consistency_level = self._serial
        return bound

    def _execute(self, statement: Any) -> Any:
        return self._session.execute(statement, execution_profile=profile_name(None))

    def add_version(self, name: str, catalog_version: int,
                    build: Callable[[int], SegmentDefinition]) -> SegmentDefinition:
        from cassandra.query import BatchStatement

        rows = list(self._execute(self._bound("catalog_version")))
        current = rows[0][0] if rows else 0
        if current != catalog_version:
            raise _changed(current, catalog_version)
        head = list(self._execute(self._bound("catalog_head", (name,))))
        definition = build(_definition(head[0][0]).version if head else 0)
        doc = orjson.dumps(definition)
        batch = BatchStatement(serial_consistency_level=self._serial)
        batch.add(self._db.prepared(None, "catalog_bump"), (catalog_version + 1, catalog_version))
        batch.add(self._db.prepared(None, "catalog_put"), ("h", name, 0, doc))
        batch.add(self._db.prepared(None, "catalog_put"), ("v", name, definition.version, doc))
        result = self._execute(batch)
        row = result.one()
        if row is None or not row[0]:  # not applied: the row holds the current value
            names = list(result.column_names or [])
            now = row[names.index("value")] if row is not None and "value" in names else None
            raise _changed(now, catalog_version)
        return definition

    def close(self) -> None:
        cluster, self._cluster = self._cluster, None
        if cluster is not None:
            cluster.shutdown()


def _changed(current: object, expected: int) -> CatalogChangedError:
    return CatalogChangedError(
        f"segment definitions changed meanwhile (catalog version {current}, expected "
        f"{expected}); read them again")


translate_driver_errors(CassandraSegmentCatalog, WHAT, ["define", "delete", "close"])
