"""Access control: API keys, roles and the audit log.

A part of the product of its own (``ARCHITECTURE.md``: auth is one concern behind its own
seam), used by every transport (gRPC today, the console next):

* :mod:`.keys`: the key format (prefix, ID, secret, checksum), the stored form (a keyed
  hash, never the secret) and a key's lifetime;
* :mod:`.roles`: the one permission table: rpc -> permission, role -> permissions;
* :mod:`.authenticator`: credentials (keys, static tokens, client certificates) to a
  :class:`~.authenticator.Principal`;
* :mod:`.key_admin`: create, list, rotate and revoke keys;
* :mod:`.store`: the key store seam, with one backend per folder;
* :mod:`.ratelimit`: a token bucket per caller;
* :mod:`.audit`: the append-only, hash-chained, signed audit log.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from idgraph.auth.store import KeyStore
from idgraph.core.errors import ConfigError
from idgraph.core.private_files import read_or_create_secret, read_secret

if TYPE_CHECKING:
    from idgraph.auth.settings import AuthSettings
    from idgraph.profile_store.cassandra_backend.settings import CassandraSettings

__all__ = ["KeyStore", "create_key_store", "load_server_secret"]

SECRET_FILE = "auth.key"
MIN_SECRET_BYTES = 32


def create_key_store(backend: str, data_dir: Path,
                     cassandra: CassandraSettings | None = None) -> KeyStore:
    """The key store of the configured profile-store backend: ``sqlite`` keeps
    ``auth.sqlite`` in ``data_dir``; ``cassandra`` the global keyspace."""
    if backend == "sqlite":
        from idgraph.auth.sqlite_backend import SqliteKeyStore

        return SqliteKeyStore(Path(data_dir) / "auth.sqlite")
    if backend == "cassandra":
        from idgraph.auth.cassandra_backend import CassandraKeyStore
        from idgraph.profile_store.cassandra_backend.settings import CassandraSettings

        return CassandraKeyStore(cassandra or CassandraSettings())
    raise ValueError(f"profile_store_backend: unknown backend {backend!r}; "
                     "known: sqlite, cassandra")


def load_server_secret(settings: AuthSettings, data_dir: Path, generate: bool) -> bytes:
    """The HMAC key of API keys: ``auth.key_secret``, else ``auth.key_secret_file``, else
    (``generate``: the embedded backend) ``auth.key`` in the data dir, created 0600 when
    missing. ConfigError when none is available or it is shorter than 32 bytes."""
    if settings.key_secret is not None:
        secret = settings.key_secret.get_secret_value().encode("utf-8")
    elif settings.key_secret_file is not None:
        secret = read_secret(settings.key_secret_file, "auth.key_secret_file")
    elif generate:
        secret = read_or_create_secret(Path(data_dir) / SECRET_FILE, "auth.key_secret_file",
                                       MIN_SECRET_BYTES)
    else:
        raise ConfigError("auth.key_secret (or auth.key_secret_file) is not set: every "
                          "server of a distributed deployment must share one")
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(f"auth.key_secret is shorter than {MIN_SECRET_BYTES} bytes")
    return secret
