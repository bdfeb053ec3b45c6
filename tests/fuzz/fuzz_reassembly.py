"""Fuzz TCP reassembly feeding the Modbus decoder: input bytes become a list of segments.

Input layout: a sequence of records ``[flags][direction+offset hi][offset lo][length]``
followed by ``length`` payload bytes.  Offsets are relative to a base sequence
number near 2**32 so that wrap-around is exercised; flags are the TCP flags as on
the wire.  Only typed outcomes are allowed; any exception is a crash.

    python -m tests.fuzz.fuzz_reassembly tests/fuzz/corpus/reassembly
"""

from __future__ import annotations

import struct
import sys

import atheris

with atheris.instrument_imports():
    from otsentry.agent.modbus import Decoder, Gap, Malformed, Message, NotModbus
    from otsentry.agent.reassembly import ReassemblyStats, TcpStream

BASE_SEQ = 2**32 - 300
_ALLOWED = (Message, Malformed, NotModbus, Gap)
_RECORD = struct.Struct(">BHB")


def record(flags: int, direction: int, offset: int, payload: bytes) -> bytes:
    """Encode one segment (for seeds): ``offset`` is 0..32767 bytes after the base sequence."""
    return _RECORD.pack(flags, (direction << 15) | offset, len(payload)) + payload


def segments(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """Decode the input into ``(direction, seq, flags, payload)`` segments."""
    out, pos = [], 0
    while pos + 4 <= len(data):
        flags, word, size = _RECORD.unpack_from(data, pos)
        pos += 4
        payload = data[pos : pos + size]
        pos += size
        out.append((word >> 15, (BASE_SEQ + (word & 0x7FFF)) & 0xFFFFFFFF, flags, payload))
    return out


def TestOneInput(data: bytes) -> None:
    segs = segments(data)
    if not segs:
        return
    dec = Decoder(midstream=not segs[0][2] & 0x02)
    stats, violations = ReassemblyStats(), []
    streams = (TcpStream(0, dec, stats, violations), TcpStream(1, dec, stats, violations))
    for i, (direction, seq, flags, payload) in enumerate(segs):
        streams[direction].segment(seq, flags, payload, i * 1_000_000, i + 1, ip_id=i & 0xFFFF)
        for event in dec.take_events():
            if not isinstance(event, _ALLOWED):
                raise TypeError(f"unexpected event {event!r}")
    for stream in streams:
        stream.close(len(segs) * 1_000_000, len(segs) + 1)
    for event in dec.take_events():
        if not isinstance(event, _ALLOWED):
            raise TypeError(f"unexpected event {event!r}")


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
