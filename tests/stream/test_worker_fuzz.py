"""Fuzzing through a running worker: broken messages (vendor payloads with a field replaced
by an awkward value or removed, raw bytes, wrong source headers, as in
:mod:`test_processor_fuzz`, here from a seeded random generator so one run of the worker
sees many kinds at once) and valid ones, produced to the real broker with a plain client and consumed by a real
``idgraph worker`` process.

Properties: the worker stays up and acknowledges every message; the dead-letter topic holds
exactly what the in-process :class:`~idgraph.stream.processor.BatchProcessor` rejects from
the same messages, with the same reasons and the original bytes; the worker stores the same
events; its log never repeats a value the fuzzer put in.
"""

from __future__ import annotations

import copy
import random
import re
import time

import orjson
import pytest

from idgraph.engine import Engine
from idgraph.settings import Settings
from idgraph.stream.events import REASON, RawEvent
from idgraph.stream.processor import BatchProcessor
from idgraph.stream.produce import topic_of_system
from tests.stream.fault_harness import (
    committed_offsets,
    end_offsets,
    processed,
    produce,
    read_topic,
    stream_settings,
)
from tests.stream.test_processor_fuzz import ITEMS, MARKER, SYSTEMS, _paths

pytestmark = pytest.mark.slow

N_BROKEN, N_VALID = 150, 100
SEED = 20261207
AWKWARD = [None, True, -1, 2**63 - 1, 1.5e308, "", f"{MARKER}\u202e\x00", [f"{MARKER}"],
           {MARKER: {MARKER: [None]}}, f"{MARKER}" * 300]


def broken_messages(rng: random.Random, n: int, topics: dict[str, str]) -> list[RawEvent]:
    """``n`` broken copies of the generator's payloads on ``topics`` (system -> topic),
    each carrying :data:`MARKER` wherever it put something of its own."""
    out = []
    for offset in range(n):
        system, payload = rng.choice(ITEMS)
        kind = rng.choice(["replace", "delete", "bytes", "source"])
        headers = [("source", system.encode())]
        doc = copy.deepcopy(payload)
        if kind == "bytes":
            value = rng.randbytes(rng.randrange(64)) + MARKER.encode()
        else:
            if kind == "source":
                headers = [("source", f"{rng.choice(SYSTEMS)}-{MARKER}".encode())]
            else:
                path = rng.choice(list(_paths(doc)))
                parent = doc
                for step in path[:-1]:
                    parent = parent[step]
                if kind == "replace":
                    parent[path[-1]] = rng.choice(AWKWARD)
                else:
                    del parent[path[-1]]
            value = orjson.dumps(doc)
        out.append(RawEvent(topics[system], 1, offset, None, value, headers))
    return out
_LOG_REF = re.compile(r"\(log ref [0-9a-f]{12}\)")


def _kind(topic: str) -> str:
    """``P.events.crm`` -> ``crm``."""
    return topic.rsplit(".", 1)[1]


def _dead_letters(values_and_reasons) -> list[tuple[bytes, str]]:
    return sorted((value or b"", _LOG_REF.sub("(log ref)", reason))
                  for value, reason in values_and_reasons)


def test_a_running_worker_dead_letters_fuzzed_messages_as_the_processor_does(
        workers, stream_env, tmp_path):
    cfg = stream_settings(stream_env)  # the worker's topics
    topics = topic_of_system(cfg)
    broken = broken_messages(random.Random(SEED), N_BROKEN, topics)
    valid = ITEMS[:N_VALID]

    # the reference: the same messages through the processor in this process
    ref_settings = Settings(data_dir=tmp_path / "reference", stream=cfg)
    with Engine(ref_settings) as engine:
        messages = [RawEvent(topics[s], 0, n, None, orjson.dumps(p), [("source", s.encode())])
                    for n, (s, p) in enumerate(valid)] + broken
        outcome = BatchProcessor(engine, ref_settings.stream).process(messages)
        expected_dead = _dead_letters((d.event.value, d.reason) for d in outcome.dead)
        expected_events = engine.store.counts()["processed_events"]
    assert expected_dead and len(expected_dead) < N_BROKEN  # the fuzz is neither all nor none

    data_dir = tmp_path / "worker"
    worker = workers("fuzzed", data_dir)
    produce(stream_env, valid, [(_kind(e.topic), e.value, e.headers) for e in broken])
    ends = end_offsets(stream_env)
    deadline = time.monotonic() + 120
    while any(committed_offsets(stream_env).get(tp, 0) < end for tp, end in ends.items()):
        assert worker.alive(), worker.log_tail()
        assert time.monotonic() < deadline, "the worker did not acknowledge every message"
        time.sleep(0.5)

    got = read_topic(stream_env, cfg.dead_letter_topic)
    dead = _dead_letters((m.value, dict(m.headers)[REASON].decode()) for m in got)
    missing = [r for v, r in expected_dead if (v, r) not in dead]
    extra = [r for v, r in dead if (v, r) not in expected_dead]
    assert dead == expected_dead, f"only in-process: {missing}; only the worker: {extra}"
    assert worker.stop() == 0
    assert processed(data_dir) == expected_events
    assert MARKER not in worker.log_path.read_text(errors="replace")
