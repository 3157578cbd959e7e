"""Profile stores side by side: the embedded SQLite store and the Cassandra store on a
local two-node, two-data-centre cluster (Cassandra 2.1.0 from the npm package, started
by this benchmark: node 127.0.0.1 in dc1 holds ``eu`` and ``uk``, 127.0.0.2 in dc2 holds
``us`` and ``apac``; or the cluster named by ``--contact-points``).

The workload is the engine's own: N generated records are ingested once through the
engine on a scratch SQLite store (deterministic rules, batches of 2,000 payloads as the
demo does), and every :class:`StoreBatch` it writes is captured (not timed). Then, for
each backend in the same run, on an empty store serving every region:

* ``upserts``: the captured batches are written in order (record upserts with their
  identifier index rows, heads, merges, region moves, history, processed event IDs):
  ``record_upserts_per_s`` is record states written over the wall time of all writes;
* ``lookup_ms``: p50/p99 of one identifier lookup followed by ``get_profile`` of the
  profile it finds (what ``Lookup`` asks the store), for a seeded sample of identifiers,
  one call at a time; ``lookup_only_ms`` and ``get_profile_ms`` split it. A store of
  every region asks each region's keyspace (the region of an identifier is not known
  before); ``regional_reader`` times the same calls from a read-only store of ``eu``
  only (a regional server) for the sampled identifiers of EU profiles.

Cassandra runs at LOCAL_QUORUM with prepared statements, ``cassandra.concurrency``
requests in flight and each region's statements routed to its data centre. The client,
both JVMs and this process share the machine (2 cores here).

    .venv/bin/python -m benchmarks.cassandra_store --records 20000
"""

from __future__ import annotations

import copy
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.common import argument_parser, percentile, save
from idgraph.engine import Engine
from idgraph.generator import generate
from idgraph.profile_store import create_store
from idgraph.profile_store.base import ProfileStore, StoreBatch
from idgraph.profile_store.cassandra_backend.settings import CassandraSettings
from idgraph.settings import Settings

REGION_DATACENTERS = {"eu": {"dc1": 1}, "uk": {"dc1": 1}, "us": {"dc2": 1}, "apac": {"dc2": 1}}


def capture_batches(records: int, seed: int, work: Path) -> tuple[list[StoreBatch], list[str]]:
    """The StoreBatches the engine writes for ``records`` generated records, and the
    regions (every batch copied as it was written: the engine reuses its objects)."""
    settings = Settings(data_dir=work / "capture")
    batches: list[StoreBatch] = []
    events = generate(n_records=records, seed=seed).events
    with Engine(settings) as engine:
        write = engine.store.write

        def capture(batch: StoreBatch) -> None:
            batches.append(copy.deepcopy(batch))
            write(batch)

        engine.store.write = capture  # type: ignore[method-assign]
        engine.ingest_payloads(events, batch_size=2000)
    return batches, list(settings.regions.regions)


def _ms(samples: list[float]) -> dict:
    return {"count": len(samples), "p50_ms": round(percentile(samples, 50) * 1e3, 3),
            "p99_ms": round(percentile(samples, 99) * 1e3, 3),
            "max_ms": round(max(samples) * 1e3, 3)}


def time_lookups(store: ProfileStore, sample: list[str]) -> tuple[dict, dict[str, str]]:
    """p50/p99 of lookup + get_profile of the best match, one call at a time; and the
    region of each identifier's best match."""
    both, lookup_only, profile_only = [], [], []
    found, regions = 0, {}
    for ident in sample:
        t0 = time.perf_counter()
        matches = store.lookup(ident)
        t1 = time.perf_counter()
        profile = store.get_profile(matches[0].profile_id) if matches else None
        t2 = time.perf_counter()
        found += profile is not None
        both.append(t2 - t0)
        lookup_only.append(t1 - t0)
        if matches:
            profile_only.append(t2 - t1)
            regions[ident] = matches[0].region
    return {"lookup_ms": _ms(both), "lookup_only_ms": _ms(lookup_only),
            "get_profile_ms": _ms(profile_only), "lookups_found": found}, regions


def measure(store: ProfileStore, batches: list[StoreBatch], lookups: int, seed: int,
            reader: Callable[[list[str]], ProfileStore]) -> dict:
    """Write ``batches`` into ``store`` (timed), then time lookups + get_profile: from
    ``store`` (every region) and from a read-only store of the ``eu`` region only (a
    regional server) for the sampled identifiers of EU profiles."""
    t0 = time.perf_counter()
    for batch in batches:
        store.write(batch)
    seconds = time.perf_counter() - t0
    upserts = sum(len(b.records) for b in batches)
    stored = store.get_records(sorted(store.record_profiles()))
    identifiers = sorted({i for r in stored.values() for i in r.identifiers})
    sample = random.Random(seed).sample(identifiers, min(lookups, len(identifiers)))
    timed, best_region = time_lookups(store, sample)
    eu_sample = [i for i in sample if best_region.get(i) == "eu"]
    eu = reader(["eu"])
    try:
        regional = {"regions": ["eu"], "identifiers": len(eu_sample),
                    **time_lookups(eu, eu_sample)[0]}
    finally:
        eu.close()
    return {
        "upserts": {"batches": len(batches), "record_upserts": upserts,
                    "heads": sum(len(b.heads) for b in batches),
                    "merges": sum(len(b.reassign) for b in batches),
                    "region_moves": sum(len(b.regions) for b in batches),
                    "seconds": round(seconds, 3),
                    "record_upserts_per_s": round(upserts / seconds)},
        **timed,
        "regional_reader": regional,
        "counts": store.counts(),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argument_parser("cassandra_store", __doc__)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--lookups", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=CassandraSettings().concurrency)
    parser.add_argument("--contact-points", default="",
                        help="comma-separated IPs of a running cluster (default: start one)")
    parser.add_argument("--port", type=int, default=9042)
    args = parser.parse_args(argv)

    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="idgraph-bench-cassandra-"))
    cluster = None
    try:
        t0 = time.perf_counter()
        batches, regions = capture_batches(args.records, args.seed, work)
        capture_s = time.perf_counter() - t0

        sqlite = create_store("sqlite", work / "sqlite", regions)
        try:
            sqlite_result = measure(
                sqlite, batches, args.lookups, args.seed,
                lambda regions: create_store("sqlite", work / "sqlite", regions, readonly=True))
        finally:
            sqlite.close()

        start_s = 0.0
        if args.contact_points:
            contact_points, port = args.contact_points.split(","), args.port
        else:
            from idgraph.devservers.cassandra_cluster import LocalCassandraCluster

            cluster = LocalCassandraCluster(work / "cluster")
            t0 = time.perf_counter()
            cluster.start()
            start_s = time.perf_counter() - t0
            contact_points, port = cluster.contact_points, cluster.port
        cfg = CassandraSettings(
            contact_points=contact_points, port=port, protocol_version=3,
            local_datacenter="dc1", keyspace_prefix=f"bench{int(time.time())}",
            region_datacenters=REGION_DATACENTERS, concurrency=args.concurrency)
        t0 = time.perf_counter()
        cassandra = create_store("cassandra", work, regions, cassandra=cfg)
        schema_s = time.perf_counter() - t0
        try:
            cassandra_result = measure(
                cassandra, batches, args.lookups, args.seed,
                lambda regions: create_store("cassandra", work, regions, readonly=True,
                                             cassandra=cfg))
        finally:
            cassandra.close()
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(work, ignore_errors=True)

    if cassandra_result["counts"] != sqlite_result["counts"]:
        raise RuntimeError(f"the backends hold different data: {cassandra_result['counts']} "
                           f"vs {sqlite_result['counts']}")
    out = {
        "records": args.records,
        "seed": args.seed,
        "lookups": args.lookups,
        "capture_seconds": round(capture_s, 3),
        "sqlite": sqlite_result,
        "cassandra": {
            **cassandra_result,
            "cluster": "external" if args.contact_points else
                       "local: Cassandra 2.1.0, 127.0.0.1 dc1 (eu, uk), 127.0.0.2 dc2 (us, apac), "
                       "256 MB heap each",
            "cluster_start_seconds": round(start_s, 3),
            "schema_seconds": round(schema_s, 3),
            "consistency": cfg.consistency,
            "concurrency": cfg.concurrency,
        },
        "load_average_1m": {"before": round(load_before, 2),
                            "after": round(os.getloadavg()[0], 2)},
        "note": "same captured engine batches written to each backend, one writer thread; "
                "lookups one at a time from this process; the cluster's two JVMs share the "
                "machine with the client",
    }
    path = save(parser, args, argv, out)
    for name in ("sqlite", "cassandra"):
        r = out[name]
        eu = r["regional_reader"]["lookup_ms"]
        print(f"{name:9}: {r['upserts']['record_upserts_per_s']:>7} record upserts/s "
              f"({r['upserts']['record_upserts']} in {r['upserts']['seconds']:.1f}s, "
              f"{r['upserts']['batches']} batches); lookup+get_profile p50 "
              f"{r['lookup_ms']['p50_ms']:.2f} ms, p99 {r['lookup_ms']['p99_ms']:.2f} ms "
              f"(eu reader: p50 {eu['p50_ms']:.2f} ms, p99 {eu['p99_ms']:.2f} ms)")
    print(f"written {path}")
    return out


if __name__ == "__main__":
    main()
