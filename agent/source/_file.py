"""Capture files and streams: format detection by magic, then the record reader.

The format is told by the first bytes, never by the file name: gzip first
(``1f 8b``, see :mod:`._stream`), then pcap (four magics) or pcapng (the
Section Header Block type).  Anything else is refused with the list of the
formats we accept.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Generator, Iterator
from typing import BinaryIO, Final

from otsentry.agent.source import _pcap, _pcapng
from otsentry.agent.source._base import Packet, Source
from otsentry.agent.source._stream import CHUNK, ChunkReader, SourceStats
from otsentry.common.errors import CaptureError

__all__ = ["ACCEPTED", "FileSource", "open_file", "open_path"]

ACCEPTED: Final = ("pcap (microsecond or nanosecond, either byte order), pcapng, "
                   "or either of them gzip-compressed")


class FileSource(Source):
    """Packets from a pcap or pcapng stream (a file, stdin or any binary file object).

    Attributes:
        name: the path, ``"-"`` for stdin, or the name given to :func:`open_file`.
        stats: packets, bytes_read (raw bytes consumed) and total_bytes (file size
            when known, for progress lines).
        format: ``"pcap"`` or ``"pcapng"``.
        compressed: whether the stream is gzip-compressed.
    """

    __slots__ = ("_packets", "_reader", "compressed", "format", "name", "stats")

    def __init__(self, fileobj: BinaryIO, name: str, owned: bool, chunk: int = CHUNK) -> None:
        self.name = name
        self.stats = SourceStats(_size_of(fileobj))
        self._reader = ChunkReader(fileobj, name, self.stats, chunk, owned=owned)
        try:
            self._packets = self._detect()
        except BaseException:
            self._reader.close()
            raise
        self.compressed = self._reader.is_gzip

    def _detect(self) -> Generator[Packet, None, None]:
        head = self._reader.head(_pcap.FILE_HEADER_LEN)
        if not head:
            raise CaptureError(f"empty file, not a capture; accepted: {ACCEPTED}",
                               source=self.name, offset=0)
        magic = head[:4]
        if magic in _pcap.MAGICS:
            self.format = "pcap"
            order, scale, linktype, _snap = _pcap.parse_header(head, self.name)
            return _pcap.read_records(self._reader, head[_pcap.FILE_HEADER_LEN:], order,
                                      scale, linktype)
        if magic == _pcapng.SHB_MAGIC:
            self.format = "pcapng"
            return _pcapng.read_blocks(self._reader, head)
        raise CaptureError(f"not a capture file (it starts with {magic.hex(' ')}); "
                           f"accepted: {ACCEPTED}", source=self.name, offset=0)

    def __iter__(self) -> Iterator[Packet]:
        # The record generator itself, not a wrapper: one generator layer less is
        # 30% more packets/s.  It closes the file when it ends, fails or is closed.
        return self._packets

    def close(self) -> None:
        """Close the file if this source opened it (never stdin or a caller's object)."""
        self._packets.close()
        self._reader.close()


def _size_of(fileobj: BinaryIO) -> int | None:
    try:
        st = os.fstat(fileobj.fileno())
    except (OSError, AttributeError, ValueError):
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def open_file(fileobj: BinaryIO, name: str = "<stream>", chunk: int = CHUNK) -> FileSource:
    """Read a capture from an open binary file object (file, pipe, ``io.BytesIO``).

    Args:
        fileobj: read with ``read1`` when it has it, else ``read``; short reads
            are fine; an empty read means the end.  The caller keeps ownership.
        name: used in error messages and as ``source.name``.
        chunk: bytes per read (tests use small values).

    Returns:
        A :class:`FileSource`; the first bytes have been read to detect the format.

    Raises:
        CaptureError: empty stream, unknown format or unreadable header.
    """
    return FileSource(fileobj, name, owned=False, chunk=chunk)


def open_path(path: str | os.PathLike[str]) -> FileSource:
    """Open a capture file by path, or stdin for ``"-"``.

    Raises:
        CaptureError: the file cannot be opened or is not a capture.
    """
    name = os.fspath(path)
    if name == "-":
        return FileSource(sys.stdin.buffer, "-", owned=False)
    try:
        f = open(name, "rb")  # noqa: SIM115 - owned by the FileSource, closed by it
    except OSError as exc:
        raise CaptureError(f"cannot open: {exc.strerror or exc}", source=name) from None
    return FileSource(f, name, owned=True)
