"""PDU decoding: one function per (direction, function code), chosen from tables.

Each decoder takes the whole PDU (function code first), the MBAP transaction
and unit ids, the capture time and the frame number, and returns a message from
:mod:`._events`.  Structural problems (a PDU too short for its function, a byte
count that disagrees with the length) raise :class:`MalformedFrame`, the only
error this module raises.  Spec limits that leave the message decodable
(a quantity of 0, a coil value other than 0x0000/0xFF00) are listed in the
message's ``violations`` instead.

Complexity: every decoder is O(len(pdu)) with at most 253 bytes, so a hostile
stream costs no more than a benign one per byte.
"""

from __future__ import annotations

from collections.abc import Callable
from struct import Struct

from otsentry.agent.modbus import _events as ev
from otsentry.agent.modbus import _spec as spec
from otsentry.common.errors import MalformedFrame

__all__ = ["decode_request", "decode_response", "REQUEST_DECODERS", "RESPONSE_DECODERS"]

Decoder = Callable[[bytes, int, int, int, int], ev.Message]

_U16 = Struct(">H")
_U16x2 = Struct(">HH")
_U16x3 = Struct(">HHH")
_RW = Struct(">HHHHB")
_WMULTI = Struct(">HHB")
_FILE_SUB = Struct(">BHHH")
_REG_STRUCTS: dict[int, Struct] = {n: Struct(f">{n}H") for n in range(0, 128)}


def _registers(pdu: bytes, start: int, count: int) -> tuple[int, ...]:
    st = _REG_STRUCTS.get(count) or Struct(f">{count}H")
    return st.unpack_from(pdu, start)


def _need(pdu: bytes, size: int, exact: bool = True) -> None:
    n = len(pdu)
    if n < size:
        raise MalformedFrame("short-pdu", n, pdu)
    if exact and n != size:
        raise MalformedFrame("bad-pdu-length", size, pdu)


def _range_violations(address: int, quantity: int, limit: int) -> tuple[str, ...]:
    out = []
    if not 1 <= quantity <= limit:
        out.append("quantity-out-of-range")
    if address + quantity > 0x10000:
        out.append("address-out-of-range")
    return tuple(out)


# --- requests --------------------------------------------------------------------------------


def _read_request(cls: Callable[..., ev.Message], limit: int) -> Decoder:
    def decode(pdu: bytes, tid: int, unit: int, ts: int, frame: int) -> ev.Message:
        if len(pdu) != 5:
            _need(pdu, 5)
        address, quantity = _U16x2.unpack_from(pdu, 1)
        if 1 <= quantity <= limit and address + quantity <= 0x10000:
            return cls(tid, unit, ts, frame, address, quantity)
        return cls(tid, unit, ts, frame, address, quantity, _range_violations(address, quantity, limit))
    return decode


def _write_single_coil(cls: Callable[..., ev.Message]) -> Decoder:
    def decode(pdu: bytes, tid: int, unit: int, ts: int, frame: int) -> ev.Message:
        _need(pdu, 5)
        address, value = _U16x2.unpack_from(pdu, 1)
        if value in (0xFF00, 0x0000):
            return cls(tid, unit, ts, frame, address, value)
        return cls(tid, unit, ts, frame, address, value, ("bad-coil-value",))
    return decode


def _address_value(cls: Callable[..., ev.Message]) -> Decoder:
    def decode(pdu: bytes, tid: int, unit: int, ts: int, frame: int) -> ev.Message:
        _need(pdu, 5)
        return cls(tid, unit, ts, frame, *_U16x2.unpack_from(pdu, 1))
    return decode


def _no_fields(cls: Callable[..., ev.Message]) -> Decoder:
    def decode(pdu: bytes, tid: int, unit: int, ts: int, frame: int) -> ev.Message:
        _need(pdu, 1)
        return cls(tid, unit, ts, frame)
    return decode


def _diagnostics(cls: Callable[..., ev.Message]) -> Decoder:
    def decode(pdu: bytes, tid: int, unit: int, ts: int, frame: int) -> ev.Message:
        _need(pdu, 3, exact=False)
        (sub,) = _U16.unpack_from(pdu, 1)
        data = pdu[3:]
        if len(data) % 2 and sub != 0:  # [AP] §6.8.1: sub-function 0 echoes any data
            return cls(tid, unit, ts, frame, sub, data, ("odd-data-length",))
        return cls(tid, unit, ts, frame, sub, data)
    return decode


def _byte_count(pdu: bytes, at: int) -> int:
    """Read the byte count at ``at`` and check the PDU ends right after the counted bytes."""
    if len(pdu) <= at:
        raise MalformedFrame("short-pdu", len(pdu), pdu)
    count = pdu[at]
    if len(pdu) != at + 1 + count:
        raise MalformedFrame("byte-count-mismatch", at, pdu)
    return count


def _write_multiple_coils_req(pdu: bytes, tid: int, unit: int, ts: int, frame: int) -> ev.Message:
    _need(pdu, 6, exact=False)
    address, quantity, count = _WMULTI.unpack_from(pdu, 1)
    _byte_count(pdu, 5)
    v = _range_violations(address, quantity, spec.WRITE_COILS_MAX)
    if count != (quantity + 7) // 8:
        v += ("byte-count-quantity-mismatch",)
    return ev.WriteMultipleCoilsRequest(tid, unit, ts, frame, address, quantity, pdu[6:], v)


def _write_multiple_registers_req(pdu: bytes, tid: int, unit: int, ts: int,
                                  frame: int) -> ev.Message:
    _need(pdu, 6, exact=False)
    address, quantity, count = _WMULTI.unpack_from(pdu, 1)
    _byte_count(pdu, 5)
    v = _range_violations(address, quantity, spec.WRITE_REGISTERS_MAX)
    if count != 2 * quantity:
        v += ("byte-count-quantity-mismatch",)
    if count % 2:
        v += ("odd-byte-count",)
    regs = _registers(pdu, 6, count // 2)
    return ev.WriteMultipleRegistersRequest(tid, unit, ts, frame, address, quantity, regs, v)


def _read_file_record_req(pdu: bytes, tid: int, unit: int, ts: int, frame: int) -> ev.Message:
    count = _byte_count(pdu, 1)
    if count % 7:
        raise MalformedFrame("bad-sub-request-length", 1, pdu)
    records = tuple(_FILE_SUB.unpack_from(pdu, off) for off in range(2, 2 + count, 7))
    v: tuple[str, ...] = ()
    if not 0x07 <= count <= 0xF5:
        v += ("byte-count-out-of-range",)
    if any(r[0] != 6 for r in records):
        v += ("bad-reference-type",)
    return ev.ReadFileRecordRequest(tid, unit, ts, frame, records, v)


def _write_file_record(cls: Callable[..., ev.Message]) -> Decoder:
    def decode(pdu: bytes, tid: int, unit: int, ts: int, frame: int) -> ev.Message:
        count = _byte_count(pdu, 1)
        records, off, end = [], 2, 2 + count
        while off < end:
            if end - off < 7:
                raise MalformedFrame("short-sub-request", off, pdu)
            ref, file_no, record_no, length = _FILE_SUB.unpack_from(pdu, off)
            off += 7
            if off + 2 * length > end:
                raise MalformedFrame("sub-request-overrun", off, pdu)
            records.append((ref, file_no, record_no, _registers(pdu, off, length)))
            off += 2 * length
        v = ("bad-reference-type",) if any(r[0] != 6 for r in records) else ()
        return cls(tid, unit, ts, frame, tuple(records), v)
    return decode


def _mask_write(cls: Callable[..., ev.Message]) -> Decoder:
    def decode(pdu: bytes, tid: int, unit: int, ts: int, frame: int) -> ev.Message:
        _need(pdu, 7)
        return cls(tid, unit, ts, frame, *_U16x3.unpack_from(pdu, 1))
    return decode


def _read_write_multiple_req(pdu: bytes, tid: int, unit: int, ts: int, frame: int) -> ev.Message:
    _need(pdu, 10, exact=False)
    raddr, rqty, waddr, wqty, count = _RW.unpack_from(pdu, 1)
    _byte_count(pdu, 9)
    v = _range_violations(raddr, rqty, spec.READ_REGISTERS_MAX)
    v += _range_violations(waddr, wqty, spec.RW_WRITE_REGISTERS_MAX)
    if count != 2 * wqty:
        v += ("byte-count-quantity-mismatch",)
    if count % 2:
        v += ("odd-byte-count",)
    regs = _registers(pdu, 10, count // 2)
    return ev.ReadWriteMultipleRegistersRequest(tid, unit, ts, frame, raddr, rqty, waddr, wqty,
                                                regs, v)


def _read_fifo_req(pdu: bytes, tid: int, unit: int, ts: int, frame: int) -> ev.Message:
    _need(pdu, 3)
    return ev.ReadFifoQueueRequest(tid, unit, ts, frame, _U16.unpack_from(pdu, 1)[0])


def _encapsulated_req(pdu: bytes, tid: int, unit: int, ts: int, frame: int) -> ev.Message:
    _need(pdu, 2, exact=False)
    mei = pdu[1]
    if mei == spec.MEI_DEVICE_ID:
        _need(pdu, 4)
        code, obj = pdu[2], pdu[3]
        v = () if 1 <= code <= 4 else ("bad-read-device-id-code",)
        return ev.ReadDeviceIdentificationRequest(tid, unit, ts, frame, code, obj, v)
    v = () if mei == spec.MEI_CANOPEN else ("unknown-mei-type",)
    return ev.EncapsulatedRequest(tid, unit, ts, frame, mei, pdu[2:], v)


def _umas_req(pdu: bytes, tid: int, unit: int, ts: int, frame: int) -> ev.Message:
    _need(pdu, 3, exact=False)
    return ev.UmasRequest(tid, unit, ts, frame, pdu[1], pdu[2], pdu[3:])


def _raw_request(pdu: bytes, tid: int, unit: int, ts: int, frame: int) -> ev.Message:
    fc = pdu[0]
    v: tuple[str, ...] = ()
    if fc & 0x80:
        v = ("exception-bit-in-request",)
    elif spec.function_class(fc) in ("reserved", "unassigned"):
        v = (f"{spec.function_class(fc)}-function-code",)
    return ev.RawRequest(tid, unit, ts, frame, fc, pdu[1:], v)


# --- responses -------------------------------------------------------------------------------


def _bits_response(cls: Callable[..., ev.Message]) -> Decoder:
    def decode(pdu: bytes, tid: int, unit: int, ts: int, frame: int) -> ev.Message:
        count = _byte_count(pdu, 1)
        if count:
            return cls(tid, unit, ts, frame, count, pdu[2:])
        return cls(tid, unit, ts, frame, count, pdu[2:], ("zero-byte-count",))
    return decode


def _registers_response(cls: Callable[..., ev.Message]) -> Decoder:
    def decode(pdu: bytes, tid: int, unit: int, ts: int, frame: int) -> ev.Message:
        if len(pdu) < 2 or len(pdu) != 2 + pdu[1]:
            _byte_count(pdu, 1)
        count = pdu[1]
        if count & 1:
            raise MalformedFrame("odd-byte-count", 1, pdu)
        if count:
            return cls(tid, unit, ts, frame, count, _registers(pdu, 2, count >> 1))
        return cls(tid, unit, ts, frame, 0, (), ("zero-byte-count",))
    return decode


def _exception_status_rsp(pdu: bytes, tid: int, unit: int, ts: int, frame: int) -> ev.Message:
    _need(pdu, 2)
    return ev.ReadExceptionStatusResponse(tid, unit, ts, frame, pdu[1])


def _comm_event_counter_rsp(pdu: bytes, tid: int, unit: int, ts: int, frame: int) -> ev.Message:
    _need(pdu, 5)
    return ev.GetCommEventCounterResponse(tid, unit, ts, frame, *_U16x2.unpack_from(pdu, 1))


def _comm_event_log_rsp(pdu: bytes, tid: int, unit: int, ts: int, frame: int) -> ev.Message:
    count = _byte_count(pdu, 1)
    if count < 6:
        raise MalformedFrame("short-event-log", 1, pdu)
    status, events, messages = _U16x3.unpack_from(pdu, 2)
    return ev.GetCommEventLogResponse(tid, unit, ts, frame, status, events, messages, pdu[8:])


def _write_multiple_rsp(cls: Callable[..., ev.Message], limit: int) -> Decoder:
    def decode(pdu: bytes, tid: int, unit: int, ts: int, frame: int) -> ev.Message:
        _need(pdu, 5)
        address, quantity = _U16x2.unpack_from(pdu, 1)
        return cls(tid, unit, ts, frame, address, quantity,
                   _range_violations(address, quantity, limit))
    return decode


def _report_server_id_rsp(pdu: bytes, tid: int, unit: int, ts: int, frame: int) -> ev.Message:
    _byte_count(pdu, 1)
    return ev.ReportServerIdResponse(tid, unit, ts, frame, pdu[2:])


def _read_file_record_rsp(pdu: bytes, tid: int, unit: int, ts: int, frame: int) -> ev.Message:
    count = _byte_count(pdu, 1)
    records, off, end = [], 2, 2 + count
    while off < end:
        length = pdu[off]
        if length < 1 or off + 1 + length > end:
            raise MalformedFrame("sub-response-overrun", off, pdu)
        records.append((pdu[off + 1], pdu[off + 2 : off + 1 + length]))
        off += 1 + length
    v = ("bad-reference-type",) if any(r[0] != 6 for r in records) else ()
    return ev.ReadFileRecordResponse(tid, unit, ts, frame, tuple(records), v)


def _read_fifo_rsp(pdu: bytes, tid: int, unit: int, ts: int, frame: int) -> ev.Message:
    _need(pdu, 5, exact=False)
    count, fifo = _U16x2.unpack_from(pdu, 1)
    if len(pdu) != 3 + count or count != 2 + 2 * fifo:
        raise MalformedFrame("byte-count-mismatch", 1, pdu)
    v = ("fifo-count-out-of-range",) if fifo > spec.FIFO_MAX else ()
    return ev.ReadFifoQueueResponse(tid, unit, ts, frame, _registers(pdu, 5, fifo), v)


def _encapsulated_rsp(pdu: bytes, tid: int, unit: int, ts: int, frame: int) -> ev.Message:
    _need(pdu, 2, exact=False)
    mei = pdu[1]
    if mei != spec.MEI_DEVICE_ID:
        other: tuple[str, ...] = () if mei == spec.MEI_CANOPEN else ("unknown-mei-type",)
        return ev.EncapsulatedResponse(tid, unit, ts, frame, mei, pdu[2:], other)
    _need(pdu, 7, exact=False)
    code, conformity, more, next_id, nobj = pdu[2], pdu[3], pdu[4], pdu[5], pdu[6]
    objects: list[tuple[int, bytes]] = []
    off = 7
    for _ in range(nobj):
        if off + 2 > len(pdu) or off + 2 + pdu[off + 1] > len(pdu):
            raise MalformedFrame("device-id-object-overrun", off, pdu)
        length = pdu[off + 1]
        objects.append((pdu[off], pdu[off + 2 : off + 2 + length]))
        off += 2 + length
    v: tuple[str, ...] = ()
    if off != len(pdu):
        v += ("trailing-bytes",)
    if more not in (0x00, 0xFF):
        v += ("bad-more-follows",)
    return ev.ReadDeviceIdentificationResponse(tid, unit, ts, frame, code, conformity,
                                               more == 0xFF, next_id, tuple(objects), v)


def _umas_rsp(pdu: bytes, tid: int, unit: int, ts: int, frame: int) -> ev.Message:
    _need(pdu, 3, exact=False)
    return ev.UmasResponse(tid, unit, ts, frame, pdu[1], pdu[2], pdu[3:])


def _raw_response(pdu: bytes, tid: int, unit: int, ts: int, frame: int) -> ev.Message:
    fc = pdu[0]
    cls_name = spec.function_class(fc)
    v = (f"{cls_name}-function-code",) if cls_name in ("reserved", "unassigned") else ()
    return ev.RawResponse(tid, unit, ts, frame, fc, pdu[1:], v)


def _exception_rsp(pdu: bytes, tid: int, unit: int, ts: int, frame: int) -> ev.Message:
    _need(pdu, 2)
    code = pdu[1]
    v = () if code in spec.EXCEPTION_NAMES else ("unknown-exception-code",)
    return ev.ExceptionResponse(tid, unit, ts, frame, pdu[0] & 0x7F, code, v)


REQUEST_DECODERS: dict[int, Decoder] = {
    1: _read_request(ev.ReadCoilsRequest, spec.READ_BITS_MAX),
    2: _read_request(ev.ReadDiscreteInputsRequest, spec.READ_BITS_MAX),
    3: _read_request(ev.ReadHoldingRegistersRequest, spec.READ_REGISTERS_MAX),
    4: _read_request(ev.ReadInputRegistersRequest, spec.READ_REGISTERS_MAX),
    5: _write_single_coil(ev.WriteSingleCoilRequest),
    6: _address_value(ev.WriteSingleRegisterRequest),
    7: _no_fields(ev.ReadExceptionStatusRequest),
    8: _diagnostics(ev.DiagnosticsRequest),
    11: _no_fields(ev.GetCommEventCounterRequest),
    12: _no_fields(ev.GetCommEventLogRequest),
    15: _write_multiple_coils_req,
    16: _write_multiple_registers_req,
    17: _no_fields(ev.ReportServerIdRequest),
    20: _read_file_record_req,
    21: _write_file_record(ev.WriteFileRecordRequest),
    22: _mask_write(ev.MaskWriteRegisterRequest),
    23: _read_write_multiple_req,
    24: _read_fifo_req,
    43: _encapsulated_req,
    90: _umas_req,
}

RESPONSE_DECODERS: dict[int, Decoder] = {
    1: _bits_response(ev.ReadCoilsResponse),
    2: _bits_response(ev.ReadDiscreteInputsResponse),
    3: _registers_response(ev.ReadHoldingRegistersResponse),
    4: _registers_response(ev.ReadInputRegistersResponse),
    5: _write_single_coil(ev.WriteSingleCoilResponse),
    6: _address_value(ev.WriteSingleRegisterResponse),
    7: _exception_status_rsp,
    8: _diagnostics(ev.DiagnosticsResponse),
    11: _comm_event_counter_rsp,
    12: _comm_event_log_rsp,
    15: _write_multiple_rsp(ev.WriteMultipleCoilsResponse, spec.WRITE_COILS_MAX),
    16: _write_multiple_rsp(ev.WriteMultipleRegistersResponse, spec.WRITE_REGISTERS_MAX),
    17: _report_server_id_rsp,
    20: _read_file_record_rsp,
    21: _write_file_record(ev.WriteFileRecordResponse),
    22: _mask_write(ev.MaskWriteRegisterResponse),
    23: _registers_response(ev.ReadWriteMultipleRegistersResponse),
    24: _read_fifo_rsp,
    43: _encapsulated_rsp,
    90: _umas_rsp,
}
RESPONSE_DECODERS.update({fc: _exception_rsp for fc in range(0x80, 0x100)})


def decode_request(pdu: bytes, tid: int, unit: int, ts: int = 0, frame: int = 0) -> ev.Message:
    """Decode a request PDU (function code first).

    Raises:
        MalformedFrame: the PDU is empty or its structure is inconsistent.
    """
    if not pdu:
        raise MalformedFrame("empty-pdu", 0, pdu)
    return REQUEST_DECODERS.get(pdu[0], _raw_request)(pdu, tid, unit, ts, frame)


def decode_response(pdu: bytes, tid: int, unit: int, ts: int = 0, frame: int = 0) -> ev.Message:
    """Decode a response PDU (function code first; 0x80 set means an exception).

    Raises:
        MalformedFrame: the PDU is empty or its structure is inconsistent.
    """
    if not pdu:
        raise MalformedFrame("empty-pdu", 0, pdu)
    return RESPONSE_DECODERS.get(pdu[0], _raw_response)(pdu, tid, unit, ts, frame)
