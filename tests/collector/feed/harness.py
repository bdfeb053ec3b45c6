"""A real collector for the feed tests: store, hub and gRPC server with real certificates.

    async with Collector(db_url, pki) as c:
        await c.ingest(batch(A1, 1, 1, [finding("f1")]))        # the real Ingest stream
        events = await c.collect(SubscribeRequest(after=0, history_only=True))
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from otsentry.collector.feed import FeedClient, FeedHub
from otsentry.collector.server import run_server
from otsentry.collector.store import Store
from otsentry.common.tls import channel_credentials
from otsentry.v1 import feed_pb2, ingest_pb2, ingest_pb2_grpc
from tests.collector.conftest import Creds, Pki


class Collector:
    """One replica: a Store on ``url``, its FeedHub and run_server(feed=hub) on a free port.

    ``cache_entries`` bounds the hub's cache of the head (small: subscribers fall behind it).
    """

    _made = 0

    def __init__(self, url: str, pki: Pki, *, poll_s: float = 0.5, recheck_s: float = 1.0,
                 cache_entries: int = 20_000) -> None:
        self.url, self.pki, self.poll_s, self.recheck_s = url, pki, poll_s, recheck_s
        self.cache_entries = cache_entries
        self.agent_creds = pki.agent()
        Collector._made += 1
        self.analyst_creds = pki.analyst(f"ana{Collector._made}")

    async def __aenter__(self) -> Collector:
        self.store = Store(self.url, on_commit=lambda: self.hub.poke())
        self.hub = FeedHub(self.store.engine, poll_s=self.poll_s, recheck_s=self.recheck_s,
                           cache_entries=self.cache_entries)
        await self.hub.start()
        self.server, self.port = await run_server(self.pki.ca.dir, commit=self.store.commit,
                                                  feed=self.hub)
        self.address = f"localhost:{self.port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.server.stop(None)
        await self.hub.stop()
        await asyncio.to_thread(self.store.close)

    def client(self, creds: Creds | None = None) -> FeedClient:
        """A feed client with ``creds`` (default: the analyst's)."""
        c = creds or self.analyst_creds
        return FeedClient(self.address, ca=c.ca, cert=c.cert, key=c.key)

    async def ingest(self, *batches: ingest_pb2.Batch) -> list[int]:
        """Send batches over the real Ingest stream with the agent's certificate; the acks."""
        c = self.agent_creds
        async with grpc.aio.secure_channel(self.address,
                                           channel_credentials(c.ca, c.cert, c.key)) as ch:
            return [a.seq async for a in ingest_pb2_grpc.IngestStub(ch).Stream(iter(batches),
                                                                              timeout=30)]

    async def collect(self, request: feed_pb2.SubscribeRequest,
                      creds: Creds | None = None) -> list[feed_pb2.FeedEvent]:
        """Every event of a bounded request (history_only or until_ns), progress excluded."""
        out = []
        async with asyncio.timeout(30):
            async for ev in self.client(creds).events(request):
                if ev.WhichOneof("body") != "progress":
                    out.append(ev)
        return out


async def live(events: AsyncIterator[feed_pb2.FeedEvent]) -> int:
    """Consume events up to the first live progress event; its cursor."""
    async for ev in events:
        if ev.WhichOneof("body") == "progress" and ev.progress.live:
            return ev.cursor
    raise AssertionError("the stream ended before it went live")


__all__ = ["Collector", "live"]
