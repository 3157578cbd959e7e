"""Erasure: finding every stored row that names the profile IDs a privacy forget erases
(``StoreBatch.erased_profiles``; its ``erased_event_ids`` are deleted by key), so that the
planner (:mod:`.plan`) deletes them in the batch and the journal (:mod:`.journal`) writes
the deletions with it: a crash mid-erasure is finished by recovery, and replaying it (or
the whole batch) deletes nothing more.

Where the rows are, and what finding them costs, for E erased IDs and R served regions.
Every served region is searched, not only the erased profile's home: alias rows live in
their target's home region, and a profile's change-log and outbox entries stay in the
region it lived in when they were written (a cross-region merge moves its rows, not
those). Rows in a region the store does not serve cannot be reached (residency): a store
serving every region the person's profiles lived in must erase them.

* Alias rows (``profiles.alias_of`` with the ``a`` links of ``profile_links``): the ID as
  the alias is its own ``profiles`` row, read with the batch's other IDs (``ids_in``); as
  the target, the ``a`` links of its ``profile_links`` partition: one read per ID and
  region.
* History: every row of the ID's partition ``history (region, ID)``: one read per ID and
  region; and the copies of the rows whose subject is the ID, which sit in the partitions
  of the row's related IDs: one read per related ID and region. A row of another profile
  that names the ID only among its related IDs stays, as in the SQLite store.
* Memberships (``memberships`` and their ``segment_members`` and ``segment_deadlines``
  index rows): read with the batch's memberships, one IN read per region.
* The segment change log: rows are filed by region and hour, one row per batch holding
  every change of it, with no index by profile. Every retained bucket of every served
  region is read (``segment_log_ttl_seconds`` / 3600 + 3 partitions per region: 27 for the
  default day) and each row decompressed and searched for the JSON-quoted IDs before any
  is parsed: the cost is reading the whole retained log once per erasing batch, i.e. every
  membership change of the last ``segment_log_ttl_seconds`` in the served regions (read
  :data:`SCAN_CALLS` partitions at a time, so memory holds that many buckets). A row
  holding other changes too is rewritten with ``null`` in the erased changes' places
  (:func:`.segments.erase_from_log`), one holding none of them any more is deleted.
* The outbox: rows are filed by region and hour too; the buckets from the region's
  low-water bucket (``meta`` ``outbox_low``) to the next hour are read, as
  :meth:`.outbox.Outbox.pending` does. An outbox that is drained holds few rows, but the
  number of bucket reads is the hours since a writable store's ``pending_changes`` last
  raised the low-water bucket (one per hour when no publisher runs).
* Processed event IDs (global keyspace, stored as hashes): deleted by key, nothing read.

So an erasing batch costs two more round trips of point reads (2 * E * R, plus one per
related ID and region) and one scan of the retained change log and the outbox of every
served region, besides its ordinary reads.

On disk. A deletion in Cassandra writes a tombstone: the deleted cells stay in the
SSTables until a compaction merges them with it, and the tombstone, which holds the row's
key (with the profile ID in most tables' keys), until a compaction after the table's
``gc_grace_seconds``: 864000 s (10 days), Cassandra's default, which no table of
:mod:`.schema` changes. An operator who must have the bytes gone forces it after that
time with a major compaction of the region keyspace on each of its nodes
(``nodetool compact KEYSPACE`` on 2.1, ``nodetool garbagecollect`` from 3.10), and drops
snapshots and backups taken before; until then the data is unreadable through CQL but on
disk. The redo journal of the erasing batch names the IDs too and is deleted (tombstoned)
when the batch is finished.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable

import orjson

from idgraph.profile_store.cassandra_backend.connection import NamedCall, Statements, chunks
from idgraph.profile_store.cassandra_backend.outbox import BUCKET_SECONDS, OUTBOX_LOW
from idgraph.profile_store.cassandra_backend.plan import Erasure, HistoryRow, LogRow
from idgraph.profile_store.cassandra_backend.segments import (
    LOG_BUCKET_SECONDS,
    SEGMENT_LOG_LAST,
    decode_position,
    erase_from_log,
    json_needles,
    log_bucket,
)

SCAN_CALLS = 16
"""Bucket partitions of the change log or the outbox read at a time by an erasure."""


def _related_ids(related: bytes) -> list[str]:
    """The related IDs of a stored history row (both forms of ``related``)."""
    value = orjson.loads(related)
    return list(value["ids"]) if isinstance(value, dict) else list(value)


def _names(doc: bytes, ids: frozenset[str], needles: list[bytes]) -> bool:
    """Whether an outbox doc (a profile or segment change) names one of ``ids``."""
    if not any(n in doc for n in needles):
        return False
    fields = orjson.loads(doc)
    return fields.get("profile_id") in ids or not ids.isdisjoint(fields.get("related_ids", ()))


class ErasureReads:
    """Finds the rows naming erased IDs in the served ``regions`` (module docstring);
    change-log rows live ``log_ttl`` seconds."""

    def __init__(self, statements: Statements, regions: frozenset[str], log_ttl: int) -> None:
        self._db = statements
        self._regions = sorted(regions)
        self._log_ttl = log_ttl

    def read(self, ids: Iterable[str], event_hashes: list[bytes]
             ) -> tuple[Erasure, dict[str, tuple[str, str]]]:
        """(the :class:`~.plan.Erasure` of ``ids``, the alias rows naming them as the
        target: alias -> (region, target)). The alias rows naming them as the alias, and
        their memberships, are read with the batch's other rows."""
        erased = frozenset(ids)
        erasure = Erasure(ids=erased, event_hashes=list(event_hashes))
        if not erased:
            return erasure, {}
        pids = sorted(erased)
        regions = self._regions
        link_calls = [(r, "links", (r, pid)) for pid in pids for r in regions]
        hist_calls = [(r, "history", (r, pid)) for pid in pids for r in regions]
        meta_calls = [(r, "meta", (r, name)) for name in (OUTBOX_LOW, SEGMENT_LOG_LAST)
                      for r in regions]
        results = self._db.run(link_calls + hist_calls + meta_calls, "write (read erased)")
        n_links, n_hist = len(link_calls), len(hist_calls)
        aliases: dict[str, tuple[str, str]] = {}
        for (region, _, (_, pid)), rows in zip(link_calls, results[:n_links], strict=True):
            for kind, key in rows:
                if kind == "a":
                    aliases.setdefault(key, (region, pid))
        related: set[str] = set()
        for (region, _, (_, pid)), rows in zip(hist_calls, results[n_links:n_links + n_hist],
                                               strict=True):
            for row in rows:
                hist = HistoryRow(*row)
                erasure.history.append((region, pid, hist))
                if hist.subject == pid:
                    related.update(_related_ids(hist.related))
        related -= erased
        metas = results[n_links + n_hist:]
        n = len(regions)
        lows = {r: rows[0][0] for r, rows in zip(regions, metas[:n], strict=True)
                if rows and rows[0][0]}
        lasts = {r: decode_position(rows[0][0]) for r, rows in zip(regions, metas[n:],
                                                                   strict=True)
                 if rows and rows[0][0]}
        self._related_history(sorted(related), erased, erasure)
        self._scan_log(lasts, erased, erasure)
        self._scan_outbox(lows, erased, erasure)
        return erasure, aliases

    def _related_history(self, related: list[str], erased: frozenset[str],
                         erasure: Erasure) -> None:
        """The copies of the erased IDs' own history rows in their related IDs' partitions."""
        calls = [(r, "history", (r, pid)) for pid in related for r in self._regions]
        for (region, _, (_, pid)), rows in zip(calls, self._db.run(calls, "write (read erased)"),
                                               strict=True):
            for row in rows:
                hist = HistoryRow(*row)
                if hist.subject in erased:
                    erasure.history.append((region, pid, hist))

    def _scan(self, calls: list[NamedCall]) -> Iterable[tuple[NamedCall, list[tuple]]]:
        for part in chunks(calls, SCAN_CALLS):
            yield from zip(part, self._db.run(part, "write (scan for erased)"), strict=True)

    def _scan_log(self, lasts: dict[str, tuple[uuid.UUID | None, int]],
                  erased: frozenset[str], erasure: Erasure) -> None:
        """Change-log rows holding a change of an erased ID: every retained bucket of
        every served region (as a reader from the start of the log reads them)."""
        now = time.time()
        oldest = int((now - self._log_ttl) // LOG_BUCKET_SECONDS) - 1  # older rows expired
        calls: list[NamedCall] = []
        for region in self._regions:
            last = lasts.get(region, (None, 0))[0]
            end = max(int(now // LOG_BUCKET_SECONDS) + 1,
                      log_bucket(last) if last is not None else 0)
            calls += [(region, "segment_log_bucket", (region, b))
                      for b in range(oldest, end + 1)]
        needles = json_needles(erased)
        found: list[LogRow] = []
        for (region, _, (_, bucket)), rows in self._scan(calls):
            for log_id, n, blob, ttl in rows:
                if blob is not None and erase_from_log(blob, erased, needles) is not None:
                    found.append((region, bucket, log_id, n or 0, blob, ttl or 0))
        erasure.log.extend(found)

    def _scan_outbox(self, lows: dict[str, str], erased: frozenset[str],
                     erasure: Erasure) -> None:
        """Outbox rows whose change names an erased ID: the buckets
        :meth:`.outbox.Outbox.pending` reads, of every served region."""
        now = int(time.time()) // BUCKET_SECONDS
        calls = [(region, "outbox_bucket", (region, b))
                 for region, low in sorted(lows.items()) for b in range(int(low), now + 2)]
        needles = json_needles(erased)
        for (region, _, (_, bucket)), rows in self._scan(calls):
            for change_id, doc in rows:
                if doc is not None and _names(doc, erased, needles):
                    erasure.outbox.append((region, bucket, change_id))
