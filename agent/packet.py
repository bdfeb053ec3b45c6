"""Link, IP and transport headers: frame bytes in, a small tuple out.

Sans-I/O and allocation-light: :meth:`PacketParser.parse` returns
``(proto, src, dst, sport, dport, seq, flags, payload, ip_id)`` for TCP and
UDP over IPv4/IPv6, or ``None`` for anything else (counted in the parser's
counters).  ``src``/``dst`` are the raw 4- or 16-byte addresses; ``payload``
is trimmed to the IP length, so Ethernet padding never leaks into streams.
Details needed once per flow (MACs, VLAN ids, TTL, TCP window) come from
:func:`frame_details`.

Link types (pcap LINKTYPE_* values): Ethernet II (1) with 802.1Q / QinQ tags,
Linux cooked SLL (113) and SLL2 (276), raw IP (101, 12, 14), IPv4 (228),
IPv6 (229), BSD loopback NULL (0, host order) and LOOP (108, network order).
"""

from __future__ import annotations

import ipaddress
from struct import Struct
from struct import error as struct_error
from typing import Final

__all__ = [
    "PacketParser", "FrameDetails", "frame_details", "ip_text", "LINKTYPES",
    "TCP", "UDP", "FIN", "SYN", "RST", "PSH", "ACK", "URG",
]

TCP: Final = 6
UDP: Final = 17
FIN, SYN, RST, PSH, ACK, URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20

LINKTYPES: Final[dict[int, str]] = {
    0: "null", 1: "ethernet", 12: "raw", 14: "raw", 101: "raw", 108: "loop",
    113: "linux-sll", 228: "ipv4", 229: "ipv6", 276: "linux-sll2",
}

_IPV4 = Struct(">BBHHHBBH4s4s")
_TCP = Struct(">HHIIBB")
_UDP = Struct(">HHH")
_U16 = Struct(">H")
_U32LE = Struct("<I")
_U32BE = Struct(">I")
_VLAN_TYPES = frozenset({0x8100, 0x88A8, 0x9100})
_IPV6_EXT = frozenset({0, 43, 60, 135, 139, 140})  # hop-by-hop, routing, dest opts, mobility, HIP, shim6
_BSD_INET6 = frozenset({10, 24, 28, 30})  # AF_INET6 on Linux, NetBSD/OpenBSD, FreeBSD, macOS


class PacketParser:
    """Parse frames to transport tuples and count what is not TCP/UDP over IP.

    Counters (all int): ``frames``, ``non_ip``, ``non_transport``, ``fragments``,
    ``fragments_modbus`` (IPv4/IPv6 fragments carrying a Modbus port: an ADU never
    needs fragmentation, so these are reported as violations), ``truncated``
    (headers cut short by the snap length or malformed), ``unknown_linktype``.
    """

    __slots__ = ("frames", "non_ip", "non_transport", "fragments", "fragments_modbus",
                 "truncated", "unknown_linktype", "modbus_ports")

    def __init__(self, modbus_ports: frozenset[int] = frozenset({502, 802})) -> None:
        self.frames = 0
        self.non_ip = 0
        self.non_transport = 0
        self.fragments = 0
        self.fragments_modbus = 0
        self.truncated = 0
        self.unknown_linktype = 0
        self.modbus_ports = modbus_ports

    def parse(self, linktype: int, data: bytes) -> tuple | None:
        """Parse one frame.

        Returns:
            ``(proto, src, dst, sport, dport, seq, flags, payload, ip_id)`` for TCP
            (``proto`` 6) and UDP (17; ``seq``/``flags`` 0); ``ip_id`` is -1 for IPv6.
            ``None`` for anything else, counted in the parser's counters.
        """
        self.frames += 1
        if linktype == 1 and data[12:14] == b"\x08\x00" and len(data) >= 54 and data[14] == 0x45:
            # Fast path: Ethernet II, IPv4 without options, not fragmented, TCP: most frames.
            total = data[16] << 8 | data[17]
            if data[23] == 6 and not (data[20] & 0x3F or data[21]) and total >= 40:
                doff = (data[46] >> 4) * 4
                end = 14 + total
                if doff >= 20 and 34 + doff <= end <= len(data):
                    sport, dport, seq, _ack, _off, flags = _TCP.unpack_from(data, 34)
                    return (TCP, data[26:30], data[30:34], sport, dport, seq, flags,
                            data[34 + doff : end], data[18] << 8 | data[19])
        if linktype == 1:
            if len(data) < 14:
                self.truncated += 1
                return None
            etype = (data[12] << 8) | data[13]
            off = 14
            while etype in _VLAN_TYPES:
                if len(data) < off + 4:
                    self.truncated += 1
                    return None
                etype = (data[off + 2] << 8) | data[off + 3]
                off += 4
            if etype == 0x0800:
                return self._ipv4(data, off)
            if etype == 0x86DD:
                return self._ipv6(data, off)
            self.non_ip += 1
            return None
        return self._other_link(linktype, data)

    def _other_link(self, linktype: int, data: bytes) -> tuple | None:
        if linktype in (101, 12, 14, 228, 229):
            version = data[0] >> 4 if data else 0
            off = 0
        elif linktype == 113:
            if len(data) < 16:
                self.truncated += 1
                return None
            proto = (data[14] << 8) | data[15]
            version = 4 if proto == 0x0800 else 6 if proto == 0x86DD else 0
            off = 16
        elif linktype == 276:
            if len(data) < 20:
                self.truncated += 1
                return None
            proto = (data[0] << 8) | data[1]
            version = 4 if proto == 0x0800 else 6 if proto == 0x86DD else 0
            off = 20
        elif linktype in (0, 108):
            if len(data) < 4:
                self.truncated += 1
                return None
            fam = (_U32BE if linktype == 108 else _U32LE).unpack_from(data, 0)[0]
            if fam > 0xFFFF:  # NULL is host order: a big-endian writer gives a swapped value
                fam = _U32BE.unpack_from(data, 0)[0]
            version = 4 if fam == 2 else 6 if fam in _BSD_INET6 else 0
            off = 4
        else:
            self.unknown_linktype += 1
            return None
        if version == 4:
            return self._ipv4(data, off)
        if version == 6:
            return self._ipv6(data, off)
        self.non_ip += 1
        return None

    def _ipv4(self, data: bytes, off: int) -> tuple | None:
        if len(data) < off + 20:
            self.truncated += 1
            return None
        vihl, _tos, total, ip_id, frag, _ttl, proto, _csum, src, dst = _IPV4.unpack_from(data, off)
        ihl = (vihl & 0x0F) * 4
        if vihl >> 4 != 4 or ihl < 20:
            self.truncated += 1
            return None
        end = off + total
        if end > len(data) or total < ihl:
            if total < ihl or len(data) < off + ihl:
                self.truncated += 1
                return None
            end = len(data)  # snap length cut the packet: use what was captured
        if frag & 0x3FFF:
            self._fragment(data, off + ihl, proto, frag & 0x1FFF)
            return None
        return self._transport(data, off + ihl, end, proto, src, dst, ip_id)

    def _ipv6(self, data: bytes, off: int) -> tuple | None:
        if len(data) < off + 40:
            self.truncated += 1
            return None
        if data[off] >> 4 != 6:
            self.truncated += 1
            return None
        (plen,) = _U16.unpack_from(data, off + 4)
        nxt = data[off + 6]
        src = data[off + 8 : off + 24]
        dst = data[off + 24 : off + 40]
        end = min(off + 40 + plen, len(data))
        pos = off + 40
        while nxt in _IPV6_EXT or nxt == 44 or nxt == 51:
            if pos + 8 > end:
                self.truncated += 1
                return None
            if nxt == 44:  # fragment header
                frag_off = _U16.unpack_from(data, pos + 2)[0] >> 3
                more = data[pos + 3] & 1
                if frag_off or more:
                    self._fragment(data, pos + 8, data[pos], frag_off)
                    return None
                nxt, pos = data[pos], pos + 8
            elif nxt == 51:  # AH: length in 4-byte units, minus 2
                nxt, pos = data[pos], pos + (data[pos + 1] + 2) * 4
            else:
                nxt, pos = data[pos], pos + (data[pos + 1] + 1) * 8
        return self._transport(data, pos, end, nxt, src, dst, -1)

    def _fragment(self, data: bytes, pos: int, proto: int, frag_off: int) -> None:
        self.fragments += 1
        if frag_off == 0 and proto in (TCP, UDP) and len(data) >= pos + 4:
            sport, dport = data[pos] << 8 | data[pos + 1], data[pos + 2] << 8 | data[pos + 3]
            if sport in self.modbus_ports or dport in self.modbus_ports:
                self.fragments_modbus += 1

    def _transport(self, data: bytes, pos: int, end: int, proto: int, src: bytes, dst: bytes,
                   ip_id: int) -> tuple | None:
        if proto == TCP:
            if end - pos < 20:
                self.truncated += 1
                return None
            sport, dport, seq, _ack, doff, flags = _TCP.unpack_from(data, pos)
            hlen = (doff >> 4) * 4
            if hlen < 20 or pos + hlen > end:
                self.truncated += 1
                return None
            return (TCP, src, dst, sport, dport, seq, flags, data[pos + hlen : end], ip_id)
        if proto == UDP:
            if end - pos < 8:
                self.truncated += 1
                return None
            sport, dport, ulen = _UDP.unpack_from(data, pos)
            stop = min(end, pos + ulen) if ulen >= 8 else end
            return (UDP, src, dst, sport, dport, 0, 0, data[pos + 8 : stop], ip_id)
        self.non_transport += 1
        return None


class FrameDetails:
    """Per-flow details read once from the first frame of a flow.

    Attributes: src_mac, dst_mac (``aa:bb:..`` text or None without Ethernet),
    vlan (outermost 802.1Q id or None), vlans (all ids, outermost first),
    ttl (IPv4 TTL or IPv6 hop limit), window (TCP window), ip_version.
    """

    __slots__ = ("src_mac", "dst_mac", "vlan", "vlans", "ttl", "window", "ip_version")

    def __init__(self) -> None:
        self.src_mac: str | None = None
        self.dst_mac: str | None = None
        self.vlan: int | None = None
        self.vlans: tuple[int, ...] = ()
        self.ttl: int | None = None
        self.window: int | None = None
        self.ip_version: int | None = None


def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def frame_details(linktype: int, data: bytes) -> FrameDetails:
    """Read MACs, VLANs, TTL and TCP window from a frame (slow path: once per flow)."""
    d = FrameDetails()
    off = 0
    try:
        if linktype == 1:
            d.dst_mac, d.src_mac = _mac(data[0:6]), _mac(data[6:12])
            etype, off = _U16.unpack_from(data, 12)[0], 14
            vlans = []
            while etype in _VLAN_TYPES:
                vlans.append(_U16.unpack_from(data, off)[0] & 0x0FFF)
                etype, off = _U16.unpack_from(data, off + 2)[0], off + 4
            d.vlans = tuple(vlans)
            d.vlan = vlans[0] if vlans else None
        elif linktype == 113:
            if _U16.unpack_from(data, 4)[0] == 6:
                d.src_mac = _mac(data[6:12])
            off = 16
        elif linktype == 276:
            if data[11] == 6:
                d.src_mac = _mac(data[12:18])
            off = 20
        elif linktype in (0, 108):
            off = 4
        version = data[off] >> 4
        d.ip_version = version
        if version == 4:
            d.ttl = data[off + 8]
            tcp = off + (data[off] & 0x0F) * 4
            proto = data[off + 9]
        else:
            d.ttl = data[off + 7]
            tcp, proto = off + 40, data[off + 6]
        if proto == TCP and len(data) >= tcp + 16:
            d.window = _U16.unpack_from(data, tcp + 14)[0]
    except (IndexError, struct_error):  # a short frame: keep what was read
        pass
    return d


def ip_text(raw: bytes) -> str:
    """Printable form of a 4- or 16-byte address."""
    return str(ipaddress.ip_address(raw))
