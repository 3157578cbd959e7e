"""Input decoding and dead-letter headers: every rejection names its reason."""

from __future__ import annotations

import orjson
import pytest

from idgraph.profile_store.base import ProfileChange
from idgraph.stream.events import (
    OFFSET,
    PARTITION,
    REASON,
    TOPIC,
    EventRejected,
    RawEvent,
    change_message,
    dead_letter_headers,
    decode,
)

CRM = ["salesforce", "hubspot"]


def ev(value: bytes | None, headers=(), topic="idgraph.events.crm") -> RawEvent:
    return RawEvent(topic, 3, 41, b"k", value, list(headers))


def test_decodes_json_with_the_source_header():
    system, payload = decode(ev(b'{"id": "51"}', [("source", b"hubspot")]), CRM, 1000)
    assert system == "hubspot" and payload == {"id": "51"}


def test_a_topic_with_one_system_needs_no_header():
    assert decode(ev(b"{}", topic="idgraph.events.device"), ["segment"], 1000)[0] == "segment"


@pytest.mark.parametrize(("event", "reason"), [
    (ev(b"{not json", [("source", b"hubspot")]), r"^invalid JSON: .*line 1 column 2"),
    (ev(b"{}", [("source", b"marketo")]),
     r"^unknown source 'marketo' for topic idgraph.events.crm; it carries salesforce, hubspot$"),
    (ev(b"{}"), r"^unknown source: no 'source' header, and topic idgraph.events.crm carries"),
    (ev(b"{}", [("source", b"\xff\xfe")]), r"^unknown source: the 'source' header is not UTF-8"),
    (ev(b"{}", [("source", b"DROP TABLE x; --")]), r"^unknown source '\(unreadable\)'"),
    (ev(None, [("source", b"hubspot")]), r"^empty message"),
    (ev(b'{"a": "' + b"x" * 2000 + b'"}', [("source", b"hubspot")]),
     r"^oversized payload: 2009 bytes, more than stream.max_event_bytes \(1024\)$"),
])
def test_rejections_name_the_reason(event, reason):
    with pytest.raises(EventRejected, match=reason):
        decode(event, CRM, 1024)


def test_dead_letter_headers_keep_the_originals_and_say_where_from():
    event = ev(b"{}", [("source", b"hubspot"), ("trace", b"t-1"), (REASON, b"old reason")])
    headers = dict(dead_letter_headers(event, "invalid JSON: x", "hubspot"))
    assert headers["trace"] == b"t-1" and headers["source"] == b"hubspot"
    assert headers[REASON] == b"invalid JSON: x"  # a replayed dead letter gets the new reason
    assert (headers[TOPIC], headers[PARTITION], headers[OFFSET]) == (
        b"idgraph.events.crm", b"3", b"41")


def test_change_messages_are_keyed_by_profile_and_carry_ids_only():
    key, value = change_message(ProfileChange("merged", "p_a", ["p_b"], "eu", 12.5, "7"))
    assert key == b"p_a"
    assert orjson.loads(value) == {"change_id": "7", "kind": "merged", "profile_id": "p_a",
                                   "related_ids": ["p_b"], "region": "eu", "event_time": 12.5}
