"""``otsentry-agent decode``: Modbus transactions from a capture, as JSON lines or figures."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from otsentry.agent.output import JsonLinesWriter
from otsentry.agent.pipeline import Pipeline, PipelineConfig
from otsentry.agent.stats import Stats
from otsentry.common.errors import CaptureError

SUMMARY = "decode Modbus/TCP from a capture file or stdin into JSON lines or statistics"

HELP = """\
Reads a capture (pcap, pcapng, optionally gzip-compressed; '-' for stdin) and
prints one JSON object per Modbus transaction: client and server, unit,
function, the decoded request and response, exception, latency and any
protocol violations.  Nothing is sent on the network.

examples:
  otsentry-agent decode plant.pcap > transactions.jsonl
  otsentry-agent decode plant.pcap --stats          # a table of counts
  otsentry-agent decode plant.pcap --stats --json   # the same as one JSON object
  tcpdump -i eth1 -w - 'tcp port 502' | otsentry-agent decode -
  otsentry-agent decode iface:eth1 --duration 60     # live, from a mirror port (needs root)

--stats --json keys: requests_by_function, responses_by_function,
exceptions_by_code (counted per ADU, exceptions under their function code
without the 0x80 bit, like tshark), endpoints ([source ip, destination ip,
unit]), violations_by_kind, packets, non_modbus_flows, and more detail
(transactions, tcp, ip, flows).
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``decode``."""
    p.description = HELP
    p.add_argument("source", metavar="SOURCE",
                   help="capture file (pcap/pcapng, .gz accepted), '-' for stdin, "
                        "or iface:NAME for live capture")
    p.add_argument("--stats", action="store_true",
                   help="print counts instead of transactions")
    p.add_argument("--json", action="store_true",
                   help="with --stats: print the counts as one JSON object")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write JSON lines to FILE instead of stdout")
    add_capture_arguments(p)


def add_capture_arguments(p: argparse.ArgumentParser, duration: bool = True) -> None:
    """The options every command that reads traffic shares (ports, live capture, progress).

    ``duration=False`` leaves out ``--duration`` for commands that give it another meaning.
    """
    p.add_argument("--ports", metavar="LIST", default="502", type=_port_list,
                   help="comma-separated TCP/UDP ports that carry Modbus (default: 502)")
    p.add_argument("--no-heuristic", action="store_true",
                   help="do not look for Modbus on other ports")
    p.add_argument("--progress", choices=("auto", "always", "never"), default="auto",
                   help="progress line on stderr: auto = only when stderr is a terminal")
    p.add_argument("--filter", metavar="BPF", default="tcp",
                   help="live capture: tcpdump-style filter (default 'tcp': Modbus on any port)")
    if duration:
        p.add_argument("--duration", metavar="SECONDS", type=float,
                       help="live capture: stop after this many seconds (default: until Ctrl-C)")
    p.add_argument("--count", metavar="N", type=int,
                   help="stop after N packets")


def capture_options(args: argparse.Namespace, **config: object) -> tuple[PipelineConfig, dict]:
    """The pipeline config and the ``run_pipeline`` keyword arguments from those options."""
    pcfg = PipelineConfig(ports=args.ports, heuristic=not args.no_heuristic, **config)  # type: ignore[arg-type]
    return pcfg, {"progress_mode": args.progress, "bpf": args.filter,
                  "duration": getattr(args, "duration", None), "count": args.count}


def _port_list(text: str) -> tuple[int, ...]:
    try:
        ports = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated port numbers, got {text!r}")
    if not ports or any(not 0 < p < 65536 for p in ports):
        raise argparse.ArgumentTypeError(f"ports must be between 1 and 65535, got {text!r}")
    return ports


class Progress:
    """A progress line on stderr (packets, MB read, rate), at most twice a second."""

    def __init__(self, enabled: bool, total_bytes: int | None, stream: TextIO = sys.stderr) -> None:
        self.enabled = enabled
        self.total = total_bytes
        self.stream = stream
        self.start = self.last = time.monotonic()

    def update(self, packets: int, nbytes: int) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.last < 0.5:
            return
        self.last = now
        rate = packets / max(now - self.start, 1e-9)
        pct = f" {100 * nbytes / self.total:5.1f}%" if self.total else ""
        self.stream.write(f"\r{packets:>12,} packets {nbytes / 1e6:10.1f} MB{pct} "
                          f"{rate:>10,.0f} packets/s")
        self.stream.flush()

    def done(self) -> None:
        if self.enabled:
            self.stream.write("\n")


def run_pipeline(source_name: str, sinks: list, config: PipelineConfig,
                 progress_mode: str = "auto", bpf: str = "tcp", duration: float | None = None,
                 count: int | None = None) -> tuple[Pipeline, CaptureError | None]:
    """Run a capture (file, stdin or live interface) through a pipeline with the given sinks.

    A live capture runs until SIGINT/SIGTERM, ``duration`` seconds, or ``count`` packets.

    Returns:
        The pipeline (for its counters) and the capture error that ended the
        input early, if any (everything readable before it was processed).
    """
    from otsentry.agent.source import LiveSource, open_source
    from otsentry.common.logging import get_logger

    src = open_source(source_name, bpf=bpf)
    pipe = Pipeline(sinks, config)
    total = getattr(src.stats, "total_bytes", None)
    show = progress_mode == "always" or (progress_mode == "auto" and sys.stderr.isatty())
    progress = Progress(show, total)
    feed = pipe.feed
    error: CaptureError | None = None
    live = isinstance(src, LiveSource)
    if live:
        get_logger("decode").info("capture.started", interface=src.name, filter=bpf,
                                  duration=duration)
    n = 0
    try:
        with _stop_on_signals(src, duration if live else None):
            for ts, linktype, data in src:
                feed(ts, linktype, data)
                n += 1
                if show and not n & 0x3FFF:
                    progress.update(n, src.stats.bytes_read)
                if n == count:
                    break
    except CaptureError as exc:
        error = exc
    finally:
        src.close()
    pipe.finish()
    progress.done()
    if live:
        get_logger("decode").info("capture.stopped", interface=src.name, packets=n,
                                  kernel_drops=src.stats.kernel_drops)
    return pipe, error


@contextmanager
def _stop_on_signals(src: object, duration: float | None) -> Iterator[None]:
    """Stop a live source on SIGINT/SIGTERM or when ``duration`` seconds have passed."""
    stop = getattr(src, "stop", None)
    if stop is None:
        yield
        return

    def handler(signum: int, frame: object) -> None:
        stop()

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM)}
    if duration:
        signal.setitimer(signal.ITIMER_REAL, duration)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for sig, h in old.items():
            signal.signal(sig, h)


def _print_table(d: dict[str, Any], out: TextIO) -> None:
    from otsentry.agent.modbus import spec

    out.write(f"packets: {d['packets']:,}   flows: {d['flows']:,}   "
              f"non-Modbus flows on Modbus ports: {d['non_modbus_flows']}\n\n")
    out.write(f"{'function':<40} {'requests':>10} {'responses':>10}\n")
    fcs = sorted({int(k) for k in d["requests_by_function"]} | {int(k) for k in d["responses_by_function"]})
    out.writelines(f"{fc:>3} {spec.function_name(fc):<36} {d['requests_by_function'].get(str(fc), 0):>10,} "
                  f"{d['responses_by_function'].get(str(fc), 0):>10,}\n" for fc in fcs)
    if d["exceptions_by_code"]:
        out.write(f"\n{'exception':<40} {'responses':>10}\n")
        out.writelines(f"{code:>3} {spec.exception_name(int(code)):<36} {n:>10,}\n" for code, n in d["exceptions_by_code"].items())
    if d["transactions"]:
        out.write("\ntransactions: " + ", ".join(f"{k} {v:,}" for k, v in d["transactions"].items()) + "\n")
    if d["violations_by_kind"]:
        out.write("\nviolations:\n")
        out.writelines(f"    {kind:<36} {n:>10,}\n" for kind, n in d["violations_by_kind"].items())
    out.write(f"\nendpoints (source -> destination, unit): {len(d['endpoints'])}\n")
    out.writelines(f"    {src:>39} -> {dst:<39} unit {unit}\n" for src, dst, unit in d["endpoints"][:50])
    if len(d["endpoints"]) > 50:
        out.write(f"    ... and {len(d['endpoints']) - 50} more (use --json for all)\n")


def run(args: argparse.Namespace) -> int:
    """Run ``decode``; returns the exit code (3 when the capture was damaged)."""
    from otsentry.agent.cli import EXIT_OK, EXIT_PARTIAL

    config, kwargs = capture_options(args)
    stats = Stats()
    sinks: list = [stats]
    out_file = None
    if not args.stats:
        out_file = open(args.output, "w", encoding="utf-8") if args.output else None  # noqa: SIM115
        sinks.append(JsonLinesWriter(out_file or sys.stdout))
    try:
        pipe, error = run_pipeline(args.source, sinks, config, **kwargs)
    finally:
        if out_file is not None:
            out_file.close()
    if args.stats:
        figures = stats.as_dict(pipe)
        if args.json:
            json.dump(figures, sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            _print_table(figures, sys.stdout)
    sys.stdout.flush()
    if error is not None:
        print(f"otsentry-agent decode: warning: {error}; everything before it was decoded",
              file=sys.stderr)
        return EXIT_PARTIAL
    return EXIT_OK
