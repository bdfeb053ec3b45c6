"""Test helpers that ship with the package: build both ends of a Modbus/TCP conversation.

    conv = Conversation(unit=1)
    req, rsp = conv.exchange(3, address=100, registers=(1, 2, 3))
    req, rsp = conv.exception(16, 2, address=0, registers=(7,))
    conv.client_bytes, conv.server_bytes     # every ADU so far, per direction

Each builder in :data:`PDU_BUILDERS` turns keyword fields (named as on the
decoded events in :mod:`otsentry.agent.modbus.events`) into the request PDU
and the response PDU of one function code, following [AP] (MODBUS Application
Protocol V1.1b3) to the byte.  Quantities default to the number of values
given; pass them explicitly (or use :func:`adu` with hand-made PDUs) to build
traffic that breaks the specification on purpose.

No I/O, no randomness: the same calls give the same bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

__all__ = [
    "PDU_BUILDERS",
    "Conversation",
    "Exchange",
    "adu",
    "pack_bits",
    "request_pdu",
    "response_pdu",
]


class Exchange(NamedTuple):
    """The two ADUs of one transaction (MBAP header included)."""

    request: bytes
    response: bytes


def adu(tid: int, unit: int, pdu: bytes, protocol: int = 0, length: int | None = None) -> bytes:
    """Wrap a PDU in an MBAP header ([TCP] §3.1.3); ``length`` overrides the computed one."""
    size = len(pdu) + 1 if length is None else length
    return struct.pack(">HHHB", tid & 0xFFFF, protocol, size, unit) + pdu


def pack_bits(values: Iterable[int]) -> bytes:
    """Pack 0/1 values 8 per byte, first value in the least significant bit ([AP] §6.1)."""
    vals = list(values)
    out = bytearray((len(vals) + 7) // 8)
    for i, v in enumerate(vals):
        if v:
            out[i // 8] |= 1 << (i % 8)
    return bytes(out)


def _regs(values: Sequence[int]) -> bytes:
    return struct.pack(f">{len(values)}H", *values)


Pdus = tuple[bytes, bytes]


def _read_bits(fc: int, address: int = 0, values: Sequence[int] = (0,),
               quantity: int | None = None) -> Pdus:
    qty = len(values) if quantity is None else quantity
    data = pack_bits(values)
    return struct.pack(">BHH", fc, address, qty), bytes([fc, len(data)]) + data


def _read_registers(fc: int, address: int = 0, registers: Sequence[int] = (0,),
                    quantity: int | None = None) -> Pdus:
    qty = len(registers) if quantity is None else quantity
    body = _regs(registers)
    return struct.pack(">BHH", fc, address, qty), bytes([fc, len(body)]) + body


def _echo_u16(fc: int, address: int = 0, value: int = 0xFF00) -> Pdus:
    pdu = struct.pack(">BHH", fc, address, value)
    return pdu, pdu


def _write_register(fc: int, address: int = 0, value: int = 0) -> Pdus:
    return _echo_u16(fc, address, value)


def _exception_status(fc: int, status: int = 0) -> Pdus:
    return bytes([fc]), bytes([fc, status])


def _diagnostics(fc: int, sub_function: int = 0, data: bytes = b"\x00\x00",
                 response_data: bytes | None = None) -> Pdus:
    rsp = data if response_data is None else response_data
    return struct.pack(">BH", fc, sub_function) + data, struct.pack(">BH", fc, sub_function) + rsp


def _comm_event_counter(fc: int, status: int = 0, event_count: int = 0) -> Pdus:
    return bytes([fc]), struct.pack(">BHH", fc, status, event_count)


def _comm_event_log(fc: int, status: int = 0, event_count: int = 0, message_count: int = 0,
                    events: bytes = b"") -> Pdus:
    body = struct.pack(">HHH", status, event_count, message_count) + events
    return bytes([fc]), bytes([fc, len(body)]) + body


def _write_coils(fc: int, address: int = 0, values: Sequence[int] = (1,),
                 quantity: int | None = None) -> Pdus:
    qty = len(values) if quantity is None else quantity
    data = pack_bits(values)
    return (struct.pack(">BHHB", fc, address, qty, len(data)) + data,
            struct.pack(">BHH", fc, address, qty))


def _write_registers(fc: int, address: int = 0, registers: Sequence[int] = (0,),
                     quantity: int | None = None) -> Pdus:
    qty = len(registers) if quantity is None else quantity
    body = _regs(registers)
    return (struct.pack(">BHHB", fc, address, qty, len(body)) + body,
            struct.pack(">BHH", fc, address, qty))


def _report_server_id(fc: int, server_id: bytes = b"otsentry",
                      run_indicator: bool | None = True) -> Pdus:
    data = server_id if run_indicator is None else server_id + (b"\xff" if run_indicator else b"\x00")
    return bytes([fc]), bytes([fc, len(data)]) + data


Record = tuple[int, int, Sequence[int]]


def _read_file_record(fc: int, records: Sequence[Record] = ((1, 0, (0,)),)) -> Pdus:
    req = b"".join(struct.pack(">BHHH", 6, f, r, len(regs)) for f, r, regs in records)
    rsp = b"".join(bytes([1 + 2 * len(regs), 6]) + _regs(regs) for _f, _r, regs in records)
    return bytes([fc, len(req)]) + req, bytes([fc, len(rsp)]) + rsp


def _write_file_record(fc: int, records: Sequence[Record] = ((1, 0, (0,)),)) -> Pdus:
    body = b"".join(struct.pack(">BHHH", 6, f, r, len(regs)) + _regs(regs)
                    for f, r, regs in records)
    pdu = bytes([fc, len(body)]) + body
    return pdu, pdu


def _mask_write(fc: int, address: int = 0, and_mask: int = 0xFFFF, or_mask: int = 0) -> Pdus:
    pdu = struct.pack(">BHHH", fc, address, and_mask, or_mask)
    return pdu, pdu


def _read_write_registers(fc: int, read_address: int = 0, registers: Sequence[int] = (0,),
                          write_address: int = 0, write_registers: Sequence[int] = (0,),
                          read_quantity: int | None = None) -> Pdus:
    rqty = len(registers) if read_quantity is None else read_quantity
    wbody = _regs(write_registers)
    req = struct.pack(">BHHHHB", fc, read_address, rqty, write_address, len(write_registers),
                      len(wbody)) + wbody
    rbody = _regs(registers)
    return req, bytes([fc, len(rbody)]) + rbody


def _read_fifo(fc: int, address: int = 0, registers: Sequence[int] = ()) -> Pdus:
    return (struct.pack(">BH", fc, address),
            struct.pack(">BHH", fc, 2 + 2 * len(registers), len(registers)) + _regs(registers))


def _device_id(fc: int, read_code: int = 1, object_id: int = 0,
               objects: Sequence[tuple[int, bytes]] = ((0, b"otsentry"),),
               conformity_level: int = 0x81, more_follows: bool = False,
               next_object_id: int = 0, mei_type: int = 14) -> Pdus:
    objs = b"".join(bytes([oid, len(val)]) + val for oid, val in objects)
    head = bytes([fc, mei_type, read_code, conformity_level, 0xFF if more_follows else 0,
                  next_object_id, len(objects)])
    return bytes([fc, mei_type, read_code, object_id]), head + objs


def _umas(fc: int, session: int = 0, function: int = 0x02, data: bytes = b"",
          status: int = 0xFE, response_data: bytes = b"") -> Pdus:
    return bytes([fc, session, function]) + data, bytes([fc, session, status]) + response_data


#: Function code -> builder of (request PDU, response PDU) from keyword fields.
PDU_BUILDERS: dict[int, Callable[..., Pdus]] = {
    1: _read_bits, 2: _read_bits, 3: _read_registers, 4: _read_registers,
    5: _echo_u16, 6: _write_register, 7: _exception_status, 8: _diagnostics,
    11: _comm_event_counter, 12: _comm_event_log, 15: _write_coils, 16: _write_registers,
    17: _report_server_id, 20: _read_file_record, 21: _write_file_record, 22: _mask_write,
    23: _read_write_registers, 24: _read_fifo, 43: _device_id, 90: _umas,
}


def request_pdu(fc: int, **fields: Any) -> bytes:
    """The request PDU of ``fc`` with ``fields`` (raises KeyError for codes without a builder)."""
    return PDU_BUILDERS[fc](fc, **fields)[0]


def response_pdu(fc: int, **fields: Any) -> bytes:
    """The response PDU of ``fc`` with ``fields``."""
    return PDU_BUILDERS[fc](fc, **fields)[1]


class Conversation:
    """Both ends of one Modbus/TCP connection, one transaction at a time.

    Args:
        unit: unit id put in every MBAP header unless a call overrides it.
        first_tid: transaction id of the first exchange; it increments by one
            per exchange (modulo 2**16) unless a call passes ``tid``.

    Attributes:
        exchanges: every :class:`Exchange` built, in order.
    """

    def __init__(self, unit: int = 1, first_tid: int = 1) -> None:
        self.unit = unit
        self.next_tid = first_tid & 0xFFFF
        self.exchanges: list[Exchange] = []

    def _ids(self, tid: int | None, unit: int | None) -> tuple[int, int]:
        if tid is None:
            tid, self.next_tid = self.next_tid, (self.next_tid + 1) & 0xFFFF
        return tid, self.unit if unit is None else unit

    def pdus(self, req: bytes, rsp: bytes, tid: int | None = None,
             unit: int | None = None) -> Exchange:
        """Wrap a request and a response PDU as one exchange."""
        tid, unit = self._ids(tid, unit)
        ex = Exchange(adu(tid, unit, req), adu(tid, unit, rsp))
        self.exchanges.append(ex)
        return ex

    def exchange(self, fc: int, *, tid: int | None = None, unit: int | None = None,
                 **fields: Any) -> Exchange:
        """Build the request and the normal response of function ``fc``.

        Raises:
            KeyError: ``fc`` has no builder (use :meth:`raw`).
            TypeError: a field does not belong to ``fc``.
        """
        req, rsp = PDU_BUILDERS[fc](fc, **fields)
        return self.pdus(req, rsp, tid, unit)

    def exception(self, fc: int, code: int, *, tid: int | None = None, unit: int | None = None,
                  **fields: Any) -> Exchange:
        """Build a request of ``fc`` answered by exception ``code`` ([AP] §7)."""
        req = PDU_BUILDERS[fc](fc, **fields)[0] if fc in PDU_BUILDERS else bytes([fc])
        return self.pdus(req, bytes([fc | 0x80, code]), tid, unit)

    def raw(self, fc: int, request: bytes = b"", response: bytes = b"", *,
            tid: int | None = None, unit: int | None = None) -> Exchange:
        """Build an exchange of any function code with raw data after the code."""
        return self.pdus(bytes([fc]) + request, bytes([fc]) + response, tid, unit)

    @property
    def client_bytes(self) -> bytes:
        """Every request ADU so far, as the client's byte stream."""
        return b"".join(ex.request for ex in self.exchanges)

    @property
    def server_bytes(self) -> bytes:
        """Every response ADU so far, as the server's byte stream."""
        return b"".join(ex.response for ex in self.exchanges)
