"""Graph backends side by side: the embedded networkx graph and the Neo4j graph over Bolt.

Generates N records of the synthetic stream (not timed) and ingests them once per backend
in the same run, into a fresh data dir (profile store: embedded SQLite for both):

* ``identifiers_per_s`` and ``links_per_s``: identifier nodes and edges (identifier and
  match edges, linked or not) the graph holds at the end, over the ingest's wall time;
* ``ingest_events_per_s``: the whole ingest (adapt, plan, graph, store), in record events;
* ``lookup_ms``: p50/p99 of ``Lookup`` answered in process (``ProfileQueries.lookup`` with
  the profile fold; the profile store answers it, so it does not touch the graph);
* ``graph_read_ms``: p50/p99 of the graph reads a write's planner makes per record
  (``component_info`` of one record and its identifiers) and ``explain_path_ms`` of
  ``path_between`` (Explain's shortest linked path).

The Neo4j side runs against a local ArcadeDB over Bolt started by the benchmark (the test
server; a production Neo4j has other constants), or the server named by ``--neo4j-uri``.

    .venv/bin/python -m benchmarks.graph_backends --records 100000
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from pathlib import Path

from pydantic import SecretStr

from benchmarks.common import argument_parser, percentile, save
from idgraph.engine import Engine
from idgraph.generator import generate
from idgraph.graph.neo4j_backend.settings import Neo4jSettings
from idgraph.graph.networkx_backend import NetworkxGraph
from idgraph.settings import Settings


def _graph_size(engine: Engine) -> tuple[int, int]:
    """(identifier nodes, edges) in the engine's graph."""
    graph = engine.graph
    if isinstance(graph, NetworkxGraph):  # count in memory
        g = graph._g
        return sum(1 for n in g.nodes if n[0] == "i"), g.number_of_edges()
    with graph._session() as session:  # Neo4j: count in the database
        idents = session.run("MATCH (i:Identifier) RETURN count(i) AS n").single()["n"]
        edges = session.run("MATCH (:Record)-[e]->() RETURN count(e) AS n").single()["n"]
    return idents, edges


def _ms(samples: list[float]) -> dict:
    return {"p50": round(percentile(samples, 50) * 1000, 3),
            "p99": round(percentile(samples, 99) * 1000, 3)}


def _run(settings: Settings, events, batch: int, probes: int, seed: int) -> dict:
    with Engine(settings) as engine:
        t0 = time.perf_counter()
        result = engine.ingest_payloads(events, batch_size=batch)
        ingest_s = time.perf_counter() - t0
        idents, edges = _graph_size(engine)
        engine.graph.refresh()  # reads below go to the backend, not a write's cache
        rng = random.Random(seed)
        records = [(s, r, p) for s, r, p in engine.store.iter_record_profiles()]
        sample = rng.sample(records, min(probes, len(records)))
        lookups, graph_reads, paths = [], [], []
        for source, rid, pid in sample:
            key = f"{source}:{rid}"
            ids = sorted(engine.graph.edges_of([key]).get(key, {}))
            if not ids:
                continue
            t = time.perf_counter()
            engine.queries.lookup(ids[0])
            lookups.append(time.perf_counter() - t)
            t = time.perf_counter()
            engine.graph.component_info([key], ids)
            graph_reads.append(time.perf_counter() - t)
            t = time.perf_counter()
            engine.graph.path_between(ids[0], ids[-1])
            paths.append(time.perf_counter() - t)
        return {
            "source_records": result.records_created, "events_applied": result.events_applied,
            "profiles": engine.store.counts()["profiles"],
            "identifiers": idents, "edges": edges,
            "ingest_seconds": round(ingest_s, 2),
            "ingest_events_per_s": round(result.events_applied / ingest_s),
            "identifiers_per_s": round(idents / ingest_s),
            "links_per_s": round(edges / ingest_s),
            "lookup_ms": _ms(lookups), "graph_read_ms": _ms(graph_reads),
            "explain_path_ms": _ms(paths), "probes": len(lookups),
        }


def main(argv: list[str] | None = None) -> dict:
    parser = argument_parser("graph_backends", __doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--probes", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--neo4j-uri", default="")
    parser.add_argument("--neo4j-user", default="neo4j")
    parser.add_argument("--neo4j-password", default="",
                        help="recorded as *** in the result file")
    parser.add_argument("--neo4j-database", default="neo4j")
    args = parser.parse_args(argv)

    dataset = generate(n_records=args.records, seed=args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="idgraph-bench-graph-"))
    server = None
    try:
        if args.neo4j_uri:
            neo = Neo4jSettings(uri=args.neo4j_uri, user=args.neo4j_user,
                                password=SecretStr(args.neo4j_password),
                                database=args.neo4j_database)
        else:
            from idgraph.devservers.bolt_server import LocalBoltServer

            server = LocalBoltServer(tmp / "arcadedb", heap="2g")
            server.start()
            neo = Neo4jSettings(uri=server.uri, user=server.user,
                                password=SecretStr(server.password), database=server.database)
        runs = {}
        for name, settings in (
                ("networkx", Settings(data_dir=tmp / "nx")),
                ("neo4j", Settings(data_dir=tmp / "neo", graph_backend="neo4j", neo4j=neo))):
            runs[name] = _run(settings, dataset.events, args.batch, args.probes, args.seed)
            r = runs[name]
            print(f"{name:>8}: {r['ingest_events_per_s']:>7} events/s  "
                  f"{r['identifiers_per_s']:>7} identifiers/s  {r['links_per_s']:>7} links/s  "
                  f"lookup p50 {r['lookup_ms']['p50']} p99 {r['lookup_ms']['p99']} ms  "
                  f"graph read p50 {r['graph_read_ms']['p50']} p99 {r['graph_read_ms']['p99']}"
                  f" ms  path p50 {r['explain_path_ms']['p50']} ms")
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    nx_run, neo_run = runs["networkx"], runs["neo4j"]
    out = {
        "records": args.records, "batch_size": args.batch,
        "neo4j_server": "external" if args.neo4j_uri else "ArcadeDB 26.10.2 (local, Bolt)",
        "networkx": nx_run, "neo4j": neo_run,
        "neo4j_vs_networkx": {
            "links_per_s": round(neo_run["links_per_s"] / nx_run["links_per_s"], 3),
            "lookup_p99": round(neo_run["lookup_ms"]["p99"] / nx_run["lookup_ms"]["p99"], 3),
            "graph_read_p99": round(neo_run["graph_read_ms"]["p99"]
                                    / nx_run["graph_read_ms"]["p99"], 1),
        },
        "same_profiles": (nx_run["profiles"], nx_run["identifiers"], nx_run["edges"])
        == (neo_run["profiles"], neo_run["identifiers"], neo_run["edges"]),
    }
    path = save(parser, args, argv, out)
    print(f"neo4j/networkx: {out['neo4j_vs_networkx']}  same counts: {out['same_profiles']}")
    print(f"written {path}")
    return out


if __name__ == "__main__":
    main()
