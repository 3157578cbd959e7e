"""The local Bolt server (ArcadeDB) used by the Neo4j backend's tests: it starts, answers the
official driver, binds loopback only, stops by PID, fails clearly, and the fixtures empty it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import neo4j
import pytest

from idgraph.devservers import bolt_server as local_server
from idgraph.devservers.bolt_server import LocalBoltServer

REPO = Path(__file__).resolve().parents[2]


def _listening_addresses(pid: int) -> list[tuple[str, int]]:
    """(address, port) of the TCP sockets process ``pid`` listens on (Linux /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    found = []
    for table, width in (("tcp", 4), ("tcp6", 16)):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            hex_addr, hex_port = local.split(":")
            raw = bytes.fromhex(hex_addr)
            # /proc prints each 32-bit word in host (little-endian) order
            addr = b"".join(raw[i:i + 4][::-1] for i in range(0, width, 4))
            family = socket.AF_INET if width == 4 else socket.AF_INET6
            found.append((socket.inet_ntop(family, addr), int(hex_port, 16)))
    return found


def _is_loopback(address: str) -> bool:
    return address.startswith(("127.", "::ffff:127.")) or address == "::1"


def _port_is_free(port: int) -> bool:
    """Nothing listens on the port (SO_REUSEADDR: the server's closed connections may
    linger in TIME_WAIT, which does not stop a new server from binding)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_starts_answers_the_driver_and_stops(tmp_path):
    server = LocalBoltServer(tmp_path / "arcadedb")
    started = time.monotonic()
    server.start(timeout=120)
    try:
        assert time.monotonic() - started < 120
        assert server.uri == f"bolt://127.0.0.1:{server.port}"
        assert server.user == "root" and len(server.password) >= 16
        pid = server.pid
        assert pid is not None
        with neo4j.GraphDatabase.driver(server.uri, auth=(server.user, server.password)) as d:
            d.execute_query("CREATE (:Probe {key: $key})", key="k1", database_=server.database)
            records, _, _ = d.execute_query("MATCH (p:Probe) RETURN p.key AS key",
                                            database_=server.database)
            assert [r["key"] for r in records] == ["k1"]
            assert "Neo4j/5" in d.get_server_info().agent
        listening = _listening_addresses(pid)
        assert {port for _, port in listening} >= {server.port, server.http_port}
        assert all(_is_loopback(address) for address, _ in listening), listening
        # the root password is in an owner-only args file, not on the command line
        assert server.password not in Path(f"/proc/{pid}/cmdline").read_text()
        assert (server.root / "jvm.args").stat().st_mode & 0o077 == 0
        assert server.log_file.is_file()
    finally:
        server.stop()
    assert server.pid is None
    assert _process_gone(pid)
    assert _port_is_free(server.port) and _port_is_free(server.http_port)
    server.stop()  # idempotent


def test_a_taken_bolt_port_fails_clearly_within_the_timeout(tmp_path, monkeypatch):
    launched: list[subprocess.Popen] = []
    real_popen = subprocess.Popen

    def recording_popen(*args, **kwargs):
        proc = real_popen(*args, **kwargs)
        launched.append(proc)
        return proc

    monkeypatch.setattr(local_server.subprocess, "Popen", recording_popen)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        server = LocalBoltServer(tmp_path / "arcadedb", port=port)
        timeout = 60.0
        started = time.monotonic()
        with pytest.raises(RuntimeError) as failure:
            server.start(timeout=timeout)
        elapsed = time.monotonic() - started
    message = str(failure.value)
    assert "could not bind" in message and str(port) in message
    assert "last lines of" in message and "server.log" in message
    assert elapsed < timeout
    assert len(launched) == 1 and launched[0].poll() is not None  # killed, not left running
    assert server.pid is None


def test_a_chosen_port_taken_meanwhile_is_replaced(tmp_path, monkeypatch):
    real_free_port = local_server._free_port
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        ports = iter([taken])  # the first port chosen for Bolt is taken by then
        monkeypatch.setattr(local_server, "_free_port", lambda: next(ports, None) or
                            real_free_port())
        with LocalBoltServer(tmp_path / "arcadedb") as server:
            assert server.port != taken
            with neo4j.GraphDatabase.driver(server.uri,
                                            auth=(server.user, server.password)) as d:
                d.verify_connectivity()


def test_rejects_a_password_arcadedb_would_refuse(tmp_path):
    with pytest.raises(ValueError, match="8 characters"):
        LocalBoltServer(tmp_path, password="short")


def test_command_line_runs_until_sigint_even_when_started_with_sigint_ignored(tmp_path):
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited across exec
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "idgraph.devservers.bolt_server", "--root",
             str(tmp_path / "arcadedb")],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        info = {}
        for line in proc.stdout:
            key, _, value = line.strip().partition("=")
            info[key] = value
            if key == "pid":
                break
        assert info.get("uri", "").startswith("bolt://127.0.0.1:"), proc.stderr.read()
        assert info["user"] == "root" and info["database"] == "idgraph"
        with neo4j.GraphDatabase.driver(info["uri"], auth=(info["user"], info["password"])) as d:
            records, _, _ = d.execute_query("RETURN 1 AS x", database_=info["database"])
            assert records[0]["x"] == 1
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        assert _process_gone(int(info["pid"]))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_neo4j_settings_fixture_gives_an_empty_database(neo4j_settings, neo4j_reset):
    auth = (neo4j_settings.user, neo4j_settings.password.get_secret_value())
    db = neo4j_settings.database
    with neo4j.GraphDatabase.driver(neo4j_settings.uri, auth=auth) as d:
        count, _, _ = d.execute_query("MATCH (n) RETURN count(n) AS c", database_=db)
        assert count[0]["c"] == 0
        d.execute_query("CREATE CONSTRAINT probe_key IF NOT EXISTS "
                        "FOR (n:Probe) REQUIRE n.key IS UNIQUE", database_=db)
        d.execute_query("CREATE INDEX probe_pid IF NOT EXISTS FOR (n:Probe) ON (n.pid)",
                        database_=db)
        d.execute_query("CREATE (:Probe {key: 'a'})-[:LINK]->(:Probe {key: 'b'})", database_=db)
        neo4j_reset()
        count, _, _ = d.execute_query("MATCH (n) RETURN count(n) AS c", database_=db)
        assert count[0]["c"] == 0
        constraints, _, _ = d.execute_query("SHOW CONSTRAINTS YIELD name RETURN name",
                                            database_=db)
        assert constraints == []
        indexes, _, _ = d.execute_query(
            "SHOW INDEXES YIELD name, type WHERE type <> 'LOOKUP' RETURN name", database_=db)
        assert indexes == []
        # the constraint is really gone: a duplicate key is accepted again
        d.execute_query("CREATE (:Probe {key: 'a'}), (:Probe {key: 'a'})", database_=db)
