#!/usr/bin/env python3
"""What each detection family costs, learning and protecting, by leaving it out.

The capture's first third is learned once (not timed) into a baseline.  Then,
in the same process and alternating ``--runs`` times (the minimum is kept):

- protecting the other two thirds: decode alone (with the evidence frame ring),
  the engine with no family, with every family, and with every family but one,
  for each family; a family's cost is "every family" minus "every family but it";
- learning the first third: decode alone, the engine with no family, the plain
  families, and the plain families plus the learner.

Only the engine runs (no inventory), so the figures are detection's own.  The
capture is the 2M-packet plant of ``bench/gen_capture.py`` (``bench/inventory.py``
makes it), of which ``--packets`` are read into memory.  ``--build compiled``
runs on the mypyc build (``setup.py build_compiled``), as the benchmarks do.

    python bench/detect_families.py                       # pure Python, 900k packets
    python bench/detect_families.py --build compiled --runs 5
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import inventory as bench  # noqa: E402  (the same capture and frame loading)


def measure(packets: int, runs: int) -> dict[str, float]:
    from otsentry.agent.detect import RING_FRAMES, Engine
    from otsentry.agent.detect._registry import FAMILIES

    frames = bench.load_frames(str(bench.ensure_capture(bench.DEFAULT_CAPTURE)), packets)
    third = len(frames) // 3
    learn, rest = frames[:third], frames[third:]
    first = Engine(learn_ns=10**18)  # the baseline, learned once and not timed
    bench.timed_feed(learn, [first], first, RING_FRAMES)
    baseline = first.baseline
    names = [fam.__name__ for fam in FAMILIES]

    def run(make, part: list, drop: tuple[str, ...] = ()) -> float:
        engine = make()
        if engine is not None and drop:
            engine.families = [f for f in engine.families if type(f).__name__ not in drop]
            engine._bind()
        return bench.timed_feed(part, [engine] if engine is not None else [], engine,
                                RING_FRAMES)

    def protect() -> Engine:
        return Engine(baseline=baseline)

    variants = {
        "protect decode": (lambda: None, rest, ()),
        "protect engine only": (protect, rest, tuple(names)),
        "protect every family": (protect, rest, ()),
        **{f"protect without {n}": (protect, rest, (n,)) for n in names},
        "learn decode": (lambda: None, learn, ()),
        "learn engine only": (Engine, learn, tuple(names)),
        "learn plain families": (Engine, learn, ()),
        "learn + learner": (lambda: Engine(learn_ns=10**18), learn, ()),
    }
    best: dict[str, float] = {}
    for r in range(runs):
        print(f"bench: run {r + 1}/{runs}", file=sys.stderr, flush=True)
        for name, (make, part, drop) in variants.items():
            t = run(make, part, drop)
            best[name] = min(t, best.get(name, t))
    best["_protected"], best["_learned"] = len(rest), len(learn)
    return best


def report(best: dict[str, float]) -> None:
    every = best["protect every family"]
    print(f"protecting {int(best['_protected']):,} packets (seconds, minimum of the runs)")
    print(f"  decode alone {best['protect decode']:.3f}; engine with no family "
          f"{best['protect engine only'] - best['protect decode']:+.3f}; every family "
          f"{every - best['protect engine only']:+.3f}")
    costs = {k.removeprefix("protect without "): every - v for k, v in best.items()
             if k.startswith("protect without ")}
    for name, cost in sorted(costs.items(), key=lambda kv: -kv[1]):
        print(f"  {name:16s} {cost:+.3f}")
    print(f"learning {int(best['_learned']):,} packets")
    print(f"  decode alone {best['learn decode']:.3f}; engine with no family "
          f"{best['learn engine only'] - best['learn decode']:+.3f}; plain families "
          f"{best['learn plain families'] - best['learn engine only']:+.3f}; learner "
          f"{best['learn + learner'] - best['learn plain families']:+.3f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--packets", type=int, default=900_000, help="packets read (default 900k)")
    p.add_argument("--runs", type=int, default=3, help="runs (the minimum is kept)")
    p.add_argument("--build", choices=("pure", "compiled"), default="pure")
    args = p.parse_args(argv)
    if args.build == "compiled" and os.environ.get("_OTSENTRY_BENCH_CHILD") != "1":
        if not bench.ensure_compiled():
            return 1
        env = {**os.environ, "PYTHONPATH": str(bench.COMPILED), "PYTHONHASHSEED": "0",
               "_OTSENTRY_BENCH_CHILD": "1"}
        return subprocess.run([sys.executable, __file__, *(argv or sys.argv[1:])], env=env,
                              check=False).returncode
    report(measure(args.packets, args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
