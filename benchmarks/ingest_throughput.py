"""Embedded ingest throughput on the deterministic path.

Generates N records of the synthetic multi-source stream (not timed), then times in one run:

* ``adapt``: raw payloads -> canonical records only (parsing and normalisation), the
  baseline every full pipeline must pay;
* ``ingest``: raw payloads -> adapt -> link decisions -> graph + link log -> survivorship ->
  SQLite profile store, committed in batches (what ``idgraph ingest`` does).

Target: ingest >= 20,000 records/s at 100k records on the 2-core machine.

    .venv/bin/python -m benchmarks.ingest_throughput --records 100000
    .venv/bin/python -m benchmarks.ingest_throughput --records 100000 --batch 500 \
        --output ingest_throughput_batch500
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.common import argument_parser, load_average, save
from idgraph.engine import Engine
from idgraph.generator import generate
from idgraph.resolver.adapters import adapt
from idgraph.resolver.normalize import Normalizer
from idgraph.settings import Settings

TARGET = 20_000


def main(argv: list[str] | None = None) -> dict:
    parser = argument_parser("ingest_throughput", __doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)

    load_before = load_average()
    dataset = generate(n_records=args.records, seed=args.seed)
    events = dataset.events

    normalizer = Normalizer()
    t0 = time.perf_counter()
    n_records = sum(len(adapt(s, p, normalizer)) for s, p in events)
    adapt_s = time.perf_counter() - t0

    tmp = Path(tempfile.mkdtemp(prefix="idgraph-bench-"))
    try:
        with Engine(Settings(data_dir=tmp, ingest_batch_size=args.batch)) as engine:
            t0 = time.perf_counter()
            result = engine.ingest_payloads(events)
            ingest_s = time.perf_counter() - t0
            profiles = engine.store.counts()["profiles"]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    out = {
        "records": n_records,
        "events": len(events),
        "profiles": profiles,
        "batch_size": args.batch,
        "adapt_records_per_s": round(n_records / adapt_s),
        "ingest_records_per_s": round(n_records / ingest_s),
        "ingest_seconds": round(ingest_s, 2),
        "ingest_vs_adapt_only": round(adapt_s / ingest_s, 3),
        "target_records_per_s": TARGET,
        "meets_target": n_records / ingest_s >= TARGET,
        "events_applied": result.events_applied,
        "load_average_1m": {"before": load_before, "after": load_average()},
    }
    path = save(parser, args, argv, out)
    print(f"records {n_records}  events {len(events)}  profiles {profiles}")
    print(f"adapt only : {out['adapt_records_per_s']:>8} records/s")
    print(f"full ingest: {out['ingest_records_per_s']:>8} records/s ({ingest_s:.1f}s; "
          f"{out['ingest_vs_adapt_only']:.0%} of adapt-only speed) target {TARGET} -> "
          f"{'met' if out['meets_target'] else 'NOT met'}")
    print(f"written {path}")
    return out


if __name__ == "__main__":
    main()
