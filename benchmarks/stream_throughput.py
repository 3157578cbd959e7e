"""Streaming throughput: Kafka input topics -> one ``idgraph worker`` -> profile store.

Starts a local tansu broker (:class:`idgraph.devservers.kafka_broker.LocalBroker`), creates the
project's topics under a fresh prefix, and produces the generated multi-source events to
the input topics (as ``idgraph backfill`` does: JSON value, ``source`` header, keyed by
the source record ID; not timed as part of the end-to-end rate). Then, in the same run:

* ``ceiling``: a raw ``AIOKafkaConsumer`` (no group, every input partition assigned
  explicitly, from the earliest offset) reads every produced message: what the broker
  and the client library can deliver on this machine, with no processing at all;
* ``e2e``: ONE ``idgraph worker`` process on a fresh data dir consumes the same messages
  through Faust and the engine. The rate counts from the moment the worker is ready (its
  consumer group joined and partitions assigned, taken from the worker's log) to the
  worker's last batch, once the profile store holds every event as processed (the
  store's ``processed_events`` equals the distinct event IDs of the produced payloads).
  Start-up (process start to group join request) and the group join (which tansu holds
  for half the session timeout) are reported apart, not counted in the rate.

Target: e2e >= 10,000 events/s (aim 20,000) at 100k records on the 2-core machine.

    .venv/bin/python -m benchmarks.stream_throughput --records 100000
    .venv/bin/python -m benchmarks.stream_throughput --records 30000 --batch-within 0.2 \
        --output stream_throughput_within0.2
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections import deque
from datetime import datetime
from pathlib import Path

from benchmarks.common import argument_parser, save
from idgraph.devservers.kafka_broker import LocalBroker, terminate_process
from idgraph.generator import generate
from idgraph.profile_store import create_store
from idgraph.settings import Settings
from idgraph.stream.produce import distinct_event_ids, produce_payloads
from idgraph.stream.settings import StreamSettings
from idgraph.stream.topics import client_options, ensure_topics
from idgraph.worker_processes import start_worker, worker_env

TARGET = 10_000
AIM = 20_000
POLL_S = 0.02
WORKER_STOP_GRACE_S = 30.0

# Faust / aiokafka log lines that mark the worker's phases (the worker's own clock)
_LOG_STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")
_JOIN_STARTED = "(Re-)joining group"
_READY = "[^Worker]: Ready"


# -- helpers shared with benchmarks.stream_freshness ------------------------------------


def stream_settings(broker: LocalBroker, prefix: str, batch_size: int | None = None,
                    batch_within: float | None = None) -> StreamSettings:
    """Stream settings of a benchmark run: its own topics and group; tansu's timeouts."""
    base = StreamSettings()
    return base.model_copy(update={
        "brokers": [broker.url], "topic_prefix": prefix, "consumer_group": f"{prefix}-workers",
        "session_timeout_seconds": 6.0, "heartbeat_interval_seconds": 1.0,
        "batch_size": batch_size or base.batch_size,
        "batch_within_seconds": batch_within or base.batch_within_seconds,
    })


def stop_process(proc: subprocess.Popen | None, grace: float = WORKER_STOP_GRACE_S) -> None:
    """SIGTERM by PID, wait ``grace`` seconds, then SIGKILL; always reaps."""
    if proc is not None:
        terminate_process(proc, grace)


def read_stats(path: Path) -> dict | None:
    """The worker's stats file (written atomically after every batch), or None."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        with path.open("r", encoding="utf-8", errors="replace") as fh:
            return "".join(deque(fh, maxlen=lines))
    except FileNotFoundError:
        return "(no log)"


def worker_phases(log_path: Path) -> dict[str, float]:
    """Wall-clock times (epoch s) of the worker's group join request and of "Ready"."""
    out: dict[str, float] = {}
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        m = _LOG_STAMP.match(line)
        if m is None:
            continue
        stamp = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()  # local
        if _JOIN_STARTED in line and "join_started" not in out:
            out["join_started"] = stamp
        elif _READY in line and "ready" not in out:
            out["ready"] = stamp
    return out


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None,
             log_path: Path | None = None, poll: float = POLL_S):
    """Poll ``predicate()`` until it returns something truthy; fail on timeout/exit."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: the worker exited with {proc.returncode}; log tail:\n"
                               f"{log_tail(log_path) if log_path else ''}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not after {timeout:g}s; log tail:\n"
                               f"{log_tail(log_path) if log_path else ''}")
        time.sleep(poll)


def fresh_prefix(name: str) -> str:
    return f"bench-{name}-{uuid.uuid4().hex[:8]}"


# -- the two measurements ---------------------------------------------------------------


async def raw_consume(cfg: StreamSettings, expected: int, timeout_s: float = 300.0) -> dict:
    """Read ``expected`` messages from every input partition with a bare consumer."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(**client_options(cfg), group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        parts = [TopicPartition(t, p) for t in cfg.input_topics for p in range(cfg.partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        n = 0
        value_bytes = 0
        t0 = time.perf_counter()
        deadline = t0 + timeout_s
        while n < expected:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for msgs in batches.values():
                n += len(msgs)
                value_bytes += sum(len(m.value or b"") for m in msgs)
            if time.perf_counter() > deadline:
                raise RuntimeError(f"raw consumer: {n} of {expected} messages after {timeout_s}s")
        seconds = time.perf_counter() - t0
    finally:
        await consumer.stop()
    return {"messages": n, "seconds": round(seconds, 3), "events_per_s": round(n / seconds),
            "mean_value_bytes": round(value_bytes / max(n, 1))}


def run_worker_e2e(cfg: StreamSettings, work: Path, messages: int, expected_ids: int,
                   timeout_s: float) -> dict:
    data_dir = work / "data"
    data_dir.mkdir()
    stats_file = work / "worker-stats.json"
    log_path = work / "worker.log"
    regions = Settings(data_dir=data_dir).regions.regions
    proc = None
    store = None
    history: list[tuple[int, int, float]] = []  # (batches, events_consumed, last_batch_at)
    try:
        spawned = time.time()
        proc = start_worker(data_dir, stats_file, log_path,
                            worker_env(Settings(data_dir=data_dir, stream=cfg),
                                       work / "worker-settings.toml"))

        def complete() -> dict | None:
            nonlocal store
            stats = read_stats(stats_file)
            if stats is not None and (not history or stats["batches"] != history[-1][0]):
                history.append((stats["batches"], stats["events_consumed"],
                                stats["last_batch_at"]))
            if stats is None or stats["events_consumed"] < messages:
                return None
            if store is None:
                store = create_store("sqlite", data_dir, regions, readonly=True)
            counts = store.counts()
            return {"stats": stats, "counts": counts, "seen_at": time.time()} \
                if counts["processed_events"] >= expected_ids else None

        done = wait_for(complete, timeout_s, f"worker did not store {expected_ids} events",
                        proc, log_path)
        phases = worker_phases(log_path)
        if "ready" not in phases or "join_started" not in phases:
            raise RuntimeError("could not find the group join / Ready lines in the worker log:\n"
                               + log_tail(log_path))
        pid = proc.pid
    finally:
        stop_process(proc)
        if store is not None:
            store.close()

    stats, counts = done["stats"], done["counts"]
    ready, finished = phases["ready"], stats["last_batch_at"]
    seconds = finished - ready
    return {
        "worker_pid": pid,
        "startup_seconds": round(phases["join_started"] - spawned, 3),
        "group_join_seconds": round(ready - phases["join_started"], 3),
        "first_batch_seen": {"batches": history[0][0], "events": history[0][1],
                             "after_ready_s": round(history[0][2] - ready, 3)},
        "steady_events_per_s": _steady_rate(history, messages),
        "seconds": round(seconds, 3),
        "events_per_s": round(messages / seconds),
        "store_seen_complete_after_last_batch_s": round(done["seen_at"] - finished, 3),
        "batches": stats["batches"],
        "mean_batch_size": round(stats["events_consumed"] / max(stats["batches"], 1), 1),
        "events_consumed": stats["events_consumed"],
        "records_applied": stats["events_applied"],
        "duplicate_events": stats["duplicate_events"],
        "dead_letters": stats["dead_letters"],
        "changes_published": stats["changes_published"],
        "retries": stats["retries"],
        "store_counts": counts,
    }


def _steady_rate(history: list[tuple[int, int, float]], messages: int) -> int | None:
    """Events/s between the batches that crossed 10% and 90% of the messages (the worker's
    own clock): the rate once warm, without the first and the last batches."""
    lo = next((h for h in history if h[1] >= 0.1 * messages), None)
    hi = next((h for h in history if h[1] >= 0.9 * messages), None)
    if lo is None or hi is None or hi[2] <= lo[2]:
        return None
    return round((hi[1] - lo[1]) / (hi[2] - lo[2]))


def main(argv: list[str] | None = None) -> dict:
    parser = argument_parser("stream_throughput", __doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--batch-size", type=int, default=None,
                        help="stream.batch_size of the worker (default: the setting's default)")
    parser.add_argument("--batch-within", type=float, default=None,
                        help="stream.batch_within_seconds (default: the setting's default)")
    parser.add_argument("--timeout", type=float, default=900,
                        help="seconds the worker may take to store everything")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()[0]
    events = generate(n_records=args.records, seed=args.seed).events
    expected_ids, rejected = distinct_event_ids(events)

    work = Path(tempfile.mkdtemp(prefix="idgraph-bench-stream-"))
    broker = LocalBroker(log_dir=work)
    try:
        broker.start()
        cfg = stream_settings(broker, fresh_prefix("tput"), args.batch_size, args.batch_within)
        asyncio.run(ensure_topics(cfg))
        t0 = time.perf_counter()
        produced = asyncio.run(produce_payloads(cfg, events))
        produce_s = time.perf_counter() - t0
        ceiling = asyncio.run(raw_consume(cfg, produced))
        e2e = run_worker_e2e(cfg, work, produced, expected_ids, args.timeout)
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)

    rate = e2e["events_per_s"]
    out = {
        "records": args.records,
        "events": produced,
        "distinct_event_ids": expected_ids,
        "payloads_rejected_by_adapters": rejected,
        "input_topics": len(cfg.input_topics),
        "partitions_per_topic": cfg.partitions,
        "worker_batch_size": cfg.batch_size,
        "worker_batch_within_seconds": cfg.batch_within_seconds,
        "session_timeout_seconds": cfg.session_timeout_seconds,
        "produce": {"seconds": round(produce_s, 3), "events_per_s": round(produced / produce_s),
                    "note": "stream.produce.produce_payloads (adapts each payload for its key); "
                            "not part of the e2e rate"},
        "ceiling_raw_consumer": ceiling,
        "e2e_worker": e2e,
        "e2e_vs_ceiling": round(rate / ceiling["events_per_s"], 3),
        "target_events_per_s": TARGET,
        "aim_events_per_s": AIM,
        "meets_target": rate >= TARGET and e2e["dead_letters"] == 0,
        "load_average_1m": {"before": round(load_before, 2),
                            "after": round(os.getloadavg()[0], 2)},
        "note": "one worker process, broker and benchmark on the same machine; e2e counts "
                "from the worker's Ready (group joined) to its last batch, after which the "
                "store held every event ID as processed",
    }
    path = save(parser, args, argv, out)
    print(f"records {args.records}  events {produced}  distinct event IDs {expected_ids}")
    print(f"produce     : {out['produce']['events_per_s']:>8} events/s (not timed in e2e)")
    print(f"ceiling     : {ceiling['events_per_s']:>8} events/s (raw aiokafka consumer, "
          f"{ceiling['seconds']:.2f}s)")
    print(f"e2e worker  : {rate:>8} events/s ({e2e['seconds']:.2f}s from Ready; "
          f"{out['e2e_vs_ceiling']:.0%} of the ceiling) target {TARGET} (aim {AIM}) -> "
          f"{'met' if out['meets_target'] else 'NOT met'}")
    print(f"worker      : start-up {e2e['startup_seconds']:.2f}s, group join "
          f"{e2e['group_join_seconds']:.2f}s, {e2e['batches']} batches (mean "
          f"{e2e['mean_batch_size']} events), dead letters {e2e['dead_letters']}, "
          f"processed_events {e2e['store_counts']['processed_events']}")
    print(f"written {path}")
    return out


if __name__ == "__main__":
    main()
