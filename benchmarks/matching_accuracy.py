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
of profiles that wrongly merge different people (targets: >= 97 % and <= 0.5 %). Then:

* ``realtime_vs_backfill``: the profiles (record sets) both runs formed, those only one
  formed, and the match links behind the difference: a pair linked by only one run whose
  records sit in two profiles of the other. For the real-time run's pairs, the decision
  the same model gives on the records' final state; for the backfill's, whether the
  real-time run had queued the pair for review (a queued pair is never linked
  automatically later). Also the identifier links the two runs decided differently.
* ``split_people`` (backfill): the records of people split over several profiles that
  sit outside the person's main profile, by what they carry for the model.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Hashable, Mapping
from pathlib import Path

from benchmarks.common import argument_parser, load_average, save
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


def _profile_sets(cluster_of: Mapping[str, Hashable]) -> set[frozenset[str]]:
    members: dict[Hashable, set[str]] = {}
    for record, cluster in cluster_of.items():
        members.setdefault(cluster, set()).add(record)
    return {frozenset(m) for m in members.values()}


def compare_partitions(first: Mapping[str, Hashable], second: Mapping[str, Hashable],
                       truth: Mapping[str, str]) -> dict:
    """Two clusterings of the same records (record -> cluster ID; IDs may differ): the
    profiles both formed, those only one formed, the records those hold, and how many of
    them mix people (``truth``: record -> person)."""
    if set(first) != set(second):
        raise ValueError("the clusterings cover different records")
    a, b = _profile_sets(first), _profile_sets(second)
    only_a, only_b = a - b, b - a

    def mixed(sets: set[frozenset[str]]) -> int:
        return sum(1 for s in sets if len({truth[r] for r in s}) > 1)

    return {"records": len(first), "same_profiles": len(a & b),
            "profiles_only_in_first": len(only_a),
            "profiles_only_in_second": len(only_b),
            "records_in_differing_profiles": sum(len(s) for s in only_a),
            "differing_profiles_mixing_people": {"first": mixed(only_a), "second": mixed(only_b)}}


def split_breakdown(cluster_of: Mapping[str, Hashable], truth: Mapping[str, str],
                    kind_of: Mapping[str, str]) -> dict:
    """People whose records sit in more than one profile: their records outside the main
    profile (the one holding most of them; ties: the smallest ID) counted by
    ``kind_of[record]``; and the share of people in one profile when the records of kind
    ``no_person_columns`` (nothing a model can weigh) are left out."""
    profiles_of: dict[str, Counter] = {}
    for record, person in truth.items():
        profiles_of.setdefault(person, Counter())[cluster_of[record]] += 1
    outside: Counter = Counter()
    for record, person in truth.items():
        held = profiles_of[person]
        if len(held) < 2:
            continue
        main = min(held, key=lambda c: (-held[c], str(c)))
        if cluster_of[record] != main:
            outside[kind_of[record]] += 1
    split = sum(1 for held in profiles_of.values() if len(held) > 1)
    weighable: dict[str, set] = {}
    for record, person in truth.items():
        if kind_of[record] != "no_person_columns":
            weighable.setdefault(person, set()).add(cluster_of[record])
    whole = sum(1 for clusters in weighable.values() if len(clusters) == 1)
    return {"people": len(profiles_of), "people_split": split,
            "records_outside_main_profile": dict(sorted(outside.items())),
            "people_with_person_columns": len(weighable),
            "people_in_one_profile_ignoring_records_without_person_columns":
                round(whole / len(weighable), 6) if weighable else 1.0}


def _record_kinds(engine) -> dict[str, str]:
    """Record key -> what it gives the model: ``no_person_columns`` (no matching row),
    ``no_name`` (a row without names), ``name_from_address`` (names only from its email
    address) or ``named``."""
    from idgraph.resolver.probabilistic.features import match_row

    keys = sorted(engine.store.record_profiles())
    kinds = {}
    for start in range(0, len(keys), 50_000):
        part = keys[start:start + 50_000]
        for key, state in engine.store.get_records(part).items():
            row = match_row({a: v for a, (v, _t) in state.attributes.items()},
                            state.identifiers)
            if row is None:
                kinds[key] = "no_person_columns"
            elif not (row.get("given_name") or row.get("family_name")):
                kinds[key] = "no_name"
            elif not ({"given_name", "family_name"} & set(state.attributes)):
                kinds[key] = "name_from_address"
            else:
                kinds[key] = "named"
    return kinds


def _links(engine) -> tuple[set[tuple[str, str]], dict[tuple[str, str], bool]]:
    """Linked match pairs (sorted) and every identifier edge's linked flag."""
    keys = sorted(engine.store.record_profiles())
    matches = {tuple(sorted((a, b))) for a, others in engine.graph.matches_of(keys).items()
               for b, linked in others.items() if linked}
    edges = {(r, i): linked for r, d in engine.graph.edges_of(keys).items()
             for i, linked in d.items()}
    return matches, edges


def run_synthetic(n_records: int, seed: int, work: Path) -> dict:
    from idgraph.engine.batch import match_stored, train
    from idgraph.generator import generate

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
        truth = ds.truth
        backfill_of = {k: p for k, p in engine.store.record_profiles().items() if k in truth}
        backfill_links, backfill_edges = _links(engine)
        out["split_people"] = split_breakdown(backfill_of, {k: truth[k] for k in backfill_of},
                                              _record_kinds(engine))
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
        out["realtime_vs_backfill"] = _realtime_vs_backfill(
            engine, truth, backfill_of, backfill_links, backfill_edges)
    return out


def _realtime_vs_backfill(engine, truth: Mapping[str, str], backfill_of: dict[str, str],
                          backfill_links: set[tuple[str, str]],
                          backfill_edges: dict[tuple[str, str], bool]) -> dict:
    """Where the real-time run (``engine``) and the backfill differ, and the links behind it."""
    realtime_of = {k: p for k, p in engine.store.record_profiles().items() if k in truth}
    out = compare_partitions(backfill_of, realtime_of, truth)
    out["first"], out["second"] = "splink_backfill", "realtime"
    realtime_links, realtime_edges = _links(engine)
    rows = dict(engine.matching_rows())  # final state: the same records in both runs
    scorer, decisions = engine.matcher.scorer, engine.matcher.decisions
    final: Counter = Counter()
    only_realtime = [(a, b) for a, b in realtime_links - backfill_links
                     if backfill_of[a] != backfill_of[b]]
    for a, b in only_realtime:
        if rows.get(a) is None or rows.get(b) is None:
            # a record whose only person column became a generic value has no row now
            final["no_row_now"] += 1
            continue
        score = scorer.score(rows[a], rows[b])
        final[decisions.decide(score.probability, score.contributions) or "none"] += 1
    queued = {(r.record_a, r.record_b) for r in engine.reviews.list("all", limit=10**9)}
    only_backfill = [(a, b) for a, b in backfill_links - realtime_links
                     if realtime_of[a] != realtime_of[b]]
    out["links_joining_profiles_of_the_other_run"] = {
        "realtime_only": {"pairs": len(only_realtime),
                          "decision_on_final_records": dict(sorted(final.items()))},
        "backfill_only": {"pairs": len(only_backfill),
                          "queued_for_review_by_realtime": sum(p in queued
                                                               for p in only_backfill)},
    }
    out["identifier_links_decided_differently"] = sum(
        1 for k in backfill_edges.keys() | realtime_edges.keys()
        if backfill_edges.get(k) != realtime_edges.get(k))
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argument_parser("matching_accuracy", __doc__)
    parser.set_defaults(output=None)  # default: matching_accuracy, or matching_accuracy_ONLY
    parser.add_argument("--only", choices=["febrl3", "febrl4", "synthetic"])
    parser.add_argument("--synthetic-records", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    results: dict = {"load_average_1m": {"before": load_average()}}
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
    results["load_average_1m"]["after"] = load_average()
    if args.output is None:
        args.output = "matching_accuracy" + (f"_{args.only}" if args.only else "")
    print(f"saved {save(parser, args, argv, results)}")
    return results


if __name__ == "__main__":
    main()
