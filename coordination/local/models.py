"""The local model registry: ``DATA_DIR/models/model-vNNNN.json`` (:class:`DirectoryModelRegistry`).

Each version is Splink's model JSON exactly as ``save_model_to_json`` writes it (so
``Linker(df, "model-v0003.json")`` loads it), plus ``model-vNNNN.report.json`` with the
training report. Versions only grow; a saved version is never rewritten: each is claimed
first by creating ``.model-vNNNN.claim`` exclusively (removed once the model is there). Links record the
version that produced them (``probabilistic:v0003``).
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict
from pathlib import Path

from idgraph.coordination.base import ModelRegistry
from idgraph.core.errors import NotFoundError
from idgraph.core.private_files import make_private_dir, open_private, open_private_fd
from idgraph.resolver.probabilistic.training import TrainingReport

_NAME = re.compile(r"model-(v\d{4,})\.json")


class DirectoryModelRegistry(ModelRegistry):
    """Models as files in one directory (the model file appears last, complete)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def versions(self) -> list[str]:
        """Saved versions, oldest first."""
        if not self.directory.is_dir():
            return []
        found = [m.group(1) for p in self.directory.iterdir() if (m := _NAME.fullmatch(p.name))]
        return sorted(found, key=lambda v: int(v[1:]))

    def path(self, version: str) -> Path:
        return self.directory / f"model-{version}.json"

    def save(self, model: dict, report: TrainingReport, trained_on: str) -> str:
        """Store a new version; returns its name (``v0001``, ``v0002``...)."""
        # owner-only, as everything in the data dir: models are fitted on personal data
        make_private_dir(self.directory)
        version = self._claim()
        tmp = self.directory / f".model-{version}.json.tmp"
        with open_private(tmp, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(model, indent=2))
        meta = {"version": version, "trained_at": time.time(), "trained_on": trained_on,
                **asdict(report)}
        with open_private(self.directory / f"model-{version}.report.json", "w",
                          encoding="utf-8") as fh:
            fh.write(json.dumps(meta, indent=2))
        os.replace(tmp, self.path(version))  # the model file appears last, complete
        self._claim_path(version).unlink()  # the model file holds the version now
        return version

    def _claim(self) -> str:
        """The next version no other process claimed: ``.model-vNNNN.claim`` created
        exclusively while the version has no model file (removed once it has one). Two
        processes saving at once get two versions; one that died after its claim leaves
        a gap, never a rewritten version."""
        latest = self.latest()
        number = (int(latest[1:]) if latest else 0) + 1
        while True:
            version = f"v{number:04d}"
            claim = self._claim_path(version)
            try:
                os.close(open_private_fd(claim, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                number += 1
                continue
            if self.path(version).exists():  # saved (and its claim removed) meanwhile
                claim.unlink()
                number += 1
                continue
            return version

    def _claim_path(self, version: str) -> Path:
        return self.directory / f".model-{version}.claim"

    def load(self, version: str | None = None) -> tuple[str, dict]:
        """``(version, model dict)``; the newest when ``version`` is None."""
        version = version or self.latest()
        if version is None:
            raise NotFoundError(f"no trained model in {self.directory}; run `idgraph train`")
        path = self.path(version)
        if not path.exists():
            raise NotFoundError(f"model {version!r} not found in {self.directory} "
                                f"(have: {', '.join(self.versions()) or 'none'})")
        return version, json.loads(path.read_text(encoding="utf-8"))

    def report(self, version: str) -> dict:
        path = self.directory / f"model-{version}.report.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
