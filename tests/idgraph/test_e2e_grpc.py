"""The real path end to end: generated payloads -> engine -> SQLite -> ``idgraph serve``
(a separate process, as in production) -> a real gRPC channel."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter

import grpc
import pytest

from idgraph.engine import Engine
from idgraph.generator import generate
from idgraph.service.client import ProfileClient, ServiceCallError
from idgraph.settings import Settings

TOKEN = "e2e-token"


def _children_of(pid: int) -> list[str]:
    """PIDs whose parent is ``pid`` (from /proc, so no procps needed)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                out.append(entry)
    return out


def start_server(data_dir, *extra_env: tuple[str, str]) -> tuple[subprocess.Popen, int]:
    env = dict(os.environ, IDGRAPH_DATA_DIR=str(data_dir),
               IDGRAPH_GRPC__API_TOKENS=f'["{TOKEN}"]', **dict(extra_env))
    proc = subprocess.Popen([sys.executable, "-m", "idgraph.cli", "serve", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    line = proc.stdout.readline()
    if "serving ProfileService on port" not in line:
        proc.kill()
        raise AssertionError(f"server did not start: {line}{proc.stdout.read()}")
    return proc, int(line.split("on port")[1].split()[0])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("e2e")
    dataset = generate(n_records=3000, seed=5)
    engine = Engine(Settings(data_dir=data_dir))
    engine.ingest_payloads(dataset.events, batch_size=200)  # small batches: merges across batches
    proc, port = start_server(data_dir)
    client = ProfileClient(f"127.0.0.1:{port}", token=TOKEN)
    client.wait_ready()
    yield dataset, engine, client, data_dir
    client.close()
    proc.terminate()
    proc.wait(timeout=10)
    engine.close()


def test_lookup_by_any_identifier_returns_the_engines_profile(world):
    _dataset, engine, client, _ = world

    def carriers(identifier: str) -> list[str]:
        return [m.profile_id for m in engine.store.lookup(identifier)]

    def own(profile) -> list[str]:
        """The identifiers only ``profile`` carries."""
        return [i.identifier for i in profile.identifiers
                if carriers(i.identifier) == [profile.profile_id]]

    # a profile of several records with identifiers only it carries: the data, not luck,
    # makes the profile checks below run
    candidates = (engine.queries.get_profile(p) for p in engine.graph.profile_ids()
                  if len(engine.graph.records_of(p)) >= 3)
    expected = next(profile for profile in candidates if own(profile))
    multi = expected.profile_id
    for ident in expected.identifiers:  # every one names every profile that carries it
        response = client.lookup(ident.identifier)
        assert response.shared == (len(carriers(ident.identifier)) > 1)
        assert [response.profile.profile_id, *response.other_profile_ids] == carriers(
            ident.identifier)
    for identifier in own(expected):
        response = client.lookup(identifier)
        assert not response.shared and list(response.other_profile_ids) == []
        assert response.profile.profile_id == multi
        assert response.profile.record_count == len(expected.record_keys)
        assert response.profile.event_count == expected.event_count
        assert response.profile.region == expected.region
        assert {i.identifier for i in response.profile.identifiers} == {
            i.identifier for i in expected.identifiers}


def test_lookup_by_a_shared_device_names_both_people(world):
    """Two known people on one tablet: the served answer is the profile the tablet is
    linked in (the first to use it) and names the other."""
    _, engine, client, _ = world
    from helpers import record
    engine.ingest([
        record("hubspot", "e2e-tab-1", "e2e-tab-1", 1_700_000_000,
               ["crm:hubspot:e2e-tab-1", "email:tab.first@example.net", "device:e2e-tab"]),
        record("hubspot", "e2e-tab-2", "e2e-tab-2", 1_700_000_100,
               ["crm:hubspot:e2e-tab-2", "email:tab.second@example.net", "device:e2e-tab"]),
    ])
    first = engine.graph.profile_of("hubspot:e2e-tab-1")
    second = engine.graph.profile_of("hubspot:e2e-tab-2")
    assert first != second
    response = client.lookup("device:e2e-tab")
    assert response.shared is True
    assert response.profile.profile_id == first
    assert list(response.other_profile_ids) == [second]


def test_lookup_normalises_the_callers_identifier(world):
    _, engine, client, _ = world
    pid, email = next((p, i.identifier) for p in engine.graph.profile_ids()
                      for i in engine.queries.get_profile(p).identifiers
                      if i.identifier.startswith("email:") and "@gmail.com" not in i.identifier)
    local, domain = email[len("email:"):].split("@")
    response = client.lookup(f"EMAIL:  {local.upper()}@{domain.upper()} ")
    assert response.matched_identifier == email
    assert response.profile.profile_id == pid


def test_profiles_match_ground_truth_people(world):
    dataset, engine, client, _ = world
    # every looked-up CRM record resolves to a profile holding only its own person's records
    crm_keys = [k for k in dataset.truth if k.startswith(("salesforce:", "hubspot:"))][:40]
    for key in crm_keys:
        source, rid = key.split(":", 1)
        typ = "crm:salesforce" if source == "salesforce" else "crm:hubspot"
        profile = client.lookup(f"{typ}:{rid}").profile
        people = Counter(dataset.truth.get(k) for k in engine.graph.records_of(profile.profile_id))
        assert list(people) == [dataset.truth[key]]


def test_error_statuses(world):
    _, _, client, _ = world
    with pytest.raises(ServiceCallError) as err:
        client.lookup("email:nobody-at-all@example.org")
    assert err.value.code == grpc.StatusCode.NOT_FOUND
    with pytest.raises(ServiceCallError) as err:
        client.lookup("email:not-an-address")
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and "email" in err.value.details
    with pytest.raises(ServiceCallError) as err:
        client.lookup("fax:+4930123456")
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and "unknown identifier type" in err.value.details
    with pytest.raises(ServiceCallError) as err:
        client.get_profile("p_doesnotexist")
    assert err.value.code == grpc.StatusCode.NOT_FOUND


def test_unauthenticated_without_token(world):
    _, _engine, client, _ = world
    with ProfileClient(client.target) as anonymous, pytest.raises(ServiceCallError) as err:
        anonymous.lookup("email:someone@example.org")
    assert err.value.code == grpc.StatusCode.UNAUTHENTICATED


def test_batch_lookup_mixed(world):
    _, engine, client, _ = world
    pid = engine.graph.profile_ids()[0]
    known = engine.queries.get_profile(pid).identifiers[0].identifier
    response = client.batch_lookup([known, "email:missing@example.org", "bogus"])
    codes = [r.code for r in response.results]
    assert codes == [grpc.StatusCode.OK.value[0], grpc.StatusCode.NOT_FOUND.value[0],
                     grpc.StatusCode.INVALID_ARGUMENT.value[0]]
    assert response.results[0].result.profile.profile_id in (pid, *response.results[0].result.other_profile_ids)


def test_merged_profile_id_resolves_as_alias_over_grpc(world):
    _, engine, client, _ = world
    alias, live = next((a, p) for p in engine.graph.profile_ids() for a in engine.graph.aliases_of(p))
    response = client.get_profile(alias)
    assert response.profile.profile_id == live and response.resolved_from_alias
    assert alias in response.profile.aliases


def test_server_sees_writes_of_the_ingest_process(world):
    _, engine, client, _ = world
    from helpers import record
    engine.ingest([record("hubspot", "e2e-1", "e2e-ev-1", 1_700_000_000, ["crm:hubspot:e2e-1",
                                                                     "email:late.arrival@example.net"])])
    assert client.lookup("email:late.arrival@example.net").profile.sources[0].source == "hubspot"


def test_server_for_other_regions_does_not_serve_a_profile(world):
    _, engine, _, data_dir = world
    eu_pid = next(p for p in engine.graph.profile_ids()
                  if engine.queries.get_profile(p).region == "eu")
    ident = engine.queries.get_profile(eu_pid).identifiers[0].identifier
    proc, port = start_server(data_dir, ("IDGRAPH_GRPC__SERVED_REGIONS", '["us"]'))
    try:
        with ProfileClient(f"127.0.0.1:{port}", token=TOKEN) as us_client:
            us_client.wait_ready()
            with pytest.raises(ServiceCallError) as err:
                us_client.get_profile(eu_pid)
            assert err.value.code == grpc.StatusCode.NOT_FOUND
            with pytest.raises(ServiceCallError) as err:
                us_client.lookup(ident)
            assert err.value.code == grpc.StatusCode.NOT_FOUND
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_serve_with_several_processes_shares_the_port_and_stops_them_all(world):
    """Each connection is served by one of the processes (the kernel picks, per
    connection); GetServerStatus on a connection names the process that answered it, and
    a lookup on the same connection is answered there. New connections are opened until
    both processes have answered."""
    _, engine, _, data_dir = world
    from idgraph.proto.idgraph.v1 import admin_pb2 as apb
    from idgraph.proto.idgraph.v1 import admin_pb2_grpc as apb_grpc
    from idgraph.proto.idgraph.v1 import profiles_pb2 as pb
    from idgraph.proto.idgraph.v1 import profiles_pb2_grpc as pb_grpc
    from idgraph.serving import open_key_admin

    admin, store = open_key_admin(Settings(data_dir=data_dir), None)
    operator = admin.create("e2e operator", ["operator"]).text
    store.close()
    ident = engine.queries.get_profile(engine.graph.profile_ids()[0]).identifiers[0].identifier
    proc, port = start_server(data_dir, ("IDGRAPH_GRPC__PROCESSES", "2"))
    answered: Counter[int] = Counter()
    try:
        children = _children_of(proc.pid)
        assert len(children) == 1  # the parent serves too
        servers = {proc.pid, int(children[0])}
        # until both answered (the child may still be starting: until then every
        # connection goes to the parent), or a deadline
        deadline = time.monotonic() + 60
        while len(answered) < 2 and time.monotonic() < deadline:
            # a channel of its own subchannel pool: a new connection, not a shared one
            with grpc.insecure_channel(f"127.0.0.1:{port}",
                                       options=[("grpc.use_local_subchannel_pool", 1)]) as ch:
                grpc.channel_ready_future(ch).result(timeout=20)
                status = apb_grpc.AdminServiceStub(ch).GetServerStatus(
                    apb.GetServerStatusRequest(), timeout=10,
                    metadata=[("authorization", f"Bearer {operator}")])
                found = pb_grpc.ProfileServiceStub(ch).Lookup(
                    pb.LookupRequest(identifier=ident), timeout=10,
                    metadata=[("authorization", f"Bearer {TOKEN}")])
                assert found.matched_identifier == ident
                assert status.pid in servers
                answered[status.pid] += 1
        assert set(answered) == servers, f"only {sorted(answered)} of {sorted(servers)} answered"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    for pid in children:
        assert not os.path.exists(f"/proc/{pid}")  # stopped and reaped by the parent


def test_cached_profiles_are_refreshed_when_the_profile_changes(world):
    _, engine, client, _ = world
    from helpers import record
    engine.ingest([record("hubspot", "cache-1", "cache-ev-1", 1_700_000_000,
                          ["crm:hubspot:cache-1", "email:cache.me@example.net"], job_title="Analyst")])
    first = client.lookup("email:cache.me@example.net").profile
    assert first.attributes["job_title"].value == "Analyst"
    assert client.lookup("crm:hubspot:cache-1").profile == first  # served again, same version
    engine.ingest([record("hubspot", "cache-1", "cache-ev-2", 1_700_000_100,
                          ["crm:hubspot:cache-1"], job_title="Head of Data")])
    second = client.lookup("email:cache.me@example.net").profile
    assert second.attributes["job_title"].value == "Head of Data"
    assert second.event_count == first.event_count + 1


def test_explain_and_reviews_through_idgraph_serve(world):
    """`idgraph serve` wires Explain (a read-only graph view that follows the writer's log)
    and the review queue; api tokens may not use them, steward tokens may."""
    _, engine, _client, data_dir = world
    from helpers import record

    from idgraph.graph.base import MatchEdge

    a = record("salesforce", "e2e-x1", "e2e-x1", 1_700_000_100, ["email:x1@example.net"],
               given_name="Ada", family_name="Quill")
    b = record("hubspot", "e2e-x2", "e2e-x2", 1_700_000_200, ["email:x2@example.net"],
               given_name="Ada", family_name="Quill")
    engine.ingest([a, b])
    engine.reviews.propose([("hubspot:e2e-x2", "salesforce:e2e-x1", 9.0, 0.95, "v0009",
                             (("given_name", "Exact", 7.0),))])
    engine.apply_matches([MatchEdge("salesforce:e2e-x1", "hubspot:e2e-x2", True,
                                    "probabilistic:v0009", "", 12.5, 0.9998, "v0009",
                                    (("given_name", "Exact", 7.0), ("family_name", "Exact", 7.5)),
                                    "salesforce", "e2e-x1", 1_700_000_300)])
    steward = "steward-e2e"
    proc, port = start_server(data_dir, ("IDGRAPH_GRPC__STEWARD_TOKENS", f'["{steward}"]'))
    try:
        with ProfileClient(f"127.0.0.1:{port}", token=TOKEN) as lookup_only:
            lookup_only.wait_ready()
            with pytest.raises(ServiceCallError) as denied:
                lookup_only.explain_between("email:x1@example.net", "email:x2@example.net")
            assert denied.value.code == grpc.StatusCode.PERMISSION_DENIED
        with ProfileClient(f"127.0.0.1:{port}", token=steward) as stewarding:
            path = stewarding.explain_between("email:x1@example.net", "email:x2@example.net")
            assert path.joined
            assert [e.rule for e in path.edges] == [
                "deterministic:email", "probabilistic:v0009", "deterministic:email"]
            match = path.edges[1]
            assert match.model_version == "v0009" and match.match_weight == pytest.approx(12.5)
            assert [c.comparison for c in match.contributions] == ["given_name", "family_name"]
            review = stewarding.list_reviews("open").reviews[0]
            decided = stewarding.decide_review(review.review_id, accept=False, note="checked")
            assert decided.status == "rejected" and decided.decided_by.startswith("steward:")
            assert steward not in decided.decided_by
    finally:
        proc.terminate()
        proc.wait(timeout=10)
