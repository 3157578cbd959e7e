"""The worker's metrics beyond a batch's delivery (tests/stream/test_delivery.py covers
those): the consumer lag per partition, and the endpoint that serves a registry."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from idgraph.core.errors import ConfigError
from idgraph.core.metrics_endpoint import MetricsSettings, start_endpoint
from idgraph.core.ports import free_port
from idgraph.stream.events import RawEvent
from idgraph.stream.metrics import WorkerMetrics, dead_letter_class


def _event(topic: str, partition: int, offset: int) -> RawEvent:
    return RawEvent(topic, partition, offset, None, b"{}", [])


def test_the_lag_of_each_partition_of_a_batch_is_its_high_watermark_after_the_last_offset():
    metrics = WorkerMetrics()
    ends = {("a", 0): 120, ("a", 1): 8, ("b", 0): None}
    batch = [_event("a", 0, 10), _event("a", 0, 99), _event("a", 0, 50), _event("a", 1, 7),
             _event("b", 0, 3)]
    metrics.set_lag(batch, lambda topic, partition: ends[(topic, partition)])

    def lag(topic: str, partition: str) -> float | None:
        return metrics.registry.get_sample_value(
            "idgraph_worker_consumer_lag_messages", {"topic": topic, "partition": partition})

    assert (lag("a", "0"), lag("a", "1"), lag("b", "0")) == (20, 0, None)
    ends[("a", 0)] = 90  # a watermark behind what was handed out: no negative lag
    metrics.set_lag([_event("a", 0, 99)], lambda topic, partition: ends[(topic, partition)])
    assert lag("a", "0") == 0


@pytest.mark.parametrize(("reason", "name"), [
    ("invalid JSON: unexpected character: line 1 column 2 (char 1)", "invalid_json"),
    ("unknown source 'marketo' for topic t.events.crm; it carries hubspot", "unknown_source"),
    ("oversized payload: 300000 bytes, more than stream.max_event_bytes (262144)", "oversized"),
    ("empty message: no payload (a tombstone?)", "empty"),
    ("processing failed: RuntimeError (log ref 0123456789ab)", "processing_failed"),
    ("topic x.events is not an input topic", "not_input_topic"),
    ("hubspot: field 'id': missing", "invalid_payload"),
    ("salesforce: field 'Email': not a string", "invalid_payload"),
])
def test_a_dead_letter_reason_falls_in_one_class(reason, name):
    assert dead_letter_class(reason) == name


def test_the_endpoint_serves_a_registry_and_is_off_at_port_zero():
    assert start_endpoint(MetricsSettings(), WorkerMetrics().registry) is None
    metrics = WorkerMetrics()
    metrics.events_applied.inc(3)
    endpoint = start_endpoint(MetricsSettings(port=free_port()), metrics.registry)
    assert endpoint is not None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{endpoint.port}/metrics",
                                    timeout=5) as response:
            text = response.read().decode()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        assert families["idgraph_worker_events_applied"].samples[0].value == 3
        assert "process_cpu_seconds" in families  # the process's own metrics beside
        with pytest.raises(ConfigError, match="metrics.host/metrics.port: cannot listen"):
            start_endpoint(MetricsSettings(port=endpoint.port), WorkerMetrics().registry)
    finally:
        endpoint.close()


def test_each_process_of_a_machine_has_its_own_port():
    assert [MetricsSettings(port=9300).port_of_process(i) for i in range(3)] == [
        9300, 9301, 9302]
    assert MetricsSettings().port_of_process(2) == 0


def test_the_writer_gauges_read_the_turns_at_each_scrape():
    """The writer's turn gauges follow what the turns say when scraped, not when made."""
    from prometheus_client import generate_latest

    from idgraph.coordination.base import TurnStatus
    from idgraph.stream.metrics import WorkerMetrics

    now = [TurnStatus()]
    metrics = WorkerMetrics()
    metrics.watch_turns(lambda: now[0])

    def scraped() -> dict[str, float]:
        text = generate_latest(metrics.registry).decode()
        return {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
                if line.startswith("idgraph_writer_")}

    assert scraped() == {"idgraph_writer_holds_turn": 0.0, "idgraph_writer_turn": 0.0,
                         "idgraph_writer_lease_renewals": 0.0, "idgraph_writer_turns_lost": 0.0}
    now[0] = TurnStatus(holding=True, turn=42, renewals=7, lost=1)
    assert scraped() == {"idgraph_writer_holds_turn": 1.0, "idgraph_writer_turn": 42.0,
                         "idgraph_writer_lease_renewals": 7.0, "idgraph_writer_turns_lost": 1.0}
