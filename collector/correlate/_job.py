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
#: Most recent findings a rule looks at to decide whether an incident opens.
MAX_CANDIDATES = 1000
F, M, I, H = S.findings.c, S.incident_members.c, S.incidents.c, S.asset_history.c


@dataclass(slots=True)
class Ran:
    """What one run did; ``ran`` is False when another replica held the job."""

    ran: bool
    entries: int = 0
    created: list[int] = field(default_factory=list)
    updated: set[int] = field(default_factory=set)
    cursor: int = 0


def _title(inc, sites: list[str], staged: bool) -> str:  # type: ignore[no-untyped-def]
    """The incident's one-line title, kept current as members join."""
    where = sites[0] if len(sites) == 1 else f"{len(sites)} sites"
    if inc["rule"] == "site-source":
        return (f"reconnaissance then write from {inc['source_ip']} at {where}" if staged
                else inc["title"])
    if inc["rule"] == "cross-site-source":
        return f"{inc['source_ip']} seen at {where}"
    return inc["title"].replace("several sites", where)


def correlate_once(engine: Engine, rules: Rules, *, limit: int = 500) -> Ran:
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
    #
    # Each rule first looks for its open incident (same rule and scope, last member within
    # the window): the finding just joins it, at constant cost.  Only when there is none
    # does the rule look at recent findings (at most MAX_CANDIDATES) to decide whether
    # one opens.

    def finding(self, ref: int, cursor: int, t: int) -> None:
        f = self.conn.execute(select(S.findings).where(F.id == ref)).mappings().first()
        if f is None or f["severity"] < self.rules.min_severity:
            return  # pruned since, or below the bar
        me = [("finding", f["id"], f["site"])]
        site_incident = self._site_source(f, me, cursor, t)
        self._cross_source(f, me, cursor, t)
        if site_incident is not None:
            self._cross_techniques(site_incident, cursor, t)
        self._cross_timing(f, me, cursor, t)

    def _site_source(self, f: dict, me: list, cursor: int, t: int) -> int | None:
        rule, ip = self.rules.site_source, f["source_ip"]
        if not rule.enabled or not ip:
            return None
        scope = f"{f['site']}|{ip}"
        iid = self._open("site-source", scope, t, rule.window_s)
        if iid is not None:
            return self._add(iid, me, t) and iid
        where = and_(F.site == f["site"], F.source_ip == ip)
        since = t - int(rule.window_s * _NS)
        if self._distinct(F.kind, where, since, rule.min_detectors) < rule.min_detectors:
            return None
        rows = self._findings(where, since)
        kinds = {r["kind"] for r in rows}
        iid = self._create("site-source", scope, cursor, f"{ip} tripped {len(kinds)} detectors at "
                           f"{f['site']}", ip, t)
        self._add(iid, [("finding", r["id"], r["site"]) for r in rows], t)
        return iid

    def _cross_source(self, f: dict, me: list, cursor: int, t: int) -> None:
        rule, ip = self.rules.cross_site_source, f["source_ip"]
        if not rule.enabled or not is_routable(ip, self.rules):
            return
        iid = self._open("cross-site-source", ip, t, rule.window_s)
        if iid is not None:
            self._add(iid, me, t)
            return
        since = t - int(rule.window_s * _NS)
        if self._distinct(F.site, F.source_ip == ip, since, rule.min_sites) >= rule.min_sites:
            rows = self._findings(F.source_ip == ip, since)
            iid = self._create("cross-site-source", ip, cursor, f"{ip} seen at several sites", ip, t)
            self._add(iid, [("finding", r["id"], r["site"]) for r in rows], t)

    def _cross_techniques(self, site_incident: int, cursor: int, t: int) -> None:
        rule = self.rules.cross_site_techniques
        seq = self.conn.execute(select(I.techniques).where(I.id == site_incident)).scalar_one()
        if not rule.enabled or len([x for x in seq.split(",") if x]) < rule.min_length:
            return
        since = t - int(rule.window_s * _NS)
        peers = self.conn.execute(select(I.id, I.sites).where(
            I.rule == "site-source", I.techniques == seq, I.last_ns >= since)).all()
        sites = {s for _, marks in peers for s in marks.split(",") if s}
        if len(sites) < rule.min_sites:
            return
        iid = self._open("cross-site-techniques", seq, t, rule.window_s)
        if iid is None:
            iid = self._create("cross-site-techniques", seq, cursor, "the same techniques "
                               f"{' > '.join(x for x in seq.split(',') if x)} at several sites",
                               "", t)
        known = set(self.conn.execute(select(M.ref).where(M.incident == iid)).scalars())
        members = self.conn.execute(select(M.member_kind, M.ref, M.site).where(
            M.incident.in_([i for i, _ in peers]))).all()
        self._add(iid, [tuple(m) for m in members if m.ref not in known], t)

    def _cross_timing(self, f: dict, me: list, cursor: int, t: int) -> None:
        rule = self.rules.cross_site_timing
        if not rule.enabled or f["severity"] < rule.min_severity:
            return
        iid = self._open("cross-site-timing", f["kind"], t, rule.window_s)
        if iid is not None:
            self._add(iid, me, t)
            return
        where = and_(F.kind == f["kind"], F.first_ingest_ns >= t - int(rule.window_s * _NS),
                     F.severity >= int(rule.min_severity))
        sites = self.conn.execute(select(F.site).where(where).distinct()
                                  .limit(rule.min_sites)).scalars().all()
        if len(sites) >= rule.min_sites:
            rows = self.conn.execute(select(F.id, F.site).where(where).order_by(F.id)
                                     .limit(MAX_CANDIDATES)).all()
            iid = self._create("cross-site-timing", f["kind"], cursor, f"{f['kind']} at several "
                               f"sites within {int(rule.window_s)} s", "", t)
            self._add(iid, [("finding", i, s) for i, s in rows], t)

    def device_id(self, asset: int, cursor: int, t: int) -> None:
        rule = self.rules.cross_site_device_id
        if not rule.enabled:
            return
        changes = self.conn.execute(select(H.id, H.site, H.device_id_change).where(
            H.asset == asset, H.ingest_ns == t, H.device_id_change != "")).all()
        for hid, site, p in changes:
            scope = pattern_scope(p)
            iid = self._open("cross-site-device-id", scope, t, rule.window_s)
            if iid is not None:
                self._add(iid, [("asset-change", hid, site)], t)
                continue
            rows = self.conn.execute(select(H.id, H.site).where(
                H.device_id_change == p, H.ingest_ns >= t - int(rule.window_s * _NS))
                .limit(MAX_CANDIDATES)).all()
            if len({s for _, s in rows}) >= rule.min_sites:
                iid = self._create("cross-site-device-id", scope, cursor,
                                   f"the same device identity change at several sites: {p}", "", t)
                self._add(iid, [("asset-change", i, s) for i, s in rows], t)

    # --- incidents ----------------------------------------------------------------------

    def _findings(self, where, since: int) -> list[dict]:  # type: ignore[no-untyped-def]
        return [dict(r) for r in self.conn.execute(
            select(F.id, F.site, F.kind, F.severity, F.first_seen_ns, F.techniques).where(
                where, F.updated_ns >= since, F.severity >= int(self.rules.min_severity))
            .order_by(F.id).limit(MAX_CANDIDATES)).mappings()]

    def _distinct(self, col, where, since: int, enough: int) -> int:  # type: ignore[no-untyped-def]
        """How many distinct values of ``col`` recent findings have, counting up to ``enough``."""
        return len(self.conn.execute(select(col).where(
            where, F.updated_ns >= since, F.severity >= int(self.rules.min_severity))
            .distinct().limit(enough)).all())

    def _open(self, rule: str, scope: str, t: int, window_s: float) -> int | None:
        """The open incident of (rule, scope): its last member is within the window."""
        return self.conn.execute(select(I.id).where(
            I.rule == rule, I.scope == scope, I.last_ns >= t - int(window_s * _NS))
            .order_by(I.id.desc()).limit(1)).scalar_one_or_none()

    def _create(self, rule: str, scope: str, cursor: int, title: str, source_ip: str,
                t: int) -> int:
        key = f"{rule}|{scope}|{cursor}"
        ins = (postgresql.insert if is_postgres(self.conn) else sqlite.insert)(S.incidents)
        iid = self.conn.execute(ins.values(
            key=key, rule=rule, scope=scope, title=title, severity=0, worst=0, sites="",
            site_count=0, source_ip=source_ip, techniques="", member_count=0, first_ns=t,
            last_ns=t, created_ns=self.now, updated_ns=self.now)
            .on_conflict_do_nothing(index_elements=["key"]).returning(I.id)).scalar_one_or_none()
        if iid is None:  # the key exists: this work was done before (cannot happen under the job lock)
            return self.conn.execute(select(I.id).where(I.key == key)).scalar_one()
        self.ran.created.append(iid)
        return iid

    def _add(self, iid: int, members: Sequence[tuple], t: int) -> bool:
        """Add members to an incident and fold them into its sites, techniques and severity."""
        ins = (postgresql.insert if is_postgres(self.conn) else sqlite.insert)(S.incident_members)
        if members:
            self.conn.execute(ins.on_conflict_do_nothing(), [
                {"incident": iid, "member_kind": k, "ref": ref, "site": site, "added_ns": t}
                for k, ref, site in members])
        inc = self.conn.execute(select(S.incidents).where(I.id == iid)).mappings().one()
        refs = [ref for k, ref, _ in members if k == "finding"]
        rows = self.conn.execute(select(F.severity, F.first_seen_ns, F.techniques).where(
            F.id.in_(refs))).all() if refs else []
        sites = sorted({x for x in inc["sites"].split(",") if x} | {m[2] for m in members})
        seq = [x for x in inc["techniques"].split(",") if x]
        seq += [x for x in technique_sequence([(r.first_seen_ns, r.techniques) for r in rows])
                if x not in seq]
        worst = max([inc["worst"], *(r.severity for r in rows)] +
                    ([int(Severity.MEDIUM)] if len(refs) < len(members) else []))
        staged = inc["rule"] == "site-source" and recon_then_write(
            list(enumerate(f",{x}," for x in seq)), self.rules)
        n = self.conn.execute(select(func.count()).where(M.incident == iid)).scalar_one()
        self.conn.execute(update(S.incidents).where(I.id == iid).values(
            sites="," + ",".join(sites) + ",", site_count=len(sites),
            techniques="," + ",".join(seq) + "," if seq else "", member_count=n, worst=worst,
            severity=incident_severity(worst, len(sites), staged, self.rules),
            title=_title(inc, sites, staged), last_ns=t, updated_ns=self.now))
        if iid not in self.ran.created:
            self.ran.updated.add(iid)
        return True

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
