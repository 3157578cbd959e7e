"""``idgraph keys`` (create, list, rotate, revoke, scan) and ``idgraph audit`` (verify,
show, checkpoint): the admin's commands.

``keys`` opens the key store of the configured backend directly (the data dir's
``auth.sqlite``, or Cassandra's global keyspace), as the AdminService rpcs do; every change
is written to this machine's audit log as ``cli:<user>``. A new key is printed once, on
standard output, and never again. ``keys scan`` finds real keys (their checksum holds) in
files, offline, and names their key IDs (never their secrets) so they can be revoked.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from idgraph.settings import Settings, load_settings


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir)
    return load_settings(args.config, **overrides)


def _iso(t: float | None) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds") if t else ""


def _admin(settings: Settings):
    from idgraph.serving import open_audit_log, open_key_admin

    log = open_audit_log(settings)
    admin, store = open_key_admin(settings, log)

    def close() -> None:
        try:
            store.close()
        finally:
            log.close()

    return admin, close


def _key_fields(key, state: str, last_used: float | None = None) -> dict:
    return {"key_id": key.key_id, "owner": key.owner, "roles": list(key.roles),
            "regions": list(key.regions), "state": state, "created_at": _iso(key.created_at),
            "expires_at": _iso(key.expires_at), "last_used_at": _iso(last_used),
            "revoked_at": _iso(key.revoked_at), "unmask": key.unmask,
            "rate_per_second": key.rate_per_second, "rotated_from": key.rotated_from,
            "rotated_to": key.rotated_to, "description": key.description}


def cmd_keys_create(args: argparse.Namespace) -> int:
    from idgraph.serving import cli_actor

    admin, close = _admin(_settings(args))
    try:
        issued = admin.create(args.owner, args.role, regions=args.region or (),
                              expires_in_days=args.days, unmask=args.unmask,
                              rate_per_second=args.rate, description=args.description or "",
                              by=cli_actor())
    finally:
        close()
    print(issued.text)
    print(f"key {issued.key.key_id} for {issued.key.owner}: roles "
          f"{', '.join(issued.key.roles)}; expires {_iso(issued.key.expires_at)}. "
          "The key is shown once: store it now.", file=sys.stderr)
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    admin, close = _admin(_settings(args))
    try:
        listed = admin.list(include_inactive=args.all)
    finally:
        close()
    rows = [_key_fields(k.key, k.state, k.last_used) for k in listed]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        print(f"{r['key_id']}  {r['state']:<8} {','.join(r['roles']):<24} "
              f"{','.join(r['regions']) or 'all regions':<12} expires {r['expires_at']}  "
              f"last used {r['last_used_at'] or 'never'}  {r['owner']}")
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    from idgraph.serving import cli_actor

    admin, close = _admin(_settings(args))
    try:
        issued, old = admin.rotate(args.key_id, overlap_seconds=args.overlap_hours * 3600,
                                   expires_in_days=args.days, by=cli_actor())
    finally:
        close()
    print(issued.text)
    print(f"key {issued.key.key_id} replaces {old.key_id}, which works until "
          f"{_iso(old.expires_at)}. The new key is shown once: store it now.",
          file=sys.stderr)
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from idgraph.serving import cli_actor

    admin, close = _admin(_settings(args))
    try:
        key = admin.revoke(args.key_id, by=cli_actor(), reason=args.reason or "")
    finally:
        close()
    print(f"key {key.key_id} revoked at {_iso(key.revoked_at)}; running servers refuse it "
          "within auth.cache_seconds", file=sys.stderr)
    return 0


def cmd_keys_scan(args: argparse.Namespace) -> int:
    from idgraph.auth.keys import find_keys

    found = 0
    for name in args.paths:
        path = Path(name)
        files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
        for file in files:
            try:
                text = file.read_text("utf-8", errors="replace")
            except OSError as exc:
                print(f"{file}: cannot read: {exc.strerror}", file=sys.stderr)
                continue
            for offset, key_id in find_keys(text):
                line = text.count("\n", 0, offset) + 1
                print(f"{file}:{line}: idgraph API key {key_id}")
                found += 1
    print(f"{found} key(s) found; revoke each with `idgraph keys revoke KEY_ID`",
          file=sys.stderr)
    return 1 if found else 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from idgraph.auth.audit import load_public_key
    from idgraph.auth.audit_check import verify
    from idgraph.serving import audit_dir, audit_public_key

    settings = _settings(args)
    key = load_public_key(args.public_key) if args.public_key else audit_public_key(settings)
    anchor = json.loads(Path(args.anchor).read_text()) if args.anchor else None
    report = verify(Path(args.dir) if args.dir else audit_dir(settings), key, anchor=anchor)
    print(report.text())
    return 0 if report.ok else 1


def cmd_audit_show(args: argparse.Namespace) -> int:
    from idgraph.auth.audit_check import read_entries
    from idgraph.serving import audit_dir

    settings = _settings(args)
    for entry in read_entries(Path(args.dir) if args.dir else audit_dir(settings),
                              after_seq=args.after, limit=args.limit,
                              action=args.action, actor=args.actor):
        print(entry.to_json())
    return 0


def cmd_audit_checkpoint(args: argparse.Namespace) -> int:
    from idgraph.auth.audit_check import latest_checkpoint
    from idgraph.serving import audit_dir

    checkpoint = latest_checkpoint(audit_dir(_settings(args)))
    if checkpoint is None:
        print("no checkpoint yet", file=sys.stderr)
        return 1
    print(json.dumps(checkpoint))
    return 0


def add_commands(sub, common: argparse.ArgumentParser) -> None:
    """Register ``keys`` and ``audit`` on the main parser's subparsers."""
    from idgraph.auth.roles import ROLES

    p = sub.add_parser("keys", help="API keys: create, list, rotate, revoke, scan")
    k = p.add_subparsers(dest="keys_command", required=True)
    s = k.add_parser("create", parents=[common], help="create a key (printed once)")
    s.add_argument("--owner", required=True, help="who answers for the key")
    s.add_argument("--role", action="append", required=True, choices=ROLES,
                   help="a role (repeat for several)")
    s.add_argument("--region", action="append", help="limit to a region (repeatable)")
    s.add_argument("--days", type=float, help="lifetime in days (default 90, at most 365)")
    s.add_argument("--unmask", action="store_true",
                   help="a marketer key that sees personal fields")
    s.add_argument("--rate", type=float, help="calls per second (default: the role's)")
    s.add_argument("--description")
    s.set_defaults(func=cmd_keys_create)
    s = k.add_parser("list", parents=[common], help="the keys (never their secrets)")
    s.add_argument("--all", action="store_true", help="expired and revoked keys too")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_keys_list)
    s = k.add_parser("rotate", parents=[common], help="a successor key, printed once")
    s.add_argument("key_id")
    s.add_argument("--overlap-hours", type=float, default=0.0,
                   help="how long the old key keeps working (default: it stops now)")
    s.add_argument("--days", type=float, help="the new key's lifetime in days")
    s.set_defaults(func=cmd_keys_rotate)
    s = k.add_parser("revoke", parents=[common], help="end a key now")
    s.add_argument("key_id")
    s.add_argument("--reason")
    s.set_defaults(func=cmd_keys_revoke)
    s = k.add_parser("scan", help="find leaked keys in files (offline); exit 1 if any")
    s.add_argument("paths", nargs="+")
    s.set_defaults(func=cmd_keys_scan)

    p = sub.add_parser("audit", help="the audit log: verify, show, checkpoint")
    a = p.add_subparsers(dest="audit_command", required=True)
    s = a.add_parser("verify", parents=[common],
                     help="check every entry, the chain and the signed checkpoints")
    s.add_argument("--dir", help="the audit directory (default: the settings')")
    s.add_argument("--public-key", help="the signing key's public half (PEM)")
    s.add_argument("--anchor", help="a checkpoint kept off host (JSON file)")
    s.set_defaults(func=cmd_audit_verify)
    s = a.add_parser("show", parents=[common], help="entries as JSON lines")
    s.add_argument("--dir")
    s.add_argument("--after", type=int, default=0, help="after this sequence number")
    s.add_argument("--limit", type=int, default=100)
    s.add_argument("--action")
    s.add_argument("--actor")
    s.set_defaults(func=cmd_audit_show)
    s = a.add_parser("checkpoint", parents=[common],
                     help="the latest signed checkpoint (keep it off host)")
    s.set_defaults(func=cmd_audit_checkpoint)
