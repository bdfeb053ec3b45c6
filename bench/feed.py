"""Feed benchmark: packet-to-subscriber latency while ingesting and serving many subscribers.

    python bench/feed.py                          # 1,000 findings/s, 50 subscribers, 20 s, SQLite
    python bench/feed.py --store postgresql       # the same on a throwaway PostgreSQL (fsync on)
    python bench/feed.py --rate 2000 --subscribers 100 --seconds 30

Three processes on this host, as in production: the collector (store, feed hub,
gRPC server) in this one; an agent (the real outbox and shipper, over mTLS)
that writes findings into its outbox at a steady rate, each with its capture
time = the moment it was made; and the subscribers (analysts' certificates,
``Feed.Subscribe`` from the head), one in five also filtering on a severity.
Latency, per finding and subscriber: arrival at the subscriber minus the
finding's capture time (same host clock), so it covers the agent's outbox and
batching, ingest and commit, the feed hub's read of the head, the subscriber's
filter and gRPC; not the agent's capture and detection (the findings are made,
not detected), which bench/inventory.py measures.  Target: p99 under 1 s.

All three processes share this host's cores (the project's machine has 2), and
the 50 subscribers are asyncio tasks in one process, one channel each: their
own CPU competes with the collector's.  The CPU seconds each process used are
printed with the figures.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.transport import _enrol  # noqa: E402
from otsentry.agent.outbox import Outbox  # noqa: E402
from otsentry.agent.shipper import Shipper  # noqa: E402
from otsentry.collector.pki import CertificateAuthority  # noqa: E402
from otsentry.common.config import CollectorLink  # noqa: E402
from otsentry.common.finding import AssetRef, Evidence, Finding, Flow, Severity, Times  # noqa: E402
from otsentry.common.logging import configure  # noqa: E402


def _finding(k: int, now: int) -> Finding:
    return Finding(
        id=f"f{k}", revision=1, kind="policy.write-not-allowed", severity=Severity(k % 5),
        techniques=("T0855",), first_seen_ns=now, last_seen_ns=now, count=1,
        assets=(AssetRef(ip="10.0.0.5", role="client"), AssetRef(ip="10.0.1.7", role="server")),
        summary="10.0.0.5 wrote holding register 40 on 10.0.1.7 unit 1, which policy forbids",
        evidence=Evidence.make(flow=Flow("10.0.0.5", 40000 + k % 1000, "10.0.1.7", 502), unit=1,
                               function_code=6, addresses=(40,), values=(k & 0xFFFF,)),
        times=Times(capture_ns=now, agent_ns=now))


def _agent_proc(link: CollectorLink, outbox: Path, port: int, rate: int, seconds: float,
                go: mp.Event, out: mp.Queue) -> None:  # type: ignore[valid-type,type-arg]
    configure("console", "warning")

    async def main() -> None:
        stop = asyncio.Event()
        ship = Shipper(outbox, "site/bench/agent/a0",
                       replace(link, endpoints=(f"localhost:{port}",), batch_linger_s=0.02))
        runner = asyncio.ensure_future(ship.run(stop))
        box = Outbox(outbox, max_messages=10 * rate * int(seconds + 1))
        go.wait()  # type: ignore[attr-defined]
        cpu = time.process_time()
        tick, start, k = 0.01, time.monotonic(), 0
        per_tick = max(1, int(rate * tick))
        while time.monotonic() - start < seconds:
            now = time.time_ns()
            box.put_many([_finding(k + i, now) for i in range(per_tick)], [])
            k += per_tick
            await asyncio.sleep(max(0.0, start + (k // per_tick) * tick - time.monotonic()))
        while (await ship.outbox_stats())["depth"]:
            await asyncio.sleep(0.01)
        stop.set()
        await runner
        out.put(time.process_time() - cpu)
    asyncio.run(main())


def _subscribers_proc(address: str, creds: list[tuple[Path, Path, Path]], expected: int,
                      ready: mp.Queue, out: mp.Queue) -> None:  # type: ignore[type-arg]
    configure("console", "warning")
    from otsentry.collector.feed import FeedClient
    from otsentry.v1 import feed_pb2, finding_pb2

    async def one(i: int, ca: Path, cert: Path, key: Path, live: asyncio.Event,
                  lat: list[int]) -> int:
        f = feed_pb2.FeedFilter(min_severity=finding_pb2.SEVERITY_HIGH) if i % 5 == 4 else None
        want = expected * 2 // 5 if f is not None else expected
        got = 0
        stream = FeedClient(address, ca=ca, cert=cert, key=key).events(
            feed_pb2.SubscribeRequest(filter=f))
        async for ev in stream:
            if ev.HasField("progress"):
                live.set()
                continue
            if ev.HasField("finding"):
                lat.append(time.time_ns() - ev.finding.times.capture_ns)
                got += 1
                if got >= want:
                    break
        await stream.aclose()
        return got

    async def main() -> None:
        lives = [asyncio.Event() for _ in creds]
        lats: list[list[int]] = [[] for _ in creds]
        tasks = [asyncio.create_task(one(i, *c, lives[i], lats[i])) for i, c in enumerate(creds)]
        await asyncio.gather(*(e.wait() for e in lives))
        ready.put(True)
        cpu = time.process_time()
        try:
            async with asyncio.timeout(expected / 100 + 120):
                counts = await asyncio.gather(*tasks)
        except TimeoutError:
            counts = [len(x) for x in lats]
        out.put((counts, [x for lat in lats for x in lat], time.process_time() - cpu))
    asyncio.run(main())


async def _run(args: argparse.Namespace, root: Path, url: str) -> None:
    from otsentry.collector.feed import FeedHub
    from otsentry.collector.server import run_server
    from otsentry.collector.store import Store

    ca = CertificateAuthority.init(root / "pki", dns_names=["localhost"], ips=["127.0.0.1"])
    link = _enrol(ca, root, 0)
    outbox = root / "agent0" / "outbox.sqlite"
    Outbox(outbox).close()
    creds = [(ca.ca_cert_path, *reversed(ca.issue_analyst(f"ana{i}", root / "analysts")))
             for i in range(args.subscribers)]
    hub: FeedHub | None = None
    store = Store(url, create=True, on_commit=lambda: hub.poke() if hub else None)
    hub = FeedHub(store.engine)
    await hub.start()
    server, port = await run_server(ca.dir, commit=store.commit, feed=hub)
    expected = int(args.rate * 0.01) * int(args.seconds / 0.01)
    ctx = mp.get_context("spawn")
    ready, out, go, agent_out = ctx.Queue(), ctx.Queue(), ctx.Event(), ctx.Queue()
    subs = ctx.Process(target=_subscribers_proc, args=(f"localhost:{port}", [
        (a, c, k) for a, c, k in creds], expected, ready, out))
    agent = ctx.Process(target=_agent_proc, args=(link, outbox, port, args.rate, args.seconds, go,
                                                  agent_out))
    subs.start()
    agent.start()
    await asyncio.to_thread(ready.get)
    t0, cpu0 = time.monotonic(), time.process_time()
    go.set()
    counts, lat, subs_cpu = await asyncio.to_thread(out.get)
    wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
    agent_cpu = await asyncio.to_thread(agent_out.get)
    agent.join()
    subs.join()
    await server.stop(None)
    await hub.stop()
    store.close()
    lat.sort()
    full = sum(1 for i, c in enumerate(counts)
               if c == (expected * 2 // 5 if i % 5 == 4 else expected))
    print(f"ingest {expected:,} findings at {args.rate:,}/s for {args.seconds:.0f} s "
          f"({expected / wall:,.0f}/s end to end), {args.subscribers} subscribers "
          f"({args.subscribers // 5} filtered on severity >= high)")
    print(f"subscribers that received all they asked for: {full}/{args.subscribers}; "
          f"deliveries measured: {len(lat):,}")
    if lat:
        p50, p99 = lat[len(lat) // 2] / 1e6, lat[int(len(lat) * 0.99)] / 1e6
        print(f"latency packet (capture time) -> subscriber: p50 {p50:.0f} ms, p99 {p99:.0f} ms, "
              f"max {lat[-1] / 1e6:.0f} ms (target p99 < 1000 ms: "
              f"{'met' if p99 < 1000 else 'NOT met'})")
    print(f"CPU seconds in the {wall:.0f} s run ({os.cpu_count()} cores shared by all): collector "
          f"{cpu:.1f}, subscribers {subs_cpu:.1f}, agent {agent_cpu:.1f}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=int, default=1000, help="findings/s into the collector")
    ap.add_argument("--subscribers", type=int, default=50, help="concurrent subscribers")
    ap.add_argument("--seconds", type=float, default=20.0, help="how long findings are made")
    ap.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    args = ap.parse_args(argv)
    configure("console", "warning")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        print(f"store: {args.store}")
        if args.store == "sqlite":
            asyncio.run(_run(args, root, f"sqlite:///{root / 'store.sqlite'}"))
        else:
            from otsentry.collector.store.testing import PostgresCluster

            pg = PostgresCluster.start()
            try:
                asyncio.run(_run(args, root, pg.create_database("bench")))
            finally:
                pg.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
