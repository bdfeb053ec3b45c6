"""Transport benchmark: messages/s into the collector on SQLite, and outbox-to-ack latency.

    python bench/transport.py                 # both figures, default sizes
    python bench/transport.py --agents 20 --messages 5000 --store interim

Throughput: N agents (distinct certificates, each its own outbox and shipper,
run as tasks in one child process) deliver prefilled outboxes (findings,
inventory deltas and status together) to one collector server in this
process; messages/s = messages stored / wall time until the last ack.
Latency: one agent whose outbox is written at a steady rate; for every
message, the time from its outbox write (``Envelope.queued_ns``) to the
commit after which the collector acks it (same host clock); p50 and p99.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import random
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from otsentry.agent.outbox import Outbox
from otsentry.agent.shipper import Shipper
from otsentry.collector.pki import CertificateAuthority
from otsentry.collector.server import run_server
from otsentry.common.config import CollectorLink
from otsentry.common.logging import configure
from otsentry.common.finding import AssetRef, Evidence, Finding, Flow, Severity
from otsentry.common.pki import Identity, build_csr, generate_key, write_private_key
from otsentry.v1 import common_pb2, ingest_pb2, inventory_pb2, status_pb2


def _enrol(ca: CertificateAuthority, root: Path, i: int) -> CollectorLink:
    d = root / f"agent{i}"
    d.mkdir(parents=True)
    key = generate_key()
    write_private_key(d / "agent.key", key)
    cert = ca.sign_csr(build_csr(key, Identity.agent("bench", f"a{i}")))
    (d / "agent.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return CollectorLink(endpoints=("localhost:0",), ca=ca.ca_cert_path, cert=d / "agent.crt",
                         key=d / "agent.key", batch_messages=500, batch_linger_s=0.005,
                         max_unacked_batches=8)


def _messages(i: int, n: int, rng: random.Random) -> tuple[list[Finding], list]:
    findings, envs = [], []
    now = time.time_ns()
    for k in range(n):
        r = rng.random()
        if r < 0.8:
            findings.append(Finding(
                id=f"a{i}-f{k}", revision=1, kind="modbus.write-unusual",
                severity=Severity(k % 5), techniques=("T0836",), first_seen_ns=now,
                last_seen_ns=now, count=1,
                assets=(AssetRef(ip="10.0.0.5", role="client"), AssetRef(ip="10.0.1.7",
                                                                          role="server")),
                summary="10.0.0.5 wrote holding register 40 on 10.0.1.7 unit 1 for the first time",
                evidence=Evidence.make(flow=Flow("10.0.0.5", 40000 + k % 1000, "10.0.1.7", 502),
                                       unit=1, function_code=6, addresses=(40,), values=(k,))))
        elif r < 0.95:
            envs.append(ingest_pb2.Envelope(queued_ns=now, inventory=inventory_pb2.InventoryDelta(
                asset=common_pb2.AssetKey(ip=f"10.0.{k % 250}.{k % 200}"), revision=k,
                change=inventory_pb2.CHANGE_KIND_ADDED, attributes={"role": "server"})))
        else:
            envs.append(ingest_pb2.Envelope(queued_ns=now, status=status_pb2.AgentStatus(
                version="bench", agent_clock_ns=now, outbox_depth=k)))
    return findings, envs


async def _deliver(links: list[CollectorLink], outboxes: list[Path], port: int,
                   expected: int) -> None:
    stops = [asyncio.Event() for _ in links]
    ships = [Shipper(p, f"site/bench/agent/a{i}",
                     replace(link, endpoints=(f"localhost:{port}",)))
             for i, (link, p) in enumerate(zip(links, outboxes))]

    async def until_empty(s: Shipper, stop: asyncio.Event) -> None:
        while (await s.outbox_stats())["depth"]:
            await asyncio.sleep(0.01)
        stop.set()
    await asyncio.gather(*(s.run(st) for s, st in zip(ships, stops)),
                         *(until_empty(s, st) for s, st in zip(ships, stops)))


def _agents_proc(links: list[CollectorLink], outboxes: list[Path], port: int) -> None:
    configure("console", "warning")
    asyncio.run(_deliver(links, outboxes, port, 0))


def _steady_proc(link: CollectorLink, outbox: Path, port: int, rate: int, seconds: float) -> None:
    configure("console", "warning")
    async def main() -> None:
        stop = asyncio.Event()
        ship = Shipper(outbox, "site/bench/agent/a0", replace(link, endpoints=(f"localhost:{port}",),
                                                                batch_linger_s=0.02))
        runner = asyncio.ensure_future(ship.run(stop))
        box = Outbox(outbox)
        rng = random.Random(7)
        tick, start, k = 0.01, time.monotonic(), 0
        while time.monotonic() - start < seconds:
            findings, envs = _messages(0, int(rate * tick), rng)
            box.put_many([replace(f, id=f"{f.id}-{k}") for f in findings], envs,
                         queued_ns=time.time_ns())
            k += 1
            await asyncio.sleep(max(0.0, start + k * tick - time.monotonic()))
        while (await ship.outbox_stats())["depth"]:
            await asyncio.sleep(0.01)
        stop.set()
        await runner
    asyncio.run(main())


class _Meter:
    """Wraps a store's commit: counts messages and their outbox-to-commit latency."""

    def __init__(self, commit) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.messages, self.latencies = commit, 0, []  # type: list[int]
        self.last = 0.0

    async def __call__(self, peer, batch):  # type: ignore[no-untyped-def]
        seq = await self.inner(peer, batch)
        now = time.time_ns()
        self.messages += len(batch.messages)
        self.latencies.extend(now - m.queued_ns for m in batch.messages)
        self.last = time.monotonic()
        return seq


def _store(kind: str, root: Path):  # type: ignore[no-untyped-def]
    if kind == "interim":
        from otsentry.collector.ingest_store import IngestStore

        return IngestStore(root / "interim.sqlite")
    from otsentry.collector.store import Store

    return Store(f"sqlite:///{root / 'store.sqlite'}", create=True)


async def _throughput(ca: CertificateAuthority, root: Path, agents: int, per_agent: int,
                      kind: str) -> tuple[float, int, float]:
    links = [_enrol(ca, root / f"t{agents}", i) for i in range(agents)]
    outboxes = []
    rng = random.Random(agents)
    for i in range(agents):
        p = root / f"t{agents}" / f"agent{i}" / "outbox.sqlite"
        box = Outbox(p, max_messages=10 * per_agent)
        box.put_many(*_messages(i, per_agent, rng))
        box.close()
        outboxes.append(p)
    store = _store(kind, root / f"t{agents}")
    meter = _Meter(store.commit)
    server, port = await run_server(ca.dir, commit=meter)
    start = time.monotonic()
    proc = mp.get_context("spawn").Process(target=_agents_proc, args=(links, outboxes, port))
    proc.start()
    while proc.is_alive():
        await asyncio.sleep(0.05)
    await server.stop(None)
    store.close()
    wall = meter.last - start
    return meter.messages / wall, meter.messages, wall


async def _latency(ca: CertificateAuthority, root: Path, rate: int, seconds: float,
                   kind: str) -> tuple[float, float, int]:
    [link] = [_enrol(ca, root / "lat", 0)]
    p = root / "lat" / "agent0" / "outbox.sqlite"
    Outbox(p).close()
    store = _store(kind, root / "lat")
    meter = _Meter(store.commit)
    server, port = await run_server(ca.dir, commit=meter)
    proc = mp.get_context("spawn").Process(target=_steady_proc,
                                           args=(link, p, port, rate, seconds))
    proc.start()
    while proc.is_alive():
        await asyncio.sleep(0.05)
    await server.stop(None)
    store.close()
    lat = sorted(meter.latencies)
    return lat[len(lat) // 2] / 1e6, lat[int(len(lat) * 0.99)] / 1e6, len(lat)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, default=20, help="concurrent agents (default 20)")
    ap.add_argument("--messages", type=int, default=5000, help="messages per agent")
    ap.add_argument("--rate", type=int, default=1000, help="latency run: messages/s")
    ap.add_argument("--seconds", type=float, default=10.0, help="latency run: duration")
    ap.add_argument("--store", choices=("main", "interim"), default="main",
                    help="the collector's store (main, as serve uses) or the interim one")
    args = ap.parse_args(argv)
    configure("console", "warning")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ca = CertificateAuthority.init(root / "pki", dns_names=["localhost"], ips=["127.0.0.1"])
        print(f"store: {args.store} (SQLite, WAL, synchronous=FULL on the interim store)")
        for n, per in ((1, args.messages * 4), (args.agents, args.messages)):
            rate, msgs, wall = asyncio.run(_throughput(ca, root, n, per, args.store))
            print(f"{n:>3} agent(s): {msgs:,} messages (80% findings, 15% inventory, 5% status) "
                  f"in {wall:.2f} s = {rate:,.0f} messages/s")
        p50, p99, n = asyncio.run(_latency(ca, root, args.rate, args.seconds, args.store))
        print(f"latency outbox write -> committed and acked at {args.rate:,} messages/s "
              f"({n:,} messages): p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
