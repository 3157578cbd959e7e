"""Where Lookup's slowest calls come from: the lookup_latency load (1,000 calls/s, 4 client
threads, a first phase of first reads, then the timed phase repeating its calls) with every
garbage collection of the server (``benchmarks.serve_with_gc_log``) and of the client
logged on the shared monotonic clock, and each call slower than ``--slow-ms`` matched with
the collections that overlapped it.

    .venv/bin/python -m benchmarks.lookup_stalls --records 100000 --seconds 10

Reports the timed phase's latency summary, its slow calls (when in the phase, how late
they left the client, overlapping collections), and every server and client collection
with its time relative to the timed phase's start (negative: before it, start-up and the
first phase included).
"""

from __future__ import annotations

import gc
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc

from benchmarks.common import argument_parser, load_average, percentile, save
from benchmarks.lookup_latency import seed_identifiers
from idgraph.proto.idgraph.v1 import profiles_pb2 as pb
from idgraph.proto.idgraph.v1 import profiles_pb2_grpc as pb_grpc


def _calls(port: int, token: str, identifiers: list[str], rate: float, seconds: float,
           threads: int) -> list[tuple[float, float, float]]:
    """(scheduled, sent, ended) of every call, on time.perf_counter."""
    metadata = (("authorization", f"Bearer {token}"),)
    n = int(rate * seconds)
    out: list[tuple[float, float, float]] = []
    lock = threading.Lock()
    channels = [grpc.insecure_channel(f"127.0.0.1:{port}",
                                      options=[("grpc.use_local_subchannel_pool", 1)])
                for _ in range(threads)]
    for channel in channels:
        grpc.channel_ready_future(channel).result(timeout=10)
    start = time.perf_counter() + 0.1

    def worker(k: int) -> None:
        call = pb_grpc.ProfileServiceStub(channels[k]).Lookup
        requests = [pb.LookupRequest(identifier=i) for i in identifiers]
        mine = []
        for i in range(k, n, threads):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            sent = time.perf_counter()
            call(requests[i % len(requests)], metadata=metadata, timeout=5)
            mine.append((scheduled, sent, time.perf_counter()))
        with lock:
            out.extend(mine)

    workers = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for channel in channels:
        channel.close()
    return sorted(out)


def main(argv: list[str] | None = None) -> dict:
    parser = argument_parser("lookup_stalls", __doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--slow-ms", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)

    load_before = load_average()
    tmp = Path(tempfile.mkdtemp(prefix="idgraph-stalls-"))
    token = secrets.token_urlsafe(16)
    gc_log = tmp / "server_gc.jsonl"
    client_gc: list[tuple[float, float, int]] = []
    started = [0.0]

    def callback(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            ms = (time.perf_counter() - started[0]) * 1000
            if info["generation"] >= 1 or ms > 2:
                client_gc.append((started[0], ms, info["generation"]))

    proc = None
    try:
        identifiers = seed_identifiers(tmp / "data", args.records, args.seed)
        env = dict(os.environ, IDGRAPH_DATA_DIR=str(tmp / "data"),
                   IDGRAPH_GRPC__API_TOKENS=f'["{token}"]')
        proc = subprocess.Popen([sys.executable, "-m", "benchmarks.serve_with_gc_log",
                                 str(gc_log), "serve", "--host", "127.0.0.1", "--port", "0"],
                                stdout=subprocess.PIPE, text=True, env=env)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "serving ProfileService on port" not in line:
            raise RuntimeError(f"the server did not start: {line!r}")
        port = int(line.split("on port")[1].split()[0])
        time.sleep(1.0)
        gc.callbacks.append(callback)
        _calls(port, token, identifiers, args.rate, args.seconds, args.threads)  # first reads
        timed = _calls(port, token, identifiers, args.rate, args.seconds, args.threads)
        gc.callbacks.remove(callback)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
    server_gc = [json.loads(line) for line in gc_log.read_text().splitlines()]
    shutil.rmtree(tmp, ignore_errors=True)

    t0, t_end = timed[0][0], max(e for _s, _t, e in timed)
    latencies = [(e - s) * 1000 for s, _t, e in timed]

    def overlapping(pauses, s: float, e: float) -> list:
        return [[round(p[1], 1), p[2]] for p in pauses if p[0] < e and p[0] + p[1] / 1000 > s]

    slow = [{"at_s": round(s - t0, 3), "ms": round((e - s) * 1000, 1),
             "left_late_ms": round((t - s) * 1000, 1),
             "server_gc": overlapping(server_gc, s, e), "client_gc": overlapping(client_gc, s, e)}
            for s, t, e in timed if (e - s) * 1000 > args.slow_ms]
    result = {
        "timed_phase_ms": {q: round(percentile(latencies, float(q[1:])), 3)
                           for q in ("p50", "p99", "p99.9")} | {"max": round(max(latencies), 3)},
        "slow_calls": slow,
        "server_gc_in_timed_phase": [[round(p[0] - t0, 3), round(p[1], 1), p[2]]
                                     for p in server_gc if t0 <= p[0] <= t_end],
        "client_gc_in_timed_phase": [[round(p[0] - t0, 3), round(p[1], 1), p[2]]
                                     for p in client_gc if t0 <= p[0] <= t_end],
        "server_gc_over_10ms": [[round(p[0] - t0, 3), round(p[1], 1), p[2]]
                                for p in server_gc if p[1] > 10],
        "client_gc_over_10ms": [[round(p[0] - t0, 3), round(p[1], 1), p[2]]
                                for p in client_gc if p[1] > 10],
        "load_average_1m": {"before": load_before, "after": load_average()},
    }
    path = save(parser, args, argv, result)
    print(f"timed phase {result['timed_phase_ms']}; {len(slow)} calls over {args.slow_ms} ms; "
          f"server collections in it: {len(result['server_gc_in_timed_phase'])}; {path}")
    return result


if __name__ == "__main__":
    main()
