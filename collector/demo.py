"""The whole system on one machine: ``./dev demo``.

1. Makes a PKI: a CA, the collector's certificate, an agent's and an analyst's.
2. Starts a collector on SQLite with its dashboard, and a TAXII 2.1 server
   standing in for the NICC (medallion, in memory).
3. Starts a small plant on loopback: a pymodbus PLC, an HMI and a historian
   polling it.  An agent captures it live on ``lo`` when it may (root or
   CAP_NET_RAW), learns normal traffic, then protects.  Without capture
   rights it replays a capture of the same plant that the demo builds itself.
4. Runs a scripted attack from another address: a unit-id scan, rogue writes
   and an FC 8 restart.
5. Prints the inventory, the findings and the incident as the collector
   holds them, the STIX 2.1 report sent to the NICC and read back from it,
   and the dashboard's address with a login token.
6. Stops everything, or with ``--keep`` stays up until Ctrl-C.

Every process is the real one (``otsentry-collector serve``,
``otsentry-agent run``), started as an operator would start it; the files
are left in ``--dir`` to look at.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

SITE, AGENT = "plant1", "a1"
DEFAULT_DIR = Path("otsentry-demo")
SEVERITY_ORDER = ("critical", "high", "medium", "low", "info")


def say(msg: str) -> None:
    print(f"\n\033[1m== {msg}\033[0m", flush=True)


def note(msg: str) -> None:
    print(f"   {msg}", flush=True)


class Demo:
    """The processes and files of one run; :meth:`stop` ends them."""

    def __init__(self, root: Path, learn_s: float) -> None:
        self.root, self.learn_s = root, learn_s
        self.procs: list[subprocess.Popen[bytes]] = []
        self.taxii: Any = None
        self.port = self.web_port = 0

    # --- set-up ---------------------------------------------------------------------------

    def pki(self) -> None:
        from cryptography.hazmat.primitives import serialization

        from otsentry.collector.pki import CertificateAuthority
        from otsentry.common.pki import Identity, build_csr, generate_key, write_private_key

        ca = CertificateAuthority.init(self.root / "pki", dns_names=["localhost"],
                                       ips=["127.0.0.1"])
        tls = self.root / "agent" / "tls"
        tls.mkdir(parents=True)
        key = generate_key()  # the agent's key never leaves the agent: only its CSR does
        write_private_key(tls / "agent.key", key)
        cert = ca.sign_csr(build_csr(key, Identity.agent(SITE, AGENT)))
        (tls / "agent.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        shutil.copy(ca.ca_cert_path, tls / "ca.crt")
        self.analyst_cert = ca.issue_analyst("demo", self.root / "analyst")[1]
        note(f"CA and collector certificate in {self.root / 'pki'}")
        note(f"agent {SITE}/{AGENT}: key and certificate in {tls}")
        note(f"analyst 'demo': key and certificate in {self.root / 'analyst'}")

    def nicc(self) -> None:
        from otsentry.collector.upstream.testing import TaxiiServer

        secret = os.urandom(12).hex()
        self.taxii = TaxiiServer.start(self.root / "taxii", users={"utility": secret})
        pw = self.root / "nicc.password"
        pw.write_text(secret)
        pw.chmod(0o600)
        note(f"TAXII 2.1 API root {self.taxii.api_root} (medallion, in memory)")

    def collector(self) -> None:
        from otsentry.agent.simulate import free_port as _free

        self.port, self.web_port = _free(("127.0.0.1",)), _free(("127.0.0.1",))
        (self.root / "collector.toml").write_text(f"""\
[server]
host = "127.0.0.1"
port = {self.port}
pki_dir = "pki"
[store]
path = "collector.sqlite"
[web]
listen = "127.0.0.1:{self.web_port}"
[reporting]
organisation = "Demo Water Utility"
automatic = ["site-source"]
interval = "1s"
retry_initial = "1s"
[[upstream]]
name = "nicc"
api_root = "{self.taxii.api_root}"
collection = "{self.taxii.collection}"
username = "utility"
password_file = "nicc.password"
min_severity = "medium"
tlp = "amber"
""")
        self._spawn("collector", "otsentry.collector.cli", "serve", "--config", "collector.toml")
        _wait_port(self.port, self.procs[-1], self.root / "collector.log")
        _wait_port(self.web_port, self.procs[-1], self.root / "collector.log")
        note(f"collector: gRPC on 127.0.0.1:{self.port}, dashboard on "
             f"https://127.0.0.1:{self.web_port}/ (SQLite: collector.sqlite)")

    def agent_config(self, plc_port: int) -> None:
        tls = self.root / "agent" / "tls"
        (self.root / "agent.toml").write_text(f"""\
[agent]
site = "{SITE}"
name = "{AGENT}"
state_dir = "agent"
learn = "{self.learn_s:g}s"
snapshot_interval = "3s"
[capture]
interface = "lo"
bpf = "tcp port {plc_port}"
ports = [{plc_port}]
[collector]
endpoints = ["localhost:{self.port}"]
ca = "{tls / 'ca.crt'}"
cert = "{tls / 'agent.crt'}"
key = "{tls / 'agent.key'}"
batch_linger = "20ms"
status_interval = "2s"
[detect]
revision_interval = "2s"
""")

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.root / f"{name}.log").open("ab")
        proc = subprocess.Popen([sys.executable, "-m", args[0], "--log-format", "json", *args[1:]],
                                cwd=self.root, stdout=subprocess.DEVNULL, stderr=log)
        self.procs.append(proc)
        return proc

    # --- the plant, live or replayed ------------------------------------------------------

    def run_live(self, plc_port: int) -> None:
        from otsentry.agent import simulate as sim

        agent = self._spawn("agent", "otsentry.agent.cli", "run", "--config", "agent.toml")
        time.sleep(1.5)  # the capture is open before the first packet
        if agent.poll() is not None:
            raise SystemExit(f"demo: the agent stopped: see {self.root / 'agent.log'}")
        note(f"PLC {sim.PLC_IP}:{plc_port} (pymodbus), HMI {sim.HMI_IP}, historian "
             f"{sim.HISTORIAN_IP}; the agent captures on lo and learns for {self.learn_s:g} s")

        async def attack(plant: Any) -> None:
            say(f"4/6 Attack from {sim.ROGUE_IP}")
            for name, fn in (("unit-id scan (units 1-20)", sim.unit_sweep),
                             ("rogue writes (register 50, the setpoint, a coil)", sim.rogue_write),
                             ("FC 8 restart communications", sim.fc8_restart)):
                note(name)
                await fn(plant)
                await asyncio.sleep(0.5)

        asyncio.run(sim.run_plant(plc_port, normal_s=self.learn_s + 4, attack=attack,
                                  attack_s=5, startup=sim.scada_identify))
        self.agent = agent

    def run_replay(self, plc_port: int) -> None:
        from otsentry.agent import simulate as sim

        pcap = self.root / "plant.pcap"
        n = build_capture(pcap, plc_port, self.learn_s)
        note(f"live capture needs root or CAP_NET_RAW: replaying {pcap.name} ({n} frames), "
             f"the same plant and attack made by the demo (PLC {sim.PLC_IP}:{plc_port}, "
             f"HMI {sim.HMI_IP}, attacker {sim.ROGUE_IP})")
        say(f"4/6 Attack from {sim.ROGUE_IP} (in the capture)")
        note("unit-id scan, rogue writes, FC 8 restart communications")
        self.agent = self._spawn("agent", "otsentry.agent.cli", "run", "--config", "agent.toml",
                                 "--pcap", str(pcap), "--speed", "0", "--keep-running")

    # --- waiting and reading ----------------------------------------------------------------

    def wait_results(self, timeout_s: float = 60.0) -> dict[str, Any]:
        """Until an incident was reported upstream (or the timeout); what the collector holds."""
        deadline = time.monotonic() + timeout_s
        snap: dict[str, Any] = {}
        while time.monotonic() < deadline:
            snap = self.read_store()
            mapped = any("registers" in u["attributes"] for a in snap["inventory"]["assets"]
                         for u in a["units"])
            if mapped and any(s["status"] in ("sent", "acknowledged") for s in snap["upstream"]):
                return snap
            if any(p.poll() is not None for p in self.procs):
                break
            time.sleep(1.0)
        return snap

    def read_store(self) -> dict[str, Any]:
        from otsentry.collector.incidents_cmd import list_incidents
        from otsentry.collector.store import connect, read
        from otsentry.collector.upstream import incident_report_status
        from otsentry.collector.web._queries import inventory

        engine = connect(f"sqlite:///{self.root / 'collector.sqlite'}")
        try:
            with read(engine) as conn:
                from sqlalchemy import select

                from otsentry.collector.store import _schema as S

                f = S.findings.c
                findings = [dict(r) for r in conn.execute(
                    select(f.kind, f.severity, f.count, f.summary, f.source_ip)
                    .order_by(f.severity.desc(), f.first_seen_ns)).mappings()]
                incidents = list_incidents(conn)
                upstream = [s for i in incidents for s in incident_report_status(conn, i["id"])]
                inv = inventory(conn, SITE)
        finally:
            engine.dispose()
        return {"findings": findings, "incidents": incidents, "upstream": upstream,
                "inventory": inv}

    def sent_bundle(self, incident: int) -> tuple[str, list[dict[str, Any]]]:
        """(stage, objects) of the latest report of ``incident`` the NICC acknowledged."""
        from sqlalchemy import select

        from otsentry.collector.store import _schema as S, connect, read

        engine = connect(f"sqlite:///{self.root / 'collector.sqlite'}")
        try:
            with read(engine) as conn:
                u = S.upstream_reports.c
                row = conn.execute(select(u.stage, u.bundle).where(
                    u.incident == incident, u.status == "acknowledged").order_by(
                    u.acked_ns.desc()).limit(1)).first()
        finally:
            engine.dispose()
        return (row.stage, json.loads(row.bundle)) if row is not None and row.bundle else ("", [])

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        if self.taxii is not None:
            self.taxii.stop()


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 30) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"demo: a process stopped during start-up: see {log}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"demo: nothing listens on port {port}: see {log}")


def can_capture() -> bool:
    """Whether live capture on ``lo`` is allowed here (root or CAP_NET_RAW)."""
    from otsentry.agent.source import open_live

    try:
        open_live("lo", bpf="tcp port 9").close()
        return True
    except Exception:  # noqa: BLE001 -- any refusal means: replay instead
        return False


def build_capture(path: Path, port: int, learn_s: float) -> int:
    """The demo's plant and attack as a capture file: for hosts where live capture is refused.

    The HMI reads the PLC's identification once, polls holding registers 0-9 and
    input registers 0-4 of unit 1 every 200 ms and writes the setpoint every 2 s; the
    historian reads input registers of units 1 and 3 every 500 ms; after learning, the
    attacker scans unit ids, writes and restarts communications.
    """
    from otsentry.agent import simulate as sim
    from otsentry.agent.detect.testing import Wire
    from otsentry.agent.testing import Conversation

    s = 1_000_000_000
    t0 = time.time_ns() - int((learn_s + 15) * s)
    wire = Wire()
    hmi = wire.connect(t0, sim.HMI_IP, sim.PLC_IP, sport=port)
    hist = wire.connect(t0 + s // 10, sim.HISTORIAN_IP, sim.PLC_IP, sport=port)
    c1, c3 = Conversation(unit=1), Conversation(unit=3)
    objects = [(oid, value.encode()) for oid, value in enumerate(sim.IDENTITY.values())]
    for k, (code, objs) in enumerate(((1, objects[:3]), (2, objects[3:]))):
        wire.exchange(hmi, t0 + (1 + k) * s // 1000, *c1.exchange(
            43, read_code=code, object_id=0, objects=objs, conformity_level=0x82))
    end = t0 + int((learn_s + 12) * s)
    t, i = t0 + s // 100, 0
    while t < end:
        sec = (t - t0) / s
        wire.exchange(hmi, t, *c1.exchange(3, address=0, registers=(
            480 + i % 40, *range(200, 209))), latency_ns=2_000_000)
        wire.exchange(hmi, t + 20_000_000, *c1.exchange(4, address=0, registers=(
            700 + int(10 * abs(((sec / 10) % 2) - 1)), 8, 9, 10, 11)))
        if i % 10 == 0:
            wire.exchange(hmi, t + 40_000_000, *c1.exchange(6, address=100,
                                                           value=490 + (i // 10) % 20))
        if i % 5 == 2:
            wire.exchange(hist, t + 60_000_000, *c1.exchange(4, address=0, registers=(7, 8, 9)))
            wire.exchange(hist, t + 70_000_000, *c3.exchange(4, address=0, registers=(1, 2)))
        t += s // 5
        i += 1
    at = t0 + int((learn_s + 4) * s)
    rogue = wire.connect(at, sim.ROGUE_IP, sim.PLC_IP, sport=port)
    for u in range(1, 21):
        conv = Conversation(unit=u)
        req, rsp = conv.exchange(3, address=0, registers=(490 if u == 1 else 7,))
        wire.exchange(rogue, at + u * 50_000_000, req,
                      rsp if u in (1, 2, 3) else conv.exception(3, 0x0B)[1])
    at += 2 * s
    w = Conversation(unit=1, first_tid=100)
    wire.exchange(rogue, at, *w.exchange(6, address=50, value=1234))
    wire.exchange(rogue, at + 100_000_000, *w.exchange(16, address=100, registers=(500, 20)))
    wire.exchange(rogue, at + 200_000_000, *w.exchange(5, address=3, value=0))
    wire.exchange(rogue, at + 1_000_000_000, *w.exchange(8, sub_function=1))
    wire.write_pcap(str(path))
    return len(wire.frames)


# --- printing -------------------------------------------------------------------------------

def print_inventory(inv: dict[str, Any]) -> None:
    print(f"   {'address':<16} {'role':<8} {'vendor / product / firmware':<40} {'units':<10} "
          f"{'registers':>9} {'cycles':>6}")
    for a in inv["assets"]:
        regs = cycles = 0
        for u in a["units"]:
            for key in ("registers", "cycles"):
                try:
                    n = len(json.loads(u["attributes"].get(key, "[]")))
                except ValueError:
                    n = 0
                if key == "registers":
                    regs += n
                else:
                    cycles += n
        ident = " / ".join(x for x in (a["vendor"], a["product"], a["firmware"]) if x) or \
            a["attributes"].get("name", "") or "-"
        units = spans(sorted(u["unit"] for u in a["units"])) or "-"
        print(f"   {a['ip']:<16} {a['role'] or '-':<8} {ident[:40]:<40} {units:<10} {regs:>9} "
              f"{cycles:>6}")


def spans(numbers: list[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1-3,7"``."""
    out: list[str] = []
    for n in numbers:
        if out and out[-1].rsplit("-", 1)[-1] == str(n - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{n}"
        else:
            out.append(str(n))
    return ",".join(out)


def print_findings(findings: list[dict[str, Any]]) -> None:
    from otsentry.common.finding import Severity

    by_sev = Counter(str(Severity(r["severity"])) for r in findings)
    note(", ".join(f"{by_sev[s]} {s}" for s in SEVERITY_ORDER if by_sev[s]) or "none")
    for r in findings:
        sev = str(Severity(r["severity"]))
        if sev in ("critical", "high", "medium"):
            print(f"   {sev.upper():<8} {r['kind']:<32} x{r['count']:<4} {r['summary'][:90]}")


def print_stix(demo: Demo, incident: int) -> None:
    from otsentry.collector.upstream import make_bundle

    stage, objects = demo.sent_bundle(incident)
    if not objects:
        note("(nothing was acknowledged upstream)")
        return
    bundle_path = demo.root / f"incident-{incident}.json"
    bundle_path.write_text(json.dumps(make_bundle(objects), indent=1) + "\n")
    note(f"the {stage.replace('-', ' ')} sent, as {bundle_path.name}: {len(objects)} objects "
         f"({type_counts(objects)})")
    names = {o["id"]: o.get("name", o["id"]) for o in objects if o["type"] == "marking-definition"}
    for o in objects:
        if o["type"] in ("incident", "report", "grouping"):
            print(f"   {o['type']}: {o.get('name', '')}")
            marks = [names.get(ref, ref) for ref in o.get("object_marking_refs", [])]
            if marks:
                print(f"     marking: {', '.join(marks)}")
    if demo.taxii is None:
        return
    # The manifest lists every object version the collection holds (extension definitions
    # included, which medallion leaves out of its object listings: see TaxiiServer.objects).
    from otsentry.collector.upstream._push import _holds

    held: dict[str, set[str]] = {}
    for m in demo.taxii.manifest():
        held.setdefault(m["id"], set()).add(m.get("version", ""))
    there = [o for o in objects if _holds(held.get(o["id"], set()), o.get("modified"))]
    older = sum(len(v) for v in held.values()) - len(there)
    missing = [o for o in objects if o not in there]
    note(f"read back from the NICC's TAXII collection: "
         f"{'all ' if not missing else ''}{len(there)} of {len(objects)} objects of "
         f"{bundle_path.name}, in this version"
         + (f" (missing: {type_counts(missing)})" if missing else "")
         + (f"; it also holds {older} object versions sent before the incident grew"
            if older > 0 else ""))
    note(f"(for a site with no link upstream: otsentry-collector report --incident {incident} "
         "--out FILE writes such a bundle to carry by hand)")


def type_counts(objects: list[dict[str, Any]]) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(Counter(o["type"] for o in objects).items()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="otsentry demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=DEFAULT_DIR,
                    help=f"where the demo keeps its files (emptied first; default {DEFAULT_DIR})")
    ap.add_argument("--keep", action="store_true",
                    help="stay up after the demo (dashboard, collector, NICC) until Ctrl-C")
    ap.add_argument("--replay", action="store_true",
                    help="replay a capture the demo makes, even where live capture is allowed")
    ap.add_argument("--learn", type=float, default=15.0, metavar="SECONDS",
                    help="how long the agent learns normal traffic (default 15)")
    args = ap.parse_args(argv)
    from otsentry.agent import simulate as sim
    from otsentry.common.logging import configure

    configure("console", level="warning")
    root = args.dir.resolve()
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    demo = Demo(root, args.learn)
    try:
        say("1/6 PKI: a CA, the collector, an agent and an analyst")
        demo.pki()
        say("2/6 Collector (SQLite, dashboard) and the NICC's TAXII 2.1 server")
        demo.nicc()
        demo.collector()
        say("3/6 Plant on loopback, and the agent: learn, then protect")
        plc_port = sim.free_port()
        demo.agent_config(plc_port)
        live = not args.replay and can_capture()
        demo.run_live(plc_port) if live else demo.run_replay(plc_port)
        say("5/6 What the collector holds")
        snap = demo.wait_results()
        note("inventory (from the agent's snapshots):")
        print_inventory(snap["inventory"])
        note(f"findings: {len(snap['findings'])} (medium and above listed)")
        print_findings(snap["findings"])
        for inc in snap["incidents"]:
            note(f"incident #{inc['id']} [{inc['severity']}] {inc['title']}: {inc['members']} "
                 f"findings, techniques {', '.join(inc['techniques'])}")
        for s in snap["upstream"]:
            note(f"upstream {s['recipient']} {s['stage']}: {s['status']} "
                 f"(due {s['due']}){' ' + s['reason'] if s.get('reason') else ''}")
        say("6/6 STIX 2.1 sent to the NICC")
        if snap["incidents"]:
            print_stix(demo, snap["incidents"][0]["id"])
        token = _token(demo)
        print(f"\n   dashboard: https://127.0.0.1:{demo.web_port}/  (self-signed CA: "
              f"{root / 'pki' / 'ca.crt'})\n   login token: {token}")
        ok = bool(snap["findings"]) and bool(snap["incidents"]) and any(
            s["status"] in ("sent", "acknowledged") for s in snap["upstream"])
        if args.keep:
            print("\n   --keep: up until Ctrl-C", flush=True)
            try:
                while all(p.poll() is None for p in demo.procs):
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
        print("\nDemo finished." if ok else
              f"\nDemo finished, but incomplete: see the logs in {root}", flush=True)
        return 0 if ok else 1
    finally:
        demo.stop()


def _token(demo: Demo) -> str:
    from otsentry.collector.web import issue_token

    token, _analyst = issue_token(demo.root / "pki", demo.analyst_cert, hours=12.0)
    return token


if __name__ == "__main__":
    sys.exit(main())
