"""``IDGRAPH_LOG__FORMAT=json`` on the command line: ``idgraph serve`` (a separate process,
at DEBUG, answering lookups by e-mail address) writes only JSON lines on standard error and
no looked-up value; a command's final error line is a JSON record too."""

from __future__ import annotations

import os
import subprocess
import sys

from idgraph.engine import Engine
from idgraph.generator import generate
from idgraph.service.client import ProfileClient, ServiceCallError
from idgraph.settings import Settings
from tests.core.test_logs import parse_json_lines
from tests.idgraph.test_e2e_grpc import TOKEN
from tests.stream.test_json_logs import assert_no_personal_data, personal_values


def test_serve_writes_json_lines_without_the_looked_up_values(tmp_path):
    dataset = generate(n_records=60, seed=23)
    with Engine(Settings(data_dir=tmp_path)) as engine:
        engine.ingest_payloads(dataset.events)
    env = dict(os.environ, IDGRAPH_DATA_DIR=str(tmp_path), IDGRAPH_LOG__FORMAT="json",
               IDGRAPH_LOG__LEVEL="DEBUG", IDGRAPH_GRPC__API_TOKENS=f'["{TOKEN}"]')
    proc = subprocess.Popen([sys.executable, "-m", "idgraph.cli", "serve", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()  # the command's output, not a log record
        assert "serving ProfileService on port" in line, line + proc.stderr.read()
        port = int(line.split("on port")[1].split()[0])
        emails = sorted({e for p in dataset.people for e in p.emails})
        with ProfileClient(f"127.0.0.1:{port}", token=TOKEN) as client:
            client.wait_ready()
            for email in emails[:5] + ["nobody.known@example.org"]:
                try:
                    client.lookup(f"email:{email}")
                except ServiceCallError:
                    pass  # not found
        with ProfileClient(f"127.0.0.1:{port}", token="wrong") as intruder:
            try:
                intruder.lookup(f"email:{emails[0]}")
            except ServiceCallError:
                pass
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=20)
    values = personal_values([p for _s, p in dataset.events], dataset.people)
    values.add("nobody.known@example.org")
    entries = assert_no_personal_data(err, values)
    assert entries, "nothing logged at DEBUG"
    assert {e["process"] for e in entries} == {proc.pid}


def test_the_last_error_line_of_a_command_is_a_json_record(tmp_path):
    out = subprocess.run([sys.executable, "-m", "idgraph.cli", "lookup", "email:a@b.org",
                          "--config", str(tmp_path / "missing.toml")],
                         check=False, capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, IDGRAPH_LOG__FORMAT="json"))
    assert out.returncode == 2
    (entry,) = parse_json_lines(out.stderr)
    assert entry["level"] == "ERROR" and entry["message"].startswith("idgraph: config file")
    text = subprocess.run([sys.executable, "-m", "idgraph.cli", "lookup", "email:a@b.org",
                           "--config", str(tmp_path / "missing.toml")],
                          check=False, capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert text.stderr.startswith("idgraph: config file")
