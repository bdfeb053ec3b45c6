"""Findings for people (a table) and for machines (JSON lines)."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterable
from typing import Any, TextIO

from otsentry.common.finding import Finding

__all__ = ["finding_dict", "write_json_lines", "write_table", "write_pcaps"]


def _iso(ns: int) -> str:
    t = dt.datetime.fromtimestamp(ns / 1e9, dt.timezone.utc)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def finding_dict(f: Finding, pcap_file: str = "") -> dict[str, Any]:
    """A JSON-ready dict of one finding (the pcap slice as its size and, if written, its file)."""
    ev = f.evidence
    flow = ev.flow
    return {
        "id": f.id, "revision": f.revision, "kind": f.kind, "severity": str(f.severity),
        "techniques": list(f.techniques), "count": f.count,
        "first_seen": _iso(f.first_seen_ns), "last_seen": _iso(f.last_seen_ns),
        "first_seen_ns": f.first_seen_ns, "last_seen_ns": f.last_seen_ns,
        "summary": f.summary,
        "assets": [{"ip": a.ip, "mac": a.mac, "vlan": a.vlan, "name": a.name, "role": a.role}
                   for a in f.assets],
        "evidence": {
            "flow": None if flow is None else {
                "client": f"{flow.client_ip}:{flow.client_port}",
                "server": f"{flow.server_ip}:{flow.server_port}", "vlan": flow.vlan},
            "unit": ev.unit, "function_code": ev.function_code, "addresses": list(ev.addresses),
            "values": list(ev.values), "frames": list(ev.frames), "offsets": list(ev.offsets),
            "details": dict(ev.details), "pcap_bytes": len(ev.pcap), "pcap_file": pcap_file,
        },
        "agent_time": _iso(f.times.agent_ns),
    }


def write_pcaps(findings: Iterable[Finding], directory: str) -> dict[str, str]:
    """Write each finding's pcap slice to ``directory/<id>.pcap``; return id -> path."""
    os.makedirs(directory, exist_ok=True)
    out = {}
    for f in findings:
        if f.evidence.pcap:
            path = os.path.join(directory, f"{f.kind}-{f.id[:12]}.pcap")
            with open(path, "wb") as fh:
                fh.write(f.evidence.pcap)
            out[f.id] = path
    return out


def write_json_lines(findings: Iterable[Finding], out: TextIO, pcaps: dict[str, str]) -> None:
    """One JSON object per finding."""
    for f in findings:
        out.write(json.dumps(finding_dict(f, pcaps.get(f.id, "")), separators=(",", ":")) + "\n")


def write_table(findings: list[Finding], out: TextIO) -> None:
    """A table for a shift operator: severity, detector, count, first seen, what happened."""
    if not findings:
        out.write("no findings\n")
        return
    out.write(f"{'severity':<9} {'first seen (UTC)':<24} {'count':>6}  {'detector':<33} what happened\n")
    for f in findings:
        out.write(f"{f.severity!s:<9} {_iso(f.first_seen_ns):<24} {f.count:>6}  {f.kind:<33} "
                  f"{f.summary}\n")
    by_sev: dict[str, int] = {}
    for f in findings:
        by_sev[str(f.severity)] = by_sev.get(str(f.severity), 0) + 1
    out.write("\n" + ", ".join(f"{n} {s}" for s, n in by_sev.items()) + "\n")
