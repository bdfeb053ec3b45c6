"""Tests of the byte streams under the readers (agent/source/_stream.py): gzip, pipes, short reads."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from otsentry.agent.source import open_file, open_source
from otsentry.common.errors import CaptureError

from tests.agent.source.capfiles import ShortReads, epb, frames, idb, pcap, pcap_record, shb

REPO = Path(__file__).resolve().parents[3]
PACKETS = [(1_600_000_000_000_000_000 + i * 1000, f) for i, f in enumerate(frames(300))]
PCAP = pcap(PACKETS)
PCAPNG = shb() + idb() + b"".join(epb(ts // 1000, f) for ts, f in PACKETS)
WANT = [(ts, 1, f) for ts, f in PACKETS]


class TestGzip:
    @pytest.mark.parametrize("raw", [PCAP, PCAPNG], ids=["pcap", "pcapng"])
    def test_gzip_by_magic(self, raw: bytes, tmp_path: Path) -> None:
        """A gzip'd capture is recognised by content, whatever its file name."""
        path = tmp_path / "capture.bin"
        path.write_bytes(gzip.compress(raw))
        src = open_source(path)
        assert list(src) == WANT
        assert src.compressed
        assert src.stats.bytes_read == src.stats.total_bytes == path.stat().st_size

    def test_concatenated_members(self) -> None:
        """Concatenated gzip members (cat a.gz b.gz) read as one stream."""
        data = gzip.compress(PCAP[:1000]) + gzip.compress(PCAP[1000:])
        assert list(open_file(io.BytesIO(data))) == WANT

    def test_decompression_is_bounded(self) -> None:
        """A highly compressible record is decompressed in bounded chunks and still read."""
        data = gzip.compress(pcap([(0, bytes(3_000_000)), (1000, b"x")]))
        got = list(open_file(io.BytesIO(data), chunk=4096))
        assert [len(d) for _, _, d in got] == [3_000_000, 1]

    def test_truncated_gzip(self) -> None:
        """A gzip file cut short yields the packets it holds, then CaptureError, never anything else."""
        data = gzip.compress(PCAP)
        for cut in range(2, len(data), 97):
            got: list[tuple[int, int, bytes]] = []
            with pytest.raises(CaptureError):
                got.extend(open_file(io.BytesIO(data[:cut]), "cut.gz"))
            assert got == WANT[:len(got)], cut

    def test_corrupt_gzip(self) -> None:
        """Corrupt deflate data gives CaptureError naming gzip."""
        data = bytearray(gzip.compress(PCAP))
        data[40:60] = b"\xff" * 20
        with pytest.raises(CaptureError, match="gzip"):
            list(open_file(io.BytesIO(bytes(data)), "bad.gz"))

    def test_trailing_garbage(self) -> None:
        """Bytes after the last gzip member that are not gzip are reported, after every packet."""
        got: list[tuple[int, int, bytes]] = []
        with pytest.raises(CaptureError, match="gzip"):
            got.extend(open_file(io.BytesIO(gzip.compress(PCAP) + b"garbage!"), "t.gz"))
        assert got == WANT


class TestMemory:
    @pytest.mark.parametrize("compress", [False, True], ids=["pcap", "gzip"])
    def test_memory_is_bounded(self, compress: bool, tmp_path: Path) -> None:
        """Reading a 40 MB capture never holds more than a few chunks in memory."""
        path = tmp_path / "big"
        records = b"".join(pcap_record(i * 1000, f) for i, f in enumerate(frames(1000, 400)))
        opener = gzip.open if compress else open
        with opener(path, "wb") as f:  # type: ignore[operator]
            f.write(PCAP[:24])
            for _ in range(100):
                f.write(records)
        tracemalloc.start()
        try:
            n = sum(1 for _ in open_source(path))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert n == 100_000
        assert peak < 8 << 20, peak


class TestShortReads:
    @pytest.mark.parametrize("sizes", [[1], [7, 1, 3], [4096], [100_000]])
    @pytest.mark.parametrize("raw", [PCAP, PCAPNG, gzip.compress(PCAP)],
                             ids=["pcap", "pcapng", "gzip"])
    def test_short_reads(self, raw: bytes, sizes: list[int]) -> None:
        """Short reads of any size, down to one byte, give the same packets."""
        assert list(open_file(ShortReads(raw, sizes), "short")) == WANT  # type: ignore[arg-type]

    def test_pipe_delivers_before_eof(self) -> None:
        """A packet written to a pipe is delivered while the writer keeps the pipe open."""
        r, w = os.pipe()
        with os.fdopen(r, "rb") as reader, os.fdopen(w, "wb", buffering=0) as writer:
            writer.write(pcap([(1000, b"first")]))
            src = open_file(reader, "-")
            assert next(iter(src)) == (1000, 1, b"first")
            writer.write(pcap_record(2000, b"second"))
            assert next(iter(src)) == (2000, 1, b"second")


class TestStdin:
    @pytest.mark.parametrize("raw", [PCAP, PCAPNG, gzip.compress(PCAPNG)],
                             ids=["pcap", "pcapng", "gzip"])
    def test_stdin(self, raw: bytes) -> None:
        """``-`` reads a capture stream from stdin."""
        code = ("from otsentry.agent.source import open_source\n"
                "s = open_source('-')\n"
                "n = sum(len(d) for _, _, d in s)\n"
                "print(s.name, s.stats.packets, n, s.stats.total_bytes)\n")
        out = subprocess.run([sys.executable, "-c", code], input=raw, capture_output=True,
                             check=True, cwd=REPO, timeout=60)
        assert out.stdout.decode().split() == ["-", "300", str(sum(len(f) for _, f in PACKETS)),
                                               "None"]

    def test_stdin_truncated(self) -> None:
        """A truncated stream on stdin raises CaptureError with the offset after the good packets."""
        code = ("from otsentry.agent.source import open_source\n"
                "from otsentry.common.errors import CaptureError\n"
                "s = open_source('-')\n"
                "try:\n"
                "    for _ in s: pass\n"
                "except CaptureError as e:\n"
                "    print(s.stats.packets, e.offset, e.source)\n")
        out = subprocess.run([sys.executable, "-c", code], input=PCAP[:-5], capture_output=True,
                             check=True, cwd=REPO, timeout=60)
        last = len(PCAP) - 16 - len(PACKETS[-1][1])
        assert out.stdout.decode().split() == ["299", str(last), "-"]

