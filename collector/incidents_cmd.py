"""``otsentry-collector incidents``: list incidents, or show one with its members."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, and_, select

from otsentry.collector.db_cmd import add_db_option
from otsentry.collector.store import Store, default_url, read
from otsentry.collector.store import _schema as S
from otsentry.common.errors import OtSentryError
from otsentry.common.finding import Severity

__all__ = ["SUMMARY", "add_arguments", "run", "ACTIONS", "list_incidents", "incident_detail"]

SUMMARY = "list the incidents correlated from findings, or show one"

HELP = """\
Incidents group findings: one source tripping several detectors at a site
(reconnaissance then a write), or the same routable source, sequence of
techniques, device-identity change or detector firing at several sites.

examples:
  otsentry-collector incidents                       # open incidents, newest first
  otsentry-collector incidents list --site plant1 --min-severity high
  otsentry-collector incidents show 12               # members, sites, techniques
  otsentry-collector incidents show 12 --json
"""

I, F, M, H = S.incidents.c, S.findings.c, S.incident_members.c, S.asset_history.c


def _when(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _marks(text: str) -> list[str]:
    return [x for x in text.split(",") if x]


def list_incidents(conn: Connection, *, site: str | None = None, min_severity: int = 0,
                   limit: int = 100) -> list[dict[str, Any]]:
    """Incidents, newest activity first, as plain dicts."""
    q = select(S.incidents).where(I.severity >= min_severity)
    if site:
        q = q.where(I.sites.like(f"%,{site},%"))
    rows = conn.execute(q.order_by(I.last_ns.desc(), I.id.desc()).limit(limit)).mappings()
    return [_incident(r) for r in rows]


def _incident(r: Any) -> dict[str, Any]:
    return {"id": r["id"], "key": r["key"], "rule": r["rule"], "title": r["title"],
            "severity": str(Severity(r["severity"])), "status": r["status"],
            "sites": _marks(r["sites"]), "source_ip": r["source_ip"],
            "techniques": _marks(r["techniques"]), "members": r["member_count"],
            "first": _when(r["first_ns"]), "last": _when(r["last_ns"])}


def incident_detail(conn: Connection, iid: int) -> dict[str, Any] | None:
    """One incident with its member findings and asset changes, or None."""
    row = conn.execute(select(S.incidents).where(I.id == iid)).mappings().first()
    if row is None:
        return None
    out = _incident(row)
    out["findings"] = [
        {"site": f.site, "agent": f.agent_id, "id": f.finding_id, "kind": f.kind,
         "severity": str(Severity(f.severity)), "source_ip": f.source_ip,
         "techniques": _marks(f.techniques), "count": f.count, "summary": f.summary,
         "ingested": _when(f.first_ingest_ns)}
        for f in conn.execute(select(S.findings).join(S.incident_members, and_(
            M.member_kind == "finding", M.ref == F.id)).where(M.incident == iid)
            .order_by(F.first_seen_ns, F.id))]
    out["asset_changes"] = [
        {"site": h.site, "agent": h.agent_id, "device_id_change": json.loads(h.device_id_change),
         "ingested": _when(h.ingest_ns)}
        for h in conn.execute(select(S.asset_history).join(S.incident_members, and_(
            M.member_kind == "asset-change", M.ref == H.id)).where(M.incident == iid)
            .order_by(H.id))]
    return out


def _print_list(rows: list[dict[str, Any]]) -> None:
    if not rows:
        print("no incidents")
        return
    print(f"{'ID':>5}  {'SEVERITY':<8}  {'RULE':<21}  {'SITES':<20}  {'N':>4}  {'LAST':<20}  TITLE")
    for r in rows:
        print(f"{r['id']:>5}  {r['severity']:<8}  {r['rule']:<21}  {','.join(r['sites']):<20}  "
              f"{r['members']:>4}  {r['last']:<20}  {r['title']}")


def _print_one(d: dict[str, Any]) -> None:
    for k in ("id", "title", "severity", "status", "rule", "key", "sites", "source_ip",
              "techniques", "members", "first", "last"):
        v = d[k]
        print(f"{k + ':':<12}{', '.join(v) if isinstance(v, list) else v}")
    if d["findings"]:
        print("\nfindings:")
        for f in d["findings"]:
            print(f"  {f['site']:<12} {f['severity']:<8} {f['kind']:<28} {f['source_ip'] or '-':<16} "
                  f"x{f['count']:<5} {f['summary']}")
    if d["asset_changes"]:
        print("\ndevice identity changes:")
        for h in d["asset_changes"]:
            print(f"  {h['site']:<12} {h['agent']:<28} {json.dumps(h['device_id_change'])}")


def _list(args: argparse.Namespace, conn: Connection) -> int:
    sev = int(Severity.parse(args.min_severity)) if args.min_severity else 0
    rows = list_incidents(conn, site=args.site, min_severity=sev, limit=args.limit)
    if args.json:
        for r in rows:
            print(json.dumps(r))
    else:
        _print_list(rows)
    return 0


def _show(args: argparse.Namespace, conn: Connection) -> int:
    d = incident_detail(conn, args.id)
    if d is None:
        print(f"otsentry-collector incidents: no incident {args.id}", file=sys.stderr)
        return 1
    print(json.dumps(d, indent=2)) if args.json else _print_one(d)
    return 0


#: action -> (help, add its arguments, run it in a read transaction).
ACTIONS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None],
                         Callable[[argparse.Namespace, Connection], int]]] = {
    "list": ("list incidents, newest activity first", lambda p: (
        p.add_argument("--site", help="only incidents that involve this site"),
        p.add_argument("--min-severity", metavar="LEVEL",
                       help="info, low, medium, high or critical"),
        p.add_argument("--limit", type=int, default=100)), _list),
    "show": ("one incident with its findings", lambda p: p.add_argument("id", type=int), _show),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Sub-commands of ``incidents`` (``list`` when none is given)."""
    p.description = HELP
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    for name, (help_, add, _) in ACTIONS.items():
        sp = sub.add_parser(name, help=help_, description=help_)
        add(sp)
        add_db_option(sp)
        sp.add_argument("--json", action="store_true", help="JSON instead of a table")
    add_db_option(p)
    p.add_argument("--json", action="store_true", help="JSON lines instead of a table")


def run(args: argparse.Namespace) -> int:
    """Run the action; returns the exit code."""
    if not args.action:
        args.action, args.site, args.min_severity, args.limit = "list", None, None, 100
    if args.min_severity if args.action == "list" else False:
        try:
            Severity.parse(args.min_severity)
        except ValueError as exc:
            raise OtSentryError(str(exc)) from None
    store = Store(args.db or default_url())
    try:
        with read(store.engine) as conn:
            return ACTIONS[args.action][2](args, conn)
    finally:
        store.close()
