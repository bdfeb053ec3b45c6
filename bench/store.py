#!/usr/bin/env python3
"""Collector ingest benchmark: messages/s end to end, and CPU per message of each part.

Three set-ups, each measured in this run:

* ``sqlite``: one ``otsentry-collector serve`` on a SQLite file (WAL, synchronous=FULL);
* ``pg1``: one replica on a throwaway PostgreSQL (durable defaults: fsync and
  synchronous_commit on);
* ``pg2``: two replicas on one PostgreSQL, the agents spread over them.

The load is ``--agents`` gRPC streams over mutual TLS with real agent
certificates, sending pre-built batches of ``--batch`` messages with at most 8
batches unacked per stream (as the agent's shipper does), from a driver process
of its own.  The mix is what a plant sends once learning is over: mostly new
revisions of open findings (each agent's ids cycle over ``--open`` findings),
some new findings, an inventory change every 20 messages, a status every 500.
Correlation and the other background jobs run in the replicas as in production.

Figures: messages acked per second (first send to last ack), and CPU seconds
per message of the replicas, of PostgreSQL (the postmaster and every backend)
and of the driver, read from /proc through psutil.  Targets (issue "Collector"):
SQLite >= 20k msg/s; 2 replicas >= 0.8x one replica on a 2-core machine.

    python bench/store.py                      # the three set-ups, 200k messages each
    python bench/store.py --setups pg1,pg2 --messages 100000 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
BIN = Path(sys.executable).parent
SETUPS = ("sqlite", "pg1", "pg2")
UNACKED = 8


def say(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# --- the driver (a process of its own: python bench/store.py --drive ...) ------------------


def _batches(agent_id: str, site: str, n_batches: int, batch: int, open_ids: int) -> list[bytes]:
    """Serialized Batch messages of one agent: finding revisions, inventory, status."""
    from otsentry.common.finding import AssetRef, Evidence, Finding, Flow, Severity, Times
    from otsentry.v1 import common_pb2, convert, ingest_pb2, inventory_pb2, status_pb2

    out, rev, seq = [], {}, 1
    for b in range(n_batches):
        msgs = []
        for j in range(batch):
            k = b * batch + j
            if k % 500 == 499:
                msgs.append(ingest_pb2.Envelope(status=status_pb2.AgentStatus(
                    version="0.1.0", agent_clock_ns=time.time_ns(), mode="protecting")))
            elif k % 20 == 19:
                msgs.append(ingest_pb2.Envelope(inventory=inventory_pb2.InventoryDelta(
                    asset=common_pb2.AssetKey(ip=f"10.20.2.{k % 40 + 1}"), change=2,
                    revision=k, attributes={"role": "server", "fc_seen": "3,4,16"},
                    times=common_pb2.Times(capture_ns=k))))
            else:
                fid = f"{site}-{k % open_ids}"
                r = rev[fid] = rev.get(fid, 0) + 1
                client = f"10.20.1.{k % 3 + 11}"
                f = Finding(id=fid, revision=r, kind="scan.addresses", severity=Severity.MEDIUM,
                            techniques=("T0861",), first_seen_ns=1_000, last_seen_ns=1_000 + r,
                            count=r, assets=(AssetRef(ip=client, role="client"),
                                             AssetRef(ip="10.20.2.21", role="server")),
                            summary=f"{client} read 40 ranges it never read before",
                            evidence=Evidence.make(flow=Flow(client, 40000, "10.20.2.21", 502),
                                                   unit=1, function_code=3,
                                                   addresses=(100, 200, 300), frames=(k,),
                                                   details={"ranges": "40"}),
                            times=Times(capture_ns=1_000 + r, agent_ns=time.time_ns()))
                msgs.append(ingest_pb2.Envelope(finding=convert.finding_to_proto(f)))
        out.append(ingest_pb2.Batch(agent_id=agent_id, epoch=7, first_seq=seq, messages=msgs,
                                    sent_ns=time.time_ns()).SerializeToString())
        seq += batch
    return out


async def _stream(endpoint: str, creds: object, batches: list[bytes]) -> None:
    import grpc

    from otsentry.v1 import ingest_pb2, ingest_pb2_grpc

    window = asyncio.Semaphore(UNACKED)

    async def send():  # type: ignore[no-untyped-def]
        for b in batches:
            await window.acquire()
            yield ingest_pb2.Batch.FromString(b)

    async with grpc.aio.secure_channel(endpoint, creds) as ch:  # type: ignore[arg-type]
        call = ingest_pb2_grpc.IngestStub(ch).Stream(send())
        async for _ack in call:
            window.release()


def drive(args: argparse.Namespace) -> None:
    """Send every agent's batches; print {"seconds": ..., "messages": ...} on stdout."""
    from otsentry.common.tls import channel_credentials

    plan = json.loads(Path(args.drive).read_text())
    n_batches = plan["messages"] // plan["agents"] // plan["batch"]
    work = []
    for a in plan["agent_list"]:
        work.append((a["endpoint"], channel_credentials(Path(a["ca"]), Path(a["cert"]),
                                                        Path(a["key"])),
                     _batches(a["id"], a["site"], n_batches, plan["batch"], plan["open"])))
    say(f"driver ready: {len(work)} streams x {n_batches} batches")
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.readline()  # go

    async def run() -> float:
        t0 = time.perf_counter()
        await asyncio.gather(*(_stream(ep, c, b) for ep, c, b in work))
        return time.perf_counter() - t0

    seconds = asyncio.run(run())
    print(json.dumps({"seconds": seconds, "messages": n_batches * plan["batch"] * len(work)}),
          flush=True)


# --- the set-ups --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen) -> None:
    end = time.monotonic() + 60
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"bench: collector exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"bench: collector did not listen on {port}")


def _pki(root: Path, agents: int) -> tuple[Path, list[dict]]:
    from cryptography.hazmat.primitives.serialization import Encoding

    from otsentry.collector.pki import CertificateAuthority
    from otsentry.common.pki import Identity, build_csr, generate_key, write_private_key

    ca = CertificateAuthority.init(root / "ca", dns_names=["localhost"], ips=["127.0.0.1"])
    out = []
    for i in range(agents):
        site, name = f"plant{i % 5}", f"a{i}"
        d = root / name
        d.mkdir()
        key = generate_key()
        write_private_key(d / "agent.key", key)
        cert = ca.sign_csr(build_csr(key, Identity.agent(site, name)))
        (d / "agent.crt").write_bytes(cert.public_bytes(Encoding.PEM))
        out.append({"id": f"site/{site}/agent/{name}", "site": site, "key": str(d / "agent.key"),
                    "cert": str(d / "agent.crt"), "ca": str(ca.ca_cert_path)})
    return ca.dir, out


def _cpu(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def _pg_procs(cluster: object) -> list[psutil.Process]:
    pid = int((cluster.data / "postmaster.pid").read_text().split()[0])  # type: ignore[attr-defined]
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def run_setup(name: str, args: argparse.Namespace, tmp: Path) -> dict:
    """Start the database and replicas of set-up ``name``, drive the load, measure."""
    from otsentry.collector.store.testing import PostgresCluster

    work = tmp / name
    work.mkdir()
    pki_dir, agents = _pki(work / "pki", args.agents)
    cluster = None
    if name == "sqlite":
        url = f"sqlite:///{work / 'collector.sqlite'}"
    else:
        cluster = PostgresCluster.start()
        url = cluster.create_database("otsentry")
    n_replicas = 2 if name == "pg2" else 1
    ports = [_free_port() for _ in range(n_replicas)]
    replicas = []
    try:
        for i, port in enumerate(ports):
            cfg = work / f"replica{i}.toml"
            cfg.write_text(f'[server]\nhost = "127.0.0.1"\nport = {port}\npki_dir = "{pki_dir}"\n'
                           f'[store]\npath = "{work / "unused.sqlite"}"\ngroup_commit_max = 64\n')
            log = (work / f"replica{i}.log").open("w")
            replicas.append(subprocess.Popen(
                [str(BIN / "otsentry-collector"), "--log-format", "json", "serve", "--config",
                 str(cfg), "--db", url], stdout=log, stderr=log))
        for port, proc in zip(ports, replicas):
            _wait_port(port, proc)
        for i, a in enumerate(agents):
            a["endpoint"] = f"localhost:{ports[i % n_replicas]}"
        plan = work / "plan.json"
        plan.write_text(json.dumps({"messages": args.messages, "agents": args.agents,
                                    "batch": args.batch, "open": args.open, "agent_list": agents}))
        driver = subprocess.Popen([sys.executable, __file__, "--drive", str(plan)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert driver.stdout is not None and driver.stdin is not None
        if driver.stdout.readline().strip() != "ready":
            raise SystemExit("bench: driver failed")
        rep = [psutil.Process(p.pid) for p in replicas]
        pg = _pg_procs(cluster) if cluster else []
        drv = [psutil.Process(driver.pid)]
        c0 = (_cpu(rep), _cpu(pg), _cpu(drv))
        driver.stdin.write("go\n")
        driver.stdin.flush()
        result = json.loads(driver.stdout.readline())
        pg = _pg_procs(cluster) if cluster else []  # backends started during the run
        c1 = (_cpu(rep), _cpu(pg), _cpu(drv))
        driver.wait()
        n = result["messages"]
        return {"setup": name, "replicas": n_replicas, "messages": n,
                "seconds": round(result["seconds"], 2),
                "msg_per_s": round(n / result["seconds"]),
                "replica_us_per_msg": round((c1[0] - c0[0]) / n * 1e6, 1),
                "db_us_per_msg": round((c1[1] - c0[1]) / n * 1e6, 1) if cluster else None,
                "driver_us_per_msg": round((c1[2] - c0[2]) / n * 1e6, 1)}
    finally:
        for p in replicas:
            p.send_signal(signal.SIGTERM)
        for p in replicas:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        if cluster is not None:
            cluster.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--setups", default=",".join(SETUPS), help="comma-separated: sqlite,pg1,pg2")
    p.add_argument("--messages", type=int, default=200_000, help="messages per set-up")
    p.add_argument("--agents", type=int, default=10)
    p.add_argument("--batch", type=int, default=500, help="messages per batch (agent default 500)")
    p.add_argument("--open", type=int, default=200, help="open findings per agent (ids cycle)")
    p.add_argument("--json", action="store_true", help="one JSON object per set-up")
    p.add_argument("--drive", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.drive:
        drive(args)
        return 0
    rows = []
    with tempfile.TemporaryDirectory(prefix="otsentry-bench-") as tmp:
        os.chmod(tmp, 0o755)
        for name in args.setups.split(","):
            say(f"{name}: {args.messages} messages from {args.agents} agents")
            rows.append(run_setup(name, args, Path(tmp)))
            if args.json:
                print(json.dumps(rows[-1]), flush=True)
    if not args.json:
        print(f"{'setup':<8} {'replicas':>8} {'messages':>9} {'seconds':>8} {'msg/s':>8} "
              f"{'replica µs/msg':>15} {'postgres µs/msg':>16} {'driver µs/msg':>14}")
        for r in rows:
            db = "-" if r["db_us_per_msg"] is None else f"{r['db_us_per_msg']:.1f}"
            print(f"{r['setup']:<8} {r['replicas']:>8} {r['messages']:>9} {r['seconds']:>8.2f} "
                  f"{r['msg_per_s']:>8} {r['replica_us_per_msg']:>15.1f} {db:>16} "
                  f"{r['driver_us_per_msg']:>14.1f}")
    by = {r["setup"]: r for r in rows}
    if "pg1" in by and "pg2" in by:
        print(f"2 replicas / 1 replica: {by['pg2']['msg_per_s'] / by['pg1']['msg_per_s']:.2f} "
              "(target >= 0.8)")
    if "sqlite" in by:
        print(f"SQLite: {by['sqlite']['msg_per_s']} msg/s (target >= 20000)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
