"""Workers on several machines, on one: events/s with 1, 2 and 3 workers against the
distributed backends (Neo4j over Bolt, Cassandra, turns as a fenced lease in Cassandra),
beside one embedded worker, in the same run; and the hand-over after a SIGKILL.

Starts a local tansu broker, a local ArcadeDB Bolt server and the two-node Cassandra
cluster (the test suite's servers). Each configuration gets fresh topics, a fresh keyspace
prefix and an emptied graph, and the same generated events; each worker has its own empty data dir. The workers start on empty
topics; once each has joined the group and the group has settled (a session timeout with
no new join), the events are produced, and the rate counts from the start of producing to
the moment the store holds every event ID as processed (start-up and the group joins are
not counted; producing is, and takes well under a second).

Hand-over: two distributed workers; one is armed to die (SIGKILL, failpoint
``writer.graph.applied``, its second batch) inside a turn, so it dies holding the lease. Reported: the time from
its death to the next batch the survivor finishes, against the target "under the session
timeout plus one batch" (the survivor waits out the lease, ``writer_lease_seconds``, while
the group also reassigns the dead worker's partitions after the session timeout).

Every worker's turns are one lease: writes are serialised across workers, so more workers
add availability and overlap only the work outside the turn (fetching, decoding, adapting);
the numbers say how much that is on this machine, where the two Cassandra JVMs, ArcadeDB,
the broker and the workers share two cores.

    .venv/bin/python -m benchmarks.distributed_workers --records 6000
"""

from __future__ import annotations

import asyncio
import signal
import tempfile
import time
from pathlib import Path

from benchmarks.common import argument_parser, load_average, save
from benchmarks.stream_throughput import fresh_prefix, read_stats, stop_process, stream_settings
from idgraph.coordination import mark_schema_created
from idgraph.devservers.bolt_server import LocalBoltServer
from idgraph.devservers.cassandra_cluster import PROTOCOL_VERSION, LocalCassandraCluster
from idgraph.devservers.kafka_broker import LocalBroker
from idgraph.engine import Engine
from idgraph.generator import generate
from idgraph.graph.neo4j_backend.settings import Neo4jSettings
from idgraph.profile_store import create_store
from idgraph.profile_store.cassandra_backend.settings import CassandraSettings
from idgraph.settings import Settings
from idgraph.stream.produce import distinct_event_ids, produce_payloads
from idgraph.stream.topics import ensure_topics
from idgraph.worker_processes import start_worker, worker_env

LEASE_SECONDS = 5.0
_READY = "[^Worker]: Ready"
REGION_DATACENTERS = {"eu": {"dc1": 1}, "uk": {"dc1": 1}, "us": {"dc2": 1}, "apac": {"dc2": 1}}


def _empty_graph(neo4j: Neo4jSettings) -> None:
    import neo4j as driver

    with driver.GraphDatabase.driver(neo4j.uri, auth=(neo4j.user,
                                                      neo4j.password.get_secret_value())) as d, \
            d.session(database=neo4j.database) as session:
        session.run("MATCH (n) DETACH DELETE n").consume()


def _settings(data_dir: Path, stream, distributed: bool, neo4j: Neo4jSettings | None,
              cluster: LocalCassandraCluster | None, prefix: str) -> Settings:
    if not distributed:
        return Settings(data_dir=data_dir, stream=stream)
    cassandra = CassandraSettings(
        contact_points=list(cluster.contact_points), port=cluster.port,
        protocol_version=PROTOCOL_VERSION, local_datacenter="dc1",
        keyspace_prefix=prefix.replace("-", "_"), region_datacenters=REGION_DATACENTERS,
        request_timeout_seconds=30.0)
    return Settings(data_dir=data_dir, stream=stream, graph_backend="neo4j", neo4j=neo4j,
                    profile_store_backend="cassandra", cassandra=cassandra,
                    writer_lease_seconds=LEASE_SECONDS,
                    privacy={"suppression_key": "benchmark-only-suppression-key-0123456789"})


def _reader(settings: Settings):
    """A read-only store of ``settings`` (opened once per run, polled for progress)."""
    return create_store(settings.profile_store_backend, settings.data_dir,
                        settings.regions.regions, readonly=True, cassandra=settings.cassandra)


def run_config(broker: LocalBroker, events: list, expected: int, workers: int,
               distributed: bool, neo4j, cluster, work: Path, timeout: float,
               kill_one: bool = False) -> dict:
    """Produce ``events`` to fresh topics, run ``workers`` workers until every event is
    stored; with ``kill_one``, the first worker dies holding the lease."""
    prefix = fresh_prefix("dist")
    stream = stream_settings(broker, prefix)
    asyncio.run(ensure_topics(stream))
    if distributed:
        _empty_graph(neo4j)
    procs, stats_files, logs = [], [], []
    first_settings = None
    reader = None
    if distributed:
        # the keyspaces and tables are created once, before the workers start: Cassandra
        # 2.1 gives a table created by several processes at once different IDs per node
        # (what `idgraph schema` does; the workers refuse to start before its mark)
        schema = _settings(work / f"{prefix}-schema", stream, True, neo4j, cluster, prefix)
        with Engine(schema):
            pass
        mark_schema_created(schema.coordination(), schema.cassandra)
    try:
        for i in range(workers):
            data_dir = work / f"{prefix}-w{i}"
            data_dir.mkdir(parents=True)
            settings = _settings(data_dir, stream, distributed, neo4j, cluster, prefix)
            first_settings = first_settings or settings
            env = worker_env(settings, work / f"{prefix}-w{i}.toml")
            if kill_one and i == 0:
                # dies inside its second ingest turn (the graph written, the store not):
                # holding the lease
                env["IDGRAPH_FAILPOINTS"] = "writer.graph.applied=kill@2"
            stats_files.append(work / f"{prefix}-w{i}.stats.json")
            logs.append(work / f"{prefix}-w{i}.log")
            procs.append(start_worker(data_dir, stats_files[-1], logs[-1], env))
        settle = stream.session_timeout_seconds
        deadline = time.monotonic() + timeout
        while not all(_READY in log.read_text(errors="replace") for log in logs
                      if log.exists()) or not all(log.exists() for log in logs):
            for i, p in enumerate(procs):
                if p.poll() is not None:
                    raise RuntimeError(f"worker {i} exited with {p.returncode}:\n"
                                       + logs[i].read_text()[-3000:])
            if time.monotonic() > deadline:
                raise RuntimeError("the workers did not join the group")
            time.sleep(0.2)
        time.sleep(settle)  # the group settles: the last join rebalanced everyone
        started = time.time()
        asyncio.run(produce_payloads(stream, events))
        died = None
        survivor_after_death = None
        survivor_batches = 0
        while True:
            stats = [read_stats(p) for p in stats_files]
            done_at = [s["last_batch_at"] for s in stats if s and s["batches"]]
            if kill_one and died is None and procs[0].poll() == -signal.SIGKILL:
                died = time.time()
                survivor_batches = (stats[1] or {}).get("batches", 0)
            if died is not None and survivor_after_death is None:
                s1 = stats[1] or {}
                if s1.get("batches", 0) > survivor_batches:
                    survivor_after_death = s1["last_batch_at"] - died
            for i, p in enumerate(procs):
                if p.poll() not in (None, -signal.SIGKILL) and not (kill_one and i == 0):
                    raise RuntimeError(f"worker {i} exited with {p.returncode}:\n"
                                       + logs[i].read_text()[-3000:])
            # the store is asked only once the workers have consumed every message
            consumed = sum(s["events_consumed"] for s in stats if s)
            if done_at and consumed >= len(events):
                reader = reader or _reader(first_settings)
                stored = reader.counts()["processed_events"]
            else:
                stored = 0
            if stored >= expected:
                finished = time.time()
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"not every event stored after {timeout:g} s")
            time.sleep(0.2)
    finally:
        for p in procs:
            stop_process(p)
        if reader is not None:
            reader.close()
    seconds = finished - started
    out = {"workers": workers, "backends": "neo4j+cassandra" if distributed else "embedded",
           "session_timeout_seconds": stream.session_timeout_seconds,
           "events": len(events), "seconds": round(seconds, 2),
           "events_per_s": round(len(events) / seconds),
           "batches": sum((read_stats(p) or {}).get("batches", 0) for p in stats_files),
           "retries": sum((read_stats(p) or {}).get("retries", 0) for p in stats_files)}
    if kill_one:
        out["handover_seconds"] = None if survivor_after_death is None else \
            round(survivor_after_death, 2)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argument_parser("distributed_workers", __doc__)
    parser.add_argument("--records", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args(argv)
    load_before = load_average()
    events = generate(n_records=args.records, seed=args.seed).events
    expected, _rejected = distinct_event_ids(events)
    runs = []
    with tempfile.TemporaryDirectory(prefix="idgraph-dist-") as tmp:
        work = Path(tmp)
        with LocalBroker() as broker, LocalCassandraCluster(work / "cassandra") as cluster:
            bolt = LocalBoltServer(work / "arcadedb")
            bolt.start()
            try:
                from pydantic import SecretStr

                neo4j = Neo4jSettings(uri=bolt.uri, user=bolt.user,
                                      password=SecretStr(bolt.password), database=bolt.database)
                runs.append(run_config(broker, events, expected, 1, False, None, None, work,
                                       args.timeout))
                for k in (1, 2, 3):
                    runs.append(run_config(broker, events, expected, k, True, neo4j, cluster,
                                           work, args.timeout))
                handover = run_config(broker, events, expected, 2, True, neo4j, cluster, work,
                                      args.timeout, kill_one=True)
            finally:
                bolt.stop()
    session_timeout = runs[1]["session_timeout_seconds"]
    one_batch = runs[1]["seconds"] / max(runs[1]["batches"], 1)
    embedded = runs[0]["events_per_s"]
    result = {
        "records": args.records, "events": len(events),
        "writer_lease_seconds": LEASE_SECONDS,
        "runs": runs,
        "distributed_vs_embedded": {f"{r['workers']}_workers": round(r["events_per_s"] / embedded, 3)
                                    for r in runs[1:]},
        "handover": handover,
        "handover_target_seconds": round(session_timeout + one_batch, 2),
        "handover_target": f"session timeout ({session_timeout:g} s) plus one batch of one "
                           f"distributed worker ({one_batch:.2f} s)",
        "handover_meets_target": handover.get("handover_seconds") is not None
        and handover["handover_seconds"] < session_timeout + one_batch,
        "load_average_1m": {"before": load_before, "after": load_average()},
        "note": "one machine: broker, ArcadeDB, two Cassandra nodes and the workers share 2 "
                "cores; writes are serialised by the one lease",
    }
    path = save(parser, args, argv, result)
    for r in runs:
        print(f"{r['backends']:16s} {r['workers']} worker(s): {r['events_per_s']:6d} events/s "
              f"({r['seconds']} s, {r['retries']} retries)")
    print(f"hand-over after a SIGKILL: {handover.get('handover_seconds')} s")
    print(f"written {path}")
    return result


if __name__ == "__main__":
    main()
