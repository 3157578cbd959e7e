"""Privacy: the consent ledger and what it gates, suppression after a forget, exports.

A part of the product of its own (see ``ARCHITECTURE.md``: privacy is one concern behind
its own seam, never more methods on the engine):

* :mod:`.consent`: consent entries, the current state per subject and purpose, and the
  rules that fold a profile's states into one answer per purpose (deny wins by default);
* :mod:`.purposes`: the versioned registry of purposes (what each one covers, where it
  needs an explicit grant, when a grant lapses) and the decisions made from it;
* :mod:`.suppression`: keyed hashes of a forgotten person's identifiers, never the
  identifiers themselves;
* :mod:`.ledger`: the seam the ledger, the purpose registry, the suppression list and the
  forget requests are stored behind, with one backend per folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from idgraph.privacy.ledger import PrivacyLedger

if TYPE_CHECKING:
    from idgraph.profile_store.cassandra_backend.settings import CassandraSettings

__all__ = ["PrivacyLedger", "create_ledger"]


def create_ledger(backend: str, data_dir: Path,
                  cassandra: CassandraSettings | None = None) -> PrivacyLedger:
    """Open the privacy ledger of the configured profile-store backend: ``sqlite`` keeps
    ``privacy.sqlite`` in ``data_dir``; ``cassandra`` keeps it in the global keyspace of
    the cluster ``cassandra`` describes."""
    if backend == "sqlite":
        from idgraph.privacy.sqlite_backend import SqlitePrivacyLedger

        return SqlitePrivacyLedger(Path(data_dir) / "privacy.sqlite")
    if backend == "cassandra":
        from idgraph.privacy.cassandra_backend import CassandraPrivacyLedger
        from idgraph.profile_store.cassandra_backend.settings import CassandraSettings

        return CassandraPrivacyLedger(cassandra or CassandraSettings())
    raise ValueError(f"profile_store_backend: unknown backend {backend!r}; "
                     "known: sqlite, cassandra")
