"""``otsentry-collector web``: login tokens for the dashboard, or the dashboard on its own."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import signal
import sys
from pathlib import Path

from otsentry.collector.db_cmd import add_db_option
from otsentry.collector.pki_cli import DEFAULT_PKI_DIR
from otsentry.common.errors import OtSentryError
from otsentry.common.logging import get_logger

__all__ = ["SUMMARY", "add_arguments", "run", "start_dashboard"]

SUMMARY = "the analysts' web dashboard: login tokens, or serve it without ingest"

HELP = """\
The dashboard is served by 'otsentry-collector serve' when [web] listen is set
in collector.toml (or with serve --web HOST:PORT), over HTTPS with the
collector's certificate.  Analysts log in with their analyst certificate
(installed in the browser) or with a login token made here from it.

examples:
  otsentry-collector pki issue-analyst alice          # alice.key, alice.crt
  otsentry-collector web token --cert alice.crt       # prints a token for alice (12 hours)
  otsentry-collector web token --cert alice.crt --hours 72
  otsentry-collector web serve --listen 0.0.0.0:8443  # the dashboard alone, e.g. on a read replica

Revoking the analyst's certificate ('pki revoke analyst/alice') ends their tokens.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Sub-commands of ``web``."""
    p.description = HELP
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = p.add_subparsers(dest="web_command", metavar="ACTION", required=True)
    t = sub.add_parser("token", help="print a login token for an analyst's certificate",
                       description="Print a login token for the analyst of CERT (made by "
                                   "'pki issue-analyst'); give it to them over a safe channel.")
    t.add_argument("--cert", type=Path, required=True, metavar="CERT", help="the analyst's NAME.crt")
    t.add_argument("--hours", type=float, default=12.0,
                   help="how long the token lasts (default: 12; never past the certificate's end)")
    s = sub.add_parser("serve", help="serve only the dashboard (no agent ingest)",
                       description="Serve the dashboard over HTTPS on --listen, reading the store.")
    s.add_argument("--listen", default="127.0.0.1:8443", metavar="HOST:PORT",
                   help="address and port (default: 127.0.0.1:8443)")
    add_db_option(s)
    for sp in (t, s):
        sp.add_argument("--pki-dir", type=Path, default=Path(DEFAULT_PKI_DIR),
                        help=f"the collector's PKI folder (default: {DEFAULT_PKI_DIR}, "
                             "or $OTSENTRY_PKI_DIR)")


def _token(args: argparse.Namespace) -> int:
    from otsentry.collector.web import issue_token

    if not 0 < args.hours <= 24 * 90:
        raise OtSentryError(f"--hours {args.hours:g}: expected more than 0 and at most 2160 (90 days)")
    token, who = issue_token(args.pki_dir, args.cert, hours=args.hours)
    end = dt.datetime.fromtimestamp(who.expires, dt.timezone.utc)
    get_logger("collector.web").info("login token issued", analyst=who.name, serial=who.serial,
                                     expires=end.isoformat())
    print(token)
    print(f"login token for analyst {who.name}, valid until {end:%Y-%m-%d %H:%M} UTC; paste it on "
          "the dashboard's login page", file=sys.stderr)
    return 0


async def start_dashboard(db: str, pki_dir: Path, listen: str,
                          stop: asyncio.Event) -> asyncio.Task[None]:
    """Start the dashboard on ``listen`` (HOST:PORT); the task ends once ``stop`` is set.

    Raises:
        OtSentryError: ``listen`` is not HOST:PORT, or the address is in use or not on
            this machine.
        PkiError: the collector's certificate cannot be loaded.
        StoreError: the store cannot be read.
    """
    from otsentry.collector.web import WebServer, create_app
    from otsentry.common.metrics import parse_listen

    try:
        host, port = parse_listen(listen)
    except ValueError as exc:
        raise OtSentryError(f"dashboard address: {exc} (expected HOST:PORT, "
                            "e.g. 127.0.0.1:8443)") from None
    web = WebServer(create_app(db, pki_dir), pki_dir, host, port)
    try:
        await web.start()
    except OSError as exc:
        raise OtSentryError(f"dashboard: {exc}") from None
    get_logger("collector.web").info("dashboard listening", url=f"https://{host}:{web.port}/")

    async def run_until_stop() -> None:
        try:
            await stop.wait()
        finally:
            await web.stop()

    return asyncio.create_task(run_until_stop())


def _serve(args: argparse.Namespace) -> int:
    from otsentry.collector.store import default_url

    async def main() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await (await start_dashboard(args.db or default_url(), args.pki_dir, args.listen, stop))

    asyncio.run(main())
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the chosen action; returns the exit code."""
    return {"token": _token, "serve": _serve}[args.web_command](args)
