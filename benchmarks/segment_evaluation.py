"""Segment evaluation on the writer: a new definition over every stored profile, the exact
preview, and ingest throughput with 0, 20 and 1,000 live segments.

The generated events are moved to the last ``--days`` days (see
:mod:`benchmarks.segment_latency`, whose 20 segments are used here).

(a) **New definition**: ``--records`` records are ingested (no segment), the 20 segments
    are defined and evaluated over the stored profiles, then ONE new definition is applied
    and ``Engine.segment_step()`` is called until it returns 0 (what ``idgraph segments
    apply`` runs). Reported: seconds, profiles/s and the time that rate gives at 1M
    profiles (an extrapolation unless the run had 1M profiles). A second new definition's
    evaluation runs under cProfile (not timed): where the time goes.
(b) **Exact preview**, as ``idgraph segments preview`` computes it: a draft (``--file``,
    not stored) evaluated on every stored profile together with the stored definitions
    (for the overlaps), reading only the event types they count; the same draft alone; and
    stored segments (NAME), which the CLI previews from their memberships (the new
    definition, and the stored segment with the most members).
(c) **Ingest throughput** as :mod:`benchmarks.ingest_throughput` measures it (same
    generator, seed and batch size, a fresh data dir each) with 0, 20 and ``--many``
    (1,000, varied: :func:`varied_segments`) live segments defined before the ingest, so
    every batch evaluates the live definitions on the profiles it changes (those that read
    what changed). Each batch is also timed (the first creates most profiles, later ones
    update them). The 0-segment run is repeated last (the machine is shared): ratios are
    to the mean of the two. The 20-segment ingest is run a second time under cProfile (not
    timed). At 1,000 segments ingest runs at a few hundred records/s: 40,000 records (two
    batches of 20,000) keep the run under ten minutes.

Targets: a new definition over 1M profiles <= 10 s; exact preview <= 1 s at 100k profiles
(<= 3 s at 1M); 1,000 live segments evaluated on every change without missing the ingest
target (20,000 records/s; see benchmarks/results/ingest_throughput.json for where ingest
stands without segments).

(a) and (b) at ~100k profiles (570,000 records), (c) apart, each run under ten minutes:

    .venv/bin/python -m benchmarks.segment_evaluation --parts ab --records 570000 \
        --output segment_evaluation
    .venv/bin/python -m benchmarks.segment_evaluation --parts c --ingest-records 40000 \
        --output segment_evaluation_ingest
"""

from __future__ import annotations

import gc
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.common import argument_parser, load_average, save
from benchmarks.segment_latency import (
    SEGMENTS,
    build_segments,
    code_digest,
    cpu_seconds,
    define_segments,
    other_cores,
    profiled,
    window_start,
)
from idgraph.engine import Engine
from idgraph.engine.segment_definitions import tree_of
from idgraph.engine.segment_preview import live_profiles, preview, preview_stored
from idgraph.generator import generate
from idgraph.segments import event_types, parse, references
from idgraph.settings import Settings

OWN = [os.getpid()]
TARGET_BUILD_1M_S = 10.0
TARGET_PREVIEW_100K_S = 1.0
TARGET_PREVIEW_1M_S = 3.0
TARGET_INGEST_RECORDS_PER_S = 20_000

#: The one definition applied in (a), and the one evaluated under cProfile after it.
NEW_DEFINITION = ('region in ("eu", "uk") and consent("email") = granted'
                  ' and event("open").within(30d).count() >= 2')
#: The draft previewed in (b) (not stored).
DRAFT_NAME = "Bench draft"
DRAFT_DEFINITION = ('event("open").within(60d).count() >= 2 and consent("email") = granted'
                    ' and not in_segment("Lapsed")')
PROFILED_DEFINITION = ('event("Order Completed").within(90d).sum(total) >= 200'
                       ' or event("Plan Upgraded").within(90d)')

# ---------------------------------------------------------------------------- definitions

_COUNTRIES = ["US", "GB", "DE", "FR", "JP", "NL", "AU", "ES", "CA", "SG", "AT", "CH", "IT",
              "SE", "IE", "BR", "IN"]
_REGIONS = ["us", "eu", "uk", "apac"]
_TITLES = ["Head of", "Director", "Senior", "VP", "Chief", "Lead", "Manager"]
_ID_TYPES = ["email", "phone", "cookie", "device", "crm", "crm:salesforce", "crm:hubspot",
             "user:segment", "gaid", "idfa"]
_SOURCES = ["salesforce", "hubspot", "sendgrid", "segment", "google_calendar"]
_CATEGORIES = ["promo,spring_sale", "product_update", "newsletter,monthly", "onboarding",
               "newsletter", "webinar,events", "reengagement", "transactional,receipt"]
_EMAIL_EVENTS = ["processed", "delivered", "open", "click"]
_TRACK_EVENTS = ["Product Added", "Product Viewed", "Order Completed", "Application Opened",
                 "Plan Upgraded", "Checkout Started", "Signed In", "Invite Sent",
                 "Report Exported", "Newsletter Subscribed"]
_PATHS = ["/docs/getting-started", "/contact-sales", "/", "/blog/identity-resolution-101",
          "/pricing", "/signup", "/customers", "/product"]
_SCREENS = ["Dashboard", "Cart", "Search", "Settings", "Profile", "Home", "Product Detail"]
_PRODUCTS = ["prod_1001", "prod_1002", "prod_1003", "prod_2001", "prod_2002"]
_LEAD_STATUS = ["Open - Not Contacted", "Working - Contacted", "Closed - Converted",
                "Closed - Not Converted"]


def _quoted(values: list[str]) -> str:
    return ", ".join(f'"{v}"' for v in values)


def _leaf(rng: random.Random) -> str:
    """One condition, of a kind picked at random over what generated profiles hold."""
    days = rng.choice([1, 3, 7, 14, 30, 60, 90, 180, 365])
    kind = rng.randrange(16)
    if kind == 0:
        return f"country in ({_quoted(rng.sample(_COUNTRIES, rng.randint(1, 5)))})"
    if kind == 1:
        return f'job_title starts_with "{rng.choice(_TITLES)}"'
    if kind == 2:
        return f'birth_date before "{rng.randint(1960, 2000)}-01-01"'
    if kind == 3:
        return f'consent("{rng.choice(["email", "ads"])}") = ' \
               f'{rng.choice(["granted", "denied", "unknown"])}'
    if kind == 4:
        kind_ = rng.choice(_ID_TYPES)
        return f'has_identifier("{kind_}")' if ":" in kind_ else f"has_identifier({kind_})"
    if kind == 5:
        return f"identifier_count({rng.choice(['device', 'email', 'cookie'])}) >= " \
               f"{rng.randint(2, 3)}"
    if kind == 6:
        return f"identifier_from({rng.choice(_SOURCES)})"
    if kind == 7:
        return f"region in ({_quoted(rng.sample(_REGIONS, rng.randint(1, 2)))})"
    if kind == 8:
        return (f'event("{rng.choice(_EMAIL_EVENTS)}").where(category = '
                f'"{rng.choice(_CATEGORIES)}").within({days}d).count() >= {rng.randint(1, 3)}')
    if kind == 9:
        return f'event("{rng.choice(_TRACK_EVENTS)}").within({days}d).count() >= ' \
               f'{rng.randint(1, 4)}'
    if kind == 10:
        return f'event("Order Completed").within({days}d).sum(total) >= ' \
               f'{rng.choice([50, 100, 250, 500, 1000])}'
    if kind == 11:
        return f'did_not event("{rng.choice(_EMAIL_EVENTS + _TRACK_EVENTS)}").within({days}d)'
    if kind == 12:
        return f'event("page").where(path = "{rng.choice(_PATHS)}").within({days}d)'
    if kind == 13:
        return f'event("screen").within({days}d).distinct(name) >= {rng.randint(2, 4)}' \
            if rng.random() < 0.5 else \
            f'event("screen").where(name = "{rng.choice(_SCREENS)}").within({days}d)'
    if kind == 14:
        return f'event("Product Viewed").where(product_id = "{rng.choice(_PRODUCTS)}") then ' \
               f'event("Order Completed") within {rng.choice([1, 2, 7])}d'
    return f'event("lead").last(lead_status) = "{rng.choice(_LEAD_STATUS)}"'


def varied_segments(n: int, seed: int = 0) -> dict[str, str]:
    """``n`` different definitions (name -> text), deterministic for a seed: one to four
    conditions joined by and/or (sometimes negated), about one in twenty also using an
    earlier segment (``in_segment``). In dependency order."""
    rng = random.Random(seed)
    out: dict[str, str] = {}
    while len(out) < n:
        leaves = [_leaf(rng) for _ in range(rng.randint(1, 4))]
        if len(leaves) > 2 and rng.random() < 0.3:
            leaves = [f"({leaves[0]} or {leaves[1]})", *leaves[2:]]
        if len(leaves) > 1 and rng.random() < 0.2:
            leaves[-1] = f"not {leaves[-1]}"
        if out and rng.random() < 0.05:
            leaves.append(f'in_segment("{rng.choice(list(out))}")')
        joiner = " and " if rng.random() < 0.75 else " or "
        text = joiner.join(leaves)
        if text not in out.values():
            out[f"generated-{len(out):04d}"] = text
    return out


# ---------------------------------------------------------------------------- parts

def _apply(engine: Engine, definitions: dict[str, str]) -> float:
    t0 = time.perf_counter()
    define_segments(engine, definitions)
    return time.perf_counter() - t0


def new_definition(data_dir: Path, dataset, profile: bool) -> tuple[dict, Engine]:
    """(a): returns the result and the open engine (closed by the caller)."""
    engine = Engine(Settings(data_dir=data_dir))
    t0 = time.perf_counter()
    engine.ingest_payloads(dataset.events)
    out: dict = {"ingest_s": round(time.perf_counter() - t0, 2)}
    profiles = engine.store.counts()["profiles"]
    out["profiles"] = profiles
    out["define_20_s"] = round(_apply(engine, SEGMENTS), 3)
    seconds, _reported = build_segments(engine)
    out["build_20_at_once_s"] = round(seconds, 2)
    _apply(engine, {"Bench new definition": NEW_DEFINITION})
    gc.collect()
    cpu0 = cpu_seconds(OWN)
    seconds, _reported = build_segments(engine)
    out["other_processes_cpu_cores"] = other_cores(cpu0, cpu_seconds(OWN), seconds)
    rate = profiles / seconds
    out.update({
        "definition": NEW_DEFINITION, "live_segments_before": len(SEGMENTS),
        "build_s": round(seconds, 2), "profiles_per_s": round(rate),
        "extrapolated_1m_s": round(1_000_000 / rate, 1),
        "extrapolated": profiles < 1_000_000,
        "members": sum(engine.store.count_segment("Bench new definition").values()),
    })
    if profile:
        _apply(engine, {"Bench profiled definition": PROFILED_DEFINITION})
        out["profile"] = profiled(lambda: build_segments(engine))
        out["profile"]["definition"] = PROFILED_DEFINITION
    return out, engine


def _all_ids(store, page: int = 10_000) -> list[str]:
    """Every stored profile ID of the served regions (as ``segments preview`` lists them)."""
    out: list[str] = []
    for region in sorted(store.regions):
        after = ""
        while True:
            ids = store.profile_ids_after(region, after, page)
            out.extend(ids)
            if len(ids) < page:
                break
            after = ids[-1]
    return out


def exact_preview(engine: Engine, profile: bool) -> dict:
    """(b) over the engine's store, as ``cmd_segments_preview`` does it: a draft (``--file``)
    evaluated over every stored profile with the stored definitions (reading only the event
    types they count), the same draft alone, and stored segments (NAME) from their
    memberships: the new definition and the stored segment with the most members."""
    store, queries = engine.store, engine.queries
    stored = {name: tree_of(d) for name, d in store.segment_catalog()[1].items()}
    draft = parse(DRAFT_DEFINITION)
    now = datetime.now(UTC)

    def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
        gc.collect()
        cpu0, t0 = cpu_seconds(OWN), time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - t0
        return result, seconds, other_cores(cpu0, cpu_seconds(OWN), seconds)

    def evaluated(definitions: dict) -> Callable[[], tuple]:
        types = frozenset().union(*map(event_types, definitions.values()))
        return lambda: preview(definitions, live_profiles(
            _all_ids(store), lambda pid: queries.profile_with_all_events(pid, types)), now)

    with_stored = {**stored, DRAFT_NAME: draft}
    (views, n), seconds, others = timed(evaluated(with_stored))
    needed = {DRAFT_NAME: draft}  # the draft and the stored segments it uses
    todo = [draft]
    while todo:
        for used in references(todo.pop()):
            if used not in needed:
                needed[used] = stored[used]
                todo.append(stored[used])
    (alone, _n), alone_s, alone_others = timed(evaluated(needed))
    if views[DRAFT_NAME].count != alone[DRAFT_NAME].count:
        raise AssertionError("the draft's count depends on the other definitions")
    rate = n / seconds
    out: dict = {
        "draft": DRAFT_DEFINITION, "profiles_evaluated": n,
        "draft_members": views[DRAFT_NAME].count,
        "as_cli_file": {
            "about": "segments preview --file: the draft and every stored definition "
                     "evaluated on every stored profile (for the overlaps)",
            "definitions_evaluated": len(with_stored), "seconds": round(seconds, 2),
            "profiles_per_s": round(rate),
            "extrapolated_100k_s": round(100_000 / rate, 2),
            "extrapolated_1m_s": round(1_000_000 / rate, 1),
            "other_processes_cpu_cores": others},
        "draft_alone": {
            "about": "the same draft evaluated with only the segments it uses (no "
                     "overlaps): what the draft itself costs",
            "definitions_evaluated": len(needed),
            "seconds": round(alone_s, 2), "profiles_per_s": round(n / alone_s),
            "extrapolated_100k_s": round(100_000 / (n / alone_s), 2),
            "extrapolated_1m_s": round(1_000_000 / (n / alone_s), 1),
            "other_processes_cpu_cores": alone_others},
    }
    counts = {name: sum(store.count_segment(name).values()) for name in stored}
    largest = max(counts, key=lambda k: counts[k])
    out["stored_from_memberships"] = []
    for name in dict.fromkeys(["Bench new definition", largest]):
        view, secs, oth = timed(lambda name=name: preview_stored(store, name, queries.profile))
        out["stored_from_memberships"].append({
            "segment": name, "members": view.count, "seconds": round(secs, 2),
            "other_processes_cpu_cores": oth})
    if profile:
        out["profile_as_cli_file"] = profiled(evaluated(with_stored))
    return out


def per_batch_timer(engine: Engine) -> list[tuple[int, float, int, int]]:
    """Time each ingest batch of ``engine`` from now on: (records, seconds, profiles
    created, profiles updated) per batch, in the list returned (the engine's batching is
    unchanged: its per-batch turn is wrapped)."""
    timings: list[tuple[int, float, int, int]] = []
    turn = engine._ingest_turn

    def timed_turn(records: list) -> object:
        t0 = time.perf_counter()
        result = turn(records)
        changes = getattr(result, "changes", None) or []
        kinds = [getattr(c, "kind", "") for c in changes]
        timings.append((len(records), time.perf_counter() - t0, kinds.count("created"),
                        kinds.count("updated")))
        return result

    engine._ingest_turn = timed_turn  # type: ignore[method-assign]
    return timings


def ingest_with(definitions: dict[str, str], events: list, batch: int, base: Path,
                profile: bool = False) -> dict:
    """(c) one run: a fresh data dir, ``definitions`` defined, the events ingested."""
    data_dir = Path(tempfile.mkdtemp(prefix="idgraph-bench-", dir=base))
    try:
        with Engine(Settings(data_dir=data_dir, ingest_batch_size=batch)) as engine:
            define_s = _apply(engine, definitions) if definitions else 0.0
            gc.collect()
            if profile:
                return profiled(lambda: engine.ingest_payloads(events))
            batches = per_batch_timer(engine)
            cpu0, t0 = cpu_seconds(OWN), time.perf_counter()
            result = engine.ingest_payloads(events)
            seconds = time.perf_counter() - t0
            others = other_cores(cpu0, cpu_seconds(OWN), seconds)
            n = result.events_applied
            members = sum(sum(engine.store.count_segment(name).values())
                          for name in definitions)
            return {"segments": len(definitions), "define_s": round(define_s, 2),
                    "records": n, "ingest_s": round(seconds, 2),
                    "records_per_s": round(n / seconds),
                    "profiles": engine.store.counts()["profiles"],
                    "memberships_stored": members, "load_average_1m": load_average(),
                    "other_processes_cpu_cores": others,
                    "batches": [{"records": r, "seconds": round(t, 2),
                                 "records_per_s": round(r / t) if t else None,
                                 "profiles_created": c, "profiles_updated": u}
                                for r, t, c, u in batches]}
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> dict:
    parser = argument_parser("segment_evaluation", __doc__)
    parser.add_argument("--records", type=int, default=570_000,
                        help="records ingested for (a) and (b) (~5.7 records a profile)")
    parser.add_argument("--ingest-records", type=int, default=100_000,
                        help="records of each ingest run of (c)")
    parser.add_argument("--batch", type=int, default=20_000, help="ingest batch of (c)")
    parser.add_argument("--many", type=int, default=1000,
                        help="live segments of the largest ingest run of (c)")
    parser.add_argument("--days", type=int, default=180,
                        help="the generated events span the last DAYS days")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--parts", default="abc",
                        help="which parts to run (a and b run together)")
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile runs")
    args = parser.parse_args(argv)
    profile = not args.no_profile

    load_before = load_average()
    start = window_start(args.days, time.time())
    out: dict = {"generator_window": {"start": start.isoformat(), "days": args.days},
                 "code": code_digest(), "segments": SEGMENTS}
    base = Path(tempfile.mkdtemp(prefix="idgraph-bench-"))
    try:
        if "a" in args.parts or "b" in args.parts:
            t0 = time.perf_counter()
            dataset = generate(n_records=args.records, seed=args.seed, start=start,
                               days=args.days)
            out["generate_s"] = round(time.perf_counter() - t0, 1)
            a, engine = new_definition(base / "ab", dataset, profile)
            del dataset
            try:
                out["new_definition"] = a
                out["preview"] = exact_preview(engine, profile)
            finally:
                engine.close()
            out["load_average_1m_after_ab"] = load_average()
            shutil.rmtree(base / "ab", ignore_errors=True)
            gc.collect()
        if "c" in args.parts:
            events = generate(n_records=args.ingest_records, seed=args.seed, start=start,
                              days=args.days).events
            many = varied_segments(args.many, args.seed)
            runs = [ingest_with({}, events, args.batch, base),
                    ingest_with(SEGMENTS, events, args.batch, base),
                    ingest_with(many, events, args.batch, base),
                    ingest_with({}, events, args.batch, base)]
            baseline = (runs[0]["records_per_s"] + runs[3]["records_per_s"]) / 2
            for run in runs:
                run["vs_no_segments"] = round(run["records_per_s"] / baseline, 3)
            out["ingest"] = {"batch_size": args.batch, "runs": runs,
                             "no_segments_records_per_s": round(baseline),
                             "many_definitions_example": dict(list(many.items())[:5])}
            if profile:
                out["ingest"]["profile_20_segments"] = ingest_with(SEGMENTS, events,
                                                                   args.batch, base, True)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    meets: dict = {}
    if "new_definition" in out:
        a, b = out["new_definition"], out["preview"]["as_cli_file"]
        meets["new_definition_1m_10s"] = a["extrapolated_1m_s"] <= TARGET_BUILD_1M_S
        meets["draft_preview_100k_1s"] = b["extrapolated_100k_s"] <= TARGET_PREVIEW_100K_S
        meets["draft_preview_1m_3s"] = b["extrapolated_1m_s"] <= TARGET_PREVIEW_1M_S
        meets["stored_preview_100k_1s"] = all(
            v["seconds"] <= TARGET_PREVIEW_100K_S
            for v in out["preview"]["stored_from_memberships"])
    if "ingest" in out:
        many_run = out["ingest"]["runs"][2]
        meets["ingest_with_many_segments_20k_per_s"] = \
            many_run["records_per_s"] >= TARGET_INGEST_RECORDS_PER_S
    out["targets"] = {"new_definition_1m_s": TARGET_BUILD_1M_S,
                      "preview_100k_s": TARGET_PREVIEW_100K_S,
                      "preview_1m_s": TARGET_PREVIEW_1M_S,
                      "ingest_records_per_s": TARGET_INGEST_RECORDS_PER_S}
    out["meets"] = meets
    out["load_average_1m"] = {"before": load_before, "after": load_average()}
    path = save(parser, args, argv, out)
    if "new_definition" in out:
        a, b = out["new_definition"], out["preview"]
        print(f"(a) new definition over {a['profiles']} profiles: {a['build_s']} s "
              f"({a['profiles_per_s']} profiles/s) -> 1M in ~{a['extrapolated_1m_s']} s "
              f"(target {TARGET_BUILD_1M_S} s)")
        f, d = b["as_cli_file"], b["draft_alone"]
        print(f"(b) draft preview over {b['profiles_evaluated']} profiles: {f['seconds']} s "
              f"({f['definitions_evaluated']} definitions evaluated; the draft alone "
              f"{d['seconds']} s) -> 100k ~{f['extrapolated_100k_s']} s, "
              f"1M ~{f['extrapolated_1m_s']} s")
        for v in b["stored_from_memberships"]:
            print(f"(b) stored {v['segment']!r} from its {v['members']} memberships: "
                  f"{v['seconds']} s")
    if "ingest" in out:
        for run in out["ingest"]["runs"]:
            print(f"(c) ingest with {run['segments']:>4} segments: {run['records_per_s']:>6} "
                  f"records/s ({run['vs_no_segments']:.2f}x)")
    print("targets: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in meets.items()))
    print(f"written {path}")
    return out


if __name__ == "__main__":
    main()
