"""``idgraph demo --kafka``: the distributed event path on one machine, then a summary.

Start a local Kafka-protocol broker (tansu; or use ``--brokers``) -> create the topics ->
start ``--workers`` ``idgraph worker`` processes in one consumer group on a shared data
dir -> produce the generated raw payloads to the input topics with a plain Kafka
producer -> wait until the workers have stored every event -> answer lookups over gRPC from
a reader of the store -> count the profile-change and dead-letter messages -> print.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pydantic import SecretStr

from idgraph.core.errors import BackendError
from idgraph.settings import Settings


def _count_messages(cfg, topic: str, partitions: int) -> int:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from idgraph.stream.topics import client_options

    async def run() -> int:
        consumer = AIOKafkaConsumer(**client_options(cfg), group_id=None,
                                    auto_offset_reset="earliest")
        await consumer.start()
        try:
            consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
            n, idle = 0, 0
            while idle < 3:
                batch = await consumer.getmany(timeout_ms=300, max_records=10_000)
                got = sum(len(v) for v in batch.values())
                n += got
                idle = 0 if got else idle + 1
            return n
        finally:
            await consumer.stop()

    return asyncio.run(run())


def run_kafka_demo(settings: Settings, records: int, seed: int, lookups: int, workers: int,
                   brokers: list[str] | None, keep_data: bool) -> int:
    from idgraph.devservers.kafka_broker import LocalBroker
    from idgraph.engine.backends import open_queries, open_reader_store
    from idgraph.evaluation import evaluate, percentile
    from idgraph.generator import generate
    from idgraph.service.client import ProfileClient
    from idgraph.service.server import create_server
    from idgraph.stream.produce import distinct_event_ids, produce_payloads
    from idgraph.stream.topics import ensure_topics_sync
    from idgraph.worker_processes import start_worker, worker_env

    tmp = Path(tempfile.mkdtemp(prefix="idgraph-kafka-demo-"))
    if not keep_data:
        settings = settings.model_copy(update={"data_dir": tmp / "data"})
    broker = None
    procs: list[subprocess.Popen] = []
    try:
        if brokers is None:
            broker = LocalBroker(log_dir=tmp).start()
            brokers = [broker.url]
            print(f"started a local tansu broker on {broker.bootstrap} "
                  f"(ready in {broker.ready_seconds * 1000:.0f} ms)")
        stream = settings.stream.model_copy(update={
            "brokers": brokers, "topic_prefix": f"demo{secrets.token_hex(3)}",
            "consumer_group": f"demo-{secrets.token_hex(3)}",
            # tansu holds a group join for half the session timeout (devservers/kafka_broker.py)
            "session_timeout_seconds": 6.0 if broker else settings.stream.session_timeout_seconds,
        })
        settings = settings.model_copy(update={"stream": stream})
        ensure_topics_sync(stream)

        dataset = generate(n_records=records, seed=seed)
        expected, _rejected = distinct_event_ids(dataset.events)
        print(f"generated {len(dataset.events)} source payloads ({expected} record events) for "
              f"{len(dataset.people)} people (seed {seed})")

        env = worker_env(settings, tmp / "worker-settings.toml")
        stats_files = [tmp / f"worker-{n}.json" for n in range(workers)]
        procs.extend(start_worker(settings.data_dir, stats_files[n], tmp / f"worker-{n}.log", env)
                     for n in range(workers))
        print(f"started {workers} worker process(es) in consumer group {stream.consumer_group}")

        t0 = time.perf_counter()
        sent = asyncio.run(produce_payloads(stream, dataset.events))
        produce_s = time.perf_counter() - t0
        print(f"produced {sent} messages in {produce_s:.1f}s; waiting for the workers")

        deadline = time.monotonic() + 600
        done = 0
        while time.monotonic() < deadline:
            for n, p in enumerate(procs):
                if p.poll() is not None:
                    tail = (tmp / f"worker-{n}.log").read_text(errors="replace")[-2000:]
                    print(f"worker {n} exited with {p.returncode}:\n{tail}", file=sys.stderr)
                    return 1
            done = _stored_events(settings)
            if done >= expected:
                break
            time.sleep(0.2)
        e2e_s = time.perf_counter() - t0
        if done < expected:
            print(f"timed out: {done} of {expected} events stored", file=sys.stderr)
            return 1
        # the workers write their counters after publishing a batch's changes, a moment
        # after the batch is stored
        settle = time.monotonic() + 10
        while True:
            stats = [json.loads(f.read_text()) for f in stats_files if f.exists()]
            if sum(s["events_applied"] for s in stats) >= done or time.monotonic() > settle:
                break
            time.sleep(0.1)

        store = open_reader_store(settings, settings.served_regions)
        queries = open_queries(settings, store)
        predicted = {f"{s}:{r}": p for s, r, p in store.iter_record_profiles()}
        accuracy = evaluate(dataset.truth, predicted)
        counts = store.counts()
        rng = random.Random(seed)
        pids = sorted(set(predicted.values()))
        sample = [i.identifier for pid in rng.sample(pids, min(300, len(pids)))
                  for i in queries.get_profile(pid).identifiers]
        token = secrets.token_urlsafe(24)
        grpc_settings = settings.grpc.model_copy(update={"api_tokens": [SecretStr(token)]})
        server, port = create_server(queries, grpc_settings, "127.0.0.1:0")
        server.start()
        try:
            with ProfileClient(f"127.0.0.1:{port}", token=token) as client:
                client.wait_ready()
                latencies, found = [], 0
                for n in range(lookups):
                    t = time.perf_counter()
                    found += bool(client.lookup(sample[n % len(sample)]).profile.profile_id)
                    latencies.append((time.perf_counter() - t) * 1000)
        finally:
            server.stop(grace=1)
            store.close()
        changes = _count_messages(stream, stream.profile_changes_topic, stream.partitions)
        dead = _count_messages(stream, stream.dead_letter_topic, stream.partitions)

        print()
        print("== idgraph demo --kafka summary ==")
        print(f"produced           {sent:>10} messages to {len(stream.source_topics)} input topics")
        print(f"stored             {done:>10} record events by {workers} worker(s): "
              + ", ".join(f"{s['events_applied']} applied / {s['batches']} batches"
                          for s in stats))
        print(f"end to end         {done / e2e_s:>10.0f} record events/s "
              f"(first message produced -> every event stored, {e2e_s:.1f}s, "
              f"incl. the workers' group join)")
        print(f"profiles           {counts['profiles']:>10}  records {counts['records']}")
        print(f"profile changes    {changes:>10} messages on {stream.profile_changes_topic}")
        print(f"dead letters       {dead:>10} messages on {stream.dead_letter_topic}")
        print(f"people in 1 profile{accuracy.people_in_one_profile:>10.2%}   precision "
              f"{accuracy.precision:.4f}, recall {accuracy.recall:.4f} (deterministic rules)")
        print(f"gRPC Lookup        {len(latencies):>10} calls, found {found}; p50 "
              f"{statistics.median(latencies):.2f} ms, p99 {percentile(latencies, 99):.2f} ms")
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        if broker is not None:
            broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _stored_events(settings: Settings) -> int:
    """Events the workers have stored so far; 0 until the first worker has created the
    store (its file appears a moment before its tables)."""
    from idgraph.engine.backends import open_reader_store

    try:
        store = open_reader_store(settings, settings.regions.regions)
    except BackendError:
        return 0
    try:
        return store.counts()["processed_events"]
    except BackendError:
        return 0
    finally:
        store.close()
