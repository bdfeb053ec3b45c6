"""Tests of the pcap reader (agent/source/_pcap.py) against our writer, tshark and damage."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest
from otsentry.agent.source import LINKTYPE_ETHERNET, LINKTYPE_RAW, open_file, open_source
from otsentry.common.errors import CaptureError

from tests.agent.source import capfiles

# Packet counts from shared/data/MANIFEST.md (capinfos, independent of our code).
MANIFEST_PACKETS = {
    "coil-poll-write-big.pcap": 13_622,
    "coil-read-write-multiple-small.pcap": 166,
    "fuzzed-function-codes.pcap": 36,
    "fuzzed-input-registers.pcap": 6,
    "fc23-length-mismatch.pcap": 2,
    "device-id-fc43.pcap": 4,
    "scada-one-master-13-slaves.pcap": 15_387,
    "scada-multi-slave-s7-mixed.pcap": 13_472,
    "input-regs-poll-write-register.pcap": 2_257,
    "gateway-units-unanswered.pcap": 4_901,
    "function-code-scan.pcap": 350,
    "holding-regs-poll-fc3.pcap": 102,
}


def read_all(data: bytes, **kw: object) -> list[tuple[int, int, bytes]]:
    return list(open_file(io.BytesIO(data), "test", **kw))  # type: ignore[arg-type]


def tshark_frames(path: Path) -> list[tuple[int, int]]:
    """(time in ns, captured length) of every frame, as tshark reads them."""
    out = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-e", "frame.time_epoch",
                          "-e", "frame.cap_len"], capture_output=True, text=True, check=True)
    rows = []
    for line in out.stdout.splitlines():
        epoch, caplen = line.split("\t")
        sec, _, frac = epoch.partition(".")
        rows.append((int(sec) * 1_000_000_000 + int(frac.ljust(9, "0")[:9]), int(caplen)))
    return rows


class TestRoundTrip:
    @pytest.mark.parametrize("order", ["<", ">"])
    @pytest.mark.parametrize("nanos", [False, True])
    def test_timestamps_and_frames(self, order: str, nanos: bool) -> None:
        """Both magics in both byte orders give back the written timestamps and frames."""
        ts0 = 1_700_000_000_123_456_789
        recs = [(ts0 + i * 1_000_001_001, f) for i, f in enumerate(capfiles.frames(20))]
        got = read_all(capfiles.pcap(recs, order=order, nanos=nanos))
        want_ts = [t if nanos else t // 1000 * 1000 for t, _ in recs]
        assert [g[0] for g in got] == want_ts
        assert [g[2] for g in got] == [f for _, f in recs]
        assert {g[1] for g in got} == {LINKTYPE_ETHERNET}

    def test_linktype_and_fcs_bits(self) -> None:
        """The link type comes from the header; the FCS bits above bit 16 are ignored."""
        data = capfiles.pcap([(0, b"\x45" + bytes(19))], linktype=LINKTYPE_RAW | 0x1C000000)
        assert read_all(data) == [(0, LINKTYPE_RAW, b"\x45" + bytes(19))]

    def test_empty_frames_and_no_records(self) -> None:
        """A header alone is a valid empty capture; zero-length frames are packets."""
        assert read_all(capfiles.pcap([])) == []
        assert read_all(capfiles.pcap([(5000, b""), (6000, b"")])) == [(5000, 1, b""), (6000, 1, b"")]

    def test_record_larger_than_chunk(self) -> None:
        """A frame bigger than the read chunk is still read whole."""
        big = bytes(range(256)) * 1000
        got = read_all(capfiles.pcap([(0, big), (1000, b"x")]), chunk=4096)
        assert [g[2] for g in got] == [big, b"x"]

    def test_stats(self, tmp_path: Path) -> None:
        """Stats count packets, file bytes consumed and the file size."""
        data = capfiles.pcap([(0, f) for f in capfiles.frames(7)])
        path = tmp_path / "a.pcap"
        path.write_bytes(data)
        src = open_source(path)
        assert src.stats.total_bytes == len(data)
        assert len(list(src)) == 7
        assert (src.stats.packets, src.stats.bytes_read) == (7, len(data))
        assert src.name == str(path)


class TestSharedCaptures:
    def test_counts_and_timestamps_equal_tshark(self, shared_pcaps: Path) -> None:
        """Every shared capture gives tshark's frame count, timestamps and lengths."""
        files = sorted(shared_pcaps.glob("*.pcap"))
        assert {f.name for f in files} == set(MANIFEST_PACKETS)
        for path in files:
            got = [(ts, len(data)) for ts, _lt, data in open_source(path)]
            assert len(got) == MANIFEST_PACKETS[path.name], path.name
            assert got == tshark_frames(path), path.name


class TestDamage:
    def test_truncated_at_every_offset(self, shared_pcaps: Path) -> None:
        """A capture cut anywhere yields every whole record, then CaptureError at the cut record."""
        path = shared_pcaps / "holding-regs-poll-fc3.pcap"
        data = path.read_bytes()
        whole = list(open_source(path))
        ends, pos = [], 24
        for _ts, caplen in tshark_frames(path):
            pos += 16 + caplen
            ends.append(pos)
        assert ends[-1] == len(data)
        for cut in range(len(data) + 1):
            got: list[tuple[int, int, bytes]] = []
            complete = sum(1 for e in ends if e <= cut)
            if cut == 24 or cut in ends:
                got.extend(open_file(io.BytesIO(data[:cut]), "cut"))
                assert got == whole[:complete], cut
                continue
            with pytest.raises(CaptureError) as err:
                got.extend(open_file(io.BytesIO(data[:cut]), "cut"))
            assert got == whole[:complete], cut
            start = ends[complete - 1] if complete else 24
            want = start if cut > 24 else (cut if cut >= 4 else 0)
            assert err.value.offset == want, cut
            assert err.value.source == "cut"

    def test_cut_at_record_boundary_is_clean(self, shared_pcaps: Path) -> None:
        """A capture cut exactly between records reads without error (the writer just stopped)."""
        data = (shared_pcaps / "device-id-fc43.pcap").read_bytes()
        assert len(read_all(data[:24])) == 0
        assert len(read_all(data[:24 + 16 + 65])) == 1

    def test_impossible_record_length(self) -> None:
        """A record length beyond any snap length is corruption, reported at that record."""
        good = capfiles.pcap([(0, b"abc")])
        bad = good + b"\0" * 8 + (0x7FFFFFFF).to_bytes(4, "little") + b"\0" * 20
        got = []
        with pytest.raises(CaptureError, match="impossible") as err:
            got.extend(open_file(io.BytesIO(bad), "x"))
        assert got == [(0, 1, b"abc")]
        assert err.value.offset == len(good)

    def test_bad_version(self) -> None:
        """A pcap header with a major version other than 2 is refused."""
        data = bytearray(capfiles.pcap([]))
        data[4] = 9
        with pytest.raises(CaptureError, match="version 9"):
            read_all(bytes(data))

    def test_header_cut_short(self) -> None:
        """A file holding only part of the 24-byte header is reported as such."""
        with pytest.raises(CaptureError, match="header cut short") as err:
            read_all(capfiles.pcap([])[:10])
        assert err.value.offset == 10
