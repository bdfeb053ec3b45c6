"""Fuzz packet parsing: byte 0 picks a link type, the rest is the frame.

``PacketParser.parse`` must return a transport tuple or None (counted), and
``frame_details`` must never raise, for any bytes and any supported link type.

    python -m tests.fuzz.fuzz_packet tests/fuzz/corpus/packet
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from otsentry.agent.packet import LINKTYPES, PacketParser, frame_details

#: Byte 0 of the input indexes this list (modulo its length).
LINK_ORDER = sorted(LINKTYPES) + [147]  # 147 (USER0) stands for an unsupported link type


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    linktype = LINK_ORDER[data[0] % len(LINK_ORDER)]
    frame = data[1:]
    parser = PacketParser()
    result = parser.parse(linktype, frame)
    if result is not None:
        proto, src, dst, _sport, _dport, _seq, _flags, payload, _ip_id = result
        if proto not in (6, 17) or len(src) not in (4, 16) or len(dst) != len(src):
            raise AssertionError(f"bad tuple {result!r}")
        if len(payload) > len(frame):
            raise AssertionError("payload longer than the frame")
    elif parser.frames != 1 or sum((parser.non_ip, parser.non_transport, parser.fragments,
                                    parser.truncated, parser.unknown_linktype)) != 1:
        raise AssertionError("a dropped frame was not counted exactly once")
    frame_details(linktype, frame)


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
