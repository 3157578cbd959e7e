"""The Neo4j client's TLS and credentials settings against a real TLS-only Bolt server.

ArcadeDB 26.10.2's Bolt plugin supports TLS (``arcadedb.bolt.ssl=REQUIRED``; keystore and
truststore from ``arcadedb.ssl.*``) and always checks the ``root`` password; it never asks
for a client certificate. One server is started for this module with TLS on
(:class:`LocalBoltServer` ``tls=True``, its CA and certificate generated for this run),
and the graph is opened through the project's factory (``create_graph``), whose driver
options come from ``Neo4jSettings`` (``uri``, ``encrypted``, ``trusted_ca_file``,
``user``, ``password``):

- ``encrypted = true`` with the server's CA, or a ``+s`` URI with that CA, or ``+ssc``:
  writes and reads work;
- a CA that did not sign the server's certificate, the system's CAs (``+s`` alone), TLS
  off on the client, a wrong password: opening fails with a BackendError saying why;
- contradictory settings or a missing CA file: ConfigError naming the field.

The server tests are ``slow``; a server that cannot start fails them (never skips them).
"""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from idgraph.core.errors import BackendError, ConfigError
from idgraph.devservers.bolt_server import LocalBoltServer
from idgraph.devservers.tls import make_ca
from idgraph.graph import create_graph, create_graph_view
from idgraph.graph.base import LinkEdge
from idgraph.graph.neo4j_backend.settings import Neo4jSettings

SHAREABLE = frozenset({"device"})


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    server = LocalBoltServer(tmp_path_factory.mktemp("arcadedb-tls"), tls=True)
    server.start(timeout=120.0)  # RuntimeError with the server log when it cannot start
    try:
        print(f"\nTLS Bolt server ready in {server.startup_seconds:.1f} s")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory):
    """A CA that signed nothing the server presents."""
    return make_ca(tmp_path_factory.mktemp("other-ca"))


def settings_for(server: LocalBoltServer, **overrides) -> Neo4jSettings:
    values = {"uri": server.uri, "user": server.user, "password": SecretStr(server.password),
              "database": server.database, "encrypted": True,
              "trusted_ca_file": server.ca_file, "connection_timeout_seconds": 5.0,
              "max_transaction_retry_seconds": 5.0}
    values.update(overrides)
    return Neo4jSettings(**values)


def _s_uri(server: LocalBoltServer, suffix: str) -> str:
    return server.uri.replace("bolt://", f"bolt+{suffix}://")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["encrypted with the CA", "bolt+s with the CA", "bolt+ssc"])
def test_the_graph_works_over_tls(tls_server, tmp_path, how):
    settings = {
        "encrypted with the CA": settings_for(tls_server),
        "bolt+s with the CA": settings_for(tls_server, uri=_s_uri(tls_server, "s"),
                                           encrypted=False),
        "bolt+ssc": settings_for(tls_server, uri=_s_uri(tls_server, "ssc"),
                                 trusted_ca_file=None),
    }[how]
    key = f"crm:{how.replace(' ', '-')}"
    graph = create_graph("neo4j", tmp_path, SHAREABLE, neo4j=settings)
    try:
        graph.apply([(key, 1.0)], [LinkEdge(key, f"email:{key}@x.io", "email", True,
                                            "deterministic:email", "", "crm", "e1", 1.0)])
        pid = graph.profile_of(key)
        assert pid is not None
    finally:
        graph.close()
    view = create_graph_view("neo4j", tmp_path, SHAREABLE, neo4j=settings)
    try:
        assert view.profile_of(key) == pid
    finally:
        view.close()


@pytest.mark.slow
def test_a_ca_that_did_not_sign_the_server_is_refused(tls_server, other_ca, tmp_path):
    with pytest.raises(BackendError, match=r"cannot reach Neo4j at bolt://127\.0\.0\.1:\d+: "
                                           r"TLS: certificate verify failed"):
        create_graph("neo4j", tmp_path, SHAREABLE,
                     neo4j=settings_for(tls_server, trusted_ca_file=other_ca))


@pytest.mark.slow
def test_bolt_s_without_the_ca_uses_the_systems_cas_and_is_refused(tls_server, tmp_path):
    settings = settings_for(tls_server, uri=_s_uri(tls_server, "s"), encrypted=False,
                            trusted_ca_file=None)
    with pytest.raises(BackendError, match=r"TLS: certificate verify failed"):
        create_graph("neo4j", tmp_path, SHAREABLE, neo4j=settings)


@pytest.mark.slow
def test_tls_off_on_the_client_is_refused_by_the_server(tls_server, tmp_path):
    settings = settings_for(tls_server, encrypted=False, trusted_ca_file=None)
    with pytest.raises(BackendError, match=r"(?s)cannot reach Neo4j at bolt://127\.0\.0\.1:"
                                           r"\d+: ServiceUnavailable.*incomplete handshake.*"
                                           r"if the server requires TLS, set neo4j\.encrypted"):
        create_graph("neo4j", tmp_path, SHAREABLE, neo4j=settings)
    log = tls_server.log_file.read_text(errors="replace")
    assert "BOLT rejecting non-TLS connection" in log


@pytest.mark.slow
@pytest.mark.parametrize(("user", "password"), [("root", "not-the-password"),
                                                ("nobody", "whatever-password")])
def test_wrong_credentials_are_refused_over_tls(tls_server, tmp_path, user, password):
    settings = settings_for(tls_server, user=user, password=SecretStr(password))
    with pytest.raises(BackendError, match=rf"refused the credentials of user '{user}' "
                                           r"\(neo4j\.user, neo4j\.password\)"):
        create_graph("neo4j", tmp_path, SHAREABLE, neo4j=settings)


# -- misconfigurations: refused before connecting (no server needed) --------------------


@pytest.mark.parametrize(("overrides", "message"), [
    ({"uri": "bolt+ssc://127.0.0.1:1", "trusted_ca_file": "CA"},
     r"neo4j\.trusted_ca_file is set but neo4j\.uri .*\+ssc\) trusts any certificate"),
    ({"uri": "bolt://127.0.0.1:1", "encrypted": False, "trusted_ca_file": "CA"},
     r"neo4j\.trusted_ca_file is set but neo4j\.encrypted is false"),
    ({"uri": "bolt://127.0.0.1:1", "encrypted": True, "trusted_ca_file": "/nonexistent.pem"},
     r"neo4j\.trusted_ca_file: /nonexistent\.pem is not a file"),
    ({"uri": "http://127.0.0.1:1"}, r"neo4j\.uri: 'http://127\.0\.0\.1:1' is not a Bolt URI"),
    ({"uri": "bolt+x://127.0.0.1:1"}, r"neo4j\.uri: .* is not a Bolt URI"),
])
def test_misconfigurations_are_config_errors_naming_the_field(overrides, message, tmp_path):
    ca = make_ca(tmp_path)
    if overrides.get("trusted_ca_file") == "CA":
        overrides = {**overrides, "trusted_ca_file": ca}
    with pytest.raises(ConfigError, match=message):
        create_graph("neo4j", tmp_path, SHAREABLE, neo4j=Neo4jSettings(**overrides))
