"""Accuracy of probabilistic matching: FEBRL3, FEBRL4 and the synthetic multi-source set.

    .venv/bin/python -m benchmarks.matching_accuracy                 # all three
    .venv/bin/python -m benchmarks.matching_accuracy --only febrl3
    .venv/bin/python -m benchmarks.matching_accuracy --synthetic-records 100000

FEBRL: each file is resolved exactly as a user would, with ``idgraph resolve``'s code path
(:func:`idgraph.engine.batch.resolve_file`) on a fresh data directory: the model is trained on the
file itself (no labels), Splink scores the blocked pairs, the graph clusters them. The
peer, recordlinkage's ECM classifier (:func:`benchmarks.febrl.run_ecm_peer`), runs on the
same data in the same run. Reported for both: pairwise precision / recall / F1 of the pairs
the clusters imply, and cluster metrics. Targets: F1 >= 0.998 (FEBRL3), >= 0.999 (FEBRL4).

Synthetic: ``generate(N, seed)`` events are ingested through the engine (deterministic
rules), a model is trained on the accumulated records (``idgraph train``), and one Splink
pass links them (``idgraph match``). Then the same events are ingested into a second data
directory with that model loaded, so every record is scored in real time as it arrives.
Reported for both: share of true people whose records are all in one profile, and share
of profiles that wrongly merge different people (targets: >= 97 % and <= 0.5 %).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import save
from benchmarks.febrl import FEBRL_MAP, cluster_metrics, load_febrl, run_ecm_peer


def _engine(data_dir: Path, **matching):
    from idgraph.engine import Engine
    from idgraph.settings import load_settings

    settings = load_settings(data_dir=data_dir)
    if matching:
        settings.matching = settings.matching.model_copy(update=matching)
    return Engine(settings)


def run_febrl(name: str, work: Path) -> dict:
    from idgraph.engine.batch import resolve_file

    data = load_febrl(name)
    csv = work / f"{name}.csv"
    data.records.to_csv(csv, index=False)
    out = work / f"{name}-resolved.csv"
    started = time.perf_counter()
    with _engine(work / f"{name}-data") as engine:
        result = resolve_file(engine, csv, out, FEBRL_MAP, id_column="record_id",
                              source=name)
        report = engine.models.report(result.model_version)
    seconds = time.perf_counter() - started
    import pandas as pd

    resolved = pd.read_csv(out, dtype=str)
    cluster_of = dict(zip(resolved.record_id, resolved.profile_id, strict=True))
    ours = cluster_metrics(cluster_of, data.truth)
    peer = run_ecm_peer(data)
    return {
        "dataset": name, "mode": data.mode, "records": len(data.records),
        "true_pairs": len(data.true_pairs),
        "idgraph": {"seconds": round(seconds, 2), "model": result.model_version,
                    "pairs_scored_by_splink": result.match.pairs_predicted,
                    "links": result.match.links, "refused_by_guards": result.match.refused,
                    "queued_for_review": result.match.reviews_queued,
                    "em_blocks": report.get("em_blocking_rules"), **_rounded(ours)},
        "ecm_peer": {"seconds": round(peer["seconds"], 2),
                     "pair_completeness": peer.get("pair_completeness"),
                     **_rounded(peer["cluster"]),
                     "pairwise_of_predicted_links": _rounded(peer["pairwise"])},
    }


def _rounded(d: dict) -> dict:
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in d.items()}


def _people_metrics(engine, truth: dict[str, str]) -> dict:
    cluster_of = {k: p for k, p in engine.store.record_profiles().items() if k in truth}
    m = cluster_metrics(cluster_of, {k: truth[k] for k in cluster_of})
    return {"people": m["entities"], "profiles": m["clusters"],
            "people_in_one_profile": round(m["entities_in_one_cluster"], 6),
            "people_exactly_one_profile": round(m["entities_exactly_resolved"], 6),
            "profiles_wrongly_merged": round(m["clusters_wrongly_merged"], 6),
            "pair_precision": round(m["precision"], 6), "pair_recall": round(m["recall"], 6)}


def run_synthetic(n_records: int, seed: int, work: Path) -> dict:
    from generator import generate
    from idgraph.engine.batch import match_stored, train

    ds = generate(n_records=n_records, seed=seed)
    out: dict = {"dataset": f"synthetic-{n_records}", "seed": seed}
    first = work / "synthetic-backfill"
    with _engine(first) as engine:
        t = time.perf_counter()
        engine.ingest_payloads(ds.events)
        out["deterministic"] = _people_metrics(engine, ds.truth)
        out["deterministic"]["seconds"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        version, report = train(engine)
        out["train_seconds"] = round(time.perf_counter() - t, 2)
        out["model"] = {"version": version, "rows": report.rows,
                        "em_blocks": report.em_blocking_rules, "separation": report.separation}
        t = time.perf_counter()
        m = match_stored(engine)
        out["splink_backfill"] = _people_metrics(engine, ds.truth)
        out["splink_backfill"].update(seconds=round(time.perf_counter() - t, 2),
                                      links=m.links, refused=m.refused,
                                      queued_for_review=m.reviews_queued)
        model_path = engine.models.path(version)
        report_path = model_path.with_name(f"model-{version}.report.json")
    second = work / "synthetic-realtime"
    (second / "models").mkdir(parents=True)
    shutil.copy(model_path, second / "models" / model_path.name)
    shutil.copy(report_path, second / "models" / report_path.name)
    with _engine(second) as engine:
        t = time.perf_counter()
        total = engine.ingest_payloads(ds.events)
        out["realtime"] = _people_metrics(engine, ds.truth)
        out["realtime"].update(seconds=round(time.perf_counter() - t, 2),
                               pairs_scored=total.pairs_scored,
                               links=total.probabilistic_links,
                               queued_for_review=total.reviews_queued)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["febrl3", "febrl4", "synthetic"])
    parser.add_argument("--synthetic-records", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    results: dict = {}
    work = Path(tempfile.mkdtemp(prefix="idgraph-accuracy-"))
    try:
        for name in ("febrl3", "febrl4"):
            if args.only in (None, name):
                results[name] = run_febrl(name, work)
                print(name, results[name], flush=True)
        if args.only in (None, "synthetic"):
            results["synthetic"] = run_synthetic(args.synthetic_records, args.seed, work)
            print("synthetic", results["synthetic"], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    command = "python -m benchmarks.matching_accuracy " + " ".join(sys.argv[1:] if argv is None
                                                                   else argv)
    name = "matching_accuracy" + (f"_{args.only}" if args.only else "")
    print(f"saved {save(name, command.strip(), results)}")
    return results


if __name__ == "__main__":
    main()
