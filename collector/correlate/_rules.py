"""Correlation rules: what makes findings one incident, read from TOML.

Every rule has a default that works with no file at all; a file changes only
what it names.  Errors are :class:`ConfigError` naming the file, the dotted key
and its line, and unknown keys are errors (a typo must not silently keep a
default).

    [correlate]
    min_severity = "low"            # findings below are not correlated
    exclude = ["100.64.0.0/10"]     # never matched across sites (RFC 1918 and ULA never are)

    [correlate.site_source]         # one source, several detectors, one site
    window = "1h"
    min_detectors = 2

    [correlate.cross_site_source]   # the same routable source at several sites
    window = "24h"
    min_sites = 2

    [correlate.cross_site_techniques]  # the same sequence of techniques at several sites
    [correlate.cross_site_device_id]   # the same device-id change at several sites
    [correlate.cross_site_timing]      # the same detector firing at several sites at once

    [correlate.severity]
    per_extra_site = 1              # levels added for each site beyond the first
    recon_then_write = 1            # levels added when a write follows reconnaissance
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otsentry.common.errors import ConfigError
from otsentry.common.finding import Severity

__all__ = [
    "RECON",
    "WRITE",
    "CrossSite",
    "Rules",
    "SeverityRules",
    "SiteSource",
    "load_rules",
    "rules_from_dict",
]

#: ATT&CK for ICS techniques of reconnaissance (discovery, collection of device facts).
RECON = ("T0846", "T0888", "T0861", "T0840", "T0842", "T0845", "T0801")
#: Techniques that change the process or the device.
WRITE = ("T0855", "T0836", "T0831", "T0843", "T0858", "T0816", "T0806", "T0835", "T0814")


@dataclass(frozen=True, slots=True)
class SiteSource:
    """``[correlate.site_source]``: one source address across several detectors at one site."""

    enabled: bool = True
    window_s: float = 3600.0
    min_detectors: int = 2
    recon_techniques: tuple[str, ...] = RECON
    write_techniques: tuple[str, ...] = WRITE


@dataclass(frozen=True, slots=True)
class CrossSite:
    """One cross-site rule: matches at ``min_sites`` sites or more within ``window_s``."""

    enabled: bool = True
    window_s: float = 86400.0
    min_sites: int = 2
    min_length: int = 2  # techniques rule: shortest sequence that counts
    min_severity: Severity = Severity.LOW  # timing rule: findings below are ignored


@dataclass(frozen=True, slots=True)
class SeverityRules:
    """``[correlate.severity]``: how an incident's severity rises above its worst finding."""

    per_extra_site: int = 1
    recon_then_write: int = 1


@dataclass(frozen=True, slots=True)
class Rules:
    """All correlation rules (the defaults when no file is given)."""

    min_severity: Severity = Severity.LOW
    exclude: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    site_source: SiteSource = SiteSource()
    cross_site_source: CrossSite = CrossSite()
    cross_site_techniques: CrossSite = CrossSite()
    cross_site_device_id: CrossSite = CrossSite()
    cross_site_timing: CrossSite = field(default_factory=lambda: CrossSite(
        window_s=600.0, min_sites=3, min_severity=Severity.MEDIUM))
    severity: SeverityRules = SeverityRules()


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class _Reader:
    """Reads one table of the file, naming file, key and line in every error."""

    def __init__(self, path: str, text: str) -> None:
        self.path, self.lines = path, text.splitlines()

    def line_of(self, dotted: str) -> int | None:
        *table, key = dotted.split(".")
        current: list[str] = []
        for n, line in enumerate(self.lines, 1):
            s = line.strip()
            if s.startswith("["):
                current = [p.strip().strip('"') for p in s.strip("[]").split(".")]
            elif current == table and re.match(rf'^"?{re.escape(key)}"?\s*=', s):
                return n
        return None

    def fail(self, dotted: str, expected: str) -> ConfigError:
        return ConfigError(self.path, dotted, expected, self.line_of(dotted))

    def value(self, table: dict[str, Any], prefix: str, key: str, kind: str, default: Any) -> Any:
        if key not in table:
            return default
        v, dotted = table[key], f"{prefix}.{key}"
        try:
            return _CONVERT[kind](v)
        except (ValueError, TypeError):
            raise self.fail(dotted, _EXPECTED[kind]) from None


def _duration(v: object) -> float:
    if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0:
        return float(v)
    m = _DURATION.match(v) if isinstance(v, str) else None
    if m is None:
        raise ValueError(v)
    return float(m.group(1)) * _UNIT_S[m.group(2) or "s"]


def _count(v: object) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(v)
    return v


def _level(v: object) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 4:
        raise ValueError(v)
    return v


def _bool(v: object) -> bool:
    if not isinstance(v, bool):
        raise ValueError(v)
    return v


def _severity(v: object) -> Severity:
    if not isinstance(v, str):
        raise ValueError(v)
    return Severity.parse(v)


def _techniques(v: object) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(t, str) and re.fullmatch(r"T\d{4}", t)
                                          for t in v):
        raise ValueError(v)
    return tuple(v)


def _networks(v: object) -> tuple:
    if not isinstance(v, list) or not all(isinstance(n, str) for n in v):
        raise ValueError(v)
    return tuple(ipaddress.ip_network(n, strict=False) for n in v)


_CONVERT = {"duration": _duration, "count": _count, "bool": _bool, "severity": _severity,
            "techniques": _techniques, "networks": _networks, "level": _level}
_EXPECTED = {
    "duration": 'a duration such as "90s", "10m", "1h", "1d" or a number of seconds',
    "count": "a whole number >= 1", "bool": "true or false",
    "severity": "one of info, low, medium, high, critical",
    "techniques": 'a list of ATT&CK for ICS ids such as ["T0846", "T0855"]',
    "networks": 'a list of networks such as ["100.64.0.0/10"]',
    "level": "a whole number of severity levels, 0..4",
}
_RULE_KEYS = {
    "site_source": {"enabled": "bool", "window": "duration", "min_detectors": "count",
                    "recon_techniques": "techniques", "write_techniques": "techniques"},
    "cross_site_source": {"enabled": "bool", "window": "duration", "min_sites": "count"},
    "cross_site_techniques": {"enabled": "bool", "window": "duration", "min_sites": "count",
                              "min_length": "count"},
    "cross_site_device_id": {"enabled": "bool", "window": "duration", "min_sites": "count"},
    "cross_site_timing": {"enabled": "bool", "window": "duration", "min_sites": "count",
                          "min_severity": "severity"},
    "severity": {"per_extra_site": "level", "recon_then_write": "level"},
}
_TOP_KEYS = {"min_severity": "severity", "exclude": "networks"}
_FIELD = {"window": "window_s"}


def _table(r: _Reader, parent: dict[str, Any], key: str, dotted: str) -> dict[str, Any]:
    t = parent.get(key, {})
    if not isinstance(t, dict):
        raise r.fail(dotted, "a table")
    return t


def _section(r: _Reader, table: dict[str, Any], name: str, current: Any) -> Any:
    keys = _RULE_KEYS[name]
    t = _table(r, table, name, f"correlate.{name}")
    for k in t:
        if k not in keys:
            raise r.fail(f"correlate.{name}.{k}", f"one of {', '.join(keys)} (unknown key)")
    changes = {_FIELD.get(k, k): r.value(t, f"correlate.{name}", k, kind, None)
               for k, kind in keys.items() if k in t}
    return dataclasses.replace(current, **changes)


def rules_from_dict(data: dict[str, Any], path: str = "<rules>", text: str = "") -> Rules:
    """Rules from a parsed TOML document (its ``[correlate]`` table).

    Raises:
        ConfigError: a value is wrong or a key unknown; names ``path``, key and line.
    """
    r = _Reader(path, text)
    table = _table(r, data, "correlate", "correlate")
    for k in table:
        if k not in _TOP_KEYS and k not in _RULE_KEYS:
            raise r.fail(f"correlate.{k}", f"one of {', '.join([*_TOP_KEYS, *_RULE_KEYS])} "
                                            "(unknown key)")
    rules = Rules()
    top = {k: r.value(table, "correlate", k, kind, None) for k, kind in _TOP_KEYS.items()
           if k in table}
    rules = dataclasses.replace(rules, **top)
    for name in _RULE_KEYS:
        rules = dataclasses.replace(rules, **{name: _section(r, table, name, getattr(rules, name))})
    return rules


def load_rules(path: str | Path | None) -> Rules:
    """Rules from the TOML file at ``path`` (the defaults when ``path`` is None).

    Raises:
        ConfigError: unreadable file, bad TOML (with its line), a wrong value or unknown key.
    """
    if path is None:
        return Rules()
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(str(path), "", f"a readable file ({exc.strerror})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = int(m.group(1)) if (m := re.search(r"line (\d+)", str(exc))) else None
        raise ConfigError(str(path), "", f"valid TOML ({exc})", line) from None
    return rules_from_dict(data, str(path), text)
