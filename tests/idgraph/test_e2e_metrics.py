"""``idgraph serve`` (a separate process) with its metrics endpoint on: calls that succeed,
are not found, are invalid and are unauthenticated are counted by method and status in
the scrape, as Prometheus reads it; no identifier asked for appears in it."""

from __future__ import annotations

import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from idgraph.core.metrics_endpoint import idgraph_version
from idgraph.core.ports import free_port
from idgraph.engine import Engine
from idgraph.generator import generate
from idgraph.service.client import ProfileClient, ServiceCallError
from idgraph.settings import Settings
from tests.idgraph.test_e2e_grpc import TOKEN, start_server

pytestmark = pytest.mark.slow

SERVICE = "idgraph.v1.ProfileService"


def scrape(port: int) -> tuple[str, dict[str, list]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return text, {f.name: f.samples for f in text_string_to_metric_families(text)}


def _failed(call) -> str:
    with pytest.raises(ServiceCallError) as err:
        call()
    return err.value.code.name


def _ingested(data_dir, records: int, seed: int) -> str:
    """Ingest a generated world into ``data_dir``; returns an email identifier it knows."""
    with Engine(Settings(data_dir=data_dir)) as engine:
        engine.ingest_payloads(generate(n_records=records, seed=seed).events)
        return next(i.identifier for p in engine.graph.profile_ids()
                    for i in engine.queries.get_profile(p).identifiers
                    if i.identifier.startswith("email:"))


def test_served_calls_are_counted_by_method_and_status(tmp_path):
    data_dir = tmp_path / "data"
    known = _ingested(data_dir, 200, 3)
    metrics_port = free_port()
    proc, port = start_server(data_dir, ("IDGRAPH_METRICS__PORT", str(metrics_port)))
    client = ProfileClient(f"127.0.0.1:{port}", token=TOKEN)
    stranger = ProfileClient(f"127.0.0.1:{port}", token="not-a-key")
    try:
        client.wait_ready()
        for _ in range(2):
            assert client.lookup(known).profile.profile_id
        assert _failed(lambda: client.lookup("email:nobody-e2e@example.org")) == "NOT_FOUND"
        assert _failed(lambda: client.lookup("email:not-an-email")) == "INVALID_ARGUMENT"
        assert _failed(lambda: stranger.lookup(known)) == "UNAUTHENTICATED"
        text, families = scrape(metrics_port)
    finally:
        client.close()
        stranger.close()
        proc.terminate()
        proc.wait(timeout=10)

    lookups = {s.labels["code"]: s.value for s in families["idgraph_grpc_requests"]
               if s.name == "idgraph_grpc_requests_total"
               and s.labels["service"] == SERVICE and s.labels["method"] == "Lookup"}
    assert lookups == {"OK": 2, "NOT_FOUND": 1, "INVALID_ARGUMENT": 1, "UNAUTHENTICATED": 1}
    counts = {s.labels["method"]: s.value
              for s in families["idgraph_grpc_request_duration_seconds"]
              if s.name.endswith("_count") and s.labels["service"] == SERVICE}
    assert counts == {"Lookup": 5}
    in_flight = [s.value for s in families["idgraph_grpc_requests_in_flight"]
                 if s.labels["method"] == "Lookup"]
    assert in_flight == [0]
    assert [s.labels["version"] for s in families["idgraph_server_info"]] == [
        idgraph_version()]
    assert "process_resident_memory_bytes" in text
    for asked in (known, "nobody-e2e", "not-an-email", "not-a-key", TOKEN):
        assert asked.split(":")[-1] not in text


def _scrape_when_up(port: int, timeout: float = 60.0) -> dict[str, list]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return scrape(port)[1]
        except OSError:
            assert time.monotonic() < deadline, f"no metrics endpoint on port {port}"
            time.sleep(0.2)


def test_each_server_process_has_its_endpoint_and_together_they_count_every_call(tmp_path):
    """``grpc.processes = 2``: the second process serves its metrics on ``port + 1``;
    calls spread over the processes by the kernel (SO_REUSEPORT, one per connection) add
    up to the calls sent, none counted twice or lost."""
    data_dir = tmp_path / "data"
    known = _ingested(data_dir, 100, 4)
    metrics_port = free_port()
    while not _port_free(metrics_port + 1):
        metrics_port = free_port()
    proc, port = start_server(data_dir, ("IDGRAPH_METRICS__PORT", str(metrics_port)),
                              ("IDGRAPH_GRPC__PROCESSES", "2"))
    sent = 0
    try:
        per_process = [_scrape_when_up(metrics_port + i) for i in range(2)]
        for _ in range(12):  # a new connection each time: the kernel picks a process
            client = ProfileClient(f"127.0.0.1:{port}", token=TOKEN)
            try:
                client.wait_ready()
                assert client.lookup(known).profile.profile_id
                sent += 1
            finally:
                client.close()
        per_process = [scrape(metrics_port + i)[1] for i in range(2)]
    finally:
        proc.terminate()
        proc.wait(timeout=20)

    ok = [sum(s.value for s in families["idgraph_grpc_requests"]
              if s.name == "idgraph_grpc_requests_total" and s.labels["method"] == "Lookup"
              and s.labels["code"] == "OK") for families in per_process]
    assert sum(ok) == sent == 12


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
