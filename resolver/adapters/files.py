"""Read the files the source systems hand out, one raw payload at a time.

=================  ==================================================================
source             file content (a JSON document, a JSON array of them, or JSON lines)
=================  ==================================================================
salesforce         SOQL query responses ``{"totalSize", "done", "records": [...]}``
                   (pages), or bare sObject records
hubspot            CRM v3 list pages ``{"results": [...], "paging": {...}}``, or bare
                   contact objects
sendgrid           Event Webhook batches (a JSON array of events), or single events
segment            one event per line, or a batch object ``{"batch": [...]}`` (its
                   top-level ``sentAt``/``context`` fill in what the events lack)
google_calendar    Events lists ``{"kind": "calendar#events", "items": [...]}``, or bare
                   Event resources
mandrill           webhook batches: the ``mandrill_events`` JSON array of events, an
                   object ``{"mandrill_events": [...]}`` (or its JSON text), single
                   events; or raw webhook bodies ``mandrill_events=<url-encoded JSON>``,
                   one per line
=================  ==================================================================

The format is detected from the content: if the first non-blank line is a complete JSON
value the file is read as JSON lines (streamed), else as one JSON document; for a source
whose webhook POSTs a form (Mandrill), a first line that is a form body makes every line
one form body. ``*.gz`` files are decompressed. Malformed content raises
:class:`InvalidPayloadError` whose field names the location: ``<path>:line N`` for invalid
JSON (``<path>:line N:mandrill_events`` in a form body, ``<path>:line N`` for a form body
without that field), ``<path>:$...`` or ``<path>:line N:$...`` (a JSON path) for a value of
the wrong shape.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from os import PathLike
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import orjson

from idgraph.core.errors import InvalidPayloadError
from idgraph.resolver.model import SOURCES

__all__ = ["iter_payloads"]

_BOM = b"\xef\xbb\xbf"


class _Shape(Exception):
    """A value of the wrong shape at JSON path ``jpath`` (converted to InvalidPayloadError)."""

    def __init__(self, jpath: str, problem: str) -> None:
        super().__init__(problem)
        self.jpath = jpath
        self.problem = problem


def _objects(items: Any, jpath: str) -> Iterator[dict]:
    if not isinstance(items, list):
        raise _Shape(jpath, "not a list")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise _Shape(f"{jpath}[{i}]", "not an object")
        yield item


def _pages(doc: Any, jpath: str, page: Callable[[dict, str], Iterator[dict]]) -> Iterator[dict]:
    """A document that is one page/object, or an array of them (arrays may nest)."""
    if isinstance(doc, dict):
        yield from page(doc, jpath)
    elif isinstance(doc, list):
        for i, item in enumerate(doc):
            yield from _pages(item, f"{jpath}[{i}]", page)
    else:
        raise _Shape(jpath, "not an object or array")


def _salesforce_page(doc: dict, jpath: str) -> Iterator[dict]:
    if "records" in doc:
        return _objects(doc["records"], f"{jpath}.records")
    if "attributes" in doc:
        return iter((doc,))
    raise _Shape(jpath, "neither a query response (records) nor an sObject record (attributes)")


def _hubspot_page(doc: dict, jpath: str) -> Iterator[dict]:
    if "results" in doc:
        return _objects(doc["results"], f"{jpath}.results")
    if "properties" in doc:
        return iter((doc,))
    raise _Shape(jpath, "neither a list page (results) nor a contact object (properties)")


def _sendgrid_page(doc: dict, jpath: str) -> Iterator[dict]:
    return iter((doc,))  # one event (a batch is the surrounding array)


def _segment_page(doc: dict, jpath: str) -> Iterator[dict]:
    if "batch" in doc:
        return _segment_batch(doc, jpath)
    return iter((doc,))


def _segment_batch(doc: dict, jpath: str) -> Iterator[dict]:
    sent_at = doc.get("sentAt")
    context = doc.get("context")
    if not isinstance(context, dict):
        context = None
    for event in _objects(doc["batch"], f"{jpath}.batch"):
        if context is not None or (sent_at is not None and "sentAt" not in event):
            event = dict(event)
            if sent_at is not None:
                event.setdefault("sentAt", sent_at)
            if context is not None:
                own = event.get("context")
                event["context"] = {**context, **own} if isinstance(own, dict) else context
        yield event


def _calendar_page(doc: dict, jpath: str) -> Iterator[dict]:
    if "items" in doc or doc.get("kind") == "calendar#events":
        return _objects(doc.get("items", []), f"{jpath}.items")
    if "id" in doc:
        return iter((doc,))
    raise _Shape(jpath, "neither an Events list (items) nor an Event resource (id)")


def _mandrill_page(doc: dict, jpath: str) -> Iterator[dict]:
    if "mandrill_events" not in doc:
        return iter((doc,))  # one event (a batch is the surrounding array)
    events = doc["mandrill_events"]
    jpath = f"{jpath}.mandrill_events"
    if isinstance(events, str):  # the form field's text, stored as it was POSTed
        try:
            events = orjson.loads(events)
        except orjson.JSONDecodeError as exc:
            raise _Shape(jpath, f"invalid JSON: {exc.msg}") from None
    return _objects(events, jpath)


_PAGE_READERS: dict[str, Callable[[dict, str], Iterator[dict]]] = {
    "salesforce": _salesforce_page,
    "hubspot": _hubspot_page,
    "sendgrid": _sendgrid_page,
    "segment": _segment_page,
    "google_calendar": _calendar_page,
    "mandrill": _mandrill_page,
}

#: Sources whose webhook POSTs a form: the field holding the JSON payload.
_FORM_FIELDS = {"mandrill": "mandrill_events"}


def iter_payloads(
    source: str,
    path: str | PathLike[str],
    on_error: Callable[[InvalidPayloadError, str], None] | None = None,
) -> Iterator[dict]:
    """Yield the raw payloads (one source record/event each) in the file at ``path``.

    Raises :class:`InvalidPayloadError` for an unknown source or malformed content (see the
    module docstring for the field format); ``OSError`` when the file cannot be read.
    With ``on_error``, a malformed *line* of a JSON-lines file is one bad event, not a bad
    file: ``on_error(error, line_text)`` is called and reading goes on. A malformed single
    JSON document still raises (nothing in it can be trusted).
    """
    page = _PAGE_READERS.get(source)
    if page is None:
        raise InvalidPayloadError(
            str(source), "source", f"unknown source kind; known: {', '.join(SOURCES)}"
        )
    path = Path(path)
    return _iter_file(source, path, page, on_error)


def _iter_file(
    source: str, path: Path, page: Callable[[dict, str], Iterator[dict]],
    on_error: Callable[[InvalidPayloadError, str], None] | None = None,
) -> Iterator[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        lineno = 0
        first = b""
        for raw in fh:
            lineno += 1
            if lineno == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM) :]
            if raw.strip():
                first = raw
                break
        if not first:
            return  # empty file
        field = _FORM_FIELDS.get(source)
        if field is not None and _is_form_body(first, field):
            yield from _form_lines(source, path, lineno, first, fh, field, page, on_error)
            return
        try:
            doc = orjson.loads(first)
        except orjson.JSONDecodeError:
            # One (pretty-printed) JSON document.
            data = first + fh.read()
            try:
                doc = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                raise InvalidPayloadError(
                    source, f"{path}:line {lineno - 1 + exc.lineno}", f"invalid JSON: {exc.msg}"
                ) from None
            yield from _located(source, f"{path}:", doc, page)
            return
        # JSON lines.
        yield from _line(source, path, lineno, first, doc, page, on_error)
        for raw in fh:
            lineno += 1
            if not raw.strip():
                continue
            try:
                doc = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                error = InvalidPayloadError(
                    source, f"{path}:line {lineno}", f"invalid JSON: {exc.msg}"
                )
                if on_error is None:
                    raise error from None
                on_error(error, raw.decode("utf-8", "replace").rstrip("\n"))
                continue
            yield from _line(source, path, lineno, raw, doc, page, on_error)


def _is_form_body(line: bytes, field: str) -> bool:
    """Whether ``line`` is an ``application/x-www-form-urlencoded`` body with ``field``."""
    text = line.strip()
    return not text.startswith((b"[", b"{", b'"')) and (
        text.startswith(f"{field}=".encode()) or f"&{field}=".encode() in text
    )


def _form_lines(
    source: str, path: Path, lineno: int, first: bytes, fh: Any, field: str,
    page: Callable[[dict, str], Iterator[dict]],
    on_error: Callable[[InvalidPayloadError, str], None] | None,
) -> Iterator[dict]:
    """The payloads of a file of form bodies, one per non-blank line (``first`` is line
    ``lineno``); a malformed line is reported like a malformed JSON line."""
    raw = first
    while True:
        try:
            doc = _form_json(source, f"{path}:line {lineno}", raw, field)
        except InvalidPayloadError as error:
            if on_error is None:
                raise
            on_error(error, raw.decode("utf-8", "replace").rstrip("\n"))
        else:
            yield from _line(source, path, lineno, raw, doc, page, on_error)
        for raw in fh:
            lineno += 1
            if raw.strip():
                break
        else:
            return


def _form_json(source: str, where: str, raw: bytes, field: str) -> Any:
    """The JSON value of form field ``field`` in the body ``raw``."""
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise InvalidPayloadError(source, where, "form body is not UTF-8") from None
    values = parse_qs(text, keep_blank_values=True).get(field)
    if not values:
        raise InvalidPayloadError(source, where, f"form body without {field}")
    try:
        return orjson.loads(values[-1])
    except orjson.JSONDecodeError as exc:
        raise InvalidPayloadError(source, f"{where}:{field}", f"invalid JSON: {exc.msg}") from None


def _line(
    source: str, path: Path, lineno: int, raw: bytes, doc: Any,
    page: Callable[[dict, str], Iterator[dict]],
    on_error: Callable[[InvalidPayloadError, str], None] | None,
) -> Iterator[dict]:
    """The payloads of one JSON line; a shape error is reported per line when asked."""
    try:
        yield from _located(source, f"{path}:line {lineno}:", doc, page)
    except InvalidPayloadError as error:
        if on_error is None:
            raise
        on_error(error, raw.decode("utf-8", "replace").rstrip("\n"))


def _located(
    source: str, prefix: str, doc: Any, page: Callable[[dict, str], Iterator[dict]]
) -> Iterator[dict]:
    try:
        yield from _pages(doc, "$", page)
    except _Shape as exc:
        raise InvalidPayloadError(source, prefix + exc.jpath, exc.problem) from None
