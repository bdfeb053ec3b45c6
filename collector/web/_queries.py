"""What the dashboard pages show, read from the store as plain dicts (one read transaction each).

Rule: the functions here take a SQLAlchemy connection and return plain data;
they never render and never write.  The routes in :mod:`._app` call them
from a worker thread.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, func, select

from otsentry.collector.store import FeedFilter
from otsentry.collector.store import _schema as S
from otsentry.collector.web._snapshot import asset_view, device_view, snapshot_counts
from otsentry.common.finding import Severity
from otsentry.v1 import convert, finding_pb2, inventory_pb2, status_pb2

__all__ = ["Filters", "parse_filters", "when", "finding_summary", "findings_list",
           "finding_detail", "finding_pcap", "agents_overview", "severity_series",
           "technique_counts", "sites", "inventory", "asset_detail", "incident_timeline",
           "marks"]

F, A, H, M = S.findings.c, S.assets.c, S.asset_history.c, S.incident_members.c
_TECHNIQUE = re.compile(r"T\d{4}(\.\d{3})?")
#: Read Device Identification objects (Modbus Application Protocol V1.1b3 §6.21).
DEVICE_ID_NAMES = {0: "VendorName", 1: "ProductCode", 2: "MajorMinorRevision", 3: "VendorUrl",
                   4: "ProductName", 5: "ModelName", 6: "UserApplicationName"}
#: Health from the age of an agent's last delivery (seconds): up to -> label.
HEALTH = ((120, "ok"), (900, "late"))
_CHANGES = {v.number: v.name.removeprefix("CHANGE_KIND_").lower()
            for v in inventory_pb2.ChangeKind.DESCRIPTOR.values}


def when(ns: int) -> str:
    """A time in ns as ``YYYY-MM-DD HH:MM:SSZ`` ("-" for 0)."""
    if not ns:
        return "-"
    return dt.datetime.fromtimestamp(ns / 1e9, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def marks(text: str) -> list[str]:
    """``",a,b,"`` as ``["a", "b"]``."""
    return [x for x in text.split(",") if x]


@dataclass(frozen=True, slots=True)
class Filters:
    """The findings list's filters; empty strings match everything."""

    site: str = ""
    min_severity: str = ""
    technique: str = ""
    kind: str = ""
    asset: str = ""

    def feed_filter(self) -> FeedFilter:
        """The same filter for the feed log (live updates)."""
        return FeedFilter(kinds=("finding",), sites=(self.site,) if self.site else (),
                          min_severity=int(Severity.parse(self.min_severity))
                          if self.min_severity else None,
                          techniques=(self.technique,) if self.technique else (),
                          detectors=(self.kind,) if self.kind else (),
                          assets=(self.asset,) if self.asset else ())

    def query(self) -> str:
        """As URL query parameters (only those set)."""
        from urllib.parse import urlencode

        return urlencode({k: getattr(self, k) for k in self.__slots__ if getattr(self, k)})


def parse_filters(params: Mapping[str, str]) -> Filters:
    """Filters from query parameters.

    Raises:
        ValueError: an unknown severity, a malformed technique id, or a value over 200 characters.
    """
    f = Filters(**{k: params.get(k, "").strip() for k in Filters.__slots__})
    for k in Filters.__slots__:
        if len(getattr(f, k)) > 200 or "," in getattr(f, k):
            raise ValueError(f"filter {k}: at most 200 characters and no commas")
    if f.min_severity:
        Severity.parse(f.min_severity)
    if f.technique and not _TECHNIQUE.fullmatch(f.technique):
        raise ValueError(f"technique {f.technique!r}: expected an ATT&CK for ICS id like T0855")
    return f


def finding_summary(r: Mapping[str, Any]) -> dict[str, Any]:
    """A findings row (or a feed entry's body) as the list shows it."""
    return {"id": r["id"], "site": r["site"], "agent": r["agent_id"], "kind": r["kind"],
            "severity": str(Severity(r["severity"])), "count": r["count"],
            "techniques": marks(r["techniques"]), "assets": marks(r["assets"]),
            "source_ip": r["source_ip"], "summary": r["summary"],
            "first_seen": when(r["first_seen_ns"]), "last_seen": when(r["last_seen_ns"]),
            "updated": when(r["updated_ns"])}


def findings_list(conn: Connection, f: Filters, limit: int = 200) -> list[dict[str, Any]]:
    """Findings matching ``f``, most recently changed first."""
    conds = []
    if f.site:
        conds.append(F.site == f.site)
    if f.min_severity:
        conds.append(F.severity >= int(Severity.parse(f.min_severity)))
    if f.technique:
        conds.append(F.techniques.like(f"%,{f.technique},%"))
    if f.kind:
        conds.append(F.kind == f.kind)
    if f.asset:
        conds.append(F.assets.like(f"%,{f.asset},%"))
    q = select(S.findings).where(and_(*conds)).order_by(F.updated_ns.desc(), F.id.desc())
    return [finding_summary(r) for r in conn.execute(q.limit(limit)).mappings()]


def _evidence(ev: Any) -> dict[str, Any]:
    flow = ev.flow
    return {"flow": (f"{flow.client_ip}:{flow.client_port} → {flow.server_ip}:{flow.server_port}"
                     + (f" VLAN {flow.vlan}" if flow.vlan is not None else "")) if flow else "",
            "unit": ev.unit, "function_code": ev.function_code,
            "addresses": list(ev.addresses), "values": list(ev.values),
            "frames": list(ev.frames), "offsets": list(ev.offsets),
            "pcap_bytes": len(ev.pcap), "details": list(ev.details)}


def finding_detail(conn: Connection, rid: int) -> dict[str, Any] | None:
    """One finding with its evidence, assets and incidents, or None."""
    row = conn.execute(select(S.findings).where(F.id == rid)).mappings().first()
    if row is None:
        return None
    model = convert.finding_from_proto(convert.parse(finding_pb2.Finding, row["body"]))
    out = finding_summary(row)
    out.update(finding_id=row["finding_id"], revision=model.revision,
               evidence=_evidence(model.evidence), ingested=when(row["first_ingest_ns"]),
               asset_refs=[{"ip": a.ip, "mac": a.mac, "vlan": a.vlan, "name": a.name,
                            "role": a.role} for a in model.assets],
               incidents=[dict(r) for r in conn.execute(
                   select(S.incidents.c.id, S.incidents.c.title).join(
                       S.incident_members, and_(M.incident == S.incidents.c.id,
                                                M.member_kind == "finding"))
                   .where(M.ref == rid)).mappings()])
    return out


def finding_pcap(conn: Connection, rid: int) -> tuple[str, bytes] | None:
    """(download file name, pcap slice) of a finding, None when it has none."""
    row = conn.execute(select(F.finding_id, F.body).where(F.id == rid)).first()
    if row is None:
        return None
    pcap = convert.parse(finding_pb2.Finding, row.body).evidence.pcap
    return (f"finding-{row.finding_id}.pcap", pcap) if pcap else None


def _drops(status: status_pb2.AgentStatus) -> int:
    return sum(c.kernel_drops + c.interface_drops + c.libpcap_drops for c in status.capture)


def agents_overview(conn: Connection, now_ns: int) -> list[dict[str, Any]]:
    """Every agent with health, last seen, capture drops and outbox depth, by site."""
    out = []
    for r in conn.execute(select(S.agents).order_by(S.agents.c.site, S.agents.c.name)).mappings():
        st = convert.parse(status_pb2.AgentStatus, r["status"]) if r["status"] else None
        age = (now_ns - r["last_ingest_ns"]) / 1e9
        out.append({"site": r["site"], "name": r["name"], "version": r["version"],
                    "mode": (st.mode if st else "") or r["mode"] or "-",
                    "health": next((label for limit, label in HEALTH if age <= limit), "silent"),
                    "last_seen": when(r["last_ingest_ns"]), "age_s": int(age),
                    "capture_drops": _drops(st) if st else None,
                    "outbox_depth": st.outbox_depth if st else None,
                    "outbox_dropped": st.outbox_dropped if st else None})
    return out


def severity_series(conn: Connection, buckets: int = 24,
                    span_ns: int = 86_400 * 10**9) -> dict[str, Any]:
    """Findings per capture-time bucket and severity, over the newest ``span_ns`` of data.

    Returns:
        ``{"start": ns, "width": ns, "counts": [[n per severity 0..4] per bucket]}``;
        ``counts`` is empty when there are no findings.
    """
    hi, lo = conn.execute(select(func.max(F.first_seen_ns), func.min(F.first_seen_ns))).one()
    if hi is None:
        return {"start": 0, "width": 0, "counts": []}
    lo = max(lo, hi - span_ns)
    width = max(1, (hi - lo) // buckets + 1)
    counts = [[0] * len(Severity) for _ in range(buckets)]
    b = ((F.first_seen_ns - lo) // width).label("b")
    for i, sev, n in conn.execute(select(b, F.severity, func.count()).where(
            F.first_seen_ns >= lo).group_by(b, F.severity)):
        counts[min(int(i), buckets - 1)][sev] += n
    return {"start": lo, "width": width, "counts": counts}


def technique_counts(conn: Connection) -> Counter[str]:
    """Findings per ATT&CK technique."""
    out: Counter[str] = Counter()
    for techniques, n in conn.execute(select(F.techniques, func.count()).group_by(F.techniques)):
        for t in marks(techniques):
            out[t] += n
    return out


def sites(conn: Connection) -> list[dict[str, Any]]:
    """Sites with their numbers of agents, assets and findings."""
    per = {name: {"name": name, "agents": 0, "assets": 0, "findings": 0}
           for (name,) in conn.execute(select(S.sites.c.name).order_by(S.sites.c.name))}
    for table, key in ((S.agents, "agents"), (S.assets, "assets"), (S.findings, "findings")):
        for site, n in conn.execute(select(table.c.site, func.count()).group_by(table.c.site)):
            per.setdefault(site, {"name": site, "agents": 0, "assets": 0, "findings": 0})[key] = n
    return list(per.values())


def _text(hexvalue: Any) -> str:
    try:
        raw = bytes.fromhex(hexvalue)
    except (TypeError, ValueError):
        return str(hexvalue)
    text = raw.decode("latin-1")
    return text if text.isprintable() else raw.hex(" ")


def _stamped(text: str) -> dict[str, Any]:
    """A stored ``{key: [value, capture_ns]}`` column as ``{key: value}`` ({} when malformed)."""
    try:
        pairs = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(pairs, dict):
        return {}
    return {k: v[0] for k, v in pairs.items() if isinstance(v, list) and v}


def _asset_row(r: Mapping[str, Any]) -> dict[str, Any]:
    dev = {int(k): _text(v) for k, v in _stamped(r["device_id"]).items() if k.isdigit()}
    return {"id": r["id"], "ip": r["ip"], "mac": r["mac"],
            "vlan": None if r["vlan"] == S.NONE else r["vlan"],
            "unit": None if r["unit"] == S.NONE else r["unit"],
            "attributes": _stamped(r["attributes"]),
            "device_id": {DEVICE_ID_NAMES.get(k, f"object {k}"): v for k, v in sorted(dev.items())},
            "first_seen": when(r["first_seen_ns"]), "last_seen": when(r["last_seen_ns"]),
            "removed": r["removed_ns"] > r["last_seen_ns"]}


def _describe(asset: dict[str, Any], units: list[dict[str, Any]]) -> dict[str, Any]:
    """Role, name, vendor, product, firmware and snapshot counts from the asset and its units."""
    every = [asset, *units]

    def first(*keys: str) -> str:
        for part in every:
            for k in keys:
                v = part["device_id"].get(k) or part["attributes"].get(k.lower())
                if v:
                    return str(v)
        return ""

    return {"role": asset["attributes"].get("role", ""),
            "name": str(asset["attributes"].get("name") or ""),
            "mac_vendor": str(asset["attributes"].get("mac_vendor") or ""),
            "vendor": first("VendorName", "vendor"), "product": first("ProductName", "ProductCode",
                                                                      "product"),
            "firmware": first("MajorMinorRevision", "firmware"),
            "counts": snapshot_counts(units)}


def _group(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One asset from its rows (the asset's own, unit None, and its units')."""
    own = next((p for p in rows if p["unit"] is None), rows[0])
    units = [p for p in rows if p["unit"] is not None]
    return {**own, **_describe(own, units), "units": units}


def inventory(conn: Connection, site: str, history_limit: int = 300) -> dict[str, Any]:
    """The assets of ``site`` with their units and description, and its change history."""
    rows = [_asset_row(r) for r in conn.execute(
        select(S.assets).where(A.site == site).order_by(A.ip, A.mac, A.vlan, A.unit)).mappings()]
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["ip"], r["mac"], r["vlan"])].append(r)
    assets = [_group(part) for part in groups.values()]
    history = [{"when": when(h["ingest_ns"]), "captured": when(h["capture_ns"]), "ip": h["ip"],
                "unit": None if h["unit"] == S.NONE else h["unit"], "agent": h["agent_id"],
                "change": _CHANGES.get(h["change"], str(h["change"])),
                "attributes": json.loads(h["attributes"]),
                "device_id_change": h["device_id_change"]}
               for h in conn.execute(
                   select(S.asset_history, A.ip, A.unit).join(S.assets, A.id == H.asset)
                   .where(H.site == site).order_by(H.id.desc()).limit(history_limit)).mappings()]
    return {"site": site, "assets": assets, "history": history}


def asset_detail(conn: Connection, site: str, aid: int) -> dict[str, Any] | None:
    """One asset of ``site`` (by any of its rows' ids) with its units' snapshots, or None.

    Returns:
        the inventory's asset dict plus ``facts`` (:func:`._snapshot.asset_view`) and,
        per unit, ``snapshot`` (:func:`._snapshot.device_view`).
    """
    key = conn.execute(select(A.ip, A.mac, A.vlan).where(A.site == site, A.id == aid)).first()
    if key is None:
        return None
    rows = [_asset_row(r) for r in conn.execute(select(S.assets).where(
        A.site == site, A.ip == key.ip, A.mac == key.mac, A.vlan == key.vlan)
        .order_by(A.unit)).mappings()]
    asset = _group(rows)
    for u in asset["units"]:
        u["snapshot"] = device_view(u["attributes"])
    return {**asset, "site": site, "facts": asset_view(asset["attributes"])}


def incident_timeline(conn: Connection, iid: int) -> list[dict[str, Any]]:
    """The members of an incident in capture-time order: findings and device-identity changes."""
    rows = [(r["first_seen_ns"], {"kind": "finding", "ref": r["id"], "site": r["site"],
                                  "severity": str(Severity(r["severity"])),
                                  "what": f"{r['kind']}: {r['summary']}"})
            for r in conn.execute(select(S.findings).join(S.incident_members, and_(
                M.member_kind == "finding", M.ref == F.id)).where(M.incident == iid)).mappings()]
    rows += [(r["capture_ns"], {"kind": "asset-change", "ref": r["asset"], "site": r["site"],
                                "severity": "", "what": "device identity changed: "
                                + r["device_id_change"]})
             for r in conn.execute(select(S.asset_history).join(S.incident_members, and_(
                 M.member_kind == "asset-change", M.ref == H.id)).where(M.incident == iid))
             .mappings()]
    return [{"when": when(ns), **item} for ns, item in sorted(rows, key=lambda x: x[0])]
