#!/usr/bin/env python3
"""Decode benchmark: otsentry-agent decode against tshark and Suricata on one capture.

Run by ``./dev bench``.  In one run it

1. makes (or reuses, cached under ``bench/out/``) a seeded capture of a small
   plant with ``bench/gen_capture.py``: 2M packets by default;
2. times each tool as a whole process, ``--runs`` times (default 3), and keeps
   the median wall time and the peak resident set size (from ``wait4``):

   ==============  ===========================================================
   ours-stats      ``otsentry-agent decode F --stats --json`` (the counts; the
                   JSON form of ``--stats`` does the same work and lets the
                   bench check the counts against the generator's truth)
   ours-jsonl      ``otsentry-agent decode F > /dev/null`` (JSON lines)
   tshark          ``tshark -r F -Y modbus -T fields -e modbus.func_code``
   suricata        Suricata 7, Modbus parser on, no eve logging
   suricata-eve    Suricata 7, Modbus parser on, eve ``modbus`` logging
   ==============  ===========================================================

   Suricata runs offline with a config written by this script: Modbus enabled
   (off in its default config), ``stream.reassembly.depth: 0`` (otherwise it
   stops parsing long Modbus sessions after 1 MiB), no rules, ``--runmode
   single`` (one packet thread, like the others).  Its own counters must show
   the Modbus transactions it parsed, or the bench says it did not parse them.
3. prints a table (tool, median seconds, packets/s, peak RSS) and the ratios
   the project's targets are stated in: ``--stats`` against tshark and against
   Suricata without eve; JSON lines against tshark and against Suricata with
   eve modbus logging.  ``--json`` prints the same figures as one JSON object.

A tool that is missing or fails is reported as failed; the others still run.
Suricata comes from Debian 12 backports: when it is missing the bench adds
``bookworm-backports`` to apt's sources and installs it (as root or with sudo),
unless ``--no-install`` is given.  Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
GENERATOR = HERE / "gen_capture.py"
DEFAULT_OUT = HERE / "out"
BACKPORTS_LIST = Path("/etc/apt/sources.list.d/bookworm-backports.list")
BACKPORTS_LINE = "deb http://deb.debian.org/debian bookworm-backports main\n"
TOOLS = ("ours-stats", "ours-jsonl", "tshark", "suricata", "suricata-eve")
#: Targets from the issue (frames/s on one core, and ratios of packets/s).
TARGET_STATS_PPS = 300_000
TARGET_RSS_MB = 150


def say(msg: str) -> None:
    """Progress line on stderr."""
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- measuring

@dataclass
class Result:
    """Figures of one tool: per-run wall seconds and peak RSS, or why it failed."""

    tool: str
    command: str
    seconds: list[float] = field(default_factory=list)
    rss_kb: list[int] = field(default_factory=list)
    error: str | None = None
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.seconds)

    def median(self) -> float:
        return statistics.median(self.seconds)

    def as_json(self, packets: int) -> dict:
        if not self.ok:
            return {"tool": self.tool, "command": self.command, "error": self.error}
        med = self.median()
        return {"tool": self.tool, "command": self.command, "seconds_median": round(med, 3),
                "seconds_runs": [round(s, 3) for s in self.seconds],
                "packets_per_s": round(packets / med), "peak_rss_mb": round(max(self.rss_kb) / 1024, 1),
                "note": self.note}


def run_once(cmd: list[str], stdout: Path | None, cwd: Path | None = None) -> tuple[float, int, int, str]:
    """Run ``cmd`` as a whole process; return (wall seconds, peak RSS kB, exit code, stderr tail).

    stdout goes to ``stdout`` (``/dev/null`` when None); stderr is kept for the message.
    """
    with tempfile.TemporaryFile() as err, open(stdout or os.devnull, "wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read().decode(errors="replace").strip().splitlines()[-8:]
    return wall, usage.ru_maxrss, code, "\n".join(tail)


def measure(tool: str, cmd: list[str], runs: int, stdout: Path | None = None,
            check: Callable[[Result], None] | None = None,
            before: Callable[[], None] | None = None) -> Result:
    """Time ``cmd`` ``runs`` times; ``before()`` runs untimed before each run, ``check(result)``
    may validate the last run (set ``error``) and add a note."""
    res = Result(tool, " ".join(cmd))
    for i in range(runs):
        say(f"{tool}: run {i + 1}/{runs}")
        if before is not None:
            before()
        try:
            wall, rss, code, tail = run_once(cmd, stdout)
        except OSError as exc:
            res.error = f"could not start: {exc}"
            return res
        if code != 0:
            res.error = f"exit {code}: {tail or '(no message)'}"
            return res
        res.seconds.append(wall)
        res.rss_kb.append(rss)
        say(f"{tool}: {wall:.2f} s, peak RSS {rss / 1024:.0f} MB")
    if check is not None:
        check(res)
    return res


# ---------------------------------------------------------------------------- the capture

def ensure_capture(out_dir: Path, packets: int, seed: int) -> tuple[Path, dict]:
    """The cached benchmark capture and its truth, regenerated when the generator changed."""
    key = hashlib.sha256(GENERATOR.read_bytes()).hexdigest()[:12]
    pcap = out_dir / f"plant-{packets}-s{seed}.pcap"
    truth_path = Path(f"{pcap}.truth.json")
    stamp = Path(f"{pcap}.generator")
    if pcap.exists() and truth_path.exists() and stamp.exists() and stamp.read_text() == key:
        say(f"reusing {pcap}")
    else:
        say(f"generating {pcap} ({packets:,} packets, seed {seed})")
        subprocess.run([sys.executable, str(GENERATOR), "--packets", str(packets),
                        "--seed", str(seed), "--out", str(pcap)], check=True)
        stamp.write_text(key)
    return pcap, json.loads(truth_path.read_text())


def find_truth(pcap: Path, given: Path | None) -> Path:
    """The truth file of a capture made by gen_capture.py (see --truth)."""
    for candidate in (given, Path(f"{pcap}.truth.json"), pcap.with_suffix(".truth.json")):
        if candidate is not None and candidate.exists():
            return candidate
    raise SystemExit(f"bench: no truth file for {pcap} (give --truth; captures made by "
                     "bench/gen_capture.py have one)")


# ---------------------------------------------------------------------------- our tool

def agent_command() -> list[str] | None:
    """How to start otsentry-agent: the venv's console script, else PATH, else None."""
    for candidate in (Path(sys.executable).parent / "otsentry-agent", shutil.which("otsentry-agent")):
        if candidate and Path(candidate).exists():
            return [str(candidate)]
    return None


def bench_ours(pcap: Path, truth: dict, runs: int, tools: set[str], workdir: Path) -> list[Result]:
    """Time ``decode --stats`` and ``decode`` (JSON lines), or say why they cannot run."""
    agent = agent_command()
    wanted = [t for t in ("ours-stats", "ours-jsonl") if t in tools]
    if agent is None:
        msg = "otsentry-agent is not installed (pip install -e . in the venv)"
        return [Result(t, "otsentry-agent decode", error=msg) for t in wanted]
    results = []
    if "ours-stats" in wanted:
        stats_out = workdir / "ours-stats.json"
        results.append(measure("ours-stats", [*agent, "decode", str(pcap), "--stats", "--json"],
                               runs, stats_out, lambda r: _check_ours(r, stats_out, truth)))
    if "ours-jsonl" in wanted:
        results.append(measure("ours-jsonl", [*agent, "decode", str(pcap)], runs))
    return results


def _check_ours(res: Result, stats_out: Path, truth: dict) -> None:
    """Compare our --stats counts with the generator's truth; the note says whether they agree."""
    try:
        ours = json.loads(stats_out.read_text())
    except (OSError, ValueError) as exc:
        res.note = f"unreadable --stats --json output: {exc}"
        return
    keys = ("requests_by_function", "responses_by_function", "exceptions_by_code", "endpoints",
            "packets")
    bad = [k for k in keys if ours.get(k) != truth[k]]
    adus = sum(ours.get("requests_by_function", {}).values()) + sum(
        ours.get("responses_by_function", {}).values())
    res.note = f"{adus:,} ADUs; " + ("counts equal the truth" if not bad
                                     else f"DIFFERS from the truth in {', '.join(bad)}")


# ---------------------------------------------------------------------------- tshark

def bench_tshark(pcap: Path, truth: dict, runs: int) -> Result:
    """Time tshark's field export of every Modbus function code (the issue's reference command)."""
    if shutil.which("tshark") is None:
        return Result("tshark", "tshark", error="tshark is not installed (apt-get install tshark)")
    cmd = ["tshark", "-r", str(pcap), "-Y", "modbus", "-T", "fields", "-e", "modbus.func_code"]
    res = measure("tshark", cmd, runs)
    if res.ok:
        res.note = (f"loses the {truth['short_start_adus']:,} ADUs of segments that start "
                    "with < 8 bytes of an ADU")
    return res


# ---------------------------------------------------------------------------- Suricata

def _as_root(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return cmd
    if shutil.which("sudo"):
        return ["sudo", "-n", *cmd]
    raise PermissionError(f"need root or sudo to run: {' '.join(cmd)}")


def _has_backports() -> bool:
    sources = [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]
    for src in sources:
        try:
            if "bookworm-backports" in src.read_text():
                return True
        except OSError:
            continue
    return False


def ensure_suricata(install: bool) -> str | None:
    """Path of suricata, installing it from bookworm-backports if allowed; None if unavailable."""
    found = shutil.which("suricata")
    if found or not install:
        return found
    say("suricata is missing: installing it from Debian bookworm-backports")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        if not _has_backports():
            say(f"adding {BACKPORTS_LIST}")
            subprocess.run(_as_root(["tee", str(BACKPORTS_LIST)]), input=BACKPORTS_LINE.encode(),
                           stdout=subprocess.DEVNULL, check=True)
        # apt's chatter goes to stderr: stdout is for the report (and --json)
        subprocess.run(_as_root(["apt-get", "update", "-qq"]), check=True, env=env,
                       stdout=sys.stderr)
        subprocess.run(_as_root(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                                 "-t", "bookworm-backports", "suricata"]), check=True, env=env,
                       stdout=sys.stderr)
    except (subprocess.CalledProcessError, PermissionError, OSError) as exc:
        say(f"could not install suricata: {exc}")
        return None
    return shutil.which("suricata")


def suricata_config(log_dir: Path, eve_modbus: bool) -> str:
    """A self-contained suricata.yaml: offline, Modbus on, unlimited reassembly depth, no rules.

    The eve log always carries the final stats record (to read the Modbus
    transaction counter); with ``eve_modbus`` it also logs every Modbus transaction.
    """
    types = '        - stats:\n            totals: yes\n            threads: no\n'
    if eve_modbus:
        types += "        - modbus\n"
    return f"""%YAML 1.1
---
vars:
  address-groups:
    HOME_NET: "[10.0.0.0/8,192.168.0.0/16,172.16.0.0/12]"
    EXTERNAL_NET: "!$HOME_NET"
  port-groups:
    MODBUS_PORTS: "502"
default-log-dir: {log_dir}
max-pending-packets: 1024
runmode: single
stats:
  enabled: yes
  interval: 3600
outputs:
  - eve-log:
      enabled: yes
      filetype: regular
      filename: eve.json
      types:
{types}logging:
  default-log-level: notice
  outputs:
    - console:
        enabled: yes
pcap-file:
  checksum-checks: no
app-layer:
  protocols:
    modbus:
      enabled: yes
      detection-ports:
        dp: 502
      stream-depth: 0
stream:
  memcap: 2gb
  checksum-validation: no
  reassembly:
    memcap: 4gb
    depth: 0
flow:
  memcap: 1gb
host-mode: sniffer-only
unix-command:
  enabled: no
"""


def bench_suricata(pcap: Path, truth: dict, runs: int, tools: set[str], install: bool,
                   workdir: Path) -> list[Result]:
    """Time Suricata parsing Modbus without and with eve modbus logging."""
    wanted = [t for t in ("suricata", "suricata-eve") if t in tools]
    if not wanted:
        return []
    binary = ensure_suricata(install)
    if binary is None:
        msg = ("suricata is not installed (Debian 12: apt-get install -t bookworm-backports "
               "suricata)")
        return [Result(t, "suricata", error=msg) for t in wanted]
    results = []
    for tool in wanted:
        log_dir = workdir / tool
        log_dir.mkdir(parents=True, exist_ok=True)
        cfg = workdir / f"{tool}.yaml"
        cfg.write_text(suricata_config(log_dir, eve_modbus=tool == "suricata-eve"))
        cmd = [binary, "-r", str(pcap), "-c", str(cfg), "-l", str(log_dir), "--runmode", "single",
               "-k", "none", "-S", "/dev/null"]
        results.append(measure(tool, cmd, runs, None, partial(_check_suricata, log_dir=log_dir,
                                                              truth=truth),
                               partial(_empty, log_dir)))
    return results


def _empty(directory: Path) -> None:
    for old in directory.glob("*"):
        if old.is_file():
            old.unlink()


def _check_suricata(res: Result, *, log_dir: Path, truth: dict) -> None:
    """Read Suricata's Modbus counters from eve.json; fail the tool if it parsed none."""
    tx = flows = logged = 0
    try:
        with (log_dir / "eve.json").open() as fh:
            for line in fh:
                if '"event_type":"modbus"' in line:
                    logged += 1
                elif '"event_type":"stats"' in line:
                    app = json.loads(line)["stats"].get("app_layer", {})
                    tx = app.get("tx", {}).get("modbus", tx)
                    flows = app.get("flow", {}).get("modbus", flows)
    except (OSError, ValueError) as exc:
        res.error = f"no readable eve.json in {log_dir}: {exc}"
        return
    requests = sum(truth["requests_by_function"].values())
    if tx == 0:
        res.error = f"Suricata parsed no Modbus transaction (see {log_dir})"
        return
    res.note = (f"{tx:,} Modbus transactions in {flows} flows ({requests:,} requests made)"
                + (f"; {logged:,} eve modbus records" if logged else ""))


# ---------------------------------------------------------------------------- report

def ratios(by_tool: dict[str, Result]) -> list[tuple[str, float | None, str]]:
    """(what, ours/theirs in packets/s, target) for the comparisons the issue asks for."""
    def ratio(a: str, b: str) -> float | None:
        ra, rb = by_tool.get(a), by_tool.get(b)
        if ra is None or rb is None or not ra.ok or not rb.ok:
            return None
        return rb.median() / ra.median()
    return [
        ("decode --stats vs tshark field export", ratio("ours-stats", "tshark"), ">= 6x"),
        ("decode (JSON lines) vs tshark field export", ratio("ours-jsonl", "tshark"), ">= 2x"),
        ("decode --stats vs Suricata, no eve", ratio("ours-stats", "suricata"), ""),
        ("decode (JSON lines) vs Suricata, eve modbus", ratio("ours-jsonl", "suricata-eve"), ""),
    ]


def print_table(results: list[Result], packets: int, pcap: Path, truth: dict, runs: int) -> None:
    """The human-readable report on stdout."""
    print(f"capture: {pcap} ({packets:,} packets, {truth['adus']:,} Modbus ADUs, "
          f"{pcap.stat().st_size / 1e6:.0f} MB); median of {runs} runs; cores: {os.cpu_count()}")
    print(f"{'tool':<14} {'seconds':>9} {'packets/s':>11} {'peak RSS':>10}  notes")
    for r in results:
        if r.ok:
            pps = packets / r.median()
            print(f"{r.tool:<14} {r.median():>9.2f} {pps:>11,.0f} "
                  f"{max(r.rss_kb) / 1024:>7.0f} MB  {r.note}")
        else:
            print(f"{r.tool:<14} {'FAILED':>9} {'':>11} {'':>10}  {r.error}")
    print()
    print("ratios (ours / theirs, packets/s):")
    for what, value, target in ratios({r.tool: r for r in results}):
        shown = f"{value:.2f}x" if value is not None else "n/a"
        print(f"  {what:<46} {shown:>8}  {('target ' + target) if target else ''}")
    print(f"targets: decode --stats >= {TARGET_STATS_PPS:,} packets/s, peak RSS < {TARGET_RSS_MB} MB")


def as_json(results: list[Result], packets: int, pcap: Path, truth: dict, runs: int) -> dict:
    """The figures as one JSON object (for --json)."""
    return {
        "capture": str(pcap), "packets": packets, "adus": truth["adus"], "runs": runs,
        "cpu_count": os.cpu_count(),
        "tools": {r.tool: r.as_json(packets) for r in results},
        "ratios": {what: (round(v, 3) if v is not None else None)
                   for what, v, _ in ratios({r.tool: r for r in results})},
    }


# ---------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Time otsentry-agent decode against tshark and Suricata on a generated "
                    "2M-packet Modbus/TCP capture, and print packets/s, peak memory and ratios.",
        epilog="tools (--tools):\n"
               "  ours-stats    otsentry-agent decode F --stats --json (counts checked against "
               "the truth)\n"
               "  ours-jsonl    otsentry-agent decode F > /dev/null (JSON lines)\n"
               "  tshark        tshark -r F -Y modbus -T fields -e modbus.func_code > /dev/null\n"
               "  suricata      Suricata 7, Modbus parser on, reassembly depth 0, no eve logging\n"
               "  suricata-eve  the same with eve 'modbus' logging\n"
               "Each tool runs --runs times as a whole process; the median wall time and the\n"
               "peak RSS count. Suricata is installed from Debian bookworm-backports when\n"
               "missing (root or sudo), unless --no-install.\n\n"
               "examples:\n"
               "  ./dev bench                                  # the whole benchmark\n"
               "  python bench/decode.py --runs 1 --packets 200000   # a quick look\n"
               "  python bench/decode.py --tools tshark,suricata --json\n"
               "  python bench/decode.py --capture my.pcap --tools ours-stats,tshark\n",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packets", type=int, default=2_000_000,
                    help="size of the generated capture (default 2,000,000)")
    ap.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    ap.add_argument("--runs", type=int, default=3, help="runs per tool; the median counts (default 3)")
    ap.add_argument("--tools", default=",".join(TOOLS),
                    help=f"comma-separated subset of {','.join(TOOLS)} (default: all)")
    ap.add_argument("--capture", type=Path,
                    help="benchmark this capture instead of a generated one")
    ap.add_argument("--truth", type=Path,
                    help="with --capture: its truth file from bench/gen_capture.py (default "
                         "<capture>.truth.json, else <capture stem>.truth.json)")
    ap.add_argument("--out-dir", type=Path, default=DEFAULT_OUT,
                    help="where generated captures are cached (default bench/out)")
    ap.add_argument("--no-install", action="store_true",
                    help="do not install Suricata from bookworm-backports when it is missing")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = ap.parse_args(argv)
    unknown = set(args.tools.split(",")) - set(TOOLS)
    if unknown:
        ap.error(f"unknown tool(s): {', '.join(sorted(unknown))}; choose from {', '.join(TOOLS)}")
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 0 when every tool ran, 1 when some failed."""
    args = parse_args(argv)
    tools = set(args.tools.split(","))
    if args.capture:
        pcap = args.capture
        truth = json.loads(find_truth(pcap, args.truth).read_text())
    else:
        pcap, truth = ensure_capture(args.out_dir, args.packets, args.seed)
    packets = truth["packets"]
    with tempfile.TemporaryDirectory(prefix="otsentry-bench-") as tmp:
        work = Path(tmp)
        results = [*bench_ours(pcap, truth, args.runs, tools, work)]
        if "tshark" in tools:
            results.append(bench_tshark(pcap, truth, args.runs))
        results += bench_suricata(pcap, truth, args.runs, tools, not args.no_install, work)
    order = {t: i for i, t in enumerate(TOOLS)}
    results.sort(key=lambda r: order[r.tool])
    if args.json:
        print(json.dumps(as_json(results, packets, pcap, truth, args.runs), indent=1))
    else:
        print_table(results, packets, pcap, truth, args.runs)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
