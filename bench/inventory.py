#!/usr/bin/env python3
"""Inventory benchmark: decode + inventory packets/s next to decode alone, same capture, same run.

Both runs read the capture through the same pipeline in this process
(``run_pipeline`` with no sink, then with an :class:`Inventory` sink), so the
difference is what the inventory costs.  Each is run ``--runs`` times
(alternating) and the median is kept.  The capture is the 2M-packet plant of
``bench/gen_capture.py`` (made and cached under ``bench/out/`` when missing),
or any capture given with ``--capture``.

Target (issue "Asset inventory"): the inventory costs under 30% of decode
throughput, i.e. decode+inventory runs at 70% or more of decode alone.

    python bench/inventory.py                      # 2M packets, 3 runs
    python bench/inventory.py --capture x.pcap --runs 1 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_CAPTURE = HERE / "out" / "plant-2000000-s1.pcap"  # the decode bench caches it here
TARGET_COST = 0.30


def say(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def ensure_capture(path: Path) -> Path:
    if path.exists():
        return path
    say(f"generating {path} (2M packets)")
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, str(HERE / "gen_capture.py"), "--packets", "2000000",
                    "--seed", "1", "--out", str(path)], check=True)
    return path


def timed(path: Path, with_inventory: bool) -> tuple[float, int, dict]:
    from otsentry.agent.decode import run_pipeline
    from otsentry.agent.inventory import Inventory
    from otsentry.agent.pipeline import PipelineConfig

    sinks: list = []
    inv = None
    if with_inventory:
        inv = Inventory()
        sinks.append(inv)
    t0 = time.perf_counter()
    pipe, error = run_pipeline(str(path), sinks, PipelineConfig(), "never")
    seconds = time.perf_counter() - t0
    if error is not None:
        raise SystemExit(f"bench: capture damaged: {error}")
    facts = {}
    if inv is not None:
        t1 = time.perf_counter()
        d = inv.to_dict()
        facts = {"assets": len(d["assets"]), "cycles": len(d["cycles"]),
                 "devices": sum(len(a["devices"]) for a in d["assets"]),
                 "to_dict_s": round(time.perf_counter() - t1, 3)}
    return seconds, pipe.frames, facts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--capture", type=Path, default=DEFAULT_CAPTURE,
                   help=f"capture to read (default: {DEFAULT_CAPTURE}, generated when missing)")
    p.add_argument("--runs", type=int, default=3, help="runs of each variant (median kept)")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = p.parse_args(argv)
    path = ensure_capture(args.capture)
    alone: list[float] = []
    both: list[float] = []
    frames = 0
    facts: dict = {}
    for run in range(args.runs):
        say(f"run {run + 1}/{args.runs}: decode alone")
        s, frames, _ = timed(path, False)
        alone.append(s)
        say(f"run {run + 1}/{args.runs}: decode + inventory")
        s, frames, facts = timed(path, True)
        both.append(s)
    a, b = statistics.median(alone), statistics.median(both)
    cost = 1 - a / b
    figures = {"capture": str(path), "packets": frames, "runs": args.runs,
               "decode_s": round(a, 3), "decode_pps": round(frames / a),
               "decode_inventory_s": round(b, 3), "decode_inventory_pps": round(frames / b),
               "inventory_cost": round(cost, 4), "target_cost": TARGET_COST,
               "met": cost < TARGET_COST, "inventory": facts}
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(f"capture            {path} ({frames:,} packets, median of {args.runs} runs)")
        print(f"decode alone       {a:8.2f} s  {frames / a:>10,.0f} packets/s")
        print(f"decode + inventory {b:8.2f} s  {frames / b:>10,.0f} packets/s")
        print(f"inventory cost     {100 * cost:7.1f} %  of decode throughput "
              f"(target < {100 * TARGET_COST:.0f} %: {'met' if cost < TARGET_COST else 'NOT met'})")
        print(f"inventory          {facts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
