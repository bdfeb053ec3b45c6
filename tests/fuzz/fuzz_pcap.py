"""Fuzz target for the capture file readers: pcap, pcapng and gzip, via the file code path.

    python -m tests.fuzz.run --seconds 60 --only pcap

The input bytes are read as a capture file object (``open_file`` on an
``io.BytesIO``, the code path of a real file, with a small chunk size so
that records straddle chunks).  Any exception other than ``CaptureError`` is
a bug.  The first input byte picks one of three wrappings, so that the fuzzer
reaches pcapng and gzip parsing without having to find their magics first.
"""

from __future__ import annotations

import gzip
import io
import sys

import atheris

with atheris.instrument_imports():
    from otsentry.agent.source import open_file
    from otsentry.common.errors import CaptureError

_PCAPNG_SHB = bytes.fromhex("0a0d0d0a1c0000004d3c2b1a01000000ffffffffffffffff1c000000")


def _wrap(data: bytes) -> bytes:
    if not data:
        return data
    mode, body = data[0] % 4, data[1:]
    if mode == 1:
        return _PCAPNG_SHB + body
    if mode == 2:
        return gzip.compress(body, compresslevel=1, mtime=0)
    return body if mode == 0 else data


def TestOneInput(data: bytes) -> None:
    """Read ``data`` as a capture; only CaptureError may escape."""
    try:
        src = open_file(io.BytesIO(_wrap(data)), "fuzz", chunk=64)
        for _ts, _linktype, frame in src:
            assert isinstance(frame, bytes)
    except CaptureError:
        pass


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
