"""Feed.Subscribe against a real collector: live events, history, resume, filters, other kinds."""

from __future__ import annotations

import asyncio
import random

from otsentry.collector.correlate import Rules, correlate_once
from otsentry.common.finding import Severity
from otsentry.v1 import feed_pb2, finding_pb2
from tests.collector.conftest import Pki
from tests.collector.feed.harness import Collector, live
from tests.collector.store.helpers import A1, B1, batch, delta, finding, status


def _history(**kw: object) -> feed_pb2.SubscribeRequest:
    return feed_pb2.SubscribeRequest(**{"after": 0, "history_only": True, **kw})


def _ids(events: list[feed_pb2.FeedEvent]) -> list[str]:
    return [e.finding.id for e in events]


class TestLive:
    def test_new_commit_arrives(self, db_url: str, pki: Pki) -> None:
        """A subscriber that went live receives a finding ingested after, with its cursor and site."""
        async def main() -> list[feed_pb2.FeedEvent]:
            async with Collector(db_url, pki) as c:
                stream = c.client().events(feed_pb2.SubscribeRequest())
                start = await live(stream)
                await c.ingest(batch(A1, 1, 1, [finding("f1", severity=Severity.HIGH,
                                                        techniques=("T0855",))]))
                async with asyncio.timeout(10):
                    ev = await anext(stream)
                await stream.aclose()
                return [ev, start]  # type: ignore[list-item]
        ev, start = asyncio.run(main())
        assert ev.cursor > start and ev.kind == feed_pb2.EVENT_KIND_FINDING
        assert (ev.site, ev.agent_id, ev.new) == ("plant1", A1.short, True)
        assert ev.finding.id == "f1" and list(ev.finding.techniques) == ["T0855"]
        assert ev.finding.severity == finding_pb2.SEVERITY_HIGH and ev.ingest_ns > 0

    def test_starts_at_head(self, db_url: str, pki: Pki) -> None:
        """Without a cursor the stream starts at the newest entry: older history is not sent."""
        async def main() -> list[str]:
            async with Collector(db_url, pki) as c:
                await c.ingest(batch(A1, 1, 1, [finding("old")]))
                stream = c.client().events(feed_pb2.SubscribeRequest())
                await live(stream)
                await c.ingest(batch(A1, 1, 2, [finding("new")]))
                async with asyncio.timeout(10):
                    ev = await anext(stream)
                await stream.aclose()
                return [ev.finding.id]
        assert asyncio.run(main()) == ["new"]


class TestResume:
    def test_no_gap_no_duplicate_across_disconnects(self, db_url: str, pki: Pki) -> None:
        """Cut the stream at random points while ingest runs; resuming from the last cursor gives
        every entry exactly once, in cursor order."""
        async def main() -> tuple[list[int], list[int]]:
            async with Collector(db_url, pki) as c:
                async def produce() -> None:
                    for i in range(20):
                        await c.ingest(batch(A1, 1, 1 + 10 * i, [
                            finding(f"f{i}-{k}") for k in range(10)]))
                producer = asyncio.create_task(produce())
                rng, got, cursor = random.Random(3), [], 0
                async with asyncio.timeout(60):
                    while not producer.done() or cursor < c.store.feed_head():
                        stream = c.client().events(feed_pb2.SubscribeRequest(after=cursor))
                        for _ in range(rng.randint(1, 30)):
                            try:  # idle for a second: reconnect (and re-check the end)
                                ev = await asyncio.wait_for(anext(stream), 1.0)
                            except TimeoutError:
                                break
                            cursor = ev.cursor
                            if ev.WhichOneof("body") != "progress":
                                got.append(ev.cursor)
                        await stream.aclose()
                await producer
                with_all = [e.cursor for e in c.store.read_feed(0, 10_000)]
                return got, with_all
        got, everything = asyncio.run(main())
        assert len(everything) == 200
        assert got == everything

    def test_history_then_live_resume(self, db_url: str, pki: Pki) -> None:
        """A query up to the head ends with a progress event whose cursor resumes live without loss."""
        async def main() -> tuple[list[str], list[str]]:
            async with Collector(db_url, pki) as c:
                await c.ingest(batch(A1, 1, 1, [finding(f"h{i}") for i in range(5)]))
                first, end = [], 0
                async for ev in c.client().events(_history()):
                    end = ev.cursor
                    if ev.HasField("finding"):
                        first.append(ev.finding.id)
                await c.ingest(batch(A1, 1, 6, [finding("later")]))
                rest = await c.collect(_history(after=end))
                return first, _ids(rest)
        assert asyncio.run(main()) == ([f"h{i}" for i in range(5)], ["later"])


class TestFilters:
    def test_each_filter(self, db_url: str, pki: Pki) -> None:
        """Site, minimum severity, technique, kind, asset and detector each narrow the stream."""
        async def main() -> dict[str, list[str]]:
            async with Collector(db_url, pki) as c:
                await c.ingest(batch(A1, 1, 1, [
                    finding("scan", kind="scan.hosts", severity=Severity.LOW, techniques=("T0846",),
                            client="10.0.0.66"),
                    finding("write", kind="policy.write-not-allowed", severity=Severity.HIGH,
                            techniques=("T0855",), client="10.0.0.7"),
                    delta("10.0.0.9"), status(1)]))
                c.agent_creds = pki.agent("plant2", "b1")
                await c.ingest(batch(B1, 2, 1, [finding("far", severity=Severity.CRITICAL,
                                                        techniques=("T0855",))]))
                F = feed_pb2.FeedFilter
                cases = {
                    "site": F(sites=["plant2"]),
                    "severity": F(min_severity=finding_pb2.SEVERITY_HIGH),
                    "technique": F(techniques=["T0855"]),
                    "kind": F(kinds=[feed_pb2.EVENT_KIND_ASSET, feed_pb2.EVENT_KIND_AGENT]),
                    "asset": F(assets=["10.0.0.66"]),
                    "detector": F(detectors=["scan.hosts"]),
                    "all": F(),
                }
                out = {}
                for name, f in cases.items():
                    evs = await c.collect(_history(filter=f))
                    out[name] = [e.finding.id or feed_pb2.EventKind.Name(e.kind) for e in evs]
                return out
        got = asyncio.run(main())
        assert got["site"] == ["far"]
        assert got["severity"] == ["write", "far"]
        assert got["technique"] == ["write", "far"]
        assert got["kind"] == ["EVENT_KIND_ASSET", "EVENT_KIND_AGENT"]
        assert got["asset"] == ["scan"]
        assert got["detector"] == ["scan"]
        assert got["all"] == ["scan", "write", "EVENT_KIND_ASSET", "EVENT_KIND_AGENT", "far"]


class TestKinds:
    def test_asset_agent_incident_bodies(self, db_url: str, pki: Pki) -> None:
        """Asset changes, agent health and incidents arrive with their bodies."""
        async def main() -> list[feed_pb2.FeedEvent]:
            async with Collector(db_url, pki) as c:
                await c.ingest(batch(A1, 1, 1, [
                    delta("10.0.0.9", unit=1, attrs={"role": "server", "vendor": "Acme"}),
                    status(5, depth=12),
                    finding("scan", kind="scan.hosts", techniques=("T0846",), client="10.0.0.66"),
                    finding("write", kind="policy.write-not-allowed", severity=Severity.HIGH,
                            techniques=("T0855",), client="10.0.0.66")]))
                rules = Rules()
                await asyncio.to_thread(correlate_once, c.store.engine, rules)
                return await c.collect(_history(filter=feed_pb2.FeedFilter(kinds=[
                    feed_pb2.EVENT_KIND_ASSET, feed_pb2.EVENT_KIND_AGENT,
                    feed_pb2.EVENT_KIND_INCIDENT])))
        asset, agent, incident = asyncio.run(main())
        assert asset.asset.key.ip == "10.0.0.9" and asset.asset.unit == 1
        assert asset.asset.attributes["vendor"] == "Acme" and asset.asset.site == "plant1"
        assert agent.agent.status.outbox_depth == 12 and agent.agent_id == A1.short
        assert incident.kind == feed_pb2.EVENT_KIND_INCIDENT and incident.site == ""
        assert list(incident.incident.sites) == ["plant1"]
        assert incident.incident.member_count == 2 and incident.incident.source_ip == "10.0.0.66"
