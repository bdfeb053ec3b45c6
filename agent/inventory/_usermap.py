"""The user register map (TOML): names, types, units and scaling for registers.

Example (``docs/inventory.md`` has the full description)::

    [[register]]
    server = "192.168.0.20"     # IP of the server; omit for every server
    unit_id = 1                 # Modbus unit id; omit for every unit
    ref = "400001"              # 1-based Modicon reference: holding register 0 on the wire
    name = "Tank 1 level"
    type = "float32"            # bool, u16, i16, u32, i32, float32
    word_order = "big"          # big: first register holds the high word (ABCD); little: CDAB
    eng_unit = "m"
    scale = 0.01                # shown value = raw * scale + offset
    offset = 0.0

    [[register]]
    server = "192.168.0.20"
    table = "input_registers"   # coils, discrete_inputs, input_registers, holding_registers
    address = 9                 # 0-based, as on the wire (= ref "300010")
    name = "Pump speed"

Addresses: ``address`` is 0-based, as on the wire and as the inventory shows
it.  ``ref`` is the 1-based Modicon reference, a string whose first digit
names the table (0 coils, 1 discrete inputs, 3 input registers, 4 holding
registers) followed by the 1-based number in 4 or 5 digits: ``"40001"`` and
``"400001"`` are both holding register 0; ``"00001"`` is coil 0.

Parsing is pure (:func:`parse_user_map` takes text); every error is a
:class:`~otsentry.common.errors.ConfigError` naming the file, the key
(``register[2].type``), what was expected, and the line.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Final

from otsentry.agent.inventory._registers import TABLES
from otsentry.common.errors import ConfigError

__all__ = ["UserMap", "RegisterSpec", "load_user_map", "parse_user_map", "parse_ref"]

_TYPES: Final = ("bool", "u16", "i16", "u32", "i32", "float32")
_ORDERS: Final = ("big", "little")
_REF_TABLES: Final = {"0": "coils", "1": "discrete_inputs", "3": "input_registers",
                      "4": "holding_registers"}
_KEYS: Final = frozenset({"server", "unit_id", "table", "address", "ref", "name", "type",
                          "word_order", "eng_unit", "scale", "offset", "description"})
_TOML_LINE: Final = re.compile(r"line (\d+)")


class RegisterSpec:
    """What the user map says about one register (or a 32-bit pair starting at it)."""

    __slots__ = ("server", "unit_id", "table", "address", "name", "type", "word_order",
                 "eng_unit", "scale", "offset", "description", "line")

    def __init__(self, **kw: Any) -> None:
        for k in self.__slots__:
            setattr(self, k, kw.get(k))
        if self.word_order is None:
            self.word_order = "big"

    def describe(self, value: Any) -> dict[str, Any]:
        """Name, unit and the scaled value for output."""
        out: dict[str, Any] = {"name": self.name}
        if self.eng_unit is not None:
            out["eng_unit"] = self.eng_unit
        if self.description is not None:
            out["description"] = self.description
        if value is not None and (self.scale is not None or self.offset is not None):
            out["scaled"] = value * (1.0 if self.scale is None else self.scale) + (self.offset or 0.0)
        return out

    def __repr__(self) -> str:
        return (f"RegisterSpec({self.server}, unit={self.unit_id}, {self.table}, {self.address}, "
                f"{self.name!r}, {self.type})")


class UserMap:
    """Lookup of :class:`RegisterSpec` by (server ip, unit, table, address).

    The most specific entry wins: server and unit given, then server only, then
    unit only, then neither.
    """

    def __init__(self, specs: list[RegisterSpec], path: str = "<string>") -> None:
        self.path = path
        self.specs = specs
        self._index = {(s.server, s.unit_id, s.table, s.address): s for s in specs}

    def lookup(self, ip: str, unit: int, table: str, address: int) -> RegisterSpec | None:
        idx = self._index
        return (idx.get((ip, unit, table, address)) or idx.get((ip, None, table, address))
                or idx.get((None, unit, table, address)) or idx.get((None, None, table, address)))

    def __len__(self) -> int:
        return len(self.specs)


def load_user_map(path: str | Path) -> UserMap:
    """Read and validate a user map file.

    Raises:
        ConfigError: the file cannot be read or is invalid (file, key, expected, line).
    """
    p = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(p, "", f"a readable TOML file ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(p, "", f"UTF-8 text (bad byte at offset {exc.start})") from None
    return parse_user_map(text, p)


def parse_user_map(text: str, path: str = "<string>") -> UserMap:
    """Validate user map TOML text; ``path`` is only used in error messages.

    Raises:
        ConfigError: naming the file, the key, what was expected and the line.
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = _TOML_LINE.search(str(exc))
        raise ConfigError(path, "", f"valid TOML ({exc})",
                          int(m.group(1)) if m else None) from None
    unknown = sorted(set(doc) - {"register"})
    if unknown:
        raise ConfigError(path, unknown[0], "only [[register]] tables at the top level",
                          _line_of(text, unknown[0]))
    entries = doc.get("register", [])
    if not isinstance(entries, list):
        raise ConfigError(path, "register", "an array of tables ([[register]])",
                          _line_of(text, "register"))
    lines = _entry_lines(text)
    specs = [_spec(e, i, path, lines[i] if i < len(lines) else None)
             for i, e in enumerate(entries)]
    return UserMap(specs, path)


def _entry_lines(text: str) -> list[int]:
    """Line numbers (1-based) of each ``[[register]]`` header, in order."""
    return [n for n, line in enumerate(text.splitlines(), 1)
            if re.match(r"\s*\[\[\s*register\s*\]\]", line)]


def _line_of(text: str, key: str) -> int | None:
    for n, line in enumerate(text.splitlines(), 1):
        if re.match(rf"\s*\[*\s*{re.escape(key)}\b", line):
            return n
    return None


def _spec(e: Any, i: int, path: str, line: int | None) -> RegisterSpec:
    where = f"register[{i}]"

    def bad(key: str, expected: str) -> ConfigError:
        return ConfigError(path, f"{where}.{key}" if key else where, expected, line)

    if not isinstance(e, dict):
        raise bad("", "a table")
    unknown = sorted(set(e) - _KEYS)
    if unknown:
        raise bad(unknown[0], "one of " + ", ".join(sorted(_KEYS)))
    table, address = _where(e, bad)
    server = _opt(e, "server", str, "an IP address as a string", bad)
    unit = _opt(e, "unit_id", int, "an integer unit id 0-255", bad)
    if unit is not None and not 0 <= unit <= 255:
        raise bad("unit_id", "an integer unit id 0-255")
    kind = _choice(e, "type", _TYPES, bad)
    order = _choice(e, "word_order", _ORDERS, bad)
    if table in ("coils", "discrete_inputs") and kind not in (None, "bool"):
        raise bad("type", f"bool (or nothing) for {table}")
    num = (int, float)
    return RegisterSpec(server=server, unit_id=unit, table=table, address=address,
                        name=_opt(e, "name", str, "a string", bad), type=kind, word_order=order,
                        eng_unit=_opt(e, "eng_unit", str, "a string", bad),
                        scale=_opt(e, "scale", num, "a number", bad),
                        offset=_opt(e, "offset", num, "a number", bad),
                        description=_opt(e, "description", str, "a string", bad), line=line)


def _opt(e: dict, key: str, typ: Any, expected: str, bad: Any) -> Any:
    v = e.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, typ):
        raise bad(key, expected)
    return v


def _choice(e: dict, key: str, choices: tuple[str, ...], bad: Any) -> str | None:
    v = e.get(key)
    if v is not None and v not in choices:
        raise bad(key, "one of " + ", ".join(choices))
    return v


def _where(e: dict, bad: Any) -> tuple[str, int]:
    """(table, 0-based address) from ``ref`` or ``table`` + ``address``."""
    table = _choice(e, "table", TABLES, bad)
    if "ref" in e:
        ref = e["ref"]
        parsed = parse_ref(ref) if isinstance(ref, str) else None
        if parsed is None:
            raise bad("ref", 'a Modicon reference string such as "400001" or "40001" '
                             "(first digit 0, 1, 3 or 4; then 1-65536)")
        if table is not None and table != parsed[0]:
            raise bad("table", f"{parsed[0]} (as ref {ref!r} says) or no table")
        if "address" in e and e["address"] != parsed[1]:
            raise bad("address", f"{parsed[1]} (0-based, as ref {ref!r} says) or no address")
        return parsed
    if table is None:
        raise bad("table", "one of " + ", ".join(TABLES) + ' (or a ref such as "400001")')
    address = e.get("address")
    if isinstance(address, bool) or not isinstance(address, int) or not 0 <= address <= 65535:
        raise bad("address", "an integer 0-65535 (0-based, as on the wire)")
    return table, address


def parse_ref(ref: str) -> tuple[str, int] | None:
    """``"400001"`` -> (``holding_registers``, 0); None when it is no Modicon reference."""
    ref = ref.strip()
    if not ref.isascii() or not ref.isdigit() or len(ref) not in (5, 6):
        return None
    table = _REF_TABLES.get(ref[0])
    number = int(ref[1:])
    if table is None or not 1 <= number <= 65536:
        return None
    return table, number - 1
