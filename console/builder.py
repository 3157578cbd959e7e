"""The segment builder's clause rows and the language's canonical JSON form, both ways.

The builder shows a definition as rows joined by ``and`` or ``or``: one row per item of
the root (or the root itself when it is one clause). A row of a common construct
(attribute comparison, consent, identifier type, region, another segment, an event count
or sum within a window) gets its own fields; any other construct is a row holding its JSON.
The text editor and the rows stay in sync through the JSON form: rows -> JSON ->
``CheckSegment`` -> canonical text, and text -> ``CheckSegment`` -> JSON -> rows. The
console never parses the language itself: the server does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ROW_KINDS = ("compare", "consent", "has_identifier", "region", "in_segment", "event", "json")
COMPARE_OPS = ("=", "!=", "<", "<=", ">", ">=", "contains", "starts_with", "ends_with")
CONSENT_STATES = ("granted", "denied", "unknown")
EVENT_FUNCTIONS = ("count", "sum", "min", "max", "distinct")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


class BuilderError(ValueError):
    """A row the builder cannot turn into JSON; names the row (1-based) and field."""


@dataclass(slots=True)
class Row:
    kind: str
    fields: dict[str, str] = field(default_factory=dict)
    negate: bool = False

    def get(self, name: str, default: str = "") -> str:
        return self.fields.get(name, default)


def _value(text: str) -> Any:
    text = text.strip()
    if _NUMBER.match(text):
        return float(text) if "." in text else int(text)
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


def row_to_json(row: Row, number: int) -> dict[str, Any]:
    """The JSON node of one row (``number`` is 1-based, for error messages)."""
    def need(name: str) -> str:
        value = row.get(name).strip()
        if not value:
            raise BuilderError(f"row {number}: {name.replace('_', ' ')} is empty")
        return value

    kind = row.kind
    if kind == "compare":
        op = need("op")
        text_op = op in ("contains", "starts_with", "ends_with")
        node: dict[str, Any] = (
            {"kind": "text", "attribute": need("attribute"), "op": op, "value": need("value")}
            if text_op else
            {"kind": "compare", "attribute": need("attribute"), "op": op,
             "value": _value(need("value"))})
    elif kind == "consent":
        node = {"kind": "consent", "purpose": need("purpose"), "state": need("state")}
    elif kind == "has_identifier":
        node = {"kind": "has_identifier", "type": need("type")}
    elif kind == "region":
        regions = [r.strip() for r in need("regions").split(",") if r.strip()]
        node = {"kind": "region", "op": row.get("op") or "in", "regions": regions}
    elif kind == "in_segment":
        node = {"kind": "in_segment", "segment": need("segment")}
    elif kind == "event":
        days = need("within_days")
        if not days.isdigit() or int(days) <= 0:
            raise BuilderError(f"row {number}: within days must be a whole number above 0")
        node = {"kind": "event",
                "query": {"event": need("event"), "within": {"amount": int(days), "unit": "d"}},
                "function": row.get("function") or "count", "op": row.get("op") or ">=",
                "value": _value(need("value"))}
        if node["function"] != "count":
            node["property"] = need("property")
    elif kind == "json":
        try:
            node = json.loads(need("json"))
        except json.JSONDecodeError as exc:
            raise BuilderError(f"row {number}: not JSON (line {exc.lineno}, column "
                               f"{exc.colno}: {exc.msg})") from None
        if not isinstance(node, dict):
            raise BuilderError(f"row {number}: the JSON must be an object")
    else:
        raise BuilderError(f"row {number}: unknown kind of row")
    return {"kind": "not", "item": node} if row.negate else node


def rows_to_json(combine: str, rows: list[Row]) -> dict[str, Any]:
    """The definition's JSON form: the rows joined by ``combine`` (``and``/``or``)."""
    if not rows:
        raise BuilderError("add at least one row")
    nodes = [row_to_json(row, i + 1) for i, row in enumerate(rows)]
    if len(nodes) == 1:
        return nodes[0]
    return {"kind": "or" if combine == "or" else "and", "items": nodes}


def _row_of(node: Mapping[str, Any]) -> Row:
    negate = False
    if node.get("kind") == "not" and isinstance(node.get("item"), dict):
        inner = _row_of(node["item"])
        if inner.kind != "json":
            inner.negate = True
            return inner
    kind = node.get("kind")
    if kind == "compare" and set(node) == {"kind", "attribute", "op", "value"}:
        value = node["value"]
        shown = json.dumps(value) if isinstance(value, str) and _NUMBER.match(value) else value
        return Row("compare", {"attribute": node["attribute"], "op": node["op"],
                               "value": str(shown)}, negate)
    if kind == "text" and set(node) == {"kind", "attribute", "op", "value"}:
        return Row("compare", {"attribute": node["attribute"], "op": node["op"],
                               "value": str(node["value"])}, negate)
    if kind == "consent" and set(node) == {"kind", "purpose", "state"}:
        return Row("consent", {"purpose": node["purpose"], "state": node["state"]}, negate)
    if kind == "has_identifier" and set(node) == {"kind", "type"}:
        return Row("has_identifier", {"type": node["type"]}, negate)
    if kind == "region" and set(node) == {"kind", "op", "regions"}:
        return Row("region", {"op": node["op"], "regions": ", ".join(node["regions"])}, negate)
    if kind == "in_segment" and set(node) == {"kind", "segment"}:
        return Row("in_segment", {"segment": node["segment"]}, negate)
    if kind == "event" and _simple_event(node):
        within = node["query"]["within"]
        fields = {"event": node["query"]["event"], "within_days": str(within["amount"]),
                  "function": node["function"], "op": node["op"], "value": str(node["value"])}
        if "property" in node:
            fields["property"] = node["property"]
        return Row("event", fields, negate)
    return Row("json", {"json": json.dumps(node, indent=1)}, negate)


def _simple_event(node: Mapping[str, Any]) -> bool:
    query = node.get("query")
    if not isinstance(query, dict) or set(query) != {"event", "within"}:
        return False
    within = query["within"]
    return (isinstance(within, dict) and within.get("unit") == "d"
            and node.get("function") in EVENT_FUNCTIONS
            and set(node) <= {"kind", "query", "function", "op", "value", "property"})


def json_to_rows(definition: Mapping[str, Any]) -> tuple[str, list[Row]]:
    """``(combine, rows)`` for the builder from a definition's JSON form."""
    if definition.get("kind") in ("and", "or") and isinstance(definition.get("items"), list):
        return definition["kind"], [_row_of(item) for item in definition["items"]]
    return "and", [_row_of(definition)]


def rows_from_form(form: Mapping[str, str]) -> tuple[str, list[Row]]:
    """The builder's rows as the page posted them (``rows-N-FIELD``), in order; a
    ``remove`` of N drops row N, an ``add`` of a kind appends an empty row."""
    rows: list[Row] = []
    i = 0
    while f"rows-{i}-kind" in form:
        prefix = f"rows-{i}-"
        fields = {k[len(prefix):]: str(v) for k, v in form.items() if k.startswith(prefix)}
        kind = fields.pop("kind")
        negate = fields.pop("negate", "") == "on"
        rows.append(Row(kind if kind in ROW_KINDS else "json", fields, negate))
        i += 1
    remove = form.get("remove", "")
    if remove.isdigit() and int(remove) < len(rows):
        del rows[int(remove)]
    add = form.get("add", "")
    if add in ROW_KINDS:
        rows.append(Row(add))
    return ("or" if form.get("combine") == "or" else "and"), rows
