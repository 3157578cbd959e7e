"""The key store seam: where API keys (:class:`~idgraph.auth.keys.ApiKey`, never their
secrets) are kept. One backend per folder: ``sqlite_backend`` (``auth.sqlite`` in the
data dir, shared by every process on the machine) and ``cassandra_backend`` (the
deployment's global keyspace, shared by every machine).

Contract, for every backend (``tests/auth/test_key_store_contract.py``):

* :meth:`KeyStore.insert` stores a new key; a key ID already present raises
  :class:`~idgraph.auth.keys.KeyRequestError` and changes nothing;
* :meth:`KeyStore.get` reads a key as last written, from any process, at once after the
  writing call returned (servers re-read keys they cache every ``auth.cache_seconds``, so
  a revocation reaches them within that time);
* :meth:`KeyStore.replace` overwrites a stored key (revocation, rotation); a missing key
  raises :class:`~idgraph.auth.keys.KeyNotFoundError`;
* :meth:`KeyStore.list_keys` lists every key, ordered by creation time then key ID;
* :meth:`KeyStore.mark_used` / :meth:`KeyStore.last_used` keep when each key was last
  used (a later time wins; callers batch these writes).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping

from idgraph.auth.keys import ApiKey


class KeyStore(ABC):
    """Stored API keys (module docstring)."""

    @abstractmethod
    def insert(self, key: ApiKey) -> None:
        """Store a new key; KeyRequestError when its ID exists."""

    @abstractmethod
    def get(self, key_id: str) -> ApiKey | None:
        """The key with ``key_id``; None when there is none."""

    @abstractmethod
    def replace(self, key: ApiKey) -> None:
        """Overwrite the stored key of ``key.key_id``; KeyNotFoundError when absent."""

    @abstractmethod
    def list_keys(self) -> list[ApiKey]:
        """Every key, oldest first."""

    @abstractmethod
    def mark_used(self, used: Mapping[str, float]) -> None:
        """Record that each key of ``used`` was used at the time given (a later time than
        the stored one wins)."""

    @abstractmethod
    def last_used(self, key_ids: Iterable[str]) -> dict[str, float]:
        """When each of ``key_ids`` was last used (keys never used are left out)."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""
