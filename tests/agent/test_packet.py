"""Packet parsing: link, IP and transport headers of frames built with scapy."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.l2 import ARP, CookedLinux, CookedLinuxV2, Dot1Q, Ether
from scapy.packet import Raw

from otsentry.agent.packet import (
    ACK,
    LINKTYPES,
    PSH,
    SYN,
    PacketParser,
    frame_details,
    ip_text,
)
from otsentry.agent.testing import Conversation

ADU = Conversation(unit=1, first_tid=7).exchange(3, address=0, registers=(1, 2)).request
CLIENT_MAC, SERVER_MAC = "00:11:22:33:44:55", "66:77:88:99:aa:bb"
V4 = IP(src="10.0.0.1", dst="10.0.0.2", ttl=61, id=4242)
SEG = TCP(sport=40000, dport=502, seq=1000, flags="PA", window=8192)


def _raw4(a: str) -> bytes:
    return ipaddress.ip_address(a).packed


@pytest.fixture(name="parser")
def _parser() -> PacketParser:
    return PacketParser()


def _expect_tcp(result: tuple | None, payload: bytes = ADU, src: str = "10.0.0.1",
                dst: str = "10.0.0.2") -> None:
    assert result is not None
    proto, s, d, sport, dport, seq, flags, data, _ip_id = result
    assert (proto, ip_text(s), ip_text(d), sport, dport) == (6, src, dst, 40000, 502)
    assert (seq, flags & (PSH | ACK)) == (1000, PSH | ACK)
    assert bytes(data) == payload


class TestLinkLayers:
    def test_ethernet(self, parser) -> None:
        """Ethernet II carries IPv4/TCP; the tuple gives addresses, ports, seq, flags, payload, IP id."""
        frame = bytes(Ether(src=CLIENT_MAC, dst=SERVER_MAC) / V4 / SEG / Raw(ADU))
        result = parser.parse(1, frame)
        _expect_tcp(result)
        assert result[8] == 4242

    def test_qinq(self, parser) -> None:
        """Two 802.1Q tags are skipped; frame_details lists both VLAN ids, outermost first."""
        frame = bytes(Ether(src=CLIENT_MAC, dst=SERVER_MAC, type=0x88A8) / Dot1Q(vlan=100)
                      / Dot1Q(vlan=200) / V4 / SEG / Raw(ADU))
        _expect_tcp(parser.parse(1, frame))
        d = frame_details(1, frame)
        assert (d.vlan, d.vlans, d.src_mac, d.dst_mac) == (100, (100, 200), CLIENT_MAC, SERVER_MAC)
        assert (d.ttl, d.window, d.ip_version) == (61, 8192, 4)

    def test_ethernet_padding_trimmed(self, parser) -> None:
        """Ethernet padding after a short IP packet never reaches the payload."""
        frame = bytes(Ether(src=CLIENT_MAC, dst=SERVER_MAC) / V4 / TCP(sport=40000, dport=502, seq=1000, flags="PA"))
        assert len(frame) == 54
        result = parser.parse(1, frame + b"\x00" * 6)
        _expect_tcp(result, payload=b"")

    def test_tcp_options(self, parser) -> None:
        """TCP options are skipped using the data offset."""
        seg = TCP(sport=40000, dport=502, seq=1000, flags="PA",
                  options=[("MSS", 1460), ("NOP", None), ("WScale", 7), ("Timestamp", (1, 2))])
        _expect_tcp(parser.parse(1, bytes(Ether(src=CLIENT_MAC, dst=SERVER_MAC) / V4 / seg / Raw(ADU))))

    def test_linux_sll(self, parser) -> None:
        """Linux cooked capture (SLL) carries IPv4; frame_details reads the sender MAC."""
        frame = bytes(CookedLinux(pkttype=4, lladdrtype=1, lladdrlen=6,
                                  src=bytes.fromhex("001122334455") + b"\x00\x00", proto=0x0800)
                      / V4 / SEG / Raw(ADU))
        _expect_tcp(parser.parse(113, frame))
        assert frame_details(113, frame).src_mac == CLIENT_MAC

    def test_linux_sll2(self, parser) -> None:
        """Linux cooked capture v2 (SLL2) carries IPv6; frame_details reads the sender MAC."""
        frame = bytes(CookedLinuxV2(proto=0x86DD, lladdrtype=1, lladdrlen=6,
                                    src=bytes.fromhex("001122334455") + b"\x00\x00")
                      / IPv6(src="fd00::1", dst="fd00::2", hlim=33) / SEG / Raw(ADU))
        _expect_tcp(parser.parse(276, frame), src="fd00::1", dst="fd00::2")
        d = frame_details(276, frame)
        assert (d.src_mac, d.ttl, d.ip_version) == (CLIENT_MAC, 33, 6)

    @pytest.mark.parametrize("linktype", [101, 12, 14, 228])
    def test_raw_ipv4(self, parser, linktype) -> None:
        """Raw IP link types start at the IP header."""
        _expect_tcp(parser.parse(linktype, bytes(V4 / SEG / Raw(ADU))))

    def test_raw_ipv6(self, parser) -> None:
        """LINKTYPE_IPV6 starts at the IPv6 header; the IP id is -1."""
        result = parser.parse(229, bytes(IPv6(src="fd00::1", dst="fd00::2") / SEG / Raw(ADU)))
        _expect_tcp(result, src="fd00::1", dst="fd00::2")
        assert result[8] == -1

    @pytest.mark.parametrize(("linktype", "fmt", "family", "inner"), [
        (0, "<I", 2, "v4"), (0, ">I", 2, "v4"), (0, "<I", 30, "v6"), (0, ">I", 24, "v6"),
        (108, ">I", 2, "v4"), (108, ">I", 28, "v6"),
    ])
    def test_bsd_loopback(self, parser, linktype, fmt, family, inner) -> None:
        """BSD NULL (either byte order) and LOOP (network order) give AF_INET and AF_INET6."""
        ip = V4 if inner == "v4" else IPv6(src="::1", dst="::1")
        frame = struct.pack(fmt, family) + bytes(ip / SEG / Raw(ADU))
        result = parser.parse(linktype, frame)
        if inner == "v4":
            _expect_tcp(result)
        else:
            _expect_tcp(result, src="::1", dst="::1")
        assert frame_details(linktype, frame).ip_version == (4 if inner == "v4" else 6)

    def test_every_declared_linktype_parses(self, parser) -> None:
        """Each link type in LINKTYPES has a parser branch (no unknown-linktype count)."""
        for lt in LINKTYPES:
            parser.parse(lt, b"")
        assert parser.unknown_linktype == 0
        parser.parse(147, bytes(V4 / SEG))
        assert parser.unknown_linktype == 1


class TestIPv6ExtensionHeaders:
    @pytest.mark.parametrize("ext", [
        IPv6ExtHdrHopByHop(), IPv6ExtHdrDestOpt(), IPv6ExtHdrRouting(),
        IPv6ExtHdrHopByHop() / IPv6ExtHdrRouting() / IPv6ExtHdrDestOpt(),
        IPv6ExtHdrFragment(m=0, offset=0),  # an atomic fragment: the whole packet
    ], ids=["hop-by-hop", "dest-opts", "routing", "chain", "atomic-fragment"])
    def test_extension_headers_skipped(self, parser, ext) -> None:
        """IPv6 extension headers before TCP are walked over."""
        frame = bytes(Ether(src=CLIENT_MAC, dst=SERVER_MAC) / IPv6(src="fd00::1", dst="fd00::2") / ext / SEG / Raw(ADU))
        _expect_tcp(parser.parse(1, frame), src="fd00::1", dst="fd00::2")

    def test_ipv6_fragment_on_modbus_port(self, parser) -> None:
        """A first IPv6 fragment carrying port 502 is counted as a Modbus-port fragment."""
        frame = bytes(Ether(src=CLIENT_MAC, dst=SERVER_MAC) / IPv6(src="fd00::1", dst="fd00::2") / IPv6ExtHdrFragment(m=1, nh=6)
                      / SEG / Raw(ADU))
        assert parser.parse(1, frame) is None
        assert (parser.fragments, parser.fragments_modbus) == (1, 1)


class TestFragmentsAndCounters:
    def test_ipv4_fragments_on_modbus_port(self, parser) -> None:
        """IPv4 fragments are counted; the first one on port 502 also as fragments_modbus."""
        first = bytes(Ether(src=CLIENT_MAC, dst=SERVER_MAC) / IP(src="10.0.0.1", dst="10.0.0.2", flags="MF", frag=0, proto=6)
                      / SEG / Raw(ADU))
        later = bytes(Ether(src=CLIENT_MAC, dst=SERVER_MAC) / IP(src="10.0.0.1", dst="10.0.0.2", frag=3, proto=6) / Raw(b"x" * 8))
        assert parser.parse(1, first) is None
        assert parser.parse(1, later) is None
        assert (parser.fragments, parser.fragments_modbus) == (2, 1)

    def test_fragment_on_other_port(self, parser) -> None:
        """A fragment on another port counts as a fragment only."""
        frame = bytes(Ether(src=CLIENT_MAC, dst=SERVER_MAC) / IP(flags="MF", proto=6) / TCP(sport=1, dport=80))
        assert parser.parse(1, frame) is None
        assert (parser.fragments, parser.fragments_modbus) == (1, 0)

    @pytest.mark.parametrize(("linktype", "frame"), [
        (1, bytes(Ether(src=CLIENT_MAC, dst=SERVER_MAC) / V4 / SEG)[:20]),             # IP header cut
        (1, bytes(Ether(src=CLIENT_MAC, dst=SERVER_MAC) / V4 / SEG)[:40]),             # TCP header cut
        (1, bytes(Ether(src=CLIENT_MAC, dst=SERVER_MAC) / Dot1Q(vlan=5))[:16]),        # VLAN tag cut
        (1, b"\x00" * 10),                               # not even an Ethernet header
        (113, b"\x00" * 12),
        (276, b"\x00" * 12),
        (0, b"\x02\x00"),
        (229, bytes(IPv6() / SEG)[:30]),
        (1, bytes(Ether(src=CLIENT_MAC, dst=SERVER_MAC) / IP(ihl=4) / SEG)),           # IHL below 5
        (1, bytes(Ether(src=CLIENT_MAC, dst=SERVER_MAC) / V4 / TCP(dataofs=3))),       # TCP data offset below 5
        (1, bytes(Ether(src=CLIENT_MAC, dst=SERVER_MAC) / V4 / UDP())[:38]),           # UDP header cut
    ], ids=["ip", "tcp", "vlan", "ether", "sll", "sll2", "null", "ipv6", "ihl", "doff", "udp"])
    def test_truncated_headers_counted(self, parser, linktype, frame) -> None:
        """Headers cut short or malformed return None and count as truncated."""
        assert parser.parse(linktype, frame) is None
        assert parser.truncated == 1

    def test_snap_length_cut_keeps_captured_payload(self, parser) -> None:
        """A packet cut by the snap length gives the payload bytes that were captured."""
        frame = bytes(Ether(src=CLIENT_MAC, dst=SERVER_MAC) / V4 / SEG / Raw(ADU))
        _expect_tcp(parser.parse(1, frame[:-3]), payload=ADU[:-3])

    def test_non_ip_and_non_transport_counted(self, parser) -> None:
        """ARP counts as non-IP; ICMP as non-transport."""
        assert parser.parse(1, bytes(Ether(src=CLIENT_MAC, dst=SERVER_MAC) / ARP())) is None
        assert parser.parse(1, bytes(Ether(src=CLIENT_MAC, dst=SERVER_MAC) / IP(proto=1) / Raw(b"\x08\x00\x00\x00"))) is None
        assert (parser.non_ip, parser.non_transport, parser.frames) == (1, 1, 2)

    def test_udp(self, parser) -> None:
        """UDP gives seq and flags 0 and the payload trimmed to the UDP length."""
        frame = bytes(Ether(src=CLIENT_MAC, dst=SERVER_MAC) / V4 / UDP(sport=40000, dport=502) / Raw(ADU))
        proto, _s, _d, sport, dport, seq, flags, data, _id = parser.parse(1, frame + b"\x00" * 4)
        assert (proto, sport, dport, seq, flags, bytes(data)) == (17, 40000, 502, 0, 0, ADU)

    def test_syn_flags(self, parser) -> None:
        """TCP flags come through as on the wire."""
        frame = bytes(Ether(src=CLIENT_MAC, dst=SERVER_MAC) / V4 / TCP(sport=40000, dport=502, flags="S"))
        assert parser.parse(1, frame)[6] == SYN


class TestRobustness:
    @given(linktype=st.sampled_from(sorted(LINKTYPES)), frame=st.binary(max_size=120))
    def test_random_frames_never_raise(self, linktype, frame) -> None:
        """Random bytes for any link type give a tuple or None, and frame_details never raises."""
        parser = PacketParser()
        result = parser.parse(linktype, frame)
        assert result is None or result[0] in (6, 17)
        frame_details(linktype, frame)

    @given(cut=st.integers(0, 200))
    def test_every_truncation_of_a_real_frame(self, cut) -> None:
        """Every prefix of a VLAN-tagged IPv6 frame with options parses or is counted."""
        frame = bytes(Ether(src=CLIENT_MAC, dst=SERVER_MAC) / Dot1Q(vlan=7) / IPv6() / IPv6ExtHdrHopByHop() / SEG / Raw(ADU))
        parser = PacketParser()
        result = parser.parse(1, frame[:cut])
        counted = parser.truncated + parser.non_ip + parser.fragments + parser.non_transport
        assert (result is None) == (counted == 1)
        frame_details(1, frame[:cut])

    def test_raw4_helper_addresses(self) -> None:
        """ip_text renders 4- and 16-byte addresses."""
        assert ip_text(_raw4("10.0.0.1")) == "10.0.0.1"
        assert ip_text(ipaddress.ip_address("fd00::1").packed) == "fd00::1"
