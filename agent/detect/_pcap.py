"""Evidence pcap slices: the last frames of a flow as a pcap file, in memory.

The pipeline keeps a bounded ring of each Modbus flow's raw frames
(``Flow.ring``: ``(ts_ns, linktype, data)``).  A finding at medium
and above carries them as a classic pcap file with nanosecond timestamps
(magic ``0xa1b23c4d``), which Wireshark and tcpdump open.  A pcap file has one
link type, so frames of another link type than the newest frame's are left
out; the oldest frames go first when the slice would exceed the size bound.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from otsentry.common.finding import MAX_PCAP_SLICE

__all__ = ["pcap_slice", "PCAP_NS_MAGIC"]

#: Magic number of a pcap file whose timestamps carry nanoseconds.
PCAP_NS_MAGIC = 0xA1B23C4D
_SNAPLEN = 262_144
_GLOBAL = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")
_TS_MAX = (1 << 32) * 1_000_000_000 - 1  # the last time a record's 32-bit seconds hold


def pcap_slice(frames: Iterable[tuple[int, int, bytes]], limit: int = MAX_PCAP_SLICE) -> bytes:
    """Write ``(ts_ns, linktype, data)`` frames as one pcap file of at most ``limit`` bytes.

    Returns:
        The file's bytes, or ``b""`` when there is no frame (or none fits).
    """
    frames = list(frames)
    if not frames:
        return b""
    linktype = frames[-1][1]
    room = limit - _GLOBAL.size
    chosen: list[bytes] = []
    for ts, lt, data in reversed(frames):
        if lt != linktype:
            continue
        ts = min(max(ts, 0), _TS_MAX)  # a pcapng time can lie before 1970 or after 2106
        record = _RECORD.pack(ts // 1_000_000_000, ts % 1_000_000_000, len(data), len(data)) + data
        if len(record) > room:
            break
        room -= len(record)
        chosen.append(record)
    if not chosen:
        return b""
    head = _GLOBAL.pack(PCAP_NS_MAGIC, 2, 4, 0, 0, _SNAPLEN, linktype)
    return head + b"".join(reversed(chosen))
