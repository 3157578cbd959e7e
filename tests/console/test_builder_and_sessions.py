"""The segment builder's rows <-> the language's JSON form, and session expiry (no
browser, no server)."""

from __future__ import annotations

import tomllib
from importlib import resources

import pytest

from idgraph.console.builder import (
    BuilderError,
    Row,
    json_to_rows,
    rows_from_form,
    rows_to_json,
)
from idgraph.console.sessions import Sessions
from idgraph.segments.ast import from_json, to_json
from idgraph.segments.language import parse

EXAMPLES = tomllib.loads(
    resources.files("idgraph.segments").joinpath("examples.toml").read_text())["segments"]


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_example_survives_rows_and_back(name):
    tree = to_json(parse(EXAMPLES[name]["definition"]))
    combine, rows = json_to_rows(tree)
    assert rows_to_json(combine, rows) == tree
    from_json(rows_to_json(combine, rows))  # and it is still a valid definition


def test_common_constructs_get_their_own_fields_and_others_keep_their_json():
    text = ('country = "DE" and not has_identifier(crm) and region in ("eu") and '
            'event("Order Completed").within(180d).sum(total) >= 200 and email exists')
    _combine, rows = json_to_rows(to_json(parse(text)))
    assert [r.kind for r in rows] == ["compare", "has_identifier", "region", "event", "json"]
    assert rows[1].negate and rows[3].get("property") == "total"


def test_a_form_becomes_rows_with_add_and_remove():
    form = {"combine": "or", "rows-0-kind": "consent", "rows-0-purpose": "email",
            "rows-0-state": "granted", "rows-1-kind": "region", "rows-1-op": "in",
            "rows-1-regions": "eu, uk", "rows-1-negate": "on", "remove": "0", "add": "event"}
    combine, rows = rows_from_form(form)
    assert combine == "or"
    assert [r.kind for r in rows] == ["region", "event"] and rows[0].negate
    assert rows_to_json("and", rows[:1]) == {
        "kind": "not", "item": {"kind": "region", "op": "in", "regions": ["eu", "uk"]}}


def test_an_incomplete_row_names_its_number_and_field():
    with pytest.raises(BuilderError, match="row 2: purpose is empty"):
        rows_to_json("and", [Row("has_identifier", {"type": "email"}), Row("consent", {})])
    with pytest.raises(BuilderError, match="row 1: not JSON"):
        rows_to_json("and", [Row("json", {"json": "{nope"})])
    with pytest.raises(BuilderError, match="at least one row"):
        rows_to_json("and", [])


def test_a_number_typed_in_quotes_stays_text():
    node = rows_to_json("and", [Row("compare", {"attribute": "zip", "op": "=",
                                                "value": '"01234"'})])
    assert node["value"] == "01234"
    assert json_to_rows(node)[1][0].get("value") == '"01234"'


def test_sessions_end_when_idle_at_their_age_and_at_sign_out():
    now = [0.0]
    sessions = Sessions(idle_seconds=60, max_seconds=300, clock=lambda: now[0])
    fields = {"key": "k", "principal": "key:x", "owner": "o", "roles": ["marketer"],
              "regions": [], "permissions": frozenset({"segments.read"}), "unmask": False}
    s = sessions.start(**fields)
    now[0] = 59
    assert sessions.get(s.session_id) is s  # used: the idle clock starts again
    now[0] = 119
    assert sessions.get(s.session_id) is s
    now[0] = 180
    assert sessions.get(s.session_id) is None  # idle 61 s
    s = sessions.start(**fields)
    for t in range(230, 481, 50):
        now[0] = t
        assert sessions.get(s.session_id) is s
    now[0] = 481
    assert sessions.get(s.session_id) is None  # 301 s after sign-in
    s = sessions.start(**fields)
    sessions.end(s.session_id)
    assert sessions.get(s.session_id) is None
    assert not s.csrf_ok(None) and not s.csrf_ok("x") and s.csrf_ok(s.csrf)
