"""``otsentry-collector serve``: receive agents' findings, inventory and status over mTLS."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

import structlog

from otsentry.common import sdnotify
from otsentry.common.config import CollectorConfig, load_collector_config
from otsentry.common.logging import get_logger

__all__ = ["SUMMARY", "add_arguments", "run", "serve"]

SUMMARY = "receive findings, inventory and health from agents (gRPC over mutual TLS)"
DEFAULT_CONFIG = "/etc/otsentry/collector.toml"

HELP = """\
Listens for agents on [server] host:port (gRPC over mutual TLS: only agents
with a certificate from this collector's CA get in), stores what they deliver
in the store (the SQLite file [store] path, or --db postgresql://... shared by
several replicas), and acknowledges each batch once it is stored.
Agents resend what was not acknowledged, and the collector drops what it
already has, so each finding is stored exactly once whatever the network does.

before the first run:
  otsentry-collector pki init --dns collector.plant.example --ip 10.0.0.5

examples:
  otsentry-collector serve --config /etc/otsentry/collector.toml
  otsentry-collector serve --db postgresql://otsentry@db.example/otsentry   # one of N replicas
  otsentry-collector import agent-export.otseg     # a file carried from a plant
"""


def log() -> structlog.typing.FilteringBoundLogger:
    """This module's logger, looked up per call so that it follows ``configure()``."""
    return get_logger("collector.serve")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``serve``."""
    p.description = HELP
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--config", metavar="FILE", default=None,
                   help=f"the collector's TOML config (default: {DEFAULT_CONFIG} if it exists; "
                        "packaging/collector.toml documents every option)")
    p.add_argument("--db", metavar="URL", default=None,
                   help="the store: sqlite:///PATH (default: the [store] path of the config) or "
                        "postgresql://USER@HOST/DB, shared by several replicas")
    p.add_argument("--rules", metavar="FILE", default=None,
                   help="correlation rules (TOML, [correlate] table; default: built-in rules)")
    p.add_argument("--retention-days", metavar="N", type=float, default=None,
                   help="prune findings ingested more than N days ago (default: keep all); "
                        "incidents are kept")
    p.add_argument("--web", metavar="HOST:PORT", default=None,
                   help="also serve the analysts' dashboard over HTTPS there (default: the [web] "
                        "listen of the config; off when neither is set)")


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or SIGINT; returns the exit code."""
    path = args.config or (DEFAULT_CONFIG if Path(DEFAULT_CONFIG).exists() else None)
    from otsentry.collector.correlate import load_rules

    return asyncio.run(serve(load_collector_config(path), db=args.db,
                             rules=load_rules(args.rules), retention_days=args.retention_days,
                             web=args.web))


async def serve(cfg: CollectorConfig, *, db: str | None = None, rules: object = None,
                retention_days: float | None = None, web: str | None = None) -> int:
    """Run the server on the store at ``db`` (default: SQLite at [store] path) until a stop signal.

    The schema is upgraded first (safe with several replicas starting at once);
    correlation, retention and the push of reports to the [[upstream]] recipients
    run in the background on every replica, coordinated through the database.
    """
    from otsentry.collector.correlate import Rules, run_jobs
    from otsentry.collector.feed import FeedHub
    from otsentry.collector.metrics import start_collector_metrics
    from otsentry.collector.server import run_server
    from otsentry.collector.store import Store, ca_fingerprints, redact

    if db is None:
        cfg.store.parent.mkdir(parents=True, exist_ok=True)
        db = f"sqlite:///{cfg.store}"
    loop = asyncio.get_running_loop()
    wake, stop = asyncio.Event(), asyncio.Event()
    store = Store(db, create=True, max_batches=cfg.group_commit_max,
                  max_clock_skew_s=cfg.max_clock_skew_s, fingerprint=ca_fingerprints(cfg.pki_dir),
                  on_commit=lambda: (loop.call_soon_threadsafe(wake.set), feed.poke()))
    feed = FeedHub(store.engine)  # analysts' subscriptions follow the feed log through it
    await feed.start()
    try:
        metrics = start_collector_metrics(cfg, store)
    except Exception:
        store.close()
        raise
    server, port = await run_server(cfg.pki_dir, host=cfg.host, port=cfg.port,
                                    commit=store.commit, max_message_bytes=cfg.max_message_bytes,
                                    enroll_port=cfg.enroll_port or None, feed=feed)
    log().info("collector listening", host=cfg.host, port=port, store=redact(db),
               pki=str(cfg.pki_dir), enroll_port=cfg.enroll_port or "off")
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    jobs = asyncio.create_task(run_jobs(store, rules if isinstance(rules, Rules) else Rules(),
                                        stop, wake=wake, retention_days=retention_days))
    from otsentry.collector.upstream import run_upstream

    upstream = asyncio.create_task(run_upstream(store.engine, cfg.reporting, stop))
    dashboard = None
    if web or cfg.web.listen:
        from otsentry.collector.web_cmd import start_dashboard

        dashboard = await start_dashboard(db, cfg.pki_dir, web or cfg.web.listen, stop)
    sdnotify.ready(f"listening on {cfg.host}:{port}")
    watchdog = asyncio.create_task(sdnotify.watchdog_loop(stop))
    await stop.wait()
    sdnotify.stopping()
    log().info("collector stopping")
    await server.stop(2.0)
    await feed.stop()
    await asyncio.gather(jobs, watchdog, upstream, *([dashboard] if dashboard else []))
    if metrics is not None:
        metrics.close()
    store.close()
    return 0
