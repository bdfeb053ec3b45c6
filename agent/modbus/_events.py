"""Decoded Modbus events: one class per message and direction.

Every message carries the MBAP transaction id and unit id, the capture time
of the segment that completed it (``ts``, integer nanoseconds) and that
segment's frame number (``frame``, 1-based for files, a running packet count
for live capture).  ``violations`` lists spec limits the message breaks
(``quantity-out-of-range``, ``bad-coil-value``...) while still being decodable;
bytes that cannot be decoded at all become a :class:`Malformed` event instead.

The classes are slotted and built by the decoder only; users read them and
never subclass them.  Field names match the specification ([AP] = MODBUS
Application Protocol V1.1b3).  Addresses are 0-based, as on the wire.
"""

from __future__ import annotations

import struct
from typing import Any, ClassVar

from otsentry.agent.modbus import _spec

__all__ = [
    "Direction", "REQUEST", "RESPONSE", "Message", "Request", "Response",
    "ReadCoilsRequest", "ReadCoilsResponse", "ReadDiscreteInputsRequest",
    "ReadDiscreteInputsResponse", "ReadHoldingRegistersRequest", "ReadHoldingRegistersResponse",
    "ReadInputRegistersRequest", "ReadInputRegistersResponse", "WriteSingleCoilRequest",
    "WriteSingleCoilResponse", "WriteSingleRegisterRequest", "WriteSingleRegisterResponse",
    "ReadExceptionStatusRequest", "ReadExceptionStatusResponse", "DiagnosticsRequest",
    "DiagnosticsResponse", "GetCommEventCounterRequest", "GetCommEventCounterResponse",
    "GetCommEventLogRequest", "GetCommEventLogResponse", "WriteMultipleCoilsRequest",
    "WriteMultipleCoilsResponse", "WriteMultipleRegistersRequest", "WriteMultipleRegistersResponse",
    "ReportServerIdRequest", "ReportServerIdResponse", "ReadFileRecordRequest",
    "ReadFileRecordResponse", "WriteFileRecordRequest", "WriteFileRecordResponse",
    "MaskWriteRegisterRequest", "MaskWriteRegisterResponse", "ReadWriteMultipleRegistersRequest",
    "ReadWriteMultipleRegistersResponse", "ReadFifoQueueRequest", "ReadFifoQueueResponse",
    "ReadDeviceIdentificationRequest", "ReadDeviceIdentificationResponse",
    "EncapsulatedRequest", "EncapsulatedResponse", "UmasRequest", "UmasResponse",
    "RawRequest", "RawResponse", "ExceptionResponse", "Malformed", "Gap", "NotModbus", "Violation",
    "unpack_bits", "jsonable",
]

Direction = int
#: Client (master) to server (slave).
REQUEST: Direction = 0
#: Server (slave) to client (master).
RESPONSE: Direction = 1

_NO_VIOLATIONS: tuple[str, ...] = ()
_BASE_SLOTS = ("tid", "unit", "ts", "frame", "violations")


def unpack_bits(data: bytes, count: int | None = None) -> list[int]:
    """Coil/discrete-input bytes to a list of 0/1, LSB of the first byte first ([AP] §6.1)."""
    bits = [(byte >> i) & 1 for byte in data for i in range(8)]
    return bits if count is None else bits[:count]


def jsonable(value: Any) -> Any:
    """Convert an event field to a JSON-friendly value (bytes become lowercase hex)."""
    t = type(value)
    if t is int or t is str or t is bool or value is None:
        return value
    if t is tuple or t is list:
        if all(type(v) is int for v in value):
            return list(value)  # registers: the common case, no conversion per item
        # Mixed sequences (file records: ints, then bytes or a register tuple) convert per item.
        return [jsonable(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    return value


class Message:
    """Base of every decoded Modbus message.

    Attributes:
        tid: MBAP transaction identifier.
        unit: MBAP unit identifier (0-255, all legal on TCP).
        ts: capture time in integer nanoseconds since the epoch.
        frame: number of the frame that completed the message.
        violations: names of spec limits the message breaks (empty when clean).
    """

    __slots__ = _BASE_SLOTS
    #: Event kind, the same on every event class: ``message``, ``malformed``, ``gap``...
    KIND: ClassVar[str] = "message"
    #: Function code without the exception bit.
    fc: ClassVar[int] = 0
    is_request: ClassVar[bool] = False
    is_exception: ClassVar[bool] = False
    #: Own fields of the subclass, in constructor order (after the base ones).
    FIELDS: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fields: list[str] = []
        for klass in reversed(cls.__mro__):
            for name in klass.__dict__.get("__slots__", ()):
                if name not in _BASE_SLOTS and name not in fields:
                    fields.append(name)
        cls.FIELDS = tuple(fields)
        params = ", ".join(fields)
        body = "".join(f"    self.{f} = {f}\n" for f in fields)
        src = (
            f"def __init__(self, tid, unit, ts, frame{', ' + params if params else ''}, "
            f"violations=_NO):\n"
            "    self.tid = tid\n    self.unit = unit\n    self.ts = ts\n"
            f"    self.frame = frame\n    self.violations = violations\n{body}"
        )
        namespace: dict[str, Any] = {"_NO": _NO_VIOLATIONS}
        exec(src, namespace)  # builds a fast, explicit __init__ (as collections.namedtuple does)
        cls.__init__ = namespace["__init__"]  # type: ignore[misc]

    @property
    def name(self) -> str:
        """Function name per [AP] (``read_holding_registers``...)."""
        return _spec.function_name(self.fc)

    def fields(self) -> dict[str, Any]:
        """The decoded fields as JSON-friendly values (no tid/unit/ts/frame)."""
        return {f: jsonable(getattr(self, f)) for f in self.FIELDS}

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, s) == getattr(other, s) for s in (*_BASE_SLOTS, *self.FIELDS))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        args = ", ".join(f"{s}={getattr(self, s)!r}" for s in ("tid", "unit", *self.FIELDS))
        return f"{type(self).__name__}({args})"


class Request(Message):
    """A message from client (master) to server (slave)."""

    __slots__ = ()
    is_request = True


class Response(Message):
    """A message from server (slave) to client (master)."""

    __slots__ = ()


# --- reads of bits and registers ([AP] §6.1-6.4) -----------------------------------------


class _ReadRequest(Request):
    """Attributes: address (first item, 0-based), quantity (items to read)."""

    __slots__ = ("address", "quantity")


class _BitsResponse(Response):
    """Attributes: byte_count, bits (raw packed bytes; see :meth:`values`)."""

    __slots__ = ("byte_count", "bits")

    def values(self, quantity: int | None = None) -> list[int]:
        """The bits as 0/1, trimmed to the request's quantity when given."""
        return unpack_bits(self.bits, quantity)

    def fields(self) -> dict[str, Any]:
        return {"byte_count": self.byte_count, "values": self.values()}


class _RegistersResponse(Response):
    """Attributes: byte_count, registers (tuple of unsigned 16-bit values)."""

    __slots__ = ("byte_count", "registers")


class ReadCoilsRequest(_ReadRequest):
    """FC 1 request ([AP] §6.1): read ``quantity`` (1-2000) coils from ``address``."""

    __slots__ = ()
    fc = 1


class ReadCoilsResponse(_BitsResponse):
    """FC 1 response ([AP] §6.1): coil status packed 8 per byte."""

    __slots__ = ()
    fc = 1


class ReadDiscreteInputsRequest(_ReadRequest):
    """FC 2 request ([AP] §6.2): read ``quantity`` (1-2000) discrete inputs."""

    __slots__ = ()
    fc = 2


class ReadDiscreteInputsResponse(_BitsResponse):
    """FC 2 response ([AP] §6.2): input status packed 8 per byte."""

    __slots__ = ()
    fc = 2


class ReadHoldingRegistersRequest(_ReadRequest):
    """FC 3 request ([AP] §6.3): read ``quantity`` (1-125) holding registers."""

    __slots__ = ()
    fc = 3


class ReadHoldingRegistersResponse(_RegistersResponse):
    """FC 3 response ([AP] §6.3): ``registers`` as unsigned 16-bit values."""

    __slots__ = ()
    fc = 3


class ReadInputRegistersRequest(_ReadRequest):
    """FC 4 request ([AP] §6.4): read ``quantity`` (1-125) input registers."""

    __slots__ = ()
    fc = 4


class ReadInputRegistersResponse(_RegistersResponse):
    """FC 4 response ([AP] §6.4): ``registers`` as unsigned 16-bit values."""

    __slots__ = ()
    fc = 4


# --- single writes ([AP] §6.5, §6.6) ------------------------------------------------------


class _SingleCoil(Message):
    """Attributes: address, value (raw: 0xFF00 = ON, 0x0000 = OFF, others violate)."""

    __slots__ = ("address", "value")

    @property
    def on(self) -> bool:
        """True when the coil is forced ON."""
        return self.value == 0xFF00


class WriteSingleCoilRequest(_SingleCoil, Request):
    """FC 5 request ([AP] §6.5)."""

    __slots__ = ()
    fc = 5
    is_request = True


class WriteSingleCoilResponse(_SingleCoil, Response):
    """FC 5 response ([AP] §6.5): an echo of the request."""

    __slots__ = ()
    fc = 5


class _SingleRegister(Message):
    """Attributes: address, value (unsigned 16-bit)."""

    __slots__ = ("address", "value")


class WriteSingleRegisterRequest(_SingleRegister, Request):
    """FC 6 request ([AP] §6.6)."""

    __slots__ = ()
    fc = 6
    is_request = True


class WriteSingleRegisterResponse(_SingleRegister, Response):
    """FC 6 response ([AP] §6.6): an echo of the request."""

    __slots__ = ()
    fc = 6


# --- serial-line diagnostics ([AP] §6.7-6.9) ----------------------------------------------


class ReadExceptionStatusRequest(Request):
    """FC 7 request ([AP] §6.7): no fields."""

    __slots__ = ()
    fc = 7


class ReadExceptionStatusResponse(Response):
    """FC 7 response ([AP] §6.7). Attributes: status (8 exception status bits)."""

    __slots__ = ("status",)
    fc = 7


class _Diagnostics(Message):
    """Attributes: sub_function ([AP] §6.8.1), data (raw bytes after the sub-function)."""

    __slots__ = ("sub_function", "data")
    fc = 8

    @property
    def sub_function_name(self) -> str:
        """Name of the sub-function, e.g. ``force_listen_only_mode``."""
        return _spec.diagnostic_name(self.sub_function)

    def fields(self) -> dict[str, Any]:
        out = {"sub_function": self.sub_function, "sub_function_name": self.sub_function_name,
               "data": self.data.hex()}
        if len(self.data) % 2 == 0:
            out["values"] = list(struct.unpack(f">{len(self.data) // 2}H", self.data))
        return out


class DiagnosticsRequest(_Diagnostics, Request):
    """FC 8 request ([AP] §6.8)."""

    __slots__ = ()
    is_request = True


class DiagnosticsResponse(_Diagnostics, Response):
    """FC 8 response ([AP] §6.8)."""

    __slots__ = ()


class GetCommEventCounterRequest(Request):
    """FC 11 request ([AP] §6.9): no fields."""

    __slots__ = ()
    fc = 11


class GetCommEventCounterResponse(Response):
    """FC 11 response ([AP] §6.9). Attributes: status (0xFFFF busy), event_count."""

    __slots__ = ("status", "event_count")
    fc = 11


class GetCommEventLogRequest(Request):
    """FC 12 request ([AP] §6.10): no fields."""

    __slots__ = ()
    fc = 12


class GetCommEventLogResponse(Response):
    """FC 12 response ([AP] §6.10).

    Attributes: status, event_count, message_count, events (raw event bytes, newest first).
    """

    __slots__ = ("status", "event_count", "message_count", "events")
    fc = 12


# --- multiple writes ([AP] §6.11, §6.12) --------------------------------------------------


class WriteMultipleCoilsRequest(Request):
    """FC 15 request ([AP] §6.11).

    Attributes: address, quantity (1-1968), bits (raw packed bytes; see :meth:`values`).
    """

    __slots__ = ("address", "quantity", "bits")
    fc = 15

    def values(self) -> list[int]:
        """The coil values written, as 0/1."""
        return unpack_bits(self.bits, self.quantity)

    def fields(self) -> dict[str, Any]:
        return {"address": self.address, "quantity": self.quantity, "values": self.values()}


class _WriteMultipleResponse(Response):
    """Attributes: address, quantity (echoed from the request)."""

    __slots__ = ("address", "quantity")


class WriteMultipleCoilsResponse(_WriteMultipleResponse):
    """FC 15 response ([AP] §6.11)."""

    __slots__ = ()
    fc = 15


class WriteMultipleRegistersRequest(Request):
    """FC 16 request ([AP] §6.12). Attributes: address, quantity (1-123), registers."""

    __slots__ = ("address", "quantity", "registers")
    fc = 16


class WriteMultipleRegistersResponse(_WriteMultipleResponse):
    """FC 16 response ([AP] §6.12)."""

    __slots__ = ()
    fc = 16


# --- server id, files, masks, FIFO ([AP] §6.13-6.18) --------------------------------------


class ReportServerIdRequest(Request):
    """FC 17 request ([AP] §6.13): no fields."""

    __slots__ = ()
    fc = 17


class ReportServerIdResponse(Response):
    """FC 17 response ([AP] §6.13).

    Attributes: data (everything after the byte count: a device-specific server id,
    then the run indicator status byte 0x00 OFF / 0xFF ON, then any additional data).
    """

    __slots__ = ("data",)
    fc = 17

    @property
    def run_indicator(self) -> bool | None:
        """ON/OFF from the last status byte when it is 0x00 or 0xFF, else None."""
        for byte in reversed(self.data):
            if byte in (0x00, 0xFF):
                return byte == 0xFF
            break
        return None

    @property
    def server_id(self) -> bytes:
        """The server id bytes (all data before a trailing run indicator)."""
        return self.data[:-1] if self.run_indicator is not None else self.data

    def fields(self) -> dict[str, Any]:
        sid = self.server_id
        text = sid.decode("ascii", "replace") if sid.isascii() else None
        return {"server_id": sid.hex(), "server_id_text": text, "run_indicator": self.run_indicator}


class ReadFileRecordRequest(Request):
    """FC 20 request ([AP] §6.14).

    Attributes: records (tuple of ``(reference_type, file_number, record_number,
    record_length)``; reference type must be 6).
    """

    __slots__ = ("records",)
    fc = 20


class ReadFileRecordResponse(Response):
    """FC 20 response ([AP] §6.14). Attributes: records (tuple of ``(reference_type, data)``)."""

    __slots__ = ("records",)
    fc = 20


class _WriteFileRecord(Message):
    """Attributes: records (tuple of ``(reference_type, file_number, record_number, data)``)."""

    __slots__ = ("records",)
    fc = 21


class WriteFileRecordRequest(_WriteFileRecord, Request):
    """FC 21 request ([AP] §6.15)."""

    __slots__ = ()
    is_request = True


class WriteFileRecordResponse(_WriteFileRecord, Response):
    """FC 21 response ([AP] §6.15): an echo of the request."""

    __slots__ = ()


class _MaskWrite(Message):
    """Attributes: address, and_mask, or_mask; result = (current AND and) OR (or AND NOT and)."""

    __slots__ = ("address", "and_mask", "or_mask")
    fc = 22


class MaskWriteRegisterRequest(_MaskWrite, Request):
    """FC 22 request ([AP] §6.16)."""

    __slots__ = ()
    is_request = True


class MaskWriteRegisterResponse(_MaskWrite, Response):
    """FC 22 response ([AP] §6.16): an echo of the request."""

    __slots__ = ()


class ReadWriteMultipleRegistersRequest(Request):
    """FC 23 request ([AP] §6.17).

    Attributes: read_address, read_quantity (1-125), write_address,
    write_quantity (1-121), registers (values written).
    """

    __slots__ = ("read_address", "read_quantity", "write_address", "write_quantity", "registers")
    fc = 23


class ReadWriteMultipleRegistersResponse(_RegistersResponse):
    """FC 23 response ([AP] §6.17): the registers read."""

    __slots__ = ()
    fc = 23


class ReadFifoQueueRequest(Request):
    """FC 24 request ([AP] §6.18). Attributes: address (FIFO pointer address)."""

    __slots__ = ("address",)
    fc = 24


class ReadFifoQueueResponse(Response):
    """FC 24 response ([AP] §6.18). Attributes: registers (0-31 queued values)."""

    __slots__ = ("registers",)
    fc = 24


# --- encapsulated interface transport ([AP] §6.19-6.21) -----------------------------------


class ReadDeviceIdentificationRequest(Request):
    """FC 43 / MEI 14 request ([AP] §6.21).

    Attributes: read_code (1 basic, 2 regular, 3 extended, 4 one object), object_id.
    """

    __slots__ = ("read_code", "object_id")
    fc = 43
    mei_type = _spec.MEI_DEVICE_ID


class ReadDeviceIdentificationResponse(Response):
    """FC 43 / MEI 14 response ([AP] §6.21).

    Attributes: read_code, conformity_level, more_follows (bool), next_object_id,
    objects (tuple of ``(object_id, value bytes)``).
    """

    __slots__ = ("read_code", "conformity_level", "more_follows", "next_object_id", "objects")
    fc = 43
    mei_type = _spec.MEI_DEVICE_ID

    def named_objects(self) -> dict[str, str]:
        """Objects by name (``VendorName``...), values decoded as text (latin-1 safe)."""
        return {_spec.device_id_object_name(oid): val.decode("latin-1") for oid, val in self.objects}

    def fields(self) -> dict[str, Any]:
        return {
            "read_code": self.read_code, "conformity_level": self.conformity_level,
            "more_follows": self.more_follows, "next_object_id": self.next_object_id,
            "objects": self.named_objects(),
        }


class EncapsulatedRequest(Request):
    """FC 43 request with another MEI type (13 = CANopen, [AP] §6.20). Attributes: mei_type, data."""

    __slots__ = ("mei_type", "data")
    fc = 43


class EncapsulatedResponse(Response):
    """FC 43 response with another MEI type. Attributes: mei_type, data."""

    __slots__ = ("mei_type", "data")
    fc = 43


# --- vendor, user-defined, reserved, unknown ----------------------------------------------


class UmasRequest(Request):
    """FC 90 (Schneider UMAS) request. Attributes: session (pairing key), function, data.

    The UMAS function byte says what the engineering tool asks for (0x40 start PLC,
    0x41 stop PLC, 0x30-0x35 program download/upload...); detectors interpret it.
    """

    __slots__ = ("session", "function", "data")
    fc = 90


class UmasResponse(Response):
    """FC 90 (Schneider UMAS) response. Attributes: session, status (0xFE ok, 0xFD error), data."""

    __slots__ = ("session", "status", "data")
    fc = 90


class RawRequest(Request):
    """A request with a user-defined, reserved or unassigned function code, kept raw.

    Attributes: fc (the code as sent), data (the PDU after the function code).
    """

    __slots__ = ("fc", "data")  # type: ignore[misc]

    @property
    def function_class(self) -> str:
        """``user-defined``, ``reserved`` or ``unassigned`` ([AP] §5)."""
        return _spec.function_class(self.fc)


class RawResponse(Response):
    """A response with a user-defined, reserved or unassigned function code, kept raw."""

    __slots__ = ("fc", "data")  # type: ignore[misc]

    @property
    def function_class(self) -> str:
        """``user-defined``, ``reserved`` or ``unassigned`` ([AP] §5)."""
        return _spec.function_class(self.fc)


class ExceptionResponse(Response):
    """An exception response ([AP] §7): function code with 0x80 set on the wire.

    Attributes: fc (the function code WITHOUT the 0x80 bit), code (exception code).
    """

    __slots__ = ("fc", "code")  # type: ignore[misc]
    is_exception = True

    @property
    def code_name(self) -> str:
        """Name of the exception code (``illegal_data_address``...)."""
        return _spec.exception_name(self.code)

    def fields(self) -> dict[str, Any]:
        return {"exception_code": self.code, "exception": self.code_name}


# --- stream events that are not messages ---------------------------------------------------


class Malformed:
    """Bytes in a Modbus stream that could not be decoded; the stream goes on after them.

    A malformed ADU whose MBAP header could be read (``tid`` is not None) still
    takes part in request/response pairing: a transaction may hold one.

    Attributes:
        direction: REQUEST or RESPONSE (who sent the bytes).
        reason: machine-readable reason (``bad-protocol-id``, ``bad-length``,
            ``short-pdu``, ``byte-count-mismatch``...).
        offset: offset of the problem inside ``raw``.
        raw: the offending bytes (at most one ADU, bounded to 260 bytes).
        ts, frame: as on :class:`Message`.
        tid, unit, fc: from the MBAP header and PDU when they could be read, else None.
    """

    KIND = "malformed"
    __slots__ = ("direction", "reason", "offset", "raw", "ts", "frame", "tid", "unit", "fc")

    def __init__(self, direction: Direction, reason: str, offset: int, raw: bytes, ts: int,
                 frame: int, tid: int | None = None, unit: int | None = None,
                 fc: int | None = None) -> None:
        self.direction = direction
        self.reason = reason
        self.offset = offset
        self.raw = raw
        self.ts = ts
        self.frame = frame
        self.tid = tid
        self.unit = unit
        self.fc = fc

    is_exception = False

    @property
    def is_request(self) -> bool:
        """True when the client sent the bytes."""
        return self.direction == REQUEST

    @property
    def violations(self) -> tuple[str, ...]:
        """The reason, as a one-item tuple (so malformed ADUs read like messages)."""
        return (self.reason,)

    def fields(self) -> dict[str, Any]:
        """The reason and the raw bytes (hex), for JSON output."""
        return {"malformed": self.reason, "raw": self.raw.hex()}

    def __repr__(self) -> str:
        return f"Malformed({self.reason!r}, direction={self.direction}, raw={self.raw[:16].hex()})"


class Gap:
    """Bytes of the stream that were never captured (lost segments).

    Attributes: direction, nbytes (how many bytes are missing), ts, frame.
    """

    KIND = "gap"
    __slots__ = ("direction", "nbytes", "ts", "frame")

    def __init__(self, direction: Direction, nbytes: int, ts: int, frame: int) -> None:
        self.direction = direction
        self.nbytes = nbytes
        self.ts = ts
        self.frame = frame

    def __repr__(self) -> str:
        return f"Gap(direction={self.direction}, nbytes={self.nbytes})"


class NotModbus:
    """The stream carries another protocol; it is no longer decoded as Modbus.

    Attributes: direction, protocol (``http``, ``tls``, ``ssh``, ``unknown``...),
    sample (the first 8 bytes), ts, frame.
    """

    KIND = "not-modbus"
    __slots__ = ("direction", "protocol", "sample", "ts", "frame")

    def __init__(self, direction: Direction, protocol: str, sample: bytes, ts: int,
                 frame: int) -> None:
        self.direction = direction
        self.protocol = protocol
        self.sample = sample
        self.ts = ts
        self.frame = frame

    def __repr__(self) -> str:
        return f"NotModbus({self.protocol!r}, direction={self.direction})"


class Violation:
    """A protocol violation below the Modbus layer (TCP overlap with different bytes,
    IP fragments on a Modbus port, a UDP datagram that does not end on an ADU boundary).

    Attributes: direction (or None when unknown), kind, ts, frame, detail (text).
    """

    KIND = "violation"
    __slots__ = ("direction", "kind", "ts", "frame", "detail")

    def __init__(self, direction: Direction | None, kind: str, ts: int, frame: int,
                 detail: str = "") -> None:
        self.direction = direction
        self.kind = kind
        self.ts = ts
        self.frame = frame
        self.detail = detail

    def __repr__(self) -> str:
        return f"Violation({self.kind!r}, direction={self.direction})"
