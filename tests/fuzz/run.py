"""Run every atheris fuzz target for a fixed number of seconds.

    python -m tests.fuzz.run --seconds 8          # what ./dev test does
    python -m tests.fuzz.run --seconds 3600 --only reassembly   # a long run

A target is a module ``tests/fuzz/fuzz_<name>.py`` with ``TestOneInput(data)``
and the usual ``atheris.Setup``/``atheris.Fuzz`` main.  Seeds come from
``tests/fuzz/corpus/<name>/`` (copied to a scratch folder so the repository
is never written).  Crashes land in ``test-artifacts/fuzz/``.  The report gives
inputs per second for every target; any crash fails the run.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
ARTIFACTS = REPO / "test-artifacts" / "fuzz"
_EXECS = re.compile(r"stat::number_of_executed_units:\s*(\d+)")


def targets(only: list[str] | None = None) -> list[str]:
    names = sorted(p.stem.removeprefix("fuzz_") for p in HERE.glob("fuzz_*.py"))
    return [n for n in names if not only or n in only]


def run_target(name: str, seconds: int) -> tuple[bool, int, float, str]:
    """Fuzz one target; return (ok, executions, elapsed seconds, tail of output)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{name}-") as scratch:
        corpus = Path(scratch) / "corpus"
        seeds = HERE / "corpus" / name
        if seeds.is_dir():
            shutil.copytree(seeds, corpus)
        else:
            corpus.mkdir()
        cmd = [
            sys.executable, "-m", f"tests.fuzz.fuzz_{name}",
            f"-max_total_time={seconds}", "-print_final_stats=1", "-rss_limit_mb=2048",
            "-timeout=10", f"-artifact_prefix={ARTIFACTS}/{name}-", str(corpus),
        ]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                              timeout=seconds + 120, check=False)
        elapsed = time.monotonic() - t0
    out = proc.stdout + proc.stderr
    m = _EXECS.search(out)
    execs = int(m.group(1)) if m else 0
    return proc.returncode == 0, execs, elapsed, "\n".join(out.splitlines()[-25:])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=8, help="seconds per target (default 8)")
    ap.add_argument("--only", nargs="*", help="run only these targets")
    args = ap.parse_args(argv)
    names = targets(args.only)
    if not names:
        print("fuzz: no targets found", file=sys.stderr)
        return 0 if args.only is None and not list(HERE.glob("fuzz_*.py")) else 1
    failed = 0
    total = 0.0
    print(f"{'target':<20} {'inputs':>10} {'inputs/s':>10} {'seconds':>8}  result")
    for name in names:
        ok, execs, elapsed, tail = run_target(name, args.seconds)
        total += elapsed
        rate = execs / elapsed if elapsed else 0.0
        print(f"{name:<20} {execs:>10} {rate:>10.0f} {elapsed:>8.1f}  {'ok' if ok else 'CRASH'}",
              flush=True)
        if not ok:
            failed += 1
            print(tail, file=sys.stderr)
    print(f"fuzz      {total:8.1f} s   {len(names) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
