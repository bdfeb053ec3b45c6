"""The Feed servicer: a thin adapter from ``Feed.Subscribe`` to slices of the feed log.

Per call: check the filter, find where to start (a cursor, a time, or the
head) and where to stop (a time, the head, or never), then loop: take the
next events after the cursor from the hub's cache of the head, or read one
page in the hub's pool when behind it; send them as one ``FeedBatch`` (or a
few, if large); and when caught up wait for the hub to see the head move.
Who may subscribe is the interceptor's business
(:mod:`otsentry.collector.auth`); a certificate revoked while its stream is
open is cut at the next batch.

Events are sent as frames made once per event and joined per subscriber
(:func:`~._query.event_frame`), so the handler's response serializer takes
bytes as they are: register it with :func:`add_feed_to_server`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from functools import partial

import grpc
import structlog
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from otsentry.collector.auth import Peer, current_peer, refuse
from otsentry.collector.feed._hub import FeedHub, Slice
from otsentry.collector.feed._query import (cursor_since, cursor_until, event_frame,
                                            filter_from_proto, read_page)
from otsentry.collector.pki import RevocationList
from otsentry.collector.store import FeedFilter, head
from otsentry.common.errors import MessageError
from otsentry.common.logging import get_logger
from otsentry.v1 import feed_pb2, feed_pb2_grpc

__all__ = ["FeedServicer", "add_feed_to_server"]

#: Most bytes of events per stream message (one event larger than this goes alone); well
#: under gRPC's default 4 MiB receive limit.
BATCH_BYTES = 1 << 20


def log() -> structlog.typing.FilteringBoundLogger:
    """This module's logger, looked up per call so that it follows ``configure()``."""
    return get_logger("collector.feed")


def _bounds(request: feed_pb2.SubscribeRequest, conn: Connection) -> tuple[int, int | None]:
    """(cursor to start after, last cursor to send or None to follow live)."""
    if request.HasField("after"):
        start = request.after
    elif request.since_ns:
        start = cursor_since(conn, request.since_ns)
    else:
        start = head(conn)
    ends = [head(conn)] if request.history_only else []
    if request.until_ns:
        ends.append(cursor_until(conn, request.until_ns))
    return start, min(ends) if ends else None


def _progress(cursor: int, live: bool) -> bytes:
    return event_frame(feed_pb2.FeedEvent(cursor=cursor, progress=feed_pb2.Progress(live=live)))


def _batches(frames: list[bytes]) -> list[bytes]:
    """Serialized FeedBatches of ``frames`` in order, each at most BATCH_BYTES (or one frame)."""
    out, start, size = [], 0, 0
    for i, f in enumerate(frames):
        if size and size + len(f) > BATCH_BYTES:
            out.append(b"".join(frames[start:i]))
            start, size = i, 0
        size += len(f)
    if start < len(frames):
        out.append(b"".join(frames[start:]))
    return out


def _as_is(data: bytes) -> bytes:
    return data


def add_feed_to_server(servicer: FeedServicer, server: grpc.aio.Server) -> None:
    """Register ``servicer`` as ``otsentry.v1.Feed``: like the generated
    ``add_FeedServicer_to_server``, but responses are already serialized FeedBatches."""
    handlers = {"Subscribe": grpc.unary_stream_rpc_method_handler(
        servicer.Subscribe, request_deserializer=feed_pb2.SubscribeRequest.FromString,
        response_serializer=_as_is)}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("otsentry.v1.Feed",
                                                                          handlers),))
    server.add_registered_method_handlers("otsentry.v1.Feed", handlers)


class FeedServicer(feed_pb2_grpc.FeedServicer):
    """Serves ``Feed.Subscribe`` from the store through ``hub``.

    Args:
        hub: this process's :class:`FeedHub` (started).
        revocations: re-checked before every batch.
        page: most events taken (and held) per subscriber at a time.
        heartbeat_s: while nothing matches, a progress event at most this often.
    """

    def __init__(self, hub: FeedHub, revocations: RevocationList, *, page: int = 500,
                 heartbeat_s: float = 10.0) -> None:
        self._hub, self._revocations = hub, revocations
        self._page, self._heartbeat_s = page, heartbeat_s

    async def Subscribe(self, request: feed_pb2.SubscribeRequest,
                        context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        """Batches of events in commit order from the request's start; see feed.proto."""
        peer = current_peer()
        try:
            filters = filter_from_proto(request.filter)
        except MessageError as exc:
            await refuse(context, grpc.StatusCode.INVALID_ARGUMENT, "bad-filter", str(exc),
                         identity=peer.identity.short)
        start, end = await self._read(context, partial(_bounds, request))
        log().info("feed subscribed", analyst=peer.identity.short, after=start, until=end,
                   peer=peer.address)
        cursor, sent, reads = start, 0, [0]
        try:
            async for got, frames in self._follow(context, peer, filters, start, end,
                                                  request.pcap, reads):
                for data in _batches(frames):
                    yield data
                cursor, sent = got.scanned, sent + len(got.frames)
        finally:
            log().info("feed closed", analyst=peer.identity.short, cursor=cursor, events=sent,
                       store_reads=reads[0])

    async def _follow(self, context: grpc.aio.ServicerContext, peer: Peer, filters: FeedFilter,
                      cursor: int, end: int | None, pcap: bool,
                      reads: list[int]) -> AsyncIterator[tuple[Slice, list[bytes]]]:
        """(slice, its frames plus any progress event) until the end, if any; counts the
        pages read from the store (behind the hub's cache) in ``reads[0]``."""
        live, told, told_at = False, cursor, time.monotonic()
        while True:
            if self._revocations.is_revoked(peer.serial):
                await refuse(context, grpc.StatusCode.UNAUTHENTICATED, "revoked-while-connected",
                             f"certificate {peer.serial} of {peer.identity.short} was revoked",
                             identity=peer.identity.short, serial=peer.serial)
            got = self._hub.take(cursor, filters, pcap=pcap, limit=self._page, end=end)
            if got is None:
                reads[0] += 1
                got = await self._read_page(context, filters, cursor, end, pcap)
            frames = got.frames
            if frames:
                told, told_at = got.last, time.monotonic()
            cursor = got.scanned
            if end is not None and cursor >= end:
                yield got, [*frames, _progress(cursor, False)]
                return
            if cursor < got.head:
                yield got, frames  # a full page: more is waiting
                continue
            if not live or (cursor > told and time.monotonic() - told_at >= self._heartbeat_s):
                live, told, told_at = True, cursor, time.monotonic()
                frames = [*frames, _progress(cursor, True)]
            if frames:
                yield got, frames
            await self._hub.wait(cursor, self._heartbeat_s)

    async def _read_page(self, context: grpc.aio.ServicerContext, filters: FeedFilter,
                         cursor: int, end: int | None, pcap: bool) -> Slice:
        """One page from the store, for a subscriber behind the hub's cache."""
        page = await self._read(context, partial(read_page, after=cursor, filters=filters,
                                                 limit=self._page, end=end, pcap=pcap))
        return Slice([event_frame(ev) for ev in page.events],
                     page.events[-1].cursor if page.events else cursor, page.scanned, page.head)

    async def _read(self, context: grpc.aio.ServicerContext, fn):  # type: ignore[no-untyped-def]
        try:
            return await self._hub.run(fn)
        except SQLAlchemyError as exc:
            await refuse(context, grpc.StatusCode.UNAVAILABLE, "store-unavailable",
                         "the collector's store cannot be read right now; subscribe again "
                         "with after = the last cursor received", error=str(exc).splitlines()[0])
