"""``otsentry-collector feed``: follow, query and export the analysts' feed over gRPC."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import grpc

from otsentry.collector.store import FeedFilter
from otsentry.common.errors import OtSentryError
from otsentry.common.finding import Severity
from otsentry.common.tls import explain_rpc_error
from otsentry.v1 import feed_pb2

__all__ = ["SUMMARY", "add_arguments", "run", "build_request"]

SUMMARY = "follow, query or export findings, incidents, inventory changes and agent health"

DEFAULT_PKI_DIR = os.environ.get("OTSENTRY_PKI_DIR", "/var/lib/otsentry/collector/pki")

HELP = """\
The feed is everything the collector stores, in the order it stored it:
findings, incidents, asset (inventory) changes and agent health.  Every
entry has a cursor; `--after CURSOR` continues exactly after an entry, with
nothing missed and nothing twice.

All three actions talk to the collector over gRPC with an analyst's
certificate, like any analyst tool, so they work from a workstation as well as
on the collector host.  Get a certificate once, on the collector host:
  otsentry-collector pki issue-analyst alice     # writes alice.key, alice.crt

examples:
  otsentry-collector feed tail --cert alice.crt --collector collector.plant.example:50051
  otsentry-collector feed tail --site plant1 --min-severity high --technique T0855
  otsentry-collector feed query --since 2h --kind finding --json
  otsentry-collector feed query --since 2024-05-01 --until 2024-05-02
  otsentry-collector feed export --format jsonl --out today.jsonl --since 1d

Set OTSENTRY_COLLECTOR, OTSENTRY_ANALYST_CERT (and OTSENTRY_ANALYST_KEY) once
instead of repeating --collector, --cert and --key.
"""

_KINDS = {"finding": feed_pb2.EVENT_KIND_FINDING, "incident": feed_pb2.EVENT_KIND_INCIDENT,
          "asset": feed_pb2.EVENT_KIND_ASSET, "agent": feed_pb2.EVENT_KIND_AGENT}


def _connection_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("connection")
    g.add_argument("--collector", metavar="HOST:PORT",
                   default=os.environ.get("OTSENTRY_COLLECTOR", "localhost:50051"),
                   help="the collector's gRPC address; the host must be a name or address in its "
                        "certificate (default: $OTSENTRY_COLLECTOR, else localhost:50051)")
    g.add_argument("--cert", metavar="FILE", type=Path,
                   default=os.environ.get("OTSENTRY_ANALYST_CERT"),
                   help="your analyst certificate, from 'pki issue-analyst NAME' "
                        "(default: $OTSENTRY_ANALYST_CERT)")
    g.add_argument("--key", metavar="FILE", type=Path,
                   default=os.environ.get("OTSENTRY_ANALYST_KEY"),
                   help="its key (default: $OTSENTRY_ANALYST_KEY, else the .key next to --cert)")
    g.add_argument("--ca", metavar="FILE", type=Path, default=Path(DEFAULT_PKI_DIR) / "ca.crt",
                   help=f"the collector's CA certificate (default: {DEFAULT_PKI_DIR}/ca.crt, "
                        "or ca.crt in $OTSENTRY_PKI_DIR)")


def _filter_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("filters (repeat an option for several values; any value matches)")
    g.add_argument("--site", action="append", default=[], metavar="SITE")
    g.add_argument("--min-severity", metavar="LEVEL",
                   help="info, low, medium, high or critical (drops asset and agent entries)")
    g.add_argument("--technique", action="append", default=[], metavar="ID",
                   help="an ATT&CK for ICS technique, e.g. T0855")
    g.add_argument("--kind", action="append", default=[], choices=sorted(_KINDS),
                   help="entry kind")
    g.add_argument("--asset", action="append", default=[], metavar="IP",
                   help="an asset's IP address")
    g.add_argument("--detector", action="append", default=[], metavar="NAME",
                   help="a finding kind (e.g. policy.write-not-allowed) or incident rule")
    g.add_argument("--new-only", action="store_true",
                   help="only the first entry of each finding, incident or asset, not updates")


def _add_tail(p: argparse.ArgumentParser) -> None:
    p.add_argument("--after", type=int, metavar="CURSOR",
                   help="start after this cursor (default: only what arrives from now on)")
    p.add_argument("--json", action="store_true", help="JSON lines (see docs/analyst.md)")


def _add_query(p: argparse.ArgumentParser) -> None:
    _range_options(p)
    p.add_argument("--json", action="store_true", help="JSON lines (see docs/analyst.md)")


def _add_export(p: argparse.ArgumentParser) -> None:
    _range_options(p)
    p.add_argument("--format", choices=("jsonl",), default="jsonl",
                   help="jsonl: one JSON object per line (default)")
    p.add_argument("--out", metavar="FILE", type=Path, required=True,
                   help="the file to write (written whole, then renamed into place)")


def _range_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", metavar="TIME",
                   help="from this ingest time: 2024-05-01, 2024-05-01T12:00:00Z, or 90m, 2h, 7d "
                        "ago (default: the oldest kept)")
    p.add_argument("--until", metavar="TIME",
                   help="up to this ingest time (default: what is stored when the command starts)")
    p.add_argument("--after", type=int, metavar="CURSOR",
                   help="start after this cursor instead of --since (e.g. the last export's)")


def build_request(args: argparse.Namespace, now_ns: int) -> feed_pb2.SubscribeRequest:
    """The SubscribeRequest the options ask for.

    Raises:
        OtSentryError: a severity or time that cannot be read.
    """
    from otsentry.collector.feed import filter_to_proto, parse_time

    try:
        sev = int(Severity.parse(args.min_severity)) if args.min_severity else None
        since = parse_time(args.since, now_ns) if getattr(args, "since", None) else 0
        until = parse_time(args.until, now_ns) if getattr(args, "until", None) else 0
    except ValueError as exc:
        raise OtSentryError(str(exc)) from None
    f = FeedFilter(kinds=tuple(args.kind), sites=tuple(args.site), min_severity=sev,
                   techniques=tuple(args.technique), detectors=tuple(args.detector),
                   assets=tuple(args.asset), new_only=args.new_only)
    req = feed_pb2.SubscribeRequest(filter=filter_to_proto(f), since_ns=since, until_ns=until,
                                    history_only=args.action != "tail",
                                    pcap=getattr(args, "pcap", False))
    if args.after is not None:
        req.after = args.after
    elif args.action != "tail" and not since:
        req.after = 0
    return req


def _client(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from otsentry.collector.feed import FeedClient

    if args.cert is None:
        raise OtSentryError("no analyst certificate: pass --cert FILE (or set "
                            "OTSENTRY_ANALYST_CERT); the collector's admin makes one with "
                            "'otsentry-collector pki issue-analyst NAME'")
    key = args.key or Path(args.cert).with_suffix(".key")
    return FeedClient(args.collector, ca=args.ca, cert=args.cert, key=key)


def _printer(as_json: bool, out: TextIO) -> Callable[[feed_pb2.FeedEvent], None]:
    from otsentry.collector.feed import event_line, event_to_json

    def show(ev: feed_pb2.FeedEvent) -> None:
        line = json.dumps(event_to_json(ev)) if as_json else event_line(ev)
        if line is not None and (as_json or ev.WhichOneof("body") != "progress"):
            out.write(line + "\n")
            out.flush()
    return show


async def _tail(args: argparse.Namespace, req: feed_pb2.SubscribeRequest) -> int:
    show = _printer(args.json, sys.stdout)

    def retry(err: grpc.RpcError, delay: float) -> None:
        print(f"feed: {explain_rpc_error(err)}; retrying in {delay:.0f} s", file=sys.stderr)

    async for ev in _client(args).events(req, resume=True, on_retry=retry):
        show(ev)
    return 0


async def _query(args: argparse.Namespace, req: feed_pb2.SubscribeRequest) -> int:
    show, n, last = _printer(args.json, sys.stdout), 0, req.after
    async for ev in _client(args).events(req):
        if ev.WhichOneof("body") != "progress":
            show(ev)
            n += 1
        last = ev.cursor
    print(f"{n} entries; continue with --after {last}", file=sys.stderr)
    return 0


async def _export(args: argparse.Namespace, req: feed_pb2.SubscribeRequest) -> int:
    from otsentry.collector.feed import event_to_json

    tmp = args.out.with_name(args.out.name + ".part")
    n, last, t0 = 0, req.after, time.monotonic()
    told = t0
    try:
        with tmp.open("w") as out:
            async for ev in _client(args).events(req):
                last = ev.cursor
                if ev.WhichOneof("body") == "progress":
                    continue
                out.write(json.dumps(event_to_json(ev)) + "\n")
                n += 1
                if time.monotonic() - told >= 2:
                    told = time.monotonic()
                    print(f"exported {n} entries (cursor {last}, {n / (told - t0):.0f}/s)",
                          file=sys.stderr)
        tmp.replace(args.out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    print(f"exported {n} entries to {args.out}; next export: --after {last}", file=sys.stderr)
    return 0


_ACTIONS = {
    "tail": ("follow the feed live (reconnects by itself and resumes where it was)", _add_tail,
             _tail),
    "query": ("print stored entries between two times, then stop", _add_query, _query),
    "export": ("write stored entries to a file for a SIEM, with progress", _add_export, _export),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Sub-commands of ``feed``."""
    p.description = HELP
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, (help_, add, _) in _ACTIONS.items():
        sp = sub.add_parser(name, help=help_, description=help_)
        add(sp)
        sp.add_argument("--pcap", action="store_true",
                        help="include each finding's pcap slice (evidence.pcap, base64 in JSON); "
                             "left out by default to keep the feed small")
        _filter_options(sp)
        _connection_options(sp)


def run(args: argparse.Namespace) -> int:
    """Run the action; returns the exit code."""
    req = build_request(args, time.time_ns())
    try:
        return asyncio.run(_ACTIONS[args.action][2](args, req))
    except grpc.aio.AioRpcError as err:
        raise OtSentryError(explain_rpc_error(err)) from None
    except KeyboardInterrupt:
        return 130
