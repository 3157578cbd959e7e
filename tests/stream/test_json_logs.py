"""JSON logs with no personal data, from code paths that log: a worker's batch through
:class:`idgraph.stream.delivery.BatchDelivery` (dead letters of every kind, an event that
fails and is retried alone, a broker that refuses a send), an engine ingest, and a real
``idgraph worker`` process (with Faust, mode and aiokafka logging) on the suite's broker.

Every line must be a JSON object with the required fields, and none may hold an e-mail
address, phone number, name, street or IP address of the events."""

from __future__ import annotations

import re

import orjson
import pytest

from idgraph.generator import generate
from idgraph.stream.events import RawEvent
from idgraph.stream.produce import topic_of_system
from tests.core import test_logs
from tests.core.test_logs import parse_json_lines
from tests.stream import test_delivery
from tests.stream.conftest import wait_for
from tests.stream.test_delivery import Rig

json_log = test_logs.json_log  # the fixtures, shared
make_rig = test_delivery.make_rig

DATASET = generate(n_records=80, seed=19)
_PERSONAL_KEYS = re.compile(r"email|phone|mobile|first_?name|last_?name|given|family|"
                            r"address|street|birth|^ip$", re.IGNORECASE)


def personal_values(payloads, people=()) -> set[str]:
    """The personal values of ``payloads`` (by their keys) and ``people`` (names, e-mail
    addresses, phone numbers, streets, IP addresses), each also as its digits when it is a
    phone number; values shorter than 4 characters are left out (they would be found by
    chance)."""
    found: set[str] = set()

    def walk(value, key: str = "") -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, str(k) if _PERSONAL_KEYS.search(str(k)) else key)
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif isinstance(value, str) and key:
            found.add(value.strip())
            if re.search("phone|mobile", key, re.IGNORECASE):
                found.add(re.sub(r"\D", "", value))

    for payload in payloads:
        walk(payload)
    for person in people:
        found.update([person.given_name, person.family_name, person.street, *person.emails])
        found.update(phone.nsn for phone in person.phones)
        found.update(device.ip for device in person.devices if device.ip)
    return {v for v in found if v and len(v) >= 4}


def assert_no_personal_data(text: str, values: set[str]) -> list[dict]:
    entries = parse_json_lines(text)
    for line in text.splitlines():
        leaked = sorted(v for v in values if v in line)
        assert not leaked, f"personal data {leaked} in log line {line}"
    return entries


def _poison(topics) -> list[tuple[RawEvent, str]]:
    """Events with personal data that end as dead letters, with their payloads."""
    crm = topics["hubspot"]
    bad = [
        ({"properties": {"email": "ada.lovelace@example.org", "firstname": "Augusta"}}, "id"),
        ({"id": "7", "properties": {"email": "grace.hopper@example.net",
                                    "mobilephone": "+44 7700 900123"},
          "updatedAt": "31/12/2024"}, "timestamp"),
        ({"id": "8", "properties": {"email": 42, "lastname": "Babbage-Byron"}}, "type"),
    ]
    events = [(RawEvent(crm, 3, n, f"p{n}".encode(), orjson.dumps(p),
                        [("source", b"hubspot")]), p) for n, (p, _why) in enumerate(bad)]
    truncated = b'{"id": "9", "properties": {"email": "alan.turing@example.com", "firstname'
    events.append((RawEvent(crm, 3, 10, b"t", truncated, [("source", b"hubspot")]),
                   {"email": "alan.turing@example.com"}))
    events.append((RawEvent("idgraph.events.nowhere", 0, 1, b"x",
                            orjson.dumps({"email": "joan.clarke@example.com"}), []),
                   {"email": "joan.clarke@example.com"}))
    return events


def test_a_workers_batch_logs_json_lines_without_personal_data(make_rig, json_log,
                                                               monkeypatch):
    rig: Rig = make_rig(publish_changes=True)
    topics = topic_of_system(rig.engine.settings.stream)
    good = [RawEvent(topics[s], 0, n, None, orjson.dumps(p), [("source", s.encode())])
            for n, (s, p) in enumerate(DATASET.events)]
    poison = _poison(topics)
    rig.dead.refuse = 1  # a retry is logged too
    rig.changes.refuse = 1
    # one batch fails as a whole, so its events are retried alone (log.exception), one of
    # them failing for good (a dead letter with a log ref)
    real_ingest = rig.delivery.processor._ingest
    failing = good[3]

    def ingest(decoded, outcome):
        if len(decoded) > 1 or decoded[0][0] is failing:
            raise RuntimeError("resolver bug")
        return real_ingest(decoded, outcome)

    monkeypatch.setattr(rig.delivery.processor, "_ingest", ingest)
    rig.handle(good[:10] + [e for e, _ in poison])
    monkeypatch.undo()
    rig.handle(good[10:])  # the rest in one batch, as a worker would
    assert rig.stats.dead_letters == len(poison) + 1
    values = personal_values([p for _s, p in DATASET.events] + [p for _e, p in poison],
                             DATASET.people)
    assert "ada.lovelace@example.org" in values and "447700900123" in values
    entries = assert_no_personal_data(json_log.getvalue(), values)
    messages = [e["message"] for e in entries]
    assert sum(m.startswith("dead-lettered ") for m in messages) == len(poison) + 1
    assert any("retrying" in m for m in messages)
    failures = [e for e in entries if e.get("exc_type") == "RuntimeError"]
    assert failures and all("resolver bug" in e["exc"] for e in failures)
    assert {e["level"] for e in entries} >= {"WARNING", "ERROR"}


def test_an_engine_ingest_logs_json_lines_without_personal_data(make_rig, json_log):
    engine = make_rig().engine
    engine.ingest_payloads(DATASET.events, batch_size=20)
    engine.ingest_payloads([("hubspot", {"id": "x", "properties": {
        "email": "mary.somerville@example.org"}})])  # rejected: no timestamps
    values = personal_values([p for _s, p in DATASET.events], DATASET.people)
    values.add("mary.somerville@example.org")
    assert_no_personal_data(json_log.getvalue(), values)  # at DEBUG: every library too


@pytest.mark.slow
def test_a_running_worker_writes_only_json_lines_without_personal_data(
        stream_env, workers, tmp_path):
    from tests.stream.fault_harness import produce

    raw = [("crm", orjson.dumps({"properties": {"email": "ada.lovelace@example.org"}}),
            [("source", b"hubspot")]),
           ("crm", b'{"id": "9", "properties": {"email": "alan.turing@example.com"',
            [("source", b"hubspot")])]
    produce(stream_env, DATASET.events, raw)
    total = len(DATASET.events) + len(raw)
    worker = workers("json", tmp_path / "data", IDGRAPH_LOG__FORMAT="json",
                     IDGRAPH_STREAM__BATCH_SIZE="50")
    wait_for(lambda: worker.stats().get("events_consumed", 0) >= total, 120,
             "every message consumed", [worker])
    assert worker.stop() == 0
    text = worker.log_path.read_text()
    values = personal_values([p for _s, p in DATASET.events], DATASET.people)
    values |= {"ada.lovelace@example.org", "alan.turing@example.com"}
    entries = assert_no_personal_data(text, values)
    loggers = {e["logger"] for e in entries}
    assert any(name.startswith(("faust", "mode", "aiokafka")) for name in loggers), loggers
    assert sum(e["message"].startswith("dead-lettered ") for e in entries) == len(raw)
    assert {e["process"] for e in entries} == {worker.proc.pid}
