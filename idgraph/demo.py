"""``idgraph demo``: the whole embedded path on generated data, then a summary.

Generate a seeded multi-source event stream -> resolve and store it through the engine
(deterministic rules) -> train a model with Splink on the stored records and link with it
(one Splink pass, as ``idgraph train`` + ``idgraph match``) -> start the gRPC server on a loopback port with a fresh API key -> answer sample lookups
over a real channel -> score the profiles against the generator's ground truth -> print.

The example segments (``segments/examples.toml``) are defined before the stream, so their
memberships are kept as it is ingested; the generated events end today, so windows such as
"in the last 30 days" hold for some people.
"""

from __future__ import annotations

import random
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from idgraph.settings import Settings


def run_demo(settings: Settings, records: int, seed: int, lookups: int, keep_data: bool) -> int:
    from importlib.resources import files

    from tqdm import tqdm

    from idgraph.engine import Engine
    from idgraph.engine.backends import open_segment_catalog
    from idgraph.engine.consent import ConsentService
    from idgraph.engine.segment_definitions import SegmentDefinitions, parse_segment_file
    from idgraph.evaluation import evaluate, percentile
    from idgraph.generator import generate
    from idgraph.service.client import ProfileClient, ServiceCallError
    from idgraph.service.server import create_server
    from idgraph.serving import open_access, open_key_admin

    tmp = None
    if not keep_data:
        tmp = Path(tempfile.mkdtemp(prefix="idgraph-demo-"))
        settings = settings.model_copy(update={"data_dir": tmp})
    grpc_settings = settings.grpc
    try:
        t0 = time.perf_counter()
        # events over the 180 days up to today (midnight UTC: the same data all day)
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        dataset = generate(n_records=records, seed=seed, start=today - timedelta(days=180))
        gen_s = time.perf_counter() - t0
        print(f"generated {len(dataset.events)} source payloads for {len(dataset.people)} people "
              f"in {gen_s:.1f}s (seed {seed})")

        examples = parse_segment_file(
            files("idgraph.segments").joinpath("examples.toml").read_text(encoding="utf-8"),
            "segments/examples.toml")
        with Engine(settings) as engine, _closing(open_segment_catalog(settings)) as catalog:
            SegmentDefinitions(engine.store, catalog).apply_file(examples, "demo",
                                                                 "segments/examples.toml")
            t0 = time.perf_counter()
            with tqdm(total=len(dataset.events), unit="payload", desc="resolve") as bar:
                def counted():
                    for n, item in enumerate(dataset.events, 1):
                        if n % 1000 == 0:
                            bar.update(1000)
                        yield item

                # the stream arrives over time: batches of 2,000 let profiles be published,
                # then merged by later events, as they would be in production
                total = engine.ingest_payloads(counted(), batch_size=2_000)
                bar.update(len(dataset.events) - bar.n)
            ingest_s = time.perf_counter() - t0

            predicted = {f"{s}:{r}": p for s, r, p in engine.store.iter_record_profiles()}
            deterministic = evaluate(dataset.truth, predicted)

            from idgraph.engine.batch import match_stored, train

            t0 = time.perf_counter()
            version, report = train(engine)
            matched = match_stored(engine)
            match_s = time.perf_counter() - t0
            predicted = {f"{s}:{r}": p for s, r, p in engine.store.iter_record_profiles()}
            accuracy = evaluate(dataset.truth, predicted)
            explained = _explain_example(engine)
            while engine.segment_step():  # deadlines that passed meanwhile
                pass
            counts = engine.store.counts()
            by_region = engine.store.profiles_by_region()
            changes, _cursor = engine.store.segment_changes_after("", 10_000_000)
            entered = sum(c.change == "entered" for c in changes)

            rng = random.Random(seed)
            pids = engine.graph.profile_ids()
            sample_ids: list[str] = []
            for pid in rng.sample(pids, min(len(pids), 500)):
                profile = engine.queries.get_profile(pid)
                sample_ids.extend(i.identifier for i in profile.identifiers)
            rng.shuffle(sample_ids)

            consent = ConsentService(engine.ledger, engine.queries, engine.backends.keys,
                                     settings.privacy.merge_rule)
            # an activation key of the data dir's key store, as `idgraph keys create` makes
            admin, key_store = open_key_admin(settings, None)
            token = admin.create("demo", ["activation"], expires_in_days=1).text
            key_store.close()
            access, close_access = open_access(settings, ledger=engine.ledger,
                                               keys=engine.backends.keys)
            server, port = create_server(engine.queries, grpc_settings, "127.0.0.1:0",
                                         segment_catalog=catalog, consent=consent,
                                         access=access)
            server.start()
            try:
                with ProfileClient(f"127.0.0.1:{port}", token=token) as client:
                    client.wait_ready()
                    latencies = []
                    found = 0
                    for n in range(lookups):
                        ident = sample_ids[n % len(sample_ids)]
                        t = time.perf_counter()
                        response = client.lookup(ident)
                        latencies.append((time.perf_counter() - t) * 1000)
                        found += bool(response.profile.profile_id)
                    example = client.lookup(sample_ids[0])
                    statuses = []
                    for bad in ("email:nobody-here@example.org", "email:not-an-email", "fax:123"):
                        try:
                            client.lookup(bad)
                            statuses.append((bad, "OK"))
                        except ServiceCallError as exc:
                            statuses.append((bad, exc.code.name))
                    try:
                        ProfileClient(f"127.0.0.1:{port}", token="wrong").lookup(sample_ids[0])
                        statuses.append(("(wrong token)", "OK"))
                    except ServiceCallError as exc:
                        statuses.append(("(wrong token)", exc.code.name))
                segments = _segment_calls(port, token, sample_ids, min(lookups, 500))
                gating = _withdraw_over_grpc(port, token, engine, sample_ids)
            finally:
                server.stop(grace=1)
                close_access()
            forgotten = _forget_and_replay(engine, dataset.events, sample_ids)

        p = example.profile
        print()
        print("== idgraph demo summary ==")
        print(f"source payloads    {len(dataset.events):>10}  -> {total.events_received} record events "
              f"(applied {total.events_applied}, duplicates {total.duplicate_events}, "
              f"dead letters {len(total.dead_letters)})")
        print(f"source records     {counts['records']:>10}")
        print(f"profiles           {counts['profiles']:>10}  by region: "
              + ", ".join(f"{r} {n}" for r, n in by_region.items()))
        print(f"merges             {total.merges:>10}  (aliases kept: {counts['aliases']})")
        print(f"rejected links     {total.rejected_links:>10}  "
              + ", ".join(f"{k} {v}" for k, v in total.rejection_reasons.most_common()))
        print(f"blocked values     {total.blocked_identifiers:>10}")
        print(f"deterministic      precision {deterministic.precision:.4f}, recall "
              f"{deterministic.recall:.4f}, people in 1 profile "
              f"{deterministic.people_in_one_profile:.2%}")
        print(f"model {version}        trained by Splink on {report.rows} records, then "
              f"{matched.links} probabilistic links, {matched.reviews_queued} pairs for review "
              f"({match_s:.1f}s)")
        if explained:
            print(f"example match      {explained}")
        print(f"ground truth       {accuracy.people:>10} people")
        print(f"pairwise precision {accuracy.precision:>10.4f}")
        print(f"pairwise recall    {accuracy.recall:>10.4f}  (F1 {accuracy.f1:.4f})")
        print(f"people in 1 profile{accuracy.people_in_one_profile:>10.2%}   "
              f"profiles wrongly merged {accuracy.profiles_wrongly_merged:.2%}")
        print(f"ingest             {total.events_received / ingest_s:>10.0f} records/s "
              f"({ingest_s:.1f}s in batches of 2,000; deterministic path, embedded backends)")
        print(f"gRPC Lookup        {len(latencies):>10} calls over loopback, found {found}; "
              f"p50 {statistics.median(latencies):.2f} ms, p99 {percentile(latencies, 99):.2f} ms")
        print(f"example lookup     {example.matched_identifier} -> {p.profile_id} "
              f"({p.region}, {len(p.identifiers)} identifiers, {p.record_count} records, "
              f"sources {', '.join(s.source for s in p.sources)})")
        for bad, code in statuses:
            print(f"error status       {bad} -> {code}")
        members, seg_latencies, why = segments
        print(f"segments           {len(members):>10} defined (segments/examples.toml), "
              f"{len(changes)} membership changes while ingesting ({entered} entered)")
        print("members            " + ", ".join(f"{n} {c}" for n, c in members.items()))
        print(f"EvaluateSegments   {len(seg_latencies):>10} calls, all {len(members)} segments "
              f"each; p50 {statistics.median(seg_latencies):.2f} ms, "
              f"p99 {percentile(seg_latencies, 99):.2f} ms")
        if why:
            print(f"example membership {why}")
        if gating:
            print(f"consent            {gating}")
        if forgotten:
            print(f"forget             {forgotten}")
        return 0
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


class _closing:
    """``with`` for objects that have ``close`` (contextlib.closing, typed loosely)."""

    def __init__(self, thing):
        self.thing = thing

    def __enter__(self):
        return self.thing

    def __exit__(self, *exc: object) -> None:
        self.thing.close()


def _segment_calls(port: int, token: str, identifiers: list[str], calls: int
                   ) -> tuple[dict[str, int], list[float], str]:
    """Members per example segment (CountSegment), EvaluateSegments latencies (ms) over
    ``calls`` identifiers, and one membership with the clauses that made it hold."""
    import grpc

    from idgraph.proto.idgraph.v1 import segments_pb2 as spb
    from idgraph.proto.idgraph.v1 import segments_pb2_grpc as spb_grpc

    metadata = (("authorization", f"Bearer {token}"),)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = spb_grpc.SegmentServiceStub(channel)
        names = [s.name for s in stub.ListSegments(spb.ListSegmentsRequest(),
                                                   metadata=metadata).segments]
        members = {n: stub.CountSegment(spb.CountSegmentRequest(name=n),
                                        metadata=metadata).count for n in names}
        latencies, why = [], ""
        for n in range(calls):
            ident = identifiers[n % len(identifiers)]
            t = time.perf_counter()
            answer = stub.EvaluateSegments(spb.EvaluateSegmentsRequest(identifier=ident),
                                           metadata=metadata)
            latencies.append((time.perf_counter() - t) * 1000)
            if not why:
                inside = [m for m in answer.memberships if m.member and m.segment
                          in ("EU mailable engaged", "Big spenders", "Cart abandoners")]
                if inside:
                    m = inside[0]
                    why = f"{ident} in {m.segment!r}: " + "; ".join(m.matched_clauses)
    return members, latencies, why


def _withdraw_over_grpc(port: int, token: str, engine, identifiers: list[str]) -> str:
    """Withdraw the email purpose of one US profile over gRPC and time the first refused
    ``Lookup(purpose="email")``."""
    import grpc

    from idgraph.proto.idgraph.v1 import privacy_pb2 as ppb
    from idgraph.proto.idgraph.v1 import privacy_pb2_grpc as ppb_grpc
    from idgraph.proto.idgraph.v1 import profiles_pb2 as pb
    from idgraph.proto.idgraph.v1 import profiles_pb2_grpc as pb_grpc

    metadata = (("authorization", f"Bearer {token}"),)
    ident = next((i for i in identifiers if i.startswith("email:")
                  and engine.queries.lookup(i).profile.region == "us"
                  and "email" not in engine.queries.lookup(i).profile.consent), None)
    if ident is None:
        return ""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        profiles = pb_grpc.ProfileServiceStub(channel)
        request = pb.LookupRequest(identifier=ident, purpose="email")
        profiles.Lookup(request, metadata=metadata)  # allowed: us needs no explicit grant
        ppb_grpc.PrivacyServiceStub(channel).RecordConsent(ppb.RecordConsentRequest(
            identifier=ident, purpose="email", status=ppb.RecordConsentRequest.WITHDRAWN,
            collection_point="demo"), metadata=metadata)
        t = time.perf_counter()
        try:
            profiles.Lookup(request, metadata=metadata)
            return f"{ident}: email withdrawn over gRPC, but Lookup(purpose=email) still answers"
        except grpc.RpcError as exc:
            ms = (time.perf_counter() - t) * 1000
            return (f"{ident}: email withdrawn over gRPC -> Lookup(purpose=email) "
                    f"{exc.code().name} {ms:.1f} ms later")


def _forget_and_replay(engine, events: list, identifiers: list[str]) -> str:
    """Forget one multi-record person, then replay their payloads: all suppressed."""
    import orjson

    for ident in identifiers[1:]:
        profile = engine.queries.lookup(ident).profile
        if len(profile.record_keys) >= 3 and ident.startswith("email:"):
            break
    else:
        return ""
    values = [i.identifier.split(":", 1)[1].lower() for i in profile.identifiers if i.linked]
    theirs = [e for e in events if any(v in orjson.dumps(e[1]).decode().lower()
                                       for v in values)]
    t = time.perf_counter()
    request = engine.forget(identifier=ident, reason="demo")
    took = time.perf_counter() - t
    replay = engine.ingest_payloads(theirs)
    return (f"{ident}: {request.request_id} {request.status} in {took:.2f}s "
            f"({request.erased.get('records', 0)} records erased, {request.suppressed} values "
            f"suppressed); replayed its {len(theirs)} payloads: "
            f"{replay.suppressed_events} events suppressed, {replay.events_applied} applied")


def _explain_example(engine) -> str:
    """One probabilistic link, as Explain shows it (the record keys and the weights)."""
    for pid in engine.graph.profile_ids():
        for edge in engine.graph.profile_edges(pid):
            if edge.other_record and edge.linked:
                parts = ", ".join(f"{c} {w:+.1f}" for c, _label, w in edge.contributions
                                  if abs(w) >= 0.05)
                return (f"{edge.record_key} ~ {edge.other_record}: p={edge.probability:.4f} "
                        f"({parts})")
    return ""
