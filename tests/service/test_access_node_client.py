"""Access control of ``idgraph serve`` as an independent client sees it: Node's
``@grpc/grpc-js`` (:mod:`grpc_node`) calls every rpc of the four services with every kind
of credential, and the audit log the server wrote is checked, then tampered with.

The world: a writer (:class:`Engine`) stores US people (Ursula, with an e-mail and a phone;
Fay and Gus, subjects of forgets; a record of Ulla queued for review against Ursula's)
and an EU person (Lena, German phone and ``country=DE``). Keys are made as an admin makes
them, with ``idgraph keys``: one per role, an activation key limited to ``eu``, a key
revoked before the server starts, one to rotate and one to revoke while it runs, and two
that the admin key rotates and revokes over the API; an expired key is made through
:class:`KeyAdmin` with a clock in the past (the CLI cannot date a key back). Then
``idgraph serve --port 0`` runs as a subprocess over the data dir, and one Node job makes
every (credential, rpc) call (:data:`CREDENTIALS` x :func:`service_methods`).

Each rpc of the services' descriptors is called, so a new rpc is covered with an empty
request until it gets one in :func:`requests` (an empty request is still checked for
access: authentication and the permission table run before the handler).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_node import NodeCall, NodeResult, call_node
from helpers import record

from idgraph.auth.key_admin import KeyAdmin
from idgraph.auth.keys import DAY, new_key_text
from idgraph.auth.roles import ACTIVATION, MARKETER, ROLES, decide, permissions_of
from idgraph.coordination import review_id_for
from idgraph.engine import Engine
from idgraph.engine.forget import request_forget
from idgraph.proto.idgraph.v1 import admin_pb2, privacy_pb2, profiles_pb2, segments_pb2
from idgraph.proto.idgraph.v1 import profiles_pb2_grpc as pb_grpc
from idgraph.serving import open_key_store
from idgraph.settings import Settings

pytestmark = pytest.mark.slow

SERVICES = ("idgraph.v1.ProfileService", "idgraph.v1.SegmentService",
            "idgraph.v1.PrivacyService", "idgraph.v1.AdminService")
PROTO_MODULES = (profiles_pb2, segments_pb2, privacy_pb2, admin_pb2)

URSULA, URSULA_PHONE = "email:ursula@example.com", "phone:+12125550123"
LENA, LENA_PHONE = "email:lena@example.de", "phone:+4915112345678"
FAY, GUS = "email:fay@example.com", "email:gus@example.com"
PEOPLE = [
    record("hubspot", "1001", "us-1", 100, ["crm:hubspot:1001", URSULA, URSULA_PHONE],
           given_name="Ursula", country="US"),
    record("hubspot", "1002", "us-2", 110, ["crm:hubspot:1002", "email:ulla@example.com"],
           given_name="Ulla", country="US"),
    record("hubspot", "1003", "us-3", 120, ["crm:hubspot:1003", FAY], country="US"),
    record("hubspot", "1004", "us-4", 130, ["crm:hubspot:1004", GUS], country="US"),
    record("salesforce", "003EU", "eu-1", 140, ["crm:salesforce:003EU", LENA, LENA_PHONE],
           given_name="Lena", country="DE"),
]
PERSONAL = ("ursula@example.com", "+12125550123", "2125550123", "Ursula", "hubspot:1001")
"""Ursula's personal data as an answer would spell it (a marketer sees none of it)."""
CONTRIBUTIONS = (("given_name", "All other comparisons", -3.0),)

OK, DEADLINE_EXCEEDED, PERMISSION_DENIED, UNAUTHENTICATED = (
    grpc.StatusCode.OK.value[0], grpc.StatusCode.DEADLINE_EXCEEDED.value[0],
    grpc.StatusCode.PERMISSION_DENIED.value[0], grpc.StatusCode.UNAUTHENTICATED.value[0])
NOT_FOUND = grpc.StatusCode.NOT_FOUND.value[0]
BUSINESS = frozenset(grpc.StatusCode[name].value[0] for name in (
    "OK", "INVALID_ARGUMENT", "NOT_FOUND", "ALREADY_EXISTS", "FAILED_PRECONDITION",
    "OUT_OF_RANGE"))
"""Statuses of a call the server let through and answered (a crash is INTERNAL or
UNKNOWN; a rate limit RESOURCE_EXHAUSTED: neither is an answer)."""
STREAM_DEADLINE_MS = 1500
"""Deadline of a server-streaming call: WatchSegment runs until cancelled, so an
admitted watch ends with DEADLINE_EXCEEDED (a refused one at once)."""

#: credential name -> the role whose permissions it holds (None: it authenticates not)
CREDENTIALS: dict[str, str | None] = {
    **{role: role for role in ROLES},
    "activation, eu only": ACTIVATION,
    "no key": None,
    "revoked key": None,
    "expired key": None,
    "unknown key": None,
}
REFUSAL_REASON = {"no key": "missing bearer token", "revoked key": "is revoked",
                  "expired key": "is expired", "unknown key": "invalid API key"}
ROTATION_OVERLAP_HOURS = 0.002  # 7.2 s
CACHE_SECONDS = 0.5  # auth.cache_seconds (the default)


@dataclass(frozen=True)
class Method:
    service: str
    rpc: str
    server_streaming: bool

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.rpc}"


def service_methods() -> list[Method]:
    """Every rpc of every service in the project's proto modules, from their
    descriptors."""
    return [Method(service.full_name, method.name, method.server_streaming)
            for module in PROTO_MODULES
            for service in module.DESCRIPTOR.services_by_name.values()
            for method in service.methods]


@dataclass
class World:
    data_dir: Path
    engine: Engine
    keys: dict[str, str]
    """Credential or purpose name -> key text."""
    key_ids: dict[str, str]
    pids: dict[str, str]
    review_id: str
    forget_request: str
    server: subprocess.Popen | None = None
    port: int = 0
    server_log: list[str] = field(default_factory=list)
    rotated_at: float = 0.0
    """time.time() when `keys rotate` returned."""
    results: dict[tuple[str, str], NodeResult] = field(default_factory=dict)
    """(credential, rpc path) -> how the matrix call ended."""
    probes: dict[str, NodeResult] = field(default_factory=dict)
    probe_started: float = 0.0

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop_server(self) -> int | None:
        """SIGTERM, as a service manager stops it: the server flushes its audit batch
        and writes a final checkpoint. Its exit status (None: it was stopped already)."""
        server, self.server = self.server, None
        if server is None:
            return None
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)
                raise
        return server.returncode


def clean_env() -> dict[str, str]:
    """The environment without IDGRAPH_* settings (no static tokens, no other data dir):
    the data dir is given on each command line."""
    return {k: v for k, v in os.environ.items() if not k.startswith("IDGRAPH_")}


def idgraph(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "idgraph.cli", *args], capture_output=True,
                          text=True, timeout=120, check=False, env=clean_env())
    if check and proc.returncode != 0:
        raise AssertionError(f"idgraph {' '.join(args)} exited {proc.returncode}:\n"
                             f"{proc.stdout}{proc.stderr}")
    return proc


def create_key(data_dir: Path, owner: str, *flags: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "idgraph.cli", "keys", "create",
                             "--data-dir", str(data_dir), "--owner", owner, *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=clean_env())


def create_keys(data_dir: Path, wanted: dict[str, list[str]]) -> dict[str, str]:
    """``idgraph keys create`` for each name (two at a time): name -> key text."""
    keys: dict[str, str] = {}
    names = list(wanted)
    for start in range(0, len(names), 2):
        running = {n: create_key(data_dir, n.replace(" ", "-"), *wanted[n])
                   for n in names[start:start + 2]}
        for name, proc in running.items():
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, f"keys create {name}: {out}{err}"
            keys[name] = out.strip()
    return keys


def key_id(text: str) -> str:
    return text.split("_")[1]


def start_server(data_dir: Path, log: list[str]) -> tuple[subprocess.Popen, int]:
    """``idgraph serve --port 0`` over ``data_dir``, and its port; its output is
    appended to ``log`` (a thread keeps the pipe drained)."""
    proc = subprocess.Popen([sys.executable, "-m", "idgraph.cli", "serve", "--port", "0",
                             "--data-dir", str(data_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=clean_env())
    line = proc.stdout.readline()
    if "serving ProfileService on port" not in line:
        proc.kill()
        raise AssertionError(f"server did not start: {line}{proc.stdout.read()}")
    log.append(line)
    threading.Thread(target=lambda: log.extend(proc.stdout), daemon=True).start()
    return proc, int(line.split("on port")[1].split()[0])


def requests(w: World) -> dict[str, dict[str, Any]]:
    """A valid request per rpc path, about Ursula where it needs a subject. Each call
    with side effects is one only one role may make, so the order of credentials does
    not change what the others see."""
    p, s, v, a = (f"/{name}/" for name in SERVICES)
    return {
        p + "Lookup": {"identifier": URSULA},
        p + "GetProfile": {"profile_id": w.pids["ursula"]},
        p + "BatchLookup": {"identifiers": [URSULA, URSULA_PHONE]},
        p + "Explain": {"profile_id": w.pids["ursula"]},
        p + "ListReviews": {"status": "all"},
        p + "DecideReview": {"review_id": w.review_id, "decision": "REJECT",
                             "note": "different people"},
        p + "GetProfileHistory": {"profile_id": w.pids["ursula"]},
        s + "DefineSegment": {"name": "Scratch", "definition": "has_identifier(email)"},
        s + "GetSegment": {"name": "Everyone"},
        s + "ListSegments": {},
        s + "DeleteSegment": {"name": "Scratch"},
        s + "EvaluateSegments": {"identifier": URSULA, "names": ["Everyone"]},
        s + "CountSegment": {"name": "Everyone"},
        s + "ListSegmentMembers": {"name": "Everyone"},
        s + "WatchSegment": {"names": ["Everyone"]},
        s + "CheckSegment": {"definition": "has_identifier(email)"},
        s + "PreviewSegment": {"definition": "has_identifier(email)"},
        s + "GetSegmentActivity": {"name": "Everyone"},
        v + "RecordConsent": {"identifier": URSULA, "purpose": "email", "status": "GRANTED"},
        v + "GetConsent": {"identifier": URSULA},
        v + "ListPurposes": {},
        v + "Forget": {"identifier": FAY, "reason": "asked by the person"},
        v + "GetForgetStatus": {"request_id": w.forget_request},
        v + "Unsuppress": {"request_id": w.forget_request, "reason": "forgotten by mistake"},
        v + "ExportSubject": {"identifier": URSULA},
        v + "ListForgetRequests": {},
        a + "CreateKey": {"owner": "node client", "roles": ["operator"],
                          "expires_in_days": 1},
        a + "ListKeys": {},
        a + "RotateKey": {"key_id": w.key_ids["to rotate by api"], "overlap_seconds": 0},
        a + "RevokeKey": {"key_id": w.key_ids["to revoke by api"], "reason": "test"},
        a + "ReadAudit": {"limit": 10},
        a + "VerifyAudit": {},
        a + "GetServerStatus": {},
        a + "WhoAmI": {},
    }


def matrix_calls(w: World) -> list[tuple[str, Method, NodeCall]]:
    known = requests(w)
    calls = []
    for credential in CREDENTIALS:
        for m in service_methods():
            calls.append((credential, m, NodeCall(
                m.service, m.rpc, known.get(m.path, {}), w.keys.get(credential),
                STREAM_DEADLINE_MS if m.server_streaming else 10_000)))
    return calls


def lookup(key: str | None, identifier: str) -> NodeCall:
    return NodeCall(SERVICES[0], "Lookup", {"identifier": identifier}, key)


def probe_calls(w: World) -> dict[str, NodeCall]:
    """Calls checked one by one (besides the matrix)."""
    k = w.keys
    return {
        "rotated old key": lookup(k["rotated"], URSULA),
        "rotated new key": lookup(k["rotated successor"], URSULA),
        "eu key, us person": lookup(k["activation, eu only"], URSULA),
        "eu key, eu person": lookup(k["activation, eu only"], LENA),
        "eu key, eu phone": lookup(k["activation, eu only"], LENA_PHONE),
        "activation key, eu person": lookup(k[ACTIVATION], LENA),
        "marketer": lookup(k[MARKETER], URSULA),
        "activation": lookup(k[ACTIVATION], URSULA),
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data_dir = tmp_path_factory.mktemp("access") / "data"
    settings = Settings(data_dir=data_dir)
    engine = Engine(settings)
    w: World | None = None
    try:
        engine.ingest(PEOPLE)
        pids = {name: engine.queries.lookup(ident).profile.profile_id
                for name, ident in (("ursula", URSULA), ("lena", LENA))}
        assert engine.queries.lookup(URSULA).profile.region == "us"
        assert engine.queries.lookup(LENA).profile.region == "eu"
        assert engine.matching.propose_reviews(
            [("hubspot:1001", "hubspot:1002", 2.0, 0.95, "v0001", CONTRIBUTIONS)]) == 1
        forget = request_forget(engine.ledger, engine.backends.keys, engine.queries,
                                identifier=GUS, actor="privacy:test")
        keys = create_keys(data_dir, {
            **{role: ["--role", role] for role in ROLES},
            "activation, eu only": ["--role", ACTIVATION, "--region", "eu"],
            "revoked key": ["--role", ACTIVATION],
            "rotated": ["--role", ACTIVATION],
            "revoked while serving": ["--role", ACTIVATION],
            "to rotate by api": ["--role", "operator"],
            "to revoke by api": ["--role", "operator"],
        })
        idgraph("keys", "revoke", key_id(keys["revoked key"]), "--data-dir", str(data_dir))
        store, secret = open_key_store(settings)
        try:
            made_at = time.time() - 2 * DAY
            keys["expired key"] = KeyAdmin(store, secret, settings.regions.regions,
                                           clock=lambda: made_at).create(
                "expired", [ACTIVATION], expires_in_days=1).text
        finally:
            store.close()
        keys["unknown key"] = new_key_text()[0]
        w = World(data_dir, engine, keys, {n: key_id(t) for n, t in keys.items()}, pids,
                  review_id_for("hubspot:1001", "hubspot:1002"), forget.request_id)
        w.server, w.port = start_server(data_dir, w.server_log)
        # segments the reads name: defined over the API, built by the writer
        (defined,) = call_node(w.target, [NodeCall(
            SERVICES[1], "DefineSegment",
            {"name": "Everyone", "definition": "has_identifier(email)"}, keys[MARKETER])])
        assert defined.code == OK, defined.details
        while engine.segment_step():
            pass
        # rotate now: the old key's overlap runs while the Node job calls
        rotated = idgraph("keys", "rotate", w.key_ids["rotated"], "--overlap-hours",
                          str(ROTATION_OVERLAP_HOURS), "--data-dir", str(data_dir))
        w.rotated_at = time.time()
        keys["rotated successor"] = rotated.stdout.strip()
        probes = probe_calls(w)
        matrix = matrix_calls(w)
        w.probe_started = time.time()
        answers = call_node(w.target, [*probes.values(), *(c for _, _, c in matrix)])
        w.probes = dict(zip(probes, answers[:len(probes)], strict=True))
        w.results = {(credential, m.path): r for (credential, m, _), r in
                     zip(matrix, answers[len(probes):], strict=True)}
        yield w
    finally:
        if w is not None:
            w.stop_server()
        engine.close()


def test_the_four_services_are_enumerated_from_the_descriptors() -> None:
    methods = service_methods()
    assert sorted({m.service for m in methods}) == sorted(SERVICES)
    assert len(methods) == len({m.path for m in methods}) >= 28


@pytest.mark.parametrize("credential", list(CREDENTIALS))
def test_every_rpc_with_each_credential(world: World, credential: str) -> None:
    """No, revoked, expired or unknown key: UNAUTHENTICATED, saying why. A role's key:
    PERMISSION_DENIED exactly where the permission table refuses the role; elsewhere an
    answer of the rpc itself."""
    role = CREDENTIALS[credential]
    wrong = []
    for m in service_methods():
        got = world.results[(credential, m.path)]
        if role is None:
            if got.code != UNAUTHENTICATED or REFUSAL_REASON[credential] not in got.details:
                wrong.append(f"{m.path}: expected UNAUTHENTICATED ({REFUSAL_REASON[credential]!r})"
                             f", got {got.code} {got.details!r}")
            continue
        allowed, _masked = decide(m.path, permissions_of([role]))
        if not allowed and got.code != PERMISSION_DENIED:
            wrong.append(f"{m.path}: expected PERMISSION_DENIED, got {got.code} {got.details!r}")
        answered = BUSINESS | ({DEADLINE_EXCEEDED} if m.server_streaming else set())
        if allowed and got.code not in answered:
            wrong.append(f"{m.path}: allowed, expected an answer, got {got.code} "
                         f"{got.details!r}")
    assert wrong == [], f"{credential}:\n" + "\n".join(wrong)


def test_allowed_calls_with_valid_requests_succeed(world: World) -> None:
    """The requests are valid: where the key's role may call the rpc and the subject is
    in its regions, the rpc answers OK (so the matrix above saw real answers, not a
    business error that a refusal could hide behind)."""
    wrong = []
    for credential, role in CREDENTIALS.items():
        if role is None or credential == "activation, eu only":
            continue
        for m in service_methods():
            got = world.results[(credential, m.path)]
            if decide(m.path, permissions_of([role]))[0] and got.code not in (
                    OK, DEADLINE_EXCEEDED if m.server_streaming else OK):
                wrong.append(f"{credential} {m.path}: {got.code} {got.details!r}")
    assert wrong == []


def answer_text(m: Method, result: NodeResult) -> str:
    """A result's response as JSON text without what echoes the request as sent (the
    caller's own text, not data): BatchLookup's ``identifier`` per result and the
    ``subject`` of RecordConsent's entry."""
    messages = result.messages
    if m.rpc == "BatchLookup" and result.code == OK:
        messages = [{**r, "identifier": ""} for r in messages["results"]]
    if m.rpc == "RecordConsent" and result.code == OK:
        messages = {**messages, "entry": {**messages["entry"], "subject": ""}}
    return json.dumps(messages)


def test_a_region_limited_key_reads_only_its_region(world: World) -> None:
    # no rpc answers the eu key with anything of Ursula, a US person
    ursula = (*PERSONAL, world.pids["ursula"])
    for m in service_methods():
        answer = answer_text(m, world.results[("activation, eu only", m.path)])
        assert [t for t in ursula if t in answer] == [], f"{m.path}: {answer[:2000]}"
    p = world.probes
    assert p["eu key, us person"].code == NOT_FOUND, p["eu key, us person"]
    for name in ("eu key, eu person", "eu key, eu phone", "activation key, eu person"):
        assert p[name].code == OK, (name, p[name])
        assert p[name].messages["profile"]["profile_id"] == world.pids["lena"]
    # the key's own region limit, not the server's: the same server serves Ursula
    assert p["activation"].code == OK


def test_a_marketer_reads_profiles_masked(world: World) -> None:
    masked, whole = world.probes["marketer"], world.probes["activation"]
    assert masked.code == OK and whole.code == OK
    for text in PERSONAL:
        assert text not in masked.text(), f"{text} in the marketer's answer"
        assert text in whole.text(), f"{text} missing from the activation key's answer"
    identifiers = {i["identifier"] for i in masked.messages["profile"]["identifiers"]}
    assert "email:u***@example.com" in identifiers
    assert masked.messages["profile"]["attributes"]["given_name"]["value"] == "***"
    assert masked.messages["profile"]["profile_id"] == world.pids["ursula"]
    assert {i["identifier"] for i in whole.messages["profile"]["identifiers"]} >= {
        URSULA, URSULA_PHONE}
    # and no other rpc a marketer may call answers with them
    for m in service_methods():
        answer = answer_text(m, world.results[(MARKETER, m.path)])
        assert [t for t in PERSONAL if t in answer] == [], f"{m.path}: {answer[:2000]}"


def test_a_rotated_key_works_in_its_overlap_and_not_after(world: World) -> None:
    overlap = ROTATION_OVERLAP_HOURS * 3600
    assert world.probe_started - world.rotated_at < overlap - 1, \
        "the probe ran too late to be inside the overlap: lengthen ROTATION_OVERLAP_HOURS"
    inside_old, inside_new = world.probes["rotated old key"], world.probes["rotated new key"]
    assert inside_old.code == OK, inside_old
    assert inside_new.code == OK, inside_new
    time.sleep(max(0.0, world.rotated_at + overlap + CACHE_SECONDS + 0.2 - time.time()))
    after_old, after_new = call_node(world.target, [
        lookup(world.keys["rotated"], URSULA), lookup(world.keys["rotated successor"], URSULA)])
    assert after_old.code == UNAUTHENTICATED and "is expired" in after_old.details, after_old
    assert after_new.code == OK, after_new


def test_a_key_revoked_while_serving_is_refused_within_a_second(world: World) -> None:
    metadata = [("authorization", f"Bearer {world.keys['revoked while serving']}")]
    with grpc.insecure_channel(world.target) as channel:
        stub = pb_grpc.ProfileServiceStub(channel)
        request = profiles_pb2.LookupRequest(identifier=URSULA)
        stub.Lookup(request, metadata=metadata, timeout=10)  # works, and is cached now
        idgraph("keys", "revoke", world.key_ids["revoked while serving"],
                "--data-dir", str(world.data_dir))
        revoked = time.monotonic()
        while True:
            try:
                stub.Lookup(request, metadata=metadata, timeout=10)
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.UNAUTHENTICATED, exc
                refused = time.monotonic()
                break
            assert time.monotonic() - revoked < 5, "the revoked key still works after 5 s"
            time.sleep(0.02)
    assert refused - revoked < 1.0, f"refused {refused - revoked:.2f} s after the revocation"
    (node,) = call_node(world.target, [lookup(world.keys["revoked while serving"], URSULA)])
    assert node.code == UNAUTHENTICATED and "is revoked" in node.details


def _verify(data_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    return idgraph("audit", "verify", "--data-dir", str(data_dir), *extra, check=False)


def test_audit_verify_names_the_line_edited_by_hand(world: World) -> None:
    """Last: stops the server, so that it flushes its audit batch and signs the end."""
    assert world.stop_server() == 0, "".join(world.server_log)[-3000:]
    log_dir = world.data_dir / "audit"
    verified = _verify(world.data_dir)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # the server signed what it wrote last (its final checkpoint)
    assert "0 entries after the last checkpoint" in verified.stdout, verified.stdout
    lines = (log_dir / "audit.jsonl").read_text().splitlines(keepends=True)
    entries = [json.loads(line) for line in lines]
    actions = {e["action"] for e in entries}
    assert {"key.created", "key.rotated", "key.revoked", "auth.failed",
            "auth.denied"} <= actions, actions
    pristine = world.data_dir.parent / "audit-pristine"
    shutil.copytree(log_dir, pristine)

    middle = len(lines) // 2
    entry = entries[middle]
    edited = lines[middle].replace(f'"actor":{json.dumps(entry["actor"])}',
                                   '"actor":"someone-else"', 1)
    assert edited != lines[middle]
    (log_dir / "audit.jsonl").write_text("".join([*lines[:middle], edited,
                                                  *lines[middle + 1:]]))
    tampered = _verify(world.data_dir)
    assert tampered.returncode == 1, tampered.stdout + tampered.stderr
    problems = [ln for ln in tampered.stdout.splitlines() if ln.strip().startswith("[")]
    assert problems == [(f"  [edited] line {middle + 1} (seq {entry['seq']}): hash does "
                         "not match its content: the entry was edited")], tampered.stdout

    deleted_dir = world.data_dir.parent / "audit-deleted"
    shutil.copytree(pristine, deleted_dir)
    (deleted_dir / "audit.jsonl").write_text("".join([*lines[:middle], *lines[middle + 1:]]))
    cut = _verify(world.data_dir, "--dir", str(deleted_dir))
    assert cut.returncode == 1, cut.stdout + cut.stderr
    problems = [ln.strip() for ln in cut.stdout.splitlines() if ln.strip().startswith("[")]
    assert len(problems) == 1 and problems[0].startswith("[deleted]"), cut.stdout
    assert f"seq {entry['seq']} is missing" in problems[0], cut.stdout
    assert f"after line {middle} (seq {entries[middle - 1]['seq']})" in problems[0]
