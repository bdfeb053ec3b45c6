"""The shipper against a real collector server with real certificates on 127.0.0.1."""

from __future__ import annotations

import asyncio
import random
import socket
from dataclasses import replace
from pathlib import Path

import grpc
from structlog.testing import capture_logs

from otsentry.agent.outbox import Outbox
from otsentry.agent.shipper import Shipper, encode_batch
from otsentry.collector.ingest_store import IngestStore
from otsentry.collector.server import run_server
from otsentry.common.config import CollectorLink
from otsentry.common.finding import Evidence, Finding, Severity
from otsentry.v1 import ingest_pb2, inventory_pb2, status_pb2
from tests.collector.conftest import Pki, _pki  # noqa: F401  (the pki fixture)

AGENT = "site/plant1/agent/a1"


def _finding(i: int, rev: int = 1, pcap: bytes = b"") -> Finding:
    return Finding(id=f"f{i}", revision=rev, kind="k", severity=Severity(i % 5), techniques=(),
                   first_seen_ns=1, last_seen_ns=rev, count=rev, assets=(), summary="s",
                   evidence=Evidence.make(pcap=pcap))


def _link(pki: Pki, ports: list[int], **kw: object) -> CollectorLink:
    creds = pki.agent()
    base = CollectorLink(endpoints=tuple(f"localhost:{p}" for p in ports), ca=creds.ca,
                         cert=creds.cert, key=creds.key, batch_messages=50, batch_linger_s=0.01,
                         backoff_initial_s=0.05, backoff_max_s=0.2, connect_timeout_s=1.0,
                         ack_timeout_s=2.0)
    return replace(base, **kw)  # type: ignore[arg-type]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _until_empty(ship: Shipper, stop: asyncio.Event, timeout: float = 20) -> None:
    async def wait() -> None:
        while (await ship.outbox_stats())["depth"]:
            await asyncio.sleep(0.05)
    try:
        await asyncio.wait_for(wait(), timeout)
    finally:
        stop.set()


def _fill(path: Path, n: int) -> None:
    box = Outbox(path)
    box.put_many([_finding(i) for i in range(n)],
                 [ingest_pb2.Envelope(inventory=inventory_pb2.InventoryDelta(revision=i))
                  for i in range(n // 10)])
    box.close()


def test_delivers_everything_once(pki: Pki, tmp_path: Path) -> None:
    """Every message reaches the store exactly once and the outbox ends empty."""
    _fill(tmp_path / "out.db", 500)
    store = IngestStore(tmp_path / "c.db")

    async def main() -> None:
        server, port = await run_server(pki.ca.dir, commit=store.commit)
        ship = Shipper(tmp_path / "out.db", AGENT, _link(pki, [port]), rng=random.Random(1))
        stop = asyncio.Event()
        await asyncio.gather(ship.run(stop), _until_empty(ship, stop))
        await server.stop(None)
    asyncio.run(main())
    assert len(store.findings()) == 500 and store.inventory_count() == 50
    [(hwm, count)] = store.streams().values()
    assert hwm == count == 550


def test_resends_after_collector_restart(pki: Pki, tmp_path: Path) -> None:
    """A collector that goes away mid-stream and comes back on its port loses and doubles nothing."""
    _fill(tmp_path / "out.db", 2000)
    store = IngestStore(tmp_path / "c.db")
    port = _free_port()

    async def main() -> None:
        server, _ = await run_server(pki.ca.dir, port=port, commit=store.commit)
        ship = Shipper(tmp_path / "out.db", AGENT, _link(pki, [port], batch_messages=20),
                       rng=random.Random(2))
        stop = asyncio.Event()
        runner = asyncio.ensure_future(ship.run(stop))
        while not store.streams():
            await asyncio.sleep(0.01)
        await server.stop(None)
        await asyncio.sleep(0.3)
        server, _ = await run_server(pki.ca.dir, port=port, commit=store.commit)
        await _until_empty(ship, stop)
        await runner
        await server.stop(None)
        assert ship.state.connects >= 2
    asyncio.run(main())
    [(hwm, count)] = store.streams().values()
    assert hwm == count == 2200 and len(store.findings()) == 2000


def test_fails_over_to_the_next_endpoint(pki: Pki, tmp_path: Path) -> None:
    """With the first collector down, the agent delivers to the next one."""
    _fill(tmp_path / "out.db", 100)
    store = IngestStore(tmp_path / "c.db")

    async def main() -> None:
        server, port = await run_server(pki.ca.dir, commit=store.commit)
        dead = _free_port()
        ship = Shipper(tmp_path / "out.db", AGENT, _link(pki, [dead, port, dead]))
        stop = asyncio.Event()
        await asyncio.gather(ship.run(stop), _until_empty(ship, stop))
        await server.stop(None)
        assert ship.state.endpoint == f"localhost:{port}"
    asyncio.run(main())
    assert len(store.findings()) == 100


def test_splits_below_the_collector_limit(pki: Pki, tmp_path: Path) -> None:
    """Batches larger than the collector accepts are refused, re-split smaller and then delivered."""
    box = Outbox(tmp_path / "out.db")
    box.put_many([_finding(i, pcap=bytes(30_000)) for i in range(40)], [])
    box.close()
    store = IngestStore(tmp_path / "c.db")

    async def main() -> None:
        server, port = await run_server(pki.ca.dir, commit=store.commit,
                                        max_message_bytes=256 * 1024)
        ship = Shipper(tmp_path / "out.db", AGENT, _link(pki, [port], batch_bytes=1 << 20))
        stop = asyncio.Event()
        with capture_logs() as logs:
            await asyncio.gather(ship.run(stop), _until_empty(ship, stop))
        await server.stop(None)
        assert ship.state.max_batch_bytes <= 256 * 1024
        assert any("RESOURCE_EXHAUSTED" in str(e.get("reason")) for e in logs)
    asyncio.run(main())
    assert len(store.findings()) == 40


def test_status_and_clock_skew(pki: Pki, tmp_path: Path) -> None:
    """AgentStatus is queued periodically; the collector stores it with a skew estimate."""
    Outbox(tmp_path / "out.db").close()
    store = IngestStore(tmp_path / "c.db")

    async def main() -> None:
        server, port = await run_server(pki.ca.dir, commit=store.commit)
        ship = Shipper(tmp_path / "out.db", AGENT, _link(pki, [port], status_interval_s=0.1),
                       status=lambda: status_pb2.AgentStatus(version="t", outbox_depth=3))
        stop = asyncio.Event()
        runner = asyncio.ensure_future(ship.run(stop))
        for _ in range(200):
            if store.status(AGENT):
                break
            await asyncio.sleep(0.02)
        stop.set()
        await runner
        await server.stop(None)
    asyncio.run(main())
    skew, status = store.status(AGENT)  # type: ignore[misc]
    assert status.version == "t" and abs(skew) < 5e9


def test_encode_batch_matches_protobuf() -> None:
    """A batch made from serialized envelopes parses as the same Batch protobuf would make."""
    envs = [ingest_pb2.Envelope(queued_ns=i, inventory=inventory_pb2.InventoryDelta(revision=i))
            for i in range(1, 300)]
    data = encode_batch(AGENT, 9, 5, [e.SerializeToString() for e in envs], 77)
    assert ingest_pb2.Batch.FromString(data) == ingest_pb2.Batch(
        agent_id=AGENT, epoch=9, first_seq=5, messages=envs, sent_ns=77)
