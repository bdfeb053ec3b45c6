"""The register map of one device: per table, the ranges used and the values seen.

Tables: ``coils``, ``discrete_inputs``, ``holding_registers``, ``input_registers``
and ``file_records/<file number>`` (counts only).  Addresses are 0-based, as on
the wire; :func:`modicon_ref` gives the 1-based reference (``400001``) beside them.

Cost and bounds (per table, see :class:`Limits`): at most ``max_ranges``
(kind, address, quantity) ranges, ``max_registers`` addresses with values and
``max_clients_per_range`` clients per range; what does not fit is counted in
``dropped``, never stored.  A read whose values equal the range's previous read
costs one tuple comparison: polling of unchanged values does no per-register
work.  Per-register statistics (range of values, changes, type evidence) come
from every changed read for the first :data:`FULL_READS` changed reads of a
range, then from one changed read in :data:`SAMPLE_EVERY` (values that move on
every poll would otherwise cost more than decoding them); the last value of
each register and its time are always exact, taken from the latest read.
Type evidence for 32-bit pairs is taken from at most
:data:`~._types.MAX_PAIR_SAMPLES` samples per pair.
"""

from __future__ import annotations

from typing import Any, Final

from otsentry.agent.inventory._types import (
    PairStats,
    analyse_pairs,
    choose_pairs,
    guess_single,
    interpret,
)
from otsentry.agent.modbus import events as _events

__all__ = ["RegisterTable", "Register", "RangeStat", "Use", "modicon_ref", "TABLES", "BIT_TABLES"]

TABLES: Final = ("coils", "discrete_inputs", "input_registers", "holding_registers")
BIT_TABLES: Final = frozenset({"coils", "discrete_inputs"})
#: First digit of the 1-based Modicon reference of each table.
_REF_DIGIT: Final = {"coils": 0, "discrete_inputs": 1, "input_registers": 3,
                     "holding_registers": 4}
READ, WRITE = 0, 1
#: Changed reads of a range that all feed the per-register statistics ...
FULL_READS: Final = 8
#: ... and after those, one changed read in this many does.
SAMPLE_EVERY: Final = 16
_KIND_NAMES: Final = ("read", "write")


def modicon_ref(table: str, address: int) -> str | None:
    """The 1-based Modicon reference of a 0-based address: ``holding_registers``, 0 -> ``400001``.

    Six digits (``4xxxxx``) so every address 0-65535 has one; None for file records.
    """
    digit = _REF_DIGIT.get(table)
    return None if digit is None else f"{digit}{address + 1:05d}"


class Register:
    """Values seen at one address: last value, when it last changed, unsigned and signed range."""

    __slots__ = ("last", "changed_ts", "umin", "umax", "smin", "smax", "changes")

    def __init__(self, value: int, ts: int) -> None:
        self.last = value
        self.changed_ts = ts
        self.umin = self.umax = value
        s = value - 0x10000 if value >= 0x8000 else value
        self.smin = self.smax = s
        self.changes = 0

    def update(self, value: int, ts: int) -> None:
        if value == self.last:
            return
        self.last = value
        self.changed_ts = ts
        self.changes += 1
        if value < self.umin:
            self.umin = value
        elif value > self.umax:
            self.umax = value
        s = value - 0x10000 if value >= 0x8000 else value
        if s < self.smin:
            self.smin = s
        elif s > self.smax:
            self.smax = s

    def to_state(self) -> list[int]:
        return [self.last, self.changed_ts, self.umin, self.umax, self.smin, self.smax,
                self.changes]

    @classmethod
    def from_state(cls, s: list[int]) -> Register:
        r = cls(s[0], s[1])
        r.last, r.changed_ts, r.umin, r.umax, r.smin, r.smax, r.changes = s
        return r


class Use:
    """How often one client used something (a range, a device), first and last time.

    Plain fields, not a list: a read updates them in place, with no new number objects.
    """

    __slots__ = ("count", "first_ts", "last_ts")

    def __init__(self, count: int, first_ts: int, last_ts: int) -> None:
        self.count, self.first_ts, self.last_ts = count, first_ts, last_ts

    def seen(self, ts: int) -> None:
        """One more use at ``ts``."""
        self.count += 1
        if ts > self.last_ts:
            self.last_ts = ts

    def to_state(self) -> list[int]:
        return [self.count, self.first_ts, self.last_ts]


class RangeStat:
    """One range read or written: how often, by which clients, its last values."""

    __slots__ = ("count", "first_ts", "last_ts", "clients", "last", "changed", "changed_ts")

    def __init__(self, ts: int) -> None:
        self.count = 0
        self.changed = 0
        self.first_ts = self.last_ts = self.changed_ts = ts
        #: client asset id -> its use of the range
        self.clients: dict[str, Use] = {}
        self.last: Any = None

    def to_state(self) -> list[Any]:
        last = self.last.hex() if isinstance(self.last, bytes) else self.last
        return [self.count, self.first_ts, self.last_ts,
                {c: u.to_state() for c, u in self.clients.items()},
                [type(self.last).__name__, last], self.changed, self.changed_ts]

    @classmethod
    def from_state(cls, s: list[Any]) -> RangeStat:
        r = cls(s[1])
        r.count, r.first_ts, r.last_ts = s[0], s[1], s[2]
        r.clients = {c: Use(*u) for c, u in s[3].items()}
        kind, last = s[4]
        r.last = bytes.fromhex(last) if kind == "bytes" else tuple(last) if kind == "tuple" else last
        r.changed, r.changed_ts = s[5], s[6]
        return r

    def sampled(self, ts: int) -> bool:
        """Count a changed read; True when it feeds the per-register statistics."""
        self.changed += 1
        self.changed_ts = ts
        return self.changed <= FULL_READS or not self.changed % SAMPLE_EVERY


class RegisterTable:
    """Ranges and values of one table of one device."""

    __slots__ = ("name", "limits", "ranges", "registers", "pairs", "dropped")

    def __init__(self, name: str, limits: Any) -> None:
        self.name = name
        self.limits = limits
        self.ranges: dict[tuple[int, int, int], RangeStat] = {}
        self.registers: dict[int, Register] = {}
        self.pairs: dict[int, PairStats] = {}
        #: what did not fit: {"ranges": n, "registers": n, "clients": n, "pairs": n}
        self.dropped: dict[str, int] = {}

    def _drop(self, what: str, n: int = 1) -> None:
        self.dropped[what] = self.dropped.get(what, 0) + n

    def _range(self, kind: int, address: int, quantity: int, client: str,
               ts: int) -> RangeStat | None:
        key = (kind, address, quantity)
        r = self.ranges.get(key)
        if r is None:
            if len(self.ranges) >= self.limits.max_ranges:
                self._drop("ranges")
                return None
            self.ranges[key] = r = RangeStat(ts)
        r.count += 1
        if ts > r.last_ts:
            r.last_ts = ts
        c = r.clients.get(client)
        if c is None:
            if len(r.clients) >= self.limits.max_clients_per_range:
                self._drop("clients")
            else:
                r.clients[client] = Use(1, ts, ts)
        else:
            c.seen(ts)
        return r

    def read(self, address: int, values: Any, client: str, ts: int) -> None:
        """A read of ``values`` (a register tuple, or 0/1 bits as a tuple) at ``address``."""
        r = self._range(READ, address, len(values), client, ts)
        if r is None or values == r.last:
            return
        self.changed_read(r, address, values, ts)

    def changed_read(self, r: RangeStat, address: int, values: Any, ts: int) -> None:
        """The part of :meth:`read` after the range was counted and its values differ."""
        old, r.last = r.last, values
        if r.sampled(ts):
            self._values(address, values, old, ts)

    def read_bits(self, address: int, quantity: int, packed: bytes, client: str, ts: int) -> None:
        """A read of ``quantity`` coils or inputs, ``packed`` 8 per byte as on the wire."""
        r = self._range(READ, address, quantity, client, ts)
        if r is None or packed == r.last:
            return
        self.changed_bits(r, address, quantity, packed, ts)

    def changed_bits(self, r: RangeStat, address: int, quantity: int, packed: bytes,
                     ts: int) -> None:
        """The part of :meth:`read_bits` after the range was counted and its bits differ."""
        r.last = packed
        if r.sampled(ts):
            self._values(address, tuple(_events.unpack_bits(packed, quantity)), None, ts)

    def write(self, address: int, quantity: int, values: Any, client: str, ts: int,
              confirmed: bool) -> None:
        """A write request; its values are applied when the server ``confirmed`` it."""
        r = self._range(WRITE, address, quantity, client, ts)
        if r is not None and values is not None:
            r.last = values
        if confirmed and values is not None:
            self._values(address, values, None, ts)

    def count_only(self, kind: int, address: int, quantity: int, client: str, ts: int) -> None:
        """A read or write whose values are not tracked (file records)."""
        self._range(kind, address, quantity, client, ts)

    def _values(self, address: int, values: Any, old: Any, ts: int) -> None:
        regs = self.registers
        same_len = old is not None and len(old) == len(values)
        for k, v in enumerate(values):
            reg = regs.get(address + k)
            if reg is None:
                if len(regs) >= self.limits.max_registers:
                    self._drop("registers")
                    continue
                regs[address + k] = Register(v, ts)
            else:
                reg.update(v, ts)
        if self.name not in ("coils", "discrete_inputs") and len(values) > 1:
            dropped = analyse_pairs(self.pairs, address, values, self.limits.max_registers,
                                    old if same_len else None)
            if dropped:
                self._drop("pairs", dropped)

    def value(self, address: int) -> int | None:
        """The last value at ``address`` (for mask writes), or None."""
        reg = self.registers.get(address)
        return None if reg is None else self._current(address, reg, self._latest())[0]

    def _latest(self) -> dict[int, tuple[int, int, int]]:
        """Per address, (read time, value, time it changed) from the latest read covering it."""
        latest: dict[int, tuple[int, int, int]] = {}
        for (kind, addr, qty), r in self.ranges.items():
            if kind != READ or r.last is None:
                continue
            vals = (_events.unpack_bits(r.last, qty) if isinstance(r.last, bytes) else r.last)
            for k, v in enumerate(vals):
                got = latest.get(addr + k)
                if got is None or got[0] < r.last_ts:
                    latest[addr + k] = (r.last_ts, v, r.changed_ts)
        return latest

    @staticmethod
    def _current(a: int, reg: Register, latest: dict[int, tuple[int, int, int]]) -> tuple[int, int]:
        """(value, time it changed) of a register: the newest of its latest read and its record."""
        got = latest.get(a)
        if got is None or got[0] < reg.changed_ts or got[1] == reg.last:
            return reg.last, reg.changed_ts
        return got[1], got[2]

    # --- state and output -----------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        return {
            "ranges": [[*k, r.to_state()] for k, r in self.ranges.items()],
            "registers": [[a, r.to_state()] for a, r in self.registers.items()],
            "pairs": [[a, p.to_state()] for a, p in self.pairs.items()],
            "dropped": self.dropped,
        }

    @classmethod
    def from_state(cls, name: str, limits: Any, s: dict[str, Any]) -> RegisterTable:
        t = cls(name, limits)
        t.ranges = {(k, a, q): RangeStat.from_state(r) for k, a, q, r in s["ranges"]}
        t.registers = {a: Register.from_state(r) for a, r in s["registers"]}
        t.pairs = {a: PairStats.from_state(p) for a, p in s["pairs"]}
        t.dropped = dict(s["dropped"])
        return t

    def to_dict(self, user: Any = None) -> dict[str, Any]:
        """Ranges and register entries (types guessed or from the user map), as JSON values.

        Args:
            user: a callable ``(table, address) -> RegisterSpec | None`` (user map lookup).
        """
        return {"ranges": self._ranges_dict(),
                "registers": self._registers_dict(user),
                "dropped": dict(sorted(self.dropped.items()))}

    def _ranges_dict(self) -> list[dict[str, Any]]:
        out = []
        for (kind, addr, qty), r in sorted(self.ranges.items()):
            out.append({"kind": _KIND_NAMES[kind], "address": addr, "quantity": qty,
                        "ref": modicon_ref(self.name, addr), "count": r.count,
                        "first_seen": r.first_ts, "last_seen": r.last_ts,
                        "clients": {c: {"count": u.count, "first_seen": u.first_ts,
                                        "last_seen": u.last_ts}
                                    for c, u in sorted(r.clients.items())}})
        return out

    def _seen(self) -> dict[int, int]:
        """Per address, the last capture time a read or confirmed value covered it."""
        seen: dict[int, int] = {}
        for (kind, addr, qty), r in self.ranges.items():
            for a in range(addr, addr + qty):
                if a in self.registers and seen.get(a, 0) < r.last_ts:
                    seen[a] = r.last_ts
        return seen

    def _registers_dict(self, user: Any) -> list[dict[str, Any]]:
        regs = self.registers
        bits = self.name in BIT_TABLES
        pairs = {} if bits else choose_pairs(
            {a: d for a, p in self.pairs.items() if (d := p.decision()) is not None
             and a + 1 in regs})
        specs = {a: user(self.name, a) for a in regs} if user is not None else {}
        seen = self._seen()
        latest = self._latest()
        current = {a: self._current(a, r, latest) for a, r in regs.items()}
        out: list[dict[str, Any]] = []
        skip = -1
        for a in sorted(regs):
            if a == skip:
                continue
            entry, width = self._entry(a, bits, pairs.get(a), specs.get(a), seen, current)
            if width == 2:
                skip = a + 1
            out.append(entry)
        return out

    def _entry(self, a: int, bits: bool, pair: tuple[str, str] | None, spec: Any,
               seen: dict[int, int], current: dict[int, tuple[int, int]]) -> tuple[dict[str, Any], int]:
        reg = self.registers[a]
        e: dict[str, Any] = {"address": a, "ref": modicon_ref(self.name, a)}
        if spec is not None:
            kind, order, source = spec.type or "u16", spec.word_order, "user"
        elif bits:
            kind, order, source = "bool", "big", "wire"
        elif pair is not None:
            kind, order, source = pair[0], pair[1], "guess"
        else:
            kind, order, source = guess_single(reg.umin, reg.umax, reg.smin, reg.smax), "big", "guess"
        width = 2 if kind in ("u32", "i32", "float32") and a + 1 in self.registers else 1
        words = (current[a][0],) if width == 1 else (current[a][0], current[a + 1][0])
        e.update(type=kind, source=source, registers=width)
        if width == 2:
            e["word_order"] = order
        e["raw"] = list(words)
        e["value"] = interpret(kind, order, words)
        e.update(self._value_range(a, kind, order, width, reg, e["value"]))
        e["changes"] = reg.changes if width == 1 else reg.changes + self.registers[a + 1].changes
        e["changed"] = max(current[a][1], current[a + 1][1]) if width == 2 else current[a][1]
        e["last_seen"] = max(seen.get(a, 0), e["changed"])
        if spec is not None:
            e.update(spec.describe(e["value"]))
        return e, width

    def _value_range(self, a: int, kind: str, order: str, width: int, reg: Register,
                     value: Any) -> dict[str, Any]:
        lo: int | float | None  # not float: a compiled float would turn ints into floats
        hi: int | float | None
        if width == 1:
            lo, hi = (reg.smin, reg.smax) if kind == "i16" else (reg.umin, reg.umax)
        else:
            p = self.pairs.get(a)
            lo, hi = p.value_range(kind, order) if p is not None else (None, None)
        if value is not None:  # the exact last value is always inside the range shown
            lo = value if lo is None else min(lo, value)
            hi = value if hi is None else max(hi, value)
        return {"min": lo, "max": hi}
