"""``idgraph consent``, ``idgraph forget``, ``idgraph unsuppress``, ``idgraph
export-subject``: the privacy officer's commands (the same engine parts as the
PrivacyService rpcs; see :mod:`idgraph.engine.consent`, :mod:`idgraph.engine.forget`,
:mod:`idgraph.engine.export_subject`).

They open the data directory's stores directly: run them where the data is (an embedded
deployment), or use the rpcs. ``forget`` is a writer: it takes a writer turn, so it runs
beside stream workers and ``idgraph ingest`` without corrupting them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from idgraph.core.errors import ConfigError
from idgraph.core.private_files import open_private
from idgraph.settings import Settings, load_settings

_STATUS_CHOICES = ("granted", "denied", "withdrawn")


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir)
    return load_settings(args.config, **overrides)


@contextmanager
def _consent_service(settings: Settings):
    """A consent service over the data dir's ledger and a read-only store of the served
    regions (closed on exit)."""
    from idgraph.engine.backends import open_privacy, open_queries, open_reader_store
    from idgraph.engine.consent import ConsentService

    ledger, keys = open_privacy(settings)
    try:
        store = open_reader_store(settings, settings.served_regions)
        try:
            yield ConsentService(ledger, open_queries(settings, store), keys,
                                 settings.privacy.merge_rule)
        finally:
            store.close()
    finally:
        ledger.close()


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat() if t else ""


def _actor(args: argparse.Namespace) -> str:
    return f"cli:{args.actor}" if getattr(args, "actor", None) else "cli"


def cmd_consent_record(args: argparse.Namespace) -> int:
    from idgraph.engine.consent import Statement

    settings = _settings(args)
    captured = 0.0
    if args.captured_at:
        try:
            captured = datetime.fromisoformat(args.captured_at).timestamp()
        except ValueError:
            raise ConfigError(f"--captured-at: not an ISO 8601 time: {args.captured_at!r}") \
                from None
    statement = Statement(purpose=args.purpose, status=args.status,
                          legal_basis=args.legal_basis or "", source=args.source or "cli",
                          collection_point=args.collection_point or "",
                          method=args.method or "cli", notice_version=args.notice_version or "",
                          jurisdiction=args.jurisdiction or "", captured_at=captured)
    with _consent_service(settings) as consent:
        entry, profile = consent.record(args.identifier, statement, _actor(args))
        print(f"{entry.entry_id}: {entry.purpose} {entry.status}"
              + (f" for {profile.profile_id}" if profile else " (no profile has it yet)"))
    return 0


def cmd_consent_show(args: argparse.Namespace) -> int:
    settings = _settings(args)
    with _consent_service(settings) as consent:
        profile = consent.resolve(args.identifier or "", args.profile_id or "")
        consent.gate(profile, None)
        view = consent.view(profile)
        entries = consent.entries(profile, args.history)
        if args.json:
            print(json.dumps({
                "profile_id": profile.profile_id, "region": profile.region,
                "consent": {p: {"state": d.state, "allowed": d.allowed,
                                "entry_id": d.entry.entry_id if d.entry else ""}
                            for p, d in sorted(view.decisions.items())},
                "history": [{"entry_id": e.entry_id, "purpose": e.purpose,
                             "status": e.status, "captured_at": _iso(e.captured_at),
                             "source": e.source, "method": e.method, "actor": e.actor}
                            for e in entries]}, indent=2))
            return 0
        print(f"{profile.profile_id} ({profile.region})")
        for p, d in sorted(view.decisions.items()):
            print(f"  {p:<12} {d.state:<10} {'allowed' if d.allowed else 'not allowed'}")
        for e in entries:
            print(f"  {_iso(e.captured_at)}  {e.purpose:<12} {e.status:<10} {e.source}"
                  f" ({e.method}, {e.actor})")
    return 0


def cmd_consent_purposes(args: argparse.Namespace) -> int:
    from idgraph.engine.backends import open_privacy
    from idgraph.privacy.purposes import PurposeError, parse_purposes

    settings = _settings(args)
    ledger, _keys = open_privacy(settings)
    try:
        if args.apply:
            path = Path(args.apply)
            with open(path, "rb") as fh:
                try:
                    doc = tomllib.load(fh)
                except tomllib.TOMLDecodeError as exc:
                    raise PurposeError(f"{path}: not valid TOML: {exc}") from None
            added = ledger.define_purposes(parse_purposes(doc, str(path)), _actor(args),
                                           time.time())
            for p in added:
                print(f"{p.name}: version {p.version}")
            if not added:
                print("no purpose changed")
            return 0
        for name, p in sorted(ledger.purposes().purposes.items()):
            opt_in = ",".join(p.opt_in_regions) or "-"
            print(f"{name:<12} v{p.version}  {p.legal_basis:<20} opt-in {opt_in:<8} "
                  f"expiry {p.expiry_days or '-'}d  {p.description}")
    finally:
        ledger.close()
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    from idgraph.auth.audit import AuditEvent
    from idgraph.engine import Engine
    from idgraph.serving import cli_actor, writer_audit

    settings = _settings(args)
    with writer_audit(settings) as audit, Engine(settings, audit=audit) as engine:
        if args.pending:  # the engine ran the open requests when it started
            print("open forget requests carried out")
            return 0
        if bool(args.identifier) == bool(args.profile_id):
            raise ConfigError("give an identifier or --profile-id (one of them)")
        started = time.perf_counter()
        subject = (f"identifier:{args.identifier}" if args.identifier
                   else f"profile_id:{args.profile_id}")
        kind, _, value = subject.partition(":")
        resource = f"{kind}:{engine.backends.keys.hash(value)}"
        try:
            request = engine.forget(identifier=args.identifier or "",
                                    profile_id=args.profile_id or "", reason=args.reason or "",
                                    actor=_actor(args))
        except Exception as exc:
            audit(AuditEvent(actor=cli_actor(), role="privacy", action="forget.requested",
                             resource=resource, outcome="failed", reason=type(exc).__name__))
            raise
        audit(AuditEvent(actor=cli_actor(), role="privacy", action="forget.requested",
                         resource=resource, reason=request.request_id))
        took = time.perf_counter() - started
    print(f"{request.request_id}: {request.status} in {took:.2f}s; erased "
          + ", ".join(f"{k} {v}" for k, v in sorted(request.erased.items()))
          + f"; {request.suppressed} values suppressed")
    return 0


def cmd_unsuppress(args: argparse.Namespace) -> int:
    from idgraph.engine.backends import open_privacy
    from idgraph.engine.forget import unsuppress

    settings = _settings(args)
    ledger, _keys = open_privacy(settings)
    try:
        removed = unsuppress(ledger, args.request_id, args.reason, _actor(args))
    finally:
        ledger.close()
    print(f"{args.request_id}: {removed} suppressions removed")
    return 0


def cmd_export_subject(args: argparse.Namespace) -> int:
    from idgraph.engine.export_subject import export_subject

    settings = _settings(args)
    out = Path(args.output)
    with _consent_service(settings) as consent:
        started = time.perf_counter()
        profile, data = export_subject(consent, identifier=args.identifier or "",
                                       profile_id=args.profile_id or "",
                                       requested_by=_actor(args))
        with open_private(out, "wb") as fh:
            fh.write(data)
    print(f"{out}: {len(data)} bytes for {profile.profile_id} "
          f"({time.perf_counter() - started:.2f}s)", file=sys.stderr)
    return 0


def add_commands(sub, common: argparse.ArgumentParser) -> None:
    """Register the privacy commands on the main parser's subparsers."""
    p = sub.add_parser("consent", help="consent: record, show, purposes")
    c = p.add_subparsers(dest="consent_command", required=True)
    s = c.add_parser("record", parents=[common], help="append a consent statement")
    s.add_argument("identifier", help="TYPE:VALUE")
    s.add_argument("purpose")
    s.add_argument("status", choices=_STATUS_CHOICES)
    s.add_argument("--legal-basis")
    s.add_argument("--source")
    s.add_argument("--collection-point")
    s.add_argument("--method")
    s.add_argument("--notice-version")
    s.add_argument("--jurisdiction")
    s.add_argument("--captured-at", help="ISO 8601 time the person made it (default now)")
    s.add_argument("--actor", help="who records it (kept as cli:ACTOR)")
    s.set_defaults(func=cmd_consent_record)
    s = c.add_parser("show", parents=[common], help="a profile's consent and its history")
    s.add_argument("identifier", nargs="?")
    s.add_argument("--profile-id")
    s.add_argument("--history", type=int, default=100)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_consent_show)
    s = c.add_parser("purposes", parents=[common], help="the purpose registry")
    s.add_argument("--apply", metavar="FILE", help="define purposes from a TOML file")
    s.add_argument("--actor")
    s.set_defaults(func=cmd_consent_purposes)

    p = sub.add_parser("forget", parents=[common],
                       help="erase a person everywhere and keep them out (suppression)")
    p.add_argument("identifier", nargs="?", help="TYPE:VALUE")
    p.add_argument("--profile-id")
    p.add_argument("--reason", help="why (kept with the request; no customer data)")
    p.add_argument("--actor")
    p.add_argument("--pending", action="store_true",
                   help="carry out the forget requests made over gRPC and still open")
    p.set_defaults(func=cmd_forget)

    p = sub.add_parser("unsuppress", parents=[common],
                       help="end the suppressions of a forget request (audited)")
    p.add_argument("request_id")
    p.add_argument("--reason", required=True)
    p.add_argument("--actor")
    p.set_defaults(func=cmd_unsuppress)

    p = sub.add_parser("export-subject", parents=[common],
                       help="a person's data as a zip of JSON lines with a manifest")
    p.add_argument("identifier", nargs="?", help="TYPE:VALUE")
    p.add_argument("--profile-id")
    p.add_argument("-o", "--output", required=True, help="the zip to write (mode 0600)")
    p.add_argument("--actor")
    p.set_defaults(func=cmd_export_subject)
