"""Fuzz the whole agent pipeline: frames through parsing, reassembly, decoding, pairing and output.

Input layout: records ``[link][length hi][length lo]`` followed by ``length``
frame bytes; ``link`` picks the link type.  Every frame is fed to a
:class:`Pipeline` whose sinks are the ``--stats`` counter and the JSON lines
writer, so transactions, stats and JSON rendering are exercised too.  Nothing
may raise; every JSON line must parse.

    python -m tests.fuzz.fuzz_pipeline tests/fuzz/corpus/pipeline
"""

from __future__ import annotations

import io
import json
import struct
import sys

import atheris

with atheris.instrument_imports():
    from otsentry.agent.output import JsonLinesWriter
    from otsentry.agent.pipeline import Pipeline, PipelineConfig
    from otsentry.agent.stats import Stats

LINKS = (1, 1, 1, 113, 276, 101, 0, 228)
_REC = struct.Struct(">BH")


def record(link_index: int, frame: bytes) -> bytes:
    """Encode one frame (for seeds)."""
    return _REC.pack(link_index, len(frame)) + frame


def TestOneInput(data: bytes) -> None:
    out = io.StringIO()
    stats = Stats()
    pipe = Pipeline([stats, JsonLinesWriter(out)],
                    PipelineConfig(ports=(502, 5020), tx_timeout_ns=50_000_000, ring_frames=4))
    pos, ts = 0, 1_700_000_000_000_000_000
    while pos + 3 <= len(data):
        link, size = _REC.unpack_from(data, pos)
        pos += 3
        frame = data[pos : pos + size]
        pos += size
        ts += 7_000_000
        pipe.feed(ts, LINKS[link % len(LINKS)], frame)
    pipe.finish()
    json.dumps(stats.as_dict(pipe))
    for line in out.getvalue().splitlines():
        json.loads(line)


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
