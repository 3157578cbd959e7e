"""Neo4j identity graph over Bolt, with the official ``neo4j`` driver.

The graph lives in the database (data model in :mod:`idgraph.graph.neo4j_backend.cypher`); this
process keeps nothing between writes except a read cache of its own last write.

Writes. Each ``apply``, ``remove_link`` and ``remove_records`` is one write transaction:

1. it takes the writers' turn by updating the ``GraphMeta`` node (Neo4j holds that node's
   write lock until commit, so writers are serialised; a server with optimistic
   concurrency, such as ArcadeDB, fails the later commit instead and it is retried); with
   a fencing token set (:meth:`Neo4jGraph.fence`, the writer's turn number), it is refused
   (BackendError, nothing written) when a write already carried a newer token, else the
   node keeps this one: a writer that lost its turn cannot write after a newer one did;
2. it loads every component the write touches, whole (records, identifiers, edges,
   profile IDs, their aliases and the sequence counter) into a fresh
   :class:`idgraph.graph.components.ComponentState`;
3. it runs the same ops as the embedded backend, so profile IDs, merge survivors, aliases,
   split IDs and history are the same for the same inputs;
4. it writes the difference back with ``UNWIND`` + ``MERGE`` statements in batches of
   ``neo4j.write_batch_size`` rows.

A transaction that fails with a transient error, a conflict with a concurrent writer or a
uniqueness-constraint violation (two writers creating one node) is retried from step 1 for
up to ``neo4j.max_transaction_retry_seconds``, so several workers may write at once.

Reads are Cypher queries (``Explain``'s path is ``shortestPath`` over linked edges). After
a write, reads of the profiles it touched are answered from the committed working set,
which the engine's materialisation of that write needs (a query per profile would cost a
round trip each); :meth:`refresh`, called at each writer turn, and the next write drop it.

Errors. The driver's exceptions (``Neo4jError``, ``DriverError``) are declared at the graph
seam's driver-error boundary (:class:`~idgraph.core.errors.DriverErrorBoundary`): a seam
method that meets one raises BackendError ``graph: <method> failed: <error> (<code>)``,
never the server's message (it quotes the statement's values, which are identifiers). A
write that gives up also says after how many attempts. This module is imported with the
backend's settings whichever backend is configured, so it does not import the driver: the
first :class:`Neo4jGraph` opened does (a missing driver is a ConfigError naming the extra).
"""

from __future__ import annotations

import functools
import json
import logging
import random
import ssl
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

from idgraph.core.errors import BackendError, ConfigError, translate_driver_errors
from idgraph.core.links import ProfileEvent
from idgraph.graph.base import (
    ComponentInfo,
    EdgeExplanation,
    GraphChanges,
    IdentifierEvidence,
    IdentityGraph,
    LinkEdge,
    MatchEdge,
)
from idgraph.graph.components import ComponentState, I, R
from idgraph.graph.ids import profile_id_for
from idgraph.graph.neo4j_backend import cypher

if TYPE_CHECKING:
    from idgraph.graph.neo4j_backend.settings import Neo4jSettings

log = logging.getLogger(__name__)

_DRIVER_MISSING = ("graph_backend=neo4j needs the neo4j driver: install the project's neo4j "
                   "extra: pip install 'idgraph[neo4j]'")

try:  # this module is imported only when the neo4j backend is chosen
    import neo4j
    from neo4j import exceptions as neo4j_errors
except ImportError as exc:
    raise ConfigError(_DRIVER_MISSING) from exc
_WRITE_BACKOFF = wait_exponential(multiplier=0.05, max=1.0)


def _write_retry_wait(state: RetryCallState) -> float:
    """Pause before another write attempt: 50 ms doubling up to 1 s, times a random factor in
    [1, 2) so writers that collided do not retry in step."""
    return _WRITE_BACKOFF(state) * (1 + random.random())


def _log_write_conflict(state: RetryCallState) -> None:
    """Log a write retry: the error's type only (servers quote values in their messages)."""
    log.info("graph: write conflict (%s), retrying", type(state.outcome.exception()).__name__)


def _reason(exc: BaseException) -> str:
    """What failed, without the server's message: a constraint or syntax error quotes the
    statement's values, which are identifiers (personal data)."""
    code = getattr(exc, "code", None)
    return f"{type(exc).__name__} ({code})" if code else type(exc).__name__


def _tls_options(settings: Neo4jSettings) -> tuple[str, dict[str, Any]]:
    """The URI to connect to and the driver's TLS options, from ``neo4j.uri``,
    ``neo4j.encrypted`` and ``neo4j.trusted_ca_file``.

    The driver takes TLS options only with the plain ``bolt``/``neo4j`` schemes: a ``+s``
    URI verifies against the system's CAs, so with ``trusted_ca_file`` it is connected as
    the plain scheme with TLS on and that CA trusted (what the field promises). Raises
    ConfigError naming the field when the settings contradict each other (a CA file with
    ``+ssc``, which trusts any certificate, or with TLS off) or the CA file is missing.
    """
    scheme, sep, rest = settings.uri.partition("://")
    base, _, security = scheme.partition("+")
    if not sep or base not in ("bolt", "neo4j") or security not in ("", "s", "ssc"):
        raise ConfigError(f"neo4j.uri: {settings.uri!r} is not a Bolt URI (bolt:// or neo4j://, "
                          "optionally bolt+s://, bolt+ssc://, neo4j+s://, neo4j+ssc://)")
    ca = settings.trusted_ca_file
    if ca is not None and not ca.is_file():
        raise ConfigError(f"neo4j.trusted_ca_file: {ca} is not a file")
    if security == "ssc":
        if ca is not None:
            raise ConfigError(
                f"neo4j.trusted_ca_file is set but neo4j.uri {settings.uri!r} (+ssc) trusts "
                f"any certificate: use {base}+s:// or {base}:// with encrypted = true to "
                "verify the server against that CA")
        return settings.uri, {}
    if security == "s":
        if ca is None:
            return settings.uri, {}
        return f"{base}://{rest}", {"encrypted": True,
                                    "trusted_certificates": neo4j.TrustCustomCAs(str(ca))}
    if not settings.encrypted:
        if ca is not None:
            raise ConfigError(
                "neo4j.trusted_ca_file is set but neo4j.encrypted is false and neo4j.uri "
                f"{settings.uri!r} is not a +s URI: the connection would not be encrypted; "
                "set encrypted = true")
        return settings.uri, {"encrypted": False}
    trust = neo4j.TrustCustomCAs(str(ca)) if ca is not None else neo4j.TrustSystemCAs()
    return settings.uri, {"encrypted": True, "trusted_certificates": trust}


def _tls_failure(exc: BaseException) -> str:
    """``"TLS: <why>; "`` when a TLS error caused ``exc`` (the driver's own message only
    says the connection failed), else ``""``."""
    seen: BaseException | None = exc
    for _ in range(10):  # the cause chain is short; bounded against cycles
        if seen is None:
            break
        if isinstance(seen, ssl.SSLError):
            verify = getattr(seen, "verify_message", None)
            why = f"certificate verify failed: {verify}" if verify else seen.reason or seen
            return f"TLS: {why}; "
        seen = seen.__cause__ or seen.__context__
    return ""


def _run(tx: Any, query: str, **params: Any) -> list[Any]:
    """Send one statement of :mod:`cypher` and return its records (the one place that
    sends Cypher: the test suite checks every statement that passes here)."""
    return list(tx.run(query, params))


def _chunks(rows: list, size: int) -> Iterable[list]:
    for i in range(0, len(rows), size):
        yield rows[i:i + size]


class _WorkingSet(ComponentState):
    """The components one write touches, loaded whole from the database."""

    def __init__(self, shareable: frozenset[str], tx: Any) -> None:
        super().__init__(shareable)
        self._tx = tx
        self._used: dict[str, bool] = {}
        self.loaded_nodes: dict[str, str | None] = {}  # node -> pid as loaded
        self.foreign: set[str] = set()  # nodes of components not loaded: never written
        self.loaded_edges: set[tuple[str, str]] = set()  # _edge_key pairs
        self.loaded_attrs: dict[str, str | None] = {}  # record name / identifier generic mark
        self.loaded_profiles: dict[str, tuple[bool, str | None]] = {}  # pid -> (live, alias_of)

    def _is_used(self, pid: str) -> bool:
        if pid in self._meta:
            return True
        used = self._used.get(pid)
        if used is None:
            used = self._used[pid] = bool(_run(self._tx, cypher.USED_PIDS, pids=[pid]))
        return used

    def prefetch_used(self, pids: list[str]) -> None:
        """Learn in one query which of ``pids`` were ever assigned (new profiles' IDs)."""
        fresh = [p for p in pids if p not in self._used and p not in self._meta]
        if fresh:
            found = {r["pid"] for r in _run(self._tx, cypher.USED_PIDS, pids=fresh)}
            self._used.update((p, p in found) for p in fresh)

    def load(self, record_keys: list[str], identifiers: list[str]) -> None:
        """Load the components of the given nodes, whole, with their aliases."""
        tx = self._tx
        pids = {r["pid"] for r in _run(tx, cypher.PIDS_OF_RECORDS, keys=record_keys)}
        loose: list[tuple[str, str, str | None]] = []
        for r in _run(tx, cypher.IDENTIFIERS_BY_KEY, keys=identifiers):
            if r["pid"] is None:
                loose.append((r["key"], r["type"], r["generic"]))
            else:
                pids.add(r["pid"])
        pids.discard(None)
        plist = sorted(pids)
        g = self._g
        members: dict[str, set[str]] = {p: set() for p in plist}
        for r in _run(tx, cypher.RECORDS_OF_PIDS, pids=plist):
            node = R + r["key"]
            g.add_node(node)
            self._load_attr(node, "name", r["name"])
            self._rec_seq[node] = r["seq"]
            members[r["pid"]].add(node)
            self.loaded_nodes[node] = r["pid"]
        for r in _run(tx, cypher.IDENTIFIERS_OF_PIDS, pids=plist):
            node = I + r["key"]
            g.add_node(node, type=r["type"])
            self._load_attr(node, "generic", r["generic"])
            members[r["pid"]].add(node)
            self.loaded_nodes[node] = r["pid"]
        for key, itype, generic in loose:
            g.add_node(I + key, type=itype)
            self._load_attr(I + key, "generic", generic)
            self.loaded_nodes[I + key] = None
        keys = [n[2:] for n in self.loaded_nodes if n[0] == "r"]
        for r in _run(tx, cypher.HAS_EDGES_OF_RECORDS, keys=keys):
            rn, inode = R + r["rec"], I + r["ident"]
            if inode not in g:  # an unlinked edge to another component's identifier
                g.add_node(inode, type=r["type"])
                self.foreign.add(inode)
            g.add_edge(rn, inode, linked=r["linked"], rule=r["rule"], reason=r["reason"],
                       source=r["source"], event_id=r["event_id"], at=r["at"])
            self.loaded_edges.add(_edge_key(rn, inode))
        for r in _run(tx, cypher.MATCH_EDGES_OF_RECORDS, keys=keys):
            an, bn = R + r["rec"], R + r["other"]
            if bn not in g:
                g.add_node(bn)
                self.foreign.add(bn)
            if g.has_edge(an, bn):
                continue  # both ends loaded: seen from the other end
            detail = {"w": r["match_weight"], "p": r["probability"], "m": r["model_version"],
                      "c": json.loads(r["contributions"] or "[]")}
            g.add_edge(an, bn, linked=r["linked"], rule=r["rule"], reason=r["reason"],
                       source=r["source"], event_id=r["event_id"], at=r["at"], detail=detail)
            self.loaded_edges.add(_edge_key(an, bn))
        for pid in plist:
            cid = self._new_component(members[pid])
            self._cid_pid[cid] = pid
            self._pid_cid[pid] = cid
        self._pending.clear()
        for r in _run(tx, cypher.PROFILES_BY_PID, pids=plist) + _run(
                tx, cypher.ALIASES_OF_PIDS, pids=plist):
            self._meta[r["pid"]] = (r["founding"], r["seq"])
            self.loaded_profiles[r["pid"]] = (bool(r["live"]), r["alias_of"])
            if r["alias_of"] is not None:
                self._alias[r["pid"]] = r["alias_of"]
                self._alias_children.setdefault(r["alias_of"], set()).add(r["pid"])

    def _load_attr(self, node: str, attr: str, value: str | None) -> None:
        if value:
            self._g.nodes[node][attr] = value
        self.loaded_attrs[node] = value or None

    def changed_attr(self, node: str, attr: str) -> str | None:
        """The node's ``attr`` if this write changed it (or set it on a new node), else None."""
        value = self._g.nodes[node].get(attr)
        return value if value and value != self.loaded_attrs.get(node) else None

    def pid_of_node(self, node: str) -> str | None:
        cid = self._comp.get(node)
        return None if cid is None else self._cid_pid.get(cid)

    def own(self, node: str) -> bool:
        """True for a node of a loaded (or new) component: its state here is complete."""
        return node not in self.foreign


def _edge_key(u: str, v: str) -> tuple[str, str]:
    return (u, v) if u < v else (v, u)


class Neo4jGraph(IdentityGraph):
    """Identity graph in Neo4j (any Bolt server speaking Neo4j 5 Cypher)."""

    driver_errors = (neo4j_errors.Neo4jError, neo4j_errors.DriverError)
    describe_driver_error = staticmethod(_reason)

    def __init__(self, settings: Neo4jSettings, shareable_types: frozenset[str] = frozenset(),
                 read_only: bool = False) -> None:
        self._settings = settings
        self._shareable = shareable_types
        self._read_only = read_only
        self._last: _WorkingSet | None = None
        self._token: int | None = None
        auth = (settings.user, settings.password.get_secret_value())
        uri, tls = _tls_options(settings)
        options: dict[str, Any] = {
            "max_connection_pool_size": settings.max_connection_pool_size,
            "connection_timeout": settings.connection_timeout_seconds,
            "max_transaction_retry_time": settings.max_transaction_retry_seconds,
            **tls,
        }
        try:
            self._driver = neo4j.GraphDatabase.driver(uri, auth=auth, **options)
            self._driver.verify_connectivity()
        except neo4j_errors.AuthError as exc:
            raise BackendError(
                f"graph: Neo4j at {settings.uri} refused the credentials of user "
                f"{settings.user!r} (neo4j.user, neo4j.password)") from exc
        except (neo4j_errors.Neo4jError, neo4j_errors.DriverError, OSError) as exc:
            hint = ""
            if not tls.get("encrypted", True) and "incomplete handshake" in str(exc):
                # what a TLS-only server does to a plaintext client: close at once
                hint = (" (if the server requires TLS, set neo4j.encrypted = true or use a "
                        "+s URI)")
            raise BackendError(
                f"graph: cannot reach Neo4j at {settings.uri}: {_tls_failure(exc)}"
                f"{type(exc).__name__}: {exc}{hint}") from exc
        if not read_only:
            self._create_schema()

    # ------------------------------------------------------------------- plumbing

    def _session(self):
        return self._driver.session(database=self._settings.database)

    def _create_schema(self) -> None:
        try:
            with self._session() as session:
                for stmt in cypher.SCHEMA:
                    session.execute_write(_run, stmt)
        except self.driver_errors as exc:  # opening is no seam method: no boundary here
            raise BackendError(f"graph: schema set-up failed: {_reason(exc)}") from exc

    def _read(self, query: str, **params: Any) -> list[Any]:
        """Records of one read query (driver errors: the seam's boundary)."""
        with self._session() as session:
            return session.execute_read(_run, query, **params)

    def _retryable(self, exc: BaseException) -> bool:
        """What the driver's ``execute_write`` does not retry itself but a fresh attempt
        fixes: two writers MERGE-ing the same new key (ArcadeDB reports the loser's
        ConstraintError where Neo4j would lock). Transient errors, lost sessions and
        unavailable servers were already retried by the driver for the same time budget."""
        return isinstance(exc, neo4j_errors.ConstraintError)

    def _write(self, work: Callable[[_WorkingSet], None], method: str) -> GraphChanges:
        """Run ``work`` on a freshly loaded working set in one write transaction, retried
        on conflicts; returns the changes of the attempt that committed. A driver error
        that ends the retries is a BackendError naming the seam ``method`` and how many
        attempts were made (what the boundary alone could not say)."""
        if self._read_only:
            raise BackendError("graph: this is a read-only view; only the writer applies")
        self._last = None
        retrying = Retrying(
            retry=retry_if_exception(self._retryable),
            stop=stop_after_delay(self._settings.max_transaction_retry_seconds),
            wait=_write_retry_wait, before_sleep=_log_write_conflict, reraise=True)
        attempts = 0
        try:
            for attempt in retrying:
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    with self._session() as session:
                        ws, changes = session.execute_write(self._write_tx, work)
        except self.driver_errors as exc:
            raise BackendError(f"graph: {method} failed: write failed after {attempts} "
                               f"attempt(s): {_reason(exc)}") from exc
        self._last = ws
        return changes

    def fence(self, token: int | None) -> None:
        """Writes from now on carry fencing token ``token`` (module docstring, step 1)."""
        self._token = token

    def _take_turn(self, tx: Any) -> int:
        """Step 1 in ``tx``: the turn, and the fence when a token is set; the sequence."""
        seq = _run(tx, cypher.TAKE_TURN)[0]["seq"]
        if self._token is not None:
            seen = _run(tx, cypher.FENCE_SEEN)[0]["fence"]
            if seen > self._token:
                raise BackendError(
                    f"graph: write refused: turn {seen} of another writer wrote after this "
                    f"writer's turn {self._token} began (this writer lost its turn)")
            _run(tx, cypher.FENCE_SET, token=self._token)
        return seq

    def _write_tx(self, tx: Any, work: Callable[[_WorkingSet], None]
                  ) -> tuple[_WorkingSet, GraphChanges]:
        """One attempt: take the turn, load, run ``work``, write the difference back."""
        ws = _WorkingSet(self._shareable, tx)
        ws._seq = self._take_turn(tx)
        work(ws)
        changes = ws.commit()
        self._write_back(ws, changes)
        return ws, changes

    def _write_back(self, ws: _WorkingSet, changes: GraphChanges) -> None:
        tx, size = ws._tx, self._settings.write_batch_size
        g = ws._g

        def send(query: str, rows: list, name: str = "rows") -> None:
            for chunk in _chunks(rows, size):
                _run(tx, query, **{name: chunk})

        final_edges = {_edge_key(u, v) for u, v in g.edges()}
        # loaded edges a generic mark demoted: rewritten as CARRIES with their new reason
        demoted = {_edge_key(u, v) for u, v in ws._relinked} & ws.loaded_edges & final_edges
        gone_edges = (ws.loaded_edges - final_edges) | demoted
        # an identifier edge's key is (identifier, record): "i|" sorts before "r|"
        send(cypher.DELETE_HAS, [{"rec": v[2:], "ident": u[2:]} for u, v in sorted(gone_edges)
                                 if u[0] != v[0]])
        send(cypher.DELETE_MATCHED, [{"a": u[2:], "b": v[2:]} for u, v in sorted(gone_edges)
                                     if u[0] == v[0]])
        gone_nodes = sorted(n for n in ws.loaded_nodes if n not in g)
        send(cypher.DELETE_RECORDS, [n[2:] for n in gone_nodes if n[0] == "r"], "keys")
        send(cypher.RELEASE_IDENTIFIERS, [n[2:] for n in gone_nodes if n[0] == "i"], "keys")

        new_records, new_idents, moved_records, moved_idents = [], [], [], []
        for node in g.nodes:
            if not ws.own(node):
                continue
            pid = ws.pid_of_node(node)
            if node not in ws.loaded_nodes:
                if node[0] == "r":
                    new_records.append({"key": node[2:], "seq": ws._rec_seq[node], "pid": pid})
                else:
                    new_idents.append({"key": node[2:], "type": g.nodes[node]["type"],
                                       "pid": pid})
            elif ws.loaded_nodes[node] != pid:
                (moved_records if node[0] == "r" else moved_idents).append(
                    {"key": node[2:], "pid": pid})
        send(cypher.MERGE_RECORDS, new_records)
        send(cypher.MERGE_IDENTIFIERS, new_idents)
        send(cypher.SET_RECORD_PIDS, moved_records)
        send(cypher.SET_IDENTIFIER_PIDS, moved_idents)
        names, generic = [], []
        for node in g.nodes:
            if not ws.own(node):
                continue
            if node[0] == "r":
                if (name := ws.changed_attr(node, "name")) is not None:
                    names.append({"key": node[2:], "name": name})
            elif (why := ws.changed_attr(node, "generic")) is not None:
                generic.append({"key": node[2:], "generic": why})
        send(cypher.SET_RECORD_NAMES, names)
        send(cypher.SET_IDENTIFIER_GENERIC, generic)

        has_rows, match_rows = [], []
        for u, v in sorted((final_edges - ws.loaded_edges) | demoted):
            d = g.edges[u, v]
            common = {"linked": d["linked"], "rule": d["rule"], "reason": d["reason"],
                      "source": d["source"], "event_id": d["event_id"], "at": d["at"]}
            if u[0] == v[0]:
                detail = d.get("detail") or {}
                match_rows.append({"a": u[2:], "b": v[2:], **common,
                                   "match_weight": detail.get("w"),
                                   "probability": detail.get("p"),
                                   "model_version": detail.get("m", ""),
                                   "contributions": json.dumps(detail.get("c", []))})
            else:
                rec, ident = (u, v) if u[0] == "r" else (v, u)
                has_rows.append({"rec": rec[2:], "ident": ident[2:], **common})
        send(cypher.MERGE_LINKS, [r for r in has_rows if r["linked"]])
        send(cypher.MERGE_CARRIES, [r for r in has_rows if not r["linked"]])
        send(cypher.MERGE_SAME_AS, [r for r in match_rows if r["linked"]])
        send(cypher.MERGE_SCORED, [r for r in match_rows if not r["linked"]])

        profile_rows = []
        for pid, (founding, pseq) in ws._meta.items():
            state = (pid in ws._pid_cid, ws._alias.get(pid))
            if ws.loaded_profiles.get(pid) != state:
                profile_rows.append({"pid": pid, "founding": founding, "seq": pseq,
                                     "live": state[0], "alias_of": state[1]})
        send(cypher.MERGE_PROFILES, profile_rows)
        send(cypher.CREATE_HISTORY, [
            {"pid": pid, "seq": h.seq, "kind": h.kind, "related": list(h.related_ids),
             "reason": h.reason,
             "at": h.at, "subject": h.profile_id}
            for h in changes.history for pid in [h.profile_id, *h.related_ids]])
        _run(tx, cypher.SET_SEQ, seq=ws._seq)

    # ------------------------------------------------------------------ writes

    def apply(self, new_records: list[tuple[str, float]], edges: list[LinkEdge],
              matches: Iterable[MatchEdge] = (), names: Mapping[str, str] | None = None,
              generic: Mapping[str, str] | None = None,
              detached: Mapping[str, str] | None = None) -> GraphChanges:
        matches = list(matches)
        names = dict(names or {})
        generic = dict(generic or {})
        detached = dict(detached or {})
        records = list(dict.fromkeys(
            [k for k, _ in new_records] + [e.record_key for e in edges]
            + [k for m in matches for k in (m.record_a, m.record_b)] + list(names)
            + list(detached)))
        identifiers = list(dict.fromkeys([e.identifier for e in edges] + list(generic)))
        if not records and not identifiers:
            return GraphChanges()

        def work(ws: _WorkingSet) -> None:
            ws.load(records, identifiers)
            ws.prefetch_used([_first_pid(k) for k in records if (R + k) not in ws._g])
            ws.apply_ops(new_records, edges, matches, names, generic, detached)

        return self._write(work, "apply")

    def remove_link(self, record_key: str, identifier: str, at: float) -> GraphChanges:
        def work(ws: _WorkingSet) -> None:
            ws.load([record_key], [identifier])
            ws.unlink_op(record_key, identifier, at)

        return self._write(work, "remove_link")

    def remove_records(self, record_keys: list[str], at: float) -> GraphChanges:
        keys = list(dict.fromkeys(record_keys))

        def work(ws: _WorkingSet) -> None:
            # the identifiers the records carry that link nothing are loaded too: one left
            # with no edge is deleted (as the embedded graph does), not kept with its mark
            loose = sorted({r["ident"] for r in _run(ws._tx, cypher.HAS_EDGES_OF_RECORDS,
                                                     keys=keys) if r["pid"] is None})
            ws.load(keys, loose)
            ws.remove_records_op(keys, at)

        return self._write(work, "remove_record")

    def erase_history(self, record_keys: Collection[str], identifiers: Collection[str],
                      token: Callable[[str], str]) -> int:
        """What the database still holds of a person after :meth:`remove_records` (which
        deleted the records with their names and edges, event IDs included), in one write
        transaction taking the writers' turn:

        * the Identifier nodes of ``identifiers`` that no record carries (a node whose last
          edge went with a removed record lingers, with its generic mark);
        * every Profile node a forgotten record founded keeps its token as ``founding``
          (``erased`` set); those that are neither live nor an alias of a live profile
          (with the earlier erased ones that no longer are) are deleted with their history
          (the nodes under their ID and those they are the subject of), and an alias of
          one resolves to nothing any more: as the embedded graph forgets them.

        Returns the number of nodes deleted or changed."""
        if self._read_only:
            raise BackendError("graph: this is a read-only view; only the writer applies")
        keys = sorted(set(record_keys))
        idents = sorted(set(identifiers))
        founders = [{"key": k, "token": token(k)} for k in keys]
        self._last = None

        def work(tx: Any) -> int:
            self._take_turn(tx)
            if keys and _run(tx, cypher.RECORDS_PRESENT, keys=keys):
                raise ValueError("erase_history: a record to forget is still in the graph; "
                                 "call remove_records first")
            changed = sum(r["n"] for r in _run(tx, cypher.DELETE_ORPHAN_IDENTIFIERS,
                                              keys=idents)) if idents else 0
            tokenised = {r["pid"] for r in _run(tx, cypher.ERASE_FOUNDERS, rows=founders)} \
                if founders else set()
            gone = sorted({r["pid"] for r in _run(tx, cypher.VANISHED_PROFILES)})
            changed += len(tokenised - set(gone))
            if gone:
                _run(tx, cypher.DETACH_ALIASES_OF, pids=gone)
                subject = [{"pid": q, "subject": r["pid"], "seq": r["seq"]}
                           for r in _run(tx, cypher.HISTORY_SUBJECT_OF, pids=gone)
                           for q in r["related"] or () if q not in gone]
                for query, params in ((cypher.DELETE_HISTORY, {"rows": subject}),
                                      (cypher.DELETE_HISTORY_OF, {"pids": gone}),
                                      (cypher.DELETE_PROFILES, {"pids": gone})):
                    changed += sum(r["n"] for r in _run(tx, query, **params))
            return changed

        with self._session() as session:
            return session.execute_write(work)

    # ------------------------------------------------------------------- reads

    def component_info(
        self, record_keys: Iterable[str], identifiers: Iterable[str]
    ) -> tuple[dict[str, ComponentInfo], dict[str, ComponentInfo]]:
        rec_pids = {r["key"]: r["pid"] for r in self._read(cypher.RECORD_PIDS,
                                                          keys=list(dict.fromkeys(record_keys)))}
        id_pids = {r["key"]: r["pid"] for r in self._read(cypher.IDENTIFIER_PIDS,
                                                         keys=list(dict.fromkeys(identifiers)))}
        pids = sorted({*rec_pids.values(), *id_pids.values()} - {None})
        infos = {p: ComponentInfo(component=p, type_counts={}, known=False) for p in pids}
        for r in self._read(cypher.TYPE_COUNTS, pids=pids):
            info = infos[r["pid"]]
            info.type_counts[r["type"]] = r["n"]
            t = r["type"]
            if not (t in self._shareable or t.split(":", 1)[0] in self._shareable):
                info.known = True
        names: dict[str, set[str]] = {}
        for r in self._read(cypher.RECORD_NAMES_OF_PIDS, pids=pids):
            names.setdefault(r["pid"], set()).add(r["name"])
        for pid, found in names.items():
            infos[pid].names = frozenset(found)
        emails: dict[str, set[str]] = {}
        for r in self._read(cypher.EMAILS_OF_PIDS, pids=pids):
            emails.setdefault(r["pid"], set()).add(r["key"][6:])
        for pid, found in emails.items():
            infos[pid].emails = frozenset(found)
        return ({k: infos[p] for k, p in rec_pids.items() if p is not None},
                {k: infos[p] for k, p in id_pids.items()})

    def identifier_evidence(self, identifiers: Iterable[str]) -> dict[str, IdentifierEvidence]:
        out: dict[str, IdentifierEvidence] = {}
        for r in self._read(cypher.CARRIERS_OF_IDENTIFIERS,
                            keys=list(dict.fromkeys(identifiers))):
            if r["rec"] is None:
                continue  # a node no record carries any more is as good as unknown
            ev = out.get(r["key"])
            if ev is None:
                ev = out[r["key"]] = IdentifierEvidence(carriers={}, generic=r["generic"] or "")
            ev.carriers[r["rec"]] = r["name"] or ""
        return out

    def edges_of(self, record_keys: Iterable[str]) -> dict[str, dict[str, bool]]:
        out: dict[str, dict[str, bool]] = {}
        for r in self._read(cypher.HAS_OF_RECORDS, keys=list(dict.fromkeys(record_keys))):
            found = out.setdefault(r["key"], {})
            if r["ident"] is not None:
                found[r["ident"]] = r["linked"]
        return out

    def matches_of(self, record_keys: Iterable[str]) -> dict[str, dict[str, bool]]:
        out: dict[str, dict[str, bool]] = {}
        for r in self._read(cypher.MATCHED_OF_RECORDS, keys=list(dict.fromkeys(record_keys))):
            out.setdefault(r["key"], {})[r["other"]] = r["linked"]
        return out

    def profile_of(self, record_key: str) -> str | None:
        ws = self._last
        if ws is not None and ws.own(R + record_key) and (
                (R + record_key) in ws._g or (R + record_key) in ws.loaded_nodes):
            return ws.profile_of(record_key)
        rows = self._read(cypher.PROFILE_OF, key=record_key)
        return rows[0]["pid"] if rows else None

    def profiles_of(self, record_keys: Iterable[str]) -> dict[str, str]:
        keys = list(dict.fromkeys(record_keys))
        out: dict[str, str] = {}
        for chunk in _chunks(keys, 10_000):
            out.update((r["key"], r["pid"]) for r in self._read(cypher.RECORD_PIDS, keys=chunk)
                       if r["pid"] is not None)
        return out

    def records_of(self, profile_id: str) -> list[str]:
        ws = self._last
        if ws is not None and profile_id in ws._meta:
            return ws.records_of(profile_id)
        return [r["key"] for r in self._read(cypher.RECORDS_OF, pid=profile_id)]

    def aliases_of(self, profile_id: str) -> list[str]:
        ws = self._last
        if ws is not None and profile_id in ws._meta:
            return ws.aliases_of(profile_id)
        return [r["pid"] for r in self._read(cypher.ALIASES_OF, pid=profile_id)]

    def resolve(self, profile_id: str) -> str | None:
        ws = self._last
        if ws is not None and profile_id in ws._meta:
            return ws.resolve(profile_id)
        rows = self._read(cypher.RESOLVE, pid=profile_id)
        if not rows:
            return None
        if rows[0]["live"]:
            return profile_id
        return rows[0]["alias_of"]

    def profile_ids(self) -> list[str]:
        return [r["pid"] for r in self._read(cypher.LIVE_PROFILES)]

    def history_of(self, profile_id: str) -> list[ProfileEvent]:
        """The merge/split history naming ``profile_id`` (as the store keeps it), in order."""
        return [ProfileEvent(r["kind"], r["subject"], list(r["related"] or []), r["at"], r["seq"],
                             r["reason"] or "")
                for r in self._read(cypher.HISTORY_OF, pid=profile_id)]

    def profile_edges(self, profile_id: str) -> list[EdgeExplanation]:
        keys = self.records_of(profile_id)
        if not keys:
            return []
        rows: list[tuple[str, str, EdgeExplanation]] = []
        for r in self._read(cypher.HAS_EDGES_OF_RECORDS, keys=keys):
            rows.append((R + r["rec"], I + r["ident"], EdgeExplanation(
                record_key=r["rec"], identifier=r["ident"], other_record="",
                linked=r["linked"], rule=r["rule"], reason=r["reason"], source=r["source"],
                event_id=r["event_id"], at=r["at"])))
        for r in self._read(cypher.MATCH_EDGES_OF_RECORDS, keys=keys):
            a, b = R + r["rec"], R + r["other"]
            if b < a and r["pid"] == profile_id:
                continue  # listed once, from its lower end
            rows.append((a, b, EdgeExplanation(
                record_key=r["rec"], identifier="", other_record=r["other"],
                linked=r["linked"], rule=r["rule"], reason=r["reason"], source=r["source"],
                event_id=r["event_id"], at=r["at"], match_weight=r["match_weight"],
                probability=r["probability"], model_version=r["model_version"] or "",
                contributions=tuple(tuple(c) for c in json.loads(r["contributions"] or "[]")),
            )))
        rows.sort(key=lambda t: (t[0], t[1]))
        return [e for _, _, e in rows]

    def path_between(self, identifier_a: str, identifier_b: str) -> list[EdgeExplanation] | None:
        if identifier_a == identifier_b:
            rows = self._read(cypher.IDENTIFIER_PIDS, keys=[identifier_a])
            return [] if rows else None
        rows = self._read(cypher.SHORTEST_LINKED_PATH, a=identifier_a, b=identifier_b)
        if not rows:
            return None
        keys, kinds, rels = rows[0]["keys"], rows[0]["kinds"], rows[0]["rels"]
        out = []
        for i, d in enumerate(rels):
            u, v = keys[i], keys[i + 1]
            u_rec, v_rec = "Record" in kinds[i], "Record" in kinds[i + 1]
            if u_rec and v_rec:
                out.append(EdgeExplanation(
                    record_key=u, identifier="", other_record=v, linked=d["linked"],
                    rule=d["rule"], reason=d["reason"], source=d["source"],
                    event_id=d["event_id"], at=d["at"], match_weight=d.get("match_weight"),
                    probability=d.get("probability"),
                    model_version=d.get("model_version") or "",
                    contributions=tuple(tuple(c) for c in json.loads(
                        d.get("contributions") or "[]"))))
            else:
                rec, ident = (u, v) if u_rec else (v, u)
                out.append(EdgeExplanation(
                    record_key=rec, identifier=ident, other_record="", linked=d["linked"],
                    rule=d["rule"], reason=d["reason"], source=d["source"],
                    event_id=d["event_id"], at=d["at"]))
        return out

    def refresh(self) -> None:
        """Drop the read cache of the last write (other writers may have written since)."""
        self._last = None

    def close(self) -> None:
        self._last = None
        self._driver.close()


# history_of is public but not on the seam: its driver errors are translated the same way
translate_driver_errors(Neo4jGraph, IdentityGraph.seam_name, ["history_of"])


@functools.cache
def _first_pid(record_key: str) -> str:
    """The ID a record founding a new profile gets unless that ID was used before."""
    return profile_id_for(record_key, lambda _pid: False)
