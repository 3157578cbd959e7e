"""Write a :class:`~idgraph.generator.realworld.dataset.RealWorldDataset` as source files and
truth files.

=================  ===========================  ==============================================
key                file                         content
=================  ===========================  ==============================================
salesforce ...     as :data:`idgraph.generator.writers.SOURCE_FILES` (written by
google_calendar    :func:`~idgraph.generator.writers.write_source_files`: what
                   ``idgraph ingest --source KIND`` reads)
mandrill           ``mandrill_events.json``     JSON array of inbound events (the decoded
                                                ``mandrill_events`` elements)
truth_events       ``truth_events.csv``         ``source,event_id,record_key,entity_id``
truth_records      ``truth_records.csv``        ``record_key,entity_id``
entities           ``entities.csv``             ``entity_id,kind``
traps              ``traps.json``               trap name -> instances
=================  ===========================  ==============================================

Contract: every file is created owner-only (mode 0600, also when it existed with wider
permissions): the payloads and the truth hold personal data (addresses in record keys).
"""

from __future__ import annotations

import csv
import io
import os
from os import PathLike
from pathlib import Path

import orjson

from idgraph.generator.realworld.dataset import RealWorldDataset
from idgraph.generator.writers import SOURCE_FILES, write_source_files

__all__ = ["REALWORLD_FILES", "write_realworld"]

REALWORLD_FILES: dict[str, str] = {
    **SOURCE_FILES,
    "mandrill": "mandrill_events.json",
    "truth_events": "truth_events.csv",
    "truth_records": "truth_records.csv",
    "entities": "entities.csv",
    "traps": "traps.json",
}


def _private(path: Path, data: bytes = b"") -> Path:
    """Create or truncate ``path`` owner-only and write ``data``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)  # also when the file existed with wider permissions
    return path


def _csv(header: tuple[str, ...], rows) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode()


def write_realworld(ds: RealWorldDataset, out_dir: str | PathLike[str]) -> dict[str, Path]:
    """Write every source file and truth file into ``out_dir`` (created if needed);
    returns key (source kind or truth name) -> path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    # The five existing sources in exactly the existing world's formats; the files are
    # created owner-only first, and writing into an existing file keeps its mode.
    for name in SOURCE_FILES.values():
        _private(out / name)
    paths = write_source_files(ds, out)  # type: ignore[arg-type]  # .events and .seed
    for path in paths.values():
        os.chmod(path, 0o600)
    mandrill = [p for s, p in ds.events if s == "mandrill"]
    paths["mandrill"] = _private(
        out / REALWORLD_FILES["mandrill"], orjson.dumps(mandrill, option=orjson.OPT_APPEND_NEWLINE)
    )
    paths["truth_events"] = _private(
        out / REALWORLD_FILES["truth_events"],
        _csv(("source", "event_id", "record_key", "entity_id"), ds.event_truth),
    )
    paths["truth_records"] = _private(
        out / REALWORLD_FILES["truth_records"],
        _csv(("record_key", "entity_id"), ds.record_truth.items()),
    )
    paths["entities"] = _private(
        out / REALWORLD_FILES["entities"], _csv(("entity_id", "kind"), ds.entities.items())
    )
    paths["traps"] = _private(
        out / REALWORLD_FILES["traps"],
        orjson.dumps(ds.traps, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE),
    )
    return paths
