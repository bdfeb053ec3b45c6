"""The Modbus/TCP stream decoder: MBAP framing and PDU decoding for one connection.

Rule 1: all per-connection Modbus state lives here, one buffer per direction.
Rule 2: no I/O, no clock, no logging: bytes and capture times go in, events
come out (the h11 model).

    dec = Decoder()
    dec.receive(REQUEST, data, ts, frame)     # bytes from the client, in order
    dec.gap(RESPONSE, 1460, ts, frame)        # bytes the capture missed
    dec.receive(REQUEST, b"", ts, frame)      # b"" marks end of stream
    while (event := dec.next_event()) is not NEED_DATA:
        ...

Framing ([TCP] §3.1.3): each ADU is a 7-byte MBAP header (transaction id,
protocol id 0, length = unit id + PDU, unit id) and the PDU.  Several ADUs may
share a segment and one ADU may be split across segments (even inside the
header); the decoder buffers per direction and is chunking-invariant: any
split of the same byte stream yields the same events.

Resync: a header with a protocol id other than 0 or a length outside 2..254 is
reported once as :class:`Malformed`, then the decoder scans for the next
plausible header (protocol id 0, legal length, and either the ADU ends exactly
at the end of the buffered bytes or the next header is plausible too).  After a
gap it resyncs the same way.  A connection whose first bytes are another
protocol (HTTP, TLS, SSH...) or that never yields a valid ADU within
``MAX_BAD_HEADERS`` bad headers becomes :class:`NotModbus` and its further
bytes are only counted.

RTU over TCP: a connection whose first bytes are a Modbus RTU frame (unit,
PDU, valid CRC-16; [Serial] = MODBUS over Serial Line V1.02) is decoded as RTU
from then on (:attr:`Decoder.rtu`); RTU carries no transaction id, so its
messages have tid 0.

Memory: at most one partial ADU (260 bytes) plus one receive is buffered per
direction, whatever the input.
"""

from __future__ import annotations

from struct import Struct
from typing import Final

from otsentry.agent.modbus import _events as ev
from otsentry.agent.modbus._pdu import (
    REQUEST_DECODERS,
    RESPONSE_DECODERS,
    _raw_request,
    _raw_response,
)
from otsentry.agent.modbus._spec import PUBLIC
from otsentry.common.errors import MalformedFrame

__all__ = ["Decoder", "NEED_DATA", "classify_payload", "MAX_BAD_HEADERS", "crc16",
           "rtu_frame_length"]

_MBAP = Struct(">HHHB")
_MBAP_HDR = Struct(">HHH")
_MAX_ADU: Final = 260
#: Bad headers tolerated on a connection that has never carried a valid ADU.
MAX_BAD_HEADERS: Final = 3
_EVIDENCE: Final = 260
#: Bytes skipped without finding any ADU before a connection picked up midstream is
#: declared not Modbus.
_MAX_SKIP_WITHOUT_ADU: Final = 1024


class _NeedData:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


#: Sentinel returned by :meth:`Decoder.next_event` when more bytes are needed.
NEED_DATA: Final = _NeedData()

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"GET ", "http"), (b"POST ", "http"), (b"PUT ", "http"), (b"HEAD ", "http"),
    (b"DELETE ", "http"), (b"OPTIONS ", "http"), (b"CONNECT ", "http"), (b"HTTP/", "http"),
    (b"SSH-", "ssh"), (b"\x16\x03\x00", "tls"), (b"\x16\x03\x01", "tls"), (b"\x16\x03\x02", "tls"),
    (b"\x16\x03\x03", "tls"), (b"\x03\x00", "tpkt"), (b"220 ", "smtp-ftp"), (b"\x05\x01", "socks"),
)


def classify_payload(data: bytes) -> str:
    """Name the protocol the first bytes of a non-Modbus stream look like (``unknown`` if none)."""
    for prefix, name in _SIGNATURES:
        if data.startswith(prefix):
            return name
    return "unknown"


def _plausible(buf: bytes | bytearray, pos: int) -> int:
    """Length of a plausible ADU starting at ``pos``: 0 if implausible, -1 if more bytes needed."""
    if len(buf) - pos < 8:
        return -1
    _tid, proto, length = _MBAP_HDR.unpack_from(buf, pos)
    if proto != 0 or not 2 <= length <= 254:
        return 0
    return 6 + length


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE: Final = _crc_table()


def crc16(data: bytes | bytearray) -> int:
    """Modbus RTU CRC-16 ([Serial] §6.2.2: polynomial 0xA001 reflected, initial 0xFFFF)."""
    crc = 0xFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


def _rtu_expected(buf: bytes | bytearray, pos: int, request: bool) -> int:
    """Frame length implied by the PDU structure: 0 if no RTU frame can start here,
    -1 if more bytes are needed to tell."""
    n = len(buf) - pos
    if n < 1:
        return -1
    if buf[pos] > 247:  # [Serial] §2.2: serial addresses are 0 (broadcast) to 247
        return 0
    if n < 2:
        return -1
    fc = buf[pos + 1]
    if request:
        fixed = _RTU_REQUEST_FIXED.get(fc)
        if fixed:
            return fixed
        at = _RTU_REQUEST_COUNT_AT.get(fc)
    else:
        if fc & 0x80:
            return 5 if fc & 0x7F in PUBLIC else 0
        fixed = _RTU_RESPONSE_FIXED.get(fc)
        if fixed:
            return fixed
        at = _RTU_RESPONSE_COUNT_AT.get(fc)
    if at is None:
        return 0
    if n <= at:
        return -1
    return at + 1 + buf[pos + at] + 2


# Whole RTU frame sizes (unit + PDU + CRC) per function code ([AP] §6).
_RTU_REQUEST_FIXED: Final = {1: 8, 2: 8, 3: 8, 4: 8, 5: 8, 6: 8, 7: 4, 8: 8, 11: 4, 12: 4,
                             17: 4, 22: 10, 24: 6}
_RTU_REQUEST_COUNT_AT: Final = {15: 6, 16: 6, 20: 2, 21: 2, 23: 10}
_RTU_RESPONSE_FIXED: Final = {5: 8, 6: 8, 8: 8, 11: 8, 15: 8, 16: 8, 7: 5, 22: 10}
_RTU_RESPONSE_COUNT_AT: Final = {1: 2, 2: 2, 3: 2, 4: 2, 12: 2, 17: 2, 20: 2, 21: 2, 23: 2}


def rtu_frame_length(buf: bytes | bytearray, pos: int = 0, request: bool = True) -> int:
    """Length of a Modbus RTU frame (unit, PDU, CRC) starting at ``pos``.

    The length implied by the function code is tried first, then every length
    up to 256 bytes; a frame is accepted only when its CRC matches.

    Returns:
        The frame length, 0 if no valid frame starts there, -1 if more bytes may help.
    """
    n = len(buf) - pos
    size = _rtu_expected(buf, pos, request)
    if 4 <= size <= n and crc16(buf[pos : pos + size - 2]) == buf[pos + size - 2] | buf[pos + size - 1] << 8:
        return size
    for size in range(4, min(n, 256) + 1):
        body = buf[pos : pos + size - 2]
        if crc16(body) == buf[pos + size - 2] | buf[pos + size - 1] << 8:
            return size
    return -1 if n < 256 else 0


class _Direction:
    __slots__ = ("buf", "marks", "resync", "bad_headers", "good", "skipped", "closed",
                 "rtu_checked")

    def __init__(self, resync: bool) -> None:
        self.buf = bytearray()
        # (end offset in buf, ts, frame) of each receive still (partly) buffered, so that an
        # ADU completed by an earlier segment keeps that segment's time and frame number.
        self.marks: list[tuple[int, int, int]] = []
        self.resync = resync  # True: looking for a plausible header (after a gap / midstream)
        self.bad_headers = 0
        self.good = 0
        self.skipped = 0  # bytes discarded while resynchronising
        self.closed = False
        self.rtu_checked = False  # has the start of this direction been tested for RTU framing?


class Decoder:
    """Decode both directions of one Modbus/TCP connection into events.

    Args:
        midstream: True when the capture started after the connection was set
            up: the first bytes of each direction may start inside an ADU, so
            the decoder begins by looking for a plausible header.
    """

    __slots__ = ("_dirs", "_events", "not_modbus", "adus", "bytes_ignored", "rtu")

    def __init__(self, midstream: bool = False) -> None:
        self._dirs = (_Direction(midstream), _Direction(midstream))
        self._events: list[ev.Event] = []
        #: Protocol name once the connection was found not to be Modbus, else None.
        self.not_modbus: str | None = None
        #: Valid ADUs decoded so far (both directions).
        self.adus = 0
        #: Bytes ignored because the connection is not Modbus.
        self.bytes_ignored = 0
        #: True once the connection was found to carry Modbus RTU frames (CRC, no MBAP).
        self.rtu = False

    # --- input ----------------------------------------------------------------------------

    def receive(self, direction: ev.Direction, data: bytes, ts: int, frame: int) -> None:
        """Feed stream bytes of one direction, in order.

        Args:
            direction: ``REQUEST`` (client to server) or ``RESPONSE``.
            data: the next bytes of that direction; ``b""`` marks end of stream.
            ts: capture time (ns) of the segment carrying ``data``.
            frame: frame number of that segment.
        """
        d = self._dirs[direction]
        if not data:
            self._eof(d, direction, ts, frame)
            return
        # (read into a local: a check on the attribute itself would let a type checker, and
        # so the compiled build, assume it stays None after _frame() below)
        ignored = self.not_modbus
        if ignored is not None or d.closed:
            self.bytes_ignored += len(data)
            return
        if not d.buf and not d.resync and d.rtu_checked:
            # Fast path: the segment starts on an ADU boundary (the usual case).
            used = self._frame(direction, d, data, ts, frame)
            if used < len(data) and self.not_modbus is None:
                d.buf += data[used:]
            elif self.not_modbus is not None:
                self.bytes_ignored += len(data) - used
            return
        d.buf += data
        d.marks.append((len(d.buf), ts, frame))
        used = self._frame(direction, d, d.buf, ts, frame)
        if self.not_modbus is not None:
            self.bytes_ignored += len(d.buf) - used
            d.buf.clear()
            d.marks.clear()
        elif used:
            del d.buf[:used]
            d.marks = [(end - used, t, f) for end, t, f in d.marks if end > used]

    def datagram(self, direction: ev.Direction, data: bytes, ts: int, frame: int) -> None:
        """Feed one UDP datagram (Modbus/UDP): it must hold whole ADUs.

        Bytes left over after the last whole ADU are reported as a
        ``truncated-adu`` :class:`Malformed` event; datagrams never join.
        """
        d = self._dirs[direction]
        ignored = self.not_modbus  # a local, as in receive()
        if ignored is not None:
            self.bytes_ignored += len(data)
            return
        d.resync = False
        used = self._frame(direction, d, data, ts, frame)
        if used < len(data) and self.not_modbus is None:
            rest = data[used:]
            self._events.append(ev.Malformed(direction, "truncated-adu", used, rest[:_EVIDENCE], ts,
                                             frame, *self._header_fields(rest)))

    def gap(self, direction: ev.Direction, nbytes: int, ts: int, frame: int) -> None:
        """Report ``nbytes`` bytes of one direction that the capture never saw.

        Any partial ADU buffered for that direction is dropped (it cannot be
        completed) and the decoder resyncs on the next plausible header.
        """
        d = self._dirs[direction]
        if d.buf and self.not_modbus is None:
            # The bytes before the hole are complete as far as they go: decode what they hold.
            used = self._frame(direction, d, d.buf, ts, frame, final=True)
            del d.buf[:used]
        self._events.append(ev.Gap(direction, nbytes, ts, frame))
        d.skipped += len(d.buf)
        d.buf.clear()
        d.marks.clear()
        d.resync = True

    def eof(self, direction: ev.Direction, ts: int = 0, frame: int = 0) -> None:
        """Mark the end of one direction (same as ``receive(direction, b"", ...)``)."""
        self._eof(self._dirs[direction], direction, ts, frame)

    def _eof(self, d: _Direction, direction: ev.Direction, ts: int, frame: int) -> None:
        if d.closed:
            return
        d.closed = True
        if d.buf and self.not_modbus is None:
            used = self._frame(direction, d, d.buf, ts, frame, final=True)
            del d.buf[:used]
            d.marks = [(end - used, t, f) for end, t, f in d.marks if end > used]
        if d.buf and self.not_modbus is None:
            raw = bytes(d.buf[:_EVIDENCE])
            self._events.append(ev.Malformed(direction, "truncated-adu", len(d.buf), raw, ts, frame,
                                             *self._header_fields(d.buf)))
        d.buf.clear()
        d.marks.clear()

    # --- output ---------------------------------------------------------------------------

    def next_event(self) -> object:
        """Return the next event, or :data:`NEED_DATA` when none is pending."""
        if self._events:
            return self._events.pop(0)
        return NEED_DATA

    def take_events(self) -> list[ev.Event]:
        """Return and clear every pending event (the batch form of :meth:`next_event`)."""
        out = self._events
        self._events = []
        return out

    # --- framing --------------------------------------------------------------------------

    @staticmethod
    def _header_fields(buf: bytes | bytearray) -> tuple[int | None, int | None, int | None]:
        if len(buf) >= 7:
            tid, _proto, _length, unit = _MBAP.unpack_from(buf, 0)
            fc = buf[7] if len(buf) > 7 else None
            return tid, unit, fc
        return None, None, None

    def _frame(self, direction: ev.Direction, d: _Direction, buf: bytes | bytearray, ts: int,
               frame: int, final: bool = False) -> int:
        """Decode every complete ADU in ``buf``; return the number of bytes consumed.

        ``final`` is True at end of stream: a resync candidate is then accepted
        without seeing the header that follows it.
        """
        if not d.rtu_checked:
            if not self._check_rtu(direction, d, buf, final):
                return 0
        if self.rtu:
            return self._frame_rtu(direction, d, buf, ts, frame, final)
        n = len(buf)
        pos = 0
        events = self._events
        table = REQUEST_DECODERS if direction == ev.REQUEST else RESPONSE_DECODERS
        fallback = _raw_request if direction == ev.REQUEST else _raw_response
        if d.resync:
            if self.adus == 0 and d.good == 0 and d.skipped == 0 and d.bad_headers == 0:
                # A connection picked up midstream may be another protocol on a Modbus port.
                if len(buf) < 8 and not final:
                    return 0
                guess = classify_payload(bytes(buf[:8]))
                if guess != "unknown":
                    self._not_modbus(direction, guess, bytes(buf[:8]), ts, frame)
                    return 0
            found, pos = self._resync(d, buf, 0, final)
            if not found:
                if self.adus == 0 and d.skipped > _MAX_SKIP_WITHOUT_ADU:
                    self._not_modbus(direction, "unknown", b"", ts, frame)
                return pos
        while n - pos >= 8:
            tid, proto, length, unit = _MBAP.unpack_from(buf, pos)
            if proto != 0 or length < 2 or length > 254:
                if self._bad_header(direction, d, buf, pos, proto, ts, frame):
                    return pos
                found, pos = self._resync(d, buf, pos + 1, final)
                if not found:
                    return pos
                continue
            end = pos + 6 + length
            if end > n:
                break
            pdu = bytes(buf[pos + 7 : end])
            if buf is d.buf and d.marks:
                _end, ts, frame = next(m for m in d.marks if m[0] >= end)
            try:
                events.append(table.get(pdu[0], fallback)(pdu, tid, unit, ts, frame))
            except MalformedFrame as exc:
                events.append(ev.Malformed(direction, exc.reason, exc.offset + 7,
                                           bytes(buf[pos:end]), ts, frame, tid, unit, pdu[0]))
            d.good += 1
            self.adus += 1
            pos = end
        return pos

    def _check_rtu(self, direction: ev.Direction, d: _Direction, buf: bytes | bytearray,
                   final: bool) -> bool:
        """Decide, from the first bytes of a direction, whether the connection is RTU framed.

        The first bytes are taken as an RTU frame of the length their function code
        implies; a matching CRC-16 switches the connection to RTU.  A plausible MBAP
        ADU too short to hold that frame settles it for MBAP at once.  The decision
        depends on the stream's bytes only (never on segment boundaries); it waits
        for more bytes only when no MBAP ADU could be decoded anyway.

        Returns:
            False when more bytes are needed before deciding.
        """
        if self.rtu or self.adus or d.good or d.skipped:
            d.rtu_checked = True
            return True
        size = _rtu_expected(buf, 0, direction == ev.REQUEST)
        mbap = _plausible(buf, 0)
        if mbap > 0 and not 4 <= size <= mbap:
            d.rtu_checked = True  # a plausible MBAP ADU that cannot hold the RTU frame: MBAP
            return True
        if size < 0:
            if not final:
                return False  # the function code or its byte count is not here yet
            size = 0
        if size >= 4 and len(buf) < size:
            if not final:
                return False
            size = 0
        d.rtu_checked = True
        if size >= 4 and crc16(buf[: size - 2]) == buf[size - 2] | buf[size - 1] << 8:
            self.rtu = True
        return True

    def _frame_rtu(self, direction: ev.Direction, d: _Direction, buf: bytes | bytearray, ts: int,
                   frame: int, final: bool) -> int:
        """Decode Modbus RTU frames (RTU over TCP: unit, PDU, CRC; no MBAP header).

        RTU has no transaction id: messages carry tid 0 and pair first-in first-out
        per unit.  Bytes that start no valid frame are skipped and reported once.
        """
        n, pos = len(buf), 0
        request = direction == ev.REQUEST
        table = REQUEST_DECODERS if request else RESPONSE_DECODERS
        fallback = _raw_request if request else _raw_response
        skipped_from = -1
        while n - pos >= 4:
            size = rtu_frame_length(buf, pos, request)
            if size < 0 and not final:
                break
            if size <= 0:
                if skipped_from < 0:
                    skipped_from = pos
                pos += 1
                continue
            if skipped_from >= 0:
                self._events.append(ev.Malformed(direction, "bad-rtu-crc", 0,
                                                 bytes(buf[skipped_from:pos][:_EVIDENCE]), ts, frame))
                skipped_from = -1
            pdu = bytes(buf[pos + 1 : pos + size - 2])
            unit = buf[pos]
            try:
                self._events.append(table.get(pdu[0], fallback)(pdu, 0, unit, ts, frame))
            except MalformedFrame as exc:
                self._events.append(ev.Malformed(direction, exc.reason, exc.offset + 1,
                                                 bytes(buf[pos : pos + size]), ts, frame, 0, unit,
                                                 pdu[0]))
            d.good += 1
            self.adus += 1
            pos += size
        if skipped_from >= 0:
            self._events.append(ev.Malformed(direction, "bad-rtu-crc", 0,
                                             bytes(buf[skipped_from:pos][:_EVIDENCE]), ts, frame))
        return n if final else pos

    def _not_modbus(self, direction: ev.Direction, guess: str, sample: bytes, ts: int,
                    frame: int) -> None:
        self.not_modbus = guess
        self._events.append(ev.NotModbus(direction, guess, sample, ts, frame))

    def _bad_header(self, direction: ev.Direction, d: _Direction, buf: bytes | bytearray, pos: int,
                    proto: int, ts: int, frame: int) -> bool:
        """Report a bad header; return True when the connection turned out not to be Modbus."""
        d.bad_headers += 1
        # Evidence is the 8 bytes examined (header and function code): what follows them
        # depends on how the stream was chunked, and the events must not.
        raw = bytes(buf[pos : pos + 8])
        if self.adus == 0 and d.good == 0:
            guess = classify_payload(raw) if pos == 0 and d.skipped == 0 else "unknown"
            if guess != "unknown" or d.bad_headers >= MAX_BAD_HEADERS:
                self._not_modbus(direction, guess, raw, ts, frame)
                return True
        reason = "bad-protocol-id" if proto != 0 else "bad-length"
        tid, unit, fc = self._header_fields(raw)
        self._events.append(ev.Malformed(direction, reason, 0, raw, ts, frame, tid, unit, fc))
        return False

    @staticmethod
    def _resync(d: _Direction, buf: bytes | bytearray, start: int, final: bool) -> tuple[bool, int]:
        """Find the next plausible ADU start at or after ``start``.

        A candidate is accepted only when the header after it is plausible too
        (or, at end of stream, when it ends exactly at the end of the data), so
        the choice depends on the bytes alone, never on how they were chunked.

        Returns:
            ``(True, pos)`` with the accepted start, or ``(False, pos)`` where
            ``pos`` is the first byte that must be kept until more data arrives.
        """
        n = len(buf)
        pos = start
        while True:
            size = _plausible(buf, pos)
            if size < 0:
                break
            if size > 0:
                end = pos + size
                if end > n:
                    break
                follow = _plausible(buf, end)
                if follow > 0 or (final and end == n):
                    d.skipped += pos - start
                    d.resync = False
                    return True, pos
                if follow < 0 and not final:
                    break
            pos += 1
        if final:
            pos = n
        d.skipped += pos - start
        d.resync = True
        return False, pos
