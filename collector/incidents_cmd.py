"""``otsentry-collector incidents``: list incidents, show one, declare one significant, add notes."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, and_, select

from otsentry.collector.db_cmd import add_db_option
from otsentry.collector.store import Store, default_url, read, write
from otsentry.collector.store import _schema as S
from otsentry.collector.upstream import add_note, declare, incident_report_status
from otsentry.common.errors import OtSentryError
from otsentry.common.finding import Severity

__all__ = ["SUMMARY", "add_arguments", "run", "ACTIONS", "list_incidents", "incident_detail"]

SUMMARY = "list the incidents correlated from findings, show one, declare one, add notes"

HELP = """\
Incidents group findings: one source tripping several detectors at a site
(reconnaissance then a write), or the same routable source, sequence of
techniques, device-identity change or detector firing at several sites.

examples:
  otsentry-collector incidents                       # open incidents, newest first
  otsentry-collector incidents list --site plant1 --min-severity high
  otsentry-collector incidents show 12               # members, sites, techniques
  otsentry-collector incidents show 12 --json
  otsentry-collector incidents declare 12            # significant: start the reporting clocks
  otsentry-collector incidents note 12 "PLC restarted by the operator, not the attacker"

Declaring an incident starts the NIS2-style clocks of every [[upstream]]
recipient in the collector's config (early warning, notification, final
report); 'show' gives each stage's due time and delivery status (queued,
sent, acknowledged, or failed with the reason).  Notes go into the next report.
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
    out = [_incident(r) for r in rows]
    for d in out:
        d["reporting"] = _reporting_summary(incident_report_status(conn, d["id"]))
    return out


def _reporting_summary(stages: list[dict[str, Any]]) -> str:
    """One word for the list: overdue, failed, the next due time, or acknowledged."""
    if not stages:
        return ""
    if any(s["overdue"] for s in stages):
        return "OVERDUE"
    if any(s["status"] == "failed" for s in stages):
        return "failed"
    owed = sorted((s["due"], s["stage"]) for s in stages if s["status"] != "acknowledged")
    return f"{owed[0][1]} due {owed[0][0][:16]}Z" if owed else "acknowledged"


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
    d = S.incident_declarations.c
    declared = conn.execute(select(d.declared_ns, d.by).where(d.incident == iid)).first()
    out["declared"] = _when(declared.declared_ns) if declared else ""
    out["declared_by"] = declared.by if declared else ""
    n = S.incident_notes.c
    out["notes"] = [{"id": x.id, "author": x.author, "created": _when(x.created_ns), "text": x.text}
                    for x in conn.execute(select(S.incident_notes).where(n.incident == iid)
                                          .order_by(n.id))]
    out["reporting"] = [{k: v for k, v in r.items() if k != "due_ns"}
                        for r in incident_report_status(conn, iid)]
    return out


def _print_list(rows: list[dict[str, Any]]) -> None:
    if not rows:
        print("no incidents")
        return
    print(f"{'ID':>5}  {'SEVERITY':<8}  {'RULE':<21}  {'SITES':<20}  {'N':>4}  {'LAST':<20}  "
          f"{'REPORTING':<34}  TITLE")
    for r in rows:
        print(f"{r['id']:>5}  {r['severity']:<8}  {r['rule']:<21}  {','.join(r['sites']):<20}  "
              f"{r['members']:>4}  {r['last']:<20}  {r['reporting'] or '-':<34}  {r['title']}")


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
    _print_reporting(d)


def _print_reporting(d: dict[str, Any]) -> None:
    if d["notes"]:
        print("\nnotes:")
        for n in d["notes"]:
            print(f"  {n['created']}  {n['author']}: {n['text']}")
    if not d["declared"]:
        print("\nreporting: not declared (otsentry-collector incidents declare "
              f"{d['id']} starts the clocks)")
        return
    print(f"\nreporting: declared {d['declared']} by {d['declared_by']}")
    for r in d["reporting"]:
        flag = "  OVERDUE" if r["overdue"] else "  due soon" if r["due_soon"] else ""
        why = f"  ({r['reason']}; retry {r['next_try']})" if r["status"] == "failed" else ""
        print(f"  {r['recipient']:<12} {r['stage']:<14} due {r['due']:<25} "
              f"{r['status']:<12}{flag}{why}")
    if not d["reporting"]:
        print("  no stages yet: the push job of 'serve' schedules them for each [[upstream]] "
              "recipient whose sharing policy lets this incident leave")


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


def _declare(args: argparse.Namespace, conn: Connection) -> int:
    import time

    started = declare(conn, args.id, args.by or _user(), time.time_ns())
    print(f"incident {args.id}: reporting clocks started {_when(started)}; 'serve' sends the "
          "early warning to every [[upstream]] recipient whose sharing policy allows it")
    return 0


def _note(args: argparse.Namespace, conn: Connection) -> int:
    import time

    nid = add_note(conn, args.id, args.author or _user(), " ".join(args.text), time.time_ns())
    print(f"incident {args.id}: note {nid} added; it goes into the next report")
    return 0


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "analyst"


#: Actions that write (the others run in a read transaction).
_WRITES = {"declare", "note"}

#: action -> (help, add its arguments, run it in a transaction).
ACTIONS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None],
                         Callable[[argparse.Namespace, Connection], int]]] = {
    "list": ("list incidents, newest activity first", lambda p: (
        p.add_argument("--site", help="only incidents that involve this site"),
        p.add_argument("--min-severity", metavar="LEVEL",
                       help="info, low, medium, high or critical"),
        p.add_argument("--limit", type=int, default=100)), _list),
    "show": ("one incident with its findings, notes and reporting status",
             lambda p: p.add_argument("id", type=int), _show),
    "declare": ("declare an incident significant: start its reporting clocks", lambda p: (
        p.add_argument("id", type=int),
        p.add_argument("--by", metavar="NAME", help="who declares it (default: your login)")),
        _declare),
    "note": ("add an analyst's note, reported with the incident", lambda p: (
        p.add_argument("id", type=int),
        p.add_argument("text", nargs="+", help="the note (quote it)"),
        p.add_argument("--author", metavar="NAME", help="default: your login")), _note),
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
        with (write if args.action in _WRITES else read)(store.engine) as conn:
            return ACTIONS[args.action][2](args, conn)
    finally:
        store.close()
