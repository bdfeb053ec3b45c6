"""What a write request touches: table, addresses and values, per function code.

One table (STYLE rule 4) shared by the write policy, the baseline and the
process-value families.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from otsentry.agent.modbus._events import _ReadRequest

__all__ = ["WRITES", "write_points", "read_range", "read_last"]

Points = tuple[str, int, tuple[int, ...]]


def _single(m: Any) -> Points:
    table = "coils" if m.fc == 5 else "holding_registers"
    value = (1 if m.value == 0xFF00 else 0) if m.fc == 5 else m.value
    return table, m.address, (value,)


def _coils(m: Any) -> Points:
    return "coils", m.address, tuple(m.values())


def _registers(m: Any) -> Points:
    return "holding_registers", m.address, tuple(m.registers)


def _mask(m: Any) -> Points:
    return "holding_registers", m.address, ()


def _read_write(m: Any) -> Points:
    return "holding_registers", m.write_address, tuple(m.registers)


def _file(m: Any) -> Points:
    return "file_records", 0, ()


#: write function code -> f(request) -> (table, first address, values written)
WRITES: Final[dict[int, Callable[[Any], Points]]] = {
    5: _single, 6: _single, 15: _coils, 16: _registers, 21: _file, 22: _mask, 23: _read_write,
}


def write_points(msg: Any) -> Points | None:
    """(table, first address, values) of a decoded write request, None for anything else."""
    f = WRITES.get(msg.fc)
    if f is None or msg.KIND != "message":
        return None
    return f(msg)


def read_last(msg: _ReadRequest) -> int:
    """The last address a read request (function codes 1-4) reads: with its first,
    ``msg.address``, the range :func:`read_range` gives, with no tuple made."""
    first: int = msg.address
    return first + max(msg.quantity, 1) - 1


def read_range(msg: Any) -> tuple[int, int] | None:
    """(first, last) address a request reads or writes, None when it has no address range."""
    if isinstance(msg, _ReadRequest):  # function codes 1-4: most requests, read natively
        return msg.address, read_last(msg)
    addr = getattr(msg, "address", None)
    if addr is None:
        addr = getattr(msg, "write_address", None)
        if addr is None:
            return None
        return addr, addr + max(msg.write_quantity, 1) - 1
    qty = getattr(msg, "quantity", 1)
    return addr, addr + max(qty, 1) - 1
