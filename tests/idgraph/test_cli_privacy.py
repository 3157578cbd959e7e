"""The privacy commands as users run them (a subprocess per command): consent record and
show, purposes, export-subject, forget, unsuppress, and their refusals."""

from __future__ import annotations

import hashlib
import io
import json
import stat
import zipfile

import pytest
from test_cli import idgraph

from idgraph.engine import Engine
from idgraph.settings import Settings
from tests.helpers import record

PEOPLE = [
    record("salesforce", "003A", "e1", 100, ["crm:salesforce:003A", "email:nina@acme.com"],
           given_name="Nina", family_name="Holm", country="DE"),
    record("sendgrid", "nina@acme.com", "e2", 200, ["email:nina@acme.com"],
           consent={"email": True}),
    record("hubspot", "77", "e3", 300, ["crm:hubspot:77", "email:otto@acme.com"],
           given_name="Otto", family_name="Rau", country="US"),
]


@pytest.fixture
def data(tmp_path):
    with Engine(Settings(data_dir=tmp_path / "data")) as engine:
        engine.ingest(PEOPLE)
    return tmp_path / "data"


def test_consent_record_then_show(data):
    out = idgraph("consent", "record", "email:Nina@acme.com", "email", "withdrawn",
                  "--collection-point", "preference-centre", "--notice-version", "v7",
                  data_dir=data)
    assert out.returncode == 0, out.stderr
    assert " email withdrawn for p_" in out.stdout
    shown = idgraph("consent", "show", "crm:salesforce:003A", "--json", data_dir=data)
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["consent"]["email"]["state"] == "withdrawn"
    assert doc["consent"]["ads"] == {"state": "unknown", "allowed": False, "entry_id": ""}
    assert [h["status"] for h in doc["history"] if h["purpose"] == "email"] == [
        "granted", "withdrawn"]
    assert doc["history"][-1]["actor"] == "cli"


def test_refusals_exit_2_and_store_nothing(data):
    bad = idgraph("consent", "record", "email:nina@acme.com", "fax", "granted", data_dir=data)
    assert bad.returncode == 2 and "unknown purpose (known:" in bad.stderr and "fax" not in bad.stderr
    bad = idgraph("consent", "record", "email:nope", "email", "granted", data_dir=data)
    assert bad.returncode == 2
    nobody = idgraph("forget", "email:nobody@acme.com", data_dir=data)
    assert nobody.returncode == 3, nobody.stderr
    shown = json.loads(idgraph("consent", "show", "email:nina@acme.com", "--json",
                               data_dir=data).stdout)
    assert [h["purpose"] for h in shown["history"]] == ["email"]  # the sendgrid grant only


def test_purposes_list_and_apply(data, tmp_path):
    listed = idgraph("consent", "purposes", data_dir=data)
    assert listed.returncode == 0 and "analytics" in listed.stdout
    f = tmp_path / "purposes.toml"
    f.write_text('[[purpose]]\nname = "surveys"\nopt_in_regions = ["eu"]\n')
    applied = idgraph("consent", "purposes", "--apply", str(f), data_dir=data)
    assert applied.returncode == 0 and "surveys: version 1" in applied.stdout
    f.write_text('[[purpose]]\nname = "surveys"\nlegal_basis = "whim"\n')
    bad = idgraph("consent", "purposes", "--apply", str(f), data_dir=data)
    assert bad.returncode == 2 and "legal_basis must be one of" in bad.stderr


def test_export_subject_then_forget_then_unsuppress(data, tmp_path):
    target = tmp_path / "nina.zip"
    out = idgraph("export-subject", "email:nina@acme.com", "-o", str(target), data_dir=data)
    assert out.returncode == 0, out.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    with zipfile.ZipFile(io.BytesIO(target.read_bytes())) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        for name, meta in manifest["files"].items():
            assert hashlib.sha256(zf.read(name)).hexdigest() == meta["sha256"]
    assert manifest["subject"]["records"] == 2

    gone = idgraph("forget", "email:nina@acme.com", "--reason", "ticket 9", data_dir=data)
    assert gone.returncode == 0, gone.stderr
    request_id = gone.stdout.split(":", 1)[0]
    assert "completed" in gone.stdout and "records 2" in gone.stdout
    again = idgraph("forget", "email:nina@acme.com", data_dir=data)
    assert again.returncode == 2 and request_id in again.stderr  # ALREADY_EXISTS
    assert idgraph("lookup", "email:nina@acme.com", data_dir=data).returncode == 3
    assert idgraph("lookup", "email:otto@acme.com", data_dir=data).returncode == 0
    # the tamper-evident audit log has the request (by the CLI's user) and the writer's
    # completion, the person only as a keyed hash; the refused second forget is there too
    shown = idgraph("audit", "show", "--action", "forget.requested", data_dir=data)
    requested = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [(e["outcome"], e["actor"].startswith("cli:")) for e in requested] == [
        ("ok", True), ("failed", True)]
    assert requested[0]["reason"] == request_id and "nina" not in shown.stdout
    done = idgraph("audit", "show", "--action", "forget.completed", data_dir=data).stdout
    assert f"forget_request:{request_id}" in done and '"actor":"writer"' in done
    assert idgraph("audit", "verify", data_dir=data).returncode == 0

    no_reason = idgraph("unsuppress", request_id, "--reason", " ", data_dir=data)
    assert no_reason.returncode == 2 and "reason is required" in no_reason.stderr
    back = idgraph("unsuppress", request_id, "--reason", "court order", data_dir=data)
    assert back.returncode == 0 and "4 suppressions removed" in back.stdout  # 2 keys, 2 ids
