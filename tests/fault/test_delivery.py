"""Exactly-once effect under faults: real processes, real certificates, kill -9 and a faulty link.

Each test replays a capture that yields about 650 findings (700 revisions)
through a real agent process into a real collector process, injects faults at
seeded random points, and compares the collector's final state per finding id
with what the agent's pipeline produces: none lost, none duplicated.
"""

from __future__ import annotations

import os
import random
import socket
import ssl
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from otsentry.common.tls import channel_credentials
from tests.fault.conftest import record
from tests.fault.harness import Plant, Proxy, compare, expected_findings

SEED = int(os.environ.get("OTSENTRY_FAULT_SEED", "20261124"))


def _finish(plant: Plant, name: str, faults: int) -> None:
    plant.wait_agent()
    plant.stop()
    out = compare(plant.root / "store.sqlite")
    record(name, faults, out.expected, len(out.lost), len(out.duplicated))
    assert out.expected > 500
    assert out.lost == [] and out.duplicated == []
    assert out.stored == out.expected


def test_agent_killed_and_restarted(plant_root: Path) -> None:
    """kill -9 of the agent at random points, then a restart: every finding arrives once, final."""
    rng = random.Random(SEED)
    plant = Plant(plant_root)
    faults = 0
    try:
        plant.start_collector()
        for _ in range(6):
            plant.start_agent()
            time.sleep(rng.uniform(0.8, 4.5))
            assert plant.agent is not None and plant.agent.poll() is None, plant.tail()
            plant.kill(plant.agent)
            faults += 1
        plant.start_agent()
        _finish(plant, "agent kill -9", faults)
    finally:
        plant.stop()


def test_collector_killed_and_restarted(plant_root: Path) -> None:
    """kill -9 of the collector mid-stream, restarted on its port: the agent resends, nothing doubles."""
    rng = random.Random(SEED + 1)
    plant = Plant(plant_root, speed=90.0)
    faults = 0
    try:
        plant.start_collector()
        plant.start_agent()
        for _ in range(8):
            time.sleep(rng.uniform(0.3, 1.2))
            plant.kill(plant.collector)
            faults += 1
            time.sleep(rng.uniform(0.0, 0.5))
            plant.start_collector()
        _finish(plant, "collector kill -9", faults)
    finally:
        plant.stop()


def test_link_dropped_stalled_reset(plant_root: Path) -> None:
    """A proxy on the link closes, stalls and resets connections mid-stream; delivery still exact."""
    rng = random.Random(SEED + 2)
    plant = Plant(plant_root, speed=90.0)
    proxy = Proxy(plant.port)
    plant.agent_port = proxy.port
    plant.write_agent_config()
    kinds = ["drop"] * 5 + ["stall"] * 3 + ["reset"] * 6
    rng.shuffle(kinds)
    faults = 0
    try:
        plant.start_collector()
        plant.start_agent()
        for kind in kinds:
            time.sleep(rng.uniform(0.2, 0.9))
            while not proxy.conns and plant.agent is not None and plant.agent.poll() is None:
                time.sleep(0.02)  # the agent is between connections: wait for the next one
            if proxy.fault(kind, stall_s=2.0):
                faults += 1
        _finish(plant, "link drop/stall/reset", faults)
        assert faults == len(kinds)
    finally:
        plant.stop()
        proxy.close()


def test_slow_collector_memory_bounded(plant_root: Path) -> None:
    """Acks delayed by the link: the backlog waits on disk, in flight stays bounded, memory flat."""
    plant = Plant(plant_root, link={"max_unacked_batches": 2, "ack_timeout": "5s"})
    proxy = Proxy(plant.port, delay_s=0.15)
    plant.agent_port = proxy.port
    plant.write_agent_config()
    samples: list[dict] = []
    try:
        plant.start_collector()
        plant.start_agent(speed=0)
        assert plant.agent is not None
        while plant.agent.poll() is None:
            st = plant.status()
            if st.get("outbox"):
                samples.append(st)
            time.sleep(0.1)
        _finish(plant, "slow collector", 0)
    finally:
        plant.stop()
        proxy.close()
    depth = max(s["outbox"]["depth"] for s in samples)
    in_flight = max(s["outbox"]["in_flight"] for s in samples)
    rss = [s["memory_rss_bytes"] for s in samples]
    assert depth >= 300, "the backlog should have waited in the outbox on disk"
    assert in_flight <= 2 * 10, "no more than max_unacked_batches x batch_messages in flight"
    assert max(rss) - min(rss) < 40 << 20


def test_garbage_on_the_grpc_port(plant_root: Path) -> None:
    """Random bytes, a plain-text HTTP request and a half TLS handshake leave the collector serving."""
    rng = random.Random(SEED + 3)
    plant = Plant(plant_root)
    try:
        plant.start_collector()
        for payload in [rng.randbytes(4096), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + rng.randbytes(100),
                        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + rng.randbytes(2000)]:
            with socket.create_connection(("127.0.0.1", plant.port), timeout=2) as s:
                s.sendall(payload)
                try:
                    s.recv(1024)
                except (TimeoutError, ConnectionError):
                    pass
        ctx = ssl.create_default_context(cafile=str(plant.root / "pki" / "ca.crt"))
        with socket.create_connection(("127.0.0.1", plant.port), timeout=2) as raw:
            try:
                with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                    tls.sendall(rng.randbytes(1000))  # TLS without a client cert, then junk
                    tls.recv(100)
            except (ssl.SSLError, ConnectionError, TimeoutError):
                pass
        assert plant.collector is not None and plant.collector.poll() is None
        tls_dir = plant.root / "state" / "tls"
        creds = channel_credentials(tls_dir / "ca.crt", tls_dir / "agent.crt", tls_dir / "agent.key")
        with grpc.secure_channel(f"localhost:{plant.port}", creds) as ch:
            reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(),
                                                         timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        expected_findings()  # warm the cache here, off the clock of the timed tests
        plant.start_agent(speed=0)
        _finish(plant, "garbage on the port", 0)
    finally:
        plant.stop()
