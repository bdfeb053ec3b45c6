"""Logging follows the current stderr and never raises."""

from __future__ import annotations

import io
import sys

from otsentry.common import logging as otlog


def test_lines_go_to_the_current_stderr_as_json(monkeypatch) -> None:
    """A logger made before stderr was replaced writes to the new stderr."""
    otlog.configure("json")
    log = otlog.get_logger("test")
    buf = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buf)
    log.info("capture.started", interface="lo")
    assert '"event": "capture.started"' in buf.getvalue()
    assert '"component": "test"' in buf.getvalue()


def test_a_closed_stderr_does_not_raise(monkeypatch) -> None:
    """Writing a log line to a closed stream is dropped instead of raising (writer threads live on)."""
    otlog.configure("console")
    closed = io.StringIO()
    closed.close()
    monkeypatch.setattr(sys, "stderr", closed)
    otlog.get_logger("test").error("still running")
