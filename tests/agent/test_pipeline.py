"""The pipeline end to end: scapy-built frames in, Modbus events and transactions out to sinks."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw

from otsentry.agent.detect._pcap import pcap_slice
from otsentry.agent.flows import FrameRing
from otsentry.agent.modbus import Message, NotModbus
from otsentry.agent.pipeline import Pipeline, PipelineConfig
from otsentry.agent.stats import Stats
from otsentry.agent.testing import Conversation

MS = 1_000_000
CLIENT_MAC, SERVER_MAC = "00:00:00:00:00:01", "00:00:00:00:00:02"


class Collector:
    """A sink that keeps everything the pipeline hands it."""

    def __init__(self) -> None:
        self.events: list = []
        self.txs: list = []
        self.flows: list = []

    def __call__(self, flow, events, txs) -> None:
        self.events.extend(events)
        self.txs.extend(txs)
        if flow is not None and flow not in self.flows:
            self.flows.append(flow)

    def messages(self) -> list[Message]:
        return [e for e in self.events if isinstance(e, Message)]


class Wire:
    """Frames of one TCP connection, with sequence numbers kept per side."""

    def __init__(self, client=("10.0.0.1", 40000), server=("10.0.0.2", 502), vlan=None) -> None:
        self.client, self.server = client, server
        self.seq = {True: 1000, False: 5000}
        self.ts = 1_700_000_000_000_000_000
        self.vlan = vlan
        self.frames: list[tuple[int, int, bytes]] = []

    def send(self, from_client: bool, payload: bytes = b"", flags: str = "PA", dt: int = MS) -> None:
        (sip, sport), (dip, dport) = (self.client, self.server) if from_client else (
            self.server, self.client)
        smac, dmac = (CLIENT_MAC, SERVER_MAC) if from_client else (SERVER_MAC, CLIENT_MAC)
        eth = Ether(src=smac, dst=dmac)
        if self.vlan is not None:
            eth = eth / Dot1Q(vlan=self.vlan)
        pkt = eth / IP(src=sip, dst=dip) / TCP(sport=sport, dport=dport, flags=flags,
                                                 seq=self.seq[from_client]) / Raw(payload)
        self.seq[from_client] += len(payload) + (1 if "S" in flags or "F" in flags else 0)
        self.ts += dt
        self.frames.append((self.ts, 1, bytes(pkt)))

    def handshake(self) -> None:
        self.send(True, flags="S")
        self.send(False, flags="SA")
        self.send(True, flags="A")

    def exchange(self, ex, latency: int = 2 * MS) -> None:
        self.send(True, ex.request)
        self.send(False, ex.response, dt=latency)

    def close(self) -> None:
        self.send(True, flags="FA")
        self.send(False, flags="FA")


def _run(frames, config: PipelineConfig | None = None) -> tuple[Collector, Pipeline]:
    sink = Collector()
    pipe = Pipeline([sink], config)
    for ts, lt, data in frames:
        pipe.feed(ts, lt, data)
    pipe.finish()
    return sink, pipe


class TestTcp:
    def test_end_to_end(self) -> None:
        """A captured session gives one ok transaction per exchange, with endpoints, MACs, VLAN and latency."""
        conv, wire = Conversation(unit=3), Wire(vlan=12)
        wire.handshake()
        wire.exchange(conv.exchange(3, address=7, registers=(1, 2)), latency=4 * MS)
        wire.exchange(conv.exchange(16, address=1, registers=(9,)))
        wire.exchange(conv.exception(1, 2, address=0, values=(1,)))
        wire.close()
        sink, pipe = _run(wire.frames)
        assert [(t.status, t.fc, t.unit) for t in sink.txs] == [("ok", 3, 3), ("ok", 16, 3),
                                                                ("exception", 1, 3)]
        assert sink.txs[0].latency_ns == 4 * MS
        assert sink.txs[0].response.registers == (1, 2)
        (flow,) = sink.flows
        assert (flow.client_endpoint, flow.server_endpoint) == ("10.0.0.1:40000", "10.0.0.2:502")
        assert (flow.client_mac, flow.server_mac, flow.vlan) == (CLIENT_MAC, SERVER_MAC, 12)
        assert flow.midstream is False
        assert pipe.active_flows() == 0

    def test_server_role_from_port_502(self) -> None:
        """Midstream, without a handshake, the port-502 end is the server and polling pairs."""
        conv, wire = Conversation(), Wire()
        for i in range(3):
            wire.exchange(conv.exchange(3, address=i))
        sink, _pipe = _run(wire.frames)
        (flow,) = sink.flows
        assert (flow.server_port, flow.client_port, flow.midstream) == (502, 40000, True)
        assert [(t.status, t.request.address) for t in sink.txs] == [("ok", 0), ("ok", 1), ("ok", 2)]

    def test_server_role_from_syn_when_both_ports_are_502(self) -> None:
        """When both ends use port 502, the receiver of the SYN is the server."""
        conv, wire = Conversation(), Wire(client=("10.0.0.9", 502), server=("10.0.0.2", 502))
        wire.handshake()
        wire.exchange(conv.exchange(3))
        sink, _pipe = _run(wire.frames)
        (flow,) = sink.flows
        assert (flow.client, flow.server, flow.midstream) == ("10.0.0.9", "10.0.0.2", False)
        assert [t.status for t in sink.txs] == ["ok"]

    def test_midstream_orphan_response_then_polling(self) -> None:
        """A response left over from before the capture is unmatched; the exchanges after it pair."""
        conv, wire = Conversation(), Wire()
        wire.send(False, conv.exchange(3).response)
        for i in range(3):
            wire.exchange(conv.exchange(3, address=i))
        sink, _pipe = _run(wire.frames)
        assert sorted(t.status for t in sink.txs) == ["ok", "ok", "ok", "unmatched"]
        (orphan,) = [t for t in sink.txs if t.status == "unmatched"]
        assert orphan.response.tid == 1

    def test_server_role_from_syn_and_heuristic_port(self) -> None:
        """On port 5020 the heuristic finds Modbus, and the SYN's receiver is the server."""
        conv, wire = Conversation(), Wire(client=("10.0.0.1", 1024), server=("10.0.0.2", 5020))
        wire.handshake()
        for _ in range(2):
            wire.exchange(conv.exchange(3, registers=(5,)))
        sink, _pipe = _run(wire.frames)
        (flow,) = sink.flows
        assert (flow.server_port, flow.client_port, flow.kind) == (5020, 1024, "modbus")
        assert [t.status for t in sink.txs] == ["ok", "ok"]

    def test_heuristic_ignores_other_protocols(self) -> None:
        """A flow on another port that does not look like Modbus is ignored, with no events."""
        wire = Wire(server=("10.0.0.2", 8080))
        wire.handshake()
        for _ in range(4):
            wire.send(True, b"GET / HTTP/1.1\r\n\r\n")
        sink, _pipe = _run(wire.frames)
        assert sink.events == [] and sink.txs == []

    def test_heuristic_disabled(self) -> None:
        """With the heuristic off, Modbus on port 5020 is not decoded."""
        conv, wire = Conversation(), Wire(server=("10.0.0.2", 5020))
        wire.handshake()
        wire.exchange(conv.exchange(3))
        sink, _pipe = _run(wire.frames, PipelineConfig(heuristic=False))
        assert sink.txs == []

    def test_configured_port(self) -> None:
        """A configured Modbus port decodes without the heuristic."""
        conv, wire = Conversation(), Wire(server=("10.0.0.2", 1502))
        wire.handshake()
        wire.exchange(conv.exchange(6, address=1, value=2))
        sink, _pipe = _run(wire.frames, PipelineConfig(ports=(1502,), heuristic=False))
        assert [(t.status, t.fc) for t in sink.txs] == [("ok", 6)]

    def test_http_on_port_502(self) -> None:
        """HTTP on port 502 is reported once as NotModbus ``http`` and not decoded."""
        wire = Wire()
        wire.handshake()
        wire.send(True, b"GET /index.html HTTP/1.1\r\nHost: plc\r\n\r\n")
        wire.send(False, b"HTTP/1.1 200 OK\r\n\r\n")
        wire.send(True, b"GET /again HTTP/1.1\r\n\r\n")
        sink, _pipe = _run(wire.frames)
        nm = [e for e in sink.events if isinstance(e, NotModbus)]
        assert [(e.protocol, e.direction) for e in nm] == [("http", 0)]
        assert sink.messages() == [] and sink.txs == []
        assert sink.flows[0].kind == "not-modbus"

    def test_http_on_port_502_midstream(self) -> None:
        """HTTP on port 502 without a captured handshake is still reported as NotModbus."""
        wire = Wire()
        for _ in range(4):
            wire.send(True, b"GET /index.html HTTP/1.1\r\nHost: plc\r\n\r\n")
            wire.send(False, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        sink, _pipe = _run(wire.frames)
        assert [e.protocol for e in sink.events if isinstance(e, NotModbus)] == ["http"]

    def test_unanswered_at_finish(self) -> None:
        """Requests still pending at the end of input are reported unanswered."""
        conv, wire = Conversation(), Wire()
        wire.handshake()
        wire.send(True, conv.exchange(3).request)
        sink, _pipe = _run(wire.frames)
        assert [t.status for t in sink.txs] == ["unanswered"]

    def test_adus_split_and_batched_across_segments(self) -> None:
        """ADUs split across segments and several ADUs in one segment all decode."""
        conv, wire = Conversation(), Wire()
        wire.handshake()
        reqs = [conv.exchange(3, address=i) for i in range(3)]
        stream = b"".join(e.request for e in reqs)
        for part in (stream[:5], stream[5:20], stream[20:]):
            wire.send(True, part)
        wire.send(False, b"".join(e.response for e in reqs))
        sink, _pipe = _run(wire.frames)
        assert [t.request.address for t in sink.txs] == [0, 1, 2]

    def test_stats_sink(self) -> None:
        """The Stats sink counts per ADU by function code, exceptions without the 0x80 bit."""
        conv, wire = Conversation(unit=5), Wire()
        wire.handshake()
        wire.exchange(conv.exchange(3))
        wire.exchange(conv.exception(3, 2))
        stats = Stats()
        pipe = Pipeline([stats])
        for frame in wire.frames:
            pipe.feed(*frame)
        pipe.finish()
        out = stats.as_dict(pipe)
        assert out["requests_by_function"] == {"3": 2}
        assert out["responses_by_function"] == {"3": 2}
        assert out["exceptions_by_code"] == {"2": 1}
        assert out["endpoints"] == [["10.0.0.1", "10.0.0.2", 5], ["10.0.0.2", "10.0.0.1", 5]]
        assert out["packets"] == len(wire.frames)


class TestUdpAndIp:
    def test_modbus_udp(self) -> None:
        """Modbus/UDP datagrams on port 502 decode and pair."""
        conv = Conversation()
        frames = []
        for i, ex in enumerate([conv.exchange(3), conv.exchange(4)]):
            for j, (src, dst, sport, dport, adu) in enumerate([
                ("10.0.0.1", "10.0.0.2", 40000, 502, ex.request),
                ("10.0.0.2", "10.0.0.1", 502, 40000, ex.response),
            ]):
                pkt = Ether(src=CLIENT_MAC, dst=SERVER_MAC) / IP(src=src, dst=dst) / UDP(
                    sport=sport, dport=dport) / Raw(adu)
                frames.append((10 * i + j, 1, bytes(pkt)))
        sink, _pipe = _run(frames)
        assert [(t.status, t.fc) for t in sink.txs] == [("ok", 3), ("ok", 4)]
        assert sink.flows[0].transport == "udp"

    def test_ip_fragment_on_port_502(self) -> None:
        """An IP fragment on port 502 becomes an ``ip-fragment`` violation with no flow."""
        pkt = Ether(src=CLIENT_MAC, dst=SERVER_MAC) / IP(src="10.0.0.1", dst="10.0.0.2", flags="MF",
                                                         proto=6) / TCP(sport=40000, dport=502)
        sink, pipe = _run([(1, 1, bytes(pkt))])
        assert [e.kind for e in sink.events] == ["ip-fragment"]
        assert sink.flows == [] and pipe.parser.fragments_modbus == 1


class TestFlowEvents:
    def test_probe_without_modbus_is_a_connection_event(self) -> None:
        """A SYN to port 502 that never carries Modbus still tells the sinks of the connection."""
        from scapy.layers.inet import IP, TCP
        from scapy.layers.l2 import Ether

        from otsentry.agent.pipeline import Pipeline

        seen: list = []
        pipe = Pipeline([lambda flow, events, txs: seen.append((flow, events))])
        syn = Ether() / IP(src="10.0.0.9", dst="10.0.0.2") / TCP(sport=40001, dport=502, flags="S")
        rst = Ether() / IP(src="10.0.0.2", dst="10.0.0.9") / TCP(sport=502, dport=40001, flags="RA")
        pipe.feed(1, 1, bytes(syn))
        pipe.feed(2, 1, bytes(rst))
        pipe.finish()
        (flow, events), = seen
        assert [e.KIND for e in events] == ["connection"]
        assert (flow.client, flow.server, events[0].flags) == ("10.0.0.9", "10.0.0.2", 0x02)
        assert flow.seen_ends == 3

    def test_unanswered_at_end_of_input_is_marked(self) -> None:
        """A request cut off by the end of the capture is unanswered with at_end set."""
        conv, wire = Conversation(), Wire()
        wire.send(True, conv.exchange(3).request)
        sink, _pipe = _run(wire.frames)
        (tx,) = sink.txs
        assert (tx.status, tx.at_end) == ("unanswered", True)


def test_the_frame_ring_keeps_a_flows_last_frames_oldest_first() -> None:
    """With ``ring_frames=4``, a flow of 9 frames keeps frames 6 to 9, in capture order."""
    w = Wire()
    w.handshake()
    conv = Conversation()
    w.exchange(conv.exchange(3))
    w.exchange(conv.exchange(3))
    w.close()
    coll, pipe = _run(w.frames, PipelineConfig(ring_frames=4))
    [flow] = coll.flows
    assert flow.ring is not None
    kept = flow.ring.items()
    assert len(flow.ring) == 4 and len(w.frames) == 9
    assert kept == [tuple(f) for f in w.frames[-4:]]


def test_an_evidence_slice_clamps_capture_times_a_pcap_record_cannot_hold() -> None:
    """A pcapng timestamp can lie before 1970 or after 2106: the ring keeps it as it came,
    and the slice writes 0 and the last second a classic pcap holds instead of failing."""
    ring = FrameRing(3)
    frame = bytes(60)
    times = (-5, 1_700_000_000_123_456_789, 1 << 90)
    for ts in times:
        ring.add(ts, 1, frame)
    kept = ring.items()
    assert [ts for ts, *_rest in kept] == list(times)
    pcap = pcap_slice(kept)
    assert len(pcap) == 24 + 3 * (16 + 60)
    seconds = [int.from_bytes(pcap[24 + k * 76:28 + k * 76], "little") for k in range(3)]
    assert seconds == [0, 1_700_000_000, (1 << 32) - 1]
