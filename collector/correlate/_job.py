"""The correlation job: reads the feed log in commit order and groups findings into incidents.

Exactly once, however many replicas (DESIGN principle 6):

* the job's row is taken with ``FOR UPDATE SKIP LOCKED`` (:func:`store.job`):
  one replica correlates at a time, the others skip at once;
* the job's cursor in the feed, the incidents it writes and their feed entries
  commit in one transaction, so a replica killed half-way leaves nothing done;
* the feed is commit-ordered, so the cursor never passes a finding that
  commits late;
* every incident has a unique correlation key written with ON CONFLICT, so
  even two writers could not create the same incident twice.

Windows use ingest time: "now" for a finding is the ingest time of its feed
entry, so replaying the feed gives the same incidents.

An incident stays open for more members while its last member is within the
rule's window; after that the same match opens a new incident.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from otsentry.collector.correlate._match import (
    incident_severity,
    is_routable,
    pattern_scope,
    recon_then_write,
    technique_sequence,
)
from otsentry.collector.correlate._rules import Rules
from otsentry.collector.store import FeedRow, append_feed, is_postgres, job, read_feed, set_cursor
from otsentry.collector.store import _schema as S
from otsentry.common.finding import Severity
from sqlalchemy import Connection, Engine, and_, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

__all__ = ["Ran", "correlate_once"]

_NS = 1_000_000_000
F, M, I, H = S.findings.c, S.incident_members.c, S.incidents.c, S.asset_history.c


@dataclass(slots=True)
class Ran:
    """What one run did; ``ran`` is False when another replica held the job."""

    ran: bool
    entries: int = 0
    created: list[int] = field(default_factory=list)
    updated: set[int] = field(default_factory=set)
    cursor: int = 0


def correlate_once(engine: Engine, rules: Rules, *, limit: int = 2000) -> Ran:
    """Correlate up to ``limit`` feed entries after the job's cursor, in one transaction."""
    with job(engine, "correlate") as taken:
        if taken is None:
            return Ran(False)
        conn, cursor = taken
        entries = read_feed(conn, cursor, limit, bodies=False)
        run = _Run(conn, rules)
        for e in entries:
            run.ran.entries += 1
            if e.kind == "finding" and e.new:
                run.finding(e.ref, e.cursor, e.ingest_ns)
            elif e.kind == "asset" and e.detector == "device-id-change":
                run.device_id(e.ref, e.cursor, e.ingest_ns)
        if entries:
            set_cursor(conn, "correlate", entries[-1].cursor)
            run.ran.cursor = entries[-1].cursor
        run.publish()
        return run.ran


class _Run:
    """One transaction of the job."""

    def __init__(self, conn: Connection, rules: Rules) -> None:
        self.conn, self.rules = conn, rules
        self.ran = Ran(True)
        self.now = time.time_ns()

    # --- the rules ----------------------------------------------------------------------

    def finding(self, ref: int, cursor: int, t: int) -> None:
        f = self.conn.execute(select(S.findings).where(F.id == ref)).mappings().first()
        if f is None or f["severity"] < self.rules.min_severity:
            return  # pruned since, or below the bar
        site_incident = self._site_source(f, cursor, t)
        self._cross_source(f, cursor, t)
        if site_incident is not None:
            self._cross_techniques(site_incident, cursor, t)
        self._cross_timing(f, cursor, t)

    def _site_source(self, f: dict, cursor: int, t: int) -> int | None:
        rule = self.rules.site_source
        if not rule.enabled or not f["source_ip"]:
            return None
        rows = self._findings(and_(F.site == f["site"], F.source_ip == f["source_ip"]),
                              t - int(rule.window_s * _NS))
        if len({r["kind"] for r in rows}) < rule.min_detectors:
            return None
        staged = recon_then_write([(r["first_seen_ns"], r["techniques"]) for r in rows], self.rules)
        title = (f"reconnaissance then write from {f['source_ip']} at {f['site']}" if staged else
                 f"{f['source_ip']} tripped {len({r['kind'] for r in rows})} detectors at {f['site']}")
        return self._incident("site-source", f"{f['site']}|{f['source_ip']}", cursor, t,
                              rule.window_s, [("finding", r["id"], r["site"]) for r in rows],
                              title, f["source_ip"], staged)

    def _cross_source(self, f: dict, cursor: int, t: int) -> None:
        rule = self.rules.cross_site_source
        if not rule.enabled or not is_routable(f["source_ip"], self.rules):
            return
        rows = self._findings(F.source_ip == f["source_ip"], t - int(rule.window_s * _NS))
        sites = {r["site"] for r in rows}
        if len(sites) >= rule.min_sites:
            self._incident("cross-site-source", f["source_ip"], cursor, t, rule.window_s,
                           [("finding", r["id"], r["site"]) for r in rows],
                           f"{f['source_ip']} seen at {len(sites)} sites", f["source_ip"])

    def _cross_techniques(self, site_incident: int, cursor: int, t: int) -> None:
        rule = self.rules.cross_site_techniques
        inc = self.conn.execute(select(I.techniques).where(I.id == site_incident)).scalar_one()
        if not rule.enabled or len([x for x in inc.split(",") if x]) < rule.min_length:
            return
        since = t - int(rule.window_s * _NS)
        peers = self.conn.execute(select(I.id, I.sites).where(
            I.rule == "site-source", I.techniques == inc, I.last_ns >= since)).all()
        sites = {s for _, marks in peers for s in marks.split(",") if s}
        if len(sites) < rule.min_sites:
            return
        members = self.conn.execute(select(M.member_kind, M.ref, M.site).where(
            M.incident.in_([i for i, _ in peers]))).all()
        seq = " > ".join(x for x in inc.split(",") if x)
        self._incident("cross-site-techniques", inc, cursor, t, rule.window_s,
                       [tuple(m) for m in members], f"the same techniques {seq} at {len(sites)} sites",
                       "")

    def _cross_timing(self, f: dict, cursor: int, t: int) -> None:
        rule = self.rules.cross_site_timing
        if not rule.enabled or f["severity"] < rule.min_severity:
            return
        rows = self.conn.execute(select(F.id, F.site).where(
            F.kind == f["kind"], F.first_ingest_ns >= t - int(rule.window_s * _NS),
            F.severity >= int(rule.min_severity))).all()
        sites = {s for _, s in rows}
        if len(sites) >= rule.min_sites:
            self._incident("cross-site-timing", f["kind"], cursor, t, rule.window_s,
                           [("finding", i, s) for i, s in rows],
                           f"{f['kind']} at {len(sites)} sites within {int(rule.window_s)} s", "")

    def device_id(self, asset: int, cursor: int, t: int) -> None:
        rule = self.rules.cross_site_device_id
        if not rule.enabled:
            return
        patterns = self.conn.execute(select(H.device_id_change).distinct().where(
            H.asset == asset, H.ingest_ns == t, H.device_id_change != "")).scalars().all()
        for p in patterns:
            rows = self.conn.execute(select(H.id, H.site).where(
                H.device_id_change == p, H.ingest_ns >= t - int(rule.window_s * _NS))).all()
            sites = {s for _, s in rows}
            if len(sites) >= rule.min_sites:
                self._incident("cross-site-device-id", pattern_scope(p), cursor, t, rule.window_s,
                               [("asset-change", i, s) for i, s in rows],
                               f"the same device identity change at {len(sites)} sites: {p}", "")

    # --- incidents ----------------------------------------------------------------------

    def _findings(self, where, since: int) -> list[dict]:  # type: ignore[no-untyped-def]
        return [dict(r) for r in self.conn.execute(
            select(F.id, F.site, F.kind, F.severity, F.first_seen_ns, F.techniques).where(
                where, F.updated_ns >= since, F.severity >= int(self.rules.min_severity)))
            .mappings()]

    def _incident(self, rule: str, scope: str, cursor: int, t: int, window_s: float,
                  members: Sequence[tuple], title: str, source_ip: str,
                  staged: bool = False) -> int:
        """Add ``members`` to the open incident of (rule, scope), or open one; return its id."""
        iid = self.conn.execute(select(I.id).where(
            I.rule == rule, I.scope == scope, I.last_ns >= t - int(window_s * _NS))
            .order_by(I.id.desc()).limit(1)).scalar_one_or_none()
        if iid is None:
            iid = self._create(f"{rule}|{scope}|{cursor}", rule, scope, title, source_ip, t)
        ins = (postgresql.insert if is_postgres(self.conn) else sqlite.insert)(S.incident_members)
        self.conn.execute(ins.on_conflict_do_nothing(), [
            {"incident": iid, "member_kind": k, "ref": ref, "site": site, "added_ns": t}
            for k, ref, site in members])
        self._refresh(iid, title, t, staged)
        if iid not in self.ran.created:
            self.ran.updated.add(iid)
        return iid

    def _create(self, key: str, rule: str, scope: str, title: str, source_ip: str, t: int) -> int:
        ins = (postgresql.insert if is_postgres(self.conn) else sqlite.insert)(S.incidents)
        iid = self.conn.execute(ins.values(
            key=key, rule=rule, scope=scope, title=title, severity=0, sites="", site_count=0,
            source_ip=source_ip, techniques="", member_count=0, first_ns=t, last_ns=t,
            created_ns=self.now, updated_ns=self.now)
            .on_conflict_do_nothing(index_elements=["key"]).returning(I.id)).scalar_one_or_none()
        if iid is None:  # the key exists: this work was done before (cannot happen under the job lock)
            return self.conn.execute(select(I.id).where(I.key == key)).scalar_one()
        self.ran.created.append(iid)
        return iid

    def _refresh(self, iid: int, title: str, t: int, staged: bool) -> None:
        """Recompute an incident's sites, techniques and severity from its members."""
        fm = self.conn.execute(select(F.severity, F.first_seen_ns, F.techniques, M.site).select_from(
            S.incident_members.join(S.findings, and_(M.member_kind == "finding", M.ref == F.id)))
            .where(M.incident == iid)).all()
        am = self.conn.execute(select(M.site).where(M.incident == iid,
                                                    M.member_kind == "asset-change")).scalars().all()
        n = self.conn.execute(select(func.count()).where(M.incident == iid)).scalar_one()
        sites = sorted({r.site for r in fm} | set(am))
        worst = max([r.severity for r in fm], default=int(Severity.MEDIUM))  # device-id changes
        seq = technique_sequence([(r.first_seen_ns, r.techniques) for r in fm])
        severity = incident_severity(worst, len(sites), staged, self.rules)
        self.conn.execute(update(S.incidents).where(I.id == iid).values(
            title=title, sites="," + ",".join(sites) + ",", site_count=len(sites),
            techniques="," + ",".join(seq) + "," if seq else "", member_count=n,
            severity=func.max(I.severity, severity) if not is_postgres(self.conn)
            else func.greatest(I.severity, severity),
            last_ns=t, updated_ns=self.now))

    def publish(self) -> None:
        """Feed entries for the incidents this run created or changed (last: takes the sequencer)."""
        ids = sorted(set(self.ran.created) | self.ran.updated)
        if not ids:
            return
        rows = self.conn.execute(select(S.incidents).where(I.id.in_(ids)).order_by(I.id)).mappings()
        append_feed(self.conn, [FeedRow("incident", r["id"], r["id"] in self.ran.created,
                                        r["sites"], "", r["severity"], r["rule"], r["techniques"],
                                        "," + r["source_ip"] + "," if r["source_ip"] else "")
                                for r in rows], self.now)
