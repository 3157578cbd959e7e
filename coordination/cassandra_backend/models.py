"""The model registry in the deployment's global keyspace (``{prefix}_global``, replicated
to every data centre), so a model trained on one machine is every writer's.

===================  ============================  ==========================================
table                primary key                   columns
===================  ============================  ==========================================
``model_versions``   ``((registry), number)``      ``document_id``, ``trained_at``
``model_documents``  ``((document_id))``           ``model`` (Splink's JSON), ``report``
                                                   (the training report, JSON)
===================  ============================  ==========================================

A version is a row of ``model_versions`` (one partition, ``registry = 'models'``,
clustered by number): :meth:`~CassandraModelRegistry.versions` and
:meth:`~CassandraModelRegistry.latest` read that partition alone (``latest`` one row, so a
writer can ask before every batch), never a model. Saving writes the model and its report
under a new random ``document_id`` first, then claims the next number with ``INSERT ... IF
NOT EXISTS`` (a lightweight transaction at serial consistency ``SERIAL``: one winner across
data centres) pointing at it; a save that loses the race claims the next number again. So
two machines saving at once get two versions, a version once claimed is never rewritten,
and a version visible has its model (a saver dying between the two writes leaves an
unreferenced document, never a version without one).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import asdict

from idgraph.coordination.base import ModelRegistry
from idgraph.coordination.cassandra_backend.session import GlobalSession
from idgraph.core.errors import BackendError, NotFoundError
from idgraph.profile_store.cassandra_backend.settings import CassandraSettings
from idgraph.resolver.probabilistic.training import TrainingReport

WHAT = "model registry"
REGISTRY = "models"
CLAIM_ATTEMPTS = 50  # concurrent saves each retry with the next number

DDL = {
    "model_versions": "CREATE TABLE IF NOT EXISTS {ks}.model_versions (registry text, "
                      "number int, document_id text, trained_at double, "
                      "PRIMARY KEY ((registry), number))",
    "model_documents": "CREATE TABLE IF NOT EXISTS {ks}.model_documents (document_id text "
                       "PRIMARY KEY, model text, report text)",
}

_VERSION = re.compile(r"v(\d{4,})")


def version_name(number: int) -> str:
    return f"v{number:04d}"


class CassandraModelRegistry(ModelRegistry):
    """Trained models in the global keyspace of the cluster ``settings`` describes."""

    def __init__(self, settings: CassandraSettings) -> None:
        """Connect and create the missing tables; BackendError when the cluster cannot be
        reached."""
        self._db = GlobalSession(settings, DDL, WHAT)
        prepare = self._db.prepare
        self._numbers = prepare("SELECT number FROM {ks}.model_versions WHERE registry = ?")
        self._newest = prepare("SELECT number FROM {ks}.model_versions WHERE registry = ? "
                               "ORDER BY number DESC LIMIT 1")
        self._document_of = prepare("SELECT document_id FROM {ks}.model_versions "
                                    "WHERE registry = ? AND number = ?")
        self._claim = prepare("INSERT INTO {ks}.model_versions (registry, number, document_id, "
                              "trained_at) VALUES (?, ?, ?, ?) IF NOT EXISTS")
        self._write = prepare("INSERT INTO {ks}.model_documents (document_id, model, report) "
                              "VALUES (?, ?, ?)")
        self._model = prepare("SELECT model FROM {ks}.model_documents WHERE document_id = ?")
        self._report = prepare("SELECT report FROM {ks}.model_documents WHERE document_id = ?")

    def versions(self) -> list[str]:
        """Saved versions, oldest first."""
        (rows,) = self._db.run([(self._numbers, (REGISTRY,))], "list model versions")
        return [version_name(n) for (n,) in rows]

    def latest(self) -> str | None:
        """The newest version (one row read), or None before the first is saved."""
        (rows,) = self._db.run([(self._newest, (REGISTRY,))], "read the newest model version")
        return version_name(rows[0][0]) if rows else None

    def save(self, model: dict, report: TrainingReport, trained_on: str) -> str:
        """Store a new version (the next number free across every machine); returns its
        name."""
        document_id = uuid.uuid4().hex
        trained_at = time.time()
        meta = {"trained_at": trained_at, "trained_on": trained_on, **asdict(report)}
        self._db.run([(self._write, (document_id, json.dumps(model), json.dumps(meta)))],
                     "save model")
        latest = self.latest()
        number = int(latest[1:]) + 1 if latest else 1
        for _ in range(CLAIM_ATTEMPTS):
            ((applied, seen),) = self._db.run(
                [(self._claim, (REGISTRY, number, document_id, trained_at))],
                "claim model version", with_names=True)
            if applied or seen.get("document_id") == document_id:  # (a timed-out attempt)
                return version_name(number)
            number += 1  # another machine claimed it: the next one
        raise BackendError(f"{WHAT}: save model failed: no free version after "
                           f"{CLAIM_ATTEMPTS} attempts")

    def _document(self, version: str) -> str | None:
        found = _VERSION.fullmatch(version)
        if found is None:
            return None
        (rows,) = self._db.run([(self._document_of, (REGISTRY, int(found.group(1))))],
                               "read model version")
        return rows[0][0] if rows else None

    def load(self, version: str | None = None) -> tuple[str, dict]:
        """``(version, model dict)``; the newest when ``version`` is None."""
        version = version or self.latest()
        if version is None:
            raise NotFoundError("no trained model in the registry; run `idgraph train`")
        document_id = self._document(version)
        rows = self._db.run([(self._model, (document_id,))], "load model")[0] \
            if document_id else []
        if not rows:
            raise NotFoundError(f"model {version!r} not found in the registry "
                                f"(have: {', '.join(self.versions()) or 'none'})")
        return version, json.loads(rows[0][0])

    def report(self, version: str) -> dict:
        """The training report of a version ({} when it has none)."""
        document_id = self._document(version)
        if document_id is None:
            return {}
        (rows,) = self._db.run([(self._report, (document_id,))], "read model report")
        return {"version": version, **json.loads(rows[0][0])} if rows and rows[0][0] else {}

    def close(self) -> None:
        self._db.close()
