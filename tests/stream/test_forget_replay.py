"""Forget, then replay the input topics from offset 0: the forgotten person stays out.

A worker stores a small stream; ``idgraph forget`` (a separate process, taking a writer
turn beside the running worker) forgets one person; a second worker in a new consumer
group then reads every input topic from the start. Every event of that person is counted
as suppressed (by reason, in the ledger and in the worker's stats), none is stored, the
others are duplicates, and no file of the data directory holds the person's identifiers.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from idgraph.engine.backends import open_privacy
from idgraph.profile_store import create_store
from idgraph.settings import Settings
from tests.stream.conftest import ROOT, wait_for
from tests.stream.fault_harness import processed, produce

pytestmark = pytest.mark.slow


def _sendgrid(email: str, n: int, event: str = "open") -> tuple[str, dict]:
    return ("sendgrid", {"email": email, "event": event, "timestamp": 1_790_000_000 + n,
                         "sg_event_id": f"ev-{n}", "sg_message_id": f"m{n}.filter"})


def _hubspot(rid: str, email: str, first: str, n: int) -> tuple[str, dict]:
    return ("hubspot", {"id": rid, "properties": {
        "email": email, "firstname": first, "lastname": "Quist",
        "lastmodifieddate": f"2026-10-0{n}T10:00:00.000Z", "createdate": "2026-01-01T00:00:00Z",
        "hs_object_id": rid}, "createdAt": "2026-01-01T00:00:00Z",
        "updatedAt": f"2026-10-0{n}T10:00:00.000Z", "archived": False})


FORGOTTEN = "quinn.quist@example.com"
ITEMS = [
    _hubspot("901", FORGOTTEN, "Quinn", 1), _sendgrid(FORGOTTEN, 1),
    _sendgrid(FORGOTTEN, 2, "click"), _sendgrid(FORGOTTEN, 3, "unsubscribe"),
    _hubspot("902", "rita.roe@example.com", "Rita", 2), _sendgrid("rita.roe@example.com", 4),
    _sendgrid("sam.sun@example.com", 5),
]
THEIRS = 4


def test_forget_then_replay_from_offset_zero(stream_env, workers, tmp_path):
    data = tmp_path / "data"
    first = workers("w1", data)
    produce(stream_env, ITEMS)
    wait_for(lambda: processed(data) == len(ITEMS), 90, "the stream stored", [first])

    done = subprocess.run(
        [sys.executable, "-m", "idgraph.cli", "forget", f"email:{FORGOTTEN}",
         "--reason", "test", "--data-dir", str(data)],
        check=False, capture_output=True, text=True, cwd=ROOT, env=stream_env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "completed" in done.stdout
    first.stop()

    replayer = workers("w2", data, IDGRAPH_STREAM__CONSUMER_GROUP="replay-from-zero")
    wait_for(lambda: replayer.stats().get("events_consumed", 0) >= len(ITEMS), 90,
             "the replay read every message", [replayer])
    stats = replayer.stats()
    assert stats["suppressed_events"] == THEIRS
    assert stats["events_applied"] == 0
    assert stats["duplicate_events"] == len(ITEMS) - THEIRS
    replayer.stop()

    settings = Settings(data_dir=data)
    ledger, _keys = open_privacy(settings)
    try:
        assert ledger.suppressed_counts() == {"forget": THEIRS}
    finally:
        ledger.close()
    store = create_store("sqlite", data, settings.regions.regions, readonly=True)
    try:
        assert store.lookup(f"email:{FORGOTTEN}") == []
        assert store.lookup("email:rita.roe@example.com")  # the others are intact
    finally:
        store.close()
    leaks = sorted({f.name for f in data.rglob("*") if f.is_file() and
                    any(n in f.read_bytes().lower()
                        for n in (FORGOTTEN.encode(), b"hubspot:901", b"quinn"))})
    assert leaks == []
