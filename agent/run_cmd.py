"""``otsentry-agent run``: capture -> pipeline (inventory, detection) -> outbox -> collector.

Two threads, one job each: the capture thread reads packets and runs the
sans-I/O pipeline, putting findings (each new revision) and inventory changes
into the durable outbox; the event loop runs the shipper, which delivers the
outbox to the collector, and rewrites ``STATE_DIR/status.json`` for
``otsentry-agent status``.  They share nothing but the outbox file.

SIGTERM or SIGINT stops the capture, puts what it produced so far in the
outbox, gives the collector a moment to ack what is in flight, and exits 0.
What was not acked is resent by the next run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import structlog

from otsentry import __version__
from otsentry.common import sdnotify
from otsentry.common.config import AgentConfig, load_agent_config
from otsentry.common.errors import CaptureError, ConfigError, PkiError
from otsentry.common.logging import get_logger
from otsentry.v1 import common_pb2, ingest_pb2, inventory_pb2, status_pb2

__all__ = ["SUMMARY", "add_arguments", "run", "Agent", "STATUS_FILE", "OUTBOX_FILE",
           "delta_of"]

SUMMARY = "run the sensor: capture, detect, keep the inventory, deliver to the collector"
STATUS_FILE = "status.json"
OUTBOX_FILE = "outbox.sqlite"
#: once stopping, delivery gets this long to finish what is in flight and close its stream
SHUTDOWN_S = 20.0
DEFAULT_CONFIG = "/etc/otsentry/agent.toml"

HELP = """\
Runs the agent: listens on the mirror port named in the config ([capture]
interface), or replays a capture file (--pcap), decodes Modbus, keeps the asset
inventory, detects attacks and anomalies, and delivers findings, inventory
changes and its own health to the collector over mutual TLS.  Nothing is sent
to the devices it watches.

Everything to deliver is first written to the outbox on disk, so nothing is
lost when the collector or the link is down: it is delivered when the link
comes back.  With --pcap the agent exits once the file is replayed and
everything is delivered; live, it runs until stopped (systemctl stop, Ctrl-C).

before the first run:
  otsentry-agent enroll --site S --agent A     (then install the certificate)

examples:
  otsentry-agent run --config /etc/otsentry/agent.toml
  otsentry-agent run --config agent.toml --pcap plant.pcap --speed 1   # as captured
  otsentry-agent run --config agent.toml --pcap plant.pcap             # as fast as possible
  otsentry-agent status                                                # what it is doing
"""


def log() -> structlog.typing.FilteringBoundLogger:
    """This module's logger, looked up per call so that it follows ``configure()``."""
    return get_logger("agent.run")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``run``."""
    p.description = HELP
    p.add_argument("--config", metavar="FILE", default=None,
                   help=f"the agent's TOML config (default: {DEFAULT_CONFIG} if it exists; "
                        "packaging/agent.toml documents every option)")
    p.add_argument("--pcap", metavar="FILE", help="replay this capture file instead of capturing")
    p.add_argument("--speed", metavar="X", type=float,
                   help="with --pcap: 1 = at capture speed, 10 = ten times faster, "
                        "0 = as fast as possible (default: [capture] replay_speed)")
    p.add_argument("--keep-running", action="store_true",
                   help="with --pcap: keep running after the replay (until stopped)")


def run(args: argparse.Namespace) -> int:
    """Run the agent until it is stopped (or, with --pcap, until all is delivered)."""
    path = args.config or (DEFAULT_CONFIG if Path(DEFAULT_CONFIG).exists() else None)
    cfg = load_agent_config(path)
    source = args.pcap or cfg.capture.pcap
    speed = cfg.capture.replay_speed if args.speed is None else args.speed
    if source:
        if not Path(source).is_file():
            raise CaptureError("no such capture file", source)
    elif cfg.capture.interface:
        source = f"iface:{cfg.capture.interface}"
    else:
        raise ConfigError(cfg.path, "capture.interface",
                          "an interface to listen on, or capture.pcap (or run --pcap FILE)")
    for what, p in (("ca", cfg.collector.ca), ("cert", cfg.collector.cert),
                    ("key", cfg.collector.key)):
        if not p.is_file():
            raise PkiError(f"{p}: missing (collector.{what}); enrol this agent first: "
                           "otsentry-agent enroll --site S --agent A")
    agent = Agent(cfg, source, speed, exit_when_done=bool(args.pcap or cfg.capture.pcap)
                  and not args.keep_running)
    return asyncio.run(agent.main())


def delta_of(change: Any, now_ns: int) -> ingest_pb2.Envelope:
    """An inventory change as an ``InventoryDelta`` envelope (revision: its capture time)."""
    kind = (inventory_pb2.CHANGE_KIND_ADDED if change.kind in ("new-asset", "new-device")
            else inventory_pb2.CHANGE_KIND_UPDATED)
    attrs = {"change": change.kind}
    for k, v in change.detail.items():
        attrs[k] = v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str)
    delta = inventory_pb2.InventoryDelta(
        asset=common_pb2.AssetKey(ip=change.ip or "", mac=change.mac or "", vlan=change.vlan),
        unit=change.unit, change=kind, revision=change.ts, attributes=attrs,
        times=common_pb2.Times(capture_ns=change.ts, agent_ns=now_ns))
    return ingest_pb2.Envelope(queued_ns=now_ns, inventory=delta)


def snapshot_delta(snap: Any, now_ns: int) -> ingest_pb2.Envelope:
    """An inventory snapshot (:mod:`otsentry.agent.inventory._snapshot`) as a SEEN delta."""
    delta = inventory_pb2.InventoryDelta(
        asset=common_pb2.AssetKey(ip=snap.ip, mac=snap.mac or "", vlan=snap.vlan),
        unit=snap.unit, change=inventory_pb2.CHANGE_KIND_SEEN, revision=snap.ts,
        attributes=snap.attributes,
        device_id=[inventory_pb2.DeviceIdObject(object_id=k, value=v)
                   for k, v in sorted(snap.device_id.items())],
        times=common_pb2.Times(capture_ns=snap.ts, agent_ns=now_ns))
    return ingest_pb2.Envelope(queued_ns=now_ns, inventory=delta)


class Agent:
    """The running agent: the capture thread, the shipper and the status file.

    Args:
        cfg: the checked config.
        source: a capture file or ``iface:NAME``.
        speed: replay speed of a file (0: as fast as possible).
        exit_when_done: return once the file is replayed and the outbox is empty.
    """

    def __init__(self, cfg: AgentConfig, source: str, speed: float, exit_when_done: bool) -> None:
        self.cfg, self.source, self.speed = cfg, source, speed
        self.exit_when_done = exit_when_done
        self.started_ns, self._t0 = time.time_ns(), time.monotonic()
        self.state_dir = cfg.state_dir
        self.outbox_path = cfg.state_dir / OUTBOX_FILE
        self._stop_capture = threading.Event()
        self._capture_done = threading.Event()
        self._src: Any = None
        self._pipe: Any = None
        self._engine: Any = None
        self.capture_error = ""
        self.findings_out = 0
        self.changes_out = 0
        self.snapshots_out = 0
        self._snapshot_at = time.monotonic()  # the first snapshot one interval in
        self._snapshot_since = 0  # capture time covered by the last snapshot
        self._outbox_stats: dict[str, object] = {}
        self._proc = psutil.Process()
        self._proc.cpu_percent(None)

    # -- the event loop ---------------------------------------------------------------------

    async def main(self) -> int:
        """Run until stopped; returns the exit code."""
        from otsentry.agent.metrics import start_agent_metrics
        from otsentry.agent.outbox import Outbox
        from otsentry.agent.shipper import Shipper

        self.state_dir.mkdir(parents=True, exist_ok=True)
        Outbox(self.outbox_path, **self._bounds()).close()  # create it, with its epoch
        self.shipper = Shipper(self.outbox_path, self.cfg.agent_id, self.cfg.collector,
                               outbox_kwargs=self._bounds(), status=self.agent_status)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, stop)
        loop.add_signal_handler(signal.SIGUSR1, dump_stacks)
        log().info("agent started", agent=self.cfg.agent_id, source=self.source,
                   speed=self.speed, endpoints=list(self.cfg.collector.endpoints),
                   epoch=self.shipper.epoch, state_dir=str(self.state_dir))
        metrics = start_agent_metrics(self)
        capture = loop.run_in_executor(None, self._capture)
        ship = asyncio.ensure_future(self.shipper.run(stop))
        status = asyncio.ensure_future(self._status_file_loop(stop))
        sdnotify.ready(f"capturing from {self.source}")
        # A live capture that failed stops the pings: systemd restarts the agent.
        watchdog = asyncio.ensure_future(sdnotify.watchdog_loop(
            stop, healthy=lambda: not self.capture_error))
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait([ship, stopped], return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        try:
            await asyncio.wait_for(asyncio.shield(ship), SHUTDOWN_S)
        except asyncio.TimeoutError:
            # Never hang a stop (systemd, a replay's end): what is not acked stays in the
            # outbox, which is durable, and goes out on the next start.
            dump_stacks()
            log().warning("delivery did not stop in time", after_s=SHUTDOWN_S)
            ship.cancel()
            await asyncio.gather(ship, return_exceptions=True)
        sdnotify.stopping()
        self._stop_capture.set()
        await capture
        status.cancel()
        watchdog.cancel()
        await asyncio.gather(status, watchdog, return_exceptions=True)
        self._write_status()
        if metrics is not None:
            metrics.close()
        log().info("agent stopped", agent=self.cfg.agent_id,
                   depth=self._outbox_stats.get("depth"), findings=self.findings_out)
        return 0

    def _bounds(self) -> dict[str, int]:
        return {"max_messages": self.cfg.outbox.max_messages,
                "max_bytes": self.cfg.outbox.max_bytes}

    def _on_signal(self, stop: asyncio.Event) -> None:
        log().info("stopping", reason="signal")
        self._stop_capture.set()
        src = self._src
        if src is not None and hasattr(src, "stop"):
            src.stop()
        # Let the capture thread put what it has in the outbox before delivery stops.
        asyncio.ensure_future(self._stop_after_capture(stop))

    async def _stop_after_capture(self, stop: asyncio.Event) -> None:
        while not self._capture_done.is_set():
            await asyncio.sleep(0.02)
        stop.set()

    async def _status_file_loop(self, stop: asyncio.Event) -> None:
        while True:
            self._outbox_stats = await self.shipper.outbox_stats()
            self._write_status()
            if (self.exit_when_done and self._capture_done.is_set()
                    and self._outbox_stats["depth"] == 0):
                log().info("replay delivered", findings=self.findings_out,
                           inventory_changes=self.changes_out)
                stop.set()
                return
            await asyncio.sleep(min(self.cfg.status_file_interval_s, 0.2)
                                if self._capture_done.is_set() else
                                self.cfg.status_file_interval_s)

    # -- status -----------------------------------------------------------------------------

    def status_dict(self) -> dict[str, Any]:
        """What ``otsentry-agent status`` shows (plain JSON values)."""
        src, pipe = self._src, self._pipe
        st = getattr(src, "stats", None)
        return {
            "pid": os.getpid(), "agent_id": self.cfg.agent_id, "version": __version__,
            "started_ns": self.started_ns, "updated_ns": time.time_ns(),
            "source": self.source, "mode": getattr(self._engine, "mode", ""),
            "capture": {"packets": getattr(st, "packets", 0), "bytes": getattr(st, "bytes_read", 0),
                        "kernel_drops": getattr(st, "kernel_drops", 0),
                        "interface_drops": getattr(st, "if_drops", 0),
                        "done": self._capture_done.is_set(), "error": self.capture_error},
            "flows": {"active": pipe.active_flows() if pipe else 0,
                      "total": getattr(pipe, "flows_created", 0)},
            "produced": {"finding_revisions": self.findings_out,
                         "inventory_changes": self.changes_out},
            "outbox": self._outbox_stats,
            "shipper": self.shipper.state.as_dict(),
            "endpoints": list(self.cfg.collector.endpoints),
            "memory_rss_bytes": self._proc.memory_info().rss,
        }

    def _write_status(self) -> None:
        path = self.state_dir / STATUS_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.status_dict(), indent=1, default=str))
        os.replace(tmp, path)

    def agent_status(self) -> status_pb2.AgentStatus:
        """The periodic ``AgentStatus`` (health, counters, our clock for the skew estimate)."""
        d = self.status_dict()
        disk = psutil.disk_usage(str(self.state_dir))
        mem = self._proc.memory_info()
        cap, ob = d["capture"], self._outbox_stats
        return status_pb2.AgentStatus(
            version=__version__, agent_clock_ns=time.time_ns(),
            uptime_ns=int((time.monotonic() - self._t0) * 1e9),
            capture=[status_pb2.CaptureStats(
                source=self.source, packets=cap["packets"], bytes=cap["bytes"],
                kernel_drops=cap["kernel_drops"], interface_drops=cap["interface_drops"])],
            flows_active=d["flows"]["active"], flows_total=d["flows"]["total"],
            outbox_depth=int(ob.get("depth", 0)), outbox_bytes=int(ob.get("bytes", 0)),
            outbox_dropped=sum(dict(ob.get("dropped", {})).values()),
            host=status_pb2.HostStats(cpu_percent=self._proc.cpu_percent(None),
                                      memory_rss_bytes=mem.rss,
                                      memory_percent=self._proc.memory_percent(),
                                      disk_free_bytes=disk.free, disk_total_bytes=disk.total),
            mode="learning" if d["mode"] == "learning" else "protecting")

    # -- the capture thread -----------------------------------------------------------------

    def _capture(self) -> None:
        try:
            self._capture_loop()
        except CaptureError as exc:
            self.capture_error = str(exc)
            log().error("capture failed", source=self.source, error=str(exc))
        finally:
            self._capture_done.set()

    def _capture_loop(self) -> None:
        from otsentry.agent.detect import RING_FRAMES, Engine, load_baseline, with_inventory
        from otsentry.agent.inventory import Inventory
        from otsentry.agent.outbox import Outbox
        from otsentry.agent.pipeline import Pipeline, PipelineConfig
        from otsentry.agent.source import open_source

        cfg, cap = self.cfg, self.cfg.capture
        baseline = load_baseline(cfg.baseline) if cfg.baseline else None
        learn_ns = int(cfg.learn_s * 1e9) if cfg.learn_s is not None else None
        live = self.source.startswith("iface:")
        self._engine = engine = Engine(cfg.detect, baseline=baseline, learn_ns=learn_ns,
                                       scope=cfg.agent_id, agent_clock=lambda _ts: time.time_ns(),
                                       live=live)
        inventory = Inventory(state_dir=self.state_dir)
        self._pipe = pipe = Pipeline(with_inventory(engine, inventory), PipelineConfig(
            ports=cap.ports, heuristic=cap.heuristic, ring_frames=RING_FRAMES))
        outbox = Outbox(self.outbox_path, **self._bounds())
        self._src = src = open_source(self.source, bpf=cap.bpf)
        try:
            self._replay(src, pipe, lambda: self._flush(engine, inventory, outbox))
            pipe.finish()
            engine.finish()
            self._flush(engine, inventory, outbox, snapshot=True)
            inventory.save()
        finally:
            src.close()
            outbox.close()
        log().info("capture finished", source=self.source, packets=src.stats.packets,
                   findings=self.findings_out, stopped=self._stop_capture.is_set())

    def _replay(self, src: Any, pipe: Any, flush: Any) -> None:
        """Feed every packet (paced for a replay with a speed), flushing every 200 ms."""
        feed, stop, speed = pipe.feed, self._stop_capture, self.speed
        start = last = time.monotonic()
        ts0 = None
        for n, (ts, linktype, data) in enumerate(src):
            if stop.is_set():
                break
            if speed > 0:
                ts0 = ts if ts0 is None else ts0
                ahead = (ts - ts0) / 1e9 / speed - (time.monotonic() - start)
                if ahead > 0.001:
                    flush()
                    if stop.wait(ahead):
                        break
            feed(ts, linktype, data)
            if not n & 0xFF and time.monotonic() - last > 0.2:
                flush()
                last = time.monotonic()

    def _flush(self, engine: Any, inventory: Any, outbox: Any, snapshot: bool = False) -> None:
        """Queue new findings and inventory changes; now and then (and when ``snapshot``)
        also the state of the assets active since the last snapshot ([agent] snapshot_interval)."""
        from otsentry.agent.inventory import snapshots

        findings = engine.drain()
        changes = inventory.drain_changes()
        now = time.time_ns()
        envelopes = [delta_of(c, now) for c in changes]
        if snapshot or time.monotonic() - self._snapshot_at >= self.cfg.snapshot_interval_s:
            self._snapshot_at = time.monotonic()
            snaps = list(snapshots(inventory, self._snapshot_since))
            self._snapshot_since = max([self._snapshot_since, *(x.ts for x in snaps)])
            envelopes += [snapshot_delta(x, now) for x in snaps]
            self.snapshots_out += len(snaps)
        if not findings and not envelopes:
            return
        outbox.put_many(findings, envelopes, queued_ns=now)
        self.findings_out += len(findings)
        self.changes_out += len(changes)


def dump_stacks() -> None:
    """Log where every task and thread is (``kill -USR1 PID``): for an agent that seems stuck."""
    import sys
    import traceback

    tasks = {}
    for task in asyncio.all_tasks():
        chain, obj = [], task.get_coro()
        while obj is not None and len(chain) < 50:  # the await chain, outermost first
            frame = getattr(obj, "cr_frame", None) or getattr(obj, "gi_frame", None)
            if frame is None:
                chain.append(f"awaiting {obj!r}"[:300])
                break
            chain.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
            obj = getattr(obj, "cr_await", None) or getattr(obj, "gi_yieldfrom", None)
        tasks[task.get_name()] = chain
    names = {t.ident: t.name for t in threading.enumerate()}
    threads = {names.get(ident, str(ident)): "".join(traceback.format_stack(frame)[-8:])
               for ident, frame in sys._current_frames().items()}
    log().warning("stack dump", tasks=tasks, threads=threads)
