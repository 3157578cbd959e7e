"""gRPC ``Lookup`` latency at a fixed request rate over loopback.

Ingests N generated records into a temporary data dir and starts ``idgraph serve`` as its
own process (as in production: the server reads the SQLite store beside the ingest
writer). The client sends at a fixed rate: T threads, each with its own connection, each
sending every T-th call at its scheduled time with a blocking stub. Latency is reported
from the actual send and from the *scheduled* send (a call that could not leave on time
because the previous one was slow counts that wait: no coordinated omission). In the same
run, the standard health check at the same rate is the baseline: gRPC and the transport
with no lookup work.

The timed Lookup phase repeats the calls of a first phase at the same rate, so it measures
profiles the server has read before (its proto cache holds them, as it holds a live
deployment's active profiles); the first phase, every profile read for the first time, is
reported too (``lookup_first_reads``). Before issue 20 the first phase lasted 2 s and
covered a fifth of the timed calls, so the timed phase was mostly first reads.

Why this client: on 2 cores the client shares the CPU with the server. A blocking stub per
thread costs the least CPU per call of the clients tried: a futures-based single-thread
open loop, and a Node @grpc/grpc-js generator at ~0.7 ms CPU per call, both saturated the
machine at 1,000 calls/s.

Target: Lookup p99 <= 2 ms at 1,000 requests/s.

    .venv/bin/python -m benchmarks.lookup_latency --records 100000 --rate 1000 --seconds 10
    .venv/bin/python -m benchmarks.lookup_latency --records 100000 --rate 500 --seconds 10 \
        --output lookup_latency_500
"""

from __future__ import annotations

import gc
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from benchmarks.common import argument_parser, load_average, percentile, save
from idgraph.engine import Engine
from idgraph.generator import generate
from idgraph.proto.idgraph.v1 import profiles_pb2 as pb
from idgraph.proto.idgraph.v1 import profiles_pb2_grpc as pb_grpc
from idgraph.settings import Settings

TARGET_P99_MS = 2.0


def start_server(data_dir: Path, token: str, processes: int) -> tuple[subprocess.Popen, int]:
    env = dict(os.environ, IDGRAPH_DATA_DIR=str(data_dir),
               IDGRAPH_GRPC__API_TOKENS=f'["{token}"]', IDGRAPH_GRPC__PROCESSES=str(processes))
    proc = subprocess.Popen(
        [sys.executable, "-m", "idgraph.cli", "serve", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "serving ProfileService on port" not in line:
        proc.kill()
        raise RuntimeError(f"idgraph serve did not start: {line!r}")
    return proc, int(line.split("on port")[1].split()[0])


def seed_identifiers(data_dir: Path, records: int, seed: int) -> list[str]:
    """Ingest ``records`` generated records into ``data_dir`` and return the identifiers
    of up to 5,000 sampled profiles, shuffled: what the load generator looks up. The
    ingest's heap is collected and what remains frozen before this returns, so the
    generator's full collections do not drag it into the timed phase (they stalled sends
    by 40-70 ms)."""
    dataset = generate(n_records=records, seed=seed)
    with Engine(Settings(data_dir=data_dir)) as engine:
        engine.ingest_payloads(dataset.events)
        rng = random.Random(seed)
        pids = engine.graph.profile_ids()
        identifiers = [i.identifier for pid in rng.sample(pids, min(5000, len(pids)))
                       for i in engine.queries.get_profile(pid).identifiers]
    rng.shuffle(identifiers)
    del dataset, engine
    gc.collect()
    gc.freeze()
    return identifiers


def paced_calls(port: int, token: str, method: str, identifiers: list[str], rate: float,
                seconds: float, threads: int, keep_samples: bool = False) -> dict:
    """Send ``rate`` calls/s for ``seconds``; latency summaries (ms) and error count (and
    ``scheduled_ms``, every latency from the schedule, with ``keep_samples``)."""
    metadata = (("authorization", f"Bearer {token}"),)
    n = int(rate * seconds)
    sent_ms: list[float] = []
    sched_ms: list[float] = []
    errors = [0]
    lock = threading.Lock()
    channels = [grpc.insecure_channel(f"127.0.0.1:{port}",
                                      options=[("grpc.use_local_subchannel_pool", 1)])
                for _ in range(threads)]
    for ch in channels:
        grpc.channel_ready_future(ch).result(timeout=10)
    start = time.perf_counter() + 0.1

    def worker(k: int) -> None:
        if method == "lookup":
            call = pb_grpc.ProfileServiceStub(channels[k]).Lookup
            requests = [pb.LookupRequest(identifier=i) for i in identifiers]
        else:
            call = health_pb2_grpc.HealthStub(channels[k]).Check
            requests = [health_pb2.HealthCheckRequest(service="")]
        mine_sent, mine_sched, mine_err = [], [], 0
        for i in range(k, n, threads):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            t = time.perf_counter()
            try:
                call(requests[i % len(requests)], metadata=metadata, timeout=5)
            except grpc.RpcError:
                mine_err += 1
                continue
            end = time.perf_counter()
            mine_sent.append((end - t) * 1000)
            mine_sched.append((end - scheduled) * 1000)
        with lock:
            sent_ms.extend(mine_sent)
            sched_ms.extend(mine_sched)
            errors[0] += mine_err

    workers = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for ch in channels:
        ch.close()

    def summary(values: list[float]) -> dict:
        return {f"p{q:g}_ms": round(percentile(values, q), 3) for q in (50, 90, 99, 99.9)} | {
            "max_ms": round(max(values), 3) if values else None}

    out = {"count": len(sent_ms), "errors": errors[0], "sent": summary(sent_ms),
           "scheduled": summary(sched_ms)}
    if keep_samples:
        out["scheduled_ms"] = sched_ms
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argument_parser("lookup_latency", __doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--processes", type=int, default=1,
                        help="server processes sharing the port (idgraph serve --processes)")
    parser.add_argument("--threads", type=int, default=4,
                        help="client threads, one connection each")
    args = parser.parse_args(argv)

    load_before = load_average()
    tmp = Path(tempfile.mkdtemp(prefix="idgraph-bench-"))
    token = secrets.token_urlsafe(16)
    proc = None
    try:
        identifiers = seed_identifiers(tmp, args.records, args.seed)
        proc, port = start_server(tmp, token, args.processes)
        time.sleep(1.0)  # let every server process bind before connections are spread
        # the first read of each profile, at the same rate: the warm-up, reported apart
        cold = paced_calls(port, token, "lookup", identifiers, args.rate, args.seconds,
                           args.threads)
        health = paced_calls(port, token, "health", [], args.rate, args.seconds, args.threads)
        lookup = paced_calls(port, token, "lookup", identifiers, args.rate, args.seconds,
                             args.threads)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=20)
        shutil.rmtree(tmp, ignore_errors=True)

    p99 = lookup["scheduled"]["p99_ms"]
    out = {
        "records": args.records, "rate_per_s": args.rate, "seconds": args.seconds,
        "server_processes": args.processes, "client_threads": args.threads,
        "distinct_identifiers": len(identifiers),
        "lookup": lookup, "health_baseline": health, "lookup_first_reads": cold,
        "lookup_p99_vs_health_p99": round(p99 / health["scheduled"]["p99_ms"], 2),
        "target_p99_ms": TARGET_P99_MS,
        "meets_target": p99 <= TARGET_P99_MS and lookup["errors"] == 0,
        "load_average_1m": {"before": load_before, "after": load_average()},
    }
    path = save(parser, args, argv, out)
    for name, res in (("Lookup", lookup), ("Health", health)):
        sent, sched = res["sent"], res["scheduled"]
        print(f"{name:7} @ {args.rate:g}/s, from schedule: p50 {sched['p50_ms']} ms  "
              f"p99 {sched['p99_ms']} ms  max {sched['max_ms']} ms  errors {res['errors']}  "
              f"(from send: p50 {sent['p50_ms']} ms, p99 {sent['p99_ms']} ms)")
    print(f"target Lookup p99 (from schedule) <= {TARGET_P99_MS} ms -> "
          f"{'met' if out['meets_target'] else 'NOT met'}")
    print(f"written {path}")
    return out


if __name__ == "__main__":
    main()
