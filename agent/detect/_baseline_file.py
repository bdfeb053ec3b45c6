"""The baseline as a JSON file people can read and edit.

    {
      "format": "otsentry-baseline", "version": 1,
      "learned": {"first_seen": "2024-05-01T08:00:00Z", "last_seen": "...", "transactions": 5230},
      "pairs": [{"client": "10.0.0.10", "server": "10.0.0.20", "unit": 1, "function": 3,
                 "name": "read_holding_registers", "ranges": [[0, 9], [100, 109]], "requests": 600}],
      "rates": [{"client": "10.0.0.10", "server": "10.0.0.20", "peak_per_s": 12}],
      "cycles": [{"client": ..., "server": ..., "unit": 1, "function": 3, "first": 0, "last": 9,
                  "period_s": 1.0, "jitter_s": 0.02, "count": 600}],
      "latency": [{"server": ..., "unit": 1, "function": 3, "median_ms": 2.1, "p95_ms": 4.0,
                   "count": 256}],
      "registers": [{"server": ..., "unit": 1, "table": "holding_registers", "address": 10,
                     "min": 0, "max": 500, "max_step": 25, "max_rate_per_s": 10.0, "count": 60}]
    }

To allow a write, add a pair with the write's function and range (or add the
range to an existing one); to widen a value's range, edit its register's
``min``/``max``.  ``name`` is informative and ignored when read.  Addresses are
0-based protocol addresses.  Unknown keys are refused, so a typo is an error
rather than a silent no-op; every error names the file and the key.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from typing import Any, Callable, Final

from otsentry.agent.detect._baseline import Baseline, Cycle, Envelope, add_range
from otsentry.agent.detect._confparse import Parser, line_of
from otsentry.agent.modbus import spec
from otsentry.common.errors import ConfigError

__all__ = ["FORMAT", "VERSION", "dump_baseline", "load_baseline", "baseline_from_dict"]

FORMAT: Final = "otsentry-baseline"
VERSION: Final = 1
_TABLES: Final = ("coils", "discrete_inputs", "holding_registers", "input_registers")


def _iso(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.timezone.utc).isoformat().replace("+00:00", "Z")


def dump_baseline(b: Baseline) -> str:
    """The baseline as indented JSON text, one record per line, sorted."""
    doc = {
        "format": FORMAT, "version": VERSION,
        "learned": {"first_seen": _iso(b.first_ns), "last_seen": _iso(b.last_ns),
                    "transactions": b.transactions},
        "pairs": [{"client": c, "server": s, "unit": u, "function": f,
                   "name": spec.function_name(f), "ranges": b.pairs[(c, s, u, f)],
                   "requests": b.counts.get((c, s, u, f), 0)} for c, s, u, f in sorted(b.pairs)],
        "rates": [{"client": c, "server": s, "peak_per_s": r} for (c, s), r in sorted(b.rates.items())],
        "cycles": [{"client": c, "server": s, "unit": u, "function": f, "first": lo, "last": hi,
                    "period_s": round(cy.period_ns / 1e9, 6), "jitter_s": round(cy.jitter_ns / 1e9, 6),
                    "count": cy.count} for (c, s, u, f, lo, hi), cy in sorted(b.cycles.items())],
        "latency": [{"server": s, "unit": u, "function": f, "median_ms": round(m / 1e6, 3),
                     "p95_ms": round(p / 1e6, 3), "count": n}
                    for (s, u, f), (m, p, n) in sorted(b.latency.items())],
        "registers": [{"server": s, "unit": u, "table": t, "address": a, "min": e.min, "max": e.max,
                       "max_step": e.max_step, "max_rate_per_s": round(e.max_rate, 3),
                       "count": e.count} for (s, u, t, a), e in sorted(b.registers.items())],
    }
    lines = ["{"]
    for i, (key, value) in enumerate(doc.items()):
        end = "," if i < len(doc) - 1 else ""
        if isinstance(value, list):
            rows = ",\n".join(f"    {json.dumps(v)}" for v in value)
            lines.append(f'  "{key}": [\n{rows}\n  ]{end}' if value else f'  "{key}": []{end}')
        else:
            lines.append(f'  "{key}": {json.dumps(value)}{end}')
    return "\n".join(lines) + "\n}\n"


def load_baseline(path: str) -> Baseline:
    """Read a baseline file.

    Raises:
        ConfigError: unreadable, not JSON, another format or version, or a bad value.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, "", f"a readable baseline file ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(path, "", f"JSON ({exc.msg})", exc.lineno) from None
    return baseline_from_dict(data, path, text)


class _Reader(Parser):
    """Typed fields of baseline records."""

    def ip(self, v: Any, key: str) -> str:
        try:
            return str(ipaddress.ip_address(v)) if isinstance(v, str) else self.fail(key, "")
        except ValueError:
            self.fail(key, 'an IP address such as "10.0.0.5"')

    def num(self, v: Any, key: str, lo: float, hi: float, integer: bool = True) -> Any:
        ok = type(v) is int or (not integer and type(v) is float)
        if not ok or not lo <= v <= hi:
            self.fail(key, f"{'an integer' if integer else 'a number'} from {lo:g} to {hi:g}")
        return v

    def ranges(self, v: Any, key: str) -> list[list[int]]:
        if not isinstance(v, list):
            self.fail(key, "a list of [first, last] address pairs")
        out: list[list[int]] = []
        for r in v:
            if (not isinstance(r, list) or len(r) != 2 or not all(type(x) is int for x in r)
                    or not 0 <= r[0] <= r[1] <= 0xFFFF):
                self.fail(key, "a list of [first, last] address pairs, 0 <= first <= last <= 65535")
            add_range(out, r[0], r[1])
        return out

    def time(self, v: Any, key: str) -> int:
        try:
            t = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
            return int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1000
        except (AttributeError, ValueError):
            self.fail(key, 'an ISO 8601 time such as "2024-05-01T08:00:00Z"')


_BIG = 2.0 ** 63
#: record kind -> field -> reader(parser, value, key)
_U = lambda p, v, k: p.num(v, k, 0, 255)  # noqa: E731
_FC = lambda p, v, k: p.num(v, k, 1, 127)  # noqa: E731
_ADDR = lambda p, v, k: p.num(v, k, 0, 0xFFFF)  # noqa: E731
_N = lambda p, v, k: p.num(v, k, 0, _BIG)  # noqa: E731
_F = lambda p, v, k: p.num(v, k, 0, _BIG, integer=False)  # noqa: E731
_IP = _Reader.ip
FIELDS: Final[dict[str, dict[str, Callable[..., Any]]]] = {
    "pairs": {"client": _IP, "server": _IP, "unit": _U, "function": _FC, "ranges": _Reader.ranges,
              "requests": _N, "name": lambda p, v, k: v},
    "rates": {"client": _IP, "server": _IP, "peak_per_s": _N},
    "cycles": {"client": _IP, "server": _IP, "unit": _U, "function": _FC, "first": _ADDR,
               "last": _ADDR, "period_s": _F, "jitter_s": _F, "count": _N},
    "latency": {"server": _IP, "unit": _U, "function": _FC, "median_ms": _F, "p95_ms": _F,
                "count": _N},
    "registers": {"server": _IP, "unit": _U, "table": lambda p, v, k: v if v in _TABLES else
                  p.fail(k, "one of " + ", ".join(_TABLES)), "address": _ADDR,
                  "min": _ADDR, "max": _ADDR, "max_step": _ADDR, "max_rate_per_s": _F, "count": _N},
}
_OPTIONAL: Final = {"name", "requests", "count", "max_step", "max_rate_per_s", "jitter_s"}


def _records(p: _Reader, data: dict, kind: str) -> list[dict[str, Any]]:
    rows = data.get(kind, [])
    if not isinstance(rows, list):
        p.fail(kind, "a list of records")
    out = []
    for i, row in enumerate(rows):
        key = f"{kind}[{i}]"
        p.table(row, key, set(FIELDS[kind]))
        missing = sorted(set(FIELDS[kind]) - set(row) - _OPTIONAL)
        if missing:
            p.fail(f"{key}.{missing[0]}", "a value (the field is required)")
        out.append({f: FIELDS[kind][f](p, v, f"{key}.{f}") for f, v in row.items()})
    return out


def baseline_from_dict(data: Any, path: str = "<baseline>", text: str = "") -> Baseline:
    """Build a :class:`Baseline` from parsed JSON, checking every field."""
    p = _Reader(path, text)
    p.table(data, "(top level)", {"format", "version", "learned", *FIELDS})
    if data.get("format") != FORMAT:
        p.fail("format", f'"{FORMAT}"')
    if data.get("version") != VERSION:
        p.fail("version", f"{VERSION} (this otsentry reads baseline version {VERSION})")
    learned = p.table(data.get("learned", {}), "learned", {"first_seen", "last_seen", "transactions"})
    b = Baseline(first_ns=p.time(learned.get("first_seen", "1970-01-01T00:00:00Z"), "learned.first_seen"),
                 last_ns=p.time(learned.get("last_seen", "1970-01-01T00:00:00Z"), "learned.last_seen"),
                 transactions=p.num(learned.get("transactions", 0), "learned.transactions", 0, _BIG))
    for r in _records(p, data, "pairs"):
        key = (r["client"], r["server"], r["unit"], r["function"])
        for lo, hi in r["ranges"]:
            add_range(b.pairs.setdefault(key, []), lo, hi)
        b.pairs.setdefault(key, [])
        b.counts[key] = b.counts.get(key, 0) + r.get("requests", 0)
    for r in _records(p, data, "rates"):
        b.rates[(r["client"], r["server"])] = r["peak_per_s"]
    for r in _records(p, data, "cycles"):
        b.cycles[(r["client"], r["server"], r["unit"], r["function"], r["first"], r["last"])] = Cycle(
            int(r["period_s"] * 1e9), int(r.get("jitter_s", 0) * 1e9), r.get("count", 0))
    for r in _records(p, data, "latency"):
        b.latency[(r["server"], r["unit"], r["function"])] = (
            int(r["median_ms"] * 1e6), int(r["p95_ms"] * 1e6), r.get("count", 0))
    for i, r in enumerate(_records(p, data, "registers")):
        if r["min"] > r["max"]:
            p.fail(f"registers[{i}].min", "a value not above max")
        b.registers[(r["server"], r["unit"], r["table"], r["address"])] = Envelope(
            r["min"], r["max"], r.get("max_step", 0xFFFF), float(r.get("max_rate_per_s", _BIG)),
            r.get("count", 0))
    b.index()
    return b
