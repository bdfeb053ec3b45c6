"""``otsentry-collector serve``: receive agents' findings, inventory and status over mTLS."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

import structlog

from otsentry.common.config import CollectorConfig, load_collector_config
from otsentry.common.logging import get_logger

__all__ = ["SUMMARY", "add_arguments", "run", "serve"]

SUMMARY = "receive findings, inventory and health from agents (gRPC over mutual TLS)"
DEFAULT_CONFIG = "/etc/otsentry/collector.toml"

HELP = """\
Listens for agents on [server] host:port (gRPC over mutual TLS: only agents
with a certificate from this collector's CA get in), stores what they deliver
in the SQLite file [store] path, and acknowledges each batch once it is stored.
Agents resend what was not acknowledged, and the collector drops what it
already has, so each finding is stored exactly once whatever the network does.

before the first run:
  otsentry-collector pki init --dns collector.plant.example --ip 10.0.0.5

examples:
  otsentry-collector serve --config /etc/otsentry/collector.toml
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


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or SIGINT; returns the exit code."""
    path = args.config or (DEFAULT_CONFIG if Path(DEFAULT_CONFIG).exists() else None)
    return asyncio.run(serve(load_collector_config(path)))


async def serve(cfg: CollectorConfig) -> int:
    """Run the server with the interim SQLite store until a stop signal."""
    from otsentry.collector.ingest_store import IngestStore
    from otsentry.collector.server import run_server

    cfg.store.parent.mkdir(parents=True, exist_ok=True)
    store = IngestStore(cfg.store, max_clock_skew_s=cfg.max_clock_skew_s,
                        group_max=cfg.group_commit_max)
    server, port = await run_server(cfg.pki_dir, host=cfg.host, port=cfg.port,
                                    commit=store.commit, max_message_bytes=cfg.max_message_bytes)
    log().info("collector listening", host=cfg.host, port=port, store=str(cfg.store),
               pki=str(cfg.pki_dir))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log().info("collector stopping")
    await server.stop(2.0)
    store.close()
    return 0
