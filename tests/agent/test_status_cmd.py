"""``otsentry-agent status`` reads the state dir: status file, live outbox, running or not."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from otsentry.agent.cli import main
from otsentry.agent.outbox import Outbox
from otsentry.agent.status_cmd import read_status
from otsentry.common.errors import OutboxError


def _state(tmp_path: Path, pid: int, age_s: float = 0.0) -> Path:
    box = Outbox(tmp_path / "outbox.sqlite")
    box.put("status", b"x")
    box.put("status", b"y")
    box.take(max_messages=1)
    box.close()
    (tmp_path / "status.json").write_text(json.dumps({
        "pid": pid, "agent_id": "site/p/agent/a", "updated_ns": time.time_ns() - int(age_s * 1e9),
        "capture": {"packets": 1234, "kernel_drops": 5},
        "shipper": {"connected": True, "endpoint": "c1:50051", "last_ack_ns": time.time_ns()}}))
    return tmp_path


def test_running_agent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A fresh status of a live process is 'running', with the outbox as it is now."""
    d = read_status(_state(tmp_path, os.getpid()))
    assert d["running"] and d["outbox"]["depth"] == 2 and d["outbox"]["in_flight"] == 1
    assert main(["status", "--state", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "running" in out and "kernel drops 5" in out and "connected to c1:50051" in out


def test_stopped_agent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A stale status file is reported as not running, and the exit code says so."""
    _state(tmp_path, os.getpid(), age_s=60)
    assert main(["status", "--state", str(tmp_path)]) == 1
    assert "NOT RUNNING" in capsys.readouterr().out


def test_no_state(tmp_path: Path) -> None:
    """An empty state dir is a clear error."""
    with pytest.raises(OutboxError, match="no agent state"):
        read_status(tmp_path)
