"""The agent's inventory snapshots as the dashboard shows them: register map, ranges, cycles.

Rule: snapshot attributes are JSON text written by agents of any version.
Every reader here takes the attributes as stored and never raises: a missing,
malformed or oddly shaped attribute reads as None ("not reported by the
agent"), and a row missing a field shows "-", so one bad value blanks one
section, never the page.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["TABLES", "asset_view", "device_view", "snapshot_counts"]

#: Register tables in the order the page lists them, with their headings.
TABLES = {"coils": "Coils", "discrete_inputs": "Discrete inputs",
          "holding_registers": "Holding registers", "input_registers": "Input registers"}
#: The table a function code addresses (Modbus Application Protocol V1.1b3 §6).
_FC_TABLE = {1: "coils", 5: "coils", 15: "coils", 2: "discrete_inputs", 4: "input_registers",
             3: "holding_registers", 6: "holding_registers", 16: "holding_registers",
             22: "holding_registers", 23: "holding_registers"}
#: First digit of the 1-based Modicon reference per table (holding register 0 = 400001).
_REF_DIGIT = {"coils": 0, "discrete_inputs": 1, "input_registers": 3, "holding_registers": 4}
#: Attributes only a snapshot carries: a unit without any was not described by its agent.
SNAPSHOT_KEYS = ("registers", "ranges", "cycles", "functions", "latency_ms", "clients")


def _load(attrs: dict[str, Any], key: str, kind: type) -> Any:
    """``attrs[key]`` parsed as JSON of type ``kind``, or None."""
    try:
        value = json.loads(attrs[key])
    except (KeyError, TypeError, ValueError):
        return None
    return value if isinstance(value, kind) else None


def _rows(attrs: dict[str, Any], key: str) -> list[dict[str, Any]] | None:
    rows = _load(attrs, key, list)
    return None if rows is None else [r for r in rows if isinstance(r, dict)]


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _num(v: Any, digits: str = ".6g") -> str:
    if isinstance(v, bool) or v is None:
        return "-" if v is None else str(int(v))
    return format(v, digits) if isinstance(v, float) else str(v)


def _span(table: str | None, address: Any, quantity: Any) -> dict[str, str]:
    """A 0-based address range and the Modicon reference of its first address."""
    first, qty = _int(address), _int(quantity) or 1
    if first is None:
        return {"range": "-", "ref": "-"}
    digit = _REF_DIGIT.get(table or "")
    return {"range": str(first) if qty == 1 else f"{first}–{first + qty - 1}",
            "ref": "-" if digit is None else f"{digit}{first + 1:05d}"}


def _register(r: dict[str, Any]) -> dict[str, Any]:
    return {"address": _num(r.get("address")), "ref": r.get("ref") or "-",
            "type": r.get("type") or "-", "value": _num(r.get("value")),
            "min": _num(r.get("min")), "max": _num(r.get("max")),
            "changes": _num(r.get("changes")), "name": str(r.get("name") or ""),
            "unit": str(r.get("unit") or "")}


def _register_map(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Registers grouped per table: the four Modbus tables first, then any other."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(str(r.get("table") or "unknown"), []).append(_register(r))
    order = [t for t in TABLES if t in groups] + [t for t in groups if t not in TABLES]
    return [{"table": t, "title": TABLES.get(t, t.replace("_", " ").capitalize()),
             "rows": groups[t], "named": any(r["name"] or r["unit"] for r in groups[t])}
            for t in order]


def _range(r: dict[str, Any]) -> dict[str, Any]:
    table = str(r.get("table") or "")
    clients = r.get("clients")
    return {"table": TABLES.get(table, table or "-"), "kind": r.get("kind") or "-",
            **_span(table, r.get("address"), r.get("quantity")),
            "count": _num(r.get("count")),
            "clients": [str(c) for c in clients] if isinstance(clients, list) else []}


def _cycle(c: dict[str, Any]) -> dict[str, Any]:
    fc = _int(c.get("fc"))
    return {"client": c.get("client") or "-",
            "function": f"{'-' if fc is None else fc} {c.get('function') or ''}".strip(),
            **_span(_FC_TABLE.get(fc or -1), c.get("address"), c.get("quantity")),
            "period": _num(c.get("period_s"), ".3f"), "jitter": _num(c.get("jitter_s"), ".3f"),
            "count": _num(c.get("count")), "pauses": _num(c.get("pauses"))}


def _functions(attrs: dict[str, Any]) -> list[dict[str, Any]] | None:
    funcs = _load(attrs, "functions", dict)
    if funcs is None:
        return None
    rows = [{"fc": fc, "name": str(f.get("name") or "-"),
             **{k: _num(f.get(k, 0)) for k in ("ok", "exception", "unanswered")},
             "other": ", ".join(f"{k} {_num(v)}" for k, v in sorted(f.items())
                                if k not in ("name", "ok", "exception", "unanswered"))}
            for fc, f in funcs.items() if isinstance(f, dict)]
    return sorted(rows, key=lambda r: (len(r["fc"]), r["fc"]))


def _latency(attrs: dict[str, Any]) -> dict[str, str] | None:
    lat = _load(attrs, "latency_ms", dict)
    if not lat:
        return None
    return {k: _num(lat.get(k), ".1f") for k in ("median", "p95", "min", "max", "mean")} | {
        "count": _num(lat.get("count"))}


def _truncated(attrs: dict[str, Any]) -> dict[str, int]:
    more = _load(attrs, "truncated", dict) or {}
    return {k: v for k, v in more.items() if _int(v)}


def device_view(attrs: dict[str, Any]) -> dict[str, Any]:
    """One device's (unit's) snapshot for the asset page.

    Args:
        attrs: the unit's attributes as stored (key -> value text).
    Returns:
        ``reported`` (False: the agent sent no snapshot), ``registers`` (per table),
        ``ranges``, ``cycles``, ``functions``, ``clients``, ``exceptions`` (each None when
        not reported), ``latency`` (None without answers), ``server_id`` and
        ``truncated`` ({list: rows left out}).
    """
    registers, ranges, cycles = (_rows(attrs, k) for k in ("registers", "ranges", "cycles"))
    clients = _load(attrs, "clients", list)
    exceptions = _rows(attrs, "exceptions")
    return {"reported": any(k in attrs for k in SNAPSHOT_KEYS),
            "registers": None if registers is None else _register_map(registers),
            "register_count": len(registers or ()),
            "ranges": None if ranges is None else [_range(r) for r in ranges],
            "cycles": None if cycles is None else [_cycle(c) for c in cycles],
            "functions": _functions(attrs), "latency": _latency(attrs),
            "clients": None if clients is None else [str(c) for c in clients],
            "exceptions": None if exceptions is None else [
                ", ".join(f"{k} {_num(v)}" for k, v in sorted(e.items())) for e in exceptions],
            "server_id": str(attrs.get("server_id") or ""), "truncated": _truncated(attrs)}


def _tls(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    """The TLS certificates the asset presented, per port."""
    per_port = _load(attrs, "tls", dict) or {}
    out = []
    for port, cert in sorted(per_port.items()):
        if isinstance(cert, dict):
            names = cert.get("names")
            out.append({"port": port, **{k: str(cert.get(k) or "-") for k in (
                "version", "subject", "issuer", "not_before", "not_after", "sha256")},
                "names": ", ".join(map(str, names)) if isinstance(names, list) else "-",
                "error": str(cert.get("error") or "")})
    return out


def asset_view(attrs: dict[str, Any]) -> dict[str, Any]:
    """The asset-level snapshot facts: name, MAC vendor, roles, units, TTL and TLS."""
    roles, units = _load(attrs, "roles", list), _load(attrs, "units", list)
    return {"name": str(attrs.get("name") or ""), "mac_vendor": str(attrs.get("mac_vendor") or ""),
            "roles": ", ".join(map(str, roles)) if roles else "",
            "units_seen": ", ".join(map(str, units)) if units else "",
            "initial_ttl": str(attrs.get("initial_ttl") or ""), "tls": _tls(attrs)}


def snapshot_counts(units: list[dict[str, Any]]) -> dict[str, int] | None:
    """Registers, ranges and cycles over an asset's units (rows left out included).

    Returns:
        ``{"registers": n, "ranges": n, "cycles": n, "truncated": bool}``, or None when no
        unit carries a snapshot.
    """
    out = {"registers": 0, "ranges": 0, "cycles": 0, "truncated": False}
    reported = False
    for u in units:
        attrs = u["attributes"]
        reported = reported or any(k in attrs for k in SNAPSHOT_KEYS)
        more = _truncated(attrs)
        for key in ("registers", "ranges", "cycles"):
            out[key] += len(_rows(attrs, key) or ()) + more.get(key, 0)
        out["truncated"] = out["truncated"] or bool(more)
    return out if reported else None
