"""The metrics of a running ``idgraph worker`` (a real process on the suite's broker), read
from its ``/metrics`` endpoint as Prometheus would: valid events and malformed messages of
four kinds are produced with a plain client; the scraped counters must equal what was
produced and what an in-process engine applies from the same events, the dead letters
counted by the class of their reason, the consumer lag back to 0 once everything is
consumed, and no produced value (an email of the events) anywhere in the scrape.
"""

from __future__ import annotations

import urllib.request
from collections import Counter

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from idgraph.core.metrics_endpoint import idgraph_version
from idgraph.core.ports import free_port
from tests.stream.conftest import wait_for
from tests.stream.fault_harness import make_workload, produce, stream_settings

pytestmark = pytest.mark.slow

#: the dead-letter class of each kind of poison message (fault_harness.poison_messages)
POISON_CLASSES = {"invalid JSON": "invalid_json", "unknown source 'marketo'": "unknown_source",
                  "hubspot: field 'id': missing": "invalid_payload",
                  "oversized payload": "oversized"}


def scrape(port: int) -> tuple[str, dict]:
    """The endpoint's text, and its samples by (name, sorted labels)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    return text, samples


def _emails(value: object) -> set[str]:
    """Every string holding an @ in a payload (the emails it carries)."""
    if isinstance(value, dict):
        return {e for v in value.values() for e in _emails(v)}
    if isinstance(value, list):
        return {e for v in value for e in _emails(v)}
    return {value} if isinstance(value, str) and "@" in value else set()


def test_a_running_worker_serves_counters_equal_to_what_was_produced(
        stream_env, workers, tmp_path):
    workload = make_workload(seed=31, n_records=400, n_poison=12,
                             reference_dir=tmp_path / "reference")
    raw = [(p.kind, p.value, p.headers) for p in workload.poison]
    produce(stream_env, workload.items, raw)
    total = len(workload.items) + len(raw)
    port = free_port()
    worker = workers("metered", tmp_path / "data", IDGRAPH_METRICS__PORT=str(port),
                     IDGRAPH_STREAM__BATCH_SIZE="200")

    def consumed() -> float:
        try:
            return scrape(port)[1].get(("idgraph_worker_events_consumed_total", ()), 0)
        except OSError:  # not listening yet
            return 0

    wait_for(lambda: consumed() >= total, 120, "every message consumed", [worker])
    text, samples = scrape(port)

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    assert value("idgraph_worker_events_consumed_total") == total
    assert value("idgraph_worker_events_applied_total") == workload.expected.processed
    assert value("idgraph_worker_duplicate_events_total") == 0
    assert value("idgraph_worker_suppressed_events_total") == 0
    dead = Counter(POISON_CLASSES[p.reason] for p in workload.poison)
    assert len(dead) == 4  # every kind was produced
    for name in ("invalid_json", "unknown_source", "invalid_payload", "oversized", "empty",
                 "processing_failed", "not_input_topic"):
        assert value("idgraph_worker_dead_letters_total", reason=name) == dead[name], name
    assert value("idgraph_worker_batch_size_events_sum") == total
    batches = value("idgraph_worker_batch_size_events_count")
    assert batches >= total / 200
    assert value("idgraph_worker_batch_duration_seconds_count") == batches
    assert 0 < value("idgraph_worker_batch_duration_seconds_sum") < 120
    assert value("idgraph_worker_changes_published_total", kind="profile") > 0
    for step in ("store", "dead_letters", "changes"):
        assert value("idgraph_worker_retries_total", step=step) == 0
    stats = worker.stats()  # the stats file tells the same
    assert stats["events_applied"] == workload.expected.processed
    assert stats["dead_letters"] == len(raw) and stats["batches"] == batches

    # every input partition that had messages has a lag, 0 now that all are consumed
    cfg = stream_settings(stream_env)
    lags = {labels: v for (name, labels), v in samples.items()
            if name == "idgraph_worker_consumer_lag_messages"}
    assert lags and set(lags.values()) == {0}
    assert {dict(labels)["topic"] for labels in lags} <= set(cfg.input_topics)
    assert value("idgraph_worker_info", version=idgraph_version()) == 1

    # no produced value reaches the scrape: emails of the valid events and of the poison
    emails = {e for _system, payload in workload.items for e in _emails(payload)}
    emails |= {e for p in workload.poison if p.value.startswith(b"{\"properties\"")
               for e in _emails(orjson.loads(p.value))}
    assert len(emails) > 50
    leaked = sorted(e for e in emails if e in text)
    assert leaked == []
    assert worker.stop() == 0
