"""The model registry seam (:class:`idgraph.coordination.ModelRegistry`) run against every
backend: files in a directory and Cassandra's global keyspace on the session's real
two-node cluster. Two registry instances on one database are two machines.

Checked: versions only grow (v0001, v0002...) and each keeps its own model and report;
unknown versions; two instances saving at once get two versions, both readable; and a
writing engine on another machine scores with a model saved elsewhere from its next
batch (the engines share only the Cassandra registry).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from idgraph.coordination import ModelRegistry
from idgraph.core.errors import NotFoundError
from idgraph.resolver.probabilistic.training import TrainingReport


def report(rows: int) -> TrainingReport:
    return TrainingReport(rows=rows, columns=["email", "surname"], em_blocking_rules=["r"],
                          seconds=0.5, thresholds={"link": 0.97})


def model(tag: str) -> dict:
    return {"link_type": "dedupe_only", "comparisons": [{"output_column_name": tag}]}


@pytest.fixture(params=["local", "cassandra"])
def registries(request, tmp_path) -> Callable[[], ModelRegistry]:
    """``registries()`` opens one more registry of the test's backend on one shared
    database, empty at the start of the test."""
    opened: list[ModelRegistry] = []
    if request.param == "cassandra":
        from idgraph.coordination.cassandra_backend import CassandraModelRegistry

        settings = request.getfixturevalue("empty_cassandra")

        def open_registry() -> ModelRegistry:
            return CassandraModelRegistry(settings)
    else:
        from idgraph.coordination.local import DirectoryModelRegistry

        def open_registry() -> ModelRegistry:
            return DirectoryModelRegistry(tmp_path / "models")

    def make() -> ModelRegistry:
        registry = open_registry()
        opened.append(registry)
        return registry

    yield make
    for registry in opened:
        registry.close()


def test_versions_grow_and_keep_their_models(registries):
    registry = registries()
    assert registry.versions() == [] and registry.latest() is None
    with pytest.raises(NotFoundError, match="idgraph train"):
        registry.load()
    assert registry.report("v0001") == {}
    assert registry.save(model("first"), report(10), "stored records") == "v0001"
    assert registry.save(model("second"), report(20), "people.csv") == "v0002"
    assert registry.versions() == ["v0001", "v0002"]
    assert registry.latest() == "v0002"
    assert registry.load() == ("v0002", model("second"))
    assert registry.load("v0001") == ("v0001", model("first"))
    meta = registry.report("v0001")
    assert (meta["version"], meta["trained_on"], meta["rows"], meta["thresholds"]) == (
        "v0001", "stored records", 10, {"link": 0.97})
    assert meta["columns"] == ["email", "surname"] and meta["trained_at"] > 0
    for unknown in ("v0003", "v1", "latest"):
        with pytest.raises(NotFoundError, match="have: v0001, v0002"):
            registry.load(unknown)
        assert registry.report(unknown) == {}


def test_another_machine_sees_the_new_version(registries):
    trainer, worker = registries(), registries()
    assert worker.latest() is None
    version = trainer.save(model("fresh"), report(10), "stored records")
    assert worker.latest() == version == "v0001"
    assert worker.load() == ("v0001", model("fresh"))


def test_two_machines_saving_at_once_get_two_versions(registries):
    one, two = registries(), registries()
    for round_ in range(3):
        start = threading.Barrier(2)
        saved: dict[str, str] = {}

        def save(registry: ModelRegistry, tag: str, start: threading.Barrier = start,
                 saved: dict[str, str] = saved) -> None:
            start.wait()
            saved[tag] = registry.save(model(tag), report(1), tag)

        threads = [threading.Thread(target=save, args=(r, f"{name}{round_}"))
                   for r, name in ((one, "one"), (two, "two"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(saved) == 2 and len(set(saved.values())) == 2, saved
        for tag, version in saved.items():
            assert one.load(version) == (version, model(tag))
            assert two.report(version)["trained_on"] == tag
    assert one.versions() == two.versions() == [f"v{i:04d}" for i in range(1, 7)]


def test_a_writer_scores_with_a_model_trained_on_another_machine(tmp_path, empty_cassandra):
    """Two engines on two data dirs (two machines) sharing only the Cassandra registry:
    the worker that was running before the model existed scores with it from its next
    batch."""
    from idgraph.engine import Engine, batch
    from idgraph.generator import generate
    from idgraph.settings import Settings

    events = generate(n_records=3000, seed=5).events
    machines = [Settings(data_dir=tmp_path / name, coordination_backend="cassandra",
                         cassandra=empty_cassandra) for name in ("one", "two")]
    with Engine(machines[0]) as trainer, Engine(machines[1]) as worker:
        worker.ingest_payloads(events[:50])
        assert worker.matcher is None  # no model anywhere yet
        trainer.ingest_payloads(events)
        version, _ = batch.train(trainer)
        assert worker.models.latest() == version
        worker.ingest_payloads(events[50:100])
        assert worker.matcher is not None and worker.matcher.version == version
        assert worker.matching.refresh_model() == version  # unchanged: nothing reloaded
