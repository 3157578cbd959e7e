"""The audit log (idgraph.auth.audit): a hash chain with signed checkpoints every N entries
and every T seconds, appended by several processes at once; verify names the kind and line
of each tampering (files edited by hand here, as an attacker would); an anchor kept off
host catches what local verification cannot; the buffer aggregates reads and survives a
failing disk; a torn last line is repaired; every file is owner-only."""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import logging
import os
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from idgraph.auth.audit import (
    CHECKPOINT_FILE,
    GENESIS,
    LOG_FILE,
    AuditEvent,
    AuditLog,
    InvalidAuditArgumentError,
    load_or_create_signing_key,
    load_public_key,
)
from idgraph.auth.audit_buffer import AuditBuffer
from idgraph.auth.audit_check import latest_checkpoint, read_entries, verify
from idgraph.core.errors import ConfigError

ENTRY_KEYS = {"seq", "time", "actor", "role", "action", "resource", "region", "request_id",
              "outcome", "reason", "before", "after", "count", "resources", "prev", "hash"}


def canonical(obj: dict) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def event(i: int = 0, **fields: object) -> AuditEvent:
    values = {"actor": "key:ab12cd34ef56", "role": "steward", "action": "segment.updated",
              "resource": f"segment:{i}", "region": "eu", "request_id": f"req-{i}"}
    return AuditEvent(**{**values, **fields})


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def edit_lines(path: Path, edit: Callable[[list[str]], list[str]]) -> None:
    """Rewrite the file by hand, as an attacker with write access would."""
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("".join(line + "\n" for line in edit(lines)), encoding="utf-8")


def write_rows(path: Path, objs: list[dict]) -> None:
    path.write_text("".join(json.dumps(o) + "\n" for o in objs), encoding="utf-8")


def rehash(entry: dict) -> None:
    entry["hash"] = sha256(canonical({k: v for k, v in entry.items() if k != "hash"}))


def found(report) -> list[tuple]:
    return [(p.kind, p.file, p.line, p.seq) for p in report.problems]


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def key_path(tmp_path) -> Path:
    return tmp_path / "keys" / "audit.key"


@pytest.fixture
def key(key_path) -> Ed25519PrivateKey:
    return load_or_create_signing_key(key_path)


@pytest.fixture
def logdir(tmp_path, key) -> Path:
    """Nine entries, checkpoints at seq 3, 6 and 9."""
    directory = tmp_path / "audit"
    with AuditLog(directory, key, checkpoint_every=3, checkpoint_seconds=3600) as log:
        for i in range(1, 10):
            log.append(event(i))
    assert [c["seq"] for c in rows(directory / CHECKPOINT_FILE)] == [3, 6, 9]
    return directory


# --- writing -----------------------------------------------------------------------------

def test_entries_chain_and_a_checkpoint_is_signed_every_n_entries(tmp_path, key):
    directory = tmp_path / "audit"
    log = AuditLog(directory, key, checkpoint_every=3, checkpoint_seconds=3600)
    for i in range(1, 8):
        log.append(event(i))
    assert [c["seq"] for c in rows(directory / CHECKPOINT_FILE)] == [3, 6]
    assert log.checkpoint_if_due() is None
    log.close()
    log.close()

    entries = rows(directory / LOG_FILE)
    assert [e["seq"] for e in entries] == list(range(1, 8))
    prev = GENESIS
    for entry in entries:
        assert set(entry) == ENTRY_KEYS
        assert entry["prev"] == prev
        assert entry["hash"] == sha256(canonical({k: v for k, v in entry.items()
                                                  if k != "hash"}))
        prev = entry["hash"]

    public = key.public_key()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    checkpoints = rows(directory / CHECKPOINT_FILE)
    assert [c["seq"] for c in checkpoints] == [3, 6, 7]  # the last one written by close()
    prev = GENESIS
    for cp in checkpoints:
        assert cp["hash"] == entries[cp["seq"] - 1]["hash"]
        assert cp["prev_checkpoint"] == prev
        assert cp["key_id"] == hashlib.sha256(raw).hexdigest()[:16]
        signed = {k: v for k, v in cp.items() if k != "signature"}
        public.verify(base64.b64decode(cp["signature"]), canonical(signed).encode("utf-8"))
        prev = sha256(canonical(cp))

    AuditLog(directory, key).close()  # nothing appended since: no checkpoint
    assert len(rows(directory / CHECKPOINT_FILE)) == 3


def test_append_many_is_one_write_and_one_fsync(tmp_path, key, monkeypatch):
    log = AuditLog(tmp_path / "audit", key)
    writes, syncs = [], []
    real_write, real_fsync = os.write, os.fsync
    monkeypatch.setattr(os, "write", lambda fd, data: writes.append(fd) or real_write(fd, data))
    monkeypatch.setattr(os, "fsync", lambda fd: syncs.append(fd) or real_fsync(fd))
    entries = log.append_many(event(i) for i in range(5))
    monkeypatch.undo()
    log.close()
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert (len(writes), len(syncs)) == (1, 1)


def test_an_unchanged_log_is_not_read_again_before_an_append(tmp_path, key, monkeypatch):
    log = AuditLog(tmp_path / "audit", key)
    log.append(event(1))
    reads = []
    real_pread = os.pread
    monkeypatch.setattr(os, "pread", lambda *a: reads.append(a) or real_pread(*a))
    log.append(event(2))
    monkeypatch.undo()
    log.close()
    assert reads == []


def test_a_failed_write_leaves_no_partial_batch(tmp_path, key, monkeypatch):
    directory = tmp_path / "audit"
    log = AuditLog(directory, key)
    log.append(event(1))
    real_fsync = os.fsync

    def full_disk(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError):
        log.append_many([event(2), event(3)])
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert len(rows(directory / LOG_FILE)) == 1
    assert log.append(event(2)).seq == 2
    log.close()
    assert verify(directory, key.public_key()).ok


def test_threads_share_one_log(tmp_path, key):
    directory = tmp_path / "audit"
    log = AuditLog(directory, key, checkpoint_every=7)
    threads = [threading.Thread(target=lambda: [log.append(event(i)) for i in range(50)])
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    report = verify(directory, key.public_key())
    assert report.ok, report.text()
    assert report.entries == 200


def test_a_checkpoint_is_signed_every_t_seconds(tmp_path, key):
    directory = tmp_path / "audit"
    clock = Clock(1_700_000_000.0)
    log = AuditLog(directory, key, checkpoint_every=1000, checkpoint_seconds=60, clock=clock)
    log.append(event(1))
    clock.t += 30
    log.append(event(2))
    assert rows(directory / CHECKPOINT_FILE) == []
    clock.t += 31  # 61 s since the log was opened: a caller's timer finds it due
    cp = log.checkpoint_if_due()
    assert cp["seq"] == 2
    assert cp["time"] == datetime.fromtimestamp(clock.t, UTC).isoformat(timespec="microseconds")
    clock.t += 100
    assert log.checkpoint_if_due() is None  # nothing appended since

    clock.t += 1
    log.append(event(3))  # 101 s after the last checkpoint: due at once
    clock.t += 59
    log.append(event(4))
    assert [c["seq"] for c in rows(directory / CHECKPOINT_FILE)] == [2, 3]
    clock.t += 2
    log.append(event(5))
    assert [c["seq"] for c in rows(directory / CHECKPOINT_FILE)] == [2, 3, 5]
    log.close()
    assert rows(directory / LOG_FILE)[0]["time"] == "2023-11-14T22:13:20.000000+00:00"


# --- verification ------------------------------------------------------------------------

def test_an_intact_log_verifies(logdir, key, key_path):
    report = verify(logdir, key.public_key())
    assert (report.ok, report.entries, report.checkpoints, report.unsigned_tail) == (
        True, 9, 3, 0)
    assert report.problems == []
    assert "OK" in report.text()

    log = AuditLog(logdir, key, checkpoint_every=3, checkpoint_seconds=3600)
    log.append(event(10))
    log.append(event(11))
    report = verify(logdir, key.public_key())
    assert (report.ok, report.entries, report.unsigned_tail) == (True, 11, 2)
    log.close()
    public_file = key_path.with_name("audit.key.pub")
    assert verify(logdir, public_file).unsigned_tail == 0


@pytest.mark.parametrize("field,value", [("actor", "key:attacker00"), ("outcome", "denied"),
                                         ("seq", 50)])
def test_an_edited_entry_is_named_by_its_line(logdir, key, field, value):
    def edit(lines):
        entry = json.loads(lines[4])
        entry[field] = value
        lines[4] = json.dumps(entry)
        return lines

    edit_lines(logdir / LOG_FILE, edit)
    report = verify(logdir, key.public_key())
    assert found(report) == [("edited", LOG_FILE, 5, value if field == "seq" else 5)]
    assert "hash does not match its content: the entry was edited" in report.problems[0].message
    assert not report.ok
    assert "[edited] line 5 (seq" in report.text()


def test_an_edit_with_every_later_hash_recomputed_breaks_the_checkpoint(logdir, key):
    entries = rows(logdir / LOG_FILE)
    entries[4]["outcome"] = "denied"
    prev = entries[3]["hash"]
    for entry in entries[4:]:
        entry["prev"] = prev
        rehash(entry)
        prev = entry["hash"]
    write_rows(logdir / LOG_FILE, entries)

    report = verify(logdir, key.public_key())
    assert found(report) == [("checkpoint_mismatch", CHECKPOINT_FILE, 2, 6)]
    assert "entries after seq 3 up to seq 6 were rewritten" in report.problems[0].message


def test_an_entry_whose_own_hash_was_recomputed_breaks_the_chain(logdir, key):
    entries = rows(logdir / LOG_FILE)
    entries[3]["reason"] = "nothing happened"
    rehash(entries[3])
    write_rows(logdir / LOG_FILE, entries)
    report = verify(logdir, key.public_key())
    assert found(report) == [("edited", LOG_FILE, 4, 4)]
    assert "line 5 (seq 5) chains to" in report.problems[0].message


@pytest.mark.parametrize("line", [1, 5])
def test_a_deleted_entry_is_named_by_its_seq(logdir, key, line):
    edit_lines(logdir / LOG_FILE, lambda lines: lines[:line - 1] + lines[line:])
    report = verify(logdir, key.public_key())
    assert found(report) == [("deleted", LOG_FILE, line, line)]
    assert f"seq {line} is missing" in report.problems[0].message


@pytest.mark.parametrize("order,problem", [
    ([1, 2, 3, 5, 4, 6, 7, 8, 9], ("reordered", LOG_FILE, 4, 5)),  # two lines swapped
    ([1, 3, 4, 5, 6, 7, 8, 9, 2], ("reordered", LOG_FILE, 2, 3)),  # one moved to the end
])
def test_reordered_entries(logdir, key, order, problem):
    edit_lines(logdir / LOG_FILE, lambda lines: [lines[i - 1] for i in order])
    report = verify(logdir, key.public_key())
    assert found(report) == [problem]


def test_a_truncated_log(logdir, key):
    edit_lines(logdir / LOG_FILE, lambda lines: lines[:7])
    report = verify(logdir, key.public_key())
    assert found(report) == [("truncated", LOG_FILE, 8, 8)]
    message = report.problems[0].message
    assert "ends at seq 7" in message and "covers seq 9" in message


@pytest.mark.parametrize("edit,problem,words", [
    (lambda lines: [*lines[:1], lines[1].replace('"seq":6', '"seq":5'), *lines[2:]],
     ("bad_signature", CHECKPOINT_FILE, 2, 5), "was edited"),
    (lambda lines: [lines[0], lines[2]], ("bad_signature", CHECKPOINT_FILE, 2, 9),
     "does not chain"),
    (lambda lines: lines[1:], ("bad_signature", CHECKPOINT_FILE, 1, 6), "does not chain"),
])
def test_an_edited_or_deleted_checkpoint(logdir, key, edit, problem, words):
    edit_lines(logdir / CHECKPOINT_FILE, edit)
    report = verify(logdir, key.public_key())
    assert found(report) == [problem]
    assert words in report.problems[0].message


def test_a_wrong_public_key(logdir):
    report = verify(logdir, Ed25519PrivateKey.generate().public_key())
    assert found(report) == [("bad_signature", CHECKPOINT_FILE, 1, 3)]
    assert "wrong public key" in report.problems[0].message
    assert (report.ok, report.checkpoints, report.unsigned_tail) == (False, 0, 9)


@pytest.mark.parametrize("edit,words", [
    (lambda lines: [*lines[:2], "not json", *lines[3:]], "not JSON"),
    (lambda lines: [*lines[:2], lines[2].replace('"reason":"",', ""), *lines[3:]],
     "missing keys ['reason']"),
])
def test_a_malformed_line(logdir, key, edit, words):
    edit_lines(logdir / LOG_FILE, edit)
    report = verify(logdir, key.public_key())
    assert found(report) == [("malformed", LOG_FILE, 3, None)]
    assert words in report.problems[0].message


def test_an_anchor_kept_off_host_catches_a_deleted_tail(logdir, key):
    public = key.public_key()
    anchor = latest_checkpoint(logdir)
    assert anchor["seq"] == 9
    assert verify(logdir, public, anchor=anchor).ok
    # the tail of both files deleted past the (new) last checkpoint
    edit_lines(logdir / LOG_FILE, lambda lines: lines[:6])
    edit_lines(logdir / CHECKPOINT_FILE, lambda lines: lines[:2])
    assert verify(logdir, public).ok  # the documented limit of local verification
    report = verify(logdir, public, anchor=anchor)
    assert found(report) == [("truncated", "anchor", 0, 7)]


def test_an_anchor_catches_a_rewrite_after_the_last_local_checkpoint(logdir, key):
    public = key.public_key()
    anchor = latest_checkpoint(logdir)
    entries = rows(logdir / LOG_FILE)
    entries[7]["outcome"] = "denied"
    rehash(entries[7])
    entries[8]["prev"] = entries[7]["hash"]
    rehash(entries[8])
    write_rows(logdir / LOG_FILE, entries)
    edit_lines(logdir / CHECKPOINT_FILE, lambda lines: lines[:2])
    assert verify(logdir, public).ok
    assert found(verify(logdir, public, anchor=anchor)) == [
        ("checkpoint_mismatch", "anchor", 0, 9)]
    forged = {**anchor, "hash": entries[8]["hash"]}
    assert found(verify(logdir, public, anchor=forged)) == [("bad_signature", "anchor", 0, 9)]


WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from idgraph.auth.audit import AuditEvent, AuditLog, load_or_create_signing_key
    directory, key_path, go, name = sys.argv[1:5]
    log = AuditLog(directory, load_or_create_signing_key(key_path), checkpoint_every=50)
    Path(go + "." + name).touch()
    while not Path(go).exists():
        time.sleep(0.001)
    for i in range(200):
        log.append(AuditEvent(actor=name, role="admin", action="segment.updated",
                              resource=f"segment:{i}"))
    log.close()
""")


def test_two_processes_append_to_one_log_at_once(tmp_path, key, key_path):
    directory, go = tmp_path / "audit", tmp_path / "go"
    names = ["proc:0", "proc:1"]
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(directory), str(key_path),
                               str(go), name]) for name in names]
    deadline = time.monotonic() + 30
    while not all(Path(f"{go}.{name}").exists() for name in names):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.01)
    go.touch()
    assert [p.wait(timeout=60) for p in procs] == [0, 0]

    report = verify(directory, key.public_key())
    assert report.ok, report.text()
    assert (report.entries, report.unsigned_tail) == (400, 0)
    entries = read_entries(directory, limit=1000)
    assert [e.seq for e in entries] == list(range(1, 401))
    assert Counter(e.actor for e in entries) == {"proc:0": 200, "proc:1": 200}


# --- the buffer --------------------------------------------------------------------------

def audit_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "audit-buffer"]


def test_the_buffer_aggregates_reads_into_one_entry(tmp_path, key):
    directory = tmp_path / "audit"
    before = set(audit_threads())  # other tests' servers may still be closing theirs
    buffer = AuditBuffer(AuditLog(directory, key), flush_seconds=60, max_pending=10_000)
    buffer.record(AuditEvent("key:1", "admin", "key.rotated", resource="key:2"))
    profiles = ["p:ccc", "p:aaa", "p:bbb"]
    for i in range(1000):
        buffer.record_read("key:ab12", "marketer", "profile.read", profiles[i % 3], "eu",
                           request_id=f"r{i}")
    buffer.record_read("key:ab12", "marketer", "profile.read", "p:ccc", "eu", "r", "denied")
    assert read_entries(directory) == []  # nothing reaches the disk before a flush
    assert buffer.flush() == 3
    entries = read_entries(directory)
    assert [(e.action, e.outcome, e.count, e.resources) for e in entries] == [
        ("key.rotated", "ok", 1, ()),
        ("profile.read", "ok", 1000, ("p:aaa", "p:bbb", "p:ccc")),
        ("profile.read", "denied", 1, ("p:ccc",))]
    assert (entries[1].request_id, entries[2].request_id) == ("", "r")

    buffer.record_read("key:ab12", "marketer", "profile.read", "p:ddd", "eu")
    buffer.close()
    assert set(audit_threads()) - before == set()
    assert [e.resources for e in read_entries(directory, after_seq=3)] == [("p:ddd",)]
    assert latest_checkpoint(directory)["seq"] == 4  # written by the log's close
    buffer.record_read("key:ab12", "marketer", "profile.read", "p:eee", "eu")  # no raise
    assert verify(directory, key.public_key()).ok


def test_the_buffer_splits_reads_of_more_than_1000_profiles(tmp_path, key):
    directory = tmp_path / "audit"
    with AuditBuffer(AuditLog(directory, key), flush_seconds=60, max_pending=10_000) as buf:
        for i in range(2500):
            buf.record_read("key:ab12", "activation", "profile.read", f"p:{i:05d}", "eu")
        buf.record_read("key:ab12", "activation", "profile.read", "p:00000", "eu")
    entries = read_entries(directory)
    assert [len(e.resources) for e in entries] == [1000, 1000, 500]
    assert [e.count for e in entries] == [1001, 1000, 500]
    assert [r for e in entries for r in e.resources] == [f"p:{i:05d}" for i in range(2500)]


def test_the_buffer_thread_flushes_when_max_pending_is_reached(tmp_path, key):
    directory = tmp_path / "audit"
    buffer = AuditBuffer(AuditLog(directory, key), flush_seconds=60, max_pending=5)
    for i in range(5):
        buffer.record_read("key:ab12", "marketer", "profile.read", f"p:{i}", "eu")
    deadline = time.monotonic() + 5
    while not read_entries(directory):
        assert time.monotonic() < deadline, "the thread did not flush at max_pending"
        time.sleep(0.01)
    assert read_entries(directory)[0].count == 5
    buffer.close()


class FailingOnce:
    """An AuditLog whose first write fails (a full disk)."""

    def __init__(self, log: AuditLog) -> None:
        self.log, self.directory, self.calls = log, log.directory, 0

    def append_many(self, events):
        self.calls += 1
        if self.calls == 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.log.append_many(events)

    def checkpoint_if_due(self):
        return self.log.checkpoint_if_due()

    def close(self):
        self.log.close()


def test_a_failed_flush_is_logged_without_content_and_retried(tmp_path, key, caplog):
    directory = tmp_path / "audit"
    log = FailingOnce(AuditLog(directory, key))
    buffer = AuditBuffer(log, flush_seconds=0.02)
    with caplog.at_level(logging.WARNING, logger="idgraph.auth.audit"):
        buffer.record_read("key:ab12", "marketer", "profile.read", "p:hash-of-jane", "eu")
        deadline = time.monotonic() + 5
        while not read_entries(directory):
            assert time.monotonic() < deadline, "the failed flush was not retried"
            time.sleep(0.01)
        buffer.close()
    assert [(e.count, e.resources) for e in read_entries(directory)] == [
        (1, ("p:hash-of-jane",))]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and "OSError" in errors[0].getMessage()
    assert "hash-of-jane" not in caplog.text and "key:ab12" not in caplog.text


# --- files -------------------------------------------------------------------------------

def test_a_torn_last_line_is_reported_then_repaired_on_open(logdir, key, caplog):
    path = logdir / LOG_FILE
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"actor":"key:torn-secret","seq":10,"ti')
    report = verify(logdir, key.public_key())
    assert found(report) == [("malformed", LOG_FILE, 10, None)]
    assert "incomplete (no newline)" in report.problems[0].message

    with caplog.at_level(logging.WARNING, logger="idgraph.auth.audit"):
        log = AuditLog(logdir, key, checkpoint_every=3, checkpoint_seconds=3600)
    assert "incomplete last line" in caplog.text and "torn-secret" not in caplog.text
    assert len(rows(path)) == 9
    assert log.append(event(10)).seq == 10
    log.close()
    assert verify(logdir, key.public_key()).ok


def test_a_whole_last_line_without_its_newline_is_kept(logdir, key):
    path = logdir / LOG_FILE
    path.write_bytes(path.read_bytes()[:-1])
    with AuditLog(logdir, key, checkpoint_every=3, checkpoint_seconds=3600) as log:
        assert log.append(event(10)).seq == 10
    assert len(rows(path)) == 10
    assert verify(logdir, key.public_key()).ok


def test_files_are_owner_only_and_the_key_is_reused(tmp_path, key_path):
    old = os.umask(0o022)  # the common umask: what the module must not rely on
    try:
        key = load_or_create_signing_key(key_path)
        with AuditLog(tmp_path / "audit", key) as log:
            log.append(event())
    finally:
        os.umask(old)
    assert mode(key_path) == 0o600
    assert mode(tmp_path / "audit") == 0o700
    assert mode(tmp_path / "audit" / LOG_FILE) == 0o600
    assert mode(tmp_path / "audit" / CHECKPOINT_FILE) == 0o600

    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    again = load_or_create_signing_key(key_path)
    assert again.public_key().public_bytes(*raw) == key.public_key().public_bytes(*raw)
    public = load_public_key(key_path.with_name("audit.key.pub"))
    assert public.public_bytes(*raw) == key.public_key().public_bytes(*raw)


def test_an_unusable_key_file_is_a_config_error_naming_it(tmp_path):
    bad = tmp_path / "audit.key"
    bad.write_text("not a key")
    with pytest.raises(ConfigError, match=str(bad)):
        load_or_create_signing_key(bad)
    with pytest.raises(ConfigError, match="missing.pub"):
        load_public_key(tmp_path / "missing.pub")


def test_read_entries_pages_and_filters(tmp_path, key):
    directory = tmp_path / "audit"
    actions = ["forget.completed", "consent.withdrawn"]
    with AuditLog(directory, key) as log:
        log.append_many(event(i, action=actions[i % 2], actor=f"key:{i % 3}")
                        for i in range(1, 13))
    assert [e.seq for e in read_entries(directory, after_seq=3, limit=2)] == [4, 5]
    assert [e.seq for e in read_entries(directory, action="forget.completed")] == [
        2, 4, 6, 8, 10, 12]
    assert [e.seq for e in read_entries(directory, action="forget.completed",
                                        actor="key:0")] == [6, 12]
    with pytest.raises(InvalidAuditArgumentError):
        read_entries(directory, limit=0)


@pytest.mark.parametrize("fields", [{"outcome": "maybe"}, {"count": 0},
                                    {"before": "jane@example.com"}, {"action": ""}])
def test_an_event_refuses_what_the_log_must_not_hold(fields):
    with pytest.raises(InvalidAuditArgumentError):
        event(**fields)
