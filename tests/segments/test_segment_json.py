"""The canonical JSON form: its shape, and validation errors that name the JSON path."""

from __future__ import annotations

import pytest

from idgraph.segments import InvalidSegmentError, from_json, parse, to_json


def test_the_json_form_is_plain_and_readable():
    node = parse('country = "DE" and event("purchase").within(30d).count() >= 2')
    assert to_json(node) == {"kind": "and", "items": [
        {"kind": "compare", "attribute": "country", "op": "=", "value": "DE"},
        {"kind": "event", "query": {"event": "purchase", "within": {"amount": 30, "unit": "d"}},
         "function": "count", "op": ">=", "value": 2}]}
    assert from_json(to_json(node)) == node


@pytest.mark.parametrize(("data", "path", "problem"), [
    ([], "$", "expected an object"),
    ({"kind": "nope"}, "$.kind", "unknown kind 'nope'"),
    ({"kind": "and", "items": [{"kind": "in_segment", "segment": "A"}]}, "$.items",
     "at least two"),
    ({"kind": "and", "items": [{"kind": "in_segment", "segment": "A"},
                               {"kind": "compare", "attribute": "a", "op": "="}]},
     "$.items[1]", "missing field 'value'"),
    ({"kind": "not", "item": {"kind": "compare", "attribute": "a", "op": "==", "value": 1}},
     "$.item.op", "must be one of"),
    ({"kind": "event", "function": "count", "op": ">", "value": 1,
      "query": {"event": "x", "within": {"amount": 401, "unit": "d"}}},
     "$.query.within", "longer than 400 days"),
    ({"kind": "event", "function": "count", "op": ">", "value": 1,
      "query": {"event": "x", "where": {"kind": "in_segment", "segment": "A"}}},
     "$.query.where", "event properties only"),
    ({"kind": "matches", "attribute": "a", "pattern": "("}, "$.pattern",
     "invalid regular expression '('"),
    ({"kind": "compare", "attribute": "a", "op": "=", "value": True}, "$.value",
     "string or a number"),
    ({"kind": "in_segment", "segment": "A", "extra": 1}, "$", "unknown field 'extra'"),
    ({"kind": "event", "function": "sum", "op": ">", "value": 1, "query": {"event": "x"}},
     "$", "sum() needs a property name"),
    ({"kind": "sequence", "steps": [{"event": "a"}, {"event": 5}]}, "$.steps[1].event",
     "event type must be a non-empty string"),
])
def test_invalid_json_names_the_path(data, path, problem):
    with pytest.raises(InvalidSegmentError) as caught:
        from_json(data)
    assert caught.value.path == path, str(caught.value)
    assert problem in caught.value.problem
    assert str(caught.value).startswith(path + ":")
