"""Fuzz the Modbus stream decoder and the PDU decoders with re-chunked input.

Input layout: byte 0 holds the options (bit 0 midstream, bit 1 gap after the
first chunk, bit 2 UDP datagram mode), byte 1 seeds the chunk sizes, and the
rest is one byte stream fed to both directions.  The only outcomes allowed are
events (and ``MalformedFrame`` from ``decode_request``/``decode_response``);
any exception is a crash.

    python -m tests.fuzz.fuzz_modbus tests/fuzz/corpus/modbus
"""

from __future__ import annotations

import random
import sys

import atheris

with atheris.instrument_imports():
    from otsentry.agent.modbus import (
        REQUEST,
        RESPONSE,
        Decoder,
        Gap,
        Malformed,
        Message,
        NotModbus,
        decode_request,
        decode_response,
    )
    from otsentry.common.errors import MalformedFrame

_ALLOWED = (Message, Malformed, NotModbus, Gap)


def chunks(data: bytes, seed: int) -> list[bytes]:
    """Cut ``data`` at points chosen by ``seed`` (0 = whole, 1 = byte at a time)."""
    if seed == 0:
        return [data]
    if seed == 1:
        return [data[i : i + 1] for i in range(len(data))]
    rng = random.Random(seed)
    out, pos = [], 0
    while pos < len(data):
        size = rng.randint(1, 300)
        out.append(data[pos : pos + size])
        pos += size
    return out


def _check(dec: Decoder) -> None:
    for event in dec.take_events():
        if not isinstance(event, _ALLOWED):
            raise TypeError(f"unexpected event {event!r}")
        if isinstance(event, Message):
            event.fields()


def TestOneInput(data: bytes) -> None:
    if len(data) < 2:
        return
    options, seed, stream = data[0], data[1], data[2:]
    dec = Decoder(midstream=bool(options & 1))
    for direction in (REQUEST, RESPONSE):
        for i, chunk in enumerate(chunks(stream, seed)):
            if options & 4:
                dec.datagram(direction, chunk, i, i + 1)
            else:
                dec.receive(direction, chunk, i, i + 1)
            if i == 0 and options & 2:
                dec.gap(direction, 1 + seed, i, i + 1)
            _check(dec)
        dec.eof(direction, 0, 0)
        _check(dec)
    for decode in (decode_request, decode_response):
        try:
            decode(stream[7:], 1, 1).fields()
        except MalformedFrame:
            pass


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
