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
* :func:`~idgraph.auth.audit_check.verify` checks a directory against the public key and reports every problem it
  finds with its file, line and seq; :func:`~idgraph.auth.audit_check.read_entries` pages the log for admins.

The module holds the format, the keys and the writer (:class:`AuditLog`);
:mod:`idgraph.auth.audit_check` verifies and reads a log, :mod:`idgraph.auth.audit_buffer`
batches reads in process.

Threat model
------------
Local verification catches an entry edited, deleted or reordered by hand (its hash or the
chain no longer holds), entries covered by a checkpoint rewritten with every later hash
recomputed (``checkpoint_mismatch``), a log cut below its last checkpoint
(``truncated``), and an edited or deleted checkpoint line other than the last. It does
not catch a local attacker who rewrites both files consistently after the last
checkpoint, or deletes the tail of both files past the last checkpoint
(:attr:`~idgraph.auth.audit_check.AuditReport.unsigned_tail` counts the entries so exposed), nor one who can read
the signing key, which lives on the host beside the writers (owner only) and so lets
them re-sign a rewritten history. Hence: ship checkpoints off host
(:func:`~idgraph.auth.audit_check.latest_checkpoint`, e.g. to write-once storage every few minutes) and pass the
last one kept as ``verify(..., anchor=...)``: the log must still reach it and match it
(``truncated`` or ``checkpoint_mismatch`` otherwise). Entries still in an
:class:`~idgraph.auth.audit_buffer.AuditBuffer` when its process dies (at most ``flush_seconds`` of reads) are lost.
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
from dataclasses import dataclass, fields
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


def sha256_hex(text: str) -> str:
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
                      "hash": sha256_hex(canonical_json(body))})

    def body(self) -> dict[str, Any]:
        """Every key but ``hash``, as written (``resources`` a list)."""
        body = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "hash"}
        body["resources"] = list(self.resources)
        return body

    def computed_hash(self) -> str:
        """The hash this entry's content should carry."""
        return sha256_hex(canonical_json(self.body()))

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


def parse_checkpoint(line: str | bytes | dict[str, Any]) -> dict[str, Any]:
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


def signature_ok(cp: dict[str, Any], public_key: Ed25519PublicKey) -> bool:
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


def last_parsed(fd: int, size: int, parse: Callable[[bytes], T]) -> T | None:
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
                              parse_checkpoint)

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
            last = last_parsed(self._log_fd, size, AuditEntry.from_json)
            self._log_tail = (size, last.seq, last.hash) if last else (size, 0, GENESIS)
        return self._log_tail[1], self._log_tail[2]

    def _checkpoint_tail(self) -> tuple[int, str, float]:
        """(seq, line hash, time) of the last checkpoint; (0, GENESIS, opened) for none."""
        size = os.fstat(self._cp_fd).st_size
        if size != self._cp_tail[0]:
            _repair_torn_tail(self._cp_fd, self.directory / CHECKPOINT_FILE,
                              parse_checkpoint)
            size = os.fstat(self._cp_fd).st_size
            cp = last_parsed(self._cp_fd, size, parse_checkpoint)
            self._cp_tail = (size, 0, GENESIS, self._opened) if cp is None else (
                size, cp["seq"], sha256_hex(canonical_json(cp)),
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
        self._cp_tail = (size + len(line.encode("utf-8")) + 1, seq, sha256_hex(line), now)
        return cp

