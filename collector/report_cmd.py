"""``otsentry-collector report``: incidents as a STIX 2.1 bundle file, and the delivery status."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

from otsentry.collector.db_cmd import add_db_option
from otsentry.collector.store import Store, default_url, read
from otsentry.collector.store import _schema as S
from otsentry.collector.upstream import incident_objects, load_facts, make_bundle, report_status
from otsentry.common.config import load_collector_config
from otsentry.common.errors import OtSentryError
from otsentry.common.upstream_config import Recipient, ReportingConfig
from sqlalchemy import select

__all__ = ["SUMMARY", "add_arguments", "export_bundle", "run"]

SUMMARY = "write incidents as a STIX 2.1 bundle (for hand-carried reports), or show delivery status"
DEFAULT_CONFIG = "/etc/otsentry/collector.toml"

HELP = """\
For a site with no link upstream, 'report' writes what the collector would
send as one STIX 2.1 bundle file, to be carried to the NICC (or a CSIRT,
an ISAC) and uploaded there.  The sharing policy of the recipient named with
--recipient (an [[upstream]] table of the config) applies: minimum severity,
TLP 2.0 level, redaction of internal addresses and names, allowed kinds.
Without --recipient the first [[upstream]] table is used, or, with none, the
safe default policy (TLP:AMBER, redaction on, severity medium and above).

examples:
  otsentry-collector report --incident 12 --out incident-12.json
  otsentry-collector report --since 2026-11-01 --out november.json --recipient nicc
  otsentry-collector report status                 # every stage of every declared incident
  otsentry-collector report status --incident 12 --json
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``report`` (and its ``status`` action)."""
    p.description = HELP
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("action", nargs="?", choices=("export", "status"), default="export",
                   help="export (the default): write a bundle; status: delivery status")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--incident", metavar="ID", type=int, action="append",
                       help="this incident (repeat for several)")
    which.add_argument("--since", metavar="TIME",
                       help='incidents active since TIME: "2026-11-01", "2026-11-01T08:00" (UTC)')
    p.add_argument("--out", metavar="FILE", help="the bundle file to write ('-': standard output)")
    p.add_argument("--recipient", metavar="NAME", help="whose sharing policy applies")
    p.add_argument("--config", metavar="FILE", default=None,
                   help=f"the collector's config with [[upstream]] (default: {DEFAULT_CONFIG} "
                        "if it exists)")
    p.add_argument("--json", action="store_true", help="status as JSON lines")
    add_db_option(p)


def _since_ns(text: str) -> int:
    try:
        t = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise OtSentryError(f"--since {text!r}: expected a date or time such as 2026-11-01 or "
                            "2026-11-01T08:00 (UTC)") from None
    t = t if t.tzinfo else t.replace(tzinfo=dt.UTC)
    return int(t.timestamp() * 1e9)


def _recipient(cfg: ReportingConfig, name: str | None) -> Recipient:
    if name:
        rc = cfg.recipient(name)
        if rc is None:
            known = ", ".join(r.name for r in cfg.recipients) or "none configured"
            raise OtSentryError(f"--recipient {name!r}: no such [[upstream]] table ({known})")
        return rc
    return cfg.recipients[0] if cfg.recipients else Recipient("export", "http://export.invalid/",
                                                              "export")


def export_bundle(conn: Any, ids: list[int], cfg: ReportingConfig, rc: Recipient,
                  now: int) -> tuple[dict[str, Any], list[int]]:
    """One bundle of the incidents ``ids`` under ``rc``'s policy; returns it and the ids withheld.

    Objects shared by several incidents (identities, attack-patterns, markings)
    appear once.
    """
    objects: dict[str, dict[str, Any]] = {}
    withheld = []
    for iid in ids:
        got = incident_objects(load_facts(conn, iid), rc, cfg, "export", now)
        if not got:
            withheld.append(iid)
        for o in got:
            objects.setdefault(o["id"], o)
    markings = [o for o in objects.values() if o["type"] == "marking-definition"]
    return make_bundle(markings + [o for o in objects.values() if o not in markings]), withheld


def _export(args: argparse.Namespace, store: Store, cfg: ReportingConfig) -> int:
    if not args.out:
        raise OtSentryError("--out FILE is required (where the bundle is written)")
    if not args.incident and not args.since:
        raise OtSentryError("say which incidents: --incident ID or --since TIME")
    rc = _recipient(cfg, args.recipient)
    with read(store.engine) as conn:
        I = S.incidents.c
        ids = args.incident or list(conn.execute(select(I.id).where(
            I.last_ns >= _since_ns(args.since)).order_by(I.id)).scalars())
        bundle, withheld = export_bundle(conn, ids, cfg, rc, time.time_ns())
    text = json.dumps(bundle, indent=2, ensure_ascii=False) + "\n"
    if args.out == "-":
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text)
    n = len(ids) - len(withheld)
    print(f"{n} incident(s), {len(bundle['objects'])} STIX objects -> {args.out}"
          + (f"; withheld by {rc.name}'s sharing policy: {withheld}" if withheld else ""),
          file=sys.stderr)
    return 0 if n or not ids else 1


def _status(args: argparse.Namespace, store: Store, cfg: ReportingConfig) -> int:
    R = S.upstream_reports.c
    q = select(S.upstream_reports).order_by(R.incident, R.recipient, R.due_ns)
    if args.incident:
        q = q.where(R.incident.in_(args.incident))
    now = time.time_ns()
    with read(store.engine) as conn:
        rows = [{"incident": r.incident, **report_status(r, now, cfg.warn_before_s)}
                for r in conn.execute(q)]
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return 0
    if not rows:
        print("nothing declared for reporting (otsentry-collector incidents declare ID)")
        return 0
    print(f"{'INCIDENT':>8}  {'RECIPIENT':<12}  {'STAGE':<14}  {'DUE':<24}  {'STATUS':<12}  NOTE")
    for r in rows:
        note = "OVERDUE" if r["overdue"] else "due soon" if r["due_soon"] else ""
        if r["status"] == "failed":
            note = f"{note} {r['reason']} (retry {r['next_try']})".strip()
        print(f"{r['incident']:>8}  {r['recipient']:<12}  {r['stage']:<14}  {r['due']:<24}  "
              f"{r['status']:<12}  {note}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Export a bundle or print the status; returns the exit code."""
    path = args.config or (DEFAULT_CONFIG if Path(DEFAULT_CONFIG).exists() else None)
    full = load_collector_config(path)
    cfg = full.reporting
    # the store the config names, unless --db says otherwise
    store = Store(args.db or (f"sqlite:///{full.store}" if path else default_url()))
    try:
        return (_status if args.action == "status" else _export)(args, store, cfg)
    finally:
        store.close()
