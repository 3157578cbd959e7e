"""Export a person's data (right of access, GDPR art. 15; data portability, art. 20).

:func:`export_subject` resolves an identifier or a profile ID to the live profile and
writes a zip of JSON-lines files, one object per line:

* ``profile.jsonl``: the unified profile (attributes with their source and rule,
  identifiers, sources, consent, region, aliases);
* ``identities.jsonl``: every edge of the profile's records: the record, the identifier
  (or the other record of a match), whether it linked, the rule or the model's weight,
  probability and per-comparison weights, the source event and time;
* ``records.jsonl``: each source record as stored (attributes with their event times);
* ``events.jsonl``: every stored event of the records, oldest first;
* ``consent.jsonl``: the consent ledger entries covering the profile;
* ``segments.jsonl``: the current memberships and the membership changes still in the
  change log;
* ``access.jsonl``: the privacy trail naming the profile: who (a steward's or a privacy
  officer's token, by hash) read it over gRPC and when, consent recorded, exports;
* ``manifest.json``: how the subject was resolved, when, and the sha256 and line count of
  every file above, so the recipient can check nothing was altered.

The zip is built in memory (a person's data is megabytes, not gigabytes) and handed back
as bytes; callers write it owner-only or stream it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import time
import zipfile
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

from idgraph.core.links import EdgeExplanation
from idgraph.engine.consent import ConsentService
from idgraph.privacy.ledger import AuditEntry
from idgraph.profile_store.base import Profile

FORMAT_VERSION = 1
_LOG_SCAN_LIMIT = 1_000_000


def _iso(t: float | None) -> str | None:
    return datetime.fromtimestamp(t, UTC).isoformat() if t else None


def _default(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    if isinstance(obj, frozenset | set | tuple):
        return list(obj)
    raise TypeError(type(obj).__name__)


def _lines(rows: Iterable[Any]) -> tuple[bytes, int]:
    out, n = [], 0
    for row in rows:
        out.append(orjson.dumps(row, default=_default, option=orjson.OPT_SORT_KEYS))
        n += 1
    return (b"\n".join(out) + b"\n") if out else b"", n


def export_subject(consent: ConsentService, *, identifier: str = "", profile_id: str = "",
                   edges: Callable[[str], list[EdgeExplanation]] | None = None,
                   requested_by: str = "", clock: Callable[[], float] = time.time
                   ) -> tuple[Profile, bytes]:
    """The live profile and the zip of its data (module docstring).

    ``edges(profile_id)`` gives the graph's edges of the profile (an
    :class:`~idgraph.engine.explain.Explainer`); without it ``identities.jsonl`` lists the
    stored identifiers of each record with their linked flag only. Errors as
    :meth:`ConsentService.resolve` (and NotFoundError after a forget request)."""
    queries = consent.queries
    store = queries.store
    profile = consent.resolve(identifier, profile_id)
    consent.gate(profile, None)  # a profile being forgotten is not exported
    pid = profile.profile_id
    full = queries.profile_with_all_events(pid) or profile
    stored = store.get_profile(pid)
    records = stored.records if stored is not None else []
    view = consent.view(profile)

    files: dict[str, tuple[bytes, int]] = {}
    files["profile.jsonl"] = _lines([{
        "profile_id": pid, "region": profile.region, "aliases": profile.aliases,
        "attributes": {k: dataclasses.asdict(v) for k, v in profile.attributes.items()},
        "identifiers": [dataclasses.asdict(i) for i in profile.identifiers],
        "sources": [dataclasses.asdict(s) for s in profile.sources],
        "consent": {p: {"state": d.state, "allowed": d.allowed}
                    for p, d in view.decisions.items()},
        "first_seen": _iso(profile.first_seen), "last_seen": _iso(profile.last_seen),
        "event_count": profile.event_count, "record_keys": profile.record_keys,
    }])
    if edges is not None:
        identity_rows = [dataclasses.asdict(e) for e in edges(pid)]
    else:
        identity_rows = [{"record_key": r.record_key, "identifier": i, "linked": linked,
                          "first_seen": first, "last_seen": last,
                          "rule": "", "note": "no graph view on this server"}
                         for r in records for i, (first, last, linked) in r.identifiers.items()]
    files["identities.jsonl"] = _lines(identity_rows)
    files["records.jsonl"] = _lines({
        "record_key": r.record_key, "source": r.source, "source_record_id": r.source_record_id,
        "region": r.region, "attributes": {k: {"value": v, "at": _iso(t)}
                                           for k, (v, t) in r.attributes.items()},
        "consent": {p: {"granted": g, "at": _iso(t)} for p, (g, t) in r.consent.items()},
        "rejected_identifiers": r.rejected, "event_count": r.event_count,
        "first_seen": _iso(r.first_seen), "last_seen": _iso(r.last_seen)} for r in records)
    files["events.jsonl"] = _lines({
        "type": e.type, "source": e.source, "at": _iso(e.at), "event_id": e.event_id,
        "properties": e.properties} for e in full.events)
    files["consent.jsonl"] = _lines(dataclasses.asdict(e) for e in consent.entries(profile))
    ids = {pid, *profile.aliases}
    memberships = [dict(dataclasses.asdict(m), kind="membership")
                   for m in store.memberships([pid]).get(pid, [])]
    changes, cursor, scanned = [], "", 0
    while scanned < _LOG_SCAN_LIMIT:
        page, cursor = store.segment_changes_after(cursor, 10_000)
        scanned += len(page)
        changes.extend(dict(dataclasses.asdict(c), kind="change") for c in page
                       if c.profile_id in ids)
        if len(page) < 10_000:
            break
    files["segments.jsonl"] = _lines([*memberships, *changes])
    files["access.jsonl"] = _lines(sorted(
        (dataclasses.asdict(a) for target in ids for a in consent.ledger.audit_of(target)),
        key=lambda a: a["at"]))

    now = clock()
    manifest = {
        "format_version": FORMAT_VERSION,
        "generated_at": _iso(now),
        "requested_by": requested_by,
        "subject": {"named_by": "identifier" if identifier.strip() else "profile_id",
                    "identifier": queries.normalizer.identifier(identifier).key
                    if identifier.strip() else "",
                    "resolved_profile_id": pid, "aliases": profile.aliases,
                    "region": profile.region, "records": len(records)},
        "files": {name: {"sha256": hashlib.sha256(data).hexdigest(), "lines": n,
                         "bytes": len(data)} for name, (data, n) in files.items()},
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, (data, _n) in files.items():
            zf.writestr(name, data)
        zf.writestr("manifest.json", orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    consent.ledger.audit(AuditEntry(now, requested_by, "export_subject", pid,
                                    {"files": len(files) + 1}))
    return profile, buf.getvalue()
