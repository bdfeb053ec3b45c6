"""``otsentry-agent inventory``: what is on the Modbus network, from captures or live traffic."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

from otsentry.agent.decode import add_capture_arguments, capture_options, run_pipeline

SUMMARY = "list the devices on the Modbus network: roles, vendors, units, registers, polling"

HELP = """\
Reads one or more captures (pcap, pcapng, optionally gzip-compressed; '-'
for stdin; iface:NAME for a live mirror port) and prints what is on the
Modbus network:

  assets    one line per network address (IP, MAC, VLAN): its role (client =
            master/HMI/SCADA, server = slave/PLC, gateway = a server with
            several unit ids behind it, both), the maker of its network card,
            the product it reports (Modbus device identification), its units
  devices   one line per unit id a server answers: functions used, errors,
            response time, clients
  cycles    one line per regular poll (client, server, unit, function, range):
            how often it repeats and how steady it is

Nothing is sent on the network.  Times are capture times, in UTC.

Register addresses are shown 0-based, as sent on the wire, with the 1-based
Modicon reference beside them (holding register 0 = 400001, input register 9 =
300010, coil 0 = 000001, discrete input 0 = 100001).

With --state DIR the inventory is kept in DIR/inventory.sqlite: what was
learned before is loaded first, new traffic is merged in, and the result is
saved again.  Reading captures one after another with --state gives the same
inventory as reading them all in one run.

examples:
  otsentry-agent inventory plant.pcap
  otsentry-agent inventory monday.pcap tuesday.pcap --state /var/lib/otsentry
  otsentry-agent inventory plant.pcap --export csv -o assets.csv   # for a spreadsheet
  otsentry-agent inventory plant.pcap --json > inventory.json      # everything, registers too
  otsentry-agent inventory plant.pcap --registers --user-map tags.toml
  otsentry-agent inventory iface:eth1 --duration 600 --state /var/lib/otsentry
"""

_CSV_FIELDS = (
    "ip", "mac", "mac_vendor", "vlan", "role", "unit", "vendor_name", "product_code",
    "revision", "product_name", "model_name", "user_application_name", "vendor_url",
    "server_id", "run_indicator", "functions", "exceptions", "clients", "servers",
    "median_latency_ms", "ttl", "first_seen_utc", "last_seen_utc",
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``inventory``."""
    p.description = HELP
    p.add_argument("sources", metavar="SOURCE", nargs="+",
                   help="capture file (pcap/pcapng, .gz accepted), '-' for stdin, or "
                        "iface:NAME for live capture; several are read one after another")
    p.add_argument("--state", metavar="DIR", type=Path,
                   help="keep the inventory in DIR (loaded first, saved at the end)")
    p.add_argument("--json", action="store_true", help="print the full inventory as JSON")
    p.add_argument("--export", choices=("csv",),
                   help="print the asset register as CSV (one row per device), for spreadsheets")
    p.add_argument("-o", "--output", metavar="FILE", type=Path,
                   help="write the output to FILE instead of stdout")
    p.add_argument("--registers", action="store_true",
                   help="also print the register map of every device")
    p.add_argument("--user-map", metavar="FILE", type=Path,
                   help="TOML file naming registers (names, types, units, scaling); "
                        "see docs/inventory.md")
    add_capture_arguments(p)


def run(args: argparse.Namespace) -> int:
    """Run ``inventory``; returns the exit code (3 when a capture was damaged)."""
    from otsentry.agent.cli import EXIT_OK, EXIT_PARTIAL
    from otsentry.agent.inventory import Inventory
    from otsentry.common.logging import get_logger

    inv = Inventory(state_dir=args.state, user_map=args.user_map)
    config, kwargs = capture_options(args)
    damaged = False
    changes: Counter[str] = Counter()
    for source in args.sources:
        _pipe, error = run_pipeline(source, [inv], config, **kwargs)
        changes.update(c.kind for c in inv.drain_changes())
        if error is not None:
            damaged = True
            print(f"otsentry-agent inventory: warning: {error}; everything before it was read",
                  file=sys.stderr)
    if args.state is not None:
        path = inv.save()
        get_logger("inventory").info("inventory.saved", path=str(path),
                                     assets=len(inv.assets()))
    out = open(args.output, "w", encoding="utf-8", newline="") if args.output else sys.stdout  # noqa: SIM115
    try:
        if args.json:
            json.dump(inv.to_dict(), out, indent=2)
            out.write("\n")
        elif args.export == "csv":
            write_csv(inv.to_dict(), out)
        else:
            print_tables(inv.to_dict(), out, registers=args.registers, changes=changes)
    finally:
        if out is not sys.stdout:
            out.close()
    sys.stdout.flush()
    return EXIT_PARTIAL if damaged else EXIT_OK


# --- rendering --------------------------------------------------------------------------------


def _time(ns: int | None, date: bool = True) -> str:
    if not ns:
        return "-"
    t = dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC)
    return t.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S")


def _product(devices: list[dict[str, Any]]) -> str:
    """Vendor, product code and revision from the first device that reported them."""
    for d in devices:
        ident = d["device_id"]
        parts = [ident.get(k) for k in ("VendorName", "ProductCode", "MajorMinorRevision")]
        text = " ".join(p for p in parts if p)
        if text:
            return text
        if d["server_id_text"]:
            return f"server id {d['server_id_text']!r}"
    return "-"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


def _table(out: TextIO, header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    cells = [header, *[tuple("-" if c is None else str(c) for c in r) for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    out.writelines("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n" for r in cells)


def print_tables(d: dict[str, Any], out: TextIO, registers: bool = False,
                 changes: Counter[str] | None = None) -> None:
    """The readable report: assets, devices, polling cycles (and register maps)."""
    assets = d["assets"]
    roles = Counter(a["role"] for a in assets)
    out.write(f"ASSETS: {len(assets)} ("
              + ", ".join(f"{n} {r}" for r, n in sorted(roles.items())) + ")\n")
    _table(out, ("IP", "MAC", "MAC VENDOR", "VLAN", "ROLE", "UNITS", "PRODUCT", "TTL",
                 "FIRST SEEN (UTC)", "LAST SEEN"),
           [(a["ip"], a["mac"], _cut(a["mac_vendor"] or "-", 28), a["vlan"], a["role"],
             ",".join(map(str, a["units"])) or "-", _cut(_product(a["devices"]), 40),
             ",".join(a["ttl"]) or "-", _time(a["first_seen"]), _time(a["last_seen"], False))
            for a in assets])
    devices = [(a, dv) for a in assets for dv in a["devices"]]
    out.write(f"\nDEVICES: {len(devices)}\n")
    _table(out, ("SERVER", "UNIT", "FUNCTIONS ok/exception/unanswered", "EXCEPTIONS",
                 "LATENCY median/p95 ms", "CLIENTS"),
           [(a["ip"], dv["unit"], _functions(dv["functions"]), _exceptions(dv["exceptions"]),
             _latency(dv["latency_ms"]), len(dv["clients"])) for a, dv in devices])
    idents = [(a, dv) for a, dv in devices if dv["device_id"] or dv["server_id"]]
    if idents:
        out.write("\nDEVICE IDENTIFICATION\n")
        for a, dv in idents:
            items = [f"{k}={v!r}" for k, v in dv["device_id"].items()]
            if dv["server_id"]:
                items.append(f"server_id={dv['server_id_text'] or dv['server_id']!r} "
                             f"run={dv['run_indicator']}")
            out.write(f"  {a['ip']} unit {dv['unit']}: {' '.join(items)}\n")
    cycles = d["cycles"]
    out.write(f"\nPOLLING CYCLES: {len(cycles)}\n")
    _table(out, ("CLIENT", "SERVER", "UNIT", "FUNCTION", "RANGE", "COUNT", "PERIOD s",
                 "JITTER s"),
           [(c["client"], c["server"], c["unit"], f"{c['fc']} {c['function']}", _range(c),
             c["count"], _num(c["period_s"]), _num(c["jitter_s"])) for c in cycles])
    if registers:
        _print_registers(devices, out)
    if changes:
        out.write("\nCHANGES: " + ", ".join(f"{k} {n}" for k, n in sorted(changes.items())) + "\n")
    if d["dropped"]:
        out.write(f"\nNOT TRACKED (limits reached): {d['dropped']}\n")


def _functions(funcs: dict[str, dict[str, Any]]) -> str:
    parts = []
    for fc, f in funcs.items():
        counts = "/".join(str(f.get(k, 0)) for k in ("ok", "exception", "unanswered"))
        parts.append(f"{fc}:{counts}")
    if len(parts) > 8:
        return " ".join(parts[:8]) + f" (+{len(parts) - 8} more)"
    return " ".join(parts) or "-"


def _exceptions(excs: list[dict[str, Any]]) -> str:
    by_code = Counter()
    for e in excs:
        by_code[e["code"]] += e["count"]
    return " ".join(f"{code}x{n}" for code, n in sorted(by_code.items())) or "-"


def _latency(lat: dict[str, Any] | None) -> str:
    return "-" if not lat else f"{lat['median']:.1f}/{lat['p95']:.1f}"


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


_REF_TABLE = {1: "coils", 2: "discrete_inputs", 3: "holding_registers", 4: "input_registers",
              5: "coils", 6: "holding_registers", 15: "coils", 16: "holding_registers",
              22: "holding_registers", 23: "holding_registers"}


def _range(c: dict[str, Any]) -> str:
    from otsentry.agent.inventory import modicon_ref

    if c["address"] is None:
        return "-"
    first, qty = c["address"], c["quantity"] or 1
    text = f"{first}" if qty == 1 else f"{first}-{first + qty - 1}"
    table = _REF_TABLE.get(c["fc"])
    if table:
        text += f" ({modicon_ref(table, first)})"
    return text


def _print_registers(devices: list[tuple[dict, dict]], out: TextIO) -> None:
    for a, dv in devices:
        for name, t in dv["tables"].items():
            if not t["registers"]:
                continue
            out.write(f"\nREGISTERS {a['ip']} unit {dv['unit']} {name}\n")
            _table(out, ("ADDRESS", "REF", "TYPE", "NAME", "VALUE", "MIN", "MAX", "CHANGES",
                         "LAST SEEN"),
                   [(r["address"], r["ref"], _type(r), r.get("name"), _value(r),
                     _value(r, "min"), _value(r, "max"), r["changes"], _time(r["last_seen"]))
                    for r in t["registers"]])


def _type(r: dict[str, Any]) -> str:
    kind = r["type"] + (f" {r['word_order']}" if r.get("word_order") else "")
    return kind + (" (user)" if r["source"] == "user" else "")


def _value(r: dict[str, Any], key: str = "value") -> str:
    v = r.get("scaled") if key == "value" and "scaled" in r else r.get(key)
    if v is None:
        return "-"
    text = f"{v:.6g}" if isinstance(v, float) else str(v)
    return text + (f" {r['eng_unit']}" if key == "value" and r.get("eng_unit") else "")


def csv_rows(d: dict[str, Any]) -> list[dict[str, Any]]:
    """The asset register: one row per device, or per asset when it serves no unit."""
    rows = []
    for a in d["assets"]:
        base = {"ip": a["ip"], "mac": a["mac"] or "", "mac_vendor": a["mac_vendor"] or "",
                "vlan": "" if a["vlan"] is None else a["vlan"], "role": a["role"],
                "ttl": " ".join(a["ttl"]),
                "clients": " ".join(p["ip"] for p in a["clients"]),
                "servers": " ".join(p["ip"] for p in a["servers"])}
        if not a["devices"]:
            rows.append({**base, "first_seen_utc": _time(a["first_seen"]),
                         "last_seen_utc": _time(a["last_seen"])})
        for dv in a["devices"]:
            ident = dv["device_id"]
            lat = dv["latency_ms"]
            rows.append({**base, "unit": dv["unit"],
                         "vendor_name": ident.get("VendorName", ""),
                         "product_code": ident.get("ProductCode", ""),
                         "revision": ident.get("MajorMinorRevision", ""),
                         "product_name": ident.get("ProductName", ""),
                         "model_name": ident.get("ModelName", ""),
                         "user_application_name": ident.get("UserApplicationName", ""),
                         "vendor_url": ident.get("VendorUrl", ""),
                         "server_id": dv["server_id_text"] or dv["server_id"] or "",
                         "run_indicator": "" if dv["run_indicator"] is None else
                         ("on" if dv["run_indicator"] else "off"),
                         "functions": " ".join(fc for fc, f in dv["functions"].items()
                                               if f.get("ok")),
                         "exceptions": _exceptions(dv["exceptions"]).replace("-", ""),
                         "median_latency_ms": "" if not lat else lat["median"],
                         "first_seen_utc": _time(dv["first_seen"]),
                         "last_seen_utc": _time(dv["last_seen"])})
    return rows


def write_csv(d: dict[str, Any], out: TextIO) -> None:
    """Write :func:`csv_rows` with a header line."""
    w = csv.DictWriter(out, fieldnames=_CSV_FIELDS, restval="", lineterminator="\n")
    w.writeheader()
    w.writerows(csv_rows(d))
