"""Detection evaluation: per detector, expected / found / missed / false positives.

    python bench/detect_eval.py [--live] [--jobs N] [--keep DIR]

Cases:
- the shared captures (../shared/data/pcaps, described in MANIFEST.md): the normal
  ones must give no finding at medium or above; the function-code scan, the fuzzed
  ones, the length-mismatch one and the device-id probes must give their findings;
- the crafted attack scenarios of bench/scenarios/crafted.py (a plant's polling
  plus one attack each; the baseline ones learn the first 25 s);
- with --live (needs root: live capture on lo), the live scenarios of
  bench/scenarios/live.py: a pymodbus PLC polled by an HMI and a historian on
  loopback, attacked by real clients, captured live; the baseline ones learn the
  normal phase and protect during the attack.  Their rows are named live:NAME.

Columns: expected = cases that must fire the detector; found = those where it
fired; missed = expected - found; FP = normal cases where it fired at medium or
above; silent = normal cases where it did not fire at all.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.scenarios.crafted import LEARN_S, S, scenarios  # noqa: E402
from otsentry.agent.detect import config_from_dict, detect_file, detect_frames  # noqa: E402
from otsentry.agent.detect.catalogue import CATALOGUE  # noqa: E402
from otsentry.common.finding import Severity  # noqa: E402

PCAPS = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "pcaps"

#: shared capture -> detectors it must fire (empty: a normal capture)
SHARED: dict[str, frozenset[str]] = {
    "coil-poll-write-big.pcap": frozenset(),
    "coil-read-write-multiple-small.pcap": frozenset(),
    "scada-one-master-13-slaves.pcap": frozenset(),
    "scada-multi-slave-s7-mixed.pcap": frozenset(),
    "input-regs-poll-write-register.pcap": frozenset(),
    "gateway-units-unanswered.pcap": frozenset(),
    "holding-regs-poll-fc3.pcap": frozenset(),
    "function-code-scan.pcap": frozenset({"scan.function-codes", "modbus.nonstandard-function",
                                          "modbus.malformed", "modbus.spec-violation"}),
    "fuzzed-function-codes.pcap": frozenset({"modbus.nonstandard-function", "net.tcp-violation",
                                             "modbus.spec-violation"}),
    "fuzzed-input-registers.pcap": frozenset({"modbus.spec-violation",
                                              "modbus.unmatched-response"}),
    "fc23-length-mismatch.pcap": frozenset({"modbus.malformed"}),
    "device-id-fc43.pcap": frozenset({"modbus.device-id"}),
}


@dataclass
class Case:
    """One evaluated capture: what it must fire and what it fired."""

    name: str
    expected: frozenset[str]
    fired: dict[str, Severity]

    @property
    def normal(self) -> bool:
        return not self.expected


def _fired(findings: list) -> dict[str, Severity]:
    out: dict[str, Severity] = {}
    for f in findings:
        out[f.kind] = max(out.get(f.kind, Severity.INFO), f.severity)
    return out


def shared_cases(learn_normals: bool = False) -> list[Case]:
    """Every shared capture in plain mode (and, optionally, normal ones learned on half)."""
    cases = []
    for name, expected in SHARED.items():
        _eng, findings = detect_file(str(PCAPS / name))
        cases.append(Case(name, expected, _fired(findings)))
    return cases


def crafted_cases() -> list[Case]:
    """Every crafted scenario."""
    cases = []
    for s in scenarios():
        learn = LEARN_S * S if s.mode == "learn" else None
        _eng, findings = detect_frames(s.frames(), config=config_from_dict(s.config), learn_ns=learn)
        cases.append(Case(f"crafted:{s.name}", s.expected, _fired(findings)))
    return cases


def live_cases(outdir: str | None = None, jobs: int = 4,
               names: list[str] | None = None) -> list[Case]:
    """Run the live scenarios (captured on lo; needs root) and detect on each capture."""
    import tempfile

    from bench.scenarios import live
    from otsentry.agent.detect import RING_FRAMES
    from otsentry.agent.pipeline import PipelineConfig

    with tempfile.TemporaryDirectory(prefix="otsentry-live-") as tmp:
        runs = live.run_all(outdir or tmp, names, jobs=jobs)
        cases = []
        for r in runs:
            pcfg = PipelineConfig(ports=(r["port"],), ring_frames=RING_FRAMES)
            _eng, findings = detect_file(r["pcap"], config=config_from_dict(r["config"]),
                                         learn_ns=r["learn_ns"], pipeline_config=pcfg)
            cases.append(Case(f"live:{r['name']}", frozenset(r["expected"]), _fired(findings)))
    return cases


def table(cases: list[Case]) -> list[dict]:
    """One row per detector of the catalogue."""
    rows = []
    for kind in CATALOGUE:
        exp = [c for c in cases if kind in c.expected]
        found = [c for c in exp if kind in c.fired]
        fp = [c for c in cases if c.normal and c.fired.get(kind, -1) >= Severity.MEDIUM]
        silent = [c for c in cases if c.normal and kind not in c.fired]
        rows.append({"detector": kind, "expected": len(exp), "found": len(found),
                     "missed": [c.name for c in exp if c not in found],
                     "fp": [c.name for c in fp], "silent": len(silent)})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--live", action="store_true",
                   help="also run the live scenarios on lo (needs root; about a minute)")
    p.add_argument("--jobs", type=int, default=4, help="live scenarios run at the same time")
    p.add_argument("--keep", metavar="DIR", help="keep the live captures in DIR")
    p.add_argument("--cases", action="store_true", help="also list every case and what it fired")
    args = p.parse_args(argv)
    if args.live and os.geteuid() != 0:
        p.error("--live captures on lo and needs root (CAP_NET_RAW)")
    cases = shared_cases() + crafted_cases()
    if args.live:
        cases += live_cases(args.keep, args.jobs)
    rows = table(cases)
    print(f"{'detector':<34} {'expected':>8} {'found':>6} {'missed':>6} {'FP':>4} {'silent':>7}")
    for r in rows:
        print(f"{r['detector']:<34} {r['expected']:>8} {r['found']:>6} {len(r['missed']):>6} "
              f"{len(r['fp']):>4} {r['silent']:>7}")
    normals = sum(c.normal for c in cases)
    print(f"\n{len(cases)} cases ({normals} normal); "
          f"missed: {sum(len(r['missed']) for r in rows)}, false positives: "
          f"{sum(len(r['fp']) for r in rows)}")
    if args.cases:
        print()
        for c in cases:
            fired = ", ".join(f"{k}({s})" for k, s in sorted(c.fired.items()))
            print(f"  {c.name:<40} {'normal' if c.normal else 'attack'}: {fired or '-'}")
    for r in rows:
        for name in r["missed"]:
            print(f"  missed {r['detector']} on {name}")
        for name in r["fp"]:
            print(f"  false positive {r['detector']} on {name}")
    return 0 if not any(r["missed"] or r["fp"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
