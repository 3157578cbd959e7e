"""Failpoints act only where and when ``IDGRAPH_FAILPOINTS`` arms them, and a schedule
that names no real point fails at start rather than testing nothing. Each case runs in a
fresh interpreter: the variable is read at import."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

SCRIPT = """
from idgraph.core.failpoints import InjectedFault, failpoint
for i in range(1, 7):
    try:
        failpoint("journal.begun")
        failpoint("stream.batch.stored")
        print(i, "passed", flush=True)
    except InjectedFault as exc:
        print(i, "fault", exc.point, flush=True)
"""


def run(spec: str | None) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin"}
    if spec is not None:
        env["IDGRAPH_FAILPOINTS"] = spec
    return subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def test_unarmed_points_do_nothing():
    out = run(None)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:-1] == [f"{i} passed" for i in range(1, 7)]


@pytest.mark.parametrize(("hits", "faults"), [
    ("", {1, 2, 3, 4, 5, 6}), ("@3", {3}), ("@2-4", {2, 3, 4}), ("@5-", {5, 6})])
def test_fail_fires_on_the_armed_hits_only(hits, faults):
    out = run(f"stream.batch.stored=fail{hits}")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split("\n")[:-1]
    assert lines == [f"{i} fault stream.batch.stored" if i in faults else f"{i} passed"
                     for i in range(1, 7)]


def test_kill_is_a_sigkill_at_the_armed_hit():
    out = run("journal.begun=kill@4")
    assert out.returncode == -signal.SIGKILL
    assert out.stdout.split("\n")[:-1] == [f"{i} passed" for i in range(1, 4)]


@pytest.mark.parametrize(("spec", "problem"), [
    ("journal.begn=kill", "unknown failpoint"),
    ("journal.begun=explode", "the action must be"),
    ("journal.begun=kill@0", "hits count from 1"),
    ("journal.begun=kill@4-2", "hits count from 1"),
    ("journal.begun=kill@x", "hits must be"),
])
def test_a_misspelt_schedule_fails_at_import(spec, problem):
    out = run(spec)
    assert out.returncode == 1
    assert "entry 1" in out.stderr and problem in out.stderr
