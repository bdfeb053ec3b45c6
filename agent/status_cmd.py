"""``otsentry-agent status``: what the agent is doing, read from its state dir."""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from otsentry.agent.enroll import DEFAULT_STATE_DIR
from otsentry.agent.run_cmd import OUTBOX_FILE, STATUS_FILE
from otsentry.common.errors import OutboxError

__all__ = ["SUMMARY", "add_arguments", "run", "read_status"]

SUMMARY = "show what the agent is doing: capture counters, outbox, last ack, collector link"

HELP = """\
Reads the state dir of the agent (the running agent rewrites status.json there
every second) and says: whether the agent is running, what it captures and
how many packets the kernel dropped, how many messages wait in the outbox on
disk, when the collector last acknowledged a delivery, and whether the
collector is reachable now.

examples:
  otsentry-agent status
  otsentry-agent status --state /var/lib/otsentry/agent --json
"""

#: A status file older than this means the agent is not updating it (stopped or stuck).
STALE_S = 10.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``status``."""
    p.description = HELP
    p.add_argument("--state", metavar="DIR", type=Path, default=Path(DEFAULT_STATE_DIR),
                   help=f"the agent's state dir (default: {DEFAULT_STATE_DIR}, "
                        "or $OTSENTRY_STATE_DIR)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def read_status(state: Path, now_ns: int | None = None) -> dict[str, Any]:
    """The last status the agent wrote, with ``running`` and the outbox read now.

    Raises:
        OutboxError: the state dir holds no status file and no outbox.
    """
    now_ns = now_ns or time.time_ns()
    path = state / STATUS_FILE
    try:
        d: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        if not (state / OUTBOX_FILE).exists():
            raise OutboxError(f"{state}: no agent state here (no {STATUS_FILE}, no {OUTBOX_FILE});"
                              " has 'otsentry-agent run' been started with this state dir?"
                              ) from None
        d = {}
    except (OSError, ValueError) as exc:
        raise OutboxError(f"{path}: cannot read the status file: {exc}") from None
    age = (now_ns - d.get("updated_ns", 0)) / 1e9
    d["age_s"] = round(age, 1)
    d["running"] = bool(d) and _alive(d.get("pid", 0)) and age < STALE_S
    d["outbox"] = {**d.get("outbox", {}), **_outbox_now(state / OUTBOX_FILE)}
    return d


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return pid > 0


def _outbox_now(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)
        try:
            pending = db.execute("SELECT count(*), coalesce(sum(length(body)), 0) "
                                 "FROM pending").fetchone()
            inflight = db.execute("SELECT count(*), coalesce(sum(length(body)), 0) "
                                  "FROM inflight").fetchone()
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        finally:
            db.close()
    except sqlite3.Error as exc:
        return {"error": str(exc)}
    return {"depth": pending[0] + inflight[0], "bytes": pending[1] + inflight[1],
            "in_flight": inflight[0], "acked_seq": int(meta.get("acked_seq", 0)),
            "next_seq": int(meta.get("next_seq", 1)), "epoch": int(meta.get("epoch", 0)),
            "dropped": json.loads(meta.get("dropped", "{}"))}


def _ago(ns: int, now: int) -> str:
    return "never" if not ns else f"{(now - ns) / 1e9:.1f} s ago"


def _lines(d: dict[str, Any], now: int) -> list[str]:
    cap, ob, sh = d.get("capture", {}), d.get("outbox", {}), d.get("shipper", {})
    who = d.get("agent_id", "agent")
    state = (f"running (pid {d['pid']})" if d["running"]
             else f"NOT RUNNING (status last written {d['age_s']} s ago)" if d.get("pid")
             else "NOT RUNNING (never started)")
    done = " (replay finished)" if cap.get("done") else ""
    dropped = ", ".join(f"{n} {k}" for k, n in ob.get("dropped", {}).items()) or "none"
    if d["running"] and sh.get("connected"):
        link = f"connected to {sh.get('endpoint')}"
    else:
        link = "NOT CONNECTED" + (f": {sh['last_error']}" if sh.get("last_error") else "")
    return [
        f"agent:      {who}: {state}, version {d.get('version', '?')}",
        f"source:     {d.get('source', '?')}, detection mode {d.get('mode') or '?'}",
        f"capture:    {cap.get('packets', 0):,} packets, {cap.get('bytes', 0):,} bytes, "
        f"kernel drops {cap.get('kernel_drops', 0):,}, interface drops "
        f"{cap.get('interface_drops', 0):,}{done}"
        + (f", ERROR {cap['error']}" if cap.get("error") else ""),
        f"flows:      {d.get('flows', {}).get('active', 0):,} active, "
        f"{d.get('flows', {}).get('total', 0):,} total",
        f"outbox:     {ob.get('depth', 0):,} messages waiting ({ob.get('in_flight', 0):,} sent, "
        f"not yet acknowledged), {ob.get('bytes', 0):,} bytes; dropped on overflow: {dropped}",
        f"collector:  {link}",
        f"last ack:   {_ago(sh.get('last_ack_ns', 0), now)} (up to message "
        f"{ob.get('acked_seq', 0):,} of epoch {ob.get('epoch', 0):x})",
    ]


def run(args: argparse.Namespace) -> int:
    """Print the status; exit 0 when the agent runs and reaches its collector, else 1."""
    now = time.time_ns()
    d = read_status(args.state, now)
    if args.json:
        json.dump(d, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        sys.stdout.write("\n".join(_lines(d, now)) + "\n")
    return 0 if d["running"] and d.get("shipper", {}).get("connected") else 1
