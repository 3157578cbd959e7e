"""The tamper-evident audit log: who did what to which resource, when, and how it ended.

Contract
--------
* ``<dir>/audit.jsonl`` holds one :class:`AuditEntry` per line (canonical JSON), appended
  only. ``seq`` counts from 1 without gaps, ``prev`` is the previous entry's ``hash``
  (``"0" * 64`` for seq 1) and ``hash`` is the SHA-256 of the canonical JSON of every
  other key (:func:`canonical_json`): editing, deleting or reordering an entry breaks the
  chain.
* ``<dir>/checkpoints.jsonl`` holds signed checkpoints: the seq and hash of the last entry
  covered, the hash of the previous checkpoint line, the signing key's ID and an Ed25519
  signature. :class:`AuditLog` writes one every ``checkpoint_every`` entries or
  ``checkpoint_seconds`` (whichever comes first; checked at each append and by
  :meth:`AuditLog.checkpoint_if_due`; a batch is covered at its end) and at
  :meth:`AuditLog.close`, never when no entry was appended since the last one.
* The directory is ``0700`` and both files ``0600``. Several processes may append to one
  directory: each batch is written under ``flock`` with one ``write`` and one ``fsync``.
  An incomplete last line (a writer stopped mid-write) is removed when a log is opened.
* People never appear in clear: callers pass keyed hashes of subjects (as the suppression
  list keeps them, :mod:`idgraph.privacy.suppression`) in ``resource`` and ``resources``,
  and hashes in ``before``/``after``. So a forget never edits the log, and the log can be
  kept as long as auditors ask.
* :func:`verify` checks a directory against the public key and reports every problem it
  finds with its file, line and seq; :func:`read_entries` pages the log for admins.

Threat model
------------
Local verification catches an entry edited, deleted or reordered by hand (its hash or the
chain no longer holds), entries covered by a checkpoint rewritten with every later hash
recomputed (``checkpoint_mismatch``), a log cut below its last checkpoint
(``truncated``), and an edited or deleted checkpoint line other than the last. It does
not catch a local attacker who rewrites both files consistently after the last
checkpoint, or deletes the tail of both files past the last checkpoint
(:attr:`AuditReport.unsigned_tail` counts the entries so exposed), nor one who can read
the signing key, which lives on the host beside the writers (owner only) and so lets
them re-sign a rewritten history. Hence: ship checkpoints off host
(:func:`latest_checkpoint`, e.g. to write-once storage every few minutes) and pass the
last one kept as ``verify(..., anchor=...)``: the log must still reach it and match it
(``truncated`` or ``checkpoint_mismatch`` otherwise). Entries still in an
:class:`AuditBuffer` when its process dies (at most ``flush_seconds`` of reads) are lost.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from os import PathLike
from pathlib import Path
from typing import Any, Self, TypeVar

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from idgraph.core.errors import ConfigError, IdGraphError
from idgraph.core.private_files import make_private_dir, make_private_file, open_private_fd

logger = logging.getLogger(__name__)

LOG_FILE = "audit.jsonl"
CHECKPOINT_FILE = "checkpoints.jsonl"
GENESIS = "0" * 64
OUTCOMES = ("ok", "denied", "failed")
MAX_RESOURCES = 1000
"""At most this many resources in one entry (more reads: several entries)."""
MAX_PAGE = 10_000
PROBLEM_KINDS = ("edited", "deleted", "reordered", "truncated", "bad_signature", "malformed",
                 "checkpoint_mismatch")
_HEX_HASH = re.compile(r"[0-9a-f]{16,128}")
_CHECKPOINT_KEYS = {"seq": int, "hash": str, "time": str, "prev_checkpoint": str,
                    "key_id": str, "signature": str}
_BLOCK = 64 * 1024
T = TypeVar("T")


class InvalidAuditArgumentError(IdGraphError):
    """An audit event or query is invalid; the message names the field, never its value."""

    status = "INVALID_ARGUMENT"


def canonical_json(obj: dict[str, Any]) -> str:
    """The one JSON form hashed and signed: sorted keys, no spaces, UTF-8 as is."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class AuditEvent:
    """What a caller records: an entry without its seq, time and chain. ``resource`` and
    ``resources`` name people only by keyed hash; ``before``/``after`` are hex hashes of a
    state (or ""); ``count`` reads of ``resources`` (batched reads)."""

    actor: str
    role: str
    action: str
    resource: str = ""
    region: str = ""
    request_id: str = ""
    outcome: str = "ok"
    reason: str = ""
    before: str = ""
    after: str = ""
    count: int = 1
    resources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.resources, str):
            raise InvalidAuditArgumentError("audit event: resources is a string, not a list")
        object.__setattr__(self, "resources", tuple(self.resources))
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name not in ("count", "resources") and not isinstance(value, str):
                raise InvalidAuditArgumentError(f"audit event: {f.name} is not a string")
        if not self.action:
            raise InvalidAuditArgumentError("audit event: action is empty")
        if self.outcome not in OUTCOMES:
            raise InvalidAuditArgumentError(f"audit event: outcome is not one of {OUTCOMES}")
        if type(self.count) is not int or self.count < 1:
            raise InvalidAuditArgumentError("audit event: count is not an integer >= 1")
        if len(self.resources) > MAX_RESOURCES or not all(
                isinstance(r, str) for r in self.resources):
            raise InvalidAuditArgumentError(
                f"audit event: resources is not a list of at most {MAX_RESOURCES} strings")
        for name in ("before", "after"):
            if getattr(self, name) and not _HEX_HASH.fullmatch(getattr(self, name)):
                raise InvalidAuditArgumentError(f"audit event: {name} is not a hex hash")


@dataclass(frozen=True)
class AuditEntry:
    """One line of ``audit.jsonl``: an :class:`AuditEvent` sealed into the chain."""

    seq: int
    time: str
    actor: str
    role: str
    action: str
    resource: str
    region: str
    request_id: str
    outcome: str
    reason: str
    before: str
    after: str
    count: int
    resources: tuple[str, ...]
    prev: str
    hash: str

    @classmethod
    def seal(cls, event: AuditEvent, seq: int, time: str, prev: str) -> AuditEntry:
        """The entry ``seq`` of ``event``, chained to ``prev`` and hashed."""
        body = {f.name: getattr(event, f.name) for f in fields(event)}
        body.update(seq=seq, time=time, prev=prev, resources=list(event.resources))
        return cls(**{**body, "resources": event.resources,
                      "hash": _sha256(canonical_json(body))})

    def body(self) -> dict[str, Any]:
        """Every key but ``hash``, as written (``resources`` a list)."""
        body = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "hash"}
        body["resources"] = list(self.resources)
        return body

    def computed_hash(self) -> str:
        """The hash this entry's content should carry."""
        return _sha256(canonical_json(self.body()))

    def to_json(self) -> str:
        """The line written (without its newline): canonical JSON of every key."""
        return canonical_json({**self.body(), "hash": self.hash})

    @classmethod
    def from_json(cls, line: str | bytes) -> AuditEntry:
        """Parse one line; ValueError (naming keys, never values) when it is not JSON, lacks
        or adds keys, or a value has the wrong type."""
        obj = _json_object(line)
        names = {f.name for f in fields(cls)}
        if set(obj) != names:
            missing = sorted(names - set(obj))
            raise ValueError(f"missing keys {missing}" if missing else
                             f"{len(set(obj) - names)} unexpected key(s)")
        for name in names:
            value = obj[name]
            if name in ("seq", "count"):
                if type(value) is not int or value < 1:
                    raise ValueError(f"{name} is not an integer >= 1")
            elif name == "resources":
                if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
                    raise ValueError("resources is not a list of strings")
            elif not isinstance(value, str):
                raise ValueError(f"{name} is not a string")
        return cls(**{**obj, "resources": tuple(obj["resources"])})


def _json_object(line: str | bytes) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("not JSON") from None
    if isinstance(obj, dict):
        return obj
    raise ValueError("not a JSON object")


def _parse_checkpoint(line: str | bytes | dict[str, Any]) -> dict[str, Any]:
    """A checkpoint line (or dict) checked for its keys and types; ValueError otherwise."""
    obj = dict(line) if isinstance(line, dict) else _json_object(line)
    if set(obj) != set(_CHECKPOINT_KEYS):
        raise ValueError(f"keys are not {sorted(_CHECKPOINT_KEYS)}")
    for name, kind in _CHECKPOINT_KEYS.items():
        if type(obj[name]) is not kind:
            raise ValueError(f"{name} is not {'an integer' if kind is int else 'a string'}")
    datetime.fromisoformat(obj["time"])  # ValueError when it is not a time
    return obj


# --- keys --------------------------------------------------------------------------------

def key_id(public_key: Ed25519PublicKey) -> str:
    """The first 16 hex digits of the SHA-256 of the raw public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_or_create_signing_key(path: str | PathLike[str]) -> Ed25519PrivateKey:
    """The Ed25519 key in ``path`` (PEM PKCS8, unencrypted), created ``0600`` with a fresh
    key when absent (two processes creating it at once use the one linked first); a key
    readable by others is narrowed to ``0600``. Its public half is written beside it as
    ``<path>.pub`` (PEM SubjectPublicKeyInfo). ConfigError naming the path when the file
    cannot be read or holds no Ed25519 private key."""
    path = Path(path)
    if not path.exists():
        _create_key_file(path)
    key = _load_pem(path, lambda data: serialization.load_pem_private_key(data, None),
                    Ed25519PrivateKey, "an unencrypted Ed25519 private key (PEM PKCS8)")
    make_private_file(path)
    pub = path.with_name(path.name + ".pub")
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    if not pub.exists() or pub.read_bytes() != pem:
        tmp = pub.with_name(f".{pub.name}.{os.getpid()}.{secrets.token_hex(4)}")
        try:
            tmp.write_bytes(pem)
            os.replace(tmp, pub)
        except OSError as exc:
            raise ConfigError(f"audit signing key: cannot write {str(pub)!r}: "
                              f"{exc.strerror}") from None
        finally:
            tmp.unlink(missing_ok=True)
    return key


def load_public_key(path: str | PathLike[str]) -> Ed25519PublicKey:
    """The Ed25519 public key in ``path`` (PEM SubjectPublicKeyInfo); ConfigError naming the
    path otherwise."""
    return _load_pem(Path(path), serialization.load_pem_public_key, Ed25519PublicKey,
                     "an Ed25519 public key (PEM)")


def _create_key_file(path: Path) -> None:
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):  # another process made it first
            os.link(tmp, path)
    except OSError as exc:
        raise ConfigError(f"audit signing key: cannot create {str(path)!r}: "
                          f"{exc.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)


def _load_pem(path: Path, load: Callable[[bytes], Any], kind: type, what: str) -> Any:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"audit key: cannot read {str(path)!r}: {exc.strerror}") from None
    try:
        key = load(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        key = None
    if not isinstance(key, kind):
        raise ConfigError(f"audit key: {str(path)!r} does not hold {what}")
    return key


def _signed_checkpoint(key: Ed25519PrivateKey, seq: int, entry_hash: str, stamp: str,
                       prev: str) -> dict[str, Any]:
    cp = {"seq": seq, "hash": entry_hash, "time": stamp, "prev_checkpoint": prev,
          "key_id": key_id(key.public_key())}
    signature = key.sign(canonical_json(cp).encode("utf-8"))
    return {**cp, "signature": base64.b64encode(signature).decode("ascii")}


def _signature_ok(cp: dict[str, Any], public_key: Ed25519PublicKey) -> bool:
    signed = {k: v for k, v in cp.items() if k != "signature"}
    try:
        public_key.verify(base64.b64decode(cp["signature"], validate=True),
                          canonical_json(signed).encode("utf-8"))
    except (InvalidSignature, ValueError):
        return False
    return True


# --- files -------------------------------------------------------------------------------

def _line_start(fd: int, size: int) -> int:
    """Offset of the last line of the first ``size`` bytes (just after the last newline)."""
    end = size
    while end > 0:
        start = max(0, end - _BLOCK)
        cut = os.pread(fd, end - start, start).rfind(b"\n")
        if cut >= 0:
            return start + cut + 1
        end = start
    return 0


def _last_parsed(fd: int, size: int, parse: Callable[[bytes], T]) -> T | None:
    """The last line of the first ``size`` bytes that ``parse`` accepts, or None."""
    end = size
    while end > 0:
        start = _line_start(fd, end - 1) if end > 1 else 0
        raw = os.pread(fd, end - start, start).rstrip(b"\n")
        with contextlib.suppress(ValueError):
            return parse(raw)
        end = start
    return None


def _repair_torn_tail(fd: int, path: Path, parse: Callable[[bytes], Any]) -> None:
    """Remove an incomplete last line (no newline) that does not parse; one that parses
    gets its newline. The caller holds the lock."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    start = _line_start(fd, size)
    try:
        parse(os.pread(fd, size - start, start))
    except ValueError:
        os.ftruncate(fd, start)
        os.fsync(fd)
        logger.warning("audit log: removed an incomplete last line of %s (%d bytes, no "
                       "newline): a writer stopped mid-write", path, size - start)
        return
    _append_durably(fd, b"\n", size)


def _append_durably(fd: int, data: bytes, size_before: int) -> None:
    """One ``write`` (more only if the system writes less) and one ``fsync``; on failure
    the file is cut back to ``size_before``, so a batch is written whole or not at all."""
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size_before)
        raise


class AuditLog:
    """Appends entries to ``<directory>/audit.jsonl`` and signs checkpoints (module
    docstring). Thread-safe; other processes may append to the same directory. ``clock``
    returns seconds since the epoch (entry times and checkpoint timing; with no checkpoint
    yet, ``checkpoint_seconds`` count from when this log was opened)."""

    def __init__(self, directory: str | PathLike[str], signing_key: Ed25519PrivateKey, *,
                 checkpoint_every: int = 1000, checkpoint_seconds: float = 60.0,
                 clock: Callable[[], float] = time.time) -> None:
        if checkpoint_every < 1 or checkpoint_seconds <= 0:
            raise ConfigError("auth.audit_checkpoint_every must be >= 1 and "
                              "auth.audit_checkpoint_seconds > 0")
        self.directory = make_private_dir(directory)
        self._key, self._every, self._seconds, self._clock = (
            signing_key, checkpoint_every, checkpoint_seconds, clock)
        self._mutex = threading.Lock()  # flock does not exclude threads sharing one fd
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT
        self._log_fd = open_private_fd(self.directory / LOG_FILE, flags)
        try:
            self._cp_fd = open_private_fd(self.directory / CHECKPOINT_FILE, flags)
        except BaseException:
            os.close(self._log_fd)
            raise
        self._log_tail: tuple[int, int, str] = (-1, 0, GENESIS)  # size, seq, hash
        self._cp_tail: tuple[int, int, str, float] = (-1, 0, GENESIS, 0.0)  # +line hash, time
        self._opened = clock()
        self._closed = False
        with self._mutex, self._flocked():
            _repair_torn_tail(self._log_fd, self.directory / LOG_FILE, AuditEntry.from_json)
            _repair_torn_tail(self._cp_fd, self.directory / CHECKPOINT_FILE,
                              _parse_checkpoint)

    def append(self, event: AuditEvent) -> AuditEntry:
        """Append one event; returns its entry (written and fsynced)."""
        return self.append_many([event])[0]

    def append_many(self, events: Iterable[AuditEvent]) -> list[AuditEntry]:
        """Append events in order as one write and one fsync, all or none; then write a
        checkpoint if one is due. Returns the entries."""
        events = list(events)
        if not all(isinstance(e, AuditEvent) for e in events):
            raise InvalidAuditArgumentError("audit log: append takes AuditEvent objects")
        if not events:
            return []
        with self._mutex, self._flocked():
            seq, prev = self._entries_tail()
            size, stamp, entries = self._log_tail[0], _iso(self._clock()), []
            for event in events:
                seq += 1
                entries.append(AuditEntry.seal(event, seq, stamp, prev))
                prev = entries[-1].hash
            data = "".join(e.to_json() + "\n" for e in entries).encode("utf-8")
            _append_durably(self._log_fd, data, size)
            self._log_tail = (size + len(data), seq, prev)
            self._checkpoint(force=False)
        return entries

    def checkpoint_if_due(self) -> dict[str, Any] | None:
        """Write a checkpoint when one is due (for a caller's timer); returns it or None."""
        with self._mutex, self._flocked():
            self._entries_tail()
            return self._checkpoint(force=False)

    def close(self) -> None:
        """Write the final checkpoint (if any entry is not covered) and close the files.
        Closing twice does nothing."""
        with self._mutex:
            if self._closed:
                return
            try:
                with self._flocked():
                    self._entries_tail()
                    self._checkpoint(force=True)
            finally:
                self._closed = True
                os.close(self._cp_fd)
                os.close(self._log_fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _flocked(self) -> Iterator[None]:
        if self._closed:
            raise ConfigError(f"audit log {self.directory} is closed")
        fcntl.flock(self._log_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._log_fd, fcntl.LOCK_UN)

    def _entries_tail(self) -> tuple[int, str]:
        """(seq, hash) of the last entry, re-read only when the file changed size."""
        if os.fstat(self._log_fd).st_size != self._log_tail[0]:
            path = self.directory / LOG_FILE
            _repair_torn_tail(self._log_fd, path, AuditEntry.from_json)
            size = os.fstat(self._log_fd).st_size
            last = _last_parsed(self._log_fd, size, AuditEntry.from_json)
            self._log_tail = (size, last.seq, last.hash) if last else (size, 0, GENESIS)
        return self._log_tail[1], self._log_tail[2]

    def _checkpoint_tail(self) -> tuple[int, str, float]:
        """(seq, line hash, time) of the last checkpoint; (0, GENESIS, opened) for none."""
        size = os.fstat(self._cp_fd).st_size
        if size != self._cp_tail[0]:
            _repair_torn_tail(self._cp_fd, self.directory / CHECKPOINT_FILE,
                              _parse_checkpoint)
            size = os.fstat(self._cp_fd).st_size
            cp = _last_parsed(self._cp_fd, size, _parse_checkpoint)
            self._cp_tail = (size, 0, GENESIS, self._opened) if cp is None else (
                size, cp["seq"], _sha256(canonical_json(cp)),
                datetime.fromisoformat(cp["time"]).timestamp())
        return self._cp_tail[1:]

    def _checkpoint(self, force: bool) -> dict[str, Any] | None:
        """Sign the last entry if it is not covered and (``force`` or) one is due."""
        _, seq, entry_hash = self._log_tail
        cp_seq, cp_hash, cp_time = self._checkpoint_tail()
        now = self._clock()
        if seq <= cp_seq or not (force or seq - cp_seq >= self._every
                                 or now - cp_time >= self._seconds):
            return None
        cp = _signed_checkpoint(self._key, seq, entry_hash, _iso(now), cp_hash)
        line = canonical_json(cp)
        size = self._cp_tail[0]
        _append_durably(self._cp_fd, (line + "\n").encode("utf-8"), size)
        self._cp_tail = (size + len(line.encode("utf-8")) + 1, seq, _sha256(line), now)
        return cp


# --- verification ------------------------------------------------------------------------

@dataclass(frozen=True)
class AuditProblem:
    """One thing wrong: ``kind`` (one of :data:`PROBLEM_KINDS`), where (``file``, its
    1-based ``line``, 0 for the anchor; ``seq`` of the entry concerned, for ``deleted`` and
    ``truncated`` the first missing one) and a ``message`` saying both."""

    line: int
    seq: int | None
    kind: str
    message: str
    file: str = LOG_FILE


@dataclass
class AuditReport:
    """What :func:`verify` found: ``entries`` read, ``checkpoints`` whose signature holds,
    ``unsigned_tail`` entries after the last of them, and every problem."""

    ok: bool
    entries: int
    checkpoints: int
    unsigned_tail: int
    problems: list[AuditProblem] = field(default_factory=list)
    directory: str = ""

    def text(self) -> str:
        """The report for a terminal: a verdict, the counts, one line per problem."""
        verdict = "OK" if self.ok else f"{len(self.problems)} problem(s) found"
        lines = [f"audit log {self.directory}: {verdict}",
                 (f"  {self.entries} entries, {self.checkpoints} signed checkpoints, "
                  f"{self.unsigned_tail} entries after the last checkpoint (not yet signed)")]
        lines += [f"  [{p.kind}] {p.message}" for p in self.problems]
        return "\n".join(lines)


@dataclass
class _Gap:
    line: int  # the line after the gap, and its seq
    seq: int
    missing: range
    after: tuple[int, int]  # line and seq of the entry before the gap
    moved: dict[int, int] = field(default_factory=dict)  # a missing seq found later: its line


class _EntryScan:
    """Checks ``audit.jsonl`` line by line. After each problem it re-anchors on the line
    read, so one problem does not hide the next; a seq missing at a gap and found later
    makes the gap a reordering, not a deletion."""

    def __init__(self, wanted: set[int], signed_upto: int) -> None:
        self.wanted, self.signed_upto = wanted, signed_upto
        self.problems: list[AuditProblem] = []
        self.found: dict[int, tuple[int, str]] = {}  # wanted seq -> line, hash
        self.entries = self.unsigned = self.lines = self.max_seq = self.max_seq_line = 0
        self.last: tuple[int, int, str] = (0, 0, GENESIS)  # line, seq, hash chained to
        self.chained = True  # False after a malformed line: the next entry re-anchors
        self.gaps: list[_Gap] = []

    def feed(self, no: int, raw: bytes, terminated: bool) -> None:
        self.lines = no
        try:
            entry = AuditEntry.from_json(raw)
        except ValueError as exc:
            why = ("it is incomplete (no newline): a writer stopped mid-write; opening the "
                   "log repairs it") if not terminated else str(exc)
            self.problems.append(AuditProblem(no, None, "malformed",
                                              f"line {no}: not an audit entry: {why}"))
            self.chained = False
            return
        self.entries += 1
        self.unsigned += entry.seq > self.signed_upto
        if entry.seq in self.wanted:
            self.found.setdefault(entry.seq, (no, entry.hash))
        if entry.seq > self.max_seq:
            self.max_seq, self.max_seq_line = entry.seq, no
        self._chain(no, entry)

    def _chain(self, no: int, e: AuditEntry) -> None:
        last_line, last_seq, last_hash = self.last
        where = f"line {no} (seq {e.seq})"
        if e.computed_hash() != e.hash:
            self._add(no, e.seq, "edited",
                      f"{where}: hash does not match its content: the entry was edited")
            # its seq may be the edited field: it takes the place of the next one
            self.last = (no, last_seq + 1 if self.chained else e.seq, e.hash)
            self.chained = True
            return
        if e.seq <= last_seq:  # a seq missing at a gap before: moved, else repeated
            gap = next((g for g in self.gaps if e.seq in g.missing and e.seq not in g.moved),
                       None)
            if gap is not None:
                gap.moved[e.seq] = no
                return
            self._add(no, e.seq, "reordered", f"{where}: seq goes backwards after line "
                      f"{last_line} (seq {last_seq}): entries were reordered or repeated")
            return
        if e.seq > last_seq + 1 and self.chained:
            self.gaps.append(_Gap(no, e.seq, range(last_seq + 1, e.seq), (last_line, last_seq)))
        elif self.chained and e.prev != last_hash and last_seq == 0:
            self._add(no, e.seq, "edited", f"{where}: prev is not the genesis hash: the "
                      "first entry was replaced")
        elif self.chained and e.prev != last_hash:
            self._add(last_line, last_seq, "edited", f"line {last_line} (seq {last_seq}): "
                      f"its hash is not the one line {no} (seq {e.seq}) chains to: the entry "
                      "was replaced, or edited and its hash recomputed")
        self.last, self.chained = (no, e.seq, e.hash), True

    def finish(self) -> None:
        """Report each gap: missing seqs found later were reordered, the others deleted."""
        for g in self.gaps:
            where = f"line {g.line} (seq {g.seq})"
            if g.moved:
                seq, line = min(g.moved.items(), key=lambda item: item[1])
                self._add(g.line, g.seq, "reordered", f"{where}: comes before seq {seq} "
                          f"(line {line}): entries were reordered")
            left = len(g.missing) - len(g.moved)
            if left:
                first = next(s for s in g.missing if s not in g.moved)
                last = next(s for s in reversed(g.missing) if s not in g.moved)
                what = (f"seq {first} is missing" if left == 1 else
                        f"{left} entries (seq {first} to {last}) are missing")
                self._add(g.line, first, "deleted", f"{where}: {what} after line {g.after[0]} "
                          f"(seq {g.after[1]}): {'the entry was' if left == 1 else 'were'} "
                          "deleted")

    def _add(self, line: int, seq: int | None, kind: str, message: str) -> None:
        self.problems.append(AuditProblem(line, seq, kind, message))


def verify(directory: str | PathLike[str], public_key: Ed25519PublicKey | str | PathLike[str],
           *, anchor: dict[str, Any] | None = None) -> AuditReport:
    """Check the log in ``directory`` against ``public_key`` (a key or a PEM file): every
    entry's hash, the chain, every checkpoint's signature and chain, that each checkpoint
    matches the entry it covers, and (``anchor``: a checkpoint kept off host, see
    :func:`latest_checkpoint`) that the log reaches and matches it. Reads the files as
    they were when called (writers may go on). ConfigError if ``directory`` is missing."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(f"audit log: {str(directory)!r} is not a directory")
    if not isinstance(public_key, Ed25519PublicKey):
        public_key = load_public_key(public_key)
    log_size, cp_size = _snapshot_sizes(directory)
    problems: list[AuditProblem] = []
    valid = _check_checkpoints(_lines(directory / CHECKPOINT_FILE, cp_size), public_key,
                               problems)
    wanted = {cp["seq"] for _, cp in valid}
    scan = _EntryScan(wanted | _anchor_seq(anchor), max(wanted, default=0))
    for no, raw, terminated in _lines(directory / LOG_FILE, log_size):
        scan.feed(no, raw, terminated)
    scan.finish()
    problems += scan.problems + _match_checkpoints(valid, scan)
    if anchor is not None:
        problems += _check_anchor(anchor, public_key, scan)
    order = {LOG_FILE: 0, CHECKPOINT_FILE: 1, "anchor": 2}
    problems.sort(key=lambda p: (order[p.file], p.line))
    return AuditReport(not problems, scan.entries, len(valid), scan.unsigned, problems,
                       str(directory))


def _snapshot_sizes(directory: Path) -> tuple[int, int]:
    """Both files' sizes, read under a shared lock: writers append under an exclusive one,
    so the first bytes up to these sizes are consistent with each other."""
    def size(path: Path) -> int:
        return path.stat().st_size if path.exists() else 0

    try:
        fd = os.open(directory / LOG_FILE, os.O_RDONLY)
    except FileNotFoundError:
        return 0, size(directory / CHECKPOINT_FILE)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        return os.fstat(fd).st_size, size(directory / CHECKPOINT_FILE)
    finally:
        os.close(fd)  # releases the lock


def _lines(path: Path, size: int) -> Iterator[tuple[int, bytes, bool]]:
    """(1-based line number, line without its newline, whether it had one) of the first
    ``size`` bytes of ``path``."""
    if size <= 0:
        return
    with open(path, "rb") as f:
        for no, raw in enumerate(f, 1):
            raw = raw[:size]
            size -= len(raw)
            terminated = raw.endswith(b"\n")
            yield no, raw[:-1] if terminated else raw, terminated
            if size <= 0:
                return


def _check_checkpoints(lines: Iterable[tuple[int, bytes, bool]], public_key: Ed25519PublicKey,
                       problems: list[AuditProblem]) -> list[tuple[int, dict[str, Any]]]:
    """Checkpoints whose signature holds, with their line; problems for the others and
    for a broken chain (a checkpoint deleted or edited before a good one)."""
    valid: list[tuple[int, dict[str, Any]]] = []
    prev, chained, kid, foreign = GENESIS, True, key_id(public_key), set()

    def add(no: int, seq: int | None, kind: str, message: str) -> None:
        problems.append(AuditProblem(no, seq, kind, f"{CHECKPOINT_FILE} line {no}"
                                     f"{'' if seq is None else f' (seq {seq})'}: {message}",
                                     CHECKPOINT_FILE))

    for no, raw, _ in lines:
        try:
            cp = _parse_checkpoint(raw)
        except ValueError as exc:
            add(no, None, "malformed", f"not a checkpoint: {exc}")
            chained = False
            continue
        if _signature_ok(cp, public_key):
            if chained and cp["prev_checkpoint"] != prev:
                add(no, cp["seq"], "bad_signature", "does not chain to the checkpoint before "
                    "it: a checkpoint was deleted or edited")
            valid.append((no, cp))
            chained = True
        else:
            if cp["key_id"] == kid:
                add(no, cp["seq"], "bad_signature", "signature does not verify: the "
                    "checkpoint was edited")
            elif cp["key_id"] not in foreign:  # once per key: a wrong key fails every line
                foreign.add(cp["key_id"])
                add(no, cp["seq"], "bad_signature", f"signed by key {cp['key_id']}, not by "
                    f"the given key {kid}: a wrong public key, or a forged checkpoint")
            chained = False
        prev = _sha256(canonical_json(cp))
    return valid


def _match_checkpoints(valid: list[tuple[int, dict[str, Any]]], scan: _EntryScan,
                       file: str = CHECKPOINT_FILE) -> list[AuditProblem]:
    """The first checkpoint not matching its entry (entries rewritten with their hashes
    recomputed), and the highest one beyond the end of the log (truncated). ``file`` is
    ``"anchor"`` for a checkpoint kept off host (its line is 0)."""
    def where(no: int) -> str:
        return "the anchor" if file == "anchor" else f"{file} line {no}"

    problems = []
    matching = [(no, cp["seq"], scan.found[cp["seq"]][1] == cp["hash"])
                for no, cp in valid if cp["seq"] in scan.found]
    bad = [(no, seq) for no, seq, same in matching if not same]
    if bad:
        no, seq = bad[0]
        since = max((s for n, s, same in matching if same and n < no), default=0)
        more = f" (and {len(bad) - 1} later checkpoint(s))" if len(bad) > 1 else ""
        problems.append(AuditProblem(
            no, seq, "checkpoint_mismatch", f"{where(no)} (seq {seq}): the signed hash does "
            f"not match {LOG_FILE} line {scan.found[seq][0]} (seq {seq}){more}: entries "
            f"{f'after seq {since} ' if since else ''}up to seq {seq} were rewritten", file))
    beyond = [(cp["seq"], no) for no, cp in valid if cp["seq"] > scan.max_seq]
    if beyond:
        seq, no = max(beyond)
        problems.append(AuditProblem(
            no if file == "anchor" else scan.lines + 1, scan.max_seq + 1, "truncated",
            f"{LOG_FILE} ends at seq {scan.max_seq} (line {scan.max_seq_line}) but "
            f"{where(no)} covers seq {seq}: the log was truncated (seq {scan.max_seq + 1} "
            f"to {seq} are missing)", LOG_FILE if file != "anchor" else file))
    return problems


def _anchor_seq(anchor: dict[str, Any] | None) -> set[int]:
    seq = anchor.get("seq") if isinstance(anchor, dict) else None
    return {seq} if type(seq) is int else set()


def _check_anchor(anchor: dict[str, Any], public_key: Ed25519PublicKey,
                  scan: _EntryScan) -> list[AuditProblem]:
    """The log must reach the anchor (a checkpoint kept off host) and match it."""
    try:
        cp = _parse_checkpoint(anchor)
    except (ValueError, TypeError) as exc:
        return [AuditProblem(0, None, "malformed", f"anchor: not a checkpoint: {exc}",
                             "anchor")]
    if not _signature_ok(cp, public_key):
        return [AuditProblem(0, cp["seq"], "bad_signature", f"the anchor (seq {cp['seq']}): "
                             "signature does not verify with the given key", "anchor")]
    return _match_checkpoints([(0, cp)], scan, "anchor")


def latest_checkpoint(directory: str | PathLike[str]) -> dict[str, Any] | None:
    """The last checkpoint of ``directory`` as a dict (keep it off host and pass it to
    ``verify(..., anchor=...)`` later); None when there is none."""
    try:
        fd = os.open(Path(directory) / CHECKPOINT_FILE, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        return _last_parsed(fd, os.fstat(fd).st_size, _parse_checkpoint)
    finally:
        os.close(fd)


def read_entries(directory: str | PathLike[str], *, after_seq: int = 0, limit: int = 100,
                 action: str | None = None, actor: str | None = None) -> list[AuditEntry]:
    """Up to ``limit`` (1 to 10,000) entries with seq above ``after_seq``, in log order,
    of one ``action`` and ``actor`` when given (exact matches): pass the last seq returned
    as ``after_seq`` for the next page. Lines that do not parse are skipped (:func:`verify`
    reports them). Reads from the start of the file. ConfigError if ``directory`` is
    missing; no entries yet: []."""
    if not 1 <= limit <= MAX_PAGE or after_seq < 0:
        raise InvalidAuditArgumentError(f"audit log: limit must be 1 to {MAX_PAGE} and "
                                        "after_seq >= 0")
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(f"audit log: {str(directory)!r} is not a directory")
    page: list[AuditEntry] = []
    for _, raw, terminated in _lines(directory / LOG_FILE, _snapshot_sizes(directory)[0]):
        try:
            entry = AuditEntry.from_json(raw) if terminated else None
        except ValueError:
            continue
        if entry is None or entry.seq <= after_seq or action not in (None, entry.action) \
                or actor not in (None, entry.actor):
            continue
        page.append(entry)
        if len(page) == limit:
            break
    return page


# --- the in-process buffer ---------------------------------------------------------------

@dataclass
class _Reads:
    """The reads of one (actor, role, action, region, outcome) since the last flush."""

    key: tuple[str, str, str, str, str]
    counts: dict[str, int] = field(default_factory=dict)  # resource -> reads
    request_id: str | None = None  # the reads' request ID while they share one, else ""

    def add(self, resource: str, request_id: str) -> None:
        self.counts[resource] = self.counts.get(resource, 0) + 1
        self.request_id = request_id if self.request_id in (None, request_id) else ""

    def events(self) -> list[AuditEvent]:
        """One event per MAX_RESOURCES distinct resources (sorted), counting their reads."""
        actor, role, action, region, outcome = self.key
        names = sorted(self.counts)
        chunks = [names[i:i + MAX_RESOURCES] for i in range(0, len(names), MAX_RESOURCES)]
        return [AuditEvent(actor, role, action, chunk[0] if len(chunk) == 1 else "", region,
                           self.request_id or "", outcome,
                           count=sum(self.counts[r] for r in chunk), resources=tuple(chunk))
                for chunk in chunks]


class AuditBuffer:
    """Buffers audit events in memory for an :class:`AuditLog`: recording is O(1) and
    never waits on disk. A daemon thread writes them every ``flush_seconds`` (sooner once
    ``max_pending`` records wait) and calls :meth:`AuditLog.checkpoint_if_due`. Reads are
    aggregated into one entry per (actor, role, action, region, outcome) per flush, with
    ``count`` reads of ``resources`` (distinct, sorted, at most MAX_RESOURCES per entry).
    A failed write is logged (no entry content) and retried at the next flush; while the
    log cannot be written, at most ``100 * max_pending`` records wait and later ones are
    counted and written as one ``audit.dropped`` entry."""

    def __init__(self, log: AuditLog, flush_seconds: float = 1.0,
                 max_pending: int = 1000) -> None:
        if flush_seconds <= 0 or max_pending < 1:
            raise ConfigError("auth.audit_flush_seconds must be > 0 and max_pending >= 1")
        self._log, self._flush_seconds, self._max_pending = log, flush_seconds, max_pending
        self._lock = threading.Lock()  # guards what records touch
        self._flush_lock = threading.Lock()  # one flush at a time, in order
        self._pending: list[AuditEvent | _Reads] = []
        self._groups: dict[tuple[str, str, str, str, str], _Reads] = {}
        self._records = self._dropped = 0
        self._unwritten: list[AuditEvent] = []  # a failed flush's events, written first
        self._closed = False
        self._wake, self._stopping = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-buffer", daemon=True)
        self._thread.start()

    def record_read(self, actor: str, role: str, action: str, resource: str, region: str,
                    request_id: str = "", outcome: str = "ok") -> None:
        """Note one read of ``resource`` (a keyed hash for a person)."""
        key = (actor, role, action, region, outcome)
        with self._lock:
            if self._accepting():
                group = self._groups.get(key)
                if group is None:
                    group = self._groups[key] = _Reads(key)
                    self._pending.append(group)
                group.add(resource, request_id)

    def record(self, event: AuditEvent) -> None:
        """Note an ordinary event, written at the next flush in the order recorded."""
        with self._lock:
            if self._accepting():
                self._pending.append(event)

    def flush(self) -> int:
        """Write everything recorded so far (synchronously); returns the entries written.
        The log's error is raised, the events kept for the next flush."""
        with self._flush_lock:
            with self._lock:
                pending, self._pending, self._groups = self._pending, [], {}
                events, self._unwritten = self._unwritten, []
                dropped, self._dropped, self._records = self._dropped, 0, 0
            for item in pending:
                events += item.events() if isinstance(item, _Reads) else [item]
            if dropped:
                events.append(AuditEvent("audit", "system", "audit.dropped", outcome="failed",
                                         reason="the audit buffer was full", count=dropped))
            if not events:
                return 0
            try:
                self._log.append_many(events)
            except BaseException:
                with self._lock:
                    self._unwritten = events + self._unwritten
                raise
            return len(events)

    def close(self) -> None:
        """Stop the thread, flush (raising the log's error) and close the log, which
        writes its final checkpoint. Later records are dropped; closing twice does nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stopping.set()
        self._wake.set()
        self._thread.join()
        try:
            self.flush()
        finally:
            self._log.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accepting(self) -> bool:
        """Count one record, waking the thread at max_pending; False (dropped) when closed
        or full. The caller holds the lock."""
        if self._closed:
            return False
        if self._records + len(self._unwritten) >= 100 * self._max_pending:
            self._dropped += 1
            return False
        self._records += 1
        if self._records == self._max_pending:
            self._wake.set()
        return True

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._flush_seconds)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self.flush()
                self._log.checkpoint_if_due()
            except Exception as exc:  # noqa: BLE001 -- logged and retried, never into a request
                detail = f": {exc.strerror}" if isinstance(exc, OSError) else ""
                logger.error("audit buffer: writing %s failed (%s%s); retrying in %.1f s",
                             self._log.directory, type(exc).__name__, detail,
                             self._flush_seconds)
