#!/usr/bin/env python3
"""Detection speed: the full pipeline (decode, inventory, every detector) against decode alone.

    python bench/detect_speed.py [--packets N] [--capture FILE | --mix] [--learn] [--runs R]

The same measurement as ``bench/inventory.py`` (it runs that script's workers):
each build, pure Python and the mypyc-compiled tree, reads the frames into
memory once (the 2M-packet benchmark capture by default, or FILE, or with
``--mix`` the shared captures repeated with shifted timestamps up to N packets),
then feeds them through the pipeline with no sink, + inventory, + detection and
+ both, so the figures of both builds share one run.  Target (issue "Detection
engine"): the full pipeline at 0.5x decode alone or more.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.inventory import (  # noqa: E402
    DEFAULT_CAPTURE,
    ensure_capture,
    measure,
    print_table,
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--packets", type=int, default=0,
                   help="only the first N packets (0: all; the mix defaults to 300,000)")
    p.add_argument("--capture", help=f"a capture file (default: {DEFAULT_CAPTURE})")
    p.add_argument("--mix", action="store_true", help="the shared captures repeated instead")
    p.add_argument("--learn", action="store_true", help="learn the first third, then protect")
    p.add_argument("--runs", type=int, default=1, help="runs of each build (median kept)")
    p.add_argument("--builds", default="pure,compiled", help="comma-separated: pure, compiled")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = p.parse_args(argv)
    capture = None if args.mix else Path(args.capture) if args.capture else \
        ensure_capture(DEFAULT_CAPTURE)
    res = measure(capture, args.packets or None, args.runs, args.builds.split(","), args.learn)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print_table(res)
    for build, r in res["builds"].items():
        fig = r["figures"]
        print(f"{build:9} decode + detect {fig['detect']['ratio']:.2f}x, decode + inventory + "
              f"detect {r['full_ratio']:.2f}x of decode-only (target >= 0.5), "
              f"findings: {r['facts'].get('findings')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
