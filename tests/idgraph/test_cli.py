"""The ``idgraph`` command line, run as users run it (a subprocess per command)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

SOURCES = {
    "salesforce": "salesforce_query.json",
    "hubspot": "hubspot_contacts.json",
    "sendgrid": "sendgrid_events.json",
    "segment": "segment_events.jsonl",
    "google_calendar": "calendar_events.json",
}


def idgraph(*args: str, data_dir, **env: str) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, IDGRAPH_DATA_DIR=str(data_dir), **env)
    return subprocess.run([sys.executable, "-m", "idgraph.cli", *args], check=False,
                          capture_output=True,
                          text=True, env=full_env, timeout=300)


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    files, data = root / "files", root / "data"
    out = idgraph("generate", "--records", "2000", "--seed", "3", "--out", str(files), data_dir=data)
    assert out.returncode == 0, out.stderr
    for source, name in SOURCES.items():
        out = idgraph("ingest", "--source", source, str(files / name), "--quiet", data_dir=data)
        assert out.returncode == 0, out.stderr
        assert "dead letters 0" in out.stdout
    return root, files, data


def test_export_has_one_row_per_source_record(ingested):
    root, files, data = ingested
    out = idgraph("export", str(root / "export.csv"), data_dir=data)
    assert out.returncode == 0, out.stderr
    with open(root / "export.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    truth = json.loads((files / "truth.json").read_text())
    assert {f"{r['source']}:{r['source_record_id']}" for r in rows} == set(truth)
    assert all(r["profile_id"].startswith("p_") for r in rows)


def test_ingesting_the_same_files_again_changes_nothing(ingested):
    root, files, data = ingested
    before = idgraph("export", str(root / "before.csv"), data_dir=data)
    out = idgraph("ingest", "--source", "hubspot", str(files / SOURCES["hubspot"]), "--quiet",
                  data_dir=data)
    assert out.returncode == 0 and "applied 0" in out.stdout, out.stdout
    after = idgraph("export", str(root / "after.csv"), data_dir=data)
    assert before.returncode == after.returncode == 0
    assert (root / "before.csv").read_text() == (root / "after.csv").read_text()


def test_lookup_prints_the_profile(ingested):
    _root, files, data = ingested
    first = json.loads((files / SOURCES["segment"]).read_text().splitlines()[0])
    ident = f"cookie:{first['anonymousId']}"
    out = idgraph("lookup", ident, data_dir=data)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["identifier"] == ident
    assert any(i["identifier"] == ident for i in doc["profile"]["identifiers"])


def test_lookup_of_unknown_identifier_exits_3(ingested):
    _, _, data = ingested
    out = idgraph("lookup", "email:nobody@nowhere.example", data_dir=data)
    assert out.returncode == 3 and "not found" in out.stderr


def test_bad_payloads_go_to_dead_letters_with_reason(tmp_path):
    bad = tmp_path / "hubspot.json"
    bad.write_text(json.dumps({"results": [
        {"id": "1", "properties": {"email": "ok@example.com"}, "createdAt": "2024-01-01T00:00:00Z",
         "updatedAt": "2024-01-02T00:00:00Z", "archived": False},
        {"id": "2", "properties": "not-an-object", "updatedAt": "2024-01-02T00:00:00Z"},
    ]}))
    out = idgraph("ingest", "--source", "hubspot", str(bad), "--quiet", data_dir=tmp_path / "d")
    assert out.returncode == 0, out.stderr
    assert "dead letters 1" in out.stdout
    letters = [json.loads(line) for line in (tmp_path / "d" / "dead-letters.jsonl").read_text().splitlines()]
    assert len(letters) == 1
    assert "hubspot" in letters[0]["reason"] and "properties" in letters[0]["reason"]
    assert letters[0]["payload"]["id"] == "2"


def test_invalid_settings_exit_2_naming_the_field(tmp_path):
    out = idgraph("export", str(tmp_path / "x.csv"), data_dir=tmp_path, IDGRAPH_GRPC__PORT="70000")
    assert out.returncode == 2
    assert "grpc.port" in out.stderr


def test_a_bad_line_in_json_lines_is_a_dead_letter_not_a_failed_file(tmp_path):
    good = [{"type": "identify", "messageId": f"m{i}", "userId": f"u{i}",
             "timestamp": "2024-01-01T00:00:00Z", "traits": {"email": f"p{i}@example.com"}}
            for i in range(2)]
    lines = [json.dumps(good[0]), "this is not json", json.dumps(good[1]), json.dumps(["a", "list"])]
    (tmp_path / "events.jsonl").write_text("\n".join(lines) + "\n")
    out = idgraph("ingest", "--source", "segment", str(tmp_path / "events.jsonl"), "--quiet",
                  data_dir=tmp_path / "d")
    assert out.returncode == 0, out.stderr
    assert "applied 2" in out.stdout and "dead letters 2" in out.stdout
    letters = [json.loads(x) for x in (tmp_path / "d" / "dead-letters.jsonl").read_text().splitlines()]
    assert [d["payload"] for d in letters] == ["this is not json", '["a", "list"]']
    assert letters[0]["position"].endswith("events.jsonl:line 2")
    assert "invalid JSON" in letters[0]["reason"]
    assert "line 4" in letters[1]["reason"]
    for i in range(2):
        assert idgraph("lookup", f"user:segment:u{i}", data_dir=tmp_path / "d").returncode == 0
