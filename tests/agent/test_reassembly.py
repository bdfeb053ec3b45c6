"""TCP reassembly: ordered bytes, gaps and end of stream out of segments in any order."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from otsentry.agent.packet import ACK, FIN, PSH, RST, SYN
from otsentry.agent.reassembly import (
    MAX_OOO_SEGMENTS,
    OOO_WAIT_NS,
    ReassemblyStats,
    TcpStream,
)

MS = 1_000_000


class Recorder:
    """A sink that records what reassembly delivers, in order."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.log: list[tuple] = []
        self.eofs = 0

    def receive(self, direction: int, data: bytes, ts: int, frame: int) -> None:
        self.data += data
        self.log.append(("data", bytes(data)))

    def gap(self, direction: int, nbytes: int, ts: int, frame: int) -> None:
        self.log.append(("gap", nbytes))

    def eof(self, direction: int, ts: int = 0, frame: int = 0) -> None:
        self.eofs += 1
        self.log.append(("eof",))

    @property
    def gaps(self) -> list[int]:
        return [e[1] for e in self.log if e[0] == "gap"]


class Stream:
    """A TcpStream with its recorder, stats and violations."""

    def __init__(self) -> None:
        self.sink = Recorder()
        self.stats = ReassemblyStats()
        self.violations: list = []
        self.tcp = TcpStream(0, self.sink, self.stats, self.violations)

    def kinds(self) -> list[str]:
        return [v[0] for v in self.violations]


@pytest.fixture(name="s")
def _s() -> Stream:
    return Stream()


def _segments(data: bytes, cuts: list[int], isn: int) -> list[tuple[int, bytes]]:
    points = sorted({c for c in cuts if 0 < c < len(data)})
    bounds = list(zip([0, *points], [*points, len(data)]))
    return [((isn + 1 + a) & 0xFFFFFFFF, data[a:b]) for a, b in bounds]


@st.composite
def segmented(draw: st.DrawFn) -> tuple[bytes, int, list[tuple[int, bytes]]]:
    data = draw(st.binary(min_size=1, max_size=600))
    isn = draw(st.integers(0, 2**32 - 1) | st.integers(2**32 - 700, 2**32 - 1))
    cuts = draw(st.lists(st.integers(1, max(1, len(data) - 1)), max_size=MAX_OOO_SEGMENTS - 1))
    return data, isn, _segments(data, cuts, isn)


def _open(s: Stream, isn: int) -> None:
    s.tcp.segment(isn, SYN, b"", 0, 1)


class TestOrdering:
    @given(case=segmented())
    def test_in_order(self, case) -> None:
        """Segments in order deliver the stream's bytes unchanged."""
        data, isn, segs = case
        s = Stream()
        _open(s, isn)
        for i, (seq, payload) in enumerate(segs):
            s.tcp.segment(seq, ACK | PSH, payload, i * MS, i + 2)
        assert bytes(s.sink.data) == data
        assert s.sink.gaps == [] and s.violations == []

    @given(case=segmented(), data=st.data())
    def test_shuffled_within_bounds(self, case, data) -> None:
        """Segments reordered within the out-of-order bounds deliver the same bytes, without gaps."""
        stream, isn, segs = case
        order = data.draw(st.permutations(segs))
        s = Stream()
        _open(s, isn)
        for i, (seq, payload) in enumerate(order):
            s.tcp.segment(seq, ACK, payload, i * MS, i + 2)
        assert bytes(s.sink.data) == stream
        assert s.sink.gaps == []

    @given(case=segmented(), data=st.data())
    def test_retransmissions(self, case, data) -> None:
        """Re-sent segments (later, same bytes) change nothing and are counted as retransmissions."""
        stream, isn, segs = case
        again = data.draw(st.lists(st.sampled_from(segs), min_size=1, max_size=5))
        s = Stream()
        _open(s, isn)
        for i, (seq, payload) in enumerate(segs):
            s.tcp.segment(seq, ACK, payload, i * MS, i + 2, ip_id=i + 1)
        for j, (seq, payload) in enumerate(again):
            s.tcp.segment(seq, ACK, payload, 10_000 * MS + j, 100 + j, ip_id=1000 + j)
        assert bytes(s.sink.data) == stream
        assert s.stats.retransmissions == len(again)
        assert s.stats.span_duplicates == 0 and s.violations == []

    @given(case=segmented())
    def test_span_duplicates(self, case) -> None:
        """A mirrored copy (same seq, length and IP id within 200 ms) is dropped and counted apart."""
        stream, isn, segs = case
        s = Stream()
        _open(s, isn)
        for i, (seq, payload) in enumerate(segs):
            s.tcp.segment(seq, ACK, payload, i * 300 * MS, 2 * i + 2, ip_id=i + 1)
            s.tcp.segment(seq, ACK, payload, i * 300 * MS + 50 * MS, 2 * i + 3, ip_id=i + 1)
        assert bytes(s.sink.data) == stream
        assert s.stats.span_duplicates == len(segs)
        assert s.stats.retransmissions == 0

    def test_repacketized_retransmission_of_waiting_segment(self, s) -> None:
        """A retransmission that merges a waiting out-of-order segment with the next bytes is no overlap mismatch."""
        _open(s, 999)
        s.tcp.segment(1010, ACK, b"B" * 10, 1, 2)           # waits: 1000..1009 missing
        s.tcp.segment(1010, ACK, b"B" * 10 + b"C" * 10, 2, 3)  # same bytes, more of them
        s.tcp.segment(1000, ACK, b"A" * 10, 3, 4)
        s.tcp.close(4, 5)
        assert "overlap-mismatch" not in s.kinds()
        assert bytes(s.sink.data) == b"A" * 10 + b"B" * 10 + b"C" * 10


class TestOverlaps:
    def test_mismatch_reported_first_copy_wins(self, s) -> None:
        """Overlapping bytes that differ are reported as overlap-mismatch; the first copy is kept."""
        _open(s, 99)
        s.tcp.segment(100, ACK, b"0123456789", 1, 2)
        s.tcp.segment(105, ACK, b"XXXXXabcde", 2, 3)
        assert s.kinds() == ["overlap-mismatch"]
        assert bytes(s.sink.data) == b"0123456789abcde"
        assert (s.stats.overlaps, s.stats.overlap_mismatches) == (1, 1)

    def test_matching_overlap_not_reported(self, s) -> None:
        """Overlapping bytes that agree only extend the stream."""
        _open(s, 99)
        s.tcp.segment(100, ACK, b"0123456789", 1, 2)
        s.tcp.segment(105, ACK, b"56789abcde", 2, 3)
        assert s.violations == []
        assert bytes(s.sink.data) == b"0123456789abcde"

    def test_out_of_order_copy_mismatch(self, s) -> None:
        """Two waiting copies of the same future segment with different bytes are reported."""
        _open(s, 99)
        s.tcp.segment(110, ACK, b"bbbb", 1, 2)
        s.tcp.segment(110, ACK, b"cccc", 2, 3)
        s.tcp.segment(100, ACK, b"a" * 10, 3, 4)
        assert s.kinds() == ["overlap-mismatch"]
        assert bytes(s.sink.data) == b"a" * 10 + b"bbbb"


class TestGaps:
    @given(case=segmented(), data=st.data())
    def test_missing_segment_is_one_gap(self, case, data) -> None:
        """A lost segment becomes one gap of its size at end of stream; the bytes around it arrive."""
        _stream, isn, segs = case
        assume(len(segs) >= 3)
        lost = data.draw(st.integers(1, len(segs) - 2))
        s = Stream()
        _open(s, isn)
        for i, (seq, payload) in enumerate(segs):
            if i != lost:
                s.tcp.segment(seq, ACK, payload, i * MS, i + 2)
        s.tcp.close(len(segs) * MS, 999)
        assert s.sink.gaps == [len(segs[lost][1])]
        before = b"".join(p for _s, p in segs[:lost])
        after = b"".join(p for _s, p in segs[lost + 1 :])
        assert bytes(s.sink.data) == before + after
        assert s.sink.log[-1] == ("eof",) and s.sink.eofs == 1

    def test_fin_after_hole_flushes_gap(self, s) -> None:
        """A FIN with bytes still missing reports the gap, then the rest, then end of stream."""
        _open(s, 0)
        s.tcp.segment(11, ACK | FIN, b"tail", 1, 2)
        assert s.sink.log == []
        s.tcp.segment(1, ACK, b"head", 2, 3)
        s.tcp.close(3, 4)
        assert s.sink.log == [("data", b"head"), ("gap", 6), ("data", b"tail"), ("eof",)]

    def test_too_many_waiting_segments_declare_a_gap(self, s) -> None:
        """More than MAX_OOO_SEGMENTS waiting segments give up on the hole."""
        _open(s, 0)
        for i in range(MAX_OOO_SEGMENTS + 1):
            s.tcp.segment(11 + i, ACK, b"x", i, i + 2)
        assert s.sink.gaps == [10]
        assert bytes(s.sink.data) == b"x" * (MAX_OOO_SEGMENTS + 1)

    def test_waiting_too_long_declares_a_gap(self, s) -> None:
        """A hole older than OOO_WAIT_NS of capture time becomes a gap."""
        _open(s, 0)
        s.tcp.segment(11, ACK, b"late", 0, 2)
        s.tcp.segment(15, ACK, b"more", OOO_WAIT_NS + 1, 3)
        assert s.sink.gaps == [10]
        assert bytes(s.sink.data) == b"latemore"


class TestFlags:
    def test_wraparound(self, s) -> None:
        """Sequence numbers wrap at 2**32 without a gap."""
        isn = 2**32 - 5
        _open(s, isn)
        s.tcp.segment(2**32 - 4, ACK, b"abcdefgh", 1, 2)
        s.tcp.segment(4, ACK, b"ijkl", 2, 3)
        s.tcp.segment(8, ACK | FIN, b"", 3, 4)
        assert s.sink.log == [("data", b"abcdefgh"), ("data", b"ijkl"), ("eof",)]

    def test_wraparound_out_of_order(self, s) -> None:
        """A segment past the wrap that arrives first waits for the one before it."""
        _open(s, 2**32 - 5)
        s.tcp.segment(4, ACK, b"ijkl", 1, 2)
        s.tcp.segment(2**32 - 4, ACK, b"abcdefgh", 2, 3)
        assert bytes(s.sink.data) == b"abcdefghijkl" and s.sink.gaps == []

    @pytest.mark.parametrize("flags", [SYN | FIN, SYN | RST])
    def test_syn_with_fin_or_rst(self, s, flags) -> None:
        """SYN+FIN and SYN+RST are reported as invalid-tcp-flags and do not end the stream."""
        _open(s, 0)
        s.tcp.segment(1, ACK, b"abc", 1, 2)
        s.tcp.segment(4, flags, b"", 2, 3)
        s.tcp.segment(4, ACK, b"def", 3, 4)
        assert s.kinds() == ["invalid-tcp-flags"]
        assert bytes(s.sink.data) == b"abcdef" and s.sink.eofs == 0

    def test_rst_ends_stream(self, s) -> None:
        """RST ends the stream even with bytes missing, reporting the hole first."""
        _open(s, 0)
        s.tcp.segment(5, ACK, b"late", 1, 2)
        s.tcp.segment(0, RST, b"", 2, 3)
        assert s.sink.log == [("gap", 4), ("data", b"late"), ("eof",)]
        s.tcp.segment(9, ACK, b"ignored", 3, 4)
        assert s.sink.log[-1] == ("eof",)

    def test_late_syn_never_gives_negative_gap(self, s) -> None:
        """A SYN that shows up after data was picked up midstream never produces a negative gap."""
        s.tcp.segment(100, ACK, b"a" * 10, 1, 2)
        s.tcp.segment(200, ACK, b"b" * 10, 2, 3)
        s.tcp.segment(500, SYN, b"", 3, 4)
        s.tcp.close(4, 5)
        assert all(n >= 0 for n in s.sink.gaps)

    def test_reordered_syn_keeps_stream_order(self, s) -> None:
        """A SYN captured just after the client's first data segment does not rewind the stream."""
        s.tcp.segment(91, ACK, b"first", 1, 2)
        s.tcp.segment(90, SYN, b"", 2, 3)
        s.tcp.segment(96, ACK, b"second", 3, 4)
        s.tcp.close(4, 5)
        assert bytes(s.sink.data) == b"firstsecond" and s.sink.gaps == []

    def test_midstream_pickup(self, s) -> None:
        """Without a SYN the stream starts at the first data segment."""
        s.tcp.segment(123456, ACK, b"first", 1, 2)
        s.tcp.segment(123461, ACK, b"second", 2, 3)
        assert bytes(s.sink.data) == b"firstsecond"
