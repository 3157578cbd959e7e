"""API keys in the deployment's global keyspace (``{prefix}_global``, replicated to every
data centre), so every server of every machine reads the same keys.

==================  ====================  ==========================================
table               primary key           columns
==================  ====================  ==========================================
``api_keys``        ``((key_id))``        ``created_at``, ``doc`` (the key as JSON)
``api_key_used``    ``((key_id))``        ``at`` (written with ``USING TIMESTAMP``
                                          its time, so the latest use wins)
==================  ====================  ==========================================

A new key is inserted with ``IF NOT EXISTS`` (a lightweight transaction), so two
creators of one ID cannot both win; revocation and rotation read the row, then overwrite it at the
configured consistency (``LOCAL_QUORUM`` by default: a server in another data centre
reads the change once it has replicated there). Listing reads the whole table: keys
number in the hundreds, not millions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from idgraph.auth.keys import ApiKey, KeyNotFoundError, KeyRequestError
from idgraph.auth.store import KeyStore
from idgraph.profile_store.cassandra_backend import schema as q
from idgraph.profile_store.cassandra_backend.connection import (
    backend_error,
    connect,
    driver_error_types,
    ensure_schema,
    global_replication,
)
from idgraph.profile_store.cassandra_backend.settings import CassandraSettings

WHAT = "key store"

DDL = {
    "api_keys": "CREATE TABLE IF NOT EXISTS {ks}.api_keys (key_id text PRIMARY KEY, "
                "created_at double, doc text)",
    "api_key_used": "CREATE TABLE IF NOT EXISTS {ks}.api_key_used (key_id text PRIMARY KEY, "
                    "at double)",
}


class CassandraKeyStore(KeyStore):
    """Keys in the global keyspace of the cluster ``settings`` describes."""

    def __init__(self, settings: CassandraSettings) -> None:
        """Connect and create the tables that are missing; BackendError when the cluster
        cannot be reached."""
        self._ks = q.global_keyspace(settings.keyspace_prefix)
        self._errors = driver_error_types()
        self._cluster, self._session = connect(settings, [])
        try:
            ensure_schema(self._cluster, self._session,
                          [(None, self._ks, DDL, global_replication(settings))],
                          readonly=False, what=WHAT)
            ks = self._ks
            prepare = self._session.prepare
            self._insert = prepare(f"INSERT INTO {ks}.api_keys (key_id, created_at, doc) "
                                   "VALUES (?, ?, ?) IF NOT EXISTS")
            self._update = prepare(f"UPDATE {ks}.api_keys SET doc = ? WHERE key_id = ?")
            self._get = prepare(f"SELECT doc FROM {ks}.api_keys WHERE key_id = ?")
            self._all = prepare(f"SELECT doc FROM {ks}.api_keys")
            self._used = prepare(f"INSERT INTO {ks}.api_key_used (key_id, at) VALUES (?, ?) "
                                 "USING TIMESTAMP ?")
            self._read_used = prepare(f"SELECT key_id, at FROM {ks}.api_key_used "
                                      "WHERE key_id IN ?")
        except BaseException as exc:
            self._cluster.shutdown()
            if isinstance(exc, self._errors):
                raise backend_error("open", None, exc, WHAT) from exc
            raise

    def _run(self, operation: str, statement: Any, values: tuple) -> list:
        try:
            return list(self._session.execute(statement, values))
        except self._errors as exc:
            raise backend_error(operation, None, exc, WHAT) from exc

    def insert(self, key: ApiKey) -> None:
        rows = self._run("insert key", self._insert,
                         (key.key_id, key.created_at, key.to_json().decode()))
        if not rows[0][0]:
            raise KeyRequestError(f"a key with ID {key.key_id} exists")

    def get(self, key_id: str) -> ApiKey | None:
        rows = self._run("read key", self._get, (key_id,))
        return ApiKey.from_json(rows[0][0]) if rows else None

    def replace(self, key: ApiKey) -> None:
        # keys are never deleted, so a key read present stays present for the update
        # (Cassandra 2.1 has no UPDATE ... IF EXISTS)
        if self.get(key.key_id) is None:
            raise KeyNotFoundError(f"no key with ID {key.key_id}")
        self._run("update key", self._update, (key.to_json().decode(), key.key_id))

    def list_keys(self) -> list[ApiKey]:
        found = [ApiKey.from_json(row[0]) for row in self._run("list keys", self._all, ())]
        return sorted(found, key=lambda k: (k.created_at, k.key_id))

    def mark_used(self, used: Mapping[str, float]) -> None:
        for key_id, at in used.items():
            self._run("mark key used", self._used, (key_id, at, int(at * 1_000_000)))

    def last_used(self, key_ids: Iterable[str]) -> dict[str, float]:
        ids = list(key_ids)
        if not ids:
            return {}
        return {row[0]: row[1] for row in self._run("read key use", self._read_used, (ids,))}

    def close(self) -> None:
        self._cluster.shutdown()
