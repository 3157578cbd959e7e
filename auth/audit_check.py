"""Checking and reading the audit log (:mod:`idgraph.auth.audit` states the contract and
the threat model): :func:`verify`, :func:`latest_checkpoint`, :func:`read_entries`."""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PublicKey,
)

from idgraph.auth.audit import (
    CHECKPOINT_FILE,
    GENESIS,
    LOG_FILE,
    MAX_PAGE,
    AuditEntry,
    InvalidAuditArgumentError,
    canonical_json,
    key_id,
    last_parsed,
    load_public_key,
    parse_checkpoint,
    sha256_hex,
    signature_ok,
)
from idgraph.core.errors import ConfigError

logger = logging.getLogger(__name__)


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
            cp = parse_checkpoint(raw)
        except ValueError as exc:
            add(no, None, "malformed", f"not a checkpoint: {exc}")
            chained = False
            continue
        if signature_ok(cp, public_key):
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
        prev = sha256_hex(canonical_json(cp))
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
        cp = parse_checkpoint(anchor)
    except (ValueError, TypeError) as exc:
        return [AuditProblem(0, None, "malformed", f"anchor: not a checkpoint: {exc}",
                             "anchor")]
    if not signature_ok(cp, public_key):
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
        return last_parsed(fd, os.fstat(fd).st_size, parse_checkpoint)
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
