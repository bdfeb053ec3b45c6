"""The hub's cache of the head: subscribers inside it, behind it and crossing between the two get
every entry once; pcap slices only when asked; large batches split."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from structlog.testing import capture_logs

from otsentry.collector.feed._servicer import BATCH_BYTES, _batches
from otsentry.common.finding import Evidence, Severity
from otsentry.v1 import feed_pb2, finding_pb2
from tests.collector.conftest import Pki
from tests.collector.feed.harness import Collector, live
from tests.collector.store.helpers import A1, batch, finding

_HIGH = feed_pb2.FeedFilter(min_severity=finding_pb2.SEVERITY_HIGH)


def _finding(i: int):  # type: ignore[no-untyped-def]
    """High every third; each with a 16 KiB pcap slice (so that an unread stream fills up)."""
    f = finding(f"f{i}", severity=Severity.HIGH if i % 3 == 0 else Severity.LOW)
    return replace(f, evidence=replace(f.evidence, pcap=bytes(16384)))


class TestCache:
    def test_inside_behind_and_crossing(self, db_url: str, pki: Pki) -> None:
        """With a cache of 25 entries and 600 findings in 60 commits: a live subscriber, a live
        filtered one, one that asks for pcap slices and stops reading for 2 s after its first
        finding (its stream fills up, it falls behind the cache and catches up) and one that
        starts from the oldest afterwards each get exactly their findings, in order; the live
        ones are served from the cache (mostly: a busy host may delay one past it), the others
        read the store too."""
        async def main() -> dict[str, list[str]]:
            async with Collector(db_url, pki, cache_entries=25) as c:
                async def take(name: str, request: feed_pb2.SubscribeRequest, pause: float,
                               want: int) -> None:
                    stream = c.client().events(request)
                    async for ev in stream:
                        if ev.HasField("finding"):
                            got[name].append(ev.finding.id)
                            if len(got[name]) == want:
                                break
                        if pause and len(got[name]) == 1:
                            await asyncio.sleep(pause)  # the 9 MiB of slices meanwhile do not fit
                    await stream.aclose()

                got: dict[str, list[str]] = {"all": [], "high": [], "slow": [], "late": []}
                streams = [c.client().events(feed_pb2.SubscribeRequest(filter=f))
                           for f in (None, _HIGH, None)]
                start = [await live(s) for s in streams]
                for s in streams:
                    await s.aclose()
                tasks = [asyncio.create_task(take("all", feed_pb2.SubscribeRequest(
                             after=start[0]), 0, 600)),
                         asyncio.create_task(take("high", feed_pb2.SubscribeRequest(
                             after=start[1], filter=_HIGH), 0, 200)),
                         asyncio.create_task(take("slow", feed_pb2.SubscribeRequest(
                             after=start[2], pcap=True), 2.0, 600))]
                for i in range(60):
                    await c.ingest(batch(A1, 1, 1 + 10 * i, [_finding(10 * i + k)
                                                             for k in range(10)]))
                await take("late", feed_pb2.SubscribeRequest(after=0), 0, 600)
                async with asyncio.timeout(60):
                    await asyncio.gather(*tasks)
                return got
        with capture_logs() as logs:
            got = asyncio.run(main())
        every = [f"f{i}" for i in range(600)]
        assert got["all"] == every and got["slow"] == every and got["late"] == every
        assert got["high"] == [f"f{i}" for i in range(600) if i % 3 == 0]
        closed = [(e["events"], e["store_reads"]) for e in logs if e["event"] == "feed closed"]
        reads = sorted(r for n, r in closed if n in (200, 600))
        assert len(reads) == 4 and reads[1] < 10 and reads[2] > 0, closed  # live ones: cache


class TestPcap:
    def test_only_when_asked(self, db_url: str, pki: Pki) -> None:
        """A finding's pcap slice is left out of live and history events unless the request sets
        pcap; the rest of the evidence comes either way."""
        slice_ = b"\xd4\xc3\xb2\xa1" + bytes(2000)
        f = finding("p1", client="10.0.0.5")
        f = replace(f, evidence=replace(f.evidence, pcap=slice_, unit=1))

        async def main() -> list[feed_pb2.FeedEvent]:
            async with Collector(db_url, pki) as c:
                streams = [c.client().events(feed_pb2.SubscribeRequest(pcap=p)) for p in (False, True)]
                for s in streams:
                    await live(s)
                await c.ingest(batch(A1, 1, 1, [f]))
                out = []
                async with asyncio.timeout(10):
                    for s in streams:
                        out.append(await anext(s))
                        await s.aclose()
                out += await c.collect(feed_pb2.SubscribeRequest(after=0, history_only=True))
                out += await c.collect(feed_pb2.SubscribeRequest(after=0, history_only=True,
                                                                 pcap=True))
                return out
        plain, with_pcap, old_plain, old_with_pcap = asyncio.run(main())
        for ev in (plain, old_plain):
            assert ev.finding.evidence.pcap == b"" and ev.finding.evidence.unit == 1
            assert ev.finding.evidence.flow.client_ip == "10.0.0.5"
        for ev in (with_pcap, old_with_pcap):
            assert ev.finding.evidence.pcap == slice_


class TestBatches:
    def test_split_at_the_bound(self) -> None:
        """Frames are joined into batches of at most BATCH_BYTES (a larger frame goes alone) that
        parse as the same events, in order."""
        from otsentry.collector.feed import event_frame

        events = [feed_pb2.FeedEvent(cursor=i, site="s" * size)
                  for i, size in enumerate([10, 300_000, 400_000, 500_000, BATCH_BYTES + 5, 7], 1)]
        out = _batches([event_frame(e) for e in events])
        parsed = [feed_pb2.FeedBatch.FromString(b) for b in out]
        assert [e for b in parsed for e in b.events] == events
        assert [len(b.events) for b in parsed] == [3, 1, 1, 1]
        assert all(len(b) <= BATCH_BYTES for b in out if len(feed_pb2.FeedBatch.FromString(b).events) > 1)
