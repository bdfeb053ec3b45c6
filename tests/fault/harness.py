"""Real processes for the fault tests: a collector and an agent with real certificates, a TCP proxy.

``Plant`` makes a CA, enrols one agent, writes both TOML configs and starts
``otsentry-collector serve`` and ``otsentry-agent run --pcap`` as
subprocesses; ``Proxy`` sits between them on 127.0.0.1 and drops, stalls,
resets or delays connections on demand; ``expected_findings`` runs the same
pipeline in-process to know what the agent must produce; ``compare`` tells
what the collector lost or doubled.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from otsentry.collector.store import Store
from otsentry.collector.pki import CertificateAuthority
from otsentry.common.config import load_agent_config
from otsentry.common.pki import Identity, build_csr, generate_key, write_private_key
from tests.conftest import SHARED_PCAPS

#: Many findings (about 650, 700 revisions) over 875 s of capture time.
PCAP = SHARED_PCAPS / "gateway-units-unanswered.pcap"
SITE, NAME = "plant1", "a1"
AGENT_ID = f"site/{SITE}/agent/{NAME}"

DETECT = """
[detect]
window = "1s"
revision_interval = "1s"
max_new_per_window = 1000
"""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 15.0) -> None:
    """Wait until something accepts TCP connections on ``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


@dataclass
class Plant:
    """A collector and an agent in ``root``; the agent talks to ``agent_port`` (a proxy or the collector)."""

    root: Path
    speed: float = 175.0
    link: dict[str, object] = field(default_factory=dict)
    port: int = 0
    agent_port: int = 0
    collector: subprocess.Popen | None = None
    agent: subprocess.Popen | None = None
    logs: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.port = self.port or free_port()
        self.agent_port = self.agent_port or self.port
        ca = CertificateAuthority.init(self.root / "pki", dns_names=["localhost"],
                                       ips=["127.0.0.1"])
        tls = self.root / "state" / "tls"
        tls.mkdir(parents=True)
        key = generate_key()
        write_private_key(tls / "agent.key", key)
        cert = ca.sign_csr(build_csr(key, Identity.agent(SITE, NAME)))
        (tls / "agent.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        shutil.copy(ca.ca_cert_path, tls / "ca.crt")
        (self.root / "collector.toml").write_text(
            f'[server]\nport = {self.port}\npki_dir = "pki"\n[store]\npath = "store.sqlite"\n')
        self.write_agent_config()

    def write_agent_config(self) -> None:
        """(Re)write agent.toml with ``link`` overriding the test defaults of [collector]."""
        link = {"endpoints": [f"localhost:{self.agent_port}"], "batch_messages": 10,
                "batch_linger": "20ms", "ack_timeout": "1.5s", "connect_timeout": "1s",
                "backoff_initial": "100ms", "backoff_max": "500ms", "status_interval": "500ms",
                **self.link}
        body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in link.items())
        (self.root / "agent.toml").write_text(
            f'[agent]\nsite = "{SITE}"\nname = "{NAME}"\nstate_dir = "state"\nlearn = "5s"\n'
            f'status_file_interval = "200ms"\n[collector]\n{body}\n{DETECT}')

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log = self.root / f"{name}-{len(self.logs)}.log"
        self.logs.append(log)
        return subprocess.Popen([sys.executable, "-m", *args], cwd=self.root,
                                stdout=subprocess.DEVNULL, stderr=log.open("wb"))

    def start_collector(self) -> None:
        """Start the collector and wait until it listens."""
        self.collector = self._spawn("collector", [
            "otsentry.collector.cli", "--log-format", "json", "serve", "--config",
            "collector.toml"])
        wait_port(self.port)

    def start_agent(self, speed: float | None = None) -> None:
        """Start the agent replaying the capture (it exits once everything is delivered)."""
        sp = self.speed if speed is None else speed
        self.agent = self._spawn("agent", [
            "otsentry.agent.cli", "--log-format", "json", "run", "--config", "agent.toml",
            "--pcap", str(PCAP), "--speed", str(sp)])

    @staticmethod
    def kill(proc: subprocess.Popen | None) -> None:
        """kill -9 and reap."""
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()

    def wait_agent(self, timeout: float = 40.0) -> None:
        """Wait for the agent to deliver everything and exit 0."""
        assert self.agent is not None
        try:
            rc = self.agent.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill(self.agent)
            raise AssertionError(f"agent did not finish; log: {self.tail()}") from None
        assert rc == 0, f"agent exited {rc}: {self.tail()}"

    def stop(self) -> None:
        """Stop both processes (collector with SIGTERM, so its store is closed cleanly)."""
        self.kill(self.agent)
        if self.collector is not None and self.collector.poll() is None:
            self.collector.send_signal(signal.SIGTERM)
            try:
                self.collector.wait(10)
            except subprocess.TimeoutExpired:
                self.kill(self.collector)

    def tail(self) -> str:
        """The end of the newest agent log."""
        logs = [p for p in self.logs if p.name.startswith("agent")]
        return logs[-1].read_text()[-3000:] if logs else ""

    def status(self) -> dict:
        """The agent's status file (empty before the first write)."""
        try:
            return json.loads((self.root / "state" / "status.json").read_text())
        except (OSError, ValueError):
            return {}


@lru_cache(maxsize=1)
def expected_findings() -> dict[str, tuple[int, int]]:
    """id -> (final revision, count) that the agent's pipeline produces from :data:`PCAP`."""
    from otsentry.agent.detect import RING_FRAMES, Engine, with_inventory
    from otsentry.agent.inventory import Inventory
    from otsentry.agent.pipeline import Pipeline, PipelineConfig
    from otsentry.agent.source import open_source
    from otsentry.common.finding import merge_all

    import tomllib

    from otsentry.agent.detect import config_from_dict

    cfg = load_agent_config(None)
    engine = Engine(config_from_dict(tomllib.loads(DETECT)["detect"]), learn_ns=5_000_000_000,
                    scope=AGENT_ID, agent_clock=lambda _ts: time.time_ns())
    pipe = Pipeline(with_inventory(engine, Inventory()), PipelineConfig(
        ports=cfg.capture.ports, heuristic=cfg.capture.heuristic, ring_frames=RING_FRAMES))
    with open_source(str(PCAP)) as src:
        for ts, lt, data in src:
            pipe.feed(ts, lt, data)
    pipe.finish()
    engine.finish()
    return {i: (f.revision, f.count) for i, f in merge_all(engine.drain()).items()}


@dataclass
class Outcome:
    """What the collector holds against what the agent produced."""

    expected: int
    stored: int
    lost: list[str]
    duplicated: list[str]


def compare(store_path: Path) -> Outcome:
    """Findings lost (missing, or an older revision) and messages stored twice (count > seq)."""
    want = expected_findings()
    store = Store(f"sqlite:///{store_path}")
    try:
        have = {i: (f.revision, f.count) for (_a, i), f in store.findings(AGENT_ID).items()}
        streams = store.streams()
    finally:
        store.close()
    lost = [i for i, (rev, _c) in want.items() if i not in have or have[i][0] < rev]
    lost += [f"epoch {e:x}: {hwm - n} messages missing" for (_a, e), (hwm, n) in streams.items()
             if n < hwm]
    dup = [i for i, (rev, c) in have.items() if i in want and (rev, c) != want[i]]
    dup += [f"epoch {e:x}: {n - hwm} messages twice" for (_a, e), (hwm, n) in streams.items()
            if n > hwm]
    return Outcome(len(want), len(have), lost, dup)


class Proxy:
    """A TCP proxy on 127.0.0.1 (asyncio, in its own thread) that injects link faults.

    Args:
        target: the port to forward to.
        delay_s: hold every chunk from the target this long (a slow collector's acks).
    """

    def __init__(self, target: int, delay_s: float = 0.0) -> None:
        self.target, self.delay_s = target, delay_s
        self.port = 0
        self.conns: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []
        self.stalled: set[int] = set()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.port = self._call(self._start())

    def _call(self, coro: object) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)  # type: ignore[arg-type]

    async def _start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            cw.close()
            return
        pair = (cw, uw)
        self.conns.append(pair)
        await asyncio.gather(self._pipe(cr, uw, pair, 0.0), self._pipe(ur, cw, pair, self.delay_s),
                             return_exceptions=True)
        for w in pair:
            w.close()
        if pair in self.conns:
            self.conns.remove(pair)

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter, pair: tuple,
                    delay: float) -> None:
        while data := await r.read(65536):
            if delay:
                await asyncio.sleep(delay)
            while id(pair) in self.stalled:
                await asyncio.sleep(0.05)
            w.write(data)
            await w.drain()
        w.close()

    def fault(self, kind: str, stall_s: float = 2.5) -> int:
        """Inject ``drop`` (FIN), ``reset`` (RST) or ``stall`` into every open connection.

        Returns:
            How many connections were hit.
        """
        return self._call(self._fault(kind, stall_s))  # type: ignore[return-value]

    async def _fault(self, kind: str, stall_s: float) -> int:
        conns = list(self.conns)
        for pair in conns:
            if kind == "stall":
                self.stalled.add(id(pair))
                self.loop.call_later(stall_s, self._end_stall, pair)
                continue
            for w in pair:
                sock = w.get_extra_info("socket")
                if kind == "reset" and sock is not None and sock.fileno() >= 0:
                    try:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                        struct.pack("ii", 1, 0))
                    except OSError:  # closed meanwhile by the other side
                        pass
                w.close()
        return len(conns)

    def _end_stall(self, pair: tuple) -> None:
        self.stalled.discard(id(pair))
        for w in pair:
            w.close()

    def close(self) -> None:
        """Stop the proxy and its thread."""
        async def stop() -> None:
            self._server.close()
            for pair in list(self.conns):
                for w in pair:
                    w.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self._call(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
