"""Privacy requests timed end to end: forgetting a subject, and exporting a subject with
10,000 events, on the embedded backends and on Neo4j + Cassandra.

For each deployment in the same run, N generated records are ingested (deterministic
rules, batches of 2,000 payloads), plus one subject with E events of its own (Segment
``identify`` and ``track`` calls of one user on 25 devices, as Segment's HTTP API
documents them: a record keeps at most 500 events, so they sit on 26 records). Then:

* ``export``: ``export_subject`` of that subject (the zip of its profile, identities with
  each edge's rule, records, events, consent, segments and access trail), timed;
* ``forget``: K subjects (profiles with at least two records, seeded sample) forgotten one
  at a time with ``Engine.forget`` (request, suppression, and the erasure from the graph
  and its history, the store, the review queue, the ledger, the turn feed and the dead
  letters), each timed from the call to the completed request; then the subject's
  payloads are replayed: every event of theirs must be suppressed and none applied (a
  payload that names others too, a meeting, gives the others' events as duplicates).

The embedded deployment is networkx + SQLite in a temporary data dir; the distributed one
is the local Bolt server (ArcadeDB) and the local two-node Cassandra cluster the tests use
(or servers named by flags), with the writer's coordination files in the data dir.

Targets: forget one subject <= 5 s embedded and <= 30 s on Neo4j + Cassandra; export a
subject with 10,000 events <= 10 s.

    .venv/bin/python -m benchmarks.privacy_requests --records 20000 --forgets 20 --events 10000
"""

from __future__ import annotations

import io
import json
import random
import shutil
import tempfile
import time
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.common import argument_parser, load_average, percentile, save
from idgraph.engine import Engine
from idgraph.engine.consent import ConsentService
from idgraph.engine.export_subject import export_subject
from idgraph.generator import generate
from idgraph.settings import Settings

FORGET_TARGET_S = {"embedded": 5.0, "distributed": 30.0}
EXPORT_TARGET_S = 10.0
REGION_DATACENTERS = {"eu": {"dc1": 1}, "uk": {"dc1": 1}, "us": {"dc2": 1}, "apac": {"dc2": 1}}
SUBJECT = "bench-user-10k"


def subject_events(n: int, devices: int = 25) -> list[tuple[str, dict]]:
    """``n`` Segment calls of one user (HTTP tracking API shape) over ``devices`` devices:
    per device an identify (userId + anonymousId: it joins the device's cookie to the
    user) and anonymous track calls, so the events sit on ``devices`` records (a record
    keeps at most ``survivorship.max_events_per_record`` events)."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    out = []
    per = n // devices
    for d in range(devices):
        anon = f"bench-anon-{d}"
        out.append(("segment", {"type": "identify", "messageId": f"bench-identify-{d}",
                                "userId": SUBJECT, "anonymousId": anon,
                                "traits": {"email": "bench.subject@example.com",
                                           "firstName": "Bench", "lastName": "Subject"},
                                "timestamp": (t0 + timedelta(days=d)).isoformat()}))
        for i in range(per - 1):
            out.append(("segment", {
                "type": "track", "messageId": f"bench-{d}-{i}", "anonymousId": anon,
                "event": "Product Viewed" if i % 3 else "Order Completed",
                "properties": {"product_id": f"sku-{i % 97}", "revenue": float(i % 50)},
                "timestamp": (t0 + timedelta(days=d, minutes=i + 1)).isoformat()}))
    return out


def _seconds(samples: list[float]) -> dict:
    return {"count": len(samples), "p50_s": round(percentile(samples, 50), 3),
            "p99_s": round(percentile(samples, 99), 3),
            "max_s": round(max(samples), 3) if samples else None}


def run(settings: Settings, events: list, extra: list, forgets: int, seed: int,
        export_events: int) -> dict:
    out: dict = {}
    with Engine(settings) as engine:
        t0 = time.perf_counter()
        engine.ingest_payloads(events, batch_size=2000)
        engine.ingest_payloads(extra, batch_size=2000)
        out["ingest_s"] = round(time.perf_counter() - t0, 3)
        consent = ConsentService(engine.ledger, engine.queries, engine.backends.keys)
        t0 = time.perf_counter()
        profile, data = export_subject(consent, identifier=f"user:segment:{SUBJECT}",
                                       requested_by="benchmark")
        export_s = time.perf_counter() - t0
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            exported = json.loads(zf.read("manifest.json"))["files"]["events.jsonl"]["lines"]
        out["export"] = {"seconds": round(export_s, 3), "bytes": len(data),
                         "records": len(profile.record_keys), "events_exported": exported,
                         "meets_target": export_s <= EXPORT_TARGET_S
                         and exported >= export_events}
        rng = random.Random(seed)
        candidates = sorted(p for p in engine.graph.profile_ids()
                            if len(engine.graph.records_of(p)) >= 2)
        chosen = rng.sample(candidates, min(forgets, len(candidates)))
        times, records, suppressed_total = [], 0, 0
        replay: list[tuple[str, dict]] = []
        for pid in chosen:
            profile = engine.queries.get_profile(pid)
            idents = {i.identifier.split(":", 1)[1].lower() for i in profile.identifiers
                      if i.linked}
            mine = [e for e in events if any(v in json.dumps(e[1]).lower() for v in idents)]
            t0 = time.perf_counter()
            request = engine.forget(profile_id=pid, reason="benchmark")
            times.append(time.perf_counter() - t0)
            assert request.status == "completed", request
            records += request.erased.get("records", 0)
            suppressed_total += request.suppressed
            replay.extend(mine)
        result = engine.ingest_payloads(replay, batch_size=2000)
        # a payload may carry other people too (a meeting's attendees): their events are
        # duplicates; every event of a forgotten person is suppressed, none applied
        out["forget"] = {"subjects": len(chosen), "records_erased": records,
                         "values_suppressed": suppressed_total, **_seconds(times),
                         "replayed_payloads": len(replay),
                         "replayed_events": result.events_received,
                         "replay_suppressed": result.suppressed_events,
                         "replay_duplicates": result.duplicate_events,
                         "replay_applied": result.events_applied}
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argument_parser("privacy_requests", __doc__)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--forgets", type=int, default=20)
    parser.add_argument("--events", type=int, default=10_000,
                        help="events of the exported subject")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--deployments", default="embedded,distributed",
                        help="comma-separated: embedded, distributed")
    args = parser.parse_args(argv)

    load_before = load_average()
    events = generate(n_records=args.records, seed=args.seed).events
    extra = subject_events(args.events)
    work = Path(tempfile.mkdtemp(prefix="idgraph-bench-"))
    out: dict = {"records": args.records, "export_subject_events": args.events,
                 "forget_target_s": FORGET_TARGET_S, "export_target_s": EXPORT_TARGET_S}
    try:
        for deployment in args.deployments.split(","):
            if deployment == "embedded":
                out["embedded"] = run(Settings(data_dir=work / "embedded"), events, extra,
                                      args.forgets, args.seed, args.events)
            elif deployment == "distributed":
                out["distributed"] = _distributed(work, events, extra, args)
            else:
                parser.error(f"--deployments: unknown {deployment!r}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for name in ("embedded", "distributed"):
        if name in out:
            f = out[name]["forget"]
            f["meets_target"] = (f["p99_s"] <= FORGET_TARGET_S[name]
                                 and f["replay_suppressed"] > 0 and f["replay_applied"] == 0
                                 and f["replay_suppressed"] + f["replay_duplicates"]
                                 == f["replayed_events"])
    out["load_average_1m"] = {"before": load_before, "after": load_average()}
    path = save(parser, args, argv, out)
    for name in ("embedded", "distributed"):
        if name in out:
            r = out[name]
            print(f"{name:12} forget p50 {r['forget']['p50_s']} s p99 {r['forget']['p99_s']} s"
                  f" over {r['forget']['subjects']} subjects (target "
                  f"{FORGET_TARGET_S[name]:g} s: {'met' if r['forget']['meets_target'] else 'NOT met'});"
                  f" replay {r['forget']['replay_suppressed']}/{r['forget']['replayed_events']}"
                  f" suppressed; export of {r['export']['events_exported']} events "
                  f"{r['export']['seconds']} s ({'met' if r['export']['meets_target'] else 'NOT met'})")
    print(f"written {path}")
    return out


def _distributed(work: Path, events: list, extra: list, args) -> dict:
    from idgraph.devservers.bolt_server import LocalBoltServer
    from idgraph.devservers.cassandra_cluster import LocalCassandraCluster
    from idgraph.graph.neo4j_backend.settings import Neo4jSettings
    from idgraph.profile_store.cassandra_backend.settings import CassandraSettings

    with LocalBoltServer(work / "arcadedb", heap="2g") as bolt, \
            LocalCassandraCluster(work / "cluster") as cluster:
        settings = Settings(
            data_dir=work / "distributed", graph_backend="neo4j",
            profile_store_backend="cassandra",
            neo4j=Neo4jSettings(uri=bolt.uri, user=bolt.user, password=bolt.password,
                                database=bolt.database),
            cassandra=CassandraSettings(
                contact_points=cluster.contact_points, port=cluster.port, protocol_version=3,
                local_datacenter="dc1", keyspace_prefix=f"priv{int(time.time())}",
                region_datacenters=REGION_DATACENTERS),
            privacy={"suppression_key": "benchmark-suppression-key-" + "k" * 16})
        return run(settings, events, extra, args.forgets, args.seed, args.events)


if __name__ == "__main__":
    main()
