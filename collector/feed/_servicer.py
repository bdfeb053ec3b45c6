"""The Feed servicer: a thin adapter from ``Feed.Subscribe`` to pages of the feed log.

Per call: check the filter, find where to start (a cursor, a time, or the
head) and where to stop (a time, the head, or never), then loop: read one
page after the cursor in the hub's pool, send it, and when caught up wait for
the hub to see the head move.  Who may subscribe is the interceptor's
business (:mod:`otsentry.collector.auth`); a certificate revoked while its
stream is open is cut at the next page.
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
from otsentry.collector.feed._hub import FeedHub
from otsentry.collector.feed._query import cursor_since, cursor_until, filter_from_proto, read_page
from otsentry.collector.pki import RevocationList
from otsentry.collector.store import FeedFilter, head
from otsentry.common.errors import MessageError
from otsentry.common.logging import get_logger
from otsentry.v1 import feed_pb2, feed_pb2_grpc

__all__ = ["FeedServicer"]


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


def _progress(cursor: int, live: bool) -> feed_pb2.FeedEvent:
    return feed_pb2.FeedEvent(cursor=cursor, progress=feed_pb2.Progress(live=live))


class FeedServicer(feed_pb2_grpc.FeedServicer):
    """Serves ``Feed.Subscribe`` from the store through ``hub``.

    Args:
        hub: this process's :class:`FeedHub` (started).
        revocations: re-checked before every page.
        page: most events read (and held) per subscriber at a time.
        heartbeat_s: while nothing matches, a progress event at most this often.
    """

    def __init__(self, hub: FeedHub, revocations: RevocationList, *, page: int = 500,
                 heartbeat_s: float = 10.0) -> None:
        self._hub, self._revocations = hub, revocations
        self._page, self._heartbeat_s = page, heartbeat_s

    async def Subscribe(self, request: feed_pb2.SubscribeRequest,
                        context: grpc.aio.ServicerContext) -> AsyncIterator[feed_pb2.FeedEvent]:
        """Events in commit order from the request's start; see feed.proto."""
        peer = current_peer()
        try:
            filters = filter_from_proto(request.filter)
        except MessageError as exc:
            await refuse(context, grpc.StatusCode.INVALID_ARGUMENT, "bad-filter", str(exc),
                         identity=peer.identity.short)
        start, end = await self._read(context, partial(_bounds, request))
        log().info("feed subscribed", analyst=peer.identity.short, after=start, until=end,
                   peer=peer.address)
        cursor, sent = start, 0
        try:
            async for ev in self._follow(context, peer, filters, start, end):
                cursor, sent = ev.cursor, sent + 1
                yield ev
        finally:
            log().info("feed closed", analyst=peer.identity.short, cursor=cursor, events=sent)

    async def _follow(self, context: grpc.aio.ServicerContext, peer: Peer, filters: FeedFilter,
                      cursor: int, end: int | None) -> AsyncIterator[feed_pb2.FeedEvent]:
        live, told, told_at = False, cursor, time.monotonic()
        while True:
            if self._revocations.is_revoked(peer.serial):
                await refuse(context, grpc.StatusCode.UNAUTHENTICATED, "revoked-while-connected",
                             f"certificate {peer.serial} of {peer.identity.short} was revoked",
                             identity=peer.identity.short, serial=peer.serial)
            page = await self._read(context, partial(read_page, after=cursor, filters=filters,
                                                     limit=self._page, end=end))
            for ev in page.events:
                yield ev
            if page.events:
                told, told_at = page.events[-1].cursor, time.monotonic()
            cursor = page.scanned
            if end is not None and cursor >= end:
                yield _progress(cursor, False)
                return
            if cursor < page.head:
                continue  # a full page: more is waiting
            if not live or (cursor > told and time.monotonic() - told_at >= self._heartbeat_s):
                live, told, told_at = True, cursor, time.monotonic()
                yield _progress(cursor, True)
            await self._hub.wait(cursor, self._heartbeat_s)

    async def _read(self, context: grpc.aio.ServicerContext, fn):  # type: ignore[no-untyped-def]
        try:
            return await self._hub.run(fn)
        except SQLAlchemyError as exc:
            await refuse(context, grpc.StatusCode.UNAVAILABLE, "store-unavailable",
                         "the collector's store cannot be read right now; subscribe again "
                         "with after = the last cursor received", error=str(exc).splitlines()[0])
