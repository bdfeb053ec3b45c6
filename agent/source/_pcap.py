"""The classic pcap format (libpcap), microsecond and nanosecond, both byte orders.

File layout (draft-ietf-opsawg-pcap §4, §5): a 24-byte file header
``magic, version_major, version_minor, thiszone, sigfigs, snaplen, linktype``
then records of a 16-byte header ``ts_sec, ts_frac, incl_len, orig_len`` and
``incl_len`` bytes of frame.  The magic says the byte order and the unit of
``ts_frac``: ``0xa1b2c3d4`` microseconds, ``0xa1b23c4d`` nanoseconds.

This is the hot path of the agent.  The loop in :func:`read_records` works
on one buffer with ``struct.unpack_from``; per packet it makes only the frame
``bytes`` slice, the timestamp ``int`` and the yielded tuple.  Bounds: one
record is at most :data:`MAX_RECORD` bytes, so the buffer never exceeds
``MAX_RECORD + CHUNK`` whatever the file says.
"""

from __future__ import annotations

import struct
from collections.abc import Generator
from typing import Final

from otsentry.agent.source._base import Packet
from otsentry.agent.source._stream import ChunkReader
from otsentry.common.errors import CaptureError

__all__ = ["FILE_HEADER_LEN", "MAGICS", "MAX_RECORD", "parse_header", "read_records"]

FILE_HEADER_LEN: Final = 24
RECORD_HEADER_LEN: Final = 16
# Bigger than any real snap length (libpcap's maximum is 262144, 256 MiB only for
# D-Bus/USB); a larger length means the file is corrupt, not that we need more memory.
MAX_RECORD: Final = 1 << 24

# first four bytes as they appear in the file -> (struct byte order, ns per ts_frac unit)
MAGICS: Final[dict[bytes, tuple[str, int]]] = {
    b"\xd4\xc3\xb2\xa1": ("<", 1000),
    b"\xa1\xb2\xc3\xd4": (">", 1000),
    b"\x4d\x3c\xb2\xa1": ("<", 1),
    b"\xa1\xb2\x3c\x4d": (">", 1),
}


def parse_header(head: bytes, name: str) -> tuple[str, int, int, int]:
    """Parse the 24-byte file header.

    Args:
        head: the first bytes of the (decompressed) file; starts with a pcap magic.
        name: the source name for error messages.

    Returns:
        ``(byte_order, ns_per_unit, linktype, snaplen)``.

    Raises:
        CaptureError: the header is cut short or has an unknown major version.
    """
    order, scale = MAGICS[head[:4]]
    if len(head) < FILE_HEADER_LEN:
        raise CaptureError(f"pcap file header cut short ({len(head)} of 24 bytes)",
                           source=name, offset=len(head))
    major, _minor, _zone, _sigfigs, snaplen, network = struct.unpack_from(
        order + "HHiIII", head, 4)
    if major != 2:
        raise CaptureError(f"unsupported pcap version {major} (only version 2 exists)",
                           source=name, offset=4)
    # Bits 16-31 of the link-type field carry FCS information, not the link type.
    return order, scale, network & 0xFFFF, snaplen


def read_records(reader: ChunkReader, buf: bytes, order: str, scale: int,
                 linktype: int) -> Generator[Packet, None, None]:
    """Yield ``(ts_ns, linktype, frame)`` for every record of a pcap stream.

    Args:
        reader: the chunk reader positioned after ``buf``.
        buf: bytes already read, starting right after the 24-byte file header.
        order: struct byte order from the magic (``"<"`` or ``">"``).
        scale: nanoseconds per unit of the fractional timestamp (1000 or 1).
        linktype: the file's link type, repeated in every tuple.

    Raises:
        CaptureError: after the last complete record, when the file ends inside a
            record or a record length is impossible; ``offset`` is the start of
            that record in the (decompressed) stream.
    """
    # One long function on purpose: this loop is the agent's hot path, and a helper
    # call or an extra generator layer per packet costs about 30% (measured).
    unpack = struct.Struct(order + "IIII").unpack_from
    stats = reader.stats
    base = FILE_HEADER_LEN   # stream offset of buf[0]
    pos = 0
    n = 0
    try:
        while True:
            end = len(buf)
            # The hot loop: everything it touches is a local.
            while pos + 16 <= end:
                sec, frac, incl, _orig = unpack(buf, pos)
                stop = pos + 16 + incl
                if stop > end:
                    break
                n += 1
                yield sec * 1_000_000_000 + frac * scale, linktype, buf[pos + 16:stop]
                pos = stop
            stats.packets += n
            n = 0
            if pos + 16 <= end:
                _check_length(unpack(buf, pos)[2], reader.name, base + pos)
            chunk = reader.read()
            if not chunk:
                _check_end(buf, pos, base, reader.name)
                return
            buf = buf[pos:] + chunk
            base += pos
            pos = 0
    finally:
        stats.packets += n
        reader.close()


def _check_length(incl: int, name: str, offset: int) -> None:
    if incl > MAX_RECORD:
        raise CaptureError(f"corrupt pcap record: captured length {incl} is impossible "
                           f"(more than {MAX_RECORD})", source=name, offset=offset)


def _check_end(buf: bytes, pos: int, base: int, name: str) -> None:
    left = len(buf) - pos
    if left:
        raise CaptureError(f"capture is truncated: the last record is cut short "
                           f"({left} bytes of a record at the end)", source=name,
                           offset=base + pos)
