"""structlog set-up, done once per process.

People get a readable console renderer; ``--log-format json`` gives one JSON
object per line for journald or a SIEM.  Logs always go to stderr so that
stdout stays clean for data (JSON lines, tables).
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog

__all__ = ["configure", "get_logger"]

LogFormat = Literal["console", "json"]


def configure(fmt: LogFormat = "console", level: str = "info") -> None:
    """Configure structlog and the stdlib root logger.

    Args:
        fmt: ``"console"`` for people, ``"json"`` for machines.
        level: minimum level name (debug, info, warning, error).
    """
    lvl = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if fmt == "json":
        renderer: structlog.typing.Processor = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=lvl, stream=sys.stderr, format="%(name)s %(levelname)s %(message)s")


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    """Return a logger bound to ``component=name``."""
    # A lazy proxy: a logger made at import time still follows a later configure().
    return structlog.get_logger(component=name)
