"""iter_payloads: the files each source hands out, in their different layouts."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from urllib.parse import urlencode

import pytest

from idgraph.core.errors import InvalidPayloadError
from idgraph.resolver.adapters import adapt
from idgraph.resolver.adapters.files import iter_payloads

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def jsonl(*docs) -> str:
    return "".join(json.dumps(d) + "\n" for d in docs)


def ids(payloads, key: str) -> list:
    return [p[key] for p in payloads]


# ----------------------------------------------------------------------------- salesforce


def test_salesforce_query_response_pretty_printed() -> None:
    payloads = list(iter_payloads("salesforce", FIXTURES / "salesforce_query.json"))
    assert ids(payloads, "Id") == ["0035e00000AbCdEAAB", "0035e00000QrStUAAR", "00Q5e00000LmNoPEAV"]


def test_salesforce_pages_as_array_and_as_json_lines(tmp_path: Path) -> None:
    resp = fixture("salesforce_query.json")
    page1 = dict(
        resp,
        records=resp["records"][:2],
        done=False,
        nextRecordsUrl="/services/data/v59.0/query/01gD0000002HU6KIAW-2000",
    )
    page2 = dict(resp, records=resp["records"][2:])
    expected = [r["Id"] for r in resp["records"]]
    array = write(tmp_path / "pages.json", json.dumps([page1, page2], indent=2))
    lines = write(tmp_path / "pages.jsonl", jsonl(page1, page2))
    assert ids(iter_payloads("salesforce", array), "Id") == expected
    assert ids(iter_payloads("salesforce", str(lines)), "Id") == expected  # str path too


def test_salesforce_bare_records(tmp_path: Path) -> None:
    records = fixture("salesforce_query.json")["records"]
    path = write(tmp_path / "records.json", json.dumps(records))
    assert len(list(iter_payloads("salesforce", path))) == 3


def test_salesforce_wrong_shape(tmp_path: Path) -> None:
    path = write(
        tmp_path / "x.json", json.dumps({"totalSize": 1, "done": True, "rows": []}, indent=2)
    )
    with pytest.raises(InvalidPayloadError) as info:
        list(iter_payloads("salesforce", path))
    assert info.value.source == "salesforce"
    assert info.value.field == f"{path}:$"
    assert "query response" in info.value.problem


def test_salesforce_record_not_an_object(tmp_path: Path) -> None:
    path = write(
        tmp_path / "x.jsonl",
        jsonl({"totalSize": 2, "done": True, "records": [{"attributes": {}}, 5]}),
    )
    with pytest.raises(InvalidPayloadError) as info:
        list(iter_payloads("salesforce", path))
    assert info.value.field == f"{path}:line 1:$.records[1]"
    assert info.value.problem == "not an object"


# ----------------------------------------------------------------------------- hubspot


def test_hubspot_list_page_and_pages(tmp_path: Path) -> None:
    page = fixture("hubspot_page.json")
    assert ids(iter_payloads("hubspot", FIXTURES / "hubspot_page.json"), "id") == ["51", "1001"]
    last = {"results": [dict(page["results"][0], id="77")]}  # last page: no paging
    arr = write(tmp_path / "pages.json", json.dumps([page, last]))
    assert ids(iter_payloads("hubspot", arr), "id") == ["51", "1001", "77"]
    lines = write(tmp_path / "pages.jsonl", jsonl(page, last))
    assert ids(iter_payloads("hubspot", lines), "id") == ["51", "1001", "77"]


def test_hubspot_results_not_a_list(tmp_path: Path) -> None:
    path = write(tmp_path / "x.json", json.dumps([{"results": {"id": "1"}}]))
    with pytest.raises(InvalidPayloadError) as info:
        list(iter_payloads("hubspot", path))
    assert info.value.field == f"{path}:line 1:$[0].results"  # one line: read as JSON lines
    assert info.value.problem == "not a list"


# ----------------------------------------------------------------------------- sendgrid


def test_sendgrid_batch_and_batches(tmp_path: Path) -> None:
    events = fixture("sendgrid_batch.json")
    assert len(list(iter_payloads("sendgrid", FIXTURES / "sendgrid_batch.json"))) == 6
    lines = write(tmp_path / "batches.jsonl", jsonl(events[:4], events[4:]))
    assert ids(iter_payloads("sendgrid", lines), "sg_event_id") == ids(events, "sg_event_id")


def test_sendgrid_scalar_in_batch(tmp_path: Path) -> None:
    path = write(tmp_path / "x.jsonl", jsonl([{"event": "open"}], [{"event": "open"}, "oops"]))
    with pytest.raises(InvalidPayloadError) as info:
        list(iter_payloads("sendgrid", path))
    assert info.value.field == f"{path}:line 2:$[1]"


# ----------------------------------------------------------------------------- segment


def test_segment_json_lines() -> None:
    payloads = list(iter_payloads("segment", FIXTURES / "segment_events.jsonl"))
    assert [p["type"] for p in payloads] == ["page", "identify", "track", "screen", "alias"]


def test_segment_batch_object(tmp_path: Path) -> None:
    events = [json.loads(x) for x in (FIXTURES / "segment_events.jsonl").read_text().splitlines()]
    events[0].pop("sentAt")
    batch = {
        "batch": events[:2],
        "sentAt": "2024-05-01T10:05:00.000Z",
        "context": {"library": {"name": "analytics-python", "version": "2.3.2"}},
    }
    path = write(tmp_path / "batch.json", json.dumps(batch))
    payloads = list(iter_payloads("segment", path))
    assert [p["messageId"] for p in payloads] == [e["messageId"] for e in events[:2]]
    assert payloads[0]["sentAt"] == "2024-05-01T10:05:00.000Z"  # filled from the batch
    assert payloads[1]["sentAt"] == events[1]["sentAt"]  # own value kept
    assert payloads[1]["context"]["library"]["name"] == "analytics-python"
    assert payloads[1]["context"]["locale"] == "de-DE"  # merged with its own context
    assert "context" in events[1] and "library" not in events[1]["context"]  # input untouched


def test_segment_invalid_json_line(tmp_path: Path) -> None:
    good = (FIXTURES / "segment_events.jsonl").read_text().splitlines()
    content = "\n".join(
        [good[0], "", good[1], '{"type": "track", "userId": "jane@example.com"', good[2]]
    )
    path = write(tmp_path / "events.jsonl", content)
    it = iter_payloads("segment", path)
    assert next(it)["type"] == "page"
    assert next(it)["type"] == "identify"
    with pytest.raises(InvalidPayloadError) as info:
        next(it)
    assert info.value.source == "segment"
    assert info.value.field == f"{path}:line 4"
    assert info.value.problem.startswith("invalid JSON")
    assert "jane@example.com" not in str(info.value)


# ----------------------------------------------------------------------------- google calendar


def test_calendar_events_list_and_pages(tmp_path: Path) -> None:
    page = fixture("google_calendar_events.json")
    payloads = list(iter_payloads("google_calendar", FIXTURES / "google_calendar_events.json"))
    assert ids(payloads, "id") == [e["id"] for e in page["items"]]
    empty_last = {
        "kind": "calendar#events",
        "items": [],
        "nextSyncToken": "CPDAlvWDx70CEPDAlvWDx70CGAU=",
    }
    no_items = {"kind": "calendar#events", "nextSyncToken": "x"}
    lines = write(tmp_path / "pages.jsonl", jsonl(page, empty_last, no_items))
    assert len(list(iter_payloads("google_calendar", lines))) == 3


def test_calendar_wrong_top_level(tmp_path: Path) -> None:
    path = write(tmp_path / "x.json", "[\n  1,\n  2\n]")
    with pytest.raises(InvalidPayloadError) as info:
        list(iter_payloads("google_calendar", path))
    assert info.value.field == f"{path}:$[0]"


# ----------------------------------------------------------------------------- mandrill


def form_body(events) -> str:
    """A Mandrill webhook POST body: the form field ``mandrill_events`` (JSON, url-encoded)."""
    return urlencode({"mandrill_events": json.dumps(events)})


def test_mandrill_events_array_and_wrapped(tmp_path: Path) -> None:
    events = fixture("mandrill_events.json")
    assert list(iter_payloads("mandrill", FIXTURES / "mandrill_events.json")) == events
    wrapped = write(tmp_path / "w.json", json.dumps({"mandrill_events": events}, indent=2))
    assert list(iter_payloads("mandrill", wrapped)) == events
    as_text = write(tmp_path / "t.jsonl", jsonl({"mandrill_events": json.dumps(events)}, events[0]))
    assert list(iter_payloads("mandrill", as_text)) == [*events, events[0]]


def test_mandrill_raw_webhook_bodies(tmp_path: Path) -> None:
    events = fixture("mandrill_events.json")
    body = form_body(events[:2])
    assert body.startswith("mandrill_events=%5B%7B%22event%22")
    one_body = write(tmp_path / "post.txt", body)
    assert list(iter_payloads("mandrill", one_body)) == events[:2]
    content = "\n".join([body, "", form_body(events[2:]), ""])
    assert list(iter_payloads("mandrill", write(tmp_path / "posts.txt", content))) == events
    gz = write(tmp_path / "posts.txt.gz", gzip.compress(b"\xef\xbb\xbf" + content.encode()))
    assert list(iter_payloads("mandrill", gz)) == events
    other_field_first = write(tmp_path / "o.txt", "x=1&" + body)
    assert list(iter_payloads("mandrill", other_field_first)) == events[:2]


def test_mandrill_bad_webhook_bodies(tmp_path: Path) -> None:
    events = fixture("mandrill_events.json")
    lines = [
        form_body(events[:1]),
        "mandrill_events=%5B%7Boops",  # line 2: invalid JSON
        "other=1",  # line 3: no mandrill_events
        form_body([events[1], "jane@example.com"]),  # line 4: an element that is no event
        form_body(events[2:3]),
    ]
    path = write(tmp_path / "posts.txt", "\n".join(lines))
    with pytest.raises(InvalidPayloadError) as info:
        list(iter_payloads("mandrill", path))
    assert (info.value.source, info.value.field) == ("mandrill", f"{path}:line 2:mandrill_events")
    assert info.value.problem.startswith("invalid JSON")

    errors = []
    got = list(iter_payloads("mandrill", path, on_error=lambda e, line: errors.append((e, line))))
    assert got == [events[0], events[1], events[2]]  # line 4's good event comes before its bad one
    assert [(e.field, e.problem) for e, _ in errors] == [
        (f"{path}:line 2:mandrill_events", errors[0][0].problem),
        (f"{path}:line 3", "form body without mandrill_events"),
        (f"{path}:line 4:$[1]", "not an object or array"),
    ]
    assert errors[1][1] == "other=1"
    assert all("jane@example.com" not in str(e) for e, _ in errors)


def test_mandrill_wrapped_events_of_the_wrong_shape(tmp_path: Path) -> None:
    path = write(tmp_path / "x.json", json.dumps({"mandrill_events": "[{oops"}))
    with pytest.raises(InvalidPayloadError) as info:
        list(iter_payloads("mandrill", path))
    assert info.value.field == f"{path}:line 1:$.mandrill_events"
    assert info.value.problem.startswith("invalid JSON")
    path = write(tmp_path / "y.json", json.dumps({"mandrill_events": {"event": "inbound"}}))
    with pytest.raises(InvalidPayloadError) as info:
        list(iter_payloads("mandrill", path))
    assert info.value.field == f"{path}:line 1:$.mandrill_events"
    assert info.value.problem == "not a list"


def test_form_bodies_are_only_read_for_mandrill(tmp_path: Path) -> None:
    path = write(tmp_path / "x.txt", form_body([{"event": "open"}]))
    with pytest.raises(InvalidPayloadError) as info:
        list(iter_payloads("sendgrid", path))
    assert info.value.problem.startswith("invalid JSON")


# ----------------------------------------------------------------------------- common


def test_unknown_source(tmp_path: Path) -> None:
    with pytest.raises(InvalidPayloadError) as info:
        iter_payloads("mailchimp", tmp_path / "x.json")
    assert info.value.field == "source"


def test_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path / "empty.jsonl", "\n \n")
    assert list(iter_payloads("segment", path)) == []


def test_invalid_json_document_reports_line(tmp_path: Path) -> None:
    text = json.dumps(fixture("hubspot_page.json"), indent=2).splitlines()
    text[10] = text[10].rstrip(",") + " ,,"
    path = write(tmp_path / "broken.json", "\n" + "\n".join(text))
    with pytest.raises(InvalidPayloadError) as info:
        list(iter_payloads("hubspot", path))
    assert info.value.field == f"{path}:line 12"  # 1 leading blank line + 11th line
    assert info.value.problem.startswith("invalid JSON")


def test_scalar_document(tmp_path: Path) -> None:
    path = write(tmp_path / "x.json", '"hello"')
    with pytest.raises(InvalidPayloadError) as info:
        list(iter_payloads("sendgrid", path))
    assert info.value.field == f"{path}:line 1:$"
    assert info.value.problem == "not an object or array"


def test_bom_and_gzip(tmp_path: Path) -> None:
    raw = (FIXTURES / "sendgrid_batch.json").read_bytes()
    bom = write(tmp_path / "bom.json", b"\xef\xbb\xbf" + raw)
    assert len(list(iter_payloads("sendgrid", bom))) == 6
    gz = write(tmp_path / "batch.json.gz", gzip.compress(raw))
    assert len(list(iter_payloads("sendgrid", gz))) == 6


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        list(iter_payloads("segment", tmp_path / "nope.jsonl"))


@pytest.mark.parametrize(
    ("source", "name", "records"),
    [
        ("salesforce", "salesforce_query.json", 3),
        ("hubspot", "hubspot_page.json", 2),
        ("sendgrid", "sendgrid_batch.json", 6),
        ("segment", "segment_events.jsonl", 5),
        ("google_calendar", "google_calendar_events.json", 5),
        ("mandrill", "mandrill_events.json", 5),
    ],
)
def test_files_feed_adapters(source: str, name: str, records: int) -> None:
    out = [r for p in iter_payloads(source, FIXTURES / name) for r in adapt(source, p)]
    assert len(out) == records
