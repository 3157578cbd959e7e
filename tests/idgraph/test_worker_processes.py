"""A worker child process runs with exactly its parent's settings, not a subset."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

from idgraph.settings import load_settings
from idgraph.worker_processes import worker_env

ROOT = Path(__file__).resolve().parents[2]


def test_a_worker_child_gets_the_whole_configuration(tmp_path, monkeypatch):
    config = tmp_path / "parent.toml"
    config.write_text(
        "[linking.identifier_rules.phone]\nlinks = false\n"

        "[regions.country_regions]\nGB = 'eu'\n"
        "[stream]\nbrokers = ['kafka://10.0.0.1:9093']\nsecurity_protocol = 'SASL_SSL'\n"
        "sasl_mechanism = 'SCRAM-SHA-512'\nsasl_username = 'svc-idgraph'\n"
        "sasl_password = 'not-in-the-environment'\nssl_cafile = '/etc/ssl/kafka-ca.pem'\n"
        "[neo4j]\npassword = 'bolt-secret'\n", encoding="utf-8")
    monkeypatch.setenv("IDGRAPH_GRPC__MAX_WORKERS", "3")  # the parent's environment layer
    parent = load_settings(config, data_dir=tmp_path / "data", ingest_batch_size=777)

    child_config = tmp_path / "child.toml"
    env = worker_env(parent, child_config)
    assert stat.S_IMODE(child_config.stat().st_mode) == 0o600  # it holds the passwords
    assert not any(k.startswith("IDGRAPH_") for k in env if k != "IDGRAPH_CONFIG")

    shown = subprocess.run([sys.executable, "-m", "idgraph.cli", "settings"], env=env,
                           cwd=ROOT, capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(shown.stdout) == parent.model_dump(mode="json")
    child = load_settings(child_config)
    assert child == parent  # secrets included, not only their masks
    assert child.stream.sasl_password.get_secret_value() == "not-in-the-environment"
    assert child.linking.identifier_rules["phone"].links is False
    assert child.linking.identifier_rules["email"].links is True
