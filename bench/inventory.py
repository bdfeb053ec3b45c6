#!/usr/bin/env python3
"""Sink benchmark: decode alone, + inventory, + detection, + both; pure and compiled, one run.

Every figure comes from the same process run on the same frames: each build
(pure Python, and the mypyc-compiled tree ``build/compiled`` made by
``setup.py build_compiled``) runs in a child process that reads the capture
into memory once and then feeds it through the pipeline four times, with no
sink, with an :class:`Inventory`, with a detection :class:`Engine` (and the
pcap ring it uses for evidence), and with both.  Reading the file is not
timed, so the figures are the pipeline's own cost.  The builds alternate
``--runs`` times and the median is kept.  The capture is the 2M-packet plant of
``bench/gen_capture.py`` (made and cached under ``bench/out/`` when missing),
or any capture given with ``--capture``.

Targets:

- issue "Asset inventory": the inventory costs under 30% of decode throughput,
  i.e. decode+inventory runs at 0.70x decode alone or more;
- issue "Detection engine": the full pipeline (decode, inventory and every
  detector) runs at 0.5x decode alone or more.

    python bench/inventory.py                      # 2M packets, 3 runs, both builds
    python bench/inventory.py --capture x.pcap --runs 1 --json
    python bench/inventory.py --builds compiled --packets 500000
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_CAPTURE = HERE / "out" / "plant-2000000-s1.pcap"  # the decode bench caches it here
COMPILED = REPO / "build" / "compiled"
PCAPS = REPO.parent / "shared" / "data" / "pcaps"
MIX = ["scada-one-master-13-slaves.pcap", "coil-poll-write-big.pcap",
       "input-regs-poll-write-register.pcap", "gateway-units-unanswered.pcap"]
TARGET_COST = 0.30  # inventory: at most this share of decode throughput
TARGET_FULL = 0.50  # decode + inventory + detection: at least this ratio to decode alone
VARIANTS = ("decode", "inventory", "detect", "both")
LABELS = {"decode": "decode alone", "inventory": "+ inventory", "detect": "+ detect",
          "both": "+ inventory + detect"}


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


def ensure_compiled() -> bool:
    """Build (or find up to date) the compiled tree; False when it cannot be built."""
    proc = subprocess.run([sys.executable, "setup.py", "-q", "build_compiled"], cwd=REPO,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          check=False)
    if proc.returncode != 0:
        say("the compiled build could not be made: pure Python only\n" + proc.stderr[-2000:])
        return False
    return True


# --- the worker (one build, in a child process) ---------------------------------------------

def load_frames(capture: str | None, packets: int | None) -> list[tuple[int, int, bytes]]:
    """Frames in memory: one capture, or (``None``) the shared mix repeated up to ``packets``."""
    from otsentry.agent.source import open_source

    if capture is not None:
        src = open_source(capture)
        try:
            return list(itertools.islice(iter(src), packets))
        finally:
            src.close()
    base = [list(open_source(str(PCAPS / f))) for f in MIX]
    out: list[tuple[int, int, bytes]] = []
    shift, want = 0, packets or 300_000
    while len(out) < want:
        for frames in base:  # each round later in capture time than the one before
            t0 = frames[0][0]
            out.extend((ts - t0 + shift, lt, d) for ts, lt, d in frames)
            shift = out[-1][0] + 1_000_000_000
    return out[:want]


def timed_feed(frames: list, sinks: list, engine: Any, ring_frames: int) -> float:
    """Seconds to feed ``frames`` through a pipeline with ``sinks``, then finish it (and
    ``engine``, when one is given).

    The garbage the previous variant left (its sinks hold reference cycles, freed only by
    the cycle collector) is collected before the clock starts: each variant pays for its
    own memory, not for the one before.
    """
    from otsentry.agent.pipeline import Pipeline, PipelineConfig

    pipe = Pipeline(sinks, PipelineConfig(ring_frames=ring_frames))
    feed = pipe.feed
    gc.collect()
    start = time.perf_counter()
    for ts, lt, data in frames:
        feed(ts, lt, data)
    pipe.finish()
    if engine is not None:
        engine.finish()
    return time.perf_counter() - start


def run_variant(frames: list, variant: str, learn_ns: int | None) -> tuple[float, dict]:
    """Seconds to feed every frame through a pipeline with this variant's sinks."""
    from otsentry.agent.detect import RING_FRAMES, Engine
    from otsentry.agent.inventory import Inventory

    from otsentry.agent.detect import with_inventory

    sinks: list = []
    inv = engine = None
    if variant in ("inventory", "both"):
        inv = Inventory()
        sinks.append(inv)
    if variant in ("detect", "both"):
        engine = Engine(learn_ns=learn_ns)
        # both: wired as the agent runs them (names and identity changes from the inventory)
        sinks = with_inventory(engine, inv) if inv is not None else [engine]
    seconds = timed_feed(frames, sinks, engine, RING_FRAMES if engine else 0)
    facts: dict = {}
    if inv is not None:
        d = inv.to_dict()
        facts.update(assets=len(d["assets"]), cycles=len(d["cycles"]),
                     devices=sum(len(a["devices"]) for a in d["assets"]))
    if engine is not None:
        facts["findings"] = len({f.id for f in engine.drain()})
    return seconds, facts


def worker(capture: str | None, packets: int | None, learn: bool, variants: list[str]) -> dict:
    import otsentry.agent.detect._engine as engine_module
    import otsentry.agent.inventory._inventory as inventory_module
    import otsentry.agent.packet as packet_module

    frames = load_frames(capture, packets)
    learn_ns = (frames[-1][0] - frames[0][0]) // 3 if learn and frames else None
    compiled = [str(m.__file__).endswith(".so")
                for m in (packet_module, inventory_module, engine_module)]
    out: dict = {"build": "compiled" if all(compiled) else "pure" if not any(compiled)
                 else "mixed", "packets": len(frames), "seconds": {}, "facts": {}}
    for v in variants:
        out["seconds"][v], out["facts"][v] = run_variant(frames, v, learn_ns)
    return out


# --- the driver -------------------------------------------------------------------------------

def measure(capture: Path | None, packets: int | None, runs: int, builds: list[str],
            learn: bool = False) -> dict:
    """Run every variant under every build ``runs`` times (alternating); medians and ratios."""
    if "compiled" in builds and not ensure_compiled():
        builds = [b for b in builds if b != "compiled"]
    seconds: dict[str, dict[str, list[float]]] = {b: {v: [] for v in VARIANTS} for b in builds}
    info: dict[str, dict] = {}
    for run in range(runs):
        for build in builds:
            say(f"run {run + 1}/{runs}: {build}")
            env = {**os.environ, "PYTHONHASHSEED": "0",
                   "PYTHONPATH": str(COMPILED) if build == "compiled" else ""}
            cmd = [sys.executable, str(Path(__file__).resolve()), "--worker",
                   "--capture", str(capture) if capture else "mix",
                   "--packets", str(packets or 0)] + (["--learn"] if learn else [])
            proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                                  check=False)
            if proc.returncode != 0:
                raise SystemExit(f"bench: the {build} worker failed:\n{proc.stderr[-4000:]}")
            got = json.loads(proc.stdout)
            if got["build"] != build:
                raise SystemExit(f"bench: asked for the {build} build, ran {got['build']}")
            info[build] = got
            for v in VARIANTS:
                seconds[build][v].append(got["seconds"][v])
    out: dict = {"capture": str(capture) if capture else "shared mix", "runs": runs,
                 "mode": "learn + protect" if learn else "no baseline",
                 "target_inventory_cost": TARGET_COST, "target_full_ratio": TARGET_FULL,
                 "builds": {}}
    for build in builds:
        n = info[build]["packets"]
        med = {v: statistics.median(seconds[build][v]) for v in VARIANTS}
        fig = {v: {"s": round(med[v], 3), "pps": round(n / med[v]),
                   "ratio": round(med["decode"] / med[v], 3)} for v in VARIANTS}
        cost = 1 - med["decode"] / med["inventory"]
        full = med["decode"] / med["both"]
        out["packets"] = n
        out["builds"][build] = {
            "figures": fig, "inventory_cost": round(cost, 4), "full_ratio": round(full, 3),
            "inventory_met": cost < TARGET_COST, "full_met": full >= TARGET_FULL,
            "facts": info[build]["facts"]["both"]}
    return out


def print_table(res: dict) -> None:
    print(f"capture  {res['capture']} ({res['packets']:,} packets, median of {res['runs']} "
          f"runs, {res['mode']})")
    builds = list(res["builds"])
    print(f"{'':24}" + "".join(f"{b + ' packets/s':>20}{'ratio':>8}" for b in builds))
    for v in VARIANTS:
        cells = "".join(f"{res['builds'][b]['figures'][v]['pps']:>20,}"
                        f"{res['builds'][b]['figures'][v]['ratio']:>8.2f}" for b in builds)
        print(f"{LABELS[v]:24}{cells}")
    for b in builds:
        r = res["builds"][b]
        print(f"{b:9} inventory cost {100 * r['inventory_cost']:5.1f} % of decode throughput "
              f"(target < {100 * TARGET_COST:.0f} %: {'met' if r['inventory_met'] else 'NOT met'});"
              f" full pipeline {r['full_ratio']:.2f}x decode alone (target >= {TARGET_FULL}: "
              f"{'met' if r['full_met'] else 'NOT met'})")
    facts = res["builds"][builds[-1]]["facts"]
    print(f"state    {facts}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--capture", default=str(DEFAULT_CAPTURE),
                   help=f"capture to read (default: {DEFAULT_CAPTURE}, generated when missing); "
                        "'mix' for the shared captures repeated")
    p.add_argument("--packets", type=int, default=0, help="only the first N packets (0: all)")
    p.add_argument("--runs", type=int, default=3, help="runs of each build (median kept)")
    p.add_argument("--builds", default="pure,compiled",
                   help="comma-separated: pure, compiled (default both)")
    p.add_argument("--learn", action="store_true",
                   help="detection learns the first third of the capture, then protects")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    capture = None if args.capture == "mix" else Path(args.capture)
    if args.worker:
        print(json.dumps(worker(None if capture is None else str(capture), args.packets or None,
                                args.learn, list(VARIANTS))))
        return 0
    if capture is not None:
        capture = ensure_capture(capture) if capture == DEFAULT_CAPTURE else capture
    res = measure(capture, args.packets or None, args.runs, args.builds.split(","), args.learn)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print_table(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
