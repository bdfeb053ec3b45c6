"""Tests of the pcapng reader (agent/source/_pcapng.py): interfaces, block types, sections, damage."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest
from otsentry.agent.source import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_RAW,
    open_file,
    open_source,
)
from otsentry.common.errors import CaptureError
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.utils import PcapNgWriter

from tests.agent.source.capfiles import block, epb, frames, idb, opb, shb, spb

T0 = 1_700_000_000  # seconds


def read_all(data: bytes, **kw: object) -> list[tuple[int, int, bytes]]:
    return list(open_file(io.BytesIO(data), "test", **kw))  # type: ignore[arg-type]


def read_until_error(data: bytes) -> tuple[list[tuple[int, int, bytes]], CaptureError]:
    got: list[tuple[int, int, bytes]] = []
    with pytest.raises(CaptureError) as err:
        got.extend(open_file(io.BytesIO(data), "test"))
    return got, err.value


class TestInterfaces:
    def test_resolutions_offsets_and_linktypes(self) -> None:
        """Each interface's link type, if_tsresol (10^-n and 2^-n) and if_tsoffset apply to its packets."""
        f = frames(4)
        data = b"".join([
            shb(),
            idb(LINKTYPE_ETHERNET),                       # microseconds by default
            idb(LINKTYPE_RAW, tsresol=9),                 # nanoseconds
            idb(LINKTYPE_LINUX_SLL, tsresol=0x80 | 20),   # 2^-20 s
            idb(LINKTYPE_IPV4, tsresol=3, tsoffset=T0),   # milliseconds after T0
            epb(T0 * 10**6 + 123_456, f[0], iid=0),
            epb(T0 * 10**9 + 123_456_789, f[1], iid=1),
            epb((T0 << 20) + (1 << 19), f[2], iid=2),
            epb(1_500, f[3], iid=3),
        ])
        assert read_all(data) == [
            (T0 * 10**9 + 123_456_000, LINKTYPE_ETHERNET, f[0]),
            (T0 * 10**9 + 123_456_789, LINKTYPE_RAW, f[1]),
            (T0 * 10**9 + 500_000_000, LINKTYPE_LINUX_SLL, f[2]),
            (T0 * 10**9 + 1_500_000_000, LINKTYPE_IPV4, f[3]),
        ]

    def test_negative_offset_and_fine_resolution(self) -> None:
        """A negative if_tsoffset and a resolution finer than ns (10^-12) convert correctly."""
        data = shb() + idb(tsresol=12, tsoffset=-10) + epb(15 * 10**12 + 7_000, b"p")
        assert read_all(data) == [(5 * 10**9 + 7, LINKTYPE_ETHERNET, b"p")]

    def test_packet_of_undescribed_interface(self) -> None:
        """A packet naming an interface the section does not describe is corruption."""
        good = shb() + idb()
        got, err = read_until_error(good + epb(0, b"a") + epb(0, b"b", iid=1))
        assert got == [(0, 1, b"a")]
        assert err.offset == len(good) + len(epb(0, b"a"))
        assert "interface 1" in str(err)


class TestBlocks:
    def test_simple_packet_blocks(self) -> None:
        """SPBs use interface 0, the previous timestamp (0 at first) and the snap length."""
        data = b"".join([shb(), idb(LINKTYPE_RAW, snaplen=4), spb(b"abcd", orig=50),
                         epb(T0 * 10**6, b"e"), spb(b"fg")])
        assert read_all(data) == [(0, LINKTYPE_RAW, b"abcd"), (T0 * 10**9, LINKTYPE_RAW, b"e"),
                                  (T0 * 10**9, LINKTYPE_RAW, b"fg")]

    def test_obsolete_packet_block(self) -> None:
        """The obsolete Packet Block (type 2) is read like an EPB."""
        data = shb() + idb() + idb(LINKTYPE_RAW) + opb(T0 * 10**6 + 1, b"old", iid=1)
        assert read_all(data) == [(T0 * 10**9 + 1000, LINKTYPE_RAW, b"old")]

    def test_unknown_blocks_are_skipped(self) -> None:
        """Name resolution, statistics, custom and unknown blocks are skipped by length."""
        data = b"".join([shb(), block(4, b"\0" * 8), idb(), block(0x0BAD, b"xyz"),
                         epb(1, b"a"), block(5, bytes(20)), block(0x40000BAD, b""), epb(2, b"b")])
        assert read_all(data) == [(1000, 1, b"a"), (2000, 1, b"b")]

    @pytest.mark.parametrize("order", ["<", ">"])
    def test_byte_orders(self, order: str) -> None:
        """A whole file in either byte order reads the same."""
        data = shb(order) + idb(order=order, tsresol=9) + epb(T0 * 10**9 + 5, b"x", order=order)
        assert read_all(data) == [(T0 * 10**9 + 5, 1, b"x")]

    def test_sections_with_different_byte_orders(self) -> None:
        """A new section switches byte order and starts a new interface list."""
        data = b"".join([
            shb("<"), idb(LINKTYPE_ETHERNET, "<"), idb(LINKTYPE_RAW, "<"), epb(1, b"a", 1, "<"),
            shb(">"), idb(LINKTYPE_IPV4, ">", tsresol=9), epb(7, b"b", 0, ">"),
            shb("<"), idb(LINKTYPE_RAW, "<"), epb(3, b"c", 0, "<"),
        ])
        assert read_all(data) == [(1000, LINKTYPE_RAW, b"a"), (7, LINKTYPE_IPV4, b"b"),
                                  (3000, LINKTYPE_RAW, b"c")]

    def test_big_block_across_chunks(self) -> None:
        """Blocks larger than a read chunk are read whole."""
        big = bytes(range(256)) * 300
        assert read_all(shb() + idb() + epb(0, big) + epb(1, b"z"), chunk=1000) == [
            (0, 1, big), (1000, 1, b"z")]


class TestOtherWriters:
    def test_scapy_pcapng_round_trip(self, tmp_path: Path) -> None:
        """Packets written by scapy's PcapNgWriter come back with their times and bytes."""
        pkts = []
        for i in range(10):
            p = Ether() / IP(dst="10.0.0.2") / TCP(dport=502) / (bytes([i]) * (i + 1))
            p.time = T0 + i / 8
            pkts.append(p)
        path = tmp_path / "s.pcapng"
        with PcapNgWriter(str(path)) as w:
            for p in pkts:
                w.write(p)
        got = list(open_source(path))
        assert [d for _, _, d in got] == [bytes(p) for p in pkts]
        assert [ts for ts, _, _ in got] == [T0 * 10**9 + i * 125_000_000 for i in range(10)]
        assert {lt for _, lt, _ in got} == {LINKTYPE_ETHERNET}

    def test_editcap_conversion_of_shared_captures(self, shared_pcaps: Path,
                                                   tmp_path: Path) -> None:
        """Shared captures converted to pcapng by editcap read the same as the pcap originals."""
        for name in ("scada-one-master-13-slaves.pcap", "function-code-scan.pcap"):
            out = tmp_path / (name + "ng")
            subprocess.run(["editcap", "-F", "pcapng", str(shared_pcaps / name), str(out)],
                           check=True, capture_output=True)
            src = open_source(out)
            assert list(src) == list(open_source(shared_pcaps / name)), name
            assert src.format == "pcapng"


def _blocks() -> list[bytes]:
    return [shb(), idb(), block(0x0BAD, b"q"), *(epb(i, f) for i, f in enumerate(frames(5, 33))),
            spb(b"last")]


class TestDamage:
    def test_truncated_at_every_offset(self) -> None:
        """A pcapng cut anywhere yields every whole block's packet, then CaptureError at the cut block."""
        blocks = _blocks()
        data = b"".join(blocks)
        whole = read_all(data)
        starts = [sum(len(b) for b in blocks[:i]) for i in range(len(blocks) + 1)]
        packets_before = [0, 0, 0, 0, 1, 2, 3, 4, 5, 6]
        for cut in range(len(data)):
            k = max(i for i, s in enumerate(starts) if s <= cut)
            if cut == starts[k] and cut:
                assert read_all(data[:cut]) == whole[:packets_before[k]], cut
                continue
            got, err = read_until_error(data[:cut])
            assert got == whole[:packets_before[k]], cut
            assert err.offset == starts[k], cut

    @pytest.mark.parametrize(("mutate", "match"), [
        (lambda b: b[:-4] + b"\x99\0\0\0", "trailing block length"),
        (lambda b: b[:4] + b"\x22\0\0\0" + b[8:], "impossible length"),
        (lambda b: b[:4] + b"\x08\0\0\0" + b[8:], "impossible length"),
        (lambda b: b[:4] + b"\x00\0\0\x7f" + b[8:], "impossible length"),
    ])
    def test_corrupt_block_lengths(self, mutate: object, match: str) -> None:
        """Block lengths that are not a multiple of 4, too small, huge or unmatched are corruption."""
        head = shb() + idb() + epb(1, b"a")
        got, err = read_until_error(head + mutate(epb(2, b"bb")) + epb(3, b"c"))  # type: ignore[operator]
        assert got == [(1000, 1, b"a")]
        assert err.offset == len(head)
        assert match in str(err)

    def test_captured_length_beyond_block(self) -> None:
        """An EPB whose captured length exceeds its block is corruption."""
        bad = bytearray(epb(1, b"abcd"))
        bad[20:24] = (999).to_bytes(4, "little")
        _got, err = read_until_error(shb() + idb() + bytes(bad))
        assert "captured length 999" in str(err)

    def test_bad_second_section(self) -> None:
        """A later section header with a bad byte-order magic or version is reported at that block."""
        head = shb() + idb() + epb(1, b"a")
        bad_magic = bytearray(shb())
        bad_magic[8:12] = b"ABCD"
        got, err = read_until_error(head + bytes(bad_magic))
        assert got == [(1000, 1, b"a")] and err.offset == len(head)
        assert "byte-order magic" in str(err)
        _got, err = read_until_error(head + shb(major=2))
        assert "version 2" in str(err)
