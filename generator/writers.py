"""Write a :class:`~idgraph.generator.synthetic.SyntheticDataset` as the files the source systems
hand out (what ``resolver.adapters.files.iter_payloads`` reads back):

=================  ===========================  ==============================================
source             file                         content
=================  ===========================  ==============================================
salesforce         ``salesforce_query.json``    JSON array of SOQL query response pages
                                                ``{"totalSize", "done", "nextRecordsUrl"?,
                                                "records"}``, 2000 records per page
hubspot            ``hubspot_contacts.json``    JSON array of CRM v3 list pages
                                                ``{"results", "paging": {"next": {"after",
                                                "link"}}}``, 100 per page (last: no paging)
sendgrid           ``sendgrid_events.json``     JSON array of Event Webhook batches (each a
                                                JSON array of at most 1000 events)
segment            ``segment_events.jsonl``     one event per line
google_calendar    ``calendar_events.json``     JSON array of Events list pages
                                                ``{"kind": "calendar#events", "summary",
                                                "updated", "timeZone", "items",
                                                "nextPageToken"?}``, one calendar per
                                                organiser, 250 items per page
=================  ===========================  ==============================================

Payloads keep their event order within each file, except calendar events, which are
grouped by the organiser's calendar (calendars in order of their first event). With
``compress=True`` every file is gzip-compressed and named ``<file>.gz``.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterable
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import orjson

if TYPE_CHECKING:
    from idgraph.generator.synthetic import SyntheticDataset

__all__ = ["SOURCE_FILES", "write_source_files"]

SOURCE_FILES: dict[str, str] = {
    "salesforce": "salesforce_query.json",
    "hubspot": "hubspot_contacts.json",
    "sendgrid": "sendgrid_events.json",
    "segment": "segment_events.jsonl",
    "google_calendar": "calendar_events.json",
}

SALESFORCE_PAGE = 2000
HUBSPOT_PAGE = 100
SENDGRID_BATCH = 1000
CALENDAR_PAGE = 250

_SF_QUERY = "/services/data/v59.0/query"
_HS_LIST = "https://api.hubapi.com/crm/v3/objects/contacts"


def write_source_files(
    dataset: SyntheticDataset, directory: str | PathLike[str], *, compress: bool = False
) -> dict[str, Path]:
    """Write one file per source kind into ``directory`` (created if needed).

    Returns source kind -> path. Every source gets a file, empty sources included.
    """
    out_dir = Path(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    by_source: dict[str, list[dict]] = {s: [] for s in SOURCE_FILES}
    for source, payload in dataset.events:
        by_source.setdefault(source, []).append(payload)
    token = hashlib.sha256(f"idgraph-generator:{dataset.seed}".encode()).hexdigest()

    paths: dict[str, Path] = {}
    for source, name in SOURCE_FILES.items():
        path = out_dir / (name + ".gz" if compress else name)
        items = by_source[source]
        with _open(path, compress) as fh:
            if source == "segment":
                for payload in items:
                    fh.write(orjson.dumps(payload, option=orjson.OPT_APPEND_NEWLINE))
            else:
                doc = _DOCUMENTS[source](items, token)
                fh.write(orjson.dumps(doc, option=orjson.OPT_APPEND_NEWLINE))
        paths[source] = path
    return paths


def _open(path: Path, compress: bool) -> BinaryIO:
    if compress:
        return gzip.open(path, "wb", compresslevel=5)  # type: ignore[return-value]
    return open(path, "wb")


def _chunks(items: list[dict], size: int) -> Iterable[tuple[int, list[dict]]]:
    for i in range(0, len(items), size):
        yield i, items[i : i + size]


def _salesforce(records: list[dict], token: str) -> list[dict]:
    total = len(records)
    locator = "01gRO" + token[:10].upper()
    pages: list[dict] = []
    for start, chunk in _chunks(records, SALESFORCE_PAGE):
        nxt = start + len(chunk)
        page: dict = {"totalSize": total, "done": nxt >= total}
        if nxt < total:
            page["nextRecordsUrl"] = f"{_SF_QUERY}/{locator}-{nxt}"
        page["records"] = chunk
        pages.append(page)
    return pages or [{"totalSize": 0, "done": True, "records": []}]


def _hubspot(contacts: list[dict], token: str) -> list[dict]:
    pages: list[dict] = []
    total = len(contacts)
    for start, chunk in _chunks(contacts, HUBSPOT_PAGE):
        page: dict = {"results": chunk}
        if start + len(chunk) < total:
            last = chunk[-1].get("id", "")
            after = str(int(last) + 1) if str(last).isdigit() else str(start + len(chunk))
            page["paging"] = {"next": {"after": after, "link": f"{_HS_LIST}?after={after}"}}
        pages.append(page)
    return pages or [{"results": []}]


def _sendgrid(events: list[dict], token: str) -> list[list[dict]]:
    return [chunk for _, chunk in _chunks(events, SENDGRID_BATCH)]


def _calendar(events: list[dict], token: str) -> list[dict]:
    calendars: dict[str, list[dict]] = {}
    for ev in events:
        org = (ev.get("organizer") or {}).get("email") or "primary"
        calendars.setdefault(org, []).append(ev)
    pages: list[dict] = []
    for n, (org, items) in enumerate(calendars.items()):
        updated = max((ev.get("updated") or "" for ev in items), default="")
        tz = ((items[0].get("start") or {}).get("timeZone")) or "UTC"
        chunks = list(_chunks(items, CALENDAR_PAGE))
        for k, (start, chunk) in enumerate(chunks):
            page: dict = {
                "kind": "calendar#events",
                "etag": f'"p{token[:12]}{n:06d}{k:03d}"',
                "summary": org,
                "description": "",
                "updated": updated,
                "timeZone": tz,
                "accessRole": "owner",
                "defaultReminders": [{"method": "popup", "minutes": 10}],
            }
            if k + 1 < len(chunks):
                page["nextPageToken"] = f"CigKGj{token[12:28]}{n:06d}{k + 1:03d}"
            else:
                page["nextSyncToken"] = f"CPDAlvWDx{token[28:44]}{n:06d}"
            page["items"] = chunk
            pages.append(page)
    return pages


_DOCUMENTS = {
    "salesforce": _salesforce,
    "hubspot": _hubspot,
    "sendgrid": _sendgrid,
    "google_calendar": _calendar,
}
