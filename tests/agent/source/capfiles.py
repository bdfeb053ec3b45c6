"""Tiny pcap and pcapng writers for the source tests, independent of the readers.

Each writer returns bytes; ``Packets`` are ``(ts_ns, linktype, frame)``
tuples, the readers' output, so round trips compare lists directly.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable, Sequence

__all__ = [
    "ShortReads",
    "block",
    "epb",
    "frames",
    "idb",
    "opb",
    "pcap",
    "pcap_record",
    "shb",
    "spb",
]

Packets = list[tuple[int, int, bytes]]


def frames(n: int, size: int = 60) -> list[bytes]:
    """``n`` distinct frames of about ``size`` bytes."""
    return [struct.pack(">I", i) + bytes((i + k) & 0xFF for k in range(size - 4)) for i in range(n)]


def pcap(records: Iterable[tuple[int, bytes]], linktype: int = 1, order: str = "<",
         nanos: bool = False, snaplen: int = 65535, orig_extra: int = 0) -> bytes:
    """A pcap file; ``records`` are ``(ts_ns, frame)``; ``nanos`` picks the magic."""
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for ts, data in records:
        out.append(pcap_record(ts, data, order, nanos, orig_extra))
    return b"".join(out)


def pcap_record(ts: int, data: bytes, order: str = "<", nanos: bool = False,
                orig_extra: int = 0) -> bytes:
    """One pcap record header and frame."""
    sec, frac = divmod(ts, 1_000_000_000)
    if not nanos:
        frac //= 1000
    return struct.pack(order + "IIII", sec, frac, len(data), len(data) + orig_extra) + data


def block(btype: int, body: bytes, order: str = "<") -> bytes:
    """A generic pcapng block: body padded to 4, both lengths set."""
    body += b"\0" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack(order + "II", btype, n) + body + struct.pack(order + "I", n)


def _options(opts: Sequence[tuple[int, bytes]], order: str) -> bytes:
    if not opts:
        return b""
    out = b"".join(struct.pack(order + "HH", c, len(v)) + v + b"\0" * (-len(v) % 4)
                   for c, v in opts)
    return out + struct.pack(order + "HH", 0, 0)


def shb(order: str = "<", major: int = 1) -> bytes:
    """A Section Header Block (section length unknown)."""
    return block(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, major, 0, -1), order)


def idb(linktype: int = 1, order: str = "<", snaplen: int = 0, tsresol: int | None = None,
        tsoffset: int | None = None) -> bytes:
    """An Interface Description Block with optional if_tsresol / if_tsoffset."""
    opts = [(2, b"eth0")]
    if tsresol is not None:
        opts.append((9, bytes([tsresol])))
    if tsoffset is not None:
        opts.append((14, struct.pack(order + "q", tsoffset)))
    return block(1, struct.pack(order + "HHI", linktype, 0, snaplen) + _options(opts, order), order)


def epb(ts_units: int, data: bytes, iid: int = 0, order: str = "<") -> bytes:
    """An Enhanced Packet Block; ``ts_units`` in the interface's resolution."""
    hdr = struct.pack(order + "IIIII", iid, ts_units >> 32, ts_units & 0xFFFFFFFF, len(data),
                      len(data))
    return block(6, hdr + data + b"\0" * (-len(data) % 4) + _options([(1, b"c")], order), order)


def spb(data: bytes, orig: int | None = None, order: str = "<") -> bytes:
    """A Simple Packet Block."""
    return block(3, struct.pack(order + "I", len(data) if orig is None else orig) + data, order)


def opb(ts_units: int, data: bytes, iid: int = 0, order: str = "<") -> bytes:
    """An obsolete Packet Block (type 2)."""
    hdr = struct.pack(order + "HHIIII", iid, 0, ts_units >> 32, ts_units & 0xFFFFFFFF,
                      len(data), len(data))
    return block(2, hdr + data, order)


class ShortReads(io.RawIOBase):
    """A binary file object whose reads return at most the next size from ``sizes``.

    Sizes are cycled; it has ``read`` but no ``read1``, like a minimal pipe.
    """

    def __init__(self, data: bytes, sizes: Sequence[int]) -> None:
        self._data = memoryview(data)
        self._sizes = [max(1, s) for s in sizes] or [1]
        self._i = 0
        self._pos = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        want = self._sizes[self._i % len(self._sizes)]
        self._i += 1
        if n >= 0:
            want = min(want, n)
        out = bytes(self._data[self._pos:self._pos + want])
        self._pos += len(out)
        return out
