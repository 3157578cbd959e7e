"""Throwaway TLS material for the local servers' opt-in TLS modes (tests and development).

:func:`make_certificates` writes, into a directory of the server's own temp dir, a fresh
certificate authority, a server certificate it signs (valid for ``localhost`` and the
loopback addresses the server binds), and a client certificate it signs (for servers
that can require one). Nothing is reused between runs and nothing leaves the machine:
the keys are generated with the ``cryptography`` package each time (RSA 2048, the key
type every server here accepts; ~0.1 s per key).

Java servers read keystores, not PEM files: :func:`pkcs12_keystore` bundles a key and
its certificate as PKCS#12, and :func:`jks_keystore` / :func:`jks_truststore` turn PEM
material into JKS with the JDK's own ``keytool`` (Cassandra 2.1 reads JKS).

Clients get the PEM files: ``ca_file`` is what a client must trust, ``client_cert_file``
and ``client_key_file`` what it presents. :func:`make_ca` makes another, unrelated CA: a
client that trusts only it must refuse the server.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from idgraph.core.errors import BackendError

VALIDITY = datetime.timedelta(days=2)
_KEYTOOL_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Certificates:
    """PEM files of one run's TLS material (every file readable by the owner only)."""

    dir: Path
    ca_file: Path
    """The CA certificate: what a client trusts."""
    server_cert_file: Path
    """The server certificate (signed by the CA; names ``localhost`` and the hosts given)."""
    server_key_file: Path
    client_cert_file: Path
    """A client certificate signed by the same CA (for mutual TLS)."""
    client_key_file: Path
    password: str
    """A random password for the keystores made from this material."""
    other_clients: dict[str, tuple[Path, Path]] = field(default_factory=dict)
    """More client certificates signed by the CA: common name -> (certificate, key)."""


def _crypto():  # imported here: only the TLS modes of the dev servers need it
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    return x509, hashes, serialization, rsa, ExtendedKeyUsageOID, NameOID


def _write_private(path: Path, data: bytes) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return path


def _new_key():
    _, _, _, rsa, _, _ = _crypto()
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _key_pem(key) -> bytes:
    _, _, serialization, _, _, _ = _crypto()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert) -> bytes:
    _, _, serialization, _, _, _ = _crypto()
    return cert.public_bytes(serialization.Encoding.PEM)


def _builder(subject: str, issuer, public_key):
    x509, _, _, _, _, NameOID = _crypto()
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    return (x509.CertificateBuilder()
            .subject_name(name).issuer_name(issuer or name).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY))


def _ca(common_name: str):
    x509, hashes, _, _, _, _ = _crypto()
    key = _new_key()
    cert = (_builder(common_name, None, key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def _leaf(ca_key, ca_cert, common_name: str, *, server: bool, hosts: Sequence[str] = ()):
    x509, hashes, _, _, ExtendedKeyUsageOID, _ = _crypto()
    key = _new_key()
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (_builder(common_name, ca_cert.subject, key.public_key())
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(
                   digital_signature=True, key_encipherment=True, key_cert_sign=False,
                   crl_sign=False, content_commitment=False, data_encipherment=False,
                   key_agreement=False, encipher_only=False, decipher_only=False),
                   critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca_key.public_key()), critical=False))
    if server:
        names: list = [x509.DNSName("localhost")]
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                if host != "localhost":
                    names.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def make_ca(directory: str | os.PathLike[str], name: str = "other") -> Path:
    """Write a fresh self-signed CA certificate to ``directory/{name}-ca.pem`` (its key is
    thrown away) and return the path: a CA that signed nothing a local server presents."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _, cert = _ca(f"idgraph {name} CA")
    return _write_private(directory / f"{name}-ca.pem", _cert_pem(cert))


def make_certificates(directory: str | os.PathLike[str],
                      hosts: Sequence[str] = ("127.0.0.1",), *,
                      client_name: str = "idgraph-client",
                      other_clients: Sequence[str] = ()) -> Certificates:
    """Generate a CA, a server certificate for ``localhost`` and ``hosts`` (IP addresses
    or DNS names), and a client certificate named ``client_name`` (plus one per name of
    ``other_clients``), all signed by the CA, into ``directory`` (created, mode 0700).
    Valid from five minutes ago for :data:`VALIDITY`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    ca_key, ca_cert = _ca("idgraph local test CA")
    server_key, server_cert = _leaf(ca_key, ca_cert, "localhost", server=True, hosts=hosts)
    client_key, client_cert = _leaf(ca_key, ca_cert, client_name, server=False)
    others = {}
    for n, name in enumerate(other_clients):
        key, cert = _leaf(ca_key, ca_cert, name, server=False)
        others[name] = (_write_private(directory / f"client-{n}.pem", _cert_pem(cert)),
                        _write_private(directory / f"client-{n}.key", _key_pem(key)))
    return Certificates(
        dir=directory,
        ca_file=_write_private(directory / "ca.pem", _cert_pem(ca_cert)),
        server_cert_file=_write_private(directory / "server.pem", _cert_pem(server_cert)),
        server_key_file=_write_private(directory / "server.key", _key_pem(server_key)),
        client_cert_file=_write_private(directory / "client.pem", _cert_pem(client_cert)),
        client_key_file=_write_private(directory / "client.key", _key_pem(client_key)),
        password=secrets.token_urlsafe(18),
        other_clients=others,
    )


def pkcs12_keystore(certs: Certificates, path: Path, alias: str = "server") -> Path:
    """The server key and certificate (with the CA) as a PKCS#12 keystore protected by
    ``certs.password``."""
    x509, _, serialization, _, _, _ = _crypto()
    from cryptography.hazmat.primitives.serialization import pkcs12

    key = serialization.load_pem_private_key(certs.server_key_file.read_bytes(), None)
    cert = x509.load_pem_x509_certificate(certs.server_cert_file.read_bytes())
    ca = x509.load_pem_x509_certificate(certs.ca_file.read_bytes())
    data = pkcs12.serialize_key_and_certificates(
        alias.encode(), key, cert, [ca],  # type: ignore[arg-type]
        serialization.BestAvailableEncryption(certs.password.encode()))
    return _write_private(path, data)


def _keytool(keytool: str | os.PathLike[str], *args: str) -> None:
    cmd = [str(keytool), *args]
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=_KEYTOOL_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackendError(f"cannot run {keytool}: {exc}") from exc
    if proc.returncode != 0:
        raise BackendError(f"{keytool} {args[0]} failed (exit code {proc.returncode}): "
                           f"{(proc.stdout + proc.stderr).strip()[-1000:]}")


def jks_keystore(certs: Certificates, path: Path, keytool: str | os.PathLike[str],
                 alias: str = "server") -> Path:
    """The server key and certificate as a JKS keystore (``certs.password`` for the store
    and the key), converted from PKCS#12 by ``keytool``."""
    p12 = pkcs12_keystore(certs, path.with_suffix(".p12"), alias)
    path.unlink(missing_ok=True)
    _keytool(keytool, "-importkeystore", "-noprompt",
             "-srckeystore", str(p12), "-srcstoretype", "PKCS12",
             "-srcstorepass", certs.password, "-srcalias", alias,
             "-destkeystore", str(path), "-deststoretype", "JKS",
             "-deststorepass", certs.password, "-destkeypass", certs.password,
             "-destalias", alias)
    path.chmod(0o600)
    return path


def jks_truststore(ca_file: Path, path: Path, password: str,
                   keytool: str | os.PathLike[str], alias: str = "ca") -> Path:
    """A JKS truststore holding the CA certificate of ``ca_file``, made by ``keytool``."""
    path.unlink(missing_ok=True)
    _keytool(keytool, "-importcert", "-noprompt", "-alias", alias, "-file", str(ca_file),
             "-keystore", str(path), "-storetype", "JKS", "-storepass", password)
    path.chmod(0o600)
    return path
