"""Test helpers that ship with the package: craft Ethernet/IPv4/TCP frames of Modbus sessions.

    wire = Wire()
    conn = wire.connect(ts, "10.0.0.10", "10.0.0.20")          # handshake
    wire.exchange(conn, ts, *Conversation(unit=1).exchange(3, address=0, registers=(1, 2)))
    wire.frames                                                  # [(ts_ns, linktype, bytes)]
    wire.write_pcap("scenario.pcap")

Frames carry correct sequence numbers, so the agent's reassembly sees a clean
stream; everything else (retransmissions with other bytes, responses without
requests, another MAC for an address) is built on purpose by the caller.
No I/O except :meth:`Wire.write_pcap`; no randomness.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

__all__ = ["Wire", "Conn", "mac_of"]

_LINKTYPE_ETHERNET = 1
_SYN, _FIN, _ACK, _PSH, _RST = 0x02, 0x01, 0x10, 0x08, 0x04


def mac_of(ip: str) -> bytes:
    """A locally administered MAC derived from an IPv4 address (02:00:a:b:c:d)."""
    return bytes([2, 0, *map(int, ip.split("."))])


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


@dataclass
class Conn:
    """One TCP connection: addresses, MACs and the next sequence number per direction."""

    client: str
    server: str
    cport: int
    sport: int
    cmac: bytes
    smac: bytes
    seq: list[int] = field(default_factory=lambda: [1000, 5000])


class Wire:
    """A growing list of crafted frames (see the module docstring)."""

    def __init__(self) -> None:
        self.frames: list[tuple[int, int, bytes]] = []
        self._next_port = 40000
        self._ip_id = 1

    def frame(self, ts: int, conn: Conn, direction: int, flags: int, payload: bytes = b"",
              seq: int | None = None) -> None:
        """Append one segment; ``direction`` 0 = client to server.  Advances the sequence."""
        src, dst = (conn.client, conn.server) if direction == 0 else (conn.server, conn.client)
        sport, dport = (conn.cport, conn.sport) if direction == 0 else (conn.sport, conn.cport)
        smac, dmac = (conn.cmac, conn.smac) if direction == 0 else (conn.smac, conn.cmac)
        s = conn.seq[direction] if seq is None else seq
        ack = conn.seq[1 - direction]
        tcp = struct.pack("!HHIIBBHHH", sport, dport, s, ack if flags & _ACK else 0, 5 << 4,
                          flags, 65535, 0, 0) + payload
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), self._ip_id & 0xFFFF, 0x4000, 64,
                         6, 0, bytes(map(int, src.split("."))), bytes(map(int, dst.split("."))))
        ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
        self._ip_id += 1
        self.frames.append((ts, _LINKTYPE_ETHERNET, dmac + smac + b"\x08\x00" + ip + tcp))
        if seq is None:
            conn.seq[direction] = s + len(payload) + (1 if flags & (_SYN | _FIN) else 0)

    def connect(self, ts: int, client: str, server: str, sport: int = 502,
                cmac: bytes | None = None, smac: bytes | None = None) -> Conn:
        """Open a connection with a three-way handshake (1 us apart)."""
        conn = Conn(client, server, self._next_port, sport, cmac or mac_of(client),
                    smac or mac_of(server))
        self._next_port += 1
        self.frame(ts, conn, 0, _SYN)
        self.frame(ts + 1000, conn, 1, _SYN | _ACK)
        self.frame(ts + 2000, conn, 0, _ACK)
        return conn

    def send(self, conn: Conn, ts: int, direction: int, payload: bytes) -> None:
        """One data segment (PSH+ACK)."""
        self.frame(ts, conn, direction, _PSH | _ACK, payload)

    def exchange(self, conn: Conn, ts: int, request: bytes, response: bytes | None,
                 latency_ns: int = 1_000_000) -> None:
        """A request and, ``latency_ns`` later, its response (None: no answer)."""
        self.send(conn, ts, 0, request)
        if response is not None:
            self.send(conn, ts + latency_ns, 1, response)

    def close(self, conn: Conn, ts: int) -> None:
        """FIN from both ends."""
        self.frame(ts, conn, 0, _FIN | _ACK)
        self.frame(ts + 1000, conn, 1, _FIN | _ACK)
        self.frame(ts + 2000, conn, 0, _ACK)

    def sorted_frames(self) -> list[tuple[int, int, bytes]]:
        """The frames in capture-time order (stable for equal times)."""
        return sorted(self.frames, key=lambda f: f[0])

    def write_pcap(self, path: str) -> None:
        """Write the frames, in time order, as a nanosecond pcap file."""
        with open(path, "wb") as fh:
            fh.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, _LINKTYPE_ETHERNET))
            for ts, _lt, data in self.sorted_frames():
                fh.write(struct.pack("<IIII", ts // 10**9, ts % 10**9, len(data), len(data)) + data)
