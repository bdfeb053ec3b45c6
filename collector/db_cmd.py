"""``otsentry-collector db``: create or upgrade the store's schema, prune, show what is in it."""

from __future__ import annotations

import argparse

from sqlalchemy import func, select

from otsentry.collector.store import (connect, current_revision, default_url, head, head_revision,
                                      read, redact, upgrade)
from otsentry.collector.store import _schema as S
from otsentry.collector.store._jobs import prune

__all__ = ["SUMMARY", "add_arguments", "run", "add_db_option"]

SUMMARY = "create or upgrade the store's schema (SQLite or PostgreSQL), prune old findings"

HELP = """\
The store is a SQLite file (one machine, the default) or a PostgreSQL database
shared by several collector replicas.  `serve` upgrades the schema itself;
run `db upgrade` by hand before starting replicas of a new version, or to
create the schema ahead of time.

examples:
  otsentry-collector db upgrade --db sqlite:///var/lib/otsentry/collector/ingest.sqlite
  otsentry-collector db upgrade --db postgresql://otsentry@db.example/otsentry
  otsentry-collector db status
  otsentry-collector db prune --days 90      # findings ingested more than 90 days ago
"""


def add_db_option(p: argparse.ArgumentParser) -> None:
    """The ``--db URL`` option every store command shares."""
    p.add_argument("--db", metavar="URL", default=None,
                   help="sqlite:///PATH or postgresql://USER@HOST/DB (default: $OTSENTRY_DB, "
                        "else the SQLite file in $OTSENTRY_COLLECTOR_DIR or "
                        "/var/lib/otsentry/collector)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Sub-commands of ``db``."""
    p.description = HELP
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = sub.add_parser("upgrade", help="create the schema or bring it to this version")
    add_db_option(up)
    st = sub.add_parser("status", help="schema revision and row counts")
    add_db_option(st)
    pr = sub.add_parser("prune", help="delete findings, feed entries and history older than N days "
                                      "(ingest time); incidents and their findings stay")
    add_db_option(pr)
    pr.add_argument("--days", type=float, required=True, metavar="N")


def run(args: argparse.Namespace) -> int:
    """Run the ``db`` action; returns the exit code."""
    url = args.db or default_url()
    engine = connect(url)
    try:
        if args.db_command == "upgrade":
            before = current_revision(engine)
            after = upgrade(engine)
            print(f"{redact(url)}: schema {before or 'none'} -> {after}"
                  if before != after else f"{redact(url)}: schema {after} is current")
        elif args.db_command == "status":
            _status(engine, url)
        else:
            p = prune(engine, args.days)
            print(f"pruned {p.findings} findings, {p.feed} feed entries, {p.status} status reports, "
                  f"{p.asset_history} asset changes" if p.ran else
                  "another collector is pruning right now; nothing done")
    finally:
        engine.dispose()
    return 0


def _status(engine, url: str) -> None:  # type: ignore[no-untyped-def]
    have, want = current_revision(engine), head_revision()
    print(f"database  {redact(url)}")
    print(f"schema    {have or 'none'} (this collector: {want})")
    if have != want:
        print("          run 'otsentry-collector db upgrade'")
        return
    with read(engine) as conn:
        for t in (S.sites, S.agents, S.findings, S.assets, S.incidents):
            print(f"{t.name:<9} {conn.execute(select(func.count()).select_from(t)).scalar_one()}")
        print(f"feed      cursor {head(conn)}")
