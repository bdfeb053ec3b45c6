"""Snapshots: the current state of the assets that were active, for the collector.

Changes (:mod:`._changes`) say *that* something happened; a snapshot says what
an asset and its devices look like now: role, vendor, names, the function
codes served, latency, the register map and the polling cycles.  The agent
sends one per active asset every few minutes (``InventoryDelta`` with change
SEEN: the collector keeps the newest attributes and adds no history row unless
the device identification differs), so the collector's per-site inventory has
what ``otsentry-agent inventory`` shows.

Each attribute value is JSON text, bounded: at most :data:`MAX_ROWS` registers,
ranges and cycles per device, the rest counted in ``truncated``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["Snapshot", "snapshots", "MAX_ROWS"]

#: Rows per list attribute of one device (registers, ranges, cycles).
MAX_ROWS: Final = 500


@dataclass(frozen=True)
class Snapshot:
    """One asset (``unit`` None) or one device behind it, as attributes to ship."""

    ip: str
    mac: str | None
    vlan: int | None
    unit: int | None
    ts: int
    attributes: dict[str, str]
    #: FC43/14 objects as the device sent them (object id -> bytes)
    device_id: dict[int, bytes] = field(default_factory=dict)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def snapshots(inv: Any, since_ns: int = 0) -> Iterator[Snapshot]:
    """Snapshots of every asset seen after capture time ``since_ns``, and of its devices."""
    user = inv.user_map.lookup if inv.user_map is not None else None
    cycles: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for c in inv.cycles():
        cycles.setdefault((c["server_id"], c["unit"]), []).append(
            {k: c[k] for k in ("client", "fc", "function", "address", "quantity", "count",
                               "period_s", "jitter_s", "pauses")})
    for a in inv.assets():
        if a.last_ts <= since_ns:
            continue
        d = a.to_dict(user)
        yield Snapshot(a.ip, a.mac, a.vlan, None, a.last_ts, {
            "role": d["role"], "roles": _json(d["roles"]), "units": _json(d["units"]),
            "mac_vendor": d["mac_vendor"] or "", "name": inv.asset_name(a.ip),
            "initial_ttl": "" if d["initial_ttl_guess"] is None else str(d["initial_ttl_guess"]),
            **({"tls": _json(d["tls"])} if d.get("tls") else {})})
        for dev in d["devices"]:
            yield _device(a, dev, a.devices[dev["unit"]], cycles.get((a.id, dev["unit"]), []))


def _device(a: Any, dev: dict[str, Any], device: Any,
            cycles: list[dict[str, Any]]) -> Snapshot:
    registers: list[dict[str, Any]] = []
    ranges: list[dict[str, Any]] = []
    for table, t in dev["tables"].items():
        for r in t["registers"]:
            registers.append({"table": table, **{k: r[k] for k in (
                "address", "ref", "type", "value", "min", "max", "changes") if k in r},
                **({"name": r["name"]} if r.get("name") else {}),
                **({"unit": r["unit"]} if r.get("unit") else {})})
        for r in t["ranges"]:
            ranges.append({"table": table, "kind": r["kind"], "address": r["address"],
                           "quantity": r["quantity"], "ref": r["ref"], "count": r["count"],
                           "clients": sorted(c.split("|", 1)[0] for c in r["clients"])})
    truncated = {k: len(v) - MAX_ROWS for k, v in
                 (("registers", registers), ("ranges", ranges), ("cycles", cycles))
                 if len(v) > MAX_ROWS}
    attrs = {"functions": _json(dev["functions"]), "registers": _json(registers[:MAX_ROWS]),
             "ranges": _json(ranges[:MAX_ROWS]), "cycles": _json(cycles[:MAX_ROWS]),
             "clients": _json(sorted({c.split("|", 1)[0] for c in dev["clients"]}))}
    if dev["latency_ms"]:
        attrs["latency_ms"] = _json(dev["latency_ms"])
    if dev["exceptions"]:
        attrs["exceptions"] = _json(dev["exceptions"])
    if dev["server_id"]:
        attrs["server_id"] = dev["server_id_text"] or dev["server_id"]
    if truncated:
        attrs["truncated"] = _json(truncated)
    return Snapshot(a.ip, a.mac, a.vlan, dev["unit"], device.last_ts, attrs,
                    {k: v.encode("latin-1") for k, v in device.device_id.items()})
