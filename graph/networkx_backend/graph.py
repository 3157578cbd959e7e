"""networkx identity graph: in memory, rebuilt on start from a durable link log.

The components and ID rules are :class:`idgraph.graph.components.ComponentState`'s; this backend
keeps one state for the whole graph and appends every write's ops to the link log.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path

from idgraph.core.errors import BackendError
from idgraph.graph.base import GraphChanges, IdentityGraph, LinkEdge, MatchEdge
from idgraph.graph.components import ComponentState, LogRow
from idgraph.graph.networkx_backend.log import LinkLog


class NetworkxGraph(ComponentState, IdentityGraph):
    """Embedded identity graph over a durable link log.

    Writers take turns (:mod:`idgraph.coordination.local.turns`): at the start of its turn a writer
    :meth:`refresh`-es from the log what the other writers appended. Read-only views
    (``read_only=True``, ``idgraph serve``) refresh the same way and never write.
    """

    driver_errors = (sqlite3.Error,)  # the link log

    @staticmethod
    def describe_driver_error(exc: BaseException) -> str:
        # SQLite's own messages name tables and states, never bound values
        return f"{type(exc).__name__} ({exc})"

    def __init__(self, log_path: Path, shareable_types: frozenset[str] = frozenset(),
                 read_only: bool = False) -> None:
        super().__init__(shareable_types)
        self._read_only = read_only
        self._log_seq = 0  # last link-log row applied
        self._log = LinkLog(log_path, read_only=read_only)
        self._replay()

    def apply(self, new_records: list[tuple[str, float]], edges: list[LinkEdge],
              matches: Iterable[MatchEdge] = (), names: Mapping[str, str] | None = None,
              generic: Mapping[str, str] | None = None,
              detached: Mapping[str, str] | None = None) -> GraphChanges:
        self._check_writable()
        rows = self.apply_ops(new_records, edges, matches, names, generic, detached)
        if rows:
            self._append(rows)
        return self.commit()

    def remove_link(self, record_key: str, identifier: str, at: float) -> GraphChanges:
        self._check_writable()
        if not self.unlink_op(record_key, identifier, at):
            return GraphChanges()
        self._append([("unlink", record_key, identifier, None, None, None, None, None, None, at,
                       None)])
        return self.commit()

    def remove_record(self, record_key: str, at: float) -> GraphChanges:
        self._check_writable()
        if not self.remove_record_op(record_key, at):
            return GraphChanges()
        self._append([("remove_record", record_key, None, None, None, None, None, None, None,
                       at, None)])
        return self.commit()

    def refresh(self) -> None:
        self._replay()

    def close(self) -> None:
        self._log.close()

    def _check_writable(self) -> None:
        if self._read_only:
            raise BackendError("graph: this is a read-only view; only the writer applies")

    def _append(self, rows: list[LogRow]) -> None:
        # the caller holds the writer turn: nothing was appended since our last refresh, so
        # the new commit row is the last one this graph has applied
        self._log_seq = self._log.append(rows)

    def _replay(self) -> None:
        """Apply the link log's rows after the last one applied (all of it on open)."""
        for seq, row in self._log.replay(self._log_seq):
            op, rec, ident, itype, linked, rule, reason, source, event_id, at, detail = row
            if op == "record":
                self._batch_at = max(self._batch_at, at or 0.0)
                self._add_record(rec)
            elif op == "edge":
                self._add_edge(rec, ident, itype, bool(linked), rule, reason, source, event_id, at)
            elif op == "match":
                self._add_match(rec, ident, bool(linked), rule, reason, source, event_id, at,
                                json.loads(detail) if detail else {})
            elif op == "name":
                self._set_name(rec, detail)
            elif op == "generic":
                self._mark_generic(ident, reason, at)
            elif op == "detach":
                self._detach_record(rec, reason, at)
            elif op == "unlink":
                self._remove_link(rec, ident, at)
            elif op == "remove_record":
                self._remove_record(rec, at)
            elif op == "commit":
                self.commit()
                self._batch_at = 0.0
            self._log_seq = seq
        self.commit()
