"""``otsentry-agent learn``: learn a baseline (who polls whom, how often, which values)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from otsentry.agent.decode import add_capture_arguments, capture_options, run_pipeline
from otsentry.agent.detect import Learner, dump_baseline
from otsentry.agent.detect_cmd import _duration

SUMMARY = "learn a baseline of normal Modbus traffic from a capture, for 'detect --baseline'"

HELP = """\
Reads a capture of normal operation and writes a baseline file: every
client/server/unit/function with the address ranges used, the polling periods,
response times, peak request rates and, per register, the range of values seen.
The file is JSON, one record per line: review it, and edit it to allow a write
or widen a value's range.  Then run 'otsentry-agent detect SOURCE --baseline FILE'.

examples:
  otsentry-agent learn normal-week.pcap --out plant-baseline.json
  otsentry-agent learn plant.pcap --duration 10m --out plant-baseline.json
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``learn``."""
    p.description = HELP
    p.add_argument("source", metavar="SOURCE", help="capture file, '-' for stdin, or iface:NAME")
    p.add_argument("--out", metavar="FILE", required=True, help="where to write the baseline")
    p.add_argument("--duration", metavar="DURATION", type=_duration,
                   help="learn only from the first DURATION of capture time (e.g. 10m)")
    add_capture_arguments(p, duration=False)  # --duration above is learning time


class _LearnSink:
    """Feeds transactions to a learner until ``duration_ns`` of capture time has passed."""

    def __init__(self, learner: Learner, duration_ns: int | None) -> None:
        self.learner = learner
        self.duration = duration_ns
        self.start: int | None = None

    def __call__(self, flow: Any, events: list, txs: list) -> None:
        for tx in txs:
            ts = tx.first.ts
            self.start = ts if self.start is None else self.start
            if self.duration is None or ts - self.start <= self.duration:
                self.learner.transaction(tx)


def run(args: argparse.Namespace) -> int:
    """Run ``learn``; returns the exit code (3 when the capture was damaged)."""
    from otsentry.agent.cli import EXIT_OK, EXIT_PARTIAL

    learner = Learner()
    sink = _LearnSink(learner, args.duration)
    pcfg, kwargs = capture_options(args)
    _pipe, error = run_pipeline(args.source, [sink], pcfg, **kwargs)
    b = learner.baseline()
    with open(args.out, "w", encoding="utf-8") as fh:
        fh.write(dump_baseline(b))
    print(f"learned from {b.transactions:,} requests: {len(b.masters)} client/server pairs, "
          f"{len(b.pairs)} functions, {len(b.cycles)} polling cycles, "
          f"{len(b.registers)} registers -> {args.out}")
    if error is not None:
        print(f"otsentry-agent learn: warning: {error}; everything before it was learned",
              file=sys.stderr)
        return EXIT_PARTIAL
    return EXIT_OK
