"""The ``idgraph`` command line, run as users run it (a subprocess per command)."""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import subprocess
import sys
from pathlib import Path

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


def test_export_events_gives_the_profile_each_event_landed_in(ingested):
    root, files, data = ingested
    out = idgraph("export", str(root / "events.csv"), "--events",
                  *[f"--source={s}={files / n}" for s, n in SOURCES.items()], data_dir=data)
    assert out.returncode == 0, out.stderr
    with open(root / "events.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    records = idgraph("export", str(root / "records.csv"), data_dir=data)
    assert records.returncode == 0, records.stderr
    with open(root / "records.csv", newline="") as fh:
        profile_of = {(r["source"], r["source_record_id"]): r["profile_id"]
                      for r in csv.DictReader(fh)}
    assert len(rows) > len(profile_of)  # records get several events each
    assert {r["source"] for r in rows} == set(SOURCES)
    assert all(r["profile_id"] == profile_of[(r["source"], r["source_record_id"])]
               for r in rows)
    assert len({(r["source"], r["event_id"], r["source_record_id"]) for r in rows}) == len(rows)
    bad = idgraph("export", str(root / "x.csv"), "--events", data_dir=data)
    assert bad.returncode == 2 and "--source KIND" in bad.stderr


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


# ----------------------------------------------------------- paths that cannot be used

def _one_error_line(out: subprocess.CompletedProcess) -> str:
    """The single line a failed command writes to stderr (no traceback)."""
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("idgraph: ")
    return lines[0]


MISSING = "No such file or directory"
IS_DIR = "Is a directory"
NOT_DIR = "exists and is not a directory"


@pytest.mark.parametrize("args, bad, problem", [
    pytest.param(["ingest", "--source", "hubspot", "{missing}", "--quiet"], "{missing}", MISSING,
                 id="ingest-missing"),
    pytest.param(["ingest", "--source", "hubspot", "{dir}", "--quiet"], "{dir}", IS_DIR,
                 id="ingest-directory"),
    pytest.param(["ingest", "--source", "hubspot", "{json}", "{missing}", "--quiet"], "{missing}",
                 MISSING, id="ingest-second-file-missing"),
    pytest.param(["ingest", "--source", "hubspot", "{json}", "--quiet", "--data-dir", "{file}"],
                 "{file}", NOT_DIR, id="ingest-data-dir-is-a-file"),
    pytest.param(["backfill", "--source", "hubspot", "{missing}"], "{missing}", MISSING,
                 id="backfill-missing"),
    pytest.param(["backfill", "--source", "hubspot", "{dir}"], "{dir}", IS_DIR,
                 id="backfill-directory"),
    pytest.param(["resolve", "--input", "{missing}", "--output", "{out}"], "{missing}", MISSING,
                 id="resolve-input-missing"),
    pytest.param(["resolve", "--input", "{dir}", "--output", "{out}"], "{dir}", IS_DIR,
                 id="resolve-input-directory"),
    pytest.param(["resolve", "--input", "{csv}", "--output", "{missing}"], "{missing}", MISSING,
                 id="resolve-output-in-missing-directory"),
    pytest.param(["resolve", "--input", "{csv}", "--output", "{dir}"], "{dir}", IS_DIR,
                 id="resolve-output-directory"),
    pytest.param(["train", "--input", "{missing}"], "{missing}", MISSING, id="train-missing"),
    pytest.param(["train", "--input", "{dir}"], "{dir}", IS_DIR, id="train-directory"),
    pytest.param(["generate", "--records", "10", "--out", "{file}"], "{file}", NOT_DIR,
                 id="generate-out-is-a-file"),
    pytest.param(["export", "{out}", "--config", "{missing}"], "{missing}", MISSING,
                 id="config-missing"),
    pytest.param(["export", "{out}", "--config", "{dir}"], "{dir}", IS_DIR,
                 id="config-directory"),
])
def test_a_path_that_cannot_be_used_gives_one_line_and_exit_2(tmp_path, args, bad, problem):
    paths = {"missing": tmp_path / "no-such-dir" / "x.json", "dir": tmp_path / "a-dir",
             "file": tmp_path / "a-file", "json": tmp_path / "hubspot.json",
             "csv": tmp_path / "people.csv", "out": tmp_path / "out.csv"}
    paths["dir"].mkdir()
    paths["file"].write_text("not a directory\n")
    paths["json"].write_text('{"results": []}')
    paths["csv"].write_text("given_name,email\nAnn,ann@example.com\n")
    out = idgraph(*[a.format(**paths) for a in args], data_dir=tmp_path / "data")
    line = _one_error_line(out)
    assert out.returncode == 2, out.stderr
    assert bad.format(**paths) in line and problem in line
    assert not (tmp_path / "data").exists()  # refused before any work


@pytest.mark.parametrize("target, problem", [("no-such-dir/x.csv", MISSING), (".", IS_DIR)])
def test_export_to_a_path_that_cannot_be_written(ingested, target, problem):
    root, _files, data = ingested
    out = idgraph("export", str(root / target), data_dir=data)
    line = _one_error_line(out)
    assert out.returncode == 2
    assert line == f"idgraph: {root / target}: {problem}"


class _FullDisk(io.StringIO):
    """A file on a full disk: writing fails as the OS reports it (no file name)."""

    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_during_export_names_the_file_and_exits_1(tmp_path, monkeypatch, capsys):
    from idgraph import cli

    source = tmp_path / "hubspot.json"
    source.write_text(json.dumps({"results": [
        {"id": "1", "properties": {"email": "ok@example.com"}, "archived": False,
         "createdAt": "2024-01-01T00:00:00Z", "updatedAt": "2024-01-02T00:00:00Z"}]}))
    data = str(tmp_path / "data")
    assert cli.main(["ingest", "--source", "hubspot", str(source), "--quiet",
                     "--data-dir", data]) == 0
    capsys.readouterr()
    monkeypatch.setattr(cli, "open", lambda *a, **k: _FullDisk(), raising=False)
    target = tmp_path / "export.csv"
    assert cli.main(["export", str(target), "--data-dir", data]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"idgraph: {target}: No space left on device"]


def test_full_disk_during_generate_names_the_file_and_exits_1(tmp_path, monkeypatch, capsys):
    from idgraph import cli

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_text", full)
    assert cli.main(["generate", "--records", "10", "--out", str(tmp_path / "gen")]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"idgraph: {tmp_path / 'gen' / 'truth.json'}: No space left on device"]


def test_settings_command_prints_json(tmp_path):
    config = tmp_path / "idgraph.toml"
    config.write_text("[linking.identifier_rules.phone]\nlinks = false\n")
    out = idgraph("settings", "--config", str(config), data_dir=tmp_path / "data",
                  IDGRAPH_NEO4J__PASSWORD="not-to-be-shown")
    assert out.returncode == 0, out.stderr
    assert "not-to-be-shown" not in out.stdout
    doc = json.loads(out.stdout)
    assert doc["data_dir"] == str(tmp_path / "data")
    assert doc["linking"]["identifier_rules"]["phone"]["links"] is False
    assert doc["linking"]["identifier_rules"]["email"]["links"] is True


def test_console_refuses_a_non_loopback_address_without_tls(tmp_path):
    out = idgraph("console", "--host", "0.0.0.0", "--port", "0", data_dir=tmp_path / "d")
    assert out.returncode == 2
    assert "not loopback" in out.stderr and "tls_cert_file" in out.stderr


def test_console_serves_the_sign_in_page_with_its_security_headers(tmp_path):
    import http.client

    proc = subprocess.Popen(
        [sys.executable, "-m", "idgraph.cli", "console", "--port", "0", "--server",
         "127.0.0.1:1", "--data-dir", str(tmp_path / "d")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("idgraph console on http://127.0.0.1:"), line
        port = int(line.split("127.0.0.1:")[1].split("/")[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/signin")
        response = conn.getresponse()
        body = response.read().decode()
        assert response.status == 200 and 'name="key"' in body
        assert "frame-ancestors 'none'" in response.getheader("content-security-policy")
        conn.request("GET", "/profiles")  # no session: to the sign-in form
        response = conn.getresponse()
        response.read()
        assert response.status == 303 and response.getheader("location") == "/signin"
    finally:
        proc.terminate()
        proc.wait(10)
