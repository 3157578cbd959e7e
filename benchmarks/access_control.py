"""What access control costs a lookup, and how fast a revoked key stops working.

Ingests N generated records, creates API keys with ``idgraph keys create`` and starts two
``idgraph serve`` processes over the same data dir, both authenticating the key on every
call: one auditing every profile read (the default), one with ``auth.audit_reads = false``
(the peer: the same server without the read audit). Rounds alternate between them (A B A
B ...) in short rounds so that drift of the machine's load hits both alike; each round is
the paced client of ``benchmarks.lookup_latency`` (latency from the scheduled send: no
coordinated omission). The result is the ratio of the p99s of all the rounds' latencies
pooled per server (a single round's p99 on this machine moves by tens of percent from one
round to the next; the per-round p99s are recorded too).

Then a key is revoked (``KeyAdmin.revoke``, what ``idgraph keys revoke`` runs, in process
so the moment of the commit is known) while a client polls both servers with it every
5 ms from a second before (so each server's cached copy is fresh); the time from the
revocation's commit until each server refuses the key is the revocation delay (a server
re-reads a key after ``auth.cache_seconds``).

Targets: Lookup p99 with the read audit <= 1.05 x without it; a revocation refused by
every running server within 1 s.

    .venv/bin/python -m benchmarks.access_control --records 50000 --rate 500 --seconds 3 \
        --rounds 20
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc

from benchmarks.common import argument_parser, load_average, percentile, save
from benchmarks.lookup_latency import paced_calls, seed_identifiers
from idgraph.proto.idgraph.v1 import profiles_pb2 as pb
from idgraph.proto.idgraph.v1 import profiles_pb2_grpc as pb_grpc
from idgraph.serving import open_key_admin
from idgraph.settings import Settings

TARGET_P99_RATIO = 1.05
TARGET_REVOCATION_SECONDS = 1.0


def _cli(data_dir: Path, *args: str) -> str:
    return subprocess.run([sys.executable, "-m", "idgraph.cli", *args, "--data-dir",
                           str(data_dir)], capture_output=True, text=True, check=True
                          ).stdout.strip()


def _serve(data_dir: Path, audit_reads: bool) -> tuple[subprocess.Popen, int]:
    env = dict(os.environ, IDGRAPH_DATA_DIR=str(data_dir),
               IDGRAPH_AUTH__AUDIT_READS=str(audit_reads).lower())
    proc = subprocess.Popen(
        [sys.executable, "-m", "idgraph.cli", "serve", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    line = proc.stdout.readline() if proc.stdout else ""
    if "serving ProfileService on port" not in line:
        proc.kill()
        raise RuntimeError(f"idgraph serve did not start: {line!r}")
    return proc, int(line.split("on port")[1].split()[0])


def _revocation(data_dir: Path, ports: list[int], identifier: str) -> list[float]:
    """Seconds from ``keys revoke`` returning to each server refusing the key. Each server
    is polled with the key every 5 ms from before the revocation, so its cached copy is
    as fresh as it gets (the worst case: it was re-read just before the change)."""
    key = _cli(data_dir, "keys", "create", "--owner", "revocation probe", "--role",
               "activation")
    metadata = (("authorization", f"Bearer {key}"),)
    request = pb.LookupRequest(identifier=identifier)
    refused: list[float | None] = [None] * len(ports)
    stop = threading.Event()

    def poll(n: int, port: int) -> None:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.ProfileServiceStub(channel)
            while not stop.is_set():
                try:
                    stub.Lookup(request, metadata=metadata, timeout=5)
                except grpc.RpcError as exc:
                    if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                        refused[n] = time.perf_counter()
                        return
                time.sleep(0.005)

    pollers = [threading.Thread(target=poll, args=(n, p)) for n, p in enumerate(ports)]
    for t in pollers:
        t.start()
    time.sleep(1.0)
    admin, store = open_key_admin(Settings(data_dir=data_dir), None)
    try:  # in process: the time the change is committed is known to the microsecond
        admin.revoke(key.split("_")[1], reason="benchmark")
        revoked_at = time.perf_counter()
    finally:
        store.close()
    for t in pollers:
        t.join(timeout=10)
    stop.set()
    return [round(max(0.0, r - revoked_at), 3) if r is not None else float("inf")
            for r in refused]


def main(argv: list[str] | None = None) -> dict:
    parser = argument_parser("access_control", __doc__)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args(argv)

    load_before = load_average()
    tmp = Path(tempfile.mkdtemp(prefix="idgraph-bench-"))
    procs: list[subprocess.Popen] = []
    try:
        identifiers = seed_identifiers(tmp, args.records, args.seed)
        key = _cli(tmp, "keys", "create", "--owner", "benchmark", "--role", "activation",
                   "--rate", "100000")
        audited, port_a = _serve(tmp, audit_reads=True)
        procs.append(audited)
        plain, port_b = _serve(tmp, audit_reads=False)
        procs.append(plain)
        for port in (port_a, port_b):  # warm-up
            paced_calls(port, key, "lookup", identifiers, args.rate, 2, args.threads)
        rounds: dict[str, list[dict]] = {"audited": [], "not_audited": []}
        for _ in range(args.rounds):
            for name, port in (("audited", port_a), ("not_audited", port_b)):
                rounds[name].append(paced_calls(port, key, "lookup", identifiers, args.rate,
                                                 args.seconds, args.threads,
                                                 keep_samples=True))
        revocation = _revocation(tmp, [port_a, port_b], identifiers[0])
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=20)
        shutil.rmtree(tmp, ignore_errors=True)

    def p99s(name: str) -> list[float]:
        return [r["scheduled"]["p99_ms"] for r in rounds[name]]

    # every round's latencies pooled per server (and left out of the result file)
    samples = {name: [ms for r in rs for ms in r.pop("scheduled_ms")]
               for name, rs in rounds.items()}
    p99_a, p99_b = (round(percentile(samples[n], 99), 3) for n in ("audited", "not_audited"))
    p50_a, p50_b = (round(percentile(samples[n], 50), 3) for n in ("audited", "not_audited"))
    ratio = round(p99_a / p99_b, 3)
    errors = sum(r["errors"] for rs in rounds.values() for r in rs)
    out = {
        "records": args.records, "rate_per_s": args.rate, "seconds_per_round": args.seconds,
        "rounds": args.rounds, "client_threads": args.threads,
        "lookup_p99_ms_per_round": {"audited": p99s("audited"),
                                    "not_audited": p99s("not_audited")},
        "lookup_p50_ms_per_round": {n: [r["scheduled"]["p50_ms"] for r in rs]
                                    for n, rs in rounds.items()},
        "pooled_p50_ms": {"audited": p50_a, "not_audited": p50_b},
        "pooled_p99_ms": {"audited": p99_a, "not_audited": p99_b},
        "median_round_p99_ms": {n: statistics.median(p99s(n)) for n in rounds},
        "p99_ratio_audited_vs_not": ratio, "errors": errors,
        "target_p99_ratio": TARGET_P99_RATIO,
        "meets_p99_target": ratio <= TARGET_P99_RATIO and errors == 0,
        "revocation_seconds_per_server": revocation,
        "target_revocation_seconds": TARGET_REVOCATION_SECONDS,
        "meets_revocation_target": max(revocation) <= TARGET_REVOCATION_SECONDS,
        "load_average_1m": {"before": load_before, "after": load_average()},
    }
    path = save(parser, args, argv, out)
    print(f"Lookup p99 pooled: audited {p99_a} ms, not audited {p99_b} ms (p50 {p50_a} / "
          f"{p50_b} ms); ratio {ratio} (target <= {TARGET_P99_RATIO}: "
          f"{'met' if out['meets_p99_target'] else 'NOT met'}); errors {errors}")
    print(f"revocation refused after {revocation} s (target <= {TARGET_REVOCATION_SECONDS} s: "
          f"{'met' if out['meets_revocation_target'] else 'NOT met'})")
    print(f"written {path}")
    return out


if __name__ == "__main__":
    main()
