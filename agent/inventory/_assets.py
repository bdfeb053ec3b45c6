"""Network assets (IP, MAC, VLAN) and the Modbus devices (unit ids) behind them.

An asset's role comes from the flows it takes part in: the client end of a
flow is a client (master), the server end (the Modbus port, see
:mod:`otsentry.agent.flows`) a server (slave).  A server is a ``gateway`` when
two or more unit ids answer it normally, or when it answers with exception 10
or 11 (gateway path unavailable, gateway target failed to respond, [AP] §7).
An asset that is both client and server is ``both``.  A device exists once its
unit id has answered (normally or with an exception other than 10/11).
"""

from __future__ import annotations

from typing import Any, Final

from otsentry.agent.inventory._oui import mac_kind, oui_vendor
from otsentry.agent.inventory._registers import RegisterTable, Use
from otsentry.agent.modbus import spec

__all__ = ["Asset", "Device", "Limits", "StatusCounts", "asset_id", "GATEWAY_EXCEPTIONS"]

GATEWAY_EXCEPTIONS: Final = frozenset({10, 11})
#: The transaction statuses a device's per-function counters tell apart, in their order.
STATUSES: Final = ("ok", "exception", "unanswered", "malformed", "unmatched", "duplicate")
_MAX_HINTS: Final = 8
_LAT_STEPS: Final = 4  # histogram buckets per doubling of latency
_LAT_BUCKETS: Final = _LAT_STEPS * 64 + _LAT_STEPS  # microseconds below 2**64
_NO_MIN: Final = 1 << 62  # the minimum latency before the first one


class Limits:
    """Bounds on inventory state; what does not fit is counted, never stored.

    Attributes:
        max_assets: network assets.
        max_peers: clients per server asset and servers per client asset.
        max_ranges: (kind, address, quantity) ranges per device table.
        max_registers: addresses with values per device table.
        max_clients_per_range: clients counted per range.
        max_cycles: polling cycles in all.
        max_device_id_objects: FC43 objects per device.
        max_changes: undrained inventory changes (the oldest are dropped).
    """

    __slots__ = ("max_assets", "max_peers", "max_ranges", "max_registers",
                 "max_clients_per_range", "max_cycles", "max_device_id_objects", "max_changes")

    def __init__(self, max_assets: int = 10_000, max_peers: int = 1_024, max_ranges: int = 1_024,
                 max_registers: int = 8_192, max_clients_per_range: int = 64,
                 max_cycles: int = 16_384, max_device_id_objects: int = 256,
                 max_changes: int = 100_000) -> None:
        self.max_assets = max_assets
        self.max_peers = max_peers
        self.max_ranges = max_ranges
        self.max_registers = max_registers
        self.max_clients_per_range = max_clients_per_range
        self.max_cycles = max_cycles
        self.max_device_id_objects = max_device_id_objects
        self.max_changes = max_changes


def asset_id(ip: str, mac: str | None, vlan: int | None) -> str:
    """Stable text id of an asset: ``ip|mac|vlan`` (empty fields when unknown)."""
    return f"{ip}|{mac or ''}|{'' if vlan is None else vlan}"


def _bump(d: dict, key: Any, n: int = 1) -> None:
    d[key] = d.get(key, 0) + n


class StatusCounts:
    """Transactions of one function code per status (see ``STATUSES``), as plain fields: an
    answered read counts in place, with no new number object."""

    __slots__ = ("ok", "exception", "unanswered", "malformed", "unmatched", "duplicate")

    def __init__(self) -> None:
        self.ok = self.exception = self.unanswered = 0
        self.malformed = self.unmatched = self.duplicate = 0

    def add(self, status: str) -> None:
        if status == "ok":
            self.ok += 1
        elif status == "exception":
            self.exception += 1
        elif status == "unanswered":
            self.unanswered += 1
        elif status == "malformed":
            self.malformed += 1
        elif status == "unmatched":
            self.unmatched += 1
        elif status == "duplicate":
            self.duplicate += 1
        else:
            raise ValueError(f"unknown transaction status {status!r}")

    def to_list(self) -> list[int]:
        """The counts in the order of ``STATUSES``."""
        return [self.ok, self.exception, self.unanswered, self.malformed, self.unmatched,
                self.duplicate]

    @classmethod
    def from_list(cls, counts: list[int]) -> StatusCounts:
        c = cls()
        c.ok, c.exception, c.unanswered, c.malformed, c.unmatched, c.duplicate = counts
        return c


class Device:
    """One unit id served by an asset."""

    __slots__ = ("unit", "first_ts", "last_ts", "functions", "exceptions", "lat_hist",
                 "lat_min", "lat_max", "lat_sum", "lat_n", "device_id", "conformity_level",
                 "server_id", "server_id_text", "run_indicator", "tables", "clients", "dropped")

    def __init__(self, unit: int, ts: int) -> None:
        self.unit = unit
        self.first_ts = self.last_ts = ts
        #: fc -> counts per status
        self.functions: dict[int, StatusCounts] = {}
        #: (fc, code) -> count
        self.exceptions: dict[tuple[int, int], int] = {}
        #: responses per latency bucket (see :meth:`latency`); min and max mean nothing
        #: while ``lat_n`` is 0
        self.lat_hist: list[int] = [0] * _LAT_BUCKETS
        self.lat_min = _NO_MIN
        self.lat_max = -1
        self.lat_sum = 0
        self.lat_n = 0
        #: FC43/14 object id -> value (text)
        self.device_id: dict[int, str] = {}
        self.conformity_level: int | None = None
        self.server_id: str | None = None
        self.server_id_text: str | None = None
        self.run_indicator: bool | None = None
        self.tables: dict[str, RegisterTable] = {}
        #: client asset id -> its transactions (``count``; the times are not reported)
        self.clients: dict[str, Use] = {}
        self.dropped: dict[str, int] = {}

    def count(self, fc: int, status: str) -> StatusCounts:
        """Count a transaction of function ``fc``; its function's counts."""
        c = self.functions.get(fc)
        if c is None:
            self.functions[fc] = c = StatusCounts()
        c.add(status)
        return c

    def latency(self, ns: int) -> None:
        if ns < 0:
            return
        # bucket: 4 per doubling of microseconds (the top two bits after the leading one)
        us = ns // 1_000
        n = us.bit_length()
        b = n * 4 + ((us << 2 >> (n - 1)) & 3) if n else 0
        self.lat_hist[b] += 1
        self.lat_sum += ns
        self.lat_n += 1
        if ns < self.lat_min:
            self.lat_min = ns
        if ns > self.lat_max:
            self.lat_max = ns

    def table(self, name: str, limits: Limits) -> RegisterTable:
        t = self.tables.get(name)
        if t is None:
            self.tables[name] = t = RegisterTable(name, limits)
        return t

    def _percentile(self, q: float) -> float | None:
        if not self.lat_n:
            return None
        want, seen = q * self.lat_n, 0
        for b, count in enumerate(self.lat_hist):
            if not count:
                continue
            seen += count
            if seen >= want:  # the bucket's middle, within what was really seen
                n, frac = divmod(b, _LAT_STEPS)
                mid = 1_000 * 2 ** (n - 1) * (1 + (frac + 0.5) / _LAT_STEPS) if n else 500

                return min(max(mid, self.lat_min or 0), self.lat_max or mid)
        return None

    def ok_count(self) -> int:
        return sum(c.ok for c in self.functions.values())

    def to_state(self) -> dict[str, Any]:
        return {"unit": self.unit, "first_ts": self.first_ts, "last_ts": self.last_ts,
                "functions": [[fc, c.to_list()] for fc, c in self.functions.items()],
                "exceptions": [[fc, code, n] for (fc, code), n in self.exceptions.items()],
                "latency": [[[b, n] for b, n in enumerate(self.lat_hist) if n],
                            self.lat_min if self.lat_n else None,
                            self.lat_max if self.lat_n else None, self.lat_sum, self.lat_n],
                "device_id": [[k, v] for k, v in self.device_id.items()],
                "conformity_level": self.conformity_level, "server_id": self.server_id,
                "server_id_text": self.server_id_text, "run_indicator": self.run_indicator,
                "clients": {c: u.count for c, u in self.clients.items()},
                "dropped": self.dropped}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> Device:
        d = cls(s["unit"], s["first_ts"])
        d.last_ts = s["last_ts"]
        d.functions = {fc: StatusCounts.from_list(c) for fc, c in s["functions"]}
        d.exceptions = {(fc, code): n for fc, code, n in s["exceptions"]}
        hist, lat_min, lat_max, d.lat_sum, d.lat_n = s["latency"]
        d.lat_min = _NO_MIN if lat_min is None else lat_min
        d.lat_max = -1 if lat_max is None else lat_max
        for b, n in hist:
            if 0 <= b < _LAT_BUCKETS:
                d.lat_hist[b] = n
        d.device_id = {k: v for k, v in s["device_id"]}
        d.conformity_level, d.server_id = s["conformity_level"], s["server_id"]
        d.server_id_text, d.run_indicator = s["server_id_text"], s["run_indicator"]
        d.clients = {c: Use(n, 0, 0) for c, n in s["clients"].items()}
        d.dropped = dict(s["dropped"])
        return d

    def to_dict(self, user: Any = None) -> dict[str, Any]:
        """The device as JSON values; ``user(unit, table, address)`` looks up the user map."""
        return {
            "unit": self.unit, "first_seen": self.first_ts, "last_seen": self.last_ts,
            "functions": {str(fc): {"name": spec.function_name(fc),
                                    **{s: n for s, n in zip(STATUSES, c.to_list()) if n}}
                          for fc, c in sorted(self.functions.items())},
            "exceptions": [{"fc": fc, "code": code, "name": spec.exception_name(code), "count": n}
                           for (fc, code), n in sorted(self.exceptions.items())],
            "latency_ms": self._latency_dict(),
            "device_id": self.device_id_named(),
            "device_id_conformity_level": self.conformity_level,
            "server_id": self.server_id, "server_id_text": self.server_id_text,
            "run_indicator": self.run_indicator,
            "clients": {c: u.count for c, u in sorted(self.clients.items())},
            "tables": {name: t.to_dict(None if user is None else
                                       (lambda tb, a, _u=self.unit: user(_u, tb, a)))
                       for name, t in sorted(self.tables.items())},
            "dropped": dict(sorted(self.dropped.items())),
        }

    def device_id_named(self) -> dict[str, str]:
        return {spec.device_id_object_name(k): v for k, v in sorted(self.device_id.items())}

    def _latency_dict(self) -> dict[str, Any] | None:
        if not self.lat_n:
            return None
        ms = lambda v: None if v is None else round(v / 1e6, 3)  # noqa: E731
        return {"median": ms(self._percentile(0.5)), "p95": ms(self._percentile(0.95)),
                "min": ms(self.lat_min), "max": ms(self.lat_max),
                "mean": ms(self.lat_sum / self.lat_n), "count": self.lat_n}


class Asset:
    """A network asset: one (IP, MAC, VLAN), with its roles, peers, hints and devices."""

    __slots__ = ("id", "ip", "mac", "vlan", "first_ts", "last_ts", "is_client", "is_server",
                 "gateway_exceptions", "devices", "clients", "servers", "ttls", "windows",
                 "unanswered_units", "role", "dropped", "tls")

    def __init__(self, ip: str, mac: str | None, vlan: int | None, ts: int) -> None:
        self.id = asset_id(ip, mac, vlan)
        self.ip, self.mac, self.vlan = ip, mac, vlan
        self.first_ts = self.last_ts = ts
        self.is_client = False
        self.is_server = False
        self.gateway_exceptions = 0
        self.devices: dict[int, Device] = {}
        #: peer asset id -> [count, first_ts, last_ts]
        self.clients: dict[str, list[int]] = {}
        self.servers: dict[str, list[int]] = {}
        #: observed IP TTLs and TCP windows -> flows
        self.ttls: dict[int, int] = {}
        self.windows: dict[int, int] = {}
        #: units addressed whose requests got no answer (or a gateway exception) -> requests
        self.unanswered_units: dict[int, int] = {}
        #: role last announced (see current_role)
        self.role: str | None = None
        self.dropped: dict[str, int] = {}
        #: Modbus/TLS (port 802) server certificate: port -> what the handshake showed
        self.tls: dict[str, dict[str, Any]] = {}

    def current_role(self) -> str:
        """``client``, ``server``, ``gateway``, ``both`` (client and server) or ``unknown``."""
        serving = None
        if self.is_server:
            answering = sum(1 for d in self.devices.values() if d.ok_count())
            serving = "gateway" if answering >= 2 or self.gateway_exceptions else "server"
        if self.is_client:
            return "both" if serving else "client"
        return serving or "unknown"

    def roles(self) -> list[str]:
        """Every role the asset plays (``client``, ``server``, ``gateway``)."""
        role = self.current_role()
        out = ["client"] if self.is_client else []
        if self.is_server:
            answering = sum(1 for d in self.devices.values() if d.ok_count())
            out.append("gateway" if answering >= 2 or self.gateway_exceptions else "server")
        return out if role != "unknown" else []

    def hint(self, table: dict[int, int], value: int | None) -> None:
        """Count one flow's TTL or window value (at most a few distinct values kept)."""
        if value is None:
            return
        if value in table or len(table) < _MAX_HINTS:
            _bump(table, value)
        else:
            _bump(self.dropped, "hints")

    def peer(self, table: dict[str, list[int]], other: str, ts: int, limit: int) -> bool:
        """Count a flow with a peer; True when the peer is new (and was stored)."""
        p = table.get(other)
        if p is not None:
            p[0] += 1
            p[1] = min(p[1], ts)
            p[2] = max(p[2], ts)
            return False
        if len(table) >= limit:
            _bump(self.dropped, "peers")
            return False
        table[other] = [1, ts, ts]
        return True

    @property
    def vendor(self) -> str | None:
        """MAC vendor from the IEEE registry, or None."""
        return oui_vendor(self.mac)

    def to_state(self) -> dict[str, Any]:
        return {"ip": self.ip, "mac": self.mac, "vlan": self.vlan, "first_ts": self.first_ts,
                "last_ts": self.last_ts, "is_client": self.is_client, "is_server": self.is_server,
                "gateway_exceptions": self.gateway_exceptions, "clients": self.clients,
                "servers": self.servers, "ttls": [[k, v] for k, v in self.ttls.items()],
                "windows": [[k, v] for k, v in self.windows.items()],
                "unanswered_units": [[k, v] for k, v in self.unanswered_units.items()],
                "role": self.role, "dropped": self.dropped, "tls": self.tls}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> Asset:
        a = cls(s["ip"], s["mac"], s["vlan"], s["first_ts"])
        a.last_ts, a.is_client, a.is_server = s["last_ts"], s["is_client"], s["is_server"]
        a.gateway_exceptions = s["gateway_exceptions"]
        a.clients = {k: list(v) for k, v in s["clients"].items()}
        a.servers = {k: list(v) for k, v in s["servers"].items()}
        a.ttls = {k: v for k, v in s["ttls"]}
        a.windows = {k: v for k, v in s["windows"]}
        a.unanswered_units = {k: v for k, v in s["unanswered_units"]}
        a.role, a.dropped = s["role"], dict(s["dropped"])
        a.tls = dict(s.get("tls", {}))  # absent in state saved before TLS was read
        return a

    def to_dict(self, user: Any = None) -> dict[str, Any]:
        """The asset as JSON values; ``user(ip, unit, table, address)`` looks up the user map."""
        lookup = None if user is None else (lambda u, t, a: user(self.ip, u, t, a))
        return {
            "id": self.id, "ip": self.ip, "mac": self.mac, "vlan": self.vlan,
            "mac_vendor": self.vendor, "mac_kind": mac_kind(self.mac),
            "role": self.current_role(), "roles": self.roles(),
            "first_seen": self.first_ts, "last_seen": self.last_ts,
            "units": sorted(self.devices),
            "ttl": dict(sorted((str(k), v) for k, v in self.ttls.items())),
            "initial_ttl_guess": _initial_ttl(self.ttls),
            "tcp_window": dict(sorted((str(k), v) for k, v in self.windows.items())),
            "clients": _peers(self.clients), "servers": _peers(self.servers),
            "unanswered_units": {str(k): v for k, v in sorted(self.unanswered_units.items())},
            "gateway_exceptions": self.gateway_exceptions,
            "devices": [d.to_dict(lookup) for _u, d in sorted(self.devices.items())],
            "dropped": dict(sorted(self.dropped.items())),
            "tls": dict(sorted(self.tls.items())),
        }


def _peers(table: dict[str, list[int]]) -> list[dict[str, Any]]:
    return [{"id": k, "ip": k.split("|", 1)[0], "flows": v[0], "first_seen": v[1],
             "last_seen": v[2]} for k, v in sorted(table.items())]


def _initial_ttl(ttls: dict[int, int]) -> int | None:
    """The likely initial TTL (32, 64, 128 or 255) of the most common observed TTL.

    64 is typical of Linux and many embedded stacks, 128 of Windows, 255 of
    network gear and some RTOSes; the difference to the observed value is the
    number of routers in between.
    """
    if not ttls:
        return None
    ttl = max(ttls, key=lambda k: (ttls[k], k))
    return next(t for t in (32, 64, 128, 255) if ttl <= t)
