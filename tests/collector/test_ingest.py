"""The Ingest servicer's refusals and the store's group commit, over real mTLS streams."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from otsentry.collector.ingest_store import IngestStore
from otsentry.collector.server import run_server
from otsentry.common.tls import channel_credentials
from otsentry.v1 import ingest_pb2, ingest_pb2_grpc, inventory_pb2
from tests.collector.conftest import Pki


def _delta(n: int, size: int = 0) -> ingest_pb2.Envelope:
    return ingest_pb2.Envelope(inventory=inventory_pb2.InventoryDelta(
        revision=n, attributes={"pad": "x" * size} if size else {}))


async def _stream(port: int, pki: Pki, agent: str, batches: list[ingest_pb2.Batch]) -> list[int]:
    site, name = agent.split("/")[1], agent.split("/")[3]
    creds = pki.agent(site, name)
    async with grpc.aio.secure_channel(
            f"localhost:{port}", channel_credentials(creds.ca, creds.cert, creds.key)) as ch:
        call = ingest_pb2_grpc.IngestStub(ch).Stream(iter(batches), timeout=20)
        return [ack.seq async for ack in call]


def test_oversized_batch_refused(pki: Pki, tmp_path: Path) -> None:
    """A batch above the server's message limit ends the stream with RESOURCE_EXHAUSTED."""
    store = IngestStore(tmp_path / "c.db")
    big = ingest_pb2.Batch(agent_id="site/p/agent/a", epoch=1, first_seq=1,
                           messages=[_delta(1, 200_000)])

    async def main() -> None:
        server, port = await run_server(pki.ca.dir, commit=store.commit,
                                        max_message_bytes=64 * 1024)
        try:
            await _stream(port, pki, "site/p/agent/a", [big])
        finally:
            await server.stop(None)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        asyncio.run(main())
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in (err.value.details() or "")
    assert store.streams() == {}


def test_group_commit_shares_transactions(pki: Pki, tmp_path: Path) -> None:
    """Twenty agents streaming at once commit in fewer transactions than batches, each message once."""
    store = IngestStore(tmp_path / "c.db")
    agents = [f"site/p/agent/a{i}" for i in range(20)]

    def batches(agent: str) -> list[ingest_pb2.Batch]:
        return [ingest_pb2.Batch(agent_id=agent, epoch=3, first_seq=1 + 10 * k,
                                 messages=[_delta(j) for j in range(10)]) for k in range(10)]

    async def main() -> list[list[int]]:
        server, port = await run_server(pki.ca.dir, commit=store.commit)
        try:
            return await asyncio.gather(*(_stream(port, pki, a, batches(a)) for a in agents))
        finally:
            await server.stop(None)
    acks = asyncio.run(main())
    assert all(a[-1] == 100 for a in acks)
    assert store.batches == 200 and store.transactions < 200
    assert set(store.streams().values()) == {(100, 100)}
