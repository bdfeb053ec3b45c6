"""The running services as systemd and Prometheus see them: real processes, real sockets.

``otsentry-collector serve`` and ``otsentry-agent run`` each tell a real
AF_UNIX datagram socket (standing in for systemd's $NOTIFY_SOCKET) READY=1,
WATCHDOG=1 and, on SIGTERM, STOPPING=1; their /metrics endpoints are scraped
over HTTP and parsed with the Prometheus reference parser.
"""

from __future__ import annotations

import os
import signal
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fault.harness import PCAP, Plant, free_port, wait_port


class Notify:
    """A bound AF_UNIX datagram socket collecting what a service sends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.got: list[str] = []

    def wait_for(self, message: str, timeout: float = 30.0) -> None:
        """Receive until ``message`` arrived (or fail with what did)."""
        deadline = time.monotonic() + timeout
        while message not in self.got:
            left = deadline - time.monotonic()
            assert left > 0, f"no {message!r} in {self.got}"
            self.sock.settimeout(left)
            try:
                self.got.extend(self.sock.recv(4096).decode().splitlines())
            except TimeoutError:
                pass


def scrape(port: int) -> dict[str, float]:
    """``name{labels}`` -> value of every sample at http://127.0.0.1:PORT/metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as rsp:
        text = rsp.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def until(check: Callable[[], bool], what: str, timeout: float = 40.0) -> None:
    """Poll ``check`` until true."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _tail(plant: Plant) -> str:
    return "\n".join(p.read_text()[-1500:] for p in plant.logs)


@pytest.fixture(name="plant")
def _plant(tmp_path: Path) -> Iterator[Plant]:
    # No periodic status messages after the first: the outbox then drains to 0 and stays.
    plant = Plant(tmp_path, link={"status_interval": "1h"})
    yield plant
    plant.stop()


def _spawn_with(plant: Plant, notify: Notify, spawn: Callable[[], None]) -> None:
    """Start a process with $NOTIFY_SOCKET and a 1 s watchdog in its environment."""
    saved = {k: os.environ.get(k) for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    os.environ.update(NOTIFY_SOCKET=str(notify.path), WATCHDOG_USEC="1000000")
    try:
        spawn()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_services_notify_systemd_and_serve_metrics(plant: Plant, tmp_path: Path) -> None:
    """Both services report READY, ping the watchdog, say STOPPING on SIGTERM; metrics add up."""
    cport, aport = free_port(), free_port()
    with (plant.root / "collector.toml").open("a") as f:
        f.write(f'[metrics]\nlisten = "127.0.0.1:{cport}"\n')
    with (plant.root / "agent.toml").open("a") as f:
        f.write(f'[metrics]\nlisten = "127.0.0.1:{aport}"\n')
    cn, an = Notify(tmp_path / "collector.sock"), Notify(tmp_path / "agent.sock")

    _spawn_with(plant, cn, plant.start_collector)
    cn.wait_for("READY=1")
    cn.wait_for("WATCHDOG=1")
    _spawn_with(plant, an, lambda: setattr(plant, "agent", plant._spawn("agent", [
        "otsentry.agent.cli", "--log-format", "json", "run", "--config", "agent.toml",
        "--pcap", str(PCAP), "--speed", "175", "--keep-running"])))
    an.wait_for("READY=1")
    an.wait_for("WATCHDOG=1")
    wait_port(aport)

    last: dict[str, float] = {}

    def delivered() -> bool:
        last.update(scrape(aport))
        return (last["otsentry_agent_capture_running"] == 0
                and last["otsentry_agent_outbox_depth"] == 0
                and last["otsentry_agent_finding_revisions_total"] > 0)

    try:
        until(delivered, "the agent to replay and deliver everything", 60)
    except AssertionError:
        raise AssertionError(f"{last}\n{_tail(plant)}") from None
    a, c = scrape(aport), scrape(cport)
    assert a["otsentry_agent_packets_total"] > 0
    until(lambda: plant.status().get("capture", {}).get("packets")
          == a["otsentry_agent_packets_total"], "the status file to show the same packet count", 10)
    assert a["otsentry_agent_flows_total"] > 0 and a["otsentry_agent_shipper_connected"] == 1
    # Every message sent was committed (a resend is committed again, and deduplicated).
    sent = a["otsentry_agent_shipper_messages_sent_total"]
    resent = a["otsentry_agent_shipper_messages_resent_total"]
    assert sent - resent <= c["otsentry_collector_messages_committed_total"] <= sent
    assert c["otsentry_collector_agents_connected"] == 1
    assert c["otsentry_collector_streams_open"] == 1
    assert c["otsentry_collector_batches_committed_total"] > 0
    assert c["otsentry_collector_commit_queue_depth"] == 0
    assert c["otsentry_build_info{version=0.1.0}"] == 1

    assert plant.agent is not None
    plant.agent.send_signal(signal.SIGTERM)
    an.wait_for("STOPPING=1")
    assert plant.agent.wait(20) == 0
    until(lambda: scrape(cport)["otsentry_collector_agents_connected"] == 0,
          "the collector to see the agent go")
    assert plant.collector is not None
    plant.collector.send_signal(signal.SIGTERM)
    cn.wait_for("STOPPING=1")
    assert plant.collector.wait(20) == 0
