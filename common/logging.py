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
        logger_factory=_StderrLogger,
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=lvl, stream=sys.stderr, format="%(name)s %(levelname)s %(message)s")


class _StderrLogger:
    """Writes each line to the *current* ``sys.stderr``, and never raises.

    A log line that cannot be written (stderr closed or replaced, a full disk, a
    broken pipe) is dropped: logging must never stop a capture loop or a writer
    thread, as stdlib logging's ``handleError`` also ensures.
    """

    def __init__(self, *args: object) -> None:
        pass

    def msg(self, message: str) -> None:
        try:
            stream = sys.stderr
            stream.write(message + "\n")
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass

    log = debug = info = warn = warning = error = critical = exception = fatal = failure = msg


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    """Return a logger bound to ``component=name``."""
    # A lazy proxy: a logger made at import time still follows a later configure().
    return structlog.get_logger(component=name)
