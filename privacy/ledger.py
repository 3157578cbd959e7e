"""The privacy seam: the consent ledger, the purpose registry, the suppression list, the
forget requests and the privacy audit trail, behind one small interface.

A backend implements :class:`PrivacyLedger` once per folder (``sqlite_backend``: a file
beside the profile store; ``cassandra_backend``: the global keyspace). Every process that
answers or writes opens it: the writer appends the consent its events carry and checks the
suppression list before resolving anything; servers read the current consent of the
profiles they answer for (so a withdrawal recorded by one server is honoured by every
other one as soon as it is committed) and record consent, forgets and unsuppressions.

Contracts common to the methods:

* appends are idempotent: an entry or suppression whose ID is stored already changes
  nothing;
* the current state of (subject, purpose) only ever moves to a newer statement
  (:func:`idgraph.privacy.consent.newer`), whatever the order entries arrive in;
* nothing here stores an identifier of a forgotten person: suppressions hold keyed hashes
  (:mod:`idgraph.privacy.suppression`), forget requests and audit entries hold hashes and
  profile IDs.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field

from idgraph.core.errors import DriverErrorBoundary
from idgraph.privacy.consent import ConsentEntry, ConsentState
from idgraph.privacy.purposes import Purpose, PurposeRegistry

FORGET_STATUSES = ("pending", "in_progress", "completed", "failed")


@dataclass(slots=True)
class Suppression:
    """One suppressed value: the keyed hash of a normalised identifier or a record key."""

    value_hash: str
    reason: str
    """``forget`` (a forget request), or what an operator gave."""
    request_id: str
    at: float


@dataclass(slots=True)
class ForgetRequest:
    """A forget request and how far it got. ``subject_hash`` is the keyed hash of what the
    caller named; ``profile_ids`` the profiles it resolved to; ``erased`` counts what was
    removed per place (``graph_records``, ``store_records``, ``consent_entries``...)."""

    request_id: str
    subject_hash: str
    status: str
    requested_by: str
    requested_at: float
    updated_at: float
    profile_ids: list[str] = field(default_factory=list)
    erased: dict[str, int] = field(default_factory=dict)
    suppressed: int = 0
    """How many keyed hashes were added to the suppression list."""
    error: str = ""
    regions: list[str] = field(default_factory=list)
    """Home regions of the profiles when it was requested: a server that does not serve
    all of them does not show the request (residency)."""


@dataclass(slots=True)
class AuditEntry:
    """Who did what to whom, without personal data (hashes and profile IDs only)."""

    at: float
    actor: str
    action: str
    """``record_consent``, ``forget``, ``unsuppress``, ``export_subject``,
    ``define_purposes``..."""
    target: str
    detail: dict = field(default_factory=dict)


class PrivacyLedger(DriverErrorBoundary, ABC):
    """Consent, purposes, suppression, forget requests and the audit trail of one
    deployment (module docstring for the shared contracts)."""

    seam_name = "privacy ledger"

    # --- consent ---------------------------------------------------------------------

    @abstractmethod
    def append_consent(self, entries: Iterable[ConsentEntry]) -> int:
        """Store the entries and move the current state of every subject they cover
        where they are newer, atomically; returns how many entries were new."""

    @abstractmethod
    def consent_states(self, subjects: Iterable[str]) -> list[ConsentState]:
        """The current state of every (subject, purpose) of the given subjects."""

    @abstractmethod
    def consent_entries(self, subjects: Iterable[str], limit: int = 1000
                        ) -> list[ConsentEntry]:
        """Entries covering any of ``subjects``, oldest capture first, at most ``limit``
        (the newest ``limit`` when there are more)."""

    @abstractmethod
    def consent_log_after(self, cursor: str, limit: int) -> tuple[list[ConsentEntry], str]:
        """Entries appended after ``cursor`` (``""``: from the first), in append order, at
        most ``limit``, and the cursor after them (the same cursor when there are none):
        what writers follow to evaluate the segments of the profiles statements name.
        Every entry is handed once to a reader that follows the cursors; a distributed
        backend may hold the newest entries back a few seconds, until appends that began
        before them have committed (the Cassandra one: 2 s)."""

    @abstractmethod
    def get_cursor(self, name: str) -> str:
        """A cursor a reader of the log stored under ``name`` (``""`` when none)."""

    @abstractmethod
    def put_cursor(self, name: str, cursor: str) -> None:
        """Store a reader's cursor (the writers share one: they take turns)."""

    @abstractmethod
    def erase_consent(self, subjects: Iterable[str]) -> int:
        """Remove every entry covering one of ``subjects`` and their current states (a
        forget); returns how many entries were removed."""

    # --- purposes --------------------------------------------------------------------

    @abstractmethod
    def purposes(self) -> PurposeRegistry:
        """The latest version of every purpose (the packaged defaults when none was
        ever defined)."""

    @abstractmethod
    def purpose_versions(self, name: str) -> list[Purpose]:
        """Every version of a purpose, oldest first (empty when unknown)."""

    @abstractmethod
    def define_purposes(self, purposes: Iterable[Purpose], author: str, at: float
                        ) -> list[Purpose]:
        """Add a version of every purpose whose rules changed (or that is new); returns
        the versions added. Purposes are never deleted (old entries name them)."""

    # --- suppression -----------------------------------------------------------------

    @abstractmethod
    def suppress(self, suppressions: Iterable[Suppression]) -> int:
        """Add values to the suppression list; returns how many were new."""

    @abstractmethod
    def suppressed(self, value_hashes: Iterable[str]) -> dict[str, str]:
        """Of the given hashes, those suppressed, with their reason."""

    @abstractmethod
    def count_suppressed(self, events_by_reason: dict[str, int]) -> None:
        """Add dropped events to the counters (what a suppression dropped, by reason)."""

    @abstractmethod
    def suppressed_counts(self) -> dict[str, int]:
        """Events dropped by suppressions, by reason, since the ledger was created."""

    @abstractmethod
    def unsuppress(self, request_id: str) -> int:
        """Remove the suppressions a forget request added; returns how many."""

    # --- forget requests and audit ---------------------------------------------------

    @abstractmethod
    def put_forget_request(self, request: ForgetRequest) -> None:
        """Store (insert or replace) a forget request."""

    @abstractmethod
    def forget_request(self, request_id: str) -> ForgetRequest | None:
        """A forget request by ID."""

    @abstractmethod
    def forget_requests_of(self, subject_hash: str) -> list[ForgetRequest]:
        """Requests made for the subject with this hash, oldest first."""

    @abstractmethod
    def open_forget_requests(self) -> list[ForgetRequest]:
        """Requests still ``pending`` or ``in_progress`` (what a writer carries out),
        oldest first."""

    @abstractmethod
    def list_forget_requests(self, status: str = "", before: tuple[float, str] | None = None,
                             limit: int = 100) -> list[ForgetRequest]:
        """Requests newest first (``requested_at``, then ``request_id``, both descending),
        only those whose status is ``status`` when given, only those after ``before`` in
        that order (the ``(requested_at, request_id)`` of the last one of the previous
        page), at most ``limit``."""

    @abstractmethod
    def audit(self, entry: AuditEntry) -> None:
        """Append to the privacy audit trail."""

    @abstractmethod
    def audit_entries(self, limit: int = 1000) -> list[AuditEntry]:
        """The newest audit entries, oldest first."""

    @abstractmethod
    def audit_of(self, target: str, limit: int = 10_000) -> list[AuditEntry]:
        """The newest ``limit`` audit entries naming ``target`` (a profile ID, a request
        ID), oldest first: who read or changed a person's data (an export lists them)."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""


class PurposeCache:
    """The ledger's purpose registry, read again at most every ``seconds`` (purposes
    change rarely; consent states are read on every call)."""

    def __init__(self, ledger: PrivacyLedger, seconds: float = 1.0) -> None:
        self._ledger = ledger
        self._seconds = seconds
        self._registry: PurposeRegistry | None = None
        self._read = 0.0

    def get(self) -> PurposeRegistry:
        now = time.monotonic()
        if self._registry is None or now - self._read > self._seconds:
            self._registry = self._ledger.purposes()
            self._read = now
        return self._registry
