"""``idgraph`` command line: demo, serve, ingest, lookup, export, generate, train, resolve,
match, review, explain, worker, backfill, topics, segments, consent, forget, unsuppress,
export-subject (the privacy commands are :mod:`idgraph.cli_privacy`), settings.

Every command takes ``--config FILE`` (TOML, see README) and ``--data-dir DIR``; settings
also come from ``IDGRAPH_*`` environment variables. Exit codes (see :func:`main`): 0 ok,
1 failure, 2 bad usage, settings or path, 3 not found.
"""

from __future__ import annotations

import argparse
import csv
import errno
import gc
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from idgraph.core.errors import ConfigError, IdGraphError, NotFoundError
from idgraph.core.logs import LogSettings, configure_logging, error_line
from idgraph.core.ports import free_port
from idgraph.core.private_files import open_private, open_private_fd
from idgraph.settings import Settings, load_settings

log = logging.getLogger("idgraph")


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir)
    return load_settings(args.config, **overrides)


def _check_inputs(paths: Iterable[str | Path]) -> None:
    """Raise the ``OSError`` opening would (missing, a directory, not permitted) for the
    first input file that cannot be read, before any work starts."""
    for path in paths:
        with open(path, "rb"):
            pass


def _check_output(path: str | Path) -> None:
    """Raise the ``OSError`` opening would for an output file that cannot be written (no
    such directory, a directory, not permitted), before any work starts; creates nothing."""
    path = Path(path)
    parent = path.parent
    if path.is_dir():
        code = errno.EISDIR
    elif not parent.is_dir():
        code = errno.ENOTDIR if parent.exists() else errno.ENOENT
    elif not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        code = errno.EACCES
    else:
        return
    raise OSError(code, os.strerror(code), str(path))


@contextmanager
def _on_path(path: str | Path) -> Iterator[None]:
    """An ``OSError`` raised inside that names no file (a failed write, e.g. ``ENOSPC``)
    is given ``path``, so :func:`main` can say which file failed."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            exc.filename = str(path)
        raise


def _open_reader(settings: Settings):
    from idgraph.engine.backends import open_reader_store

    return open_reader_store(settings, settings.served_regions)


def _queries(settings: Settings, store):
    from idgraph.engine.backends import open_queries

    return open_queries(settings, store)


def _profile_json(profile) -> dict:
    from dataclasses import asdict

    return asdict(profile)


# ---------------------------------------------------------------------- commands


def cmd_demo(args: argparse.Namespace) -> int:
    from idgraph.demo import run_demo

    if args.kafka:
        _require_kafka()
        from idgraph.demo_kafka import run_kafka_demo

        settings = _settings(args)
        brokers = _broker_urls(args.brokers) if args.brokers else None
        return run_kafka_demo(settings, records=args.records, seed=args.seed,
                              lookups=args.lookups, workers=args.workers, brokers=brokers,
                              keep_data=bool(args.data_dir))
    settings = _settings(args)
    return run_demo(settings, records=args.records, seed=args.seed, lookups=args.lookups,
                    keep_data=bool(args.data_dir))


def cmd_ingest(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from idgraph.engine import DeadLetter, Engine, IngestResult
    from idgraph.resolver.adapters.files import iter_payloads

    settings = _settings(args)
    _check_inputs(args.files)
    dead_path = settings.data_dir / "dead-letters.jsonl"
    from idgraph.serving import writer_audit

    with writer_audit(settings) as audit, Engine(settings, audit=audit) as engine:
        total = IngestResult()
        for path in args.files:
            unreadable: list[DeadLetter] = []

            def bad_line(error: IdGraphError, line: str, unreadable=unreadable, path=path) -> None:
                unreadable.append(DeadLetter(args.source, getattr(error, "field", path),
                                             str(error), line))

            with _on_path(path), tqdm(desc=Path(path).name, unit="payload",
                                      disable=args.quiet) as bar:
                def counted(path=path):
                    for payload in iter_payloads(args.source, path, on_error=bad_line):
                        bar.update()
                        yield args.source, payload

                result = engine.ingest_payloads(counted())
            result.dead_letters[:0] = unreadable
            total.add(result)
        if total.dead_letters:
            # the payloads are personal data: the file is owner-only
            with _on_path(dead_path), open_private(dead_path, "a", encoding="utf-8") as fh:
                for d in total.dead_letters:
                    fh.write(json.dumps({"source": d.source, "position": d.position,
                                         "reason": d.reason, "payload": d.payload}) + "\n")
        print(f"events received {total.events_received}, applied {total.events_applied}, "
              f"duplicates {total.duplicate_events}, new records {total.records_created}, "
              f"profiles created {total.profiles_created}, merges {total.merges}, "
              f"rejected links {total.rejected_links}, dead letters {len(total.dead_letters)}"
              + (f" (written to {dead_path})" if total.dead_letters else ""))
    return 0


def cmd_lookup(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.server:
        from google.protobuf.json_format import MessageToDict

        from idgraph.service.client import ProfileClient

        g = settings.grpc
        with ProfileClient(args.server, token=g.client_token, tls_ca=g.tls_ca_file,
                           client_cert=g.tls_client_cert_file,
                           client_key=g.tls_client_key_file) as client:
            response = client.lookup(args.identifier)
        print(json.dumps(MessageToDict(response), indent=2))
        return 0

    store = _open_reader(settings)
    try:
        result = _queries(settings, store).lookup(args.identifier)
    finally:
        store.close()
    print(json.dumps({"identifier": result.identifier, "shared": result.shared,
                      "other_profile_ids": result.other_profile_ids,
                      "profile": _profile_json(result.profile)}, indent=2))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """One row per stored record, or with ``--events`` one row per event of the given
    source files (read again through the adapters): the profile each event landed in, so
    an evaluation can score events as well as records."""
    settings = _settings(args)
    if args.profiles:
        return _export_profiles(settings, args.file)
    if args.events and not args.source:
        raise ConfigError("export --events needs the source files: --source KIND FILE ...")
    sources = [_source_file(s) for s in args.source]
    _check_inputs([path for _, path in sources])
    store = _open_reader(settings)
    n = 0
    try:
        # record IDs are personal data (a SendGrid record is its email): owner-only file
        with _on_path(args.file), open(open_private_fd(args.file), "w", newline="",
                                       encoding="utf-8") as fh:
            writer = csv.writer(fh)
            if not args.events:
                writer.writerow(["source", "source_record_id", "profile_id"])
                for row in store.iter_record_profiles():
                    writer.writerow(row)
                    n += 1
            else:
                n = _export_events(settings, store, sources, writer)
    finally:
        store.close()
    print(f"exported {n} {'events' if args.events else 'records'} to {args.file}")
    return 0


def _export_profiles(settings: Settings, path: str) -> int:
    """JSON lines, one per live profile of the served regions: the folded profile (surviving
    attributes, identifiers, consent, region) with every stored event of its records, what
    segments read. The file holds personal data: it is created readable by its owner only."""
    from idgraph.engine.segment_preview import profile_ids

    store = _open_reader(settings)
    n = 0
    try:
        queries = _queries(settings, store)
        with _on_path(path), open(open_private_fd(path), "w", encoding="utf-8") as fh:
            for region in sorted(store.regions):
                for pid in profile_ids(store, region):
                    profile = queries.profile_with_all_events(pid)
                    if profile is not None:
                        fh.write(json.dumps(_profile_json(profile)) + "\n")
                        n += 1
    finally:
        store.close()
    print(f"exported {n} profiles to {path}")
    return 0


def _source_file(text: str) -> tuple[str, str]:
    from idgraph.resolver.model import SOURCES

    kind, sep, path = text.partition("=")
    if not sep or kind not in SOURCES or not path:
        raise ConfigError(f"--source {text!r}: expected KIND=FILE with KIND one of "
                         f"{', '.join(SOURCES)}")
    return kind, path


def _export_events(settings, store, sources: list[tuple[str, str]], writer) -> int:
    """Rows ``source, event_id, source_record_id, profile_id`` for every identity record
    the adapters make of the files' payloads (a calendar event gives one per attendee);
    ``profile_id`` is empty for an event that was not stored (a dead letter)."""
    from idgraph.core.errors import InvalidPayloadError
    from idgraph.resolver.adapters import adapt
    from idgraph.resolver.adapters.files import iter_payloads
    from idgraph.resolver.normalize import Normalizer

    profile_of = {f"{s}:{rid}": pid for s, rid, pid in store.iter_record_profiles()}
    normalizer = Normalizer(settings.normalization)
    writer.writerow(["source", "event_id", "source_record_id", "profile_id"])
    n = 0
    for kind, path in sources:
        with _on_path(path):
            for payload in iter_payloads(kind, path, on_error=lambda *_: None):
                try:
                    records = adapt(kind, payload, normalizer)
                except InvalidPayloadError:
                    continue
                for r in records:
                    writer.writerow([kind, r.event_id, r.source_record_id,
                                     profile_of.get(r.record_key, "")])
                    n += 1
    return n


def cmd_serve(args: argparse.Namespace) -> int:
    from idgraph.service.server import serve

    settings = _settings(args)
    host = args.host or settings.grpc.host
    port = args.port if args.port is not None else settings.grpc.port
    processes = 1 if args.worker else settings.grpc.processes
    children: list[subprocess.Popen] = []
    if processes > 1:
        if port == 0:
            port = free_port(host)
        children = [_spawn_serve_worker(args, host, port, settings.metrics.port_of_process(i))
                    for i in range(1, processes)]
    from idgraph.serving import open_served, warn_deprecated

    served = open_served(settings)
    regions = ", ".join(settings.served_regions)

    def ready(bound: int) -> None:
        if not args.worker:
            print(f"idgraph serving ProfileService on port {bound} for regions {regions}"
                  f" ({processes} process{'es' if processes > 1 else ''})", flush=True)
        warn_deprecated(served.access)

    # Start-up leaves many long-lived objects (phone metadata, protobuf and pydantic
    # modules) that every full collection would rescan while calls wait; freeze them.
    # (Its effect on p99 was within this machine's run-to-run noise.)
    gc.collect()
    gc.freeze()
    try:
        serve(served.queries, settings.grpc, f"{host}:{port}", on_ready=ready,
              reuse_port=processes > 1 or args.worker, **served.server_kwargs())
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait(timeout=10)
        served.close()
    return 0


def _graph_view(settings: Settings):
    from idgraph.engine.backends import open_graph_view

    return open_graph_view(settings)


def _spawn_serve_worker(args: argparse.Namespace, host: str, port: int,
                        metrics_port: int) -> subprocess.Popen:
    """Another server process on the same port, serving its metrics on ``metrics_port``
    (0: none); it exits when this one stops it."""
    cmd = [sys.executable, "-m", "idgraph.cli", "serve", "--worker", "--host", host,
           "--port", str(port)]
    if args.config:
        cmd += ["--config", args.config]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    return subprocess.Popen(cmd, env={**os.environ, "IDGRAPH_METRICS__PORT": str(metrics_port)})


def cmd_train(args: argparse.Namespace) -> int:
    from idgraph.engine import Engine, batch

    settings = _settings(args)
    if args.input:
        _check_inputs([args.input])
    with Engine(settings) as engine, _on_path(settings.data_dir / "models"):
        frame, trained_on = None, "stored records"
        if args.input:
            frame = batch.file_frame(Path(args.input), args.map, args.id_column)
            trained_on = str(args.input)
        version, report = batch.train(engine, frame, trained_on, max_pairs=args.max_pairs,
                                      seed=args.seed)
    print(f"trained model {version} on {report.rows} records in {report.seconds} s; "
          f"comparisons: {', '.join(report.separation)}; EM blocks: "
          f"{'; '.join(report.em_blocking_rules)}")
    print(f"saved {settings.data_dir / 'models' / f'model-{version}.json'} (Splink JSON)")
    th = report.thresholds
    if th:
        floor = settings.matching.link_threshold
        used = max(th["link"], floor) if settings.matching.thresholds == "model" else floor
        print(f"link threshold {used:.4f} (the model's own {th['link']:.4f}: expected "
              f"false-link rate <= {th['max_false_link_rate']:.2%} and more weight than "
              f"{th['strongest_comparison']} alone gives; floor {floor}; "
              f"thresholds = {settings.matching.thresholds!r})")
    for w in report.warnings:
        print(f"  note: {w}")
    return 0


def cmd_resolve(args: argparse.Namespace) -> int:
    from idgraph.engine import Engine, batch

    settings = _settings(args)
    _check_inputs([args.input])
    _check_output(args.output)
    with Engine(settings) as engine:
        with _on_path(args.output):  # the write of the output names no file when it fails
            result = batch.resolve_file(engine, Path(args.input), Path(args.output), args.map,
                                        id_column=args.id_column, source=args.source,
                                        model_version=args.model)
        reviews = engine.reviews.counts()["open"]
    if result.trained is not None:
        print(f"trained model {result.model_version} on {result.trained.rows} records")
    m = result.match
    print(f"resolved {result.records} records into {result.profiles} profiles with model "
          f"{result.model_version} in {result.seconds:.1f} s: {m.pairs_predicted} pairs scored "
          f"by Splink ({m.seconds_predict:.1f} s), {m.links} links, {m.refused} refused by "
          f"guards, {m.reviews_queued} queued for review ({reviews} open)")
    print("seconds by phase: " + ", ".join(f"{k} {v}" for k, v in result.phases.items()))
    if result.dead_letters:
        print(f"{len(result.dead_letters)} rows not read:", file=sys.stderr)
        for row, reason in result.dead_letters[:20]:
            print(f"  row {row}: {reason}", file=sys.stderr)
    print(f"wrote {result.output}")
    return 0


def cmd_match(args: argparse.Namespace) -> int:
    from idgraph.engine import Engine, batch

    settings = _settings(args)
    with Engine(settings) as engine:
        m = batch.match_stored(engine, args.model)
    print(f"model {m.model_version}: {m.pairs_predicted} pairs scored by Splink "
          f"({m.seconds_predict:.1f} s), {m.links} links, {m.refused} refused by guards, "
          f"{m.reviews_queued} queued for review")
    return 0


def _review_json(r) -> dict:
    return {"review_id": r.review_id, "record_a": r.record_a, "record_b": r.record_b,
            "probability": round(r.probability, 6), "match_weight": round(r.match_weight, 3),
            "model_version": r.model_version, "status": r.status, "decided_by": r.decided_by,
            "note": r.note,
            "contributions": [{"comparison": c, "level": lbl, "match_weight": round(w, 3)}
                              for c, lbl, w in r.contributions]}


def cmd_review(args: argparse.Namespace) -> int:
    """List or decide reviews. A decision is only recorded: the writers apply accepted
    pairs at their next turn (or start), so deciding replays and opens nothing else."""
    from idgraph.engine.backends import open_review_queue

    settings = _settings(args)
    queue = open_review_queue(settings)
    if queue is None:
        raise NotFoundError(f"no review queue in {settings.data_dir}")
    try:
        if args.action == "list":
            for r in queue.list(args.status, args.limit, args.after or ""):
                print(json.dumps(_review_json(r)))
            return 0
        review = queue.decide(args.review_id, args.action == "accept",
                              decided_by=f"cli:{_user()}", note=args.note or "")
    finally:
        queue.close()
    print(json.dumps(_review_json(review)))
    if args.action == "accept" and review.status == "accepted":
        print("(a writer links the pair at its next batch or start)", file=sys.stderr)
    return 0


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def cmd_explain(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from idgraph.engine.explain import Explainer

    if (args.profile_id is None) == (not args.identifiers):
        raise ConfigError("explain: give either --profile-id or two identifiers")
    if args.identifiers and len(args.identifiers) != 2:
        raise ConfigError("explain: give exactly two identifiers (TYPE:VALUE TYPE:VALUE)")
    settings = _settings(args)
    store = _open_reader(settings)
    graph = _graph_view(settings)
    try:
        explainer = Explainer(graph, _queries(settings, store))
        if args.profile_id is not None:
            out = explainer.profile(args.profile_id)
        else:
            out = explainer.between(*args.identifiers)
    finally:
        graph.close()
        store.close()
    print(json.dumps(asdict(out), indent=2))
    return 0


def _broker_urls(text: str) -> list[str]:
    """``--brokers H:P,kafka://H:P`` -> Faust URLs."""
    return [b if "://" in b else f"kafka://{b}" for b in text.split(",")]


def _stream_settings(args: argparse.Namespace) -> Settings:
    settings = _settings(args)
    if getattr(args, "brokers", None):
        brokers = _broker_urls(args.brokers)
        settings = settings.model_copy(
            update={"stream": settings.stream.model_copy(update={"brokers": brokers})})
    return settings


def _require_kafka() -> None:
    try:
        import aiokafka  # noqa: F401
        import faust  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"the stream commands need the kafka extra: pip install "
                          f"'idgraph[kafka]' ({exc})") from None


def _require_schema(settings: Settings) -> None:
    """ConfigError unless the shared backends' schema was created by ``idgraph schema``
    (workers on several machines must not create tables at the same moment)."""
    from idgraph.coordination import schema_created

    if not schema_created(settings.coordination(), settings.cassandra):
        raise ConfigError(f"the {settings.coordination()} schema of keyspace prefix "
                          f"{settings.cassandra.keyspace_prefix!r} has not been created: run "
                          "`idgraph schema` once (same settings) before starting workers")


def cmd_worker(args: argparse.Namespace) -> int:
    _require_kafka()
    from idgraph.engine import Engine
    from idgraph.stream.app import StreamWorker
    from idgraph.stream.topics import ensure_topics_sync

    settings = _stream_settings(args)
    if args.stats_file:
        _check_output(args.stats_file)
    _require_schema(settings)
    if not args.no_create_topics:
        created = ensure_topics_sync(settings.stream)
        if created:
            log.info("created topics: %s", ", ".join(created))
    from idgraph.serving import writer_audit

    with writer_audit(settings) as audit:
        engine = Engine(settings, publish_changes=settings.stream.publish_changes, audit=audit)
        try:
            StreamWorker(settings.stream, engine,
                         Path(args.stats_file) if args.stats_file else None,
                         metrics=settings.metrics).run(
                keep_logging=settings.log.format == "json")
        except SystemExit as exc:
            return int(exc.code or 0)
        finally:
            engine.close()
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    import asyncio

    from idgraph.resolver.adapters.files import iter_payloads
    from idgraph.stream.produce import produce_payloads

    _require_kafka()
    settings = _stream_settings(args)
    _check_inputs(args.files)
    items = ((args.source, payload) for path in args.files
             for payload in iter_payloads(args.source, path))
    sent = asyncio.run(produce_payloads(settings.stream, items, rate=args.rate))
    print(f"produced {sent} events to the input topics")
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    _require_kafka()
    from idgraph.stream.topics import ensure_topics_sync, project_topics

    settings = _stream_settings(args)
    created = ensure_topics_sync(settings.stream)
    for t in project_topics(settings.stream):
        print(f"{t}\t{'created' if t in created else 'exists'}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    """Create what the configured backends need (keyspaces, tables, graph constraints) by
    opening a writer once. Run it once before starting writers on several machines:
    Cassandra 2.1 gives a table that several processes create at the same moment a
    different ID on each node, which breaks it; so workers on Cassandra start only once
    it ran (the mark it leaves)."""
    from idgraph.coordination import mark_schema_created
    from idgraph.engine import Engine

    settings = _settings(args)
    with Engine(settings):
        pass
    mark_schema_created(settings.coordination(), settings.cassandra)
    print(f"schema ready: graph {settings.graph_backend}, profile store "
          f"{settings.profile_store_backend}, coordination {settings.coordination()}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from idgraph.generator import generate, write_source_files

    if args.world == "real":
        from idgraph.generator.realworld import generate_realworld, write_realworld

        world = generate_realworld(n_people=args.people, seed=args.seed)
        with _on_path(args.out):
            for kind, path in write_realworld(world, Path(args.out)).items():
                print(f"{kind}: {path}")
        return 0
    dataset = generate(n_records=args.records, seed=args.seed)
    with _on_path(args.out):
        paths = write_source_files(dataset, Path(args.out))
    out = Path(args.out) / "truth.json"
    with _on_path(out):
        out.write_text(json.dumps(dataset.truth))
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    print(f"ground truth: {out}")
    return 0


def _segment_file(path: str) -> list:
    """The entries of a definitions file (:func:`parse_segment_file`)."""
    from idgraph.engine.segment_definitions import parse_segment_file

    _check_inputs([path])
    with _on_path(path):
        text = Path(path).read_text(encoding="utf-8")
    return parse_segment_file(text, path)


def _segment_trees(path: str) -> dict:
    return {e.name: e.tree for e in _segment_file(path)}


def cmd_segments_check(args: argparse.Namespace) -> int:
    """Parse a definitions file; print each definition's canonical text and JSON."""
    from idgraph.segments import SegmentDependencies, SegmentError, to_json, to_text

    definitions = _segment_trees(args.file)
    try:
        order = SegmentDependencies(definitions).evaluation_order()
    except SegmentError as exc:
        raise ConfigError(f"{args.file}: {exc}") from None
    print(json.dumps({name: {"text": to_text(definitions[name]),
                             "json": to_json(definitions[name])} for name in order}, indent=2))
    return 0


def _stored_trees(store) -> dict:
    from idgraph.engine.segment_definitions import tree_of

    _version, live = store.segment_catalog()
    return {name: tree_of(d) for name, d in live.items()}


def cmd_segments_preview(args: argparse.Namespace) -> int:
    """The exact count of a stored segment (NAME) or of a file's definitions (--file) over
    the stored profiles, sample members with why they matched, identifier types and
    overlaps with the other segments (reads the store only).

    A stored segment already evaluated over the stored profiles is previewed from its
    memberships (cost grows with its members); a file's drafts, and a stored segment whose
    evaluation is not done yet, are evaluated over every stored profile."""
    from datetime import UTC, datetime

    from idgraph.engine.segment_preview import (
        live_profiles,
        preview,
        preview_stored,
        profile_ids,
    )
    from idgraph.segments import SegmentError, event_types

    if bool(args.name) == bool(args.file):
        raise ConfigError("segments preview: give a stored segment NAME or --file FILE")
    settings = _settings(args)
    store = _open_reader(settings)
    try:
        stored = _stored_trees(store)
        if args.file:
            definitions = {**stored, **_segment_trees(args.file)}
            names = [args.only] if args.only else list(_segment_trees(args.file))
            origin = args.file
        else:
            definitions, names, origin = stored, [args.name], "stored segments"
        if any(n not in definitions for n in names):
            missing = next(n for n in names if n not in definitions)
            raise ConfigError(f"{origin}: no segment named {missing!r}")
        queries = _queries(settings, store)
        started = time.perf_counter()
        if not args.file and _built(store, args.name):
            views = {args.name: preview_stored(store, args.name, queries.profile,
                                               samples=args.samples)}
            evaluated, method = views[args.name].count, "memberships"
        else:
            types = frozenset().union(*map(event_types, definitions.values()))
            pids = [pid for region in sorted(store.regions)
                    for pid in profile_ids(store, region)]
            try:
                views, evaluated = preview(definitions, live_profiles(
                    pids, lambda pid: queries.profile_with_all_events(pid, types)),
                    datetime.now(UTC), samples=args.samples)
            except SegmentError as exc:
                raise ConfigError(f"{origin}: {exc}") from None
            method = "evaluated"
        elapsed = time.perf_counter() - started
    finally:
        store.close()
    report = {name: {"count": views[name].count, "method": method,
                     "profiles_read": evaluated, "seconds": round(elapsed, 3),
                     "identifier_types": dict(views[name].identifier_types.most_common()),
                     "overlap": dict(views[name].overlap.most_common()),
                     "samples": [{"profile_id": m.profile_id, "region": m.region,
                                  "why": m.clauses} for m in views[name].samples]}
              for name in names}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for name, r in report.items():
        how = ("from its stored memberships" if method == "memberships"
               else f"evaluated over {evaluated} profiles")
        print(f"{name}: {r['count']} members ({how}, {elapsed:.2f} s)")
        if r["identifier_types"]:
            print("  members with: " + ", ".join(f"{t} {n}" for t, n in
                                                 r["identifier_types"].items()))
        if r["overlap"]:
            print("  also in: " + ", ".join(f"{o} {n}" for o, n in r["overlap"].items()))
        for m in r["samples"]:
            print(f"  {m['profile_id']} ({m['region']}): " + "; ".join(m["why"]))
    return 0


def _built(store, name: str) -> bool:
    """Whether stored segment ``name`` is evaluated over the stored profiles of every
    served region at its current version (its memberships are then exact)."""
    _version, live = store.segment_catalog()
    builds = {b.region: b for b in store.segment_builds() if b.segment == name}
    version = live[name].version
    return all(r in builds and builds[r].done and builds[r].version == version
               for r in store.regions)


def _segment_definitions(settings: Settings, writable: bool):
    """(definitions service, reader store, catalog or None) over the configured store."""
    from idgraph.engine.backends import open_segment_catalog
    from idgraph.engine.segment_definitions import SegmentDefinitions

    catalog = open_segment_catalog(settings) if writable else None
    try:
        store = _open_reader(settings)
    except BaseException:
        if catalog is not None:
            catalog.close()
        raise
    return SegmentDefinitions(store, catalog), store, catalog


def _build_segments(settings: Settings, quiet: bool = False) -> int:
    """Evaluate new or changed definitions over the stored profiles (a writer: it takes
    turns with other writers), printing progress; returns how many rounds ran."""
    from idgraph.engine import Engine

    rounds = 0
    with Engine(settings) as engine:
        while engine.segment_step():
            rounds += 1
            if not quiet:
                for b in engine.store.segment_builds():
                    if not b.done and b.started_at:
                        print(f"  evaluating {b.segment} v{b.version} in {b.region}: "
                              f"{b.evaluated} of {b.total} profiles", file=sys.stderr)
    return rounds


def cmd_segments_apply(args: argparse.Namespace) -> int:
    """Store a file's definitions (new versions where they changed), then evaluate them
    over the stored profiles unless --no-build."""
    entries = _segment_file(args.file)
    settings = _settings(args)
    definitions, store, catalog = _segment_definitions(settings, writable=True)
    try:
        applied = definitions.apply_file(entries, _user(), args.file)
    finally:
        catalog.close()
        store.close()
    for a in applied:
        d = a.definition
        state = "created" if a.created else "changed" if a.changed else "unchanged"
        print(f"{d.name}: {state} (version {d.version})")
        if a.diff and not a.created:
            print(a.diff.rstrip())
    if any(a.changed for a in applied) and not args.no_build:
        _build_segments(settings)
        print("evaluated over the stored profiles")
    return 0


def _segment_summary(store, d) -> dict:
    builds = [b for b in store.segment_builds() if b.segment == d.name]
    return {"name": d.name, "version": d.version, "author": d.author,
            "defined_at": datetime.fromtimestamp(d.defined_at, UTC).isoformat(),
            "description": d.description, "members": store.count_segment(d.name),
            "built": all(b.done and b.version == d.version for b in builds) and bool(builds)}


def cmd_segments_list(args: argparse.Namespace) -> int:
    """The live segments with their version, author and members per region."""
    settings = _settings(args)
    definitions, store, _ = _segment_definitions(settings, writable=False)
    try:
        rows = [_segment_summary(store, d) for d in definitions.list()]
    finally:
        store.close()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        members = sum(r["members"].values())
        print(f"{r['name']}: v{r['version']} by {r['author']}, {members} members"
              + ("" if r["built"] else " (evaluation over stored profiles pending)"))
    return 0


def cmd_segments_show(args: argparse.Namespace) -> int:
    """One segment: definition (text and JSON), versions, the last change as a diff, the
    segments it uses and that use it, members per region, evaluation progress."""
    from idgraph.segments import SegmentDependencies

    settings = _settings(args)
    definitions, store, _ = _segment_definitions(settings, writable=False)
    try:
        d = definitions.get(args.name)
        versions = definitions.versions(d.name)
        deps = SegmentDependencies(_stored_trees(store))
        previous = [v.version for v in versions if v.version < d.version]
        report = {**_segment_summary(store, d), "definition": d.text,
                  "definition_json": json.loads(d.definition),
                  "uses": list(deps.uses(d.name)), "used_by": list(deps.dependents(d.name)),
                  "versions": [{"version": v.version, "author": v.author, "deleted": v.deleted,
                                "defined_at": datetime.fromtimestamp(v.defined_at, UTC)
                                .isoformat()} for v in versions],
                  "last_change": definitions.diff(d.name, previous[-1], d.version)
                  if previous else "",
                  "builds": [{"region": b.region, "version": b.version,
                              "evaluated": b.evaluated, "total": b.total, "done": b.done}
                             for b in store.segment_builds() if b.segment == d.name]}
    finally:
        store.close()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{report['name']} v{report['version']} by {report['author']} "
          f"({report['defined_at']})")
    if report["description"]:
        print(f"  {report['description']}")
    print(report["definition"])
    print("members: " + (", ".join(f"{r} {n}" for r, n in sorted(report["members"].items()))
                         or "none"))
    if report["uses"] or report["used_by"]:
        print(f"uses: {', '.join(report['uses']) or '-'}; "
              f"used by: {', '.join(report['used_by']) or '-'}")
    if report["last_change"]:
        print(report["last_change"].rstrip())
    return 0


def cmd_segments_delete(args: argparse.Namespace) -> int:
    """Delete a segment (refused while others use it); its members leave it."""
    settings = _settings(args)
    definitions, store, catalog = _segment_definitions(settings, writable=True)
    try:
        deleted = definitions.delete(args.name, _user())
    finally:
        catalog.close()
        store.close()
    print(f"{deleted.name}: deleted (version {deleted.version})")
    if not args.no_build:
        _build_segments(settings, quiet=True)
    return 0


def cmd_segments_run(args: argparse.Namespace) -> int:
    """Keep memberships on time: a writer that, every ``segments.tick_seconds``, evaluates
    memberships whose deadline passed and new definitions over the stored profiles, until
    SIGINT/SIGTERM (the stream workers do the same in a Kafka deployment)."""
    import signal
    import threading

    from idgraph.engine import Engine

    settings = _settings(args)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with Engine(settings) as engine:
        print("idgraph keeping segment memberships on time", flush=True)
        while not stop.is_set():
            if not engine.segment_step():
                stop.wait(settings.segments.tick_seconds)
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    """Print the effective settings (defaults, file, environment and flags merged) as JSON;
    secrets (passwords, tokens) are shown as ``**********``."""
    settings = _settings(args)
    print(json.dumps(settings.model_dump(mode="json"), indent=2))
    return 0


def cmd_console(args: argparse.Namespace) -> int:
    """The web console on loopback (or on another address over HTTPS), until SIGINT/SIGTERM."""
    import socket

    import uvicorn

    from idgraph.console.app import create_app

    settings = _settings(args)
    console = settings.console.model_copy(update={
        k: v for k, v in (("host", args.host), ("port", args.port), ("server", args.server))
        if v is not None})
    loopback = console.host in ("127.0.0.1", "::1", "localhost")
    if not loopback and (console.tls_cert_file is None or console.tls_key_file is None):
        raise ConfigError(f"console.host {console.host} is not loopback: set "
                          "console.tls_cert_file and console.tls_key_file (the session "
                          "cookie is a credential and must not cross a network in clear)")
    family = socket.AF_INET6 if ":" in console.host else socket.AF_INET
    # IPPROTO_TCP named, not 0: asyncio sets TCP_NODELAY only on sockets that say TCP,
    # and without it a kept-alive connection waits ~40 ms (Nagle + delayed ACK) per page
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((console.host, console.port))
    sock.listen(2048)  # connections wait in the backlog until the server accepts them
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(console), access_log=False, log_level="warning", log_config=None,
        ssl_certfile=console.tls_cert_file, ssl_keyfile=console.tls_key_file)
    scheme = "https" if console.tls_cert_file else "http"
    print(f"idgraph console on {scheme}://{console.host}:{port}/ (gRPC server "
          f"{console.server})", flush=True)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


# ------------------------------------------------------------------------ parser


def build_parser() -> argparse.ArgumentParser:
    from idgraph.resolver.model import SOURCES

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="TOML settings file (also IDGRAPH_CONFIG)")
    common.add_argument("--data-dir", help="where embedded backends keep files (IDGRAPH_DATA_DIR)")

    parser = argparse.ArgumentParser(prog="idgraph", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", parents=[common], help="generate, resolve, serve, look up, summarise")
    p.add_argument("--records", type=int, default=20_000, help="records to generate (default 20000)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--lookups", type=int, default=2000, help="sample gRPC lookups to time")
    p.add_argument("--kafka", action="store_true",
                   help="run the event path through Kafka: broker, topics, workers, gRPC")
    p.add_argument("--workers", type=int, default=2, help="worker processes (--kafka)")
    p.add_argument("--brokers", help="use these bootstrap servers instead of a local broker")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("serve", parents=[common], help="serve the gRPC API from the profile store")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("console", parents=[common],
                       help="serve the web console (a gRPC client of `idgraph serve`)")
    p.add_argument("--host", help="listen address (default console.host, 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (default console.port, 8700; 0: any)")
    p.add_argument("--server", help="host:port of the gRPC server (default console.server)")
    p.set_defaults(func=cmd_console)

    p = sub.add_parser("ingest", parents=[common], help="ingest files exported by a source system")
    p.add_argument("--source", required=True, choices=SOURCES)
    p.add_argument("files", nargs="+")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("lookup", parents=[common], help="resolve an identifier TYPE:VALUE")
    p.add_argument("identifier")
    p.add_argument("--server", help="host:port of a running server (default: read the store)")
    p.set_defaults(func=cmd_lookup)

    p = sub.add_parser("export", parents=[common],
                       help="CSV: source, source_record_id, profile_id (or one row per event), "
                            "or the profiles as JSON lines")
    p.add_argument("file")
    p.add_argument("--profiles", action="store_true",
                   help="JSON lines: every live profile with its attributes, identifiers, "
                        "consent, region and all stored events (mode 0600)")
    p.add_argument("--events", action="store_true",
                   help="one row per event of the --source files: source, event_id, "
                        "source_record_id, profile_id")
    p.add_argument("--source", action="append", default=[], metavar="KIND=FILE",
                   help="a source file to export the events of (repeatable; with --events)")
    p.set_defaults(func=cmd_export)

    def file_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--map", action="append", default=[], metavar="CANONICAL=COLUMN",
                       help="map a file column to a canonical attribute (repeatable), e.g. "
                            "--map given_name=fname; columns named like a canonical "
                            "attribute map themselves")
        p.add_argument("--id-column", help="column holding the record ID (default: row number)")

    p = sub.add_parser("train", parents=[common],
                       help="train the probabilistic model with Splink (stored records or a file)")
    p.add_argument("--input", help="CSV or Parquet file to train on (default: stored records)")
    file_args(p)
    p.add_argument("--max-pairs", type=float, help="random pairs for u (matching.train_max_pairs)")
    p.add_argument("--seed", type=int, default=42)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("resolve", parents=[common],
                       help="resolve a person file: one row per record with its profile ID")
    p.add_argument("--input", required=True, help="CSV or Parquet file")
    p.add_argument("--output", required=True, help="CSV or Parquet file to write")
    file_args(p)
    p.add_argument("--source", help="source name of the file's records (default file:<name>)")
    p.add_argument("--model", help="model version (default: newest; trains one if none)")
    p.set_defaults(func=cmd_resolve)

    p = sub.add_parser("match", parents=[common],
                       help="score every stored record with Splink and link (backfill)")
    p.add_argument("--model", help="model version (default: newest)")
    p.set_defaults(func=cmd_match)

    p = sub.add_parser("review", parents=[common], help="the review queue: list, accept, reject")
    review_sub = p.add_subparsers(dest="action", required=True)
    r = review_sub.add_parser("list", parents=[common])
    r.add_argument("--status", default="open",
                   choices=["open", "accepted", "rejected", "applied", "all"])
    r.add_argument("--limit", type=int, default=100)
    r.add_argument("--after", help="review ID: list the page after it")
    for action in ("accept", "reject"):
        r = review_sub.add_parser(action, parents=[common])
        r.add_argument("review_id")
        r.add_argument("--note")
    p.set_defaults(func=cmd_review)

    p = sub.add_parser("explain", parents=[common],
                       help="why a profile's records link, or the path joining two identifiers")
    p.add_argument("--profile-id")
    p.add_argument("identifiers", nargs="*", metavar="TYPE:VALUE")
    p.set_defaults(func=cmd_explain)

    kafka = argparse.ArgumentParser(add_help=False)
    kafka.add_argument("--brokers", help="bootstrap servers HOST:PORT,... (stream.brokers)")

    p = sub.add_parser("worker", parents=[common, kafka],
                       help="resolve events from the Kafka input topics (a Faust worker)")
    p.add_argument("--stats-file", help="write cumulative counters (JSON) after every batch")
    p.add_argument("--no-create-topics", action="store_true",
                   help="do not create missing topics at start")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("backfill", parents=[common, kafka],
                       help="replay exported source files through the input topics")
    p.add_argument("--source", required=True, choices=SOURCES)
    p.add_argument("files", nargs="+")
    p.add_argument("--rate", type=float, help="events per second (default: as fast as possible)")
    p.set_defaults(func=cmd_backfill)

    p = sub.add_parser("topics", parents=[common, kafka], help="create the project's topics")
    p.set_defaults(func=cmd_topics)

    p = sub.add_parser("schema", parents=[common],
                       help="create the backends' keyspaces, tables and constraints (once, "
                            "before writers start on several machines)")
    p.set_defaults(func=cmd_schema)


    p = sub.add_parser("generate", parents=[common], help="write synthetic source files")
    p.add_argument("--world", choices=["synthetic", "real"], default="synthetic",
                   help="synthetic: every value a person's (--records); real: the traps of "
                        "real data, truth per event and per record (--people)")
    p.add_argument("--records", type=int, default=10_000)
    p.add_argument("--people", type=int, default=2000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("segments", help="segments: define, list, show, preview, delete")
    seg = p.add_subparsers(dest="segments_command", required=True)
    s = seg.add_parser("check", parents=[common],
                       help='parse a TOML file of [segments."NAME"] definitions')
    s.add_argument("file")
    s.set_defaults(func=cmd_segments_check)
    s = seg.add_parser("apply", parents=[common],
                       help="store a file's definitions and evaluate them over the profiles")
    s.add_argument("file")
    s.add_argument("--no-build", action="store_true",
                   help="only store them (a running writer evaluates them)")
    s.set_defaults(func=cmd_segments_apply)
    s = seg.add_parser("list", parents=[common], help="the stored segments")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_segments_list)
    s = seg.add_parser("show", parents=[common],
                       help="one segment: definition, versions, last diff, members")
    s.add_argument("name")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_segments_show)
    s = seg.add_parser("delete", parents=[common], help="delete a segment")
    s.add_argument("name")
    s.add_argument("--no-build", action="store_true",
                   help="leave the members' exits to a running writer")
    s.set_defaults(func=cmd_segments_delete)
    s = seg.add_parser("preview", parents=[common],
                       help="exact count over the stored profiles, samples with why")
    s.add_argument("name", nargs="?", help="a stored segment")
    s.add_argument("--file", help='preview a TOML file\'s [segments."NAME"] instead')
    s.add_argument("--only", help="with --file: only this segment")
    s.add_argument("--samples", type=int, default=20)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_segments_preview)
    s = seg.add_parser("run", parents=[common],
                       help="keep memberships on time (deadlines, new definitions)")
    s.set_defaults(func=cmd_segments_run)

    from idgraph import cli_auth, cli_privacy

    cli_privacy.add_commands(sub, common)
    cli_auth.add_commands(sub, common)

    p = sub.add_parser("settings", parents=[common],
                       help="print the effective settings as JSON (secrets masked)")
    p.set_defaults(func=cmd_settings)
    return parser


_BAD_PATH = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM,
                       errno.EEXIST, errno.ENAMETOOLONG, errno.ELOOP})
"""Errors of a path the user gave (exit 2); other ``OSError``s (``ENOSPC``, ``EIO``) are
failures while working (exit 1)."""


def _os_problem(exc: OSError) -> str:
    """``path: problem`` from the operating system's message; never file contents."""
    problem = exc.strerror or str(exc)
    if exc.errno == errno.EEXIST and exc.filename is not None and not Path(exc.filename).is_dir():
        problem = "exists and is not a directory"  # a directory was to be created there
    if exc.filename is None:
        return problem
    path = str(exc.filename) + (f" -> {exc.filename2}" if exc.filename2 is not None else "")
    return f"{path}: {problem}"


def main(argv: list[str] | None = None) -> int:
    """Run one command; errors end it with one line on stderr, never a traceback.

    Exit codes: 0 ok; 1 failure while working (a backend error, a full disk or another
    failed read or write, naming the file); 2 bad usage, invalid settings or a bad path
    (missing, a directory where a file is expected or the reverse, not permitted: the line
    names the path and the problem), or a request refused as invalid or not allowed in the
    current state (a malformed identifier, deleting a segment others use, forgetting a
    subject forgotten already); 3 not found
    (no profile, no segment of that name).
    """
    args = build_parser().parse_args(argv)
    _configure_logging(args)
    try:
        return args.func(args)
    except ConfigError as exc:
        _say_error(f"idgraph: {exc}")
        return 2
    except NotFoundError as exc:
        _say_error(f"idgraph: not found: {exc}")
        return 3
    except IdGraphError as exc:
        _say_error(f"idgraph: {exc}")
        return 2 if exc.status in ("INVALID_ARGUMENT", "FAILED_PRECONDITION",
                                   "ALREADY_EXISTS") else 1
    except OSError as exc:
        _say_error(f"idgraph: {_os_problem(exc)}")
        return 2 if exc.errno in _BAD_PATH else 1


_DEFAULT_LOG_LEVELS = {"worker": "INFO"}
"""The log level of a command when ``log.level`` is unset (else ``WARNING``)."""


def _configure_logging(args: argparse.Namespace) -> None:
    """Logging as ``[log]`` says (:mod:`idgraph.core.logs`), before any command runs.

    Settings that do not load leave the defaults (with ``IDGRAPH_LOG__FORMAT`` when it is
    valid, so the error line is in the format asked for); the command then reports them."""
    try:
        log_settings = load_settings(getattr(args, "config", None)).log
    except ConfigError:
        try:
            log_settings = LogSettings(format=os.environ.get("IDGRAPH_LOG__FORMAT", "text"))
        except ValueError:  # pydantic's ValidationError
            log_settings = LogSettings()
    configure_logging(log_settings, _DEFAULT_LOG_LEVELS.get(args.command, "WARNING"))


def _say_error(text: str) -> None:
    """The command's last line, on standard error (a JSON record when logs are JSON)."""
    print(error_line(text), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
