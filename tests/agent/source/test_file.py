"""Tests of opening captures by name and format detection (agent/source/__init__.py, _file.py)."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from otsentry.agent.source import ACCEPTED, FileSource, Source, open_file, open_source
from otsentry.common.errors import CaptureError

from tests.agent.source.capfiles import ShortReads, epb, frames, idb, pcap, shb, spb

PACKETS = [(1_650_000_000_000_000_000 + i * 7_000, f) for i, f in enumerate(frames(40, 70))]
PCAP = pcap(PACKETS)
PCAP_NS_BE = pcap(PACKETS, order=">", nanos=True)
PCAPNG = b"".join([shb(), idb(), idb(101, tsresol=9), spb(b"s")]
                  + [epb(ts // 1000 if i % 2 else ts, f, iid=i % 2 ^ 1)
                     for i, (ts, f) in enumerate(PACKETS)])
SAMPLES = [PCAP, PCAP_NS_BE, PCAPNG, gzip.compress(PCAP), gzip.compress(PCAPNG)]


def drain(src: Source) -> tuple[list[tuple[int, int, bytes]], CaptureError | None]:
    """Every packet, and the CaptureError that ended the iteration (if any)."""
    got: list[tuple[int, int, bytes]] = []
    try:
        got.extend(src)
    except CaptureError as exc:
        return got, exc
    return got, None


class TestOpenSource:
    def test_not_a_capture(self, tmp_path: Path) -> None:
        """A file that is not a capture is refused with its name and the accepted formats."""
        path = tmp_path / "notes.pcap"
        path.write_text("#!/bin/sh\necho hello\n")
        with pytest.raises(CaptureError) as err:
            open_source(path)
        assert str(path) in str(err.value) and ACCEPTED in str(err.value)
        assert "23 21 2f 62" in str(err.value)

    def test_gzip_of_not_a_capture(self, tmp_path: Path) -> None:
        """A gzip'd file that is not a capture is refused the same way."""
        path = tmp_path / "x.gz"
        path.write_bytes(gzip.compress(b"hello world, not a pcap"))
        with pytest.raises(CaptureError, match="not a capture"):
            open_source(path)

    def test_empty_file(self, tmp_path: Path) -> None:
        """An empty file is refused as empty."""
        path = tmp_path / "empty.pcap"
        path.write_bytes(b"")
        with pytest.raises(CaptureError, match="empty file"):
            open_source(path)

    @pytest.mark.parametrize("name", ["missing.pcap", "."])
    def test_cannot_open(self, name: str, tmp_path: Path) -> None:
        """A missing file or a directory gives CaptureError naming it."""
        target = tmp_path / name
        with pytest.raises(CaptureError, match="cannot open") as err:
            open_source(target)
        assert err.value.source == str(target)

    def test_file_closed_after_iteration(self, tmp_path: Path) -> None:
        """The file a source opened is closed once iteration ends or close() is called."""
        path = tmp_path / "a.pcap"
        path.write_bytes(PCAP)
        src = open_source(path)
        assert isinstance(src, FileSource) and src.format == "pcap"
        assert len(list(src)) == 40
        assert src._reader._f.closed  # type: ignore[attr-defined]
        with open_source(path) as src2:
            next(iter(src2))
        assert src2._reader._f.closed  # type: ignore[attr-defined]

    def test_interface_prefix(self) -> None:
        """``iface:NAME`` means live capture; an unknown interface is named in the error."""
        with pytest.raises(CaptureError, match="no such network interface") as err:
            open_source("iface:nosuch0")
        assert err.value.source == "nosuch0"

    def test_caller_file_left_open(self) -> None:
        """open_file never closes the caller's file object."""
        f = io.BytesIO(PCAP)
        assert len(list(open_file(f))) == 40
        assert not f.closed


class TestProperties:
    @given(st.binary(max_size=300))
    def test_random_bytes_only_capture_error(self, data: bytes) -> None:
        """Random bytes give packets or CaptureError, never another exception."""
        for prefix in (b"", PCAP[:24], PCAPNG[:12], shb() + idb()):
            try:
                src = open_file(io.BytesIO(prefix + data), "rand")
            except CaptureError:
                continue
            drain(src)

    @given(st.sampled_from(SAMPLES), st.data())
    def test_mutations_only_capture_error(self, sample: bytes, data: st.DataObject) -> None:
        """A valid capture with bytes changed or cut gives packets or CaptureError only."""
        buf = bytearray(sample)
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(0, len(buf) - 1))
            buf[i] = data.draw(st.integers(0, 255))
        cut = data.draw(st.integers(0, len(buf)))
        try:
            src = open_file(io.BytesIO(bytes(buf[:cut])), "mut")
        except CaptureError:
            return
        got, _err = drain(src)
        assert all(isinstance(d, bytes) and isinstance(ts, int) for ts, _lt, d in got)

    @given(st.sampled_from(SAMPLES), st.lists(st.integers(1, 600), min_size=1, max_size=20),
           st.integers(1, 5000))
    def test_chunking_invariance(self, sample: bytes, sizes: list[int], chunk: int) -> None:
        """Any pattern of short reads and any chunk size give the same packets as one read."""
        whole = list(open_file(io.BytesIO(sample)))
        assert len(whole) == len(PACKETS) + (sample in (PCAPNG, SAMPLES[4]))
        src = open_file(ShortReads(sample, sizes), "short", chunk=chunk)  # type: ignore[arg-type]
        assert list(src) == whole

    @given(st.sampled_from(SAMPLES[:3]), st.integers(0, len(PCAPNG)),
           st.lists(st.integers(1, 600), min_size=1, max_size=5))
    def test_cut_chunked_prefix(self, sample: bytes, cut: int, sizes: list[int]) -> None:
        """A cut capture read in short reads yields a prefix of the whole capture's packets."""
        whole = list(open_file(io.BytesIO(sample)))
        try:
            src = open_file(ShortReads(sample[:cut], sizes), "cut")  # type: ignore[arg-type]
        except CaptureError:
            return
        got, _err = drain(src)
        assert got == whole[:len(got)]
