"""The agent's pipeline: frames in, Modbus events and transactions out to sinks.

    pipe = Pipeline([stats, writer])        # sinks: callables (flow, adus, transactions)
    for ts, linktype, frame in source:
        pipe.feed(ts, linktype, frame)
    pipe.finish()

Every output of the agent (``decode``, ``--stats``, inventory, detection, the
live agent) runs through this one pipeline and the one decoder; sinks are the
swappable last step.  Sans-I/O: capture times come in with the frames.

Sinks get, per packet that produced something, the flow, the list of ADU-level
events (messages, :class:`Malformed`, :class:`Gap`, :class:`NotModbus`,
:class:`Violation`) and the list of transactions completed by them.  Events
that belong to no flow (IP fragments on a Modbus port) are delivered with
``flow=None``.

Bounds: at most ``max_flows`` flows are tracked (the least recently active
tenth is closed when full, counted in ``flows_evicted``); idle flows close after
``idle_timeout_ns`` of capture time; TCP and transaction state are bounded per
flow (see :mod:`.reassembly` and :mod:`.transactions`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

from otsentry.agent.flows import HEURISTIC_TRIES, Flow, FrameRing, looks_like_modbus
from otsentry.agent.modbus import spec
from otsentry.agent.modbus._events import (
    Connection,
    Malformed,
    Message,
    NotModbus,
    TlsServerCertificate,
    Violation,
)
from otsentry.agent.packet import TCP, PacketParser, frame_details
from otsentry.agent.reassembly import ReassemblyStats
from otsentry.agent.tls import TlsCertificateReader
from otsentry.agent.transactions import DEFAULT_MAX_PENDING, DEFAULT_TIMEOUT_NS

__all__ = ["Pipeline", "Sink", "PipelineConfig"]

Sink = Callable[[Flow | None, list, list], None]
_SWEEP_NS: Final = 1_000_000_000


class PipelineConfig:
    """Knobs of the pipeline, with defaults that work on one machine.

    Attributes:
        ports: TCP/UDP ports where Modbus is decoded without a heuristic.
        tls_ports: ports of Modbus/TCP Security (TLS), classified, not decoded.
        heuristic: look for Modbus on other ports.
        idle_timeout_ns: close flows silent for this long (capture time).
        tx_timeout_ns: a request unanswered for this long is reported.
        max_flows: bound on tracked flows.
        max_pending: bound on waiting requests per flow.
        ring_frames: raw frames kept per Modbus flow (``Flow.ring``) for evidence
            pcap slices; 0 keeps none.
    """

    __slots__ = ("ports", "tls_ports", "heuristic", "idle_timeout_ns", "tx_timeout_ns",
                 "max_flows", "max_pending", "ring_frames")

    def __init__(self, ports: Iterable[int] = (spec.MODBUS_PORT,),
                 tls_ports: Iterable[int] = (spec.MODBUS_TLS_PORT,), heuristic: bool = True,
                 idle_timeout_ns: int = 600_000_000_000, tx_timeout_ns: int = DEFAULT_TIMEOUT_NS,
                 max_flows: int = 65_536, max_pending: int = DEFAULT_MAX_PENDING,
                 ring_frames: int = 0) -> None:
        self.ports = frozenset(ports)
        self.tls_ports = frozenset(tls_ports)
        self.heuristic = heuristic
        self.idle_timeout_ns = idle_timeout_ns
        self.tx_timeout_ns = tx_timeout_ns
        self.max_flows = max_flows
        self.max_pending = max_pending
        self.ring_frames = ring_frames


class Pipeline:
    """Run frames through packet parsing, reassembly, decoding and pairing.

    Counters: ``frames``, ``flows_created``, ``flows_evicted``, ``flows_idle_closed``,
    plus ``parser`` (:class:`PacketParser`) and ``tcp`` (:class:`ReassemblyStats`).
    """

    def __init__(self, sinks: list[Sink], config: PipelineConfig | None = None) -> None:
        self.config = cfg = config or PipelineConfig()
        self.sinks = sinks
        self.parser = PacketParser(cfg.ports | cfg.tls_ports)
        self.tcp = ReassemblyStats()
        self.flows: dict[tuple, tuple[Flow, int]] = {}
        self.frames = 0
        self.flows_created = 0
        self.flows_evicted = 0
        self.flows_idle_closed = 0
        self.next_flow_id = 1
        self._violations: list[tuple[str, int, int, int]] = []
        self._last_sweep = 0
        self._fragments_seen = 0

    # --- per frame ------------------------------------------------------------------------

    def feed(self, ts: int, linktype: int, data: bytes) -> None:
        """Process one captured frame (capture time ``ts`` in ns)."""
        self.frames += 1
        frame = self.frames
        p = self.parser.parse(linktype, data)
        if p is None:
            if self.parser.fragments_modbus != self._fragments_seen:
                self._fragments_seen = self.parser.fragments_modbus
                self._emit(None, [Violation(None, "ip-fragment", ts, frame,
                                            "IP fragment on a Modbus port")], [])
            return
        proto, src, dst, sport, dport, seq, flags, payload, ip_id = p
        entry = self.flows.get((src, dst, sport, dport, proto))
        if entry is None:
            entry = self._new_flow(ts, linktype, data, proto, src, dst, sport, dport, flags)
        flow, direction = entry
        flow.last_ts = ts
        flow.packets += 1
        if flow.seen_ends != 3:
            flow.set_details(frame_details(linktype, data), direction == 0)
        if flow.kind != "modbus":
            if flow.kind == "candidate" and payload:
                self._try_heuristic(flow, direction, payload, flags)
            elif flow.kind == "modbus-tls" and payload and direction == 1 and flow.tls is not None:
                self._tls(flow, payload, ts, frame)
            if flow.kind != "modbus":
                return
        ring = flow.ring
        if ring is not None:
            ring.add(ts, linktype, data)
        if not payload and not flags & 0x07:  # a pure ACK: nothing for reassembly
            if ts - self._last_sweep > _SWEEP_NS:
                self._sweep(ts)
            return
        if proto == TCP:
            flow.streams[direction].segment(seq, flags, payload, ts, frame, ip_id)  # type: ignore[index]
        elif payload:
            flow.decoder.datagram(direction, payload, ts, frame)  # type: ignore[union-attr]
        if flow.decoder._events or self._violations:  # type: ignore[union-attr]
            self._dispatch(flow)
        if ts - self._last_sweep > _SWEEP_NS:
            self._sweep(ts)

    def _dispatch(self, flow: Flow) -> None:
        dec = flow.decoder
        assert dec is not None and flow.txs is not None
        events = dec._events
        dec._events = []
        if self._violations:
            events.extend(Violation(d, kind, ts, fr) for kind, ts, fr, d in self._violations)
            self._violations.clear()
        txs: list = []
        table = flow.txs
        for e in events:
            if isinstance(e, Message):
                if e.is_request:
                    table.request(e, txs)
                else:
                    table.response(e, txs)
            elif isinstance(e, Malformed):
                if e.fc is not None:
                    if e.direction == 0:
                        table.request(e, txs)
                    else:
                        table.response(e, txs)
            elif isinstance(e, NotModbus):
                flow.kind = "not-modbus"
        for sink in self.sinks:
            sink(flow, events, txs)

    def _emit(self, flow: Flow | None, events: list, txs: list) -> None:
        for sink in self.sinks:
            sink(flow, events, txs)

    # --- flows ----------------------------------------------------------------------------

    def _new_flow(self, ts: int, linktype: int, data: bytes, proto: int, src: bytes, dst: bytes,
                  sport: int, dport: int, flags: int) -> tuple[Flow, int]:
        cfg = self.config
        src_is_client = self._src_is_client(sport, dport, flags)
        transport = "tcp" if proto == TCP else "udp"
        if src_is_client:
            flow = Flow(self.next_flow_id, transport, src, sport, dst, dport, ts)
        else:
            flow = Flow(self.next_flow_id, transport, dst, dport, src, sport, ts)
        self.next_flow_id += 1
        self.flows_created += 1
        server_port = flow.server_port
        syn_only = proto == TCP and flags & 0x12 == 0x02
        if server_port in cfg.ports or flow.client_port in cfg.ports:
            self._start(flow, not syn_only)
        elif proto == TCP and server_port in cfg.tls_ports:
            flow.kind = "modbus-tls"
            flow.tls = TlsCertificateReader()
        elif cfg.heuristic:
            flow.kind = "candidate"
            flow.midstream = not syn_only
        else:
            flow.kind = "ignored"
        if len(self.flows) >= 2 * cfg.max_flows:
            self._evict(ts)
        fwd = (src, dst, sport, dport, proto)
        rev = (dst, src, dport, sport, proto)
        entry = (flow, 0 if src_is_client else 1)
        self.flows[fwd] = entry
        self.flows[rev] = (flow, 1 - entry[1])
        flow.keys = (fwd, rev)
        if flow.kind in ("modbus", "modbus-tls"):
            self._emit(flow, [Connection(entry[1], ts, self.frames, flags)], [])
        return entry

    def _tls(self, flow: Flow, payload: bytes, ts: int, frame: int) -> None:
        """Read the server certificate of a Modbus/TLS connection; tell the sinks once."""
        reader = flow.tls
        result = reader.receive(payload)  # type: ignore[attr-defined]
        if reader.done:  # type: ignore[attr-defined]
            flow.tls = None
        if result is not None:
            self._emit(flow, [TlsServerCertificate(result, ts, frame)], [])

    def _src_is_client(self, sport: int, dport: int, flags: int) -> bool:
        ports = self.config.ports | self.config.tls_ports
        if dport in ports and sport not in ports:
            return True
        if sport in ports and dport not in ports:
            return False
        if flags & 0x12 == 0x02:  # SYN without ACK: sent by the client
            return True
        if flags & 0x12 == 0x12:  # SYN+ACK: sent by the server
            return False
        return dport <= sport

    def _start(self, flow: Flow, midstream: bool) -> None:
        cfg = self.config
        flow.start_modbus(midstream, self.tcp, self._violations, cfg.tx_timeout_ns, cfg.max_pending)
        if cfg.ring_frames:
            flow.ring = FrameRing(cfg.ring_frames)

    def _try_heuristic(self, flow: Flow, direction: int, payload: bytes, flags: int) -> None:
        flow.tries += 1
        if looks_like_modbus(payload):
            self._start(flow, flow.midstream)
            # The first segment was only inspected; it is fed by the caller next.
            return
        if flow.tries >= HEURISTIC_TRIES:
            flow.kind = "ignored"

    def _close(self, flow: Flow, ts: int, at_end: bool = False) -> None:
        if flow.closed:
            return
        flow.closed = True
        frame = self.frames
        if flow.kind == "modbus":
            if flow.streams is not None:
                for stream in flow.streams:
                    stream.close(ts, frame)
            else:
                flow.decoder.eof(0, ts, frame)  # type: ignore[union-attr]
                flow.decoder.eof(1, ts, frame)  # type: ignore[union-attr]
            if flow.decoder._events or self._violations:  # type: ignore[union-attr]
                self._dispatch(flow)
            txs: list = []
            flow.txs.expire(ts, txs, everything=True, at_end=at_end)  # type: ignore[union-attr]
            if txs:
                self._emit(flow, [], txs)
        for key in flow.keys:
            self.flows.pop(key, None)

    def _sweep(self, ts: int) -> None:
        """Once a second of capture time: expire unanswered requests and idle flows."""
        self._last_sweep = ts
        idle = ts - self.config.idle_timeout_ns
        seen = set()
        for flow, _d in list(self.flows.values()):
            if flow.id in seen:
                continue
            seen.add(flow.id)
            if flow.last_ts < idle:
                self.flows_idle_closed += 1
                self._close(flow, ts)
            elif flow.txs is not None and (flow.txs.npending or flow.txs.orphans):
                txs: list = []
                flow.txs.expire(ts, txs)
                if txs:
                    self._emit(flow, [], txs)

    def _evict(self, ts: int) -> None:
        flows = {f.id: f for f, _d in self.flows.values()}
        victims = sorted(flows.values(), key=lambda f: f.last_ts)[: max(1, len(flows) // 10)]
        for flow in victims:
            self.flows_evicted += 1
            self._close(flow, ts)

    def finish(self, ts: int | None = None) -> None:
        """End of input: close every flow, report what is still pending."""
        end = ts if ts is not None else max((f.last_ts for f, _ in self.flows.values()), default=0)
        for flow, _d in list(self.flows.values()):
            self._close(flow, end, at_end=True)

    def active_flows(self) -> int:
        """Number of flows currently tracked."""
        return len(self.flows) // 2
