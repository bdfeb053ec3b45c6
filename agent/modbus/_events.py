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
from typing import Any, ClassVar, Final, Union

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
    "Connection", "TlsServerCertificate",
    "unpack_bits", "jsonable", "Event",
]

Direction = int
#: Client (master) to server (slave).
REQUEST: Direction = 0
#: Server (slave) to client (master).
RESPONSE: Direction = 1

_NO: Final[tuple[str, ...]] = ()
#: Attributes every message has; ``fc`` is one too, but a class constant for most.
_BASE_SLOTS: Final = ("tid", "unit", "ts", "frame", "violations", "fc")
_EQ_SLOTS: Final = ("tid", "unit", "ts", "frame", "violations")


_BYTE_BITS: Final[list[list[int]]] = [[(byte >> i) & 1 for i in range(8)] for byte in range(256)]


def unpack_bits(data: bytes, count: int | None = None) -> list[int]:
    """Coil/discrete-input bytes to a list of 0/1, LSB of the first byte first ([AP] §6.1)."""
    bits: list[int] = []
    table = _BYTE_BITS
    for byte in data:
        bits.extend(table[byte])
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


def _diagnostics_fields(sub_function: int, data: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {"sub_function": sub_function,
                           "sub_function_name": _spec.diagnostic_name(sub_function),
                           "data": data.hex()}
    if len(data) % 2 == 0:
        out["values"] = list(struct.unpack(f">{len(data) // 2}H", data))
    return out


class Message:
    """Base of every decoded Modbus message.

    Attributes:
        tid: MBAP transaction identifier.
        unit: MBAP unit identifier (0-255, all legal on TCP).
        ts: capture time in integer nanoseconds since the epoch.
        frame: number of the frame that completed the message.
        violations: names of spec limits the message breaks (empty when clean).
        fc: function code without the exception bit (fixed per class, except for
            raw and exception messages, which carry the code they were sent with).

    Every class spells out its ``__init__`` and ``FIELDS`` (no generated code), so
    the same source runs interpreted and compiled.
    """

    __slots__ = _BASE_SLOTS
    #: Event kind, the same on every event class: ``message``, ``malformed``, ``gap``...
    KIND: ClassVar[str] = "message"
    is_request: ClassVar[bool] = False
    is_exception: ClassVar[bool] = False
    #: Own fields of the subclass, in constructor order (after the base ones).
    FIELDS: ClassVar[tuple[str, ...]] = ()

    tid: int
    unit: int
    ts: int
    frame: int
    violations: tuple[str, ...]
    fc: int

    def __init__(self, tid: int, unit: int, ts: int, frame: int,
                 violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 0

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
        return all(getattr(self, s) == getattr(other, s) for s in (*_EQ_SLOTS, *self.FIELDS))

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
    FIELDS = ("address", "quantity")
    address: int
    quantity: int

    def fields(self) -> dict[str, Any]:
        return {"address": self.address, "quantity": self.quantity}


class _BitsResponse(Response):
    """Attributes: byte_count, bits (raw packed bytes; see :meth:`values`)."""

    __slots__ = ("byte_count", "bits")
    FIELDS = ("byte_count", "bits")
    byte_count: int
    bits: bytes

    def values(self, quantity: int | None = None) -> list[int]:
        """The bits as 0/1, trimmed to the request's quantity when given."""
        return unpack_bits(self.bits, quantity)

    def fields(self) -> dict[str, Any]:
        return {"byte_count": self.byte_count, "values": self.values()}


class _RegistersResponse(Response):
    """Attributes: byte_count, registers (tuple of unsigned 16-bit values)."""

    __slots__ = ("byte_count", "registers")
    FIELDS = ("byte_count", "registers")
    byte_count: int
    registers: tuple[int, ...]

    def fields(self) -> dict[str, Any]:
        return {"byte_count": self.byte_count, "registers": list(self.registers)}


class ReadCoilsRequest(_ReadRequest):
    """FC 1 request ([AP] §6.1): read ``quantity`` (1-2000) coils from ``address``."""

    __slots__ = ()
    FIELDS = ("address", "quantity")

    def __init__(self, tid: int, unit: int, ts: int, frame: int, address: int, quantity: int,
                 violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 1
        self.address = address
        self.quantity = quantity


class ReadCoilsResponse(_BitsResponse):
    """FC 1 response ([AP] §6.1): coil status packed 8 per byte."""

    __slots__ = ()
    FIELDS = ("byte_count", "bits")

    def __init__(self, tid: int, unit: int, ts: int, frame: int, byte_count: int, bits: bytes,
                 violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 1
        self.byte_count = byte_count
        self.bits = bits


class ReadDiscreteInputsRequest(_ReadRequest):
    """FC 2 request ([AP] §6.2): read ``quantity`` (1-2000) discrete inputs."""

    __slots__ = ()
    FIELDS = ("address", "quantity")

    def __init__(self, tid: int, unit: int, ts: int, frame: int, address: int, quantity: int,
                 violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 2
        self.address = address
        self.quantity = quantity


class ReadDiscreteInputsResponse(_BitsResponse):
    """FC 2 response ([AP] §6.2): input status packed 8 per byte."""

    __slots__ = ()
    FIELDS = ("byte_count", "bits")

    def __init__(self, tid: int, unit: int, ts: int, frame: int, byte_count: int, bits: bytes,
                 violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 2
        self.byte_count = byte_count
        self.bits = bits


class ReadHoldingRegistersRequest(_ReadRequest):
    """FC 3 request ([AP] §6.3): read ``quantity`` (1-125) holding registers."""

    __slots__ = ()
    FIELDS = ("address", "quantity")

    def __init__(self, tid: int, unit: int, ts: int, frame: int, address: int, quantity: int,
                 violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 3
        self.address = address
        self.quantity = quantity


class ReadHoldingRegistersResponse(_RegistersResponse):
    """FC 3 response ([AP] §6.3): ``registers`` as unsigned 16-bit values."""

    __slots__ = ()
    FIELDS = ("byte_count", "registers")

    def __init__(self, tid: int, unit: int, ts: int, frame: int, byte_count: int,
                 registers: tuple[int, ...], violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 3
        self.byte_count = byte_count
        self.registers = registers


class ReadInputRegistersRequest(_ReadRequest):
    """FC 4 request ([AP] §6.4): read ``quantity`` (1-125) input registers."""

    __slots__ = ()
    FIELDS = ("address", "quantity")

    def __init__(self, tid: int, unit: int, ts: int, frame: int, address: int, quantity: int,
                 violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 4
        self.address = address
        self.quantity = quantity


class ReadInputRegistersResponse(_RegistersResponse):
    """FC 4 response ([AP] §6.4): ``registers`` as unsigned 16-bit values."""

    __slots__ = ()
    FIELDS = ("byte_count", "registers")

    def __init__(self, tid: int, unit: int, ts: int, frame: int, byte_count: int,
                 registers: tuple[int, ...], violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 4
        self.byte_count = byte_count
        self.registers = registers


# --- single writes ([AP] §6.5, §6.6) ------------------------------------------------------


class WriteSingleCoilRequest(Request):
    """FC 5 request ([AP] §6.5).

    Attributes: address, value (raw: 0xFF00 = ON, 0x0000 = OFF, others violate).
    """

    __slots__ = ("address", "value")
    FIELDS = ("address", "value")

    def __init__(self, tid: int, unit: int, ts: int, frame: int, address: int, value: int,
                 violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 5
        self.address = address
        self.value = value

    @property
    def on(self) -> bool:
        """True when the coil is forced ON."""
        return self.value == 0xFF00


class WriteSingleCoilResponse(Response):
    """FC 5 response ([AP] §6.5): an echo of the request."""

    __slots__ = ("address", "value")
    FIELDS = ("address", "value")

    def __init__(self, tid: int, unit: int, ts: int, frame: int, address: int, value: int,
                 violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 5
        self.address = address
        self.value = value

    @property
    def on(self) -> bool:
        """True when the coil is forced ON."""
        return self.value == 0xFF00


class WriteSingleRegisterRequest(Request):
    """FC 6 request ([AP] §6.6). Attributes: address, value (unsigned 16-bit)."""

    __slots__ = ("address", "value")
    FIELDS = ("address", "value")

    def __init__(self, tid: int, unit: int, ts: int, frame: int, address: int, value: int,
                 violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 6
        self.address = address
        self.value = value


class WriteSingleRegisterResponse(Response):
    """FC 6 response ([AP] §6.6): an echo of the request."""

    __slots__ = ("address", "value")
    FIELDS = ("address", "value")

    def __init__(self, tid: int, unit: int, ts: int, frame: int, address: int, value: int,
                 violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 6
        self.address = address
        self.value = value


# --- serial-line diagnostics ([AP] §6.7-6.9) ----------------------------------------------


class ReadExceptionStatusRequest(Request):
    """FC 7 request ([AP] §6.7): no fields."""

    __slots__ = ()

    def __init__(self, tid: int, unit: int, ts: int, frame: int,
                 violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 7


class ReadExceptionStatusResponse(Response):
    """FC 7 response ([AP] §6.7). Attributes: status (8 exception status bits)."""

    __slots__ = ("status",)
    FIELDS = ("status",)

    def __init__(self, tid: int, unit: int, ts: int, frame: int, status: int,
                 violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 7
        self.status = status


class DiagnosticsRequest(Request):
    """FC 8 request ([AP] §6.8).

    Attributes: sub_function ([AP] §6.8.1), data (raw bytes after the sub-function).
    """

    __slots__ = ("sub_function", "data")
    FIELDS = ("sub_function", "data")

    def __init__(self, tid: int, unit: int, ts: int, frame: int, sub_function: int, data: bytes,
                 violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 8
        self.sub_function = sub_function
        self.data = data

    @property
    def sub_function_name(self) -> str:
        """Name of the sub-function, e.g. ``force_listen_only_mode``."""
        return _spec.diagnostic_name(self.sub_function)

    def fields(self) -> dict[str, Any]:
        return _diagnostics_fields(self.sub_function, self.data)


class DiagnosticsResponse(Response):
    """FC 8 response ([AP] §6.8)."""

    __slots__ = ("sub_function", "data")
    FIELDS = ("sub_function", "data")

    def __init__(self, tid: int, unit: int, ts: int, frame: int, sub_function: int, data: bytes,
                 violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 8
        self.sub_function = sub_function
        self.data = data

    @property
    def sub_function_name(self) -> str:
        """Name of the sub-function, e.g. ``force_listen_only_mode``."""
        return _spec.diagnostic_name(self.sub_function)

    def fields(self) -> dict[str, Any]:
        return _diagnostics_fields(self.sub_function, self.data)


class GetCommEventCounterRequest(Request):
    """FC 11 request ([AP] §6.9): no fields."""

    __slots__ = ()

    def __init__(self, tid: int, unit: int, ts: int, frame: int,
                 violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 11


class GetCommEventCounterResponse(Response):
    """FC 11 response ([AP] §6.9). Attributes: status (0xFFFF busy), event_count."""

    __slots__ = ("status", "event_count")
    FIELDS = ("status", "event_count")

    def __init__(self, tid: int, unit: int, ts: int, frame: int, status: int, event_count: int,
                 violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 11
        self.status = status
        self.event_count = event_count


class GetCommEventLogRequest(Request):
    """FC 12 request ([AP] §6.10): no fields."""

    __slots__ = ()

    def __init__(self, tid: int, unit: int, ts: int, frame: int,
                 violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 12


class GetCommEventLogResponse(Response):
    """FC 12 response ([AP] §6.10).

    Attributes: status, event_count, message_count, events (raw event bytes, newest first).
    """

    __slots__ = ("status", "event_count", "message_count", "events")
    FIELDS = ("status", "event_count", "message_count", "events")

    def __init__(self, tid: int, unit: int, ts: int, frame: int, status: int, event_count: int,
                 message_count: int, events: bytes, violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 12
        self.status = status
        self.event_count = event_count
        self.message_count = message_count
        self.events = events


# --- multiple writes ([AP] §6.11, §6.12) --------------------------------------------------


class WriteMultipleCoilsRequest(Request):
    """FC 15 request ([AP] §6.11).

    Attributes: address, quantity (1-1968), bits (raw packed bytes; see :meth:`values`).
    """

    __slots__ = ("address", "quantity", "bits")
    FIELDS = ("address", "quantity", "bits")

    def __init__(self, tid: int, unit: int, ts: int, frame: int, address: int, quantity: int,
                 bits: bytes, violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 15
        self.address = address
        self.quantity = quantity
        self.bits = bits

    def values(self) -> list[int]:
        """The coil values written, as 0/1."""
        return unpack_bits(self.bits, self.quantity)

    def fields(self) -> dict[str, Any]:
        return {"address": self.address, "quantity": self.quantity, "values": self.values()}


class _WriteMultipleResponse(Response):
    """Attributes: address, quantity (echoed from the request)."""

    __slots__ = ("address", "quantity")
    FIELDS = ("address", "quantity")
    address: int
    quantity: int

    def fields(self) -> dict[str, Any]:
        return {"address": self.address, "quantity": self.quantity}


class WriteMultipleCoilsResponse(_WriteMultipleResponse):
    """FC 15 response ([AP] §6.11)."""

    __slots__ = ()
    FIELDS = ("address", "quantity")

    def __init__(self, tid: int, unit: int, ts: int, frame: int, address: int, quantity: int,
                 violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 15
        self.address = address
        self.quantity = quantity


class WriteMultipleRegistersRequest(Request):
    """FC 16 request ([AP] §6.12). Attributes: address, quantity (1-123), registers."""

    __slots__ = ("address", "quantity", "registers")
    FIELDS = ("address", "quantity", "registers")

    def __init__(self, tid: int, unit: int, ts: int, frame: int, address: int, quantity: int,
                 registers: tuple[int, ...], violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 16
        self.address = address
        self.quantity = quantity
        self.registers = registers


class WriteMultipleRegistersResponse(_WriteMultipleResponse):
    """FC 16 response ([AP] §6.12)."""

    __slots__ = ()
    FIELDS = ("address", "quantity")

    def __init__(self, tid: int, unit: int, ts: int, frame: int, address: int, quantity: int,
                 violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 16
        self.address = address
        self.quantity = quantity


# --- server id, files, masks, FIFO ([AP] §6.13-6.18) --------------------------------------


class ReportServerIdRequest(Request):
    """FC 17 request ([AP] §6.13): no fields."""

    __slots__ = ()

    def __init__(self, tid: int, unit: int, ts: int, frame: int,
                 violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 17


class ReportServerIdResponse(Response):
    """FC 17 response ([AP] §6.13).

    Attributes: data (everything after the byte count: a device-specific server id,
    then the run indicator status byte 0x00 OFF / 0xFF ON, then any additional data).
    """

    __slots__ = ("data",)
    FIELDS = ("data",)

    def __init__(self, tid: int, unit: int, ts: int, frame: int, data: bytes,
                 violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 17
        self.data = data

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
    FIELDS = ("records",)

    def __init__(self, tid: int, unit: int, ts: int, frame: int, records: tuple[Any, ...],
                 violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 20
        self.records = records


class ReadFileRecordResponse(Response):
    """FC 20 response ([AP] §6.14). Attributes: records (tuple of ``(reference_type, data)``)."""

    __slots__ = ("records",)
    FIELDS = ("records",)

    def __init__(self, tid: int, unit: int, ts: int, frame: int, records: tuple[Any, ...],
                 violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 20
        self.records = records


class WriteFileRecordRequest(Request):
    """FC 21 request ([AP] §6.15).

    Attributes: records (tuple of ``(reference_type, file_number, record_number, data)``).
    """

    __slots__ = ("records",)
    FIELDS = ("records",)

    def __init__(self, tid: int, unit: int, ts: int, frame: int, records: tuple[Any, ...],
                 violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 21
        self.records = records


class WriteFileRecordResponse(Response):
    """FC 21 response ([AP] §6.15): an echo of the request."""

    __slots__ = ("records",)
    FIELDS = ("records",)

    def __init__(self, tid: int, unit: int, ts: int, frame: int, records: tuple[Any, ...],
                 violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 21
        self.records = records


class MaskWriteRegisterRequest(Request):
    """FC 22 request ([AP] §6.16).

    Attributes: address, and_mask, or_mask; result = (current AND and) OR (or AND NOT and).
    """

    __slots__ = ("address", "and_mask", "or_mask")
    FIELDS = ("address", "and_mask", "or_mask")

    def __init__(self, tid: int, unit: int, ts: int, frame: int, address: int, and_mask: int,
                 or_mask: int, violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 22
        self.address = address
        self.and_mask = and_mask
        self.or_mask = or_mask


class MaskWriteRegisterResponse(Response):
    """FC 22 response ([AP] §6.16): an echo of the request."""

    __slots__ = ("address", "and_mask", "or_mask")
    FIELDS = ("address", "and_mask", "or_mask")

    def __init__(self, tid: int, unit: int, ts: int, frame: int, address: int, and_mask: int,
                 or_mask: int, violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 22
        self.address = address
        self.and_mask = and_mask
        self.or_mask = or_mask


class ReadWriteMultipleRegistersRequest(Request):
    """FC 23 request ([AP] §6.17).

    Attributes: read_address, read_quantity (1-125), write_address,
    write_quantity (1-121), registers (values written).
    """

    __slots__ = ("read_address", "read_quantity", "write_address", "write_quantity", "registers")
    FIELDS = ("read_address", "read_quantity", "write_address", "write_quantity", "registers")

    def __init__(self, tid: int, unit: int, ts: int, frame: int, read_address: int,
                 read_quantity: int, write_address: int, write_quantity: int,
                 registers: tuple[int, ...], violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 23
        self.read_address = read_address
        self.read_quantity = read_quantity
        self.write_address = write_address
        self.write_quantity = write_quantity
        self.registers = registers


class ReadWriteMultipleRegistersResponse(_RegistersResponse):
    """FC 23 response ([AP] §6.17): the registers read."""

    __slots__ = ()
    FIELDS = ("byte_count", "registers")

    def __init__(self, tid: int, unit: int, ts: int, frame: int, byte_count: int,
                 registers: tuple[int, ...], violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 23
        self.byte_count = byte_count
        self.registers = registers


class ReadFifoQueueRequest(Request):
    """FC 24 request ([AP] §6.18). Attributes: address (FIFO pointer address)."""

    __slots__ = ("address",)
    FIELDS = ("address",)

    def __init__(self, tid: int, unit: int, ts: int, frame: int, address: int,
                 violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 24
        self.address = address


class ReadFifoQueueResponse(Response):
    """FC 24 response ([AP] §6.18). Attributes: registers (0-31 queued values)."""

    __slots__ = ("registers",)
    FIELDS = ("registers",)

    def __init__(self, tid: int, unit: int, ts: int, frame: int, registers: tuple[int, ...],
                 violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 24
        self.registers = registers


# --- encapsulated interface transport ([AP] §6.19-6.21) -----------------------------------


class ReadDeviceIdentificationRequest(Request):
    """FC 43 / MEI 14 request ([AP] §6.21).

    Attributes: read_code (1 basic, 2 regular, 3 extended, 4 one object), object_id.
    """

    __slots__ = ("read_code", "object_id")
    mei_type = _spec.MEI_DEVICE_ID
    FIELDS = ("read_code", "object_id")

    def __init__(self, tid: int, unit: int, ts: int, frame: int, read_code: int, object_id: int,
                 violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 43
        self.read_code = read_code
        self.object_id = object_id


class ReadDeviceIdentificationResponse(Response):
    """FC 43 / MEI 14 response ([AP] §6.21).

    Attributes: read_code, conformity_level, more_follows (bool), next_object_id,
    objects (tuple of ``(object_id, value bytes)``).
    """

    __slots__ = ("read_code", "conformity_level", "more_follows", "next_object_id", "objects")
    mei_type = _spec.MEI_DEVICE_ID
    FIELDS = ("read_code", "conformity_level", "more_follows", "next_object_id", "objects")

    def __init__(self, tid: int, unit: int, ts: int, frame: int, read_code: int,
                 conformity_level: int, more_follows: bool, next_object_id: int,
                 objects: tuple[tuple[int, bytes], ...], violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 43
        self.read_code = read_code
        self.conformity_level = conformity_level
        self.more_follows = more_follows
        self.next_object_id = next_object_id
        self.objects = objects

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
    FIELDS = ("mei_type", "data")

    def __init__(self, tid: int, unit: int, ts: int, frame: int, mei_type: int, data: bytes,
                 violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 43
        self.mei_type = mei_type
        self.data = data


class EncapsulatedResponse(Response):
    """FC 43 response with another MEI type. Attributes: mei_type, data."""

    __slots__ = ("mei_type", "data")
    FIELDS = ("mei_type", "data")

    def __init__(self, tid: int, unit: int, ts: int, frame: int, mei_type: int, data: bytes,
                 violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 43
        self.mei_type = mei_type
        self.data = data


# --- vendor, user-defined, reserved, unknown ----------------------------------------------


class UmasRequest(Request):
    """FC 90 (Schneider UMAS) request. Attributes: session (pairing key), function, data.

    The UMAS function byte says what the engineering tool asks for (0x40 start PLC,
    0x41 stop PLC, 0x30-0x35 program download/upload...); detectors interpret it.
    """

    __slots__ = ("session", "function", "data")
    FIELDS = ("session", "function", "data")

    def __init__(self, tid: int, unit: int, ts: int, frame: int, session: int, function: int,
                 data: bytes, violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 90
        self.session = session
        self.function = function
        self.data = data


class UmasResponse(Response):
    """FC 90 (Schneider UMAS) response. Attributes: session, status (0xFE ok, 0xFD error), data."""

    __slots__ = ("session", "status", "data")
    FIELDS = ("session", "status", "data")

    def __init__(self, tid: int, unit: int, ts: int, frame: int, session: int, status: int,
                 data: bytes, violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = 90
        self.session = session
        self.status = status
        self.data = data


class RawRequest(Request):
    """A request with a user-defined, reserved or unassigned function code, kept raw.

    Attributes: fc (the code as sent), data (the PDU after the function code).
    """

    __slots__ = ("data",)
    FIELDS = ("fc", "data")

    def __init__(self, tid: int, unit: int, ts: int, frame: int, fc: int, data: bytes,
                 violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = fc
        self.data = data

    @property
    def function_class(self) -> str:
        """``user-defined``, ``reserved`` or ``unassigned`` ([AP] §5)."""
        return _spec.function_class(self.fc)


class RawResponse(Response):
    """A response with a user-defined, reserved or unassigned function code, kept raw."""

    __slots__ = ("data",)
    FIELDS = ("fc", "data")

    def __init__(self, tid: int, unit: int, ts: int, frame: int, fc: int, data: bytes,
                 violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = fc
        self.data = data

    @property
    def function_class(self) -> str:
        """``user-defined``, ``reserved`` or ``unassigned`` ([AP] §5)."""
        return _spec.function_class(self.fc)


class ExceptionResponse(Response):
    """An exception response ([AP] §7): function code with 0x80 set on the wire.

    Attributes: fc (the function code WITHOUT the 0x80 bit), code (exception code).
    """

    __slots__ = ("code",)
    is_exception = True
    FIELDS = ("fc", "code")

    def __init__(self, tid: int, unit: int, ts: int, frame: int, fc: int, code: int,
                 violations: tuple[str, ...] = _NO) -> None:
        self.tid = tid
        self.unit = unit
        self.ts = ts
        self.frame = frame
        self.violations = violations
        self.fc = fc
        self.code = code

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

    KIND: ClassVar[str] = "malformed"
    __slots__: ClassVar[tuple[str, ...]] = ("direction", "reason", "offset", "raw", "ts", "frame", "tid", "unit", "fc")

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

    is_exception: ClassVar[bool] = False

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

    KIND: ClassVar[str] = "gap"
    __slots__: ClassVar[tuple[str, ...]] = ("direction", "nbytes", "ts", "frame")

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

    KIND: ClassVar[str] = "not-modbus"
    __slots__: ClassVar[tuple[str, ...]] = ("direction", "protocol", "sample", "ts", "frame")

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

    KIND: ClassVar[str] = "violation"
    __slots__: ClassVar[tuple[str, ...]] = ("direction", "kind", "ts", "frame", "detail")

    def __init__(self, direction: Direction | None, kind: str, ts: int, frame: int,
                 detail: str = "") -> None:
        self.direction = direction
        self.kind = kind
        self.ts = ts
        self.frame = frame
        self.detail = detail

    def __repr__(self) -> str:
        return f"Violation({self.kind!r}, direction={self.direction})"


#: Everything a :class:`~otsentry.agent.modbus.Decoder` emits.
Event = Union[Message, Malformed, Gap, NotModbus, Violation]


class Connection:
    """A new connection (or UDP conversation) on a Modbus port, before any ADU.

    Sinks learn of probes that never carry Modbus (a SYN answered by a reset, a
    port scan) from this event.

    Attributes: direction (who sent the first packet seen: REQUEST = the client),
    ts, frame, flags (TCP flags of that packet; 0 for UDP).
    """

    __slots__ = ("direction", "ts", "frame", "flags")
    KIND = "connection"

    def __init__(self, direction: Direction, ts: int, frame: int, flags: int) -> None:
        self.direction = direction
        self.ts = ts
        self.frame = frame
        self.flags = flags

    def __repr__(self) -> str:
        return f"Connection(direction={self.direction}, flags={self.flags:#x})"


class TlsServerCertificate:
    """What the TLS handshake of a Modbus/TCP Security (port 802) connection showed.

    Attributes: certificate (an :class:`otsentry.agent.tls.TlsCertificate`: version,
    subject, issuer, validity, names, fingerprint, or why it was not visible),
    ts, frame; direction is always RESPONSE (the server sent it).
    """

    __slots__ = ("certificate", "ts", "frame", "direction")
    KIND = "tls-certificate"

    def __init__(self, certificate: object, ts: int, frame: int) -> None:
        self.certificate = certificate
        self.ts = ts
        self.frame = frame
        self.direction = RESPONSE

    def __repr__(self) -> str:
        return f"TlsServerCertificate({self.certificate!r})"
