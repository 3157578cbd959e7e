"""networkx identity graph: in memory, rebuilt on start from a durable link log.

The components and ID rules are :class:`idgraph.graph.components.ComponentState`'s; this backend
keeps one state for the whole graph and appends every write's ops to the link log.

Erasure (:meth:`NetworkxGraph.erase_history`) rewrites the log's rows of a forgotten person
with keyed tokens; replaying the rewritten log gives the same graph for everyone else:

* a record key becomes the same token wherever it appears, so the replayed graph is the
  same graph with the forgotten nodes renamed (and they are removed at the end anyway);
* a profile ID is derived from its founding record key, which may now be a token. The IDs
  that still matter (live, or an alias of a live ID) are *pinned*: stored in the log with
  the graph's sequence number at which they were assigned, which a replay reaches in the
  same order, and a replay gives the pinned ID there. IDs that vanish with the person are
  not kept (an unsalted hash of the key would let one confirm a guessed key): a replay
  derives a stand-in from the token, and at the erasure's ``erase`` row the live process
  and the replay both drop every ID founded by an erased token that is neither live nor an
  alias of a live ID (:meth:`ComponentState._forget_ids`), so afterwards they hold the same
  IDs;
* a record key can come back after its erasure and be forgotten again: its rows then get
  the same token, so the replay sees one name where the live process saw a token (the
  founder of an ID of the first incarnation) and a key (the returning record). From the
  erasure on, both hold the founder of an ID founded by an erased key as
  :data:`ERASED` + token, which names no record: the returning record is never taken for
  the founder of its earlier incarnation's IDs, in the live process as in the replay;
* an ID with a counter (``founding#n``: its founding key had founded an ID before) may have
  depended on an ID that is dropped: every counter ID whose founder is not erased is pinned
  too. IDs without a counter come out the same anyway: a replay's used IDs are a subset of
  the live ones plus stand-ins, which never collide with a key's IDs.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path

from idgraph.core.errors import BackendError
from idgraph.graph.base import GraphChanges, IdentityGraph, LinkEdge, MatchEdge
from idgraph.graph.components import ComponentState, I, LogRow, R
from idgraph.graph.ids import profile_id_for
from idgraph.graph.networkx_backend.log import RESET, LinkLog

ERASED = "\x00"
"""Prefix of the founder of an ID founded by an erased record key, in memory (see the
module docstring): no record key starts with it."""


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
        self._reset_erasures({"pins": [], "erasures": {}})
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

    def remove_records(self, record_keys: list[str], at: float) -> GraphChanges:
        self._check_writable()
        removed = self.remove_records_op(record_keys, at)
        if not removed:
            return GraphChanges()
        self._append([("remove_record", k, None, None, None, None, None, None, None, at, None)
                      for k in removed])
        return self.commit()

    def erase_history(self, record_keys: Collection[str], identifiers: Collection[str],
                      token: Callable[[str], str]) -> int:
        """Rewrite the link log's rows of the removed records and of the identifiers no
        record carries any more (see the module docstring and :meth:`LinkLog.erase`), then
        make the old content physically gone (:meth:`LinkLog.scrub`). The graph in memory
        drops the IDs that vanished with the person, as a replay of the rewritten log does.

        Besides ``identifiers``, every identifier the log has the forgotten records carry
        (one unlinked before the forget, which the caller may not know) and no record
        carries now is erased too. Identifiers still in the graph (another record carries
        them) are left as they are; a record key still in the graph is an error
        (ValueError): remove it first."""
        self._check_writable()
        keys = sorted(set(record_keys))
        if any((R + k) in self._g for k in keys):
            raise ValueError("erase_history: a record to forget is still in the graph; "
                             "call remove_records first")
        candidates = set(identifiers) | (self._log.identifiers_of(keys) if keys else set())
        key_tokens = {k: token(k) for k in keys}
        ident_tokens = {i: token(i) for i in sorted(candidates) if (I + i) not in self._g}
        if not key_tokens and not ident_tokens:
            return 0
        # the change to the state, planned before the log commits it
        founded = {p: key_tokens[f] for p, (f, _) in self._meta.items() if f in key_tokens}
        watch = self._watch | founded.keys()
        drop = {p for p in watch if not self._still_used(p)}
        keep = watch - drop
        # a pin names the founder as a replay sees it when it assigns the ID: the token
        pins = sorted(
            [(self._meta[p][1], founded.get(p) or self._meta[p][0].removeprefix(ERASED), p)
             for p in keep]
            + [(self._meta[p][1], self._meta[p][0], p)
               for p in self._counter_ids - founded.keys()])
        changed, seq = self._log.erase(key_tokens, ident_tokens, token, pins, time.time())
        if not changed:
            return 0
        tokens = set(key_tokens.values())
        for p, tok in founded.items():
            self._meta[p] = (ERASED + tok, self._meta[p][1])
            self._token_founded.setdefault(tok, set()).add(p)
        self._counter_ids -= founded.keys()
        self._tokens |= tokens
        self._erased |= tokens
        self._watch = keep
        self._drop(drop)
        self._pins = {assigned: (founder, p) for assigned, founder, p in pins}
        gone = {R + k for k in keys} | {I + i for i in ident_tokens}
        self._relinked = {e for e in self._relinked if gone.isdisjoint(e)}
        self._log_seq = seq
        self._log.scrub()
        return changed

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
        self._log.retry_truncate()

    # erasure state ------------------------------------------------------------------

    def _reset_erasures(self, state: dict) -> None:
        """The erasure bookkeeping, from the log's pins and erasures (a :data:`RESET` row)."""
        self._pins: dict[int, tuple[str, str]] = {
            assigned: (founder, pid) for assigned, founder, pid in state["pins"]}
        self._erasures: dict[int, list[str]] = {
            int(seq): tokens for seq, tokens in state["erasures"].items()}
        self._tokens: set[str] = {t for tokens in self._erasures.values() for t in tokens}
        self._erased: set[str] = set()  # tokens whose erase row has been applied
        self._token_founded: dict[str, set[str]] = {}  # token -> IDs it founded
        self._watch: set[str] = set()  # IDs founded by an erased token (live or aliased)
        self._counter_ids: set[str] = set()  # IDs with a counter, founder not erased

    def _new_profile_id(self, founding: str) -> str:
        pin = self._pins.get(self._seq + 1)  # the sequence number this ID is assigned at
        if pin is not None and pin[0] == founding:
            pid = pin[1]
            counter = founding not in self._tokens
        else:
            tries = 0

            def used(p: str) -> bool:
                nonlocal tries
                tries += 1
                return self._is_used(p)

            pid = profile_id_for(founding, used)
            counter = tries > 1
        if founding in self._tokens:
            self._token_founded.setdefault(founding, set()).add(pid)
        elif counter:
            self._counter_ids.add(pid)
        return pid

    def _replay_erasure(self, tokens: list[str]) -> None:
        """An ``erase`` row: drop the IDs founded by erased tokens that are neither live nor
        an alias of a live ID, as the erasing process did."""
        self._erased.update(tokens)
        for t in tokens:
            for p in self._token_founded.get(t, ()):
                founder, seq = self._meta.get(p, (None, 0))
                if founder == t:  # founded since the token's last erasure (if any)
                    self._meta[p] = (ERASED + t, seq)
                    self._watch.add(p)
        drop = {p for p in self._watch if not self._still_used(p)}
        self._watch -= drop
        self._drop(drop)

    def _drop(self, pids: set[str]) -> None:
        self._forget_ids(pids)
        self._counter_ids -= pids
        for founded in self._token_founded.values():
            founded -= pids

    def _replay(self) -> None:
        """Apply the link log's rows after the last one applied (all of it on open)."""
        removals: list[str] = []  # a batch's remove_record rows: removed together
        removal_at = 0.0
        for seq, row in self._log.replay(self._log_seq):
            op, rec, ident, itype, linked, rule, reason, source, event_id, at, detail = row
            if op == "remove_record":
                removals.append(rec)
                removal_at = at
                self._log_seq = seq
                continue
            if removals:
                self.remove_records_op(removals, removal_at)
                removals = []
            if op == RESET:  # from the start (on open, or the log was erased since)
                ComponentState.__init__(self, self._shareable)
                self._reset_erasures(json.loads(detail))
            elif op == "record":
                self._batch_at = max(self._batch_at, at or 0.0)
                self._add_record(rec)
            elif op == "edge":
                self._add_edge(rec, ident, itype, bool(linked), rule, reason, source, event_id, at)
            elif op == "match":
                self._add_match(rec, ident, bool(linked), rule, reason, source, event_id, at,
                                json.loads(detail) if detail else {})
            elif op == "name":
                if detail is not None:  # None: a forgotten record's name, erased
                    self._set_name(rec, detail)
            elif op == "generic":
                self._mark_generic(ident, reason, at)
            elif op == "detach":
                self._detach_record(rec, reason, at)
            elif op == "unlink":
                self._remove_link(rec, ident, at)
            elif op == "erase":
                self._replay_erasure(self._erasures.get(seq, []))
            elif op == "commit":
                self.commit()
                self._batch_at = 0.0
            self._log_seq = seq
        if removals:  # (a batch always ends with its commit row)
            self.remove_records_op(removals, removal_at)
        self.commit()
