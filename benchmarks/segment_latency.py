"""Segment reads over gRPC: ``EvaluateSegments`` latency beside ``Lookup``, and how soon a
membership change reaches a ``WatchSegment`` stream after its batch commits.

Setup (not timed): N generated records whose events end now (the generator's window is
moved to the last ``--days`` days, so ``.within(30d)`` means something), the 20 segments of
:data:`SEGMENTS` (attributes, consent, identifiers, regions, event windows, aggregates, a
sequence, ``did_not``, ``in_segment``) defined in the data dir, ingest, then the evaluation
of the new definitions over the stored profiles (``Engine.segment_step()`` until 0).
``idgraph serve`` then runs as its own process, as in production.

Part 1, reads at a fixed rate (the client of :mod:`benchmarks.lookup_latency`: T threads,
a blocking stub and connection each, latency from the scheduled send and from the actual
send). Both servers cache per profile version (``Lookup`` the rendered profile,
``EvaluateSegments`` the evaluation), so the two regimes are measured apart:

* cached: every profile of ``--profiles`` is asked once through both (warm-up), then
  ``--rounds`` rounds, each of the health check (the gRPC baseline), ``Lookup`` and
  ``EvaluateSegments`` (the 20 segments named, by identifier) over the identifiers of those
  profiles, ``--seconds`` each. Interleaved rounds, because the machine is shared: the
  median of the rounds is the result, every round is in the file.
* uncached: one call per profile never asked before (``Lookup`` and ``EvaluateSegments``
  each on their own fresh profiles), every call folding the profile (and evaluating 20
  segments), at ``--rate`` and at ``--uncached-rate``, a rate one server process sustains.

Before the server starts, the servicers' methods are timed in this process on
``--in-process`` fresh profiles (no gRPC): locate, fold with every event, evaluation, the
whole uncached and cached call, and the uncached call under cProfile.

Part 2, change emission: a ``WatchSegment`` stream (all segments) is open on the server;
this process opens an Engine on the same data dir and ingests ``--batches`` small batches
(``--batch-events`` events each, one batch every ``--batch-interval`` s), alternating
``Product Added`` (enters "Cart abandoners") and ``Order Completed`` for the same people
(exits "Cart abandoners", enters "Recent buyers"...). The batch's changes are read from
the store's change log right after ``ingest`` returns (their change IDs); latency = when
the stream delivered the last of them - when ``ingest`` returned (the batch committed).
The server reads the log every ``grpc.watch_poll_seconds`` (0.02 s) when idle.

Every timed run records the cores other processes kept busy meanwhile (from /proc): on
this shared machine a run where they were busy is a disturbed run.

Targets: EvaluateSegments (20 segments) p99 <= 2 ms and <= 1.3x Lookup p99 in the same run;
a membership change delivered p99 <= 50 ms after its batch commits.

    .venv/bin/python -m benchmarks.segment_latency --records 100000 --rate 1000 --seconds 10
"""

from __future__ import annotations

import cProfile
import gc
import hashlib
import io
import itertools
import os
import pstats
import random
import secrets
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from benchmarks.common import argument_parser, load_average, percentile, save
from benchmarks.lookup_latency import start_server
from idgraph.engine import Engine
from idgraph.engine.backends import open_segment_catalog
from idgraph.engine.segment_definitions import SegmentDefinitions
from idgraph.generator import generate
from idgraph.proto.idgraph.v1 import profiles_pb2 as pb
from idgraph.proto.idgraph.v1 import profiles_pb2_grpc as pb_grpc
from idgraph.proto.idgraph.v1 import segments_pb2 as spb
from idgraph.proto.idgraph.v1 import segments_pb2_grpc as spb_grpc
from idgraph.resolver.model import Identifier, IdentityRecord
from idgraph.settings import Settings

TARGET_EVALUATE_P99_MS = 2.0
TARGET_RATIO_TO_LOOKUP = 1.3
TARGET_CHANGE_P99_MS = 50.0

#: 20 segments over what the generated profiles hold: attributes (country, job_title),
#: consent (email, ads), identifier types and sources, regions (us, eu, uk, apac), and the
#: events of the five sources (SendGrid processed/delivered/open/click with a category,
#: Segment page/screen/track events with their properties, Salesforce lead, Calendar
#: attendee). Three use in_segment. The generator's Segment (app and web) events stop about
#: 30 days before the end of its window, the email and CRM events do not: the windows on
#: Segment events are 45 days and more so that those segments have members.
SEGMENTS: dict[str, str] = {
    "Europe": 'region in ("eu", "uk") or country in ("DE", "AT", "CH", "FR", "NL", "ES")',
    "Email marketable": 'consent("email") = granted and has_identifier(email)',
    "Ads audience": 'consent("ads") = granted and (has_identifier(gaid) or has_identifier(idfa)'
                    ' or has_identifier(cookie))',
    "CRM contacts": "has_identifier(crm)",
    "In both CRMs": "identifier_from(salesforce) and identifier_from(hubspot)",
    "Multi-device": "identifier_count(device) >= 2",
    "Leaders": 'job_title starts_with "Head of" or job_title starts_with "Director"'
               ' or job_title in ("CTO", "CEO", "Founder", "VP of Engineering")',
    "Recent openers": 'event("open").within(30d)',
    "Engaged readers": 'event("open").within(90d).count() >= 3 or event("click").within(90d)',
    "Lapsed": 'event("delivered").within(60d).count() >= 2 and did_not event("open").within(60d)',
    "Recent buyers": 'event("Order Completed").within(60d)',
    "Big spenders": 'event("Order Completed").within(180d).sum(total) >= 500',
    "Cart abandoners": 'event("Product Added").within(45d)'
                       ' and did_not event("Order Completed").within(45d)',
    "Viewed then bought": 'event("Product Viewed") then event("Order Completed") within 2d',
    "Docs readers": 'event("page").where(path starts_with "/docs").within(90d).count() >= 1',
    "Pricing interest": 'event("page").where(path in ("/pricing", "/contact-sales")).within(60d)'
                        ' or event("Product Viewed").where(product_id = "prod_1003").within(90d)',
    "Active app users": 'event("Application Opened").source("segment").within(60d).count() >= 2'
                        ' or event("screen").within(60d).distinct(name) >= 3',
    "Open leads": 'event("lead").last(lead_status) = "Open - Not Contacted"'
                  ' and did_not event("Order Completed")',
    "Win-back": 'in_segment("Email marketable") and in_segment("Lapsed")'
                ' and not in_segment("Recent buyers")',
    "VIP Europe": 'in_segment("Big spenders") and in_segment("Europe")'
                  ' and consent("email") = granted',
}


#: The sources whose state a result measured (the segment code was changing while these
#: benchmarks were written; uncommitted edits do not show in ``git rev-parse HEAD``).
_MEASURED_SOURCES = ("segments", "idgraph/engine", "profile_store", "service")


def code_digest(root: Path | None = None) -> dict:
    """The git HEAD and a SHA-1 over the Python files of :data:`_MEASURED_SOURCES` (12 hex
    digits): two results with the same digest measured the same code."""
    root = root or Path(__file__).resolve().parents[1]
    digest = hashlib.sha1()
    for folder in _MEASURED_SOURCES:
        for path in sorted((root / folder).rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    head = root / ".git" / "HEAD"
    commit = ""
    if head.exists():
        ref = head.read_text().strip()
        target = root / ".git" / ref.removeprefix("ref: ") if ref.startswith("ref: ") else None
        commit = target.read_text().strip() if target and target.exists() else ref
    return {"git_head": commit, "sources_sha1": digest.hexdigest()[:12]}


def window_start(days: int, now: float) -> datetime:
    """The generator's start so that its ``days``-day window ends at midnight UTC today
    (no generated event is in the future)."""
    today = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0,
                                                      microsecond=0)
    return today - timedelta(days=days)


def define_segments(engine: Engine, definitions: dict[str, str], author: str = "benchmark"
                    ) -> None:
    """Apply ``definitions`` (name -> text) in the engine's catalog, in the order given (a
    segment another uses must come first)."""
    catalog = open_segment_catalog(engine.settings)
    try:
        service = SegmentDefinitions(engine.store, catalog)
        for name, text in definitions.items():
            service.apply(name, text, author)
    finally:
        catalog.close()


def build_segments(engine: Engine) -> tuple[float, int]:
    """Evaluate new definitions over every stored profile: ``segment_step()`` until it
    returns 0. Returns (seconds, profile evaluations reported)."""
    total = 0
    t0 = time.perf_counter()
    while n := engine.segment_step():
        total += n
    return time.perf_counter() - t0, total


def summary(values: Sequence[float]) -> dict:
    """p50/p90/p99/p99.9/max of latencies in ms (None when there are none)."""
    if not values:
        return {"p50_ms": None, "p90_ms": None, "p99_ms": None, "p99.9_ms": None,
                "max_ms": None}
    return {f"p{q:g}_ms": round(percentile(list(values), q), 3) for q in (50, 90, 99, 99.9)} | {
        "max_ms": round(max(values), 3)}


def batch_latencies(commits: Sequence[float], batch_changes: Sequence[Sequence[str]],
                    received: dict[str, float]) -> tuple[list[float], list[float], int]:
    """Per batch with changes: (ms from commit to the LAST of its changes received, ms to
    the FIRST), and how many batches had a change never received (left out of both)."""
    last, first, missing = [], [], 0
    for committed, ids in zip(commits, batch_changes, strict=True):
        if not ids:
            continue
        times = [received.get(cid) for cid in ids]
        if any(t is None for t in times):
            missing += 1
            continue
        last.append((max(times) - committed) * 1000)  # type: ignore[type-var]
        first.append((min(times) - committed) * 1000)  # type: ignore[type-var]
    return last, first, missing


# ---------------------------------------------------------------------------- profiling

def top_functions(profile: cProfile.Profile, limit: int = 15, sort: str = "tottime"
                  ) -> list[str]:
    """The ``limit`` functions with the most ``sort`` time, one line each:
    ``tottime cumtime ncalls file:line(function)`` with paths shortened to the package."""
    stats = pstats.Stats(profile, stream=io.StringIO())
    rows = []
    for (file, line, func), (_cc, ncalls, tottime, cumtime, _callers) in stats.stats.items():
        rows.append((tottime if sort == "tottime" else cumtime, tottime, cumtime, ncalls,
                     _short(file), line, func))
    rows.sort(reverse=True)
    total = max((r[2] for r in rows), default=0.0)
    return [f"tottime {t:7.3f}s cumtime {c:7.3f}s ({c / total:4.0%}) calls {n:>9} "
            f"{f}:{ln}({fn})" for _k, t, c, n, f, ln, fn in rows[:limit]] if total else []


def _short(path: str) -> str:
    for marker in ("/work/main/", "site-packages/", "/lib/python3"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def profiled(fn: Callable[[], object], limit: int = 15) -> dict:
    """Run ``fn`` under cProfile: its seconds (with profiling overhead) and the top
    functions by own time and by cumulative time."""
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    try:
        fn()
    finally:
        prof.disable()
    return {"seconds_under_profiler": round(time.perf_counter() - t0, 2),
            "by_own_time": top_functions(prof, limit, "tottime"),
            "by_cumulative_time": top_functions(prof, limit + 10, "cumtime")}


# ---------------------------------------------------------------------------- paced calls

def cpu_seconds(pids: Sequence[int]) -> tuple[float, float]:
    """(CPU seconds the whole machine has been busy, CPU seconds used by ``pids``) so far,
    from /proc (Linux); (0, 0) elsewhere."""
    tick = os.sysconf("SC_CLK_TCK")
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        busy = sum(fields[:8]) - fields[3] - fields[4]  # all but idle and iowait
        ours = 0
        for pid in pids:
            stat = Path(f"/proc/{pid}/stat").read_text()
            after_name = stat[stat.rindex(")") + 2:].split()
            ours += int(after_name[11]) + int(after_name[12])  # utime, stime
    except (OSError, ValueError, IndexError):
        return 0.0, 0.0
    return busy / tick, ours / tick


def other_cores(before: tuple[float, float], after: tuple[float, float], seconds: float
                ) -> float:
    """Cores the rest of the machine (not ``pids``) kept busy between two
    :func:`cpu_seconds` readings ``seconds`` apart."""
    if seconds <= 0:
        return 0.0
    return round(max(0.0, (after[0] - before[0]) - (after[1] - before[1])) / seconds, 2)


#: Processes whose CPU is this benchmark's own (the client and the server): set by main.
OWN_PIDS: list[int] = [os.getpid()]


def paced(port: int, make: Callable[[grpc.Channel], Callable[[int], object]], rate: float,
          n: int, threads: int) -> dict:
    """``n`` calls at ``rate``/s from ``threads`` threads (a connection each; thread k sends
    calls k, k+T, ...); ``make(channel)`` gives ``call(i)``. Latency summaries (ms), and
    the cores other processes than :data:`OWN_PIDS` used meanwhile (the machine is shared:
    a run where they were busy is a disturbed run)."""
    sent_ms: list[float] = []
    sched_ms: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    channels = [grpc.insecure_channel(f"127.0.0.1:{port}",
                                      options=[("grpc.use_local_subchannel_pool", 1)])
                for _ in range(threads)]
    for ch in channels:
        grpc.channel_ready_future(ch).result(timeout=10)
    calls = [make(ch) for ch in channels]
    start = time.perf_counter() + 0.1

    def worker(k: int) -> None:
        call = calls[k]
        mine_sent, mine_sched, mine_err = [], [], []
        for i in range(k, n, threads):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            t = time.perf_counter()
            try:
                call(i)
            except grpc.RpcError as exc:
                mine_err.append(str(exc.code()))
                continue
            end = time.perf_counter()
            mine_sent.append((end - t) * 1000)
            mine_sched.append((end - scheduled) * 1000)
        with lock:
            sent_ms.extend(mine_sent)
            sched_ms.extend(mine_sched)
            errors.extend(mine_err)

    workers = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    cpu_before, t0 = cpu_seconds(OWN_PIDS), time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    cpu_after, elapsed = cpu_seconds(OWN_PIDS), time.perf_counter() - t0
    for ch in channels:
        ch.close()
    return {"count": len(sent_ms), "errors": len(errors),
            "error_codes": sorted(set(errors)), "sent": summary(sent_ms),
            "scheduled": summary(sched_ms),
            "own_cpu_cores": round((cpu_after[1] - cpu_before[1]) / elapsed, 2),
            "other_processes_cpu_cores": other_cores(cpu_before, cpu_after, elapsed)}


def _metadata(token: str) -> tuple:
    return (("authorization", f"Bearer {token}"),)


def health_call(token: str) -> Callable[[grpc.Channel], Callable[[int], object]]:
    request = health_pb2.HealthCheckRequest(service="")

    def make(ch: grpc.Channel) -> Callable[[int], object]:
        stub = health_pb2_grpc.HealthStub(ch)
        return lambda i: stub.Check(request, metadata=_metadata(token), timeout=5)
    return make


def lookup_call(token: str, identifiers: list[str]
                ) -> Callable[[grpc.Channel], Callable[[int], object]]:
    requests = [pb.LookupRequest(identifier=i) for i in identifiers]

    def make(ch: grpc.Channel) -> Callable[[int], object]:
        stub = pb_grpc.ProfileServiceStub(ch)
        return lambda i: stub.Lookup(requests[i % len(requests)], metadata=_metadata(token),
                                     timeout=5)
    return make


def evaluate_call(token: str, identifiers: list[str], names: list[str]
                  ) -> Callable[[grpc.Channel], Callable[[int], object]]:
    requests = [spb.EvaluateSegmentsRequest(identifier=i, names=names) for i in identifiers]

    def make(ch: grpc.Channel) -> Callable[[int], object]:
        stub = spb_grpc.SegmentServiceStub(ch)

        def call(i: int) -> object:
            response = stub.EvaluateSegments(requests[i % len(requests)],
                                             metadata=_metadata(token), timeout=5)
            if len(response.memberships) != len(names):
                raise AssertionError("EvaluateSegments answered for the wrong segments")
            return response
        return call
    return make


# ---------------------------------------------------------------------------- change stream

class Watcher:
    """A ``WatchSegment`` stream (every segment) read on its own thread: change ID -> when
    it arrived (perf_counter)."""

    def __init__(self, port: int, token: str) -> None:
        self.received: dict[str, float] = {}
        self.kinds: dict[str, int] = {}
        self._channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(self._channel).result(timeout=10)
        stub = spb_grpc.SegmentServiceStub(self._channel)
        self._stream = stub.WatchSegment(spb.WatchSegmentRequest(), metadata=_metadata(token))
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for change in self._stream:
                self.received[change.change_id] = time.perf_counter()
                self.kinds[change.segment] = self.kinds.get(change.segment, 0) + 1
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                self.error = str(exc.code())

    def wait_for(self, ids: set[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ids.issubset(self.received.keys()):
                return True
            time.sleep(0.01)
        return False

    def close(self) -> None:
        self._stream.cancel()
        self._thread.join(timeout=5)
        self._channel.close()


def change_batches(targets: list[tuple[str, str]], batches: int, per_batch: int, now: float
                   ) -> list[list[IdentityRecord]]:
    """Small batches about ``targets`` ((profile ID, email)): each group of ``per_batch``
    people gets a ``Product Added`` batch, then an ``Order Completed`` batch (total 120),
    each event a new Segment record keyed by the person's email. Events are a minute old."""
    out: list[list[IdentityRecord]] = []
    at = datetime.fromtimestamp(now - 60, UTC)
    for b in range(batches):
        group = targets[(b // 2) * per_batch:(b // 2 + 1) * per_batch]
        name, props = (("Product Added", {"price": 49.0, "product_id": "prod_1002"})
                       if b % 2 == 0 else ("Order Completed", {"total": 120.0}))
        out.append([IdentityRecord(
            source="segment", source_record_id=f"bench-{b}-{j}", event_id=f"bench-{b}-{j}",
            event_time=at, identifiers=(Identifier("email", email),), event_type="track",
            event_name=name, properties=dict(props))
            for j, (_pid, email) in enumerate(group)])
    return out


def change_emission(data_dir: Path, port: int, token: str, targets: list[tuple[str, str]],
                    batches: int, per_batch: int, interval: float) -> dict:
    watcher = Watcher(port, token)
    time.sleep(0.5)  # the stream starts from the log position when the server reads it
    commits: list[float] = []
    ids_per_batch: list[list[str]] = []
    ingest_ms: list[float] = []
    with Engine(Settings(data_dir=data_dir)) as engine:
        plan = change_batches(targets, batches, per_batch, time.time())
        gc.collect()
        gc.freeze()
        start = time.perf_counter() + 0.1
        for b, records in enumerate(plan):
            delay = start + b * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            position = engine.store.segment_log_position()
            t0 = time.perf_counter()
            engine.ingest(records)
            committed = time.perf_counter()
            commits.append(committed)
            ingest_ms.append((committed - t0) * 1000)
            changes, _after = engine.store.segment_changes_after(position, 100_000)
            ids_per_batch.append([c.change_id for c in changes])
    everything = {cid for ids in ids_per_batch for cid in ids}
    complete = watcher.wait_for(everything, timeout=10)
    watcher.close()
    last, first, missing = batch_latencies(commits, ids_per_batch, watcher.received)
    return {
        "batches": batches, "events_per_batch": per_batch, "batch_interval_s": interval,
        "changes": len(everything), "changes_per_segment": dict(sorted(watcher.kinds.items())),
        "batches_with_changes": sum(1 for ids in ids_per_batch if ids),
        "batches_missing_a_change": missing, "all_delivered": complete,
        "stream_error": watcher.error,
        "commit_to_last_change": summary(last), "commit_to_first_change": summary(first),
        "ingest_call_ms": summary(ingest_ms),
    }


# ---------------------------------------------------------------------------- in process

def in_process_costs(engine: Engine, identifiers: list[str], names: list[str],
                     fill: list[str] = ()) -> dict:
    """What one call costs the server without gRPC, over ``identifiers`` (one per profile,
    none asked before): the servicers' own methods in this process on the engine's store.
    Stages of an uncached EvaluateSegments (locate, fold with every event, evaluate the
    segments, all of it with the response), the same call cached, a Lookup (uncached), and
    the uncached EvaluateSegments under cProfile (a second, fresh cache). Last, what a
    full collection of the cyclic GC costs with each cache holding answers for ``fill``
    (identifiers, one per profile)."""
    from idgraph.engine.segment_memberships import evaluate_profile
    from idgraph.engine.segment_queries import SegmentQueries
    from idgraph.service.segment_servicer import SegmentServiceServicer
    from idgraph.service.servicer import ProfileServiceServicer

    def servicer() -> SegmentServiceServicer:
        return SegmentServiceServicer(SegmentDefinitions(engine.store, None),
                                      SegmentQueries(engine.store, engine.queries))

    queries = engine.queries
    gc.collect()
    gc.freeze()  # the engine's objects: a server process freezes its start-up objects too
    live = servicer()._queries.live()
    now = datetime.now(UTC)
    stages: dict[str, list[float]] = {"locate": [], "fold_all_events": [],
                                      "evaluate_segments": []}
    for ident in identifiers:
        t0 = time.perf_counter()
        pid = queries.locate(ident).profile_id
        t1 = time.perf_counter()
        profile = queries.profile_with_all_events(pid)
        t2 = time.perf_counter()
        evaluate_profile(live, profile, now, names)
        t3 = time.perf_counter()
        stages["locate"].append(t1 - t0)
        stages["fold_all_events"].append(t2 - t1)
        stages["evaluate_segments"].append(t3 - t2)
    requests = [spb.EvaluateSegmentsRequest(identifier=i, names=names) for i in identifiers]

    def timed(call: Callable[[object], object], items: list) -> list[float]:
        out = []
        for item in items:
            t0 = time.perf_counter()
            call(item)
            out.append(time.perf_counter() - t0)
        return out

    gc.collect()
    tracked_before, gc_before = _tracked(), _full_gc_ms()
    service = servicer()
    uncached = timed(lambda r: service.EvaluateSegments(r, None), requests)
    cached = timed(lambda r: service.EvaluateSegments(r, None), requests)
    tracked_evaluations, gc_evaluations = _tracked(), _full_gc_ms()
    lookups = ProfileServiceServicer(queries)
    lookup = timed(lambda i: lookups.Lookup(pb.LookupRequest(identifier=i), None), identifiers)
    tracked_lookups, gc_lookups = _tracked(), _full_gc_ms()
    per_evaluation = (tracked_evaluations - tracked_before) / len(identifiers)
    per_lookup = (tracked_lookups - tracked_evaluations) / len(identifiers)
    service = lookups = None  # type: ignore[assignment]  # their caches go
    gc.collect()
    big = {"before": _full_gc_ms()}
    if fill:  # the caches a server holds after answering for ``fill`` profiles
        answers = SegmentQueries(engine.store, queries)
        for ident in fill:
            answers.evaluate(names, identifier=ident)
        big[f"with_{len(fill)}_cached_evaluations"] = _full_gc_ms()
        del answers
        gc.collect()
        rendered = ProfileServiceServicer(queries)
        for ident in fill:
            rendered.Lookup(pb.LookupRequest(identifier=ident), None)
        big[f"with_{len(fill)}_cached_lookups_instead"] = _full_gc_ms()
        del rendered
    gc_cost = {
        "about": "objects the cyclic GC tracks per cached answer, and a full collection's "
                 "time (fastest of 3) with this process's other objects frozen (gc.freeze)",
        "tracked_objects_per_cached_evaluation": round(per_evaluation, 1),
        "tracked_objects_per_cached_lookup": round(per_lookup, 1),
        "full_collection_ms": {"before": gc_before,
                               f"with_{len(identifiers)}_cached_evaluations": gc_evaluations,
                               f"and_{len(identifiers)}_cached_lookups": gc_lookups},
        "full_collection_ms_pool": big,
    }
    fresh = servicer()
    profile = profiled(lambda: [fresh.EvaluateSegments(r, None) for r in requests], 20)

    def us(values: list[float]) -> dict:
        ordered = sorted(values)
        return {"mean_us": round(sum(values) / len(values) * 1e6),
                "p50_us": round(ordered[len(ordered) // 2] * 1e6),
                "p99_us": round(percentile(ordered, 99) * 1e6)}

    return {"calls": len(identifiers),
            "stages_of_uncached_evaluate": {k: us(v) for k, v in stages.items()},
            "evaluate_segments_uncached": us(uncached), "evaluate_segments_cached": us(cached),
            "lookup_uncached": us(lookup), "gc": gc_cost,
            "profile_uncached_evaluate": profile}


def _tracked() -> int:
    return len(gc.get_objects())


def _full_gc_ms(times: int = 3) -> float:
    """The fastest of ``times`` full collections, in ms."""
    best = float("inf")
    for _ in range(times):
        t0 = time.perf_counter()
        gc.collect()
        best = min(best, time.perf_counter() - t0)
    return round(best * 1000, 2)


# ---------------------------------------------------------------------------- main

def _sample_profiles(engine: Engine, rng: random.Random, k: int) -> list:
    pids = engine.graph.profile_ids()
    return [engine.queries.get_profile(pid) for pid in rng.sample(pids, min(k, len(pids)))]


def _p99(run: dict) -> float | None:
    return run["scheduled"]["p99_ms"]


def _ratio(a: dict, b: dict) -> float | None:
    x, y = _p99(a), _p99(b)
    return round(x / y, 2) if x and y else None


def _median(values: list[float | None]) -> float | None:
    present = sorted(v for v in values if v is not None)
    return round(statistics.median(present), 3) if present else None


def main(argv: list[str] | None = None) -> dict:
    parser = argument_parser("segment_latency", __doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=10,
                        help="length of each measured run of a round")
    parser.add_argument("--rounds", type=int, default=5,
                        help="rounds of health, Lookup, EvaluateSegments (interleaved)")
    parser.add_argument("--profiles", type=int, default=5000,
                        help="profiles whose identifiers the cached runs call")
    parser.add_argument("--cold-calls", type=int, default=2000,
                        help="calls (one per fresh profile) of each uncached run at --rate")
    parser.add_argument("--uncached-rate", type=float, default=200,
                        help="rate of a second pair of uncached runs, one the server sustains")
    parser.add_argument("--uncached-calls", type=int, default=1000,
                        help="calls (one per fresh profile) of each run at --uncached-rate")
    parser.add_argument("--in-process", type=int, default=500,
                        help="fresh profiles of the in-process cost breakdown")
    parser.add_argument("--days", type=int, default=180,
                        help="the generated events span the last DAYS days")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--threads", type=int, default=4,
                        help="client threads, one connection each")
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch-events", type=int, default=5)
    parser.add_argument("--batch-interval", type=float, default=0.1)
    args = parser.parse_args(argv)

    load_before = load_average()
    tmp = Path(tempfile.mkdtemp(prefix="idgraph-bench-"))
    token = secrets.token_urlsafe(16)
    proc = None
    setup: dict = {}
    loads: dict = {"before": load_before}
    try:
        start = window_start(args.days, time.time())
        dataset = generate(n_records=args.records, seed=args.seed, start=start, days=args.days)
        with Engine(Settings(data_dir=tmp)) as engine:
            t0 = time.perf_counter()
            engine.ingest_payloads(dataset.events)
            setup["ingest_s"] = round(time.perf_counter() - t0, 2)
            define_segments(engine, SEGMENTS)
            build_s, evaluations = build_segments(engine)
            setup["build_s"], setup["build_rounds_total"] = round(build_s, 2), evaluations
            setup["profiles"] = engine.store.counts()["profiles"]
            setup["members"] = {name: sum(engine.store.count_segment(name).values())
                                for name in SEGMENTS}
            rng = random.Random(args.seed)
            needed = (args.profiles + 2 * args.cold_calls + 2 * args.uncached_calls
                      + args.in_process + args.batches * args.batch_events)
            profiles = _sample_profiles(engine, rng, needed)
            local = [p.identifiers[0].identifier for p in profiles[-args.in_process:]]
            profiles = profiles[:-args.in_process]
            costs = in_process_costs(engine, local, list(SEGMENTS),
                                     [p.identifiers[0].identifier for p in
                                      profiles[:args.profiles]])
            buyers = {m.profile_id for m in engine.store.segment_members("Recent buyers",
                                                                         "", 1_000_000)}
        del dataset, engine
        gc.collect()
        gc.freeze()

        def identifiers(ps: list) -> list[str]:
            return [i.identifier for p in ps for i in p.identifiers]

        def one_identifier(ps: list) -> list[str]:
            return [p.identifiers[0].identifier for p in ps]

        pool, rest = profiles[:args.profiles], profiles[args.profiles:]
        # change emission: people with an email, not recent buyers, none in the read pools
        emailed = [(p.profile_id, p.attributes["email"].value) for p in rest
                   if "email" in p.attributes and p.profile_id not in buyers
                   and any(i.identifier == "email:" + p.attributes["email"].value
                           for i in p.identifiers)]
        targets = emailed[:(args.batches + 1) // 2 * args.batch_events]
        targeted = {pid for pid, _ in targets}
        fresh = [p for p in rest if p.profile_id not in targeted]
        cuts = [0, args.cold_calls, 2 * args.cold_calls, 2 * args.cold_calls + args.uncached_calls,
                2 * (args.cold_calls + args.uncached_calls)]
        cold_lookup, cold_evaluate, slow_lookup, slow_evaluate = (
            one_identifier(fresh[a:b]) for a, b in itertools.pairwise(cuts))
        if len(slow_evaluate) < args.uncached_calls:
            raise SystemExit(f"{len(fresh)} fresh profiles: too few for the uncached runs")
        shared = identifiers(pool)
        random.Random(args.seed).shuffle(shared)
        names = list(SEGMENTS)
        n = int(args.rate * args.seconds)

        proc, port = start_server(tmp, token, 1)
        OWN_PIDS[:] = [os.getpid(), proc.pid]
        time.sleep(1.0)
        # warm-up: every pool profile once through both caches, then 2 s of each call
        warm = one_identifier(pool)
        paced(port, lookup_call(token, warm), args.rate, len(warm), args.threads)
        paced(port, evaluate_call(token, warm, names), args.rate, len(warm), args.threads)
        paced(port, lookup_call(token, shared), args.rate, int(args.rate * 2), args.threads)
        paced(port, evaluate_call(token, shared, names), args.rate, int(args.rate * 2),
              args.threads)
        rounds = []
        for r in range(args.rounds):
            asked = shared[r * n % len(shared):] + shared[:r * n % len(shared)]
            health = paced(port, health_call(token), args.rate, n, args.threads)
            lookup = paced(port, lookup_call(token, asked), args.rate, n, args.threads)
            evaluate = paced(port, evaluate_call(token, asked, names), args.rate, n,
                             args.threads)
            rounds.append({"health_baseline": health, "lookup": lookup,
                           "evaluate_segments": evaluate,
                           "evaluate_p99_vs_lookup_p99": _ratio(evaluate, lookup),
                           "load_average_1m": load_average()})
        lookup_cold = paced(port, lookup_call(token, cold_lookup), args.rate,
                            len(cold_lookup), args.threads)
        evaluate_cold = paced(port, evaluate_call(token, cold_evaluate, names), args.rate,
                              len(cold_evaluate), args.threads)
        lookup_slow = paced(port, lookup_call(token, slow_lookup), args.uncached_rate,
                            len(slow_lookup), args.threads)
        evaluate_slow = paced(port, evaluate_call(token, slow_evaluate, names),
                              args.uncached_rate, len(slow_evaluate), args.threads)
        loads["after_reads"] = load_average()
        emission = change_emission(tmp, port, token, targets, args.batches, args.batch_events,
                                   args.batch_interval)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=20)
        shutil.rmtree(tmp, ignore_errors=True)
    loads["after"] = load_average()

    median = {
        "health_p99_ms": _median([_p99(r["health_baseline"]) for r in rounds]),
        "lookup_p99_ms": _median([_p99(r["lookup"]) for r in rounds]),
        "evaluate_p99_ms": _median([_p99(r["evaluate_segments"]) for r in rounds]),
        "evaluate_p50_ms": _median([r["evaluate_segments"]["scheduled"]["p50_ms"]
                                    for r in rounds]),
        "lookup_p50_ms": _median([r["lookup"]["scheduled"]["p50_ms"] for r in rounds]),
        "evaluate_p99_vs_lookup_p99": _median([r["evaluate_p99_vs_lookup_p99"]
                                               for r in rounds]),
    }
    errors = sum(r["evaluate_segments"]["errors"] for r in rounds)
    p99, ratio = median["evaluate_p99_ms"], median["evaluate_p99_vs_lookup_p99"]
    p99_slow = _p99(evaluate_slow)
    change_p99 = emission["commit_to_last_change"]["p99_ms"]
    out = {
        "records": args.records, "rate_per_s": args.rate, "seconds": args.seconds,
        "generator_window": {"start": start.isoformat(), "days": args.days},
        "client_threads": args.threads, "code": code_digest(), "segments": SEGMENTS,
        "setup": setup,
        "cached": {
            "about": "every pool profile was asked once before (both servers cache per "
                     "profile version); rounds interleave health, Lookup, EvaluateSegments",
            "distinct_identifiers": len(shared), "profiles": len(pool),
            "median_of_rounds": median, "rounds": rounds,
        },
        "uncached": {
            "about": "one call per profile never asked before: every call folds the profile "
                     "(EvaluateSegments also evaluates the 20 segments)",
            "at_rate": {"rate_per_s": args.rate, "calls_each": args.cold_calls,
                        "lookup": lookup_cold, "evaluate_segments": evaluate_cold,
                        "evaluate_p99_vs_lookup_p99": _ratio(evaluate_cold, lookup_cold)},
            "at_sustainable_rate": {"rate_per_s": args.uncached_rate,
                                    "calls_each": args.uncached_calls,
                                    "lookup": lookup_slow, "evaluate_segments": evaluate_slow,
                                    "evaluate_p99_vs_lookup_p99": _ratio(evaluate_slow,
                                                                         lookup_slow)},
        },
        "in_process": costs,
        "change_emission": emission,
        "targets": {
            "evaluate_p99_ms": TARGET_EVALUATE_P99_MS,
            "evaluate_vs_lookup_p99": TARGET_RATIO_TO_LOOKUP,
            "change_p99_ms": TARGET_CHANGE_P99_MS,
        },
        "meets": {
            "cached_evaluate_p99": bool(p99 is not None and p99 <= TARGET_EVALUATE_P99_MS
                                        and errors == 0),
            "cached_evaluate_vs_lookup": bool(ratio is not None
                                              and ratio <= TARGET_RATIO_TO_LOOKUP),
            "uncached_evaluate_p99_at_rate": bool(
                _p99(evaluate_cold) is not None and _p99(evaluate_cold) <= TARGET_EVALUATE_P99_MS
                and evaluate_cold["errors"] == 0),
            "uncached_evaluate_vs_lookup_at_rate": bool(
                (_ratio(evaluate_cold, lookup_cold) or 99) <= TARGET_RATIO_TO_LOOKUP),
            "uncached_evaluate_p99_at_sustainable_rate": bool(
                p99_slow is not None and p99_slow <= TARGET_EVALUATE_P99_MS
                and evaluate_slow["errors"] == 0),
            "uncached_evaluate_vs_lookup_at_sustainable_rate": bool(
                (_ratio(evaluate_slow, lookup_slow) or 99) <= TARGET_RATIO_TO_LOOKUP),
            "change_p99": bool(change_p99 is not None and change_p99 <= TARGET_CHANGE_P99_MS
                               and emission["all_delivered"]),
        },
        "load_average_1m": loads,
    }
    path = save(parser, args, argv, out)

    def line(name: str, res: dict) -> None:
        sent, sched = res["sent"], res["scheduled"]
        print(f"{name:24} from schedule: p50 {sched['p50_ms']} ms  p99 {sched['p99_ms']} ms  "
              f"max {sched['max_ms']} ms  errors {res['errors']}  (from send: p50 "
              f"{sent['p50_ms']} ms, p99 {sent['p99_ms']} ms)  other processes "
              f"{res['other_processes_cpu_cores']} cores")

    for k, r in enumerate(rounds, 1):
        line(f"round {k} Health", r["health_baseline"])
        line(f"round {k} Lookup", r["lookup"])
        line(f"round {k} Evaluate", r["evaluate_segments"])
    line(f"Lookup uncached {args.rate:g}/s", lookup_cold)
    line(f"Evaluate uncached {args.rate:g}/s", evaluate_cold)
    line(f"Lookup uncached {args.uncached_rate:g}/s", lookup_slow)
    line(f"Evaluate uncached {args.uncached_rate:g}/s", evaluate_slow)
    print(f"median of rounds: EvaluateSegments p99 {p99} ms, / Lookup p99: {ratio}")
    c = emission["commit_to_last_change"]
    print(f"change emission: {emission['changes']} changes in "
          f"{emission['batches_with_changes']} batches; commit -> last change p50 "
          f"{c['p50_ms']} ms p99 {c['p99_ms']} ms max {c['max_ms']} ms")
    print("targets: " + ", ".join(f"{k} {'met' if v else 'NOT met'}"
                                  for k, v in out["meets"].items()))
    print(f"written {path}")
    return out


if __name__ == "__main__":
    main()
