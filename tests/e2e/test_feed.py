"""The analysts' feed end to end: a real `serve`, the agent's shipper delivering, and analysts'
processes reading: `feed tail --json`, `feed query`, `feed export`, and the client in docs/analyst.md."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from otsentry.agent.outbox import Outbox
from otsentry.agent.shipper import Shipper
from otsentry.collector.store.testing import free_port
from otsentry.common.config import CollectorLink
from otsentry.common.finding import Severity
from tests.collector.conftest import Creds, Pki
from tests.collector.store.helpers import finding
from tests.collector.test_serve_store import _serve

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]


def _deliver(tmp: Path, agent: Creds, port: int, findings: list) -> None:
    """Put findings in an agent outbox and let the agent's shipper deliver them all."""
    box_path = tmp / "outbox.sqlite"
    box = Outbox(box_path)
    box.put_many(findings, [])
    box.close()
    link = CollectorLink(endpoints=(f"localhost:{port}",), ca=agent.ca, cert=agent.cert,
                         key=agent.key, batch_linger_s=0.01)

    async def main() -> None:
        stop = asyncio.Event()
        ship = Shipper(box_path, "site/plant1/agent/a1", link)
        runner = asyncio.ensure_future(ship.run(stop))
        async with asyncio.timeout(30):
            while (await ship.outbox_stats())["depth"]:
                await asyncio.sleep(0.05)
        stop.set()
        await runner
    asyncio.run(main())


def _feed(analyst: Creds, port: int, *args: str) -> list[str]:
    return [str(BIN / "otsentry-collector"), "feed", *args, "--collector", f"localhost:{port}",
            "--cert", str(analyst.cert), "--key", str(analyst.key), "--ca", str(analyst.ca)]


def _line(proc: subprocess.Popen, timeout: float = 20) -> str:
    """The next line of a child's stdout, or fail after ``timeout``."""
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)  # type: ignore[arg-type]
    assert sel.select(timeout), "no output in time"
    return proc.stdout.readline()  # type: ignore[union-attr]


def _docs_example() -> str:
    text = (ROOT / "docs" / "analyst.md").read_text()
    return re.search(r"```python\n(.*?)```", text, re.S).group(1)  # type: ignore[union-attr]


@pytest.fixture(name="pki")
def _pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path / "pki")


@pytest.fixture(name="collector")
def _collector(tmp_path: Path, pki: Pki):  # type: ignore[no-untyped-def]
    port = free_port()
    proc = _serve(tmp_path, pki, f"sqlite:///{tmp_path / 'collector.sqlite'}", port)
    yield port
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0


def test_tail_query_export(tmp_path: Path, pki: Pki, collector: int) -> None:
    """tail shows only what matches as it arrives; query and export return the same history."""
    port, analyst, agent = collector, pki.analyst(), pki.agent()
    tail = subprocess.Popen(_feed(analyst, port, "tail", "--json", "--min-severity", "high"),
                            stdout=subprocess.PIPE, text=True)
    try:
        assert json.loads(_line(tail)) == {"cursor": 0, "kind": "progress", "live": True}
        _deliver(tmp_path, agent, port, [
            finding("low", severity=Severity.LOW),
            finding("write", kind="policy.write-not-allowed", severity=Severity.HIGH,
                    techniques=("T0855",), client="10.0.0.66")])
        ev = json.loads(_line(tail))
        assert (ev["kind"], ev["severity"], ev["site"]) == ("finding", "high", "plant1")
        assert ev["finding"]["id"] == "write" and ev["finding"]["techniques"] == ["T0855"]
    finally:
        tail.terminate()
        tail.wait(10)
    query = subprocess.run(_feed(analyst, port, "query", "--since", "1h", "--json"),
                           capture_output=True, text=True, timeout=60, check=True)
    entries = [json.loads(x) for x in query.stdout.splitlines()]
    assert [e["finding"]["id"] for e in entries if e["kind"] == "finding"] == ["low", "write"]
    assert "continue with --after" in query.stderr
    out = tmp_path / "export.jsonl"
    subprocess.run(_feed(analyst, port, "export", "--format", "jsonl", "--out", str(out)),
                   capture_output=True, text=True, timeout=60, check=True)
    assert [json.loads(x) for x in out.read_text().splitlines()] == [
        e for e in entries if e["kind"] != "progress"]


def test_agent_certificate_refused_by_the_command(pki: Pki, collector: int) -> None:
    """An agent's certificate on `feed query` exits 1 with the collector's reason."""
    proc = subprocess.run(_feed(pki.agent(), collector, "query"), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1
    assert "refused our certificate" in proc.stderr and "analyst" not in proc.stdout


def test_docs_client_example(tmp_path: Path, pki: Pki, collector: int) -> None:
    """The Python client in docs/analyst.md prints a high finding of plant1 as it arrives, and
    after a restart carries on after the last cursor it saved."""
    analyst, agent = pki.analyst(), pki.agent()
    script = tmp_path / "client.py"
    script.write_text(_docs_example())
    state = tmp_path / "feed.cursor"
    env = {**os.environ, "FEED_STATE": str(state), "FEED_CA": str(analyst.ca),
           "FEED_KEY": str(analyst.key), "FEED_CERT": str(analyst.cert),
           "FEED_COLLECTOR": f"localhost:{collector}"}

    def start() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                                env=env)
    client = start()
    try:
        end = time.monotonic() + 20
        while not state.exists() and time.monotonic() < end:
            time.sleep(0.05)
        _deliver(tmp_path, agent, collector, [finding("x", severity=Severity.CRITICAL),
                                              finding("quiet", severity=Severity.INFO)])
        assert "SEVERITY_CRITICAL" in _line(client) and client.poll() is None
    finally:
        client.terminate()
        client.wait(10)
    _deliver(tmp_path, agent, collector, [finding("while-away", severity=Severity.HIGH)])
    client = start()
    try:
        line = _line(client)
        assert "SEVERITY_HIGH" in line and line.split()[0] == "3"  # after x (1) and quiet (2)
    finally:
        client.terminate()
        client.wait(10)
