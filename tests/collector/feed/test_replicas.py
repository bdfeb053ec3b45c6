"""Replicas on one PostgreSQL, and subscribers that do not keep up."""

from __future__ import annotations

import asyncio
import time

import grpc

from otsentry.collector.store.testing import PostgresCluster
from otsentry.v1 import feed_pb2
from tests.collector.conftest import Pki
from tests.collector.databases import _TEMPLATE
from tests.collector.feed.harness import Collector, live
from tests.collector.store.helpers import A1, batch, finding


def test_subscriber_on_a_sees_commit_via_b(pg_cluster: PostgresCluster, pki: Pki) -> None:
    """A subscriber on replica A gets what an agent delivered to replica B within 0.5 s, five
    times in a row.  A polls every 60 s and re-checks the head every 3 s, so only LISTEN/NOTIFY
    can wake it that fast (by chance: (0.5/3)^5, about 1 in 8000)."""
    url = pg_cluster.create_database(template=_TEMPLATE)

    async def main() -> tuple[list[str], list[float]]:
        async with Collector(url, pki, poll_s=60, recheck_s=3) as a, Collector(url, pki) as b:
            stream = a.client().events(feed_pb2.SubscribeRequest())
            await live(stream)
            got, took = [], []
            for i in range(5):
                await asyncio.sleep(0.3 + 0.37 * i)  # spread over A's re-check cycle
                t0 = time.monotonic()
                await b.ingest(batch(A1, 1, 1 + i, [finding(f"via-b-{i}")]))
                async with asyncio.timeout(10):
                    async for ev in stream:
                        if ev.HasField("finding"):
                            got.append(ev.finding.id)
                            break
                took.append(time.monotonic() - t0)
            await stream.aclose()
            return got, took
    got, took = asyncio.run(main())
    assert got == [f"via-b-{i}" for i in range(5)]
    assert max(took) < 0.5, took


def test_stalled_subscriber_does_not_block_ingest(db_url: str, pki: Pki) -> None:
    """A subscriber that reads nothing while 20,000 findings are ingested holds up neither ingest
    nor a second subscriber, and still gets every finding once it reads."""
    async def main() -> tuple[int, int, float]:
        async with Collector(db_url, pki) as c:
            async with grpc.aio.secure_channel(c.address, c.client()._creds) as ch:
                from otsentry.v1 import feed_pb2_grpc

                stalled = feed_pb2_grpc.FeedStub(ch).Subscribe(feed_pb2.SubscribeRequest(after=0))
                await stalled.read()  # opened and live; then left unread
                other = c.client().events(feed_pb2.SubscribeRequest())
                await live(other)
                t0 = time.monotonic()
                for i in range(20):
                    await c.ingest(batch(A1, 1, 1 + 1000 * i,
                                         [finding(f"f{i}-{k}") for k in range(1000)]))
                took = time.monotonic() - t0
                seen = 0
                async with asyncio.timeout(60):
                    async for ev in other:
                        seen += ev.HasField("finding")
                        if seen == 20_000:
                            break
                await other.aclose()
                late = 0
                async with asyncio.timeout(60):
                    while late < 20_000:
                        got = await stalled.read()
                        late += sum(ev.HasField("finding") for ev in got.events)
                stalled.cancel()
                return seen, late, took
    seen, late, took = asyncio.run(main())
    assert (seen, late) == (20_000, 20_000)
    assert took < 30, f"ingest took {took:.1f} s"
