"""Ingest over a real mTLS stream into the SQLite store: dedup, merge forward, ack after commit."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from otsentry.agent.outbox import Outbox
from otsentry.collector.ingest_store import IngestStore
from otsentry.collector.server import run_server
from otsentry.common.finding import Finding, Severity
from otsentry.common.tls import channel_credentials
from otsentry.v1 import convert, ingest_pb2, ingest_pb2_grpc
from tests.collector.conftest import Pki

AGENT = "site/plant1/agent/a1"


def _finding(fid: str, rev: int) -> Finding:
    return Finding(id=fid, revision=rev, kind="k", severity=Severity.MEDIUM, techniques=(),
                   first_seen_ns=1, last_seen_ns=rev * 10, count=rev, assets=(), summary="s")


def _batch(box: Outbox, entries: list) -> ingest_pb2.Batch:
    return ingest_pb2.Batch(agent_id=AGENT, epoch=box.epoch, first_seq=entries[0].seq,
                            messages=[convert.parse(ingest_pb2.Envelope, e.body) for e in entries])


async def _exchange(pki: Pki, store: IngestStore, batches: list[ingest_pb2.Batch]) -> list[int]:
    server, port = await run_server(pki.ca.dir, commit=store.commit)
    creds = pki.agent()
    try:
        async with grpc.aio.secure_channel(
                f"localhost:{port}", channel_credentials(creds.ca, creds.cert, creds.key)) as ch:
            call = ingest_pb2_grpc.IngestStub(ch).Stream(iter(batches), timeout=10)
            return [ack.seq async for ack in call]
    finally:
        await server.stop(None)


def test_resend_is_idempotent(pki: Pki, tmp_path: Path) -> None:
    """Batches resent after a lost ack are skipped; the final revision of each finding is stored once."""
    box = Outbox(tmp_path / "outbox.db")
    store = IngestStore(tmp_path / "collector.db")
    box.put_finding(_finding("a", 1))
    box.put_finding(_finding("b", 1))
    first = box.take(max_messages=2)
    box.put_finding(_finding("a", 2))
    box.put_finding(_finding("a", 3))  # supersedes revision 2 while pending
    second = box.take()
    # The connection "drops" before the acks arrive: the agent resends everything unacked.
    acks = asyncio.run(_exchange(pki, store, [_batch(box, first), _batch(box, second)]))
    assert acks == [2, 3]
    acks = asyncio.run(_exchange(pki, store, [_batch(box, box.unacked())]))
    assert acks == [3]
    box.ack(acks[-1])
    assert box.depth() == 0
    stored = store.findings()
    assert {k: (f.revision, f.count) for k, f in stored.items()} == {
        (AGENT, "a"): (3, 3), (AGENT, "b"): (1, 1)}
    assert all(f.times.ingest_ns > 0 for f in stored.values())


def test_older_revision_after_newer(pki: Pki, tmp_path: Path) -> None:
    """A late older revision (new epoch after a wipe) never moves a finding backwards."""
    store = IngestStore(tmp_path / "collector.db")
    new = ingest_pb2.Envelope(finding=convert.finding_to_proto(_finding("a", 5)))
    old = ingest_pb2.Envelope(finding=convert.finding_to_proto(_finding("a", 2)))
    asyncio.run(_exchange(pki, store, [
        ingest_pb2.Batch(agent_id=AGENT, epoch=1, first_seq=1, messages=[new]),
        ingest_pb2.Batch(agent_id=AGENT, epoch=2, first_seq=1, messages=[old]),
    ]))
    f = store.findings()[(AGENT, "a")]
    assert (f.revision, f.count, f.last_seen_ns) == (5, 5, 50)


def test_invalid_finding_refused(pki: Pki, tmp_path: Path) -> None:
    """A finding that breaks the model ends the stream with INVALID_ARGUMENT and nothing is stored."""
    store = IngestStore(tmp_path / "collector.db")
    bad = ingest_pb2.Envelope()
    bad.finding.id = "x"  # revision 0, count 0, no severity
    with pytest.raises(grpc.aio.AioRpcError) as err:
        asyncio.run(_exchange(pki, store, [
            ingest_pb2.Batch(agent_id=AGENT, epoch=1, first_seq=1, messages=[bad])]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert store.findings() == {}
