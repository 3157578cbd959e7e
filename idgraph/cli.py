"""``idgraph`` command line: demo, serve, ingest, lookup, export, generate.

Every command takes ``--config FILE`` (TOML, see README) and ``--data-dir DIR``; settings
also come from ``IDGRAPH_*`` environment variables. Exit codes: 0 ok, 1 failure, 2 bad
usage or settings, 3 not found.
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import logging
import socket
import subprocess
import sys
from pathlib import Path

from idgraph.errors import ConfigError, IdGraphError, NotFoundError
from idgraph.settings import Settings, load_settings

log = logging.getLogger("idgraph")


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir)
    return load_settings(args.config, **overrides)


def _open_reader(settings: Settings):
    """The profile store, read-only, for the regions this process serves."""
    from profile_store import create_store

    return create_store(settings.profile_store_backend, settings.data_dir,
                        settings.served_regions, readonly=True)


def _queries(settings: Settings, store):
    from idgraph.queries import ProfileQueries
    from resolver.normalize import Normalizer

    return ProfileQueries(store, Normalizer(settings.normalization), settings.survivorship)


def _profile_json(profile) -> dict:
    from dataclasses import asdict

    return asdict(profile)


# ---------------------------------------------------------------------- commands


def cmd_demo(args: argparse.Namespace) -> int:
    from idgraph.demo import run_demo

    settings = _settings(args)
    return run_demo(settings, records=args.records, seed=args.seed, lookups=args.lookups,
                    keep_data=bool(args.data_dir))


def cmd_ingest(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from idgraph.engine import DeadLetter, Engine, IngestResult
    from resolver.adapters.files import iter_payloads

    settings = _settings(args)
    dead_path = settings.data_dir / "dead-letters.jsonl"
    with Engine(settings) as engine:
        total = IngestResult()
        for path in args.files:
            unreadable: list[DeadLetter] = []

            def bad_line(error: IdGraphError, line: str, unreadable=unreadable, path=path) -> None:
                unreadable.append(DeadLetter(args.source, getattr(error, "field", path),
                                             str(error), line))

            with tqdm(desc=Path(path).name, unit="payload", disable=args.quiet) as bar:
                def counted(path=path):
                    for payload in iter_payloads(args.source, path, on_error=bad_line):
                        bar.update()
                        yield args.source, payload

                result = engine.ingest_payloads(counted())
            result.dead_letters[:0] = unreadable
            total.add(result)
        if total.dead_letters:
            with dead_path.open("a", encoding="utf-8") as fh:
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

        from service.client import ProfileClient

        with ProfileClient(args.server, token=settings.grpc.client_token) as client:
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

    settings = _settings(args)
    store = _open_reader(settings)
    n = 0
    try:
        with open(args.file, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["source", "source_record_id", "profile_id"])
            for row in store.iter_record_profiles():
                writer.writerow(row)
                n += 1
    finally:
        store.close()
    print(f"exported {n} records to {args.file}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from service.server import serve

    settings = _settings(args)
    host = args.host or settings.grpc.host
    port = args.port if args.port is not None else settings.grpc.port
    processes = 1 if args.worker else settings.grpc.processes
    children: list[subprocess.Popen] = []
    if processes > 1:
        if port == 0:
            port = _free_port(host)
        children = [_spawn_serve_worker(args, host, port) for _ in range(processes - 1)]
    store = _open_reader(settings)
    queries = _queries(settings, store)
    regions = ", ".join(settings.served_regions)

    def ready(bound: int) -> None:
        if not args.worker:
            print(f"idgraph serving ProfileService on port {bound} for regions {regions}"
                  f" ({processes} process{'es' if processes > 1 else ''})", flush=True)

    # Start-up leaves many long-lived objects (phone metadata, protobuf and pydantic
    # modules) that every full collection would rescan while calls wait; freeze them.
    # (Its effect on p99 was within this machine's run-to-run noise.)
    gc.collect()
    gc.freeze()
    try:
        serve(queries, settings.grpc, f"{host}:{port}", on_ready=ready,
              reuse_port=processes > 1 or args.worker)
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait(timeout=10)
        store.close()
    return 0


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _spawn_serve_worker(args: argparse.Namespace, host: str, port: int) -> subprocess.Popen:
    """Another server process on the same port; it exits when this one stops it."""
    cmd = [sys.executable, "-m", "idgraph.cli", "serve", "--worker", "--host", host,
           "--port", str(port)]
    if args.config:
        cmd += ["--config", args.config]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    return subprocess.Popen(cmd)


def cmd_generate(args: argparse.Namespace) -> int:
    from generator import generate, write_source_files

    dataset = generate(n_records=args.records, seed=args.seed)
    paths = write_source_files(dataset, Path(args.out))
    out = Path(args.out) / "truth.json"
    out.write_text(json.dumps(dataset.truth))
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    print(f"ground truth: {out}")
    return 0


# ------------------------------------------------------------------------ parser


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="TOML settings file (also IDGRAPH_CONFIG)")
    common.add_argument("--data-dir", help="where embedded backends keep files (IDGRAPH_DATA_DIR)")

    parser = argparse.ArgumentParser(prog="idgraph", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", parents=[common], help="generate, resolve, serve, look up, summarise")
    p.add_argument("--records", type=int, default=20_000, help="records to generate (default 20000)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--lookups", type=int, default=2000, help="sample gRPC lookups to time")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("serve", parents=[common], help="serve the gRPC API from the profile store")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("ingest", parents=[common], help="ingest files exported by a source system")
    p.add_argument("--source", required=True,
                   choices=["salesforce", "hubspot", "sendgrid", "segment", "google_calendar"])
    p.add_argument("files", nargs="+")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("lookup", parents=[common], help="resolve an identifier TYPE:VALUE")
    p.add_argument("identifier")
    p.add_argument("--server", help="host:port of a running server (default: read the store)")
    p.set_defaults(func=cmd_lookup)

    p = sub.add_parser("export", parents=[common], help="CSV: source, source_record_id, profile_id")
    p.add_argument("file")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("generate", parents=[common], help="write synthetic source files")
    p.add_argument("--records", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_generate)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"idgraph: {exc}", file=sys.stderr)
        return 2
    except NotFoundError as exc:
        print(f"idgraph: not found: {exc}", file=sys.stderr)
        return 3
    except IdGraphError as exc:
        print(f"idgraph: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
