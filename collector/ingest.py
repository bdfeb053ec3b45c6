"""The Ingest servicer: a thin adapter from the gRPC stream to a commit function.

Per batch it checks what only the stream can check (the certificate is still
not revoked, the batch speaks for the certificate's own agent), hands the batch
to ``commit`` and acks what ``commit`` says is committed.  Storage,
deduplication and merging live behind ``commit``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc

from otsentry.collector.auth import Peer, current_peer, refuse
from otsentry.collector.metrics import connected
from otsentry.collector.pki import RevocationList
import structlog

from otsentry.common.errors import MessageError
from otsentry.common.logging import get_logger
from otsentry.v1 import ingest_pb2, ingest_pb2_grpc

__all__ = ["IngestServicer", "Commit", "ack_all"]

def log() -> structlog.typing.FilteringBoundLogger:
    """This module's logger, looked up per call so that it follows ``configure()``."""
    return get_logger("collector.ingest")

#: (peer, batch) -> highest sequence number of ``batch.epoch`` now committed.
Commit = Callable[[Peer, ingest_pb2.Batch], Awaitable[int]]


async def ack_all(peer: Peer, batch: ingest_pb2.Batch) -> int:
    """A commit that stores nothing and acks every message (for tests of the transport)."""
    return batch.first_seq + len(batch.messages) - 1


class IngestServicer(ingest_pb2_grpc.IngestServicer):
    """Receives batches, commits them, and acks after the commit.

    Args:
        commit: stores a batch and returns the highest committed seq of its epoch.
        revocations: checked again on every batch, so that a certificate revoked
            while its stream is open is cut at its next batch.
    """

    def __init__(self, commit: Commit, revocations: RevocationList) -> None:
        self._commit = commit
        self._revocations = revocations

    async def Stream(self, request_iterator: AsyncIterator[ingest_pb2.Batch],
                     context: grpc.aio.ServicerContext) -> AsyncIterator[ingest_pb2.Ack]:
        """Commit each batch in order and yield its ack."""
        peer = current_peer()
        log().info("stream opened", agent=peer.identity.short, serial=peer.serial, peer=peer.address)
        with connected(peer.identity.short):
            async for batch in request_iterator:
                await self._check(peer, batch, context)
                try:
                    # Shielded: a stream that breaks mid-commit (agent killed, link cut) must not
                    # cancel the commit under way; it finishes, and the resend is deduplicated.
                    seq = await asyncio.shield(self._commit(peer, batch))
                except MessageError as exc:
                    await refuse(context, grpc.StatusCode.INVALID_ARGUMENT, "bad-message",
                                 str(exc), identity=peer.identity.short, epoch=batch.epoch,
                                 first_seq=batch.first_seq)
                yield ingest_pb2.Ack(epoch=batch.epoch, seq=seq, ingest_ns=time.time_ns())

    async def _check(self, peer: Peer, batch: ingest_pb2.Batch,
                     context: grpc.aio.ServicerContext) -> None:
        agent = peer.identity.short
        if self._revocations.is_revoked(peer.serial):
            await refuse(context, grpc.StatusCode.UNAUTHENTICATED, "revoked-while-connected",
                         f"certificate {peer.serial} of {agent} was revoked",
                         identity=agent, serial=peer.serial)
        if batch.agent_id != agent:
            await refuse(context, grpc.StatusCode.PERMISSION_DENIED, "agent-id-mismatch",
                         f"certificate of {agent} may not report as {batch.agent_id!r}",
                         identity=agent, claimed=batch.agent_id, serial=peer.serial)
        if batch.epoch == 0 or batch.first_seq == 0:
            await refuse(context, grpc.StatusCode.INVALID_ARGUMENT, "bad-batch",
                         "epoch and first_seq must be >= 1", identity=agent)
