"""Detection settings: the ``[detect]`` table of the agent's TOML config.

    [detect]
    window = "5m"                 # repeats within this become one finding
    revision_interval = "60s"     # at most one new revision per finding this often
    max_new_per_window = 20       # new findings per detector per window, then rate limited
    disable = ["modbus.spec-violation"]
    min_severity = "info"

    [detect.severity]             # override a detector's default severity
    "modbus.device-id" = "high"

    [detect.knobs."modbus.flood"] # a detector's knobs (see docs/detections.md)
    rate = 300

    [[detect.suppress]]           # drop matching findings (all fields optional but one)
    detectors = ["baseline.new-write", "policy.write-not-allowed"]
    client = "10.0.0.5"           # address or network
    server = "10.0.1.0/24"
    unit = 1
    functions = [6, 16]
    addresses = [[0, 99], "40101-40110"]   # 0-based, or 1-based Modicon references
    comment = "the engineering workstation may write setpoints"

    [detect.policy]
    writes = "allow-listed"       # writes outside [[detect.policy.allow_writes]] are findings
    [[detect.policy.allow_writes]]
    client = "10.0.0.10"
    table = "holding_registers"
    addresses = [[0, 99]]

    [detect.l2]
    segments = ["10.0.0.0/24"]    # where a new MAC for a known IP is a finding (default: all)
    shared_ips = ["10.0.0.254"]   # VRRP/HSRP virtual addresses that may move between MACs

Addresses are protocol addresses, 0-based as on the wire.  A five- or
six-digit string is a 1-based Modicon reference: ``"40001"`` is holding
register 0, ``"30010"`` input register 9, ``"00001"`` coil 0.

Errors name the file, the key and what was expected (:class:`ConfigError`).
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any, Final

from otsentry.common.errors import ConfigError
from otsentry.agent.detect._confparse import Parser
from otsentry.common.finding import Severity

__all__ = ["DetectConfig", "Rule", "L2Config", "load_config", "config_from_dict",
           "parse_duration", "TABLES", "FC_TABLE"]

#: Modbus data tables and the leading digit of their Modicon references.
TABLES: Final[dict[str, str]] = {"coils": "0", "discrete_inputs": "1",
                                 "input_registers": "3", "holding_registers": "4"}
#: Function code -> the table it reads or writes.
FC_TABLE: Final[dict[int, str]] = {1: "coils", 5: "coils", 15: "coils", 2: "discrete_inputs",
                                   3: "holding_registers", 6: "holding_registers",
                                   16: "holding_registers", 22: "holding_registers",
                                   23: "holding_registers", 4: "input_registers"}
_UNITS: Final = {"ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_duration(text: str | int | float) -> int:
    """``"10m"``, ``"30s"``, ``"500ms"``, ``"1h"`` or a number of seconds, as nanoseconds.

    Raises:
        ValueError: not a duration.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool) and text >= 0:
        return int(text * 1_000_000_000)
    m = _DURATION.match(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"not a duration: {text!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2) or "s"])


@dataclass(frozen=True, slots=True)
class Rule:
    """A match on findings or writes; an empty field matches everything."""

    detectors: tuple[str, ...] = ()
    clients: tuple[Network, ...] = ()
    servers: tuple[Network, ...] = ()
    units: frozenset[int] = frozenset()
    functions: frozenset[int] = frozenset()
    table: str = ""
    addresses: tuple[tuple[int, int], ...] = ()
    comment: str = ""

    def may_match(self, kind: str) -> bool:
        """False when the rule can match no hit of detector ``kind``."""
        return not self.detectors or any(fnmatch.fnmatchcase(kind, p) for p in self.detectors)

    def matches(self, kind: str, client: str, server: str, unit: int | None, fc: int | None,
                addresses: tuple[int, ...] = ()) -> bool:
        """True when every field set in the rule matches (addresses: all must be covered)."""
        if not self.may_match(kind):
            return False
        if self.units and unit not in self.units:
            return False
        if self.functions and fc not in self.functions:
            return False
        if self.table and FC_TABLE.get(fc or -1) != self.table:
            return False
        if self.addresses and not all(any(lo <= a <= hi for lo, hi in self.addresses)
                                      for a in addresses):
            return False
        return _in(client, self.clients) and _in(server, self.servers)


def _in(ip: str, nets: tuple[Network, ...]) -> bool:
    if not nets:
        return True
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in n for n in nets)


@dataclass(frozen=True, slots=True)
class L2Config:
    """Where a known IP with a new MAC is a finding (see ``net.mac-change``)."""

    segments: tuple[Network, ...] = ()
    shared_ips: frozenset[str] = frozenset()
    allow_vrrp_hsrp: bool = True


@dataclass(frozen=True, slots=True)
class DetectConfig:
    """Everything the detection engine can be told; the defaults work on one machine."""

    window_ns: int = 300_000_000_000
    revision_interval_ns: int = 60_000_000_000
    max_new_per_window: int = 20
    min_severity: Severity = Severity.INFO
    disable: frozenset[str] = frozenset()
    severity: dict[str, Severity] = field(default_factory=dict)
    knobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    suppress: tuple[Rule, ...] = ()
    write_policy: str = "off"
    allow_writes: tuple[Rule, ...] = ()
    l2: L2Config = field(default_factory=L2Config)
    max_keys: int = 20_000
    path: str = "<defaults>"


def load_config(path: str) -> DetectConfig:
    """Read the ``[detect]`` table of a TOML file.

    Raises:
        ConfigError: unreadable file, bad TOML, or a key with a bad value.
    """
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ConfigError(path, "", f"a readable TOML file ({exc.strerror})") from None
    text = raw.decode("utf-8", "replace")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None) or _lineno_from(str(exc))
        raise ConfigError(path, "", f"valid TOML ({exc})", line) from None
    return config_from_dict(data.get("detect", {}), path, text)


def _lineno_from(message: str) -> int | None:
    m = re.search(r"line (\d+)", message)
    return int(m.group(1)) if m else None


def config_from_dict(d: Any, path: str = "<config>", text: str = "") -> DetectConfig:
    """Build a :class:`DetectConfig` from the ``detect`` table (already parsed)."""
    p = _Parser(path, text)
    p.table(d, "detect", {"window", "revision_interval", "max_new_per_window", "min_severity",
                          "disable", "severity", "knobs", "suppress", "policy", "l2", "max_keys"})
    policy = d.get("policy", {})
    p.table(policy, "detect.policy", {"writes", "allow_writes"})
    return DetectConfig(
        window_ns=p.duration(d, "detect.window", 300.0),
        revision_interval_ns=p.duration(d, "detect.revision_interval", 60.0),
        max_new_per_window=p.integer(d, "detect.max_new_per_window", 20, 1, 1_000_000),
        min_severity=p.severity(d.get("min_severity", "info"), "detect.min_severity"),
        disable=frozenset(p.strings(d, "detect.disable")),
        severity={k: p.severity(v, f"detect.severity.{k}")
                  for k, v in p.sub(d, "detect.severity").items()},
        knobs=p.knobs(p.sub(d, "detect.knobs")),
        suppress=tuple(p.rule(r, f"detect.suppress[{i}]")
                       for i, r in enumerate(p.array(d, "detect.suppress"))),
        write_policy=p.choice(policy, "detect.policy.writes", ("off", "allow-listed"), "off"),
        allow_writes=tuple(p.rule(r, f"detect.policy.allow_writes[{i}]")
                           for i, r in enumerate(p.array(policy, "detect.policy.allow_writes"))),
        l2=p.l2(d.get("l2", {})),
        max_keys=p.integer(d, "detect.max_keys", 20_000, 100, 10_000_000),
        path=path,
    )


class _Parser(Parser):
    """The config-specific readers (rules, L2) on top of :class:`Parser`."""

    def rule(self, r: dict, key: str) -> Rule:
        fields = {"detectors", "client", "server", "unit", "functions", "table", "addresses",
                  "comment"}
        self.table(r, key, fields)
        if not set(r) - {"comment"}:
            self.fail(key, "at least one of " + ", ".join(sorted(fields - {"comment"})))
        ranges, implied = self.addresses(r["addresses"], f"{key}.addresses") if "addresses" in r \
            else ((), "")
        table = r.get("table", implied)
        if table not in ("", *TABLES) or (implied and table != implied):
            self.fail(f"{key}.table", "one of " + ", ".join(TABLES) + " (matching the addresses)")
        return Rule(
            detectors=tuple(self.strings(r, f"{key}.detectors")),
            clients=self.networks(r["client"], f"{key}.client") if "client" in r else (),
            servers=self.networks(r["server"], f"{key}.server") if "server" in r else (),
            units=self.ints(r["unit"], f"{key}.unit", 0, 255) if "unit" in r else frozenset(),
            functions=self.ints(r["functions"], f"{key}.functions", 1, 127)
            if "functions" in r else frozenset(),
            table=table, addresses=ranges, comment=str(r.get("comment", "")))

    def knobs(self, d: dict[str, Any]) -> dict[str, dict[str, Any]]:
        for name, value in d.items():
            if not isinstance(value, dict):
                self.fail(f'detect.knobs."{name}"', "a table of knob = value")
        return {name: dict(value) for name, value in d.items()}

    def l2(self, d: Any) -> L2Config:
        self.table(d, "detect.l2", {"segments", "shared_ips", "allow_vrrp_hsrp"})
        shared = self.networks(d.get("shared_ips", []), "detect.l2.shared_ips")
        allow = d.get("allow_vrrp_hsrp", True)
        if type(allow) is not bool:
            self.fail("detect.l2.allow_vrrp_hsrp", "true or false")
        return L2Config(segments=self.networks(d.get("segments", []), "detect.l2.segments"),
                        shared_ips=frozenset(str(n.network_address) for n in shared),
                        allow_vrrp_hsrp=allow)
