"""Detection speed: the full pipeline (decode, inventory, every detector) against decode alone.

    python bench/detect_speed.py [--packets N] [--capture FILE] [--learn]

Frames are read into memory first (from FILE, or the shared captures repeated
with shifted timestamps up to N packets), then fed through the same pipeline
three times in one run: decode only, decode + detection (+ inventory when the
module is present), so the figures share one machine state.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from otsentry.agent.detect import RING_FRAMES, Engine  # noqa: E402
from otsentry.agent.pipeline import Pipeline, PipelineConfig  # noqa: E402
from otsentry.agent.source import open_source  # noqa: E402

PCAPS = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "pcaps"
MIX = ["scada-one-master-13-slaves.pcap", "coil-poll-write-big.pcap",
       "input-regs-poll-write-register.pcap", "gateway-units-unanswered.pcap"]


def load(capture: str | None, packets: int) -> list[tuple[int, int, bytes]]:
    """Frames in memory: one capture, or the shared mix repeated (later each round)."""
    files = [capture] if capture else [str(PCAPS / f) for f in MIX]
    base = [list(open_source(f)) for f in files]
    out: list[tuple[int, int, bytes]] = []
    shift, rnd = 0, 0
    while len(out) < packets:
        for frames in base:
            t0 = frames[0][0]
            out.extend((ts - t0 + shift, lt, d) for ts, lt, d in frames)
            shift = out[-1][0] + 1_000_000_000
        rnd += 1
        if capture and rnd == 1 and packets <= len(out):
            break
    return out[:packets]


def run(frames: list, sinks: list, ring: int) -> float:
    """Seconds to feed every frame through a pipeline with these sinks."""
    pipe = Pipeline(sinks, PipelineConfig(ring_frames=ring))
    feed = pipe.feed
    start = time.perf_counter()
    for ts, lt, data in frames:
        feed(ts, lt, data)
    pipe.finish()
    return time.perf_counter() - start


def _inventory() -> list:
    try:
        from otsentry.agent.inventory import Inventory
    except ImportError:
        return []
    return [Inventory()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--packets", type=int, default=300_000)
    p.add_argument("--capture", help="a capture file instead of the shared mix")
    p.add_argument("--learn", action="store_true", help="learn the first third, then protect")
    args = p.parse_args(argv)
    frames = load(args.capture, args.packets)
    n = len(frames)
    learn = (frames[-1][0] - frames[0][0]) // 3 if args.learn else None
    decode = run(frames, [], 0)
    detect_only = run(frames, [Engine(learn_ns=learn)], RING_FRAMES)
    engine = Engine(learn_ns=learn)
    inv = _inventory()
    full = run(frames, inv + [engine], RING_FRAMES)
    engine.finish()
    findings = len({f.id for f in engine.drain()})
    print(f"packets: {n:,}  (mode: {'learn + protect' if learn else 'no baseline'}, "
          f"inventory: {'yes' if inv else 'no'}, findings: {findings})")
    print(f"decode only:                  {n / decode:>10,.0f} packets/s  ({decode:.2f} s)")
    print(f"decode + detect:              {n / detect_only:>10,.0f} packets/s  ({detect_only:.2f} s)"
          f"  = {decode / detect_only:.2f} of decode-only")
    print(f"decode + inventory + detect:  {n / full:>10,.0f} packets/s  ({full:.2f} s)"
          f"  = {decode / full:.2f} of decode-only (target >= 0.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
