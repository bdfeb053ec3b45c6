"""``otsentry-agent detect``: findings from a capture, with or without a learned baseline."""

from __future__ import annotations

import argparse
import sys
import time

from otsentry.agent.decode import add_capture_arguments, capture_options, run_pipeline
from otsentry.agent.detect import (
    RING_FRAMES,
    DetectConfig,
    Engine,
    dump_baseline,
    load_baseline,
    load_config,
    parse_duration,
    with_inventory,
)
from otsentry.agent.inventory import Inventory
from otsentry.agent.detect._output import write_json_lines, write_pcaps, write_table
from otsentry.common.finding import Severity, merge_all

SUMMARY = "find attacks and anomalies in Modbus traffic (policy, scans, floods, baseline, values)"

HELP = """\
Reads a capture (pcap, pcapng, gzip'd or not; '-' for stdin; iface:NAME for a
live mirror port) and prints findings: what happened, how bad it is, which
MITRE ATT&CK for ICS techniques it matches, and the evidence.  Repeats are
aggregated: one line per finding with a count.  Nothing is sent on the network.

Without a baseline only the policy and behavioural detectors run.  With
--baseline FILE (made by 'otsentry-agent learn') or --learn DURATION (learn from
the first part of the capture, then protect) the baseline and process-value
detectors run too.  docs/detections.md lists every detector.

examples:
  otsentry-agent detect plant.pcap
  otsentry-agent detect plant.pcap --learn 10m --save-baseline learned.json
  otsentry-agent detect today.pcap --baseline learned.json --json > findings.jsonl
  otsentry-agent detect today.pcap --min-severity medium --pcap-dir evidence/
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``detect``."""
    p.description = HELP
    p.add_argument("source", metavar="SOURCE", help="capture file, '-' for stdin, or iface:NAME")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--baseline", metavar="FILE", help="protect against this learned baseline")
    mode.add_argument("--learn", metavar="DURATION", type=_duration,
                      help="learn from the first DURATION of capture time (e.g. 10m), then protect")
    p.add_argument("--save-baseline", metavar="FILE", help="with --learn: write what was learned")
    p.add_argument("--config", metavar="FILE", help="agent TOML config with a [detect] table")
    p.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    p.add_argument("--min-severity", default="info", type=_severity,
                   help="leave out findings below this (info, low, medium, high, critical)")
    p.add_argument("--pcap-dir", metavar="DIR", help="write each finding's pcap slice here")
    add_capture_arguments(p)


def _duration(text: str) -> int:
    try:
        return parse_duration(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a duration such as 30s, 10m or 1h, got {text!r}")


def _severity(text: str) -> Severity:
    try:
        return Severity.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc))


def run(args: argparse.Namespace) -> int:
    """Run ``detect``; returns the exit code (3 when the capture was damaged)."""
    from otsentry.agent.cli import EXIT_OK, EXIT_PARTIAL, EXIT_USAGE

    if args.save_baseline and args.learn is None:
        print("otsentry-agent detect: --save-baseline needs --learn", file=sys.stderr)
        return EXIT_USAGE
    config = load_config(args.config) if args.config else DetectConfig()
    baseline = load_baseline(args.baseline) if args.baseline else None
    live = args.source.startswith("iface:")
    engine = Engine(config, baseline=baseline, learn_ns=args.learn,
                    agent_clock=lambda _ts: time.time_ns(), live=live)
    pcfg, kwargs = capture_options(args, ring_frames=RING_FRAMES)
    sinks = with_inventory(engine, Inventory())
    _pipe, error = run_pipeline(args.source, sinks, pcfg, **kwargs)
    engine.finish()
    findings = sorted((f for f in merge_all(engine.drain()).values()
                       if f.severity >= args.min_severity),
                      key=lambda f: (f.first_seen_ns, f.kind))
    pcaps = write_pcaps(findings, args.pcap_dir) if args.pcap_dir else {}
    if args.json:
        write_json_lines(findings, sys.stdout, pcaps)
    else:
        write_table(findings, sys.stdout)
    if args.save_baseline and engine.baseline is not None:
        with open(args.save_baseline, "w", encoding="utf-8") as fh:
            fh.write(dump_baseline(engine.baseline))
    sys.stdout.flush()
    if error is not None:
        print(f"otsentry-agent detect: warning: {error}; everything before it was checked",
              file=sys.stderr)
        return EXIT_PARTIAL
    return EXIT_OK
