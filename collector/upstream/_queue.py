"""The reporting clocks and the durable delivery queue, in the store.

One ``upstream_reports`` row per (incident, recipient, stage) is both the
stage's clock (``due_ns``) and its place in the queue:

    waiting --(send time)--> queued --push--> sent --server's status--> acknowledged
                                  \\-- error --> failed (reason; retried at next_try_ns)

A declared incident that changes after a stage went out is rebuilt (a new
``modified``, the same ids) and queued again under its latest stage.  All
functions here take a connection inside the caller's transaction; the push
job (:mod:`._push`) runs them under the ``upstream`` job row, so replicas
never schedule twice.
"""

from __future__ import annotations

import json
from typing import Any

from otsentry.collector.store import _schema as S
from otsentry.collector.upstream._mapping import (
    FindingFacts,
    IncidentFacts,
    NoteFacts,
    incident_objects,
    ts,
)
from otsentry.collector.upstream._redact import AssetInfo
from otsentry.common.errors import OtSentryError
from otsentry.common.upstream_config import STAGES, Recipient, ReportingConfig
from otsentry.v1 import convert, finding_pb2
from sqlalchemy import Connection, and_, func, insert, select, update

__all__ = [
    "add_note",
    "declare",
    "incident_report_status",
    "load_facts",
    "report_status",
    "schedule",
    "warn_due",
]

R, I, M, F = S.upstream_reports.c, S.incidents.c, S.incident_members.c, S.findings.c
_NS = 1_000_000_000
#: Statuses that still owe the recipient something.
OPEN = ("waiting", "queued", "sending", "sent", "failed")


def _incident_row(conn: Connection, iid: int) -> Any:
    row = conn.execute(select(S.incidents).where(I.id == iid)).mappings().first()
    if row is None:
        raise OtSentryError(f"no incident {iid} (otsentry-collector incidents lists them)")
    return row


def declare(conn: Connection, iid: int, by: str, now: int) -> int:
    """Start incident ``iid``'s reporting clocks now; returns when they started (earlier if
    it was declared before: a second declaration changes nothing).

    Raises:
        OtSentryError: there is no such incident.
    """
    _incident_row(conn, iid)
    d = S.incident_declarations.c
    have = conn.execute(select(d.declared_ns).where(d.incident == iid)).scalar_one_or_none()
    if have is not None:
        return have
    conn.execute(insert(S.incident_declarations).values(incident=iid, declared_ns=now, by=by))
    return now


def add_note(conn: Connection, iid: int, author: str, text: str, now: int) -> int:
    """Add an analyst's note to incident ``iid`` (it goes into the next report); returns its id.

    Raises:
        OtSentryError: no such incident, or an empty note.
    """
    _incident_row(conn, iid)
    if not text.strip():
        raise OtSentryError("a note needs some text")
    return conn.execute(insert(S.incident_notes).values(
        incident=iid, created_ns=now, author=author, text=text.strip()[:20000])
        .returning(S.incident_notes.c.id)).scalar_one()


def load_facts(conn: Connection, iid: int) -> IncidentFacts:
    """Everything :func:`~._mapping.incident_objects` needs about incident ``iid``.

    Raises:
        OtSentryError: no such incident.
    """
    row = _incident_row(conn, iid)
    d, n = S.incident_declarations.c, S.incident_notes.c
    declared = conn.execute(select(d.declared_ns).where(d.incident == iid)).scalar_one_or_none()
    findings = tuple(
        FindingFacts(f.id, f.agent_id, f.site, convert.finding_from_proto(
            convert.parse(finding_pb2.Finding, f.body)), f.first_ingest_ns, f.updated_ns)
        for f in conn.execute(select(S.findings).join(S.incident_members, and_(
            M.member_kind == "finding", M.ref == F.id)).where(M.incident == iid)
            .order_by(F.first_seen_ns, F.id)))
    notes = tuple(NoteFacts(x.id, x.created_ns, x.author, x.text) for x in conn.execute(
        select(S.incident_notes).where(n.incident == iid).order_by(n.id)))
    sites = tuple(x for x in row["sites"].split(",") if x)
    return IncidentFacts(
        id=iid, rule=row["rule"], title=row["title"], severity=row["severity"], sites=sites,
        first_ns=row["first_ns"], last_ns=row["last_ns"], created_ns=row["created_ns"],
        updated_ns=row["updated_ns"], declared_ns=declared or 0, findings=findings, notes=notes,
        assets=_assets(conn, sites))


def _assets(conn: Connection, sites: tuple[str, ...]) -> dict[str, dict[str, AssetInfo]]:
    """site -> address -> role, vendor and name from the inventory (the asset rows, not units)."""
    a = S.assets.c
    out: dict[str, dict[str, AssetInfo]] = {s: {} for s in sites}
    for r in conn.execute(select(a.id, a.site, a.ip, a.attributes).where(
            a.site.in_(sites), a.unit == S.NONE, a.ip != "")):
        attrs = {k: str(v[0]) for k, v in json.loads(r.attributes or "{}").items()}
        out[r.site][r.ip] = AssetInfo(attrs.get("role", ""), attrs.get("vendor", ""),
                                      attrs.get("name", ""), r.id)
    return out


def _auto_declare(conn: Connection, cfg: ReportingConfig, now: int) -> None:
    """Declare the incidents of rules marked automatic, at the time they were opened."""
    if not cfg.automatic:
        return
    d = S.incident_declarations.c
    new = conn.execute(select(I.id, I.created_ns).where(
        I.rule.in_(cfg.automatic), I.id.not_in(select(d.incident)))).all()
    if new:
        conn.execute(insert(S.incident_declarations), [
            {"incident": i, "declared_ns": min(created, now), "by": "rule"} for i, created in new])


def schedule(conn: Connection, cfg: ReportingConfig, now: int) -> list[int]:
    """Create the stage rows of declared incidents, queue what is due to be sent, and rebuild
    reports whose incident changed since; returns the ids of rows queued now."""
    _auto_declare(conn, cfg, now)
    d = S.incident_declarations.c
    queued: list[int] = []
    for iid, declared in conn.execute(select(d.incident, d.declared_ns).order_by(d.incident)).all():
        rows = {(r.recipient, r.stage): r for r in conn.execute(
            select(S.upstream_reports).where(R.incident == iid))}
        if not _needs_work(rows, now) and not _changed(conn, iid, rows):
            continue
        facts = load_facts(conn, iid)
        for rc in cfg.recipients:
            queued += _schedule_one(conn, cfg, rc, facts, declared, rows, now)
    return queued


def _needs_work(rows: dict[tuple[str, str], Any], now: int) -> bool:
    return not rows or any(r.status == "waiting" and r.send_ns <= now for r in rows.values())


def _changed(conn: Connection, iid: int, rows: dict[tuple[str, str], Any]) -> bool:
    """The incident changed after the newest report built for it."""
    built = max((r.version_ns for r in rows.values()), default=0)
    n = S.incident_notes.c
    latest = max(
        conn.execute(select(I.updated_ns).where(I.id == iid)).scalar_one(),
        conn.execute(select(func.max(n.created_ns)).where(n.incident == iid)).scalar() or 0,
        conn.execute(select(func.max(F.updated_ns)).join(S.incident_members, and_(
            M.member_kind == "finding", M.ref == F.id)).where(M.incident == iid)).scalar() or 0)
    return latest > built


def _schedule_one(conn: Connection, cfg: ReportingConfig, rc: Recipient, facts: IncidentFacts,
                  declared: int, rows: dict[tuple[str, str], Any], now: int) -> list[int]:
    mine = {stage: rows.get((rc.name, stage)) for stage in STAGES}
    if all(r is None for r in mine.values()):
        if not incident_objects(facts, rc, cfg, "early-warning", now):
            return []  # the sharing policy keeps this incident home
        for stage in STAGES:
            rid = conn.execute(insert(S.upstream_reports).values(
                incident=facts.id, recipient=rc.name, stage=stage,
                due_ns=declared + int(rc.deadlines.due_s(stage) * _NS),
                send_ns=declared + int(rc.deadlines.send_s(stage) * _NS), status="waiting",
                updated_ns=now).returning(R.id)).scalar_one()
            mine[stage] = conn.execute(select(S.upstream_reports).where(R.id == rid)).one()
    out = []
    for stage, r in mine.items():
        if r is not None and r.status == "waiting" and r.send_ns <= now:
            out += _build(conn, cfg, rc, facts, r, now)
    latest = [r for r in mine.values() if r is not None and r.status != "waiting"]
    if not out and latest and facts.version_ns > latest[-1].version_ns:
        out += _build(conn, cfg, rc, facts, latest[-1], now)
    return out


def _build(conn: Connection, cfg: ReportingConfig, rc: Recipient, facts: IncidentFacts, row: Any,
           now: int) -> list[int]:
    objects = incident_objects(facts, rc, cfg, row.stage, now, row.due_ns)
    if not objects:
        return []
    conn.execute(update(S.upstream_reports).where(R.id == row.id).values(
        status="queued", reason="", version_ns=facts.version_ns, bundle=json.dumps(objects),
        parts=0, parts_done=0, status_ids="", attempts=0, next_try_ns=0, lease_ns=0,
        acked_ns=0, updated_ns=now))
    return [row.id]


def warn_due(conn: Connection, cfg: ReportingConfig, now: int) -> list[dict[str, Any]]:
    """Rows that became due soon (``warned`` 1) or overdue (2) since the last call, once each."""
    out = []
    soon = now + int(cfg.warn_before_s * _NS)
    for level, limit in ((2, now), (1, soon)):
        rows = conn.execute(select(R.id, R.incident, R.recipient, R.stage, R.due_ns, R.status)
                            .where(R.status.in_(OPEN), R.due_ns <= limit, R.warned < level)).all()
        for r in rows:
            conn.execute(update(S.upstream_reports).where(R.id == r.id).values(warned=level))
            out.append({"incident": r.incident, "recipient": r.recipient, "stage": r.stage,
                        "due": ts(r.due_ns), "status": r.status,
                        "overdue": level == 2})
    return out


def report_status(row: Any, now: int, warn_before_s: float = 4 * 3600.0) -> dict[str, Any]:
    """One stage row as the CLI and the dashboard show it."""
    done = row.status == "acknowledged"
    return {"recipient": row.recipient, "stage": row.stage, "due": ts(row.due_ns),
            "due_ns": row.due_ns, "status": row.status, "reason": row.reason,
            "attempts": row.attempts, "parts": row.parts,
            "sent": ts(row.sent_ns) if row.sent_ns else "",
            "acknowledged": ts(row.acked_ns) if row.acked_ns else "",
            "next_try": ts(row.next_try_ns) if row.status == "failed" else "",
            "overdue": not done and now > row.due_ns and row.acked_ns < row.due_ns,
            "due_soon": not done and now <= row.due_ns <= now + int(warn_before_s * _NS)}


def incident_report_status(conn: Connection, incident_id: int, now: int | None = None,
                           warn_before_s: float = 4 * 3600.0) -> list[dict[str, Any]]:
    """Every recipient's stages of one incident: recipient, stage, due, status, reason, ...

    For the CLI (``incidents show``) and the dashboard.  ``now`` defaults to the
    wall clock; ``overdue`` is true for a stage not acknowledged by its due time,
    ``due_soon`` within ``warn_before_s`` of it.
    """
    import time

    now = time.time_ns() if now is None else now
    rows = conn.execute(select(S.upstream_reports).where(R.incident == incident_id)
                        .order_by(R.recipient, R.due_ns)).all()
    return [report_status(r, now, warn_before_s) for r in rows]
