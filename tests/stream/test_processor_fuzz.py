"""Fuzzing at the worker's door: vendor payloads with one field replaced by an arbitrary
JSON value (or removed), raw bytes, and wrong source headers, through the real
:class:`~idgraph.stream.processor.BatchProcessor` and engine.

Properties: processing never raises; an untouched valid event is never dead-lettered, even
beside broken ones in its batch; no dead-letter reason and no log line repeats a value the
fuzzer put in (each carries a marker no real payload has). An unknown ``source`` header is
named in the reason only when it reads as a name (an identifier of at most 40 characters),
so the fuzzer's headers carry the marker after a ``-``.
"""

from __future__ import annotations

import copy
import logging

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from idgraph.engine import Engine
from idgraph.generator import generate
from idgraph.settings import Settings
from idgraph.stream.events import RawEvent
from idgraph.stream.processor import BatchProcessor
from idgraph.stream.produce import topic_of_system

MARKER = "Zq7xV"
ITEMS = generate(n_records=200, seed=31).events
TOPICS = topic_of_system(Settings().stream)
SYSTEMS = sorted({s for s, _ in ITEMS}) + ["marketo", ""]

TEXT = st.characters(blacklist_categories=("Cs",))  # JSON text is valid UTF-8
marked_text = st.text(TEXT, max_size=12).map(lambda t: f"{MARKER}{t}")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | marked_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(marked_text, inner, max_size=3),
    max_leaves=6)


def _paths(doc, prefix=()):
    """Every key path of a JSON document (dicts and lists)."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield (*prefix, k)
            yield from _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield (*prefix, i)
            yield from _paths(v, (*prefix, i))


@st.composite
def broken_event(draw, offset: int) -> RawEvent:
    system, payload = draw(st.sampled_from(ITEMS))
    kind = draw(st.sampled_from(["replace", "delete", "bytes", "source"]))
    headers = [("source", system.encode())]
    if kind == "bytes":
        value = draw(st.binary(max_size=64)) + MARKER.encode()
    else:
        doc = copy.deepcopy(payload)
        if kind in ("replace", "delete"):
            path = draw(st.sampled_from(list(_paths(doc))))
            parent = doc
            for step in path[:-1]:
                parent = parent[step]
            if kind == "replace":
                parent[path[-1]] = draw(json_values)
            elif isinstance(parent, dict):
                del parent[path[-1]]
            else:
                parent.pop(path[-1])
        else:
            # an unknown source is named only when it reads as a name (stream/events.py)
            name = draw(st.sampled_from(SYSTEMS)) + draw(st.text(TEXT, max_size=6))
            headers = [("source", f"{name}-{MARKER}".encode())]
        value = orjson.dumps(doc)
    return RawEvent(TOPICS[system], 1, offset, None, value, headers)


@pytest.fixture(scope="module")
def processor(tmp_path_factory):
    settings = Settings(data_dir=tmp_path_factory.mktemp("fuzz") / "d")
    with Engine(settings) as engine:
        yield BatchProcessor(engine, settings.stream)


@settings(max_examples=120, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_broken_payloads_are_dead_lettered_without_their_values(processor, caplog, data):
    n_broken = data.draw(st.integers(1, 4))
    broken = [data.draw(broken_event(offset)) for offset in range(n_broken)]
    valid_items = data.draw(st.lists(st.sampled_from(ITEMS), max_size=3))
    valid = [RawEvent(TOPICS[s], 0, 100 + i, None, orjson.dumps(p), [("source", s.encode())])
             for i, (s, p) in enumerate(valid_items)]
    batch = data.draw(st.permutations(broken + valid))
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        outcome = processor.process(batch)
    dead = {(d.event.partition, d.event.offset) for d in outcome.dead}
    assert not dead & {(e.partition, e.offset) for e in valid}, "a valid event was dead-lettered"
    for d in outcome.dead:
        assert MARKER not in d.reason, d.reason
    for record in caplog.records:
        assert MARKER not in record.getMessage()
        if record.exc_text:
            assert MARKER not in record.exc_text
