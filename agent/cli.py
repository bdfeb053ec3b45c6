"""``otsentry-agent``: the command operators run on the sensor box.

Each sub-command lives in its own function; this module only parses the
command line, sets up logging and turns errors into exit codes and messages
an operator can act on.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from otsentry import __version__
from otsentry.common import logging as otlog
from otsentry.common.errors import OtSentryError

__all__ = ["main", "build_parser"]

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3

DESCRIPTION = """\
otsentry agent: a passive Modbus/TCP security sensor.

It listens on a mirror (SPAN) port or reads capture files, decodes every
Modbus message, and reports what it sees.  It never sends anything to the
devices it watches.
"""

EPILOG = """\
exit codes: 0 ok, 1 error, 2 bad command line, 3 input was damaged
(e.g. a truncated capture: what could be read was still processed).

Run 'otsentry-agent COMMAND --help' for the options of one command.
"""


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every registered sub-command."""
    from otsentry.agent.commands import COMMANDS

    parser = argparse.ArgumentParser(
        prog="otsentry-agent",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"otsentry {__version__}")
    parser.add_argument(
        "--log-format", choices=("console", "json"), default="console",
        help="how log lines on stderr look: 'console' for people (default), 'json' for machines",
    )
    parser.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), default="info",
        help="least important log level shown (default: info)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (summary, add_args, _run) in COMMANDS.items():
        p = sub.add_parser(name, help=summary, description=summary,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        add_args(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``otsentry-agent`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    otlog.configure(args.log_format, args.log_level)
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    from otsentry.agent.commands import COMMANDS

    _summary, _add, run = COMMANDS[args.command]
    try:
        return run(args)
    except OtSentryError as exc:
        print(f"otsentry-agent {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"otsentry-agent {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into `head` and closed early: not an error for the operator.
        sys.stderr.close()
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
