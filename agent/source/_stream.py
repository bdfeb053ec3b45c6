"""Byte streams under the capture readers: plain files, stdin, gzip.

Rule: a reader never holds the whole file.  :class:`ChunkReader` hands out
the (decompressed) capture in chunks of about :data:`CHUNK` bytes; the record
parsers keep at most one partial record plus one chunk.

Gzip is recognised by its magic (``1f 8b``), never by the file name, and is
decompressed here with :mod:`zlib` so that the output of one call is bounded
(``max_length``) whatever the compression ratio (no decompression bomb), and
so that concatenated gzip members (``cat a.gz b.gz``) are read as one stream.

Short reads are normal (pipes, sockets): ``read1`` is used when the file
object has it, so a live ``tcpdump -w - |`` pipe is not held back until a
whole chunk has arrived.  An empty chunk means end of stream.
"""

from __future__ import annotations

import zlib
from typing import BinaryIO, Final

from otsentry.common.errors import CaptureError

__all__ = ["CHUNK", "ChunkReader", "SourceStats"]

CHUNK: Final = 1 << 20
_GZIP_MAGIC: Final = b"\x1f\x8b"


class SourceStats:
    """Counters of one capture source, read by progress lines and health reports.

    Attributes:
        packets: packets delivered so far (exact at the end of iteration; during
            iteration of a file it is brought up to date once per chunk).
        bytes_read: bytes consumed from the file or pipe (compressed bytes for a
            gzip'd file; captured bytes for a live interface).
        total_bytes: size of the file when known (a regular file), else ``None``.
        kernel_drops: packets the kernel dropped because the reader was too slow
            (live capture only; 0 for files).
        if_drops: packets the interface (driver) dropped since the capture
            started (live capture only; 0 for files).
    """

    __slots__ = ("bytes_read", "if_drops", "kernel_drops", "packets", "total_bytes")

    def __init__(self, total_bytes: int | None = None) -> None:
        self.packets = 0
        self.bytes_read = 0
        self.total_bytes = total_bytes
        self.kernel_drops = 0
        self.if_drops = 0

    def __repr__(self) -> str:
        return (f"SourceStats(packets={self.packets}, bytes_read={self.bytes_read}, "
                f"total_bytes={self.total_bytes}, kernel_drops={self.kernel_drops}, "
                f"if_drops={self.if_drops})")


class ChunkReader:
    """Reads a binary stream in chunks, decompressing gzip transparently.

    Args:
        fileobj: an open binary file object (file, pipe, ``io.BytesIO``...).
        name: the name used in error messages.
        stats: the stats object whose ``bytes_read`` this reader advances.
        chunk: the size of one raw read and the bound of one decompressed chunk.
        owned: close ``fileobj`` in :meth:`close` (a file we opened; never stdin
            or a caller's object).

    The first call to :meth:`read` (or :meth:`head`) looks at the first two
    bytes; a gzip stream is then decompressed, anything else passed through.
    """

    __slots__ = (
        "_eof",
        "_f",
        "_gz",
        "_gzip",
        "_owned",
        "_pending",
        "_raw_eof",
        "_read",
        "_z_offset",
        "chunk",
        "name",
        "stats",
    )

    def __init__(self, fileobj: BinaryIO, name: str, stats: SourceStats,
                 chunk: int = CHUNK, owned: bool = False) -> None:
        self._f = fileobj
        self._owned = owned
        self._read = getattr(fileobj, "read1", None) or fileobj.read
        self.name = name
        self.stats = stats
        self.chunk = chunk
        self._gz: zlib._Decompress | None = None
        self._pending = b""      # raw bytes read but not yet handed out / decompressed
        self._gzip: bool | None = None
        self._eof = False
        self._raw_eof = False
        self._z_offset = 0       # raw offset of the start of the current gzip member

    @property
    def is_gzip(self) -> bool:
        """Whether the stream is gzip-compressed (valid after the first read)."""
        return bool(self._gzip)

    def close(self) -> None:
        """Stop reading; close the file if this reader owns it.  Safe to call twice."""
        self._eof = True
        if self._owned:
            self._owned = False
            self._f.close()

    def head(self, n: int) -> bytes:
        """Read until at least ``n`` bytes (or the end) and return them all.

        Returns:
            At least ``n`` bytes unless the stream is shorter.  The bytes are
            consumed: the caller keeps them as the start of its buffer.

        Raises:
            CaptureError: the file cannot be read, or bad gzip data.
        """
        out = b""
        while len(out) < n:
            chunk = self.read()
            if not chunk:
                break
            out += chunk
        return out

    def read(self) -> bytes:
        """Return the next chunk of the capture, or ``b""`` at the end.

        Raises:
            CaptureError: the file cannot be read, the gzip data is corrupt, or
                the gzip stream ends in the middle of a member (truncated).
        """
        if self._eof:
            return b""
        if self._gzip is None:
            self._sniff()
        if not self._gzip:
            data = self._pending or self._raw()
            self._pending = b""
            if not data:
                self._eof = True
            return data
        return self._inflate()

    def _raw(self) -> bytes:
        if self._raw_eof:
            return b""
        try:
            data = self._read(self.chunk)
        except OSError as exc:
            raise CaptureError(f"cannot read: {exc.strerror or exc}", source=self.name,
                               offset=self.stats.bytes_read) from None
        if not data:
            self._raw_eof = True
            return b""
        self.stats.bytes_read += len(data)
        return bytes(data)

    def _sniff(self) -> None:
        head = self._raw()
        if len(head) == 1:
            head += self._raw()
        self._pending = head
        self._gzip = head[:2] == _GZIP_MAGIC

    def _inflate(self) -> bytes:
        # Loop until some output exists: a gzip header alone yields nothing.
        while True:
            if self._gz is None:
                if not self._pending:
                    self._pending = self._raw()
                if not self._pending:
                    self._eof = True
                    return b""
                self._z_offset = self.stats.bytes_read - len(self._pending)
                self._gz = zlib.decompressobj(wbits=31)
            data = self._inflate_step()
            if data:
                return data

    def _inflate_step(self) -> bytes:
        gz = self._gz
        assert gz is not None
        if not self._pending and not gz.unconsumed_tail:
            self._pending = self._raw()
            if not self._pending:
                raise CaptureError("gzip data ends early (the compressed file is truncated)",
                                   source=self.name, offset=self.stats.bytes_read)
        src = gz.unconsumed_tail or self._pending
        if src is self._pending:
            self._pending = b""
        try:
            out = gz.decompress(src, self.chunk)
        except zlib.error as exc:
            raise CaptureError(f"corrupt gzip data ({exc})", source=self.name,
                               offset=self._z_offset) from None
        if gz.eof:
            # End of one member; more members may follow (concatenated .gz files).
            self._pending = gz.unused_data + self._pending
            self._gz = None
        return out
