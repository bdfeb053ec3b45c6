"""Typed reading of parsed TOML/JSON data, with errors that name file, key and line."""

from __future__ import annotations

import ipaddress
import re
from typing import Any, NoReturn

from otsentry.common.errors import ConfigError
from otsentry.common.finding import Severity

__all__ = ["Parser", "line_of"]

_MODICON = re.compile(r"^([0134])(\d{4,5})$")


def line_of(text: str, key: str) -> int | None:
    """Best-effort line (1-based) of dotted ``key`` in TOML or JSON ``text``, or None.

    ``a.b[2].c`` looks for the third ``[[a.b]]`` header (TOML) and then for ``c``.
    """
    if not text:
        return None
    lines = text.splitlines()
    start = 0
    m = re.match(r"^(.*)\[(\d+)\]\.?(.*)$", key)
    if m:
        header, index, rest = m.group(1), int(m.group(2)), m.group(3)
        hits = [i for i, ln in enumerate(lines) if ln.strip() == f"[[{header}]]"]
        if index < len(hits):
            start = hits[index]
        else:  # JSON written one record per line, as the baseline file is
            head = re.compile(rf'^\s*"{re.escape(header)}"\s*:\s*\[')
            found = [i for i, ln in enumerate(lines) if head.match(ln)]
            return found[0] + 2 + index if found and found[0] + 1 + index < len(lines) else None
        key = rest or header
    last = key.rsplit(".", 1)[-1]
    pattern = re.compile(rf'^\s*"?{re.escape(last)}"?\s*[=:]')
    for i in range(start, len(lines)):
        if pattern.match(lines[i]):
            return i + 1
    return start + 1 if m else None


class Parser:
    """Reads values out of nested dicts; every failure is a :class:`ConfigError`."""

    def __init__(self, path: str, text: str = "") -> None:
        self.path = path
        self.text = text

    def fail(self, key: str, expected: str) -> NoReturn:
        raise ConfigError(self.path, key, expected, line_of(self.text, key))

    def table(self, d: Any, key: str, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(d, dict):
            self.fail(key, "a table")
        unknown = sorted(set(d) - allowed)
        if unknown:
            self.fail(f"{key}.{unknown[0]}", "one of " + ", ".join(sorted(allowed)))
        return d

    def sub(self, d: dict, key: str) -> dict[str, Any]:
        value = d.get(key.rsplit(".", 1)[-1], {})
        if not isinstance(value, dict):
            self.fail(key, "a table")
        return value

    def array(self, d: dict, key: str) -> list[Any]:
        value = d.get(key.rsplit(".", 1)[-1], [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.fail(key, "an array of tables ([[...]])")
        return value

    def strings(self, d: dict, key: str) -> list[str]:
        value = d.get(key.rsplit(".", 1)[-1], [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(key, "a list of strings")
        return value

    def integer(self, d: dict, key: str, default: int, lo: int, hi: int) -> int:
        value = d.get(key.rsplit(".", 1)[-1], default)
        if type(value) is not int or not lo <= value <= hi:
            self.fail(key, f"an integer from {lo} to {hi}")
        return value

    def duration(self, d: dict, key: str, default: float) -> int:
        from otsentry.agent.detect._config import parse_duration

        value = d.get(key.rsplit(".", 1)[-1], default)
        try:
            ns = parse_duration(value)
        except (ValueError, TypeError):
            self.fail(key, 'a duration such as "30s", "5m", "1h" or a number of seconds')
        if ns <= 0:
            self.fail(key, "a duration above zero")
        return ns

    def severity(self, value: Any, key: str) -> Severity:
        try:
            return Severity.parse(value) if isinstance(value, str) else Severity.parse("?")
        except ValueError:
            self.fail(key, "one of " + ", ".join(str(s) for s in Severity))

    def choice(self, d: dict, key: str, choices: tuple[str, ...], default: str) -> str:
        value = d.get(key.rsplit(".", 1)[-1], default)
        if value not in choices:
            self.fail(key, "one of " + ", ".join(f'"{c}"' for c in choices))
        return value

    def networks(self, value: Any, key: str) -> tuple:
        items = value if isinstance(value, list) else [value]
        try:
            return tuple(ipaddress.ip_network(v, strict=False) for v in items
                         if isinstance(v, str) or self.fail(key, "an address or network"))
        except ValueError:
            self.fail(key, 'an IP address or network such as "10.0.0.5" or "10.0.0.0/24"')

    def ints(self, value: Any, key: str, lo: int, hi: int) -> frozenset[int]:
        items = value if isinstance(value, list) else [value]
        if not all(type(v) is int and lo <= v <= hi for v in items):
            self.fail(key, f"an integer or a list of integers from {lo} to {hi}")
        return frozenset(items)

    def addresses(self, value: Any, key: str) -> tuple[tuple[tuple[int, int], ...], str]:
        """Address ranges and the table a Modicon reference implies ("" if none)."""
        if not isinstance(value, list):
            value = [value]
        ranges, tables = [], set()
        for item in value:
            lo, hi, table = self._range(item, key)
            ranges.append((lo, hi))
            tables.add(table)
        tables.discard("")
        if len(tables) > 1:
            self.fail(key, "Modicon references of one table only")
        return tuple(ranges), (tables.pop() if tables else "")

    def _range(self, item: Any, key: str) -> tuple[int, int, str]:
        expected = ('0-based addresses 0-65535 as N, [LO, HI] or "LO-HI", '
                    'or 1-based Modicon references such as "40001-40010"')
        if type(item) is int:
            item = [item, item]
        if isinstance(item, str):
            item = item.split("-", 1) if "-" in item else [item, item]
        if not isinstance(item, list) or len(item) != 2:
            self.fail(key, expected)
        ends = [self._address(v, key, expected) for v in item]
        (lo, t1), (hi, t2) = ends
        if t1 != t2 or lo > hi:
            self.fail(key, expected + " (low end first, both of one table)")
        return lo, hi, t1

    def _address(self, v: Any, key: str, expected: str) -> tuple[int, str]:
        from otsentry.agent.detect._config import TABLES

        if type(v) is int and 0 <= v <= 0xFFFF:
            return v, ""
        text = v.strip() if isinstance(v, str) else ""
        m = _MODICON.match(text)
        if m and 1 <= int(m.group(2)) <= 0x10000:
            table = next(t for t, d in TABLES.items() if d == m.group(1))
            return int(m.group(2)) - 1, table
        if text.isdigit() and int(text) <= 0xFFFF and len(text) < 5:
            return int(text), ""
        self.fail(key, expected)
