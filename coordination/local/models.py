"""The local model registry: ``DATA_DIR/models/model-vNNNN.json`` (:class:`DirectoryModelRegistry`).

Each version is Splink's model JSON exactly as ``save_model_to_json`` writes it (so
``Linker(df, "model-v0003.json")`` loads it), plus ``model-vNNNN.report.json`` with the
training report. Versions only grow; a saved version is never rewritten. Links record the
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
from idgraph.core.private_files import make_private_dir, open_private
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
        latest = self.latest()
        version = f"v{(int(latest[1:]) if latest else 0) + 1:04d}"
        tmp = self.directory / f".model-{version}.json.tmp"
        with open_private(tmp, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(model, indent=2))
        meta = {"version": version, "trained_at": time.time(), "trained_on": trained_on,
                **asdict(report)}
        with open_private(self.directory / f"model-{version}.report.json", "w",
                          encoding="utf-8") as fh:
            fh.write(json.dumps(meta, indent=2))
        os.replace(tmp, self.path(version))  # the model file appears last, complete
        return version

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
