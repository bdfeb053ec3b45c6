"""``otsentry-collector``: the command collector admins run."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from otsentry import __version__
from otsentry.common import logging as otlog
from otsentry.common.errors import OtSentryError

#: sub-command -> module with SUMMARY, add_arguments(parser), run(args) -> int.
_MODULES = {
    "pki": "otsentry.collector.pki_cli",
    "serve": "otsentry.collector.serve",
    "db": "otsentry.collector.db_cmd",
    "incidents": "otsentry.collector.incidents_cmd",
    "report": "otsentry.collector.report_cmd",
    "import": "otsentry.collector.import_cmd",
    "feed": "otsentry.collector.feed_cmd",
    "web": "otsentry.collector.web_cmd",
}

DESCRIPTION = """\
otsentry collector: receives findings and inventory from otsentry agents,
stores and correlates them, serves analysts and reports upstream.
"""


def build_parser() -> argparse.ArgumentParser:
    """Build the collector's argument parser."""
    parser = argparse.ArgumentParser(prog="otsentry-collector", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"otsentry {__version__}")
    parser.add_argument("--log-format", choices=("console", "json"), default="console",
                        help="how log lines on stderr look (default: console)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in _MODULES.items():
        mod = importlib.import_module(module)
        p = sub.add_parser(name, help=mod.SUMMARY, description=mod.SUMMARY)
        mod.add_arguments(p)
        p.set_defaults(run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``otsentry-collector`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    otlog.configure(args.log_format)
    if not args.command:
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except OtSentryError as exc:
        print(f"otsentry-collector {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
