"""The Cassandra clients' TLS and credentials settings against a real TLS-only cluster.

Cassandra 2.1 supports both: ``client_encryption_options`` (TLS on the native port, a
JKS keystore, optionally client certificates) and ``PasswordAuthenticator``. One
single-node cluster is started for this module with TLS, required client certificates
and password authentication (:class:`LocalCassandraCluster` ``tls=True,
require_client_cert=True, authentication=True``; its CA and certificates are generated
for this run). The store, the privacy ledger and the segment catalog are opened through
the project's own factories, whose one connection code (``cassandra_backend.connection``)
builds the TLS context and the credentials from ``CassandraSettings``:

- the right CA, client certificate and credentials: everything works;
- a CA that did not sign the server's certificate, no client certificate, TLS off on the
  client, wrong or missing credentials: opening fails with a BackendError that says why;
- contradictory or missing files: ConfigError naming the field, before any connection.

The server tests are ``slow``; a cluster that cannot start fails them (never
skips them).
"""

from __future__ import annotations

import time

import pytest
from cassandra_testing import cassandra_settings, fresh_prefix
from pydantic import SecretStr
from store_builders import links, rec

from idgraph.core.errors import BackendError, ConfigError
from idgraph.devservers.cassandra_cluster import LocalCassandraCluster
from idgraph.devservers.tls import make_ca
from idgraph.privacy import create_ledger
from idgraph.profile_store import create_segment_catalog, create_store
from idgraph.profile_store.base import ProfileHead, StoreBatch

REGIONS = {"eu": {"dc1": 1}}


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory):
    cluster = LocalCassandraCluster(tmp_path_factory.mktemp("cassandra-tls"),
                                    nodes=(("127.0.0.1", "dc1"),), tls=True,
                                    require_client_cert=True, authentication=True)
    started = time.monotonic()
    with cluster:  # LocalClusterError with the node's log when it cannot start
        print(f"\nTLS + auth Cassandra node ready in {time.monotonic() - started:.1f} s")
        yield cluster


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory):
    """A CA that signed nothing the cluster presents."""
    return make_ca(tmp_path_factory.mktemp("other-ca"))


def secure_settings(cluster, prefix="tlsnone", **overrides):
    """What a production deployment sets for this cluster: CA, client certificate, user."""
    certs = cluster.certificates
    values = {
        "region_datacenters": REGIONS, "ssl_ca_file": certs.ca_file,
        "ssl_cert_file": certs.client_cert_file, "ssl_key_file": certs.client_key_file,
        "username": cluster.username, "password": SecretStr(cluster.password),
    }
    values.update(overrides)
    return cassandra_settings(cluster, prefix, **values)


@pytest.mark.slow
def test_store_ledger_and_catalog_work_over_tls_with_credentials(tls_cluster, tmp_path):
    settings = secure_settings(tls_cluster, fresh_prefix("tls"))
    store = create_store("cassandra", tmp_path, ["eu"], cassandra=settings)
    try:
        record = rec("crm:1", "p1", "eu", ["email:a@x.eu"], 1.0)
        store.write(StoreBatch(records=[record], identifier_links=links(record),
                               heads=[ProfileHead("p1", "eu", 1.0)],
                               processed_event_ids=["e1"]))
        assert store.get_profile("p1").records == [record]
        assert [m.profile_id for m in store.lookup("email:a@x.eu")] == ["p1"]
    finally:
        store.close()
    ledger = create_ledger("cassandra", tmp_path, cassandra=settings)
    try:
        ledger.put_cursor("tls-test", "c1")
        assert ledger.get_cursor("tls-test") == "c1"
    finally:
        ledger.close()
    catalog = create_segment_catalog("cassandra", tmp_path, cassandra=settings)
    catalog.close()


@pytest.mark.slow
def test_a_ca_that_did_not_sign_the_server_is_refused(tls_cluster, other_ca, tmp_path):
    settings = secure_settings(tls_cluster, ssl_ca_file=other_ca)
    with pytest.raises(BackendError, match=r"connect failed: NoHostAvailable .*TLS: "
                                           r"certificate verify failed"):
        create_store("cassandra", tmp_path, ["eu"], cassandra=settings)


@pytest.mark.slow
def test_without_the_client_certificate_the_server_refuses(tls_cluster, tmp_path):
    settings = secure_settings(tls_cluster, ssl_cert_file=None, ssl_key_file=None)
    with pytest.raises(BackendError, match=r"connect failed: NoHostAvailable .*TLS: "):
        create_store("cassandra", tmp_path, ["eu"], cassandra=settings)


@pytest.mark.slow
def test_tls_off_on_the_client_fails_and_names_the_setting(tls_cluster, tmp_path):
    settings = secure_settings(tls_cluster, ssl_ca_file=None, ssl_cert_file=None,
                               ssl_key_file=None, request_timeout_seconds=3.0)
    started = time.monotonic()
    with pytest.raises(BackendError, match=r"connect failed: NoHostAvailable .*"
                                           r"OperationTimedOut.*cassandra\.ssl_ca_file"):
        create_store("cassandra", tmp_path, ["eu"], cassandra=settings)
    assert time.monotonic() - started < 30


@pytest.mark.slow
@pytest.mark.parametrize(("username", "password", "said"), [
    ("cassandra", "wrong-password", "Username and/or password are incorrect"),
    ("nobody", "cassandra", "Username and/or password are incorrect"),
    ("", "", "Remote end requires authentication"),
])
def test_wrong_or_missing_credentials_are_refused(tls_cluster, tmp_path, username, password,
                                                  said):
    settings = secure_settings(tls_cluster, username=username, password=SecretStr(password))
    with pytest.raises(BackendError, match=rf"AuthenticationFailed \({said}: check "
                                           r"cassandra\.username and cassandra\.password\)"):
        create_ledger("cassandra", tmp_path, cassandra=settings)


# -- misconfigurations: refused before connecting (no server needed) --------------------


@pytest.mark.parametrize(("overrides", "field"), [
    ({"ssl_ca_file": "/nonexistent/ca.pem"}, "cassandra.ssl_ca_file"),
    ({"ssl_cert_file": "/nonexistent/c.pem", "ssl_key_file": "/nonexistent/c.key"},
     "cassandra.ssl_cert_file"),
    ({"ssl_cert_file": "/etc/hostname"}, "cassandra.ssl_cert_file and cassandra.ssl_key_file"),
    ({"password": SecretStr("secret")}, "cassandra.password is set but cassandra.username"),
])
def test_misconfigurations_are_config_errors_naming_the_field(overrides, field, tmp_path):
    from idgraph.profile_store.cassandra_backend.settings import CassandraSettings

    settings = CassandraSettings(contact_points=["127.0.0.1"], port=1,
                                 region_datacenters=REGIONS, **overrides)
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        create_store("cassandra", tmp_path, ["eu"], cassandra=settings)


def test_a_file_that_is_not_a_certificate_is_a_config_error(tmp_path):
    from idgraph.profile_store.cassandra_backend.settings import CassandraSettings

    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate\n")
    settings = CassandraSettings(contact_points=["127.0.0.1"], port=1,
                                 region_datacenters=REGIONS, ssl_ca_file=bogus)
    with pytest.raises(ConfigError, match=r"cassandra\.ssl_ca_file: cannot load"):
        create_store("cassandra", tmp_path, ["eu"], cassandra=settings)
