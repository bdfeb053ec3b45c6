"""``otsentry-collector``: the command collector admins run."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from otsentry import __version__
from otsentry.common import logging as otlog

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
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``otsentry-collector`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    otlog.configure(args.log_format)
    if not args.command:
        parser.print_help()
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
