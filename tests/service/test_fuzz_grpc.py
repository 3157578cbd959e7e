"""Fuzz every rpc of a running server with malformed requests and metadata (issue 17,
item 5): no crash, no leaked detail.

One server (the way ``idgraph serve`` runs it: the reader side of a data directory an
:class:`Engine` wrote, with explain, reviews, segments and PrivacyService) serves the
whole module. The rpcs are read from the services' descriptors in
``profiles_pb2``/``segments_pb2``/``privacy_pb2`` (:data:`RPCS`), so an rpc added there
is fuzzed without a change here. Each rpc is called through a generic channel method
(bytes in, the output type out; a stream is read for at most :data:`STREAM_MESSAGES`
messages or :data:`STREAM_IDLE` seconds, then cancelled) with:

* generated requests (:func:`proto_strategies.messages`: every field type with its edge
  values, huge and control-character strings, unknown enum numbers, over-limit lists,
  out-of-range Timestamps...; strings also shaped as identifiers and segment definitions,
  or naming what the world holds) with the token of each role;
* raw payloads that are not (quite) a request (:func:`proto_strategies.raw_bytes`) with a
  token whose role may call the rpc (found by probing each rpc at start);
* generated metadata: no/garbage/huge/non-ASCII ``authorization`` values, ``bearer`` in
  any case and spacing, duplicate keys, ``-bin`` headers, long values and reserved
  names. Metadata grpc will not send (an illegal key or value) may be refused by the
  client (:func:`client_can_send` says which); that is not a server failure.

Every call must end without UNKNOWN or INTERNAL (an exception no handler mapped, or a
request grpc could not decode) and without DEADLINE_EXCEEDED on a unary call (a request
that hangs the server), and its status details (and the ``error`` texts of an answer)
must not contain any token, nor any string value of the request or metadata longer than
:data:`ECHO_LIMIT` characters, whole, cut or lower-cased (:func:`needles`; such a value
may be personal data). Exempt are only what the server may say without being told
(:meth:`World.found_in`): names the API publishes (purposes, identifier types), IDs it
made, and text of its own code (hypothesis also draws the string constants of the code
under test). The server's log records (every level of ``idgraph``, and grpc's) must
hold neither. The last test checks the server still answers Health Check SERVING and a
Lookup of a person the fuzz never named.

Examples are derandomized (the same on every run); a failure prints the drawn request
and the outcome.
"""

from __future__ import annotations

import ast
import json
import logging
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory, text_format
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import DecodeError, Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from helpers import record
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from proto_strategies import clipped, messages, raw_bytes, string_values, texts

from idgraph.coordination import review_id_for
from idgraph.engine import Engine
from idgraph.engine.forget import request_forget
from idgraph.proto.idgraph.v1 import admin_pb2, privacy_pb2, profiles_pb2, segments_pb2
from idgraph.resolver.model import NAMESPACED_TYPES, SIMPLE_TYPES
from idgraph.service.server import create_server
from idgraph.service.settings import GrpcSettings
from idgraph.serving import open_served
from idgraph.settings import Settings

TOKENS = {"api": "fz-api-7c1e0d55", "steward": "fz-steward-4b2d91aa",
          "privacy": "fz-privacy-9a3f6e07"}
ROLES = tuple(TOKENS)
ECHO_LIMIT = 8
"""A request value longer than this (stripped) must not come back in an error."""
STREAM_MESSAGES = 3
STREAM_IDLE = 0.6
"""Seconds a stream may stay silent before it is cancelled (WatchSegment waits for
changes that never come here)."""
UNARY_TIMEOUT = 30.0
FORBIDDEN_CODES = frozenset({grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL})

pytestmark = pytest.mark.slow  # one server, ~2,500 calls: ~30 s on 2 cores (~55 s failing)

# The world. KEEPER is never named to the fuzz (no hint holds it): it must still be found
# at the end, whatever the fuzz forgot, deleted or decided.
URSULA, LENA, VICTOR = "email:ursula@example.com", "email:lena@example.de", \
    "email:victor.b@example.com"
KEEPER = "email:keeper.k@example.org"
PEOPLE = [
    record("hubspot", "7001", "e1", 100, ["crm:hubspot:7001", URSULA, "device:tablet-7"],
           given_name="Ursula", country="US"),
    record("salesforce", "003EU", "e2", 110, ["crm:salesforce:003EU", LENA, "phone:+4915112345678",
                                              "device:tablet-7"], given_name="Lena",
           country="DE", consent={"email": True}),
    record("hubspot", "7002", "e3", 120, ["crm:hubspot:7002", VICTOR], given_name="Victor",
           country="US"),
    record("segment", "u-9", "e4", 130, ["user:segment:u-9", VICTOR], given_name="Victor"),
    record("hubspot", "7777", "e5", 140, ["crm:hubspot:7777", KEEPER], given_name="Keeper",
           country="US"),
]
REVIEW_PAIRS = [("hubspot:7001", "hubspot:7002"), ("salesforce:003EU", "segment:u-9")]
SEGMENTS = {"Everyone": "has_identifier(email)", "EU customers": 'region in ("eu")',
            "Mailable": 'consent("email") = granted and has_identifier(email)'}
DEFINITION_TEMPLATES = ["given_name = {}", "given_name matches {}", "event({}).within(30d)",
                        "in_segment({})", "consent({}) = granted", 'country in ({}, "DE")',
                        "attribute({}) exists", "has_identifier(email) and given_name = {}"]
RESERVED_KEYS = ["grpc-timeout", "grpc-encoding", "grpc-accept-encoding", "content-type",
                 "te", "user-agent", "grpc-message", "host", "grpc-trace-bin",
                 "grpc-tags-bin", "x-forwarded-for", "authorization-bin", "cookie"]


# ----------------------------------------------------------------------------- the rpcs

class Rpc:
    """One method of a service (a plain class: hypothesis prints a dataclass field by
    field, and a method descriptor's repr names nothing)."""

    def __init__(self, method: MethodDescriptor) -> None:
        self.method = method
        self.path = f"/{method.containing_service.full_name}/{method.name}"
        self.request_class = message_factory.GetMessageClass(method.input_type)
        self.response_class = message_factory.GetMessageClass(method.output_type)

    def __repr__(self) -> str:
        return f"{self.method.containing_service.name}.{self.method.name}"


AUTHORS_OWN_TEXT = frozenset({"idgraph.v1.DefineSegmentRequest.definition",
                              "idgraph.v1.DefineSegmentRequest.name",
                              "idgraph.v1.CheckSegmentRequest.definition",
                              "idgraph.v1.PreviewSegmentRequest.definition",
                              "idgraph.v1.PreviewSegmentRequest.name"})
"""Fields whose text an error may show back to the caller who wrote it: a definition's
syntax error points into the definition with a caret, and names what it refers to (a
draft checked or previewed, too, and the name it would be saved under)."""


def every_rpc() -> list[Rpc]:
    """Every method of every service declared in the three proto files."""
    return [Rpc(method) for module in (profiles_pb2, segments_pb2, privacy_pb2, admin_pb2)
            for service in module.DESCRIPTOR.services_by_name.values()
            for method in service.methods]


RPCS = every_rpc()


# ----------------------------------------------------------------------------- calls

@dataclass
class Outcome:
    code: grpc.StatusCode | None
    """None when the client refused to send the call (``refused`` says why)."""
    details: str
    responses: list[Message]
    refused: str = ""


def _read_stream(call: Any) -> list[Message]:
    """At most STREAM_MESSAGES messages; the call is cancelled when more follow or it stays
    silent for STREAM_IDLE seconds."""
    got: list[Message] = []

    def read() -> None:
        try:
            for message in call:
                got.append(message)
                if len(got) >= STREAM_MESSAGES:
                    call.cancel()
                    return
        except grpc.RpcError:
            pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(STREAM_IDLE)
    if reader.is_alive():
        call.cancel()
        reader.join(10)
    return got


def invoke(channel: grpc.Channel, rpc: Rpc, payload: bytes,
           metadata: list[tuple[str, Any]]) -> Outcome:
    """Call ``rpc`` with ``payload`` as its serialized request."""
    method = rpc.method
    kinds = {(False, False): channel.unary_unary, (False, True): channel.unary_stream,
             (True, False): channel.stream_unary, (True, True): channel.stream_stream}
    multi = kinds[method.client_streaming, method.server_streaming](
        rpc.path, request_serializer=bytes, response_deserializer=rpc.response_class.FromString)
    request: Any = iter([payload]) if method.client_streaming else payload
    try:
        if method.server_streaming:
            call = multi(request, metadata=metadata, timeout=UNARY_TIMEOUT)
            responses = _read_stream(call)
            return Outcome(call.code(), call.details() or "", responses)
        response, call = multi.with_call(request, metadata=metadata, timeout=UNARY_TIMEOUT)
        return Outcome(call.code(), call.details() or "", [response])
    except grpc.RpcError as exc:
        return Outcome(exc.code(), exc.details() or "", [])
    except (TypeError, ValueError) as exc:  # the client library refused the metadata
        return Outcome(None, "", [], refused=f"{type(exc).__name__}: {exc}")


_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")


def client_can_send(metadata: Iterable[tuple[str, Any]]) -> bool:
    """Whether grpc lets a client send ``metadata``: keys of ``[a-z0-9-_.]``, ``-bin``
    values bytes, other values printable ASCII (``0x20``-``0x7e``)."""
    for key, value in metadata:
        if not key or not set(key) <= _KEY_CHARS:
            return False
        if key.endswith("-bin"):
            if not isinstance(value, bytes):
                return False
            continue
        raw = value if isinstance(value, bytes) else value.encode("utf-8")
        if any(b < 0x20 or b > 0x7E for b in raw):
            return False
    return True


# ----------------------------------------------------------------------------- the log

class LogRecords(logging.Handler):
    """Every record of every logger, formatted with its exception and stack (thread-safe)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        self.texts: list[str] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        with self._lock:
            self.texts.append(text)

    def since(self, start: int) -> list[str]:
        with self._lock:
            return self.texts[start:]

    def __len__(self) -> int:
        with self._lock:
            return len(self.texts)


# ----------------------------------------------------------------------------- the world

class World:
    """The running server and what the fuzz knows of its data (a plain class: hypothesis
    prints a dataclass argument field by field)."""

    def __init__(self, channel: grpc.Channel, keeper_pid: str, hints: list[str],
                 vocabulary: frozenset[str], server_ids: frozenset[str],
                 allowed_roles: dict[str, list[str]], log: LogRecords) -> None:
        self.channel = channel
        self.keeper_pid = keeper_pid
        self.hints = hints
        """Values the world holds, offered to the fuzz (never KEEPER's)."""
        self.vocabulary = vocabulary
        """Names the API publishes (purposes, identifier types, review statuses): an error
        may name them."""
        self.server_ids = server_ids
        """IDs the server made (profiles, reviews, forget requests) and hands out; it may
        name them (it logs a review or forget request it changed)."""
        self.allowed_roles = allowed_roles
        """rpc path -> roles whose token it accepts (probed at start)."""
        self.log = log
        self.needles: set[str] = set()
        """Every checked request value of the run, cut to SWEPT_LENGTH (for the final
        log sweep)."""
        self.statuses: Counter[str] = Counter()
        self.strings = _strings(tuple(hints))
        self.own_text = server_text()

    def found_in(self, text: str, values: Iterable[str]) -> list[str]:
        """Those of ``values`` (needles) that ``text`` (lower-cased) holds, but for what
        the server may say without being told: text of its own code (hypothesis draws
        string constants of the code under test too), the vocabulary and its IDs."""
        found = [v for v in values if v in text and v not in self.vocabulary
                 and v not in self.server_ids]
        return sorted(v for v in found if v not in self.own_text)

    def __repr__(self) -> str:
        return "World(...)"


_FREE = texts()
_TYPES = sorted(SIMPLE_TYPES) + ["crm:salesforce", "crm:hubspot", "user:segment", "ext:x",
                                 "crm", "fax", "EMAIL", " email "]


def _strings(hints: tuple[str, ...]) -> st.SearchStrategy[str]:
    """Free texts and ``hints`` (:func:`texts`), the hints again (a call reaches the
    checks behind a valid identifier, name or ID only with one), identifiers of every
    type (and of free ones) with free values, and segment definitions with a free text
    (up to 100 characters) as their literal."""
    hint = st.sampled_from(hints)
    return st.one_of(
        texts(hints), hint, hint,
        st.builds(lambda t, v: f"{t}:{v}", st.sampled_from(_TYPES) | _FREE, _FREE | st.emails()),
        st.builds(lambda t, v: t.format(json.dumps(v[:100])),
                  st.sampled_from(DEFINITION_TEMPLATES), _FREE))


SWEPT_LENGTH = 256


def server_text() -> str:
    """The string constants (docstrings aside) and class names of every loaded ``idgraph``
    module, joined and lower-cased: what the server may say (or log) by itself, and what
    hypothesis may draw (it draws string constants of the code under test)."""
    texts = []
    for name, module in list(sys.modules.items()):
        source = getattr(module, "__file__", None)
        if not name.startswith("idgraph.") or not source or not source.endswith(".py"):
            continue
        tree = ast.parse(Path(source).read_text(encoding="utf-8"))
        docstrings = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and id(node) not in docstrings:
                texts.append(node.value)
            elif isinstance(node, ast.ClassDef):
                texts.append(node.name)
    return "\0".join(texts).lower()


def _probe_roles(channel: grpc.Channel) -> dict[str, list[str]]:
    """The roles each rpc accepts, found by calling it with an empty request."""
    allowed = {}
    for rpc in RPCS:
        roles = [role for role in ROLES
                 if invoke(channel, rpc, b"", _bearer(role)).code not in
                 (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED)]
        allowed[rpc.path] = roles or list(ROLES)
    return allowed


def _bearer(role: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {TOKENS[role]}")]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings_ = Settings(data_dir=tmp_path_factory.mktemp("fuzz") / "data")
    engine = Engine(settings_)
    closers: list[Callable[[], object]] = [engine.close]
    log = LogRecords()
    idgraph_logger = logging.getLogger("idgraph")
    level = idgraph_logger.level
    try:
        engine.ingest(PEOPLE)
        engine.matching.propose_reviews(
            [(a, b, 2.0, 0.9, "v0001", (("given_name", "All other comparisons", -3.0),))
             for a, b in REVIEW_PAIRS])
        pids = {i: engine.queries.lookup(i).profile.profile_id
                for i in (URSULA, LENA, VICTOR, KEEPER)}
        forget_id = request_forget(engine.ledger, engine.backends.keys, engine.queries,
                                   identifier="crm:hubspot:7001", actor="privacy:fuzz",
                                   ).request_id

        grpc_settings = GrpcSettings(api_tokens=[TOKENS["api"]],
                                     steward_tokens=[TOKENS["steward"]],
                                     privacy_tokens=[TOKENS["privacy"]])
        served = open_served(settings_.model_copy(update={"grpc": grpc_settings}))
        closers.append(served.close)
        server, port = create_server(served.queries, grpc_settings, "127.0.0.1:0",
                                     **served.server_kwargs())
        server.start()
        closers.append(lambda: server.stop(0).wait())
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        closers.append(channel.close)
        define = channel.unary_unary("/idgraph.v1.SegmentService/DefineSegment",
                                     request_serializer=segments_pb2.DefineSegmentRequest
                                     .SerializeToString,
                                     response_deserializer=segments_pb2.DefineSegmentResponse
                                     .FromString)
        for name, definition in SEGMENTS.items():
            define(segments_pb2.DefineSegmentRequest(name=name, definition=definition),
                   metadata=_bearer("steward"), timeout=20)
        while engine.segment_step():
            pass

        purposes = sorted(served.consent.ledger.purposes().purposes)
        hints = [URSULA, LENA, VICTOR, "crm:hubspot:7001", "crm:salesforce:003EU",
                 "phone:+4915112345678", "device:tablet-7", "user:segment:u-9",
                 pids[URSULA], pids[LENA], pids[VICTOR], forget_id,
                 *(review_id_for(a, b) for a, b in REVIEW_PAIRS), *SEGMENTS,
                 *SEGMENTS.values(), *purposes, "open", "all", "accepted", "consent",
                 "legitimate_interest", "GDPR"]
        assert pids[KEEPER] not in hints
        vocabulary = frozenset({*purposes, *SIMPLE_TYPES, *NAMESPACED_TYPES, "salesforce",
                                "hubspot", "segment", "crm:salesforce", "crm:hubspot",
                                "user:segment", "legitimate_interest", "open", "accepted",
                                "rejected", "applied"})
        server_ids = frozenset({forget_id, *(review_id_for(a, b) for a, b in REVIEW_PAIRS),
                                *(pids[i].lower() for i in (URSULA, LENA, VICTOR))})
        w = World(channel, pids[KEEPER], hints, vocabulary, server_ids, _probe_roles(channel),
                  log)
        logging.getLogger().addHandler(log)
        idgraph_logger.setLevel(logging.DEBUG)
        yield w
    finally:
        logging.getLogger().removeHandler(log)
        idgraph_logger.setLevel(level)
        for close in reversed(closers):
            close()


# ----------------------------------------------------------------------------- checks

ECHO_PREFIX = 32
"""A longer value must not come back cut either: its first this many characters are a
needle too."""
RUNS_OF = 4096
"""Printable runs are taken from this many first characters of a value (the whole value
and its prefix are needles however long it is)."""


def needles(values: Iterable[Any], vocabulary: frozenset[str]) -> set[str]:
    """The values an answer must not echo, lower-cased (the server lower-cases
    identifiers): every text (bytes as Latin-1) and each run of printable characters in
    its first RUNS_OF characters (what a ``repr`` shows unescaped), each ``:``-separated
    part of those and what follows their first space (a bearer token), and the first
    ECHO_PREFIX characters of each, when longer than ECHO_LIMIT once stripped; names in
    ``vocabulary`` excepted."""
    out = set()
    for value in set(values):
        text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        runs = {text} | {"".join(run) for printable, run in
                         groupby(text[:RUNS_OF], str.isprintable) if printable}
        for run in runs:
            for part in (run, *run.split(":"), *run.split(" ", 1)[1:]):
                needle = part.strip().lower()
                for cut in (needle, needle[:ECHO_PREFIX].strip()):
                    if len(cut) > ECHO_LIMIT and cut not in vocabulary:
                        out.add(cut)
    return out


def _show(value: str, limit: int = 300) -> str:
    return repr(value) if len(value) <= limit else f"{value[:limit]!r}... ({len(value)} chars)"


def _error_texts(message: Message) -> Iterator[str]:
    """The ``error`` string fields of an answer (BatchLookupResult.error...)."""
    for fd, value in message.ListFields():
        if fd.message_type is not None and not fd.message_type.GetOptions().map_entry:
            for sub in (value if fd.is_repeated else [value]):
                yield from _error_texts(sub)
        elif fd.name == "error" and isinstance(value, str):
            yield value


def check(world: World, rpc: Rpc, outcome: Outcome, request: str, metadata: list,
          values: set[str], log_start: int, *, client_may_refuse: bool = False) -> None:
    """The contract of every call (module docstring); ``values`` are its needles."""
    where = f"{rpc.path} with metadata {_show(str(metadata), 400)}, request {request}"
    world.needles |= {v[:SWEPT_LENGTH] for v in values}
    world.statuses[outcome.code.name if outcome.code else "refused by client"] += 1
    if outcome.code is None:
        assert client_may_refuse, f"the client refused {where}: {outcome.refused}"
        return
    if client_may_refuse and outcome.code == grpc.StatusCode.INTERNAL \
            and outcome.details == "Invalid metadata":
        return  # grpc's client would not send it (client_can_send says so)
    assert outcome.code not in FORBIDDEN_CODES, \
        f"{outcome.code.name} {_show(outcome.details)} for {where}"
    if not rpc.method.server_streaming:
        assert outcome.code != grpc.StatusCode.DEADLINE_EXCEEDED, f"the server hung on {where}"
    answers = [outcome.details] + [t for r in outcome.responses for t in _error_texts(r)]
    text = "\n".join(answers).lower()
    for token in TOKENS.values():
        assert token.lower() not in text, f"a token in the answer {_show(text)} to {where}"
    leaked = [_show(n, 80) for n in world.found_in(text, values)]
    assert not leaked, f"the answer {_show(text)} echoes {', '.join(leaked)} of {where}"
    logged = "\n".join(world.log.since(log_start)).lower()
    for token in TOKENS.values():
        assert token.lower() not in logged, f"the log holds a token after {where}"
    held = [_show(n, 80) for n in world.found_in(logged, values)]
    assert not held, f"the log holds {', '.join(held)} after {where}:\n{_show(logged, 2000)}"


def _text(message: Message) -> str:
    """The request in text format, lists and strings clipped (:func:`clipped`)."""
    return _show(text_format.MessageToString(clipped(message), as_one_line=True), 600)


FUZZ = settings(derandomize=True, database=None, deadline=None, print_blob=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.large_base_example])


# ----------------------------------------------------------------------------- the fuzz

@pytest.mark.parametrize("rpc", RPCS, ids=repr)
@settings(FUZZ, max_examples=80)
@given(data=st.data())
def test_generated_requests(world: World, rpc: Rpc, data: st.DataObject) -> None:
    request = data.draw(messages(rpc.method.input_type, strings=world.strings), label="request")
    role = data.draw(st.sampled_from(ROLES), label="role")
    metadata = _bearer(role)
    start = len(world.log)
    outcome = invoke(world.channel, rpc, request.SerializeToString(), metadata)
    check(world, rpc, outcome, _text(request), metadata,
          needles(string_values(request, AUTHORS_OWN_TEXT), world.vocabulary), start)


@pytest.mark.parametrize("rpc", RPCS, ids=repr)
@settings(FUZZ, max_examples=20)
@given(data=st.data())
def test_undecodable_payloads(world: World, rpc: Rpc, data: st.DataObject) -> None:
    payload = data.draw(raw_bytes(rpc.method.input_type), label="payload")
    role = data.draw(st.sampled_from(world.allowed_roles[rpc.path]), label="role")
    metadata = _bearer(role)
    start = len(world.log)
    outcome = invoke(world.channel, rpc, payload, metadata)
    try:  # some still parse (a mismatched field is kept as unknown): their strings count
        values = needles(string_values(rpc.request_class.FromString(payload), AUTHORS_OWN_TEXT),
                         world.vocabulary)
    except DecodeError:
        values = set()
    check(world, rpc, outcome, _show(str(payload), 400), metadata, values, start)


# ----------------------------------------------------------------------------- metadata

_ASCII = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
_ascii_values = st.one_of(
    st.text(_ASCII, max_size=30),
    st.builds(lambda c, n: c * n, st.sampled_from("aZ9 -"),
              st.sampled_from([8000, 9000, 16_000, 17_000])),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=12))  # non-ASCII: refused


@st.composite
def tokens(draw: st.DrawFn) -> str:
    """A real token, one spoiled, another role's, garbage or a huge one."""
    real = draw(st.sampled_from(list(TOKENS.values())))
    spoil = draw(st.sampled_from(["as is", "upper", "prefix", "suffix", "cut", "garbage",
                                  "huge", "non-ascii"]))
    if spoil == "upper":
        return real.upper()
    if spoil == "prefix":
        return draw(st.text(_ASCII, min_size=1, max_size=4)) + real
    if spoil == "suffix":
        return real + draw(st.text(_ASCII, min_size=1, max_size=4))
    if spoil == "cut":
        return real[:draw(st.integers(0, len(real) - 1))]
    if spoil in ("garbage", "huge", "non-ascii"):
        return draw(_ascii_values)
    return real


_bearer_words = st.one_of(st.sampled_from(["Bearer", "bearer", "BEARER", "bEaReR", "Bearer:",
                                           "Basic", "Token", "", "Bearer\t"]),
                          st.text(st.sampled_from("bBeEaArR"), min_size=6, max_size=6))
_authorizations = st.builds(lambda word, sep, token, tail: f"{word}{sep}{token}{tail}",
                            _bearer_words, st.sampled_from([" ", "  ", "", "\t", " \t"]),
                            tokens(), st.sampled_from(["", " ", "  ", "\t"]))
_keys = st.one_of(st.sampled_from(RESERVED_KEYS),
                  st.text(st.sampled_from(sorted(_KEY_CHARS)), min_size=1, max_size=24),
                  st.text(st.characters(codec="ascii"), min_size=1, max_size=8))  # refused


@st.composite
def metadata_lists(draw: st.DrawFn) -> list[tuple[str, Any]]:
    """0-3 ``authorization`` entries (duplicates, ``-bin``, upper-case key) and 0-4 others
    (``-bin`` ones with bytes; a few with values grpc refuses), shuffled."""
    entries: list[tuple[str, Any]] = []
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(["authorization"] * 4 + ["authorization-bin",
                                                            "Authorization"]))
        value = draw(_authorizations)
        entries.append((key, value.encode() if key.endswith("-bin") else value))
    for _ in range(draw(st.integers(0, 4))):
        key = draw(_keys)
        if key.endswith("-bin"):
            value: Any = draw(st.one_of(st.binary(max_size=64),
                                        st.builds(lambda n: b"\xff" * n,
                                                  st.sampled_from([9000, 17_000]))))
        else:
            value = draw(_ascii_values)
        entries.append((key, value))
    return draw(st.permutations(entries))


@settings(FUZZ, max_examples=400)
@given(data=st.data())
def test_generated_metadata(world: World, data: st.DataObject) -> None:
    rpc = data.draw(st.sampled_from(RPCS), label="rpc")
    request = data.draw(messages(rpc.method.input_type, strings=world.strings, max_depth=1),
                        label="request")
    metadata = data.draw(metadata_lists(), label="metadata")
    # grpc's own "metadata size exceeds" message lists the keys: a value equal to a key
    # is no echo of the value
    names = world.vocabulary | {key.lower() for key, _ in metadata}
    values = needles(string_values(request, AUTHORS_OWN_TEXT), world.vocabulary) \
        | needles((v for _, v in metadata), names)
    start = len(world.log)
    outcome = invoke(world.channel, rpc, request.SerializeToString(), metadata)
    check(world, rpc, outcome, _text(request), metadata, values, start,
          client_may_refuse=not client_can_send(metadata))


# ----------------------------------------------------------------------------- afterwards

def test_the_server_still_serves_and_logged_no_request_value(world: World) -> None:
    """Runs last: after every fuzz above, health is SERVING, a Lookup of the one person the
    fuzz never named finds them, and no log record holds a token or a fuzzed value."""
    health = health_pb2_grpc.HealthStub(world.channel)
    for service in ["", *sorted({rpc.method.containing_service.full_name for rpc in RPCS})]:
        answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING, service
    lookup = world.channel.unary_unary(
        "/idgraph.v1.ProfileService/Lookup",
        request_serializer=profiles_pb2.LookupRequest.SerializeToString,
        response_deserializer=profiles_pb2.LookupResponse.FromString)
    found = lookup(profiles_pb2.LookupRequest(identifier=KEEPER.upper()),
                   metadata=_bearer("api"), timeout=10)
    assert found.profile.profile_id == world.keeper_pid
    assert found.matched_identifier == KEEPER
    assert {i.identifier for i in found.profile.identifiers} >= {KEEPER, "crm:hubspot:7777"}
    assert found.profile.attributes["given_name"].value == "Keeper"

    logged = "\n".join(world.log.since(0)).lower()
    held = world.found_in(logged, world.needles | {t.lower() for t in TOKENS.values()})
    assert not held, f"the server's log holds request values or tokens: {held[:20]}"
    print(f"\nfuzz outcomes: {dict(world.statuses.most_common())}; "
          f"{len(world.log.since(0))} log records")
