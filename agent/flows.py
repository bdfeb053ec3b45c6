"""Flows: one record per connection (TCP) or address/port pair (UDP).

A flow knows its client (master) and server (slave) ends, the link details
read from its first frame, its two :class:`~otsentry.agent.reassembly.TcpStream`
directions, its Modbus :class:`~otsentry.agent.modbus.Decoder` and its
:class:`~otsentry.agent.transactions.TransactionTable`.

Who is the server:
1. the end on a configured Modbus port (502 by default);
2. if both or neither are, the receiver of a SYN without ACK;
3. otherwise the end with the lower port number (clients use ephemeral ports).

Flows on other ports are only decoded when the Modbus heuristic recognises
their first payload as whole, well-formed Modbus ADUs with a public function
code; everything else is tracked as ignored so that the decision is made once.
"""

from __future__ import annotations

from typing import Final

from otsentry.agent.modbus import Decoder, spec
from otsentry.agent.packet import FrameDetails, ip_text
from otsentry.agent.reassembly import ReassemblyStats, TcpStream
from otsentry.agent.transactions import TransactionTable

__all__ = ["Flow", "FrameRing", "looks_like_modbus", "HEURISTIC_TRIES"]

#: Payload-carrying packets examined before a flow on another port is ignored for good.
HEURISTIC_TRIES: Final = 3


class FrameRing:
    """The last ``size`` raw frames of a flow, oldest first in :meth:`items`.

    Parallel lists that frames are appended to; once they hold ``2 * size`` frames, the
    older half is dropped in one go.  Keeping a frame stores references, with no tuple
    per frame, and the frames that go are let go together (not one old frame, last
    touched long ago, per new one).  Only what a pcap record needs is kept: the frame's
    number in the capture is not (findings name their frames themselves).
    """

    __slots__ = ("size", "ts", "linktypes", "data")

    def __init__(self, size: int) -> None:
        self.size = size
        self.ts: list[int] = []
        self.linktypes: list[int] = []
        self.data: list[bytes] = []

    def add(self, ts: int, linktype: int, data: bytes) -> None:
        """Keep one frame; the oldest go when there are too many."""
        self.ts.append(ts)
        self.linktypes.append(linktype)
        self.data.append(data)
        if len(self.data) >= 2 * self.size:
            n = self.size
            del self.ts[:n]
            del self.linktypes[:n]
            del self.data[:n]

    def __len__(self) -> int:
        return min(len(self.data), self.size)

    def items(self) -> list[tuple[int, int, bytes]]:
        """The kept frames as ``(ts_ns, linktype, data)``, oldest first."""
        start = max(0, len(self.data) - self.size)
        return list(zip(self.ts[start:], self.linktypes[start:], self.data[start:]))


class Flow:
    """One Modbus conversation between a client and a server.

    Attributes:
        id: running number, unique within a pipeline.
        transport: ``tcp`` or ``udp``.
        kind: ``modbus`` (decoded), ``modbus-tls`` (port 802: classified, not decoded),
            or ``ignored``.
        client_ip, server_ip: raw 4/16-byte addresses; ``client``/``server`` as text.
        client_port, server_port: ports.
        client_mac, server_mac, vlan, vlans, ttl (client's), server_ttl, window (client's):
            link details, each end's from the first frame it sends.
        first_ts, last_ts: capture times (ns) of the first and last packet.
        packets: packets seen on the flow.
        ring: the flow's last raw frames (a :class:`FrameRing`) when enabled, else None.
        midstream: True when the TCP handshake was not captured.
    """

    __slots__ = ("id", "transport", "kind", "client_ip", "server_ip", "client_port", "server_port",
                 "client", "server", "client_mac", "server_mac", "vlan", "vlans", "ttl",
                 "server_ttl", "window", "first_ts", "last_ts", "packets", "midstream", "decoder",
                 "streams", "txs", "tries", "closed", "keys", "user", "det", "ring", "json_fields",
                 "seen_ends", "det_ends", "tls")

    def __init__(self, fid: int, transport: str, client_ip: bytes, client_port: int,
                 server_ip: bytes, server_port: int, ts: int) -> None:
        self.id = fid
        self.transport = transport
        self.kind = "modbus"
        self.client_ip, self.client_port = client_ip, client_port
        self.server_ip, self.server_port = server_ip, server_port
        self.client = ip_text(client_ip)
        self.server = ip_text(server_ip)
        self.client_mac: str | None = None
        self.server_mac: str | None = None
        self.vlan: int | None = None
        self.vlans: tuple[int, ...] = ()
        self.ttl: int | None = None
        self.server_ttl: int | None = None
        self.window: int | None = None
        self.first_ts = self.last_ts = ts
        self.packets = 0
        self.midstream = True
        self.decoder: Decoder | None = None
        self.streams: tuple[TcpStream, TcpStream] | None = None
        self.txs: TransactionTable | None = None
        self.tries = 0
        self.closed = False
        self.keys: tuple[tuple, tuple] = ((), ())
        #: Last raw frames of the flow, when the pipeline keeps them
        #: (``PipelineConfig.ring_frames``); evidence for pcap slices.
        self.ring: FrameRing | None = None
        #: Free slot for consumers to hang per-flow state on.
        self.user: object = None
        #: The detection engine's state of this flow's (client, server) pair
        #: (:class:`otsentry.agent.detect._state.PairState`), shared by the pair's flows.
        self.det: object = None
        #: The flow's keys as a JSON fragment, made once by the JSON lines output.
        self.json_fields: str | None = None
        #: Bit 1: a frame from the client was seen; bit 2: from the server (link details).
        self.seen_ends = 0
        #: ``seen_ends`` as the detection engine last saw it (-1: the engine never saw the flow).
        self.det_ends = -1
        #: For ``modbus-tls`` flows: the reader of the server's certificate, until done.
        self.tls: object = None

    def start_modbus(self, midstream: bool, stats: ReassemblyStats, violations: list,
                     tx_timeout_ns: int, max_pending: int) -> None:
        """Create the decoder, TCP streams and transaction table."""
        self.kind = "modbus"
        self.midstream = midstream
        self.decoder = Decoder(midstream=midstream)
        if self.transport == "tcp":
            self.streams = (TcpStream(0, self.decoder, stats, violations),
                            TcpStream(1, self.decoder, stats, violations))
        self.txs = TransactionTable(self, tx_timeout_ns, max_pending)

    def set_details(self, d: FrameDetails, from_client: bool) -> None:
        """Record link details from the first frame an end sends.

        An end's own MAC, TTL and window come from its own frames; the other end's
        MAC is taken from the destination address only until that end is seen
        itself (behind a router the two differ).
        """
        bit = 1 if from_client else 2
        if self.seen_ends & bit:
            return
        if from_client:
            self.client_mac, self.ttl, self.window = d.src_mac, d.ttl, d.window
            if not self.seen_ends & 2:
                self.server_mac = d.dst_mac
        else:
            self.server_mac, self.server_ttl = d.src_mac, d.ttl
            if not self.seen_ends & 1:
                self.client_mac = d.dst_mac
        if not self.seen_ends:
            self.vlan, self.vlans = d.vlan, d.vlans
        self.seen_ends |= bit
        self.json_fields = None  # re-rendered with the new details

    @property
    def client_endpoint(self) -> str:
        """``ip:port`` of the client (``[v6]:port`` for IPv6)."""
        return _endpoint(self.client, self.client_port)

    @property
    def server_endpoint(self) -> str:
        """``ip:port`` of the server."""
        return _endpoint(self.server, self.server_port)

    def __repr__(self) -> str:
        return f"Flow({self.id}, {self.client_endpoint} -> {self.server_endpoint}, {self.kind})"


def _endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def looks_like_modbus(payload: bytes) -> bool:
    """True when ``payload`` is one or more whole MBAP ADUs with public function codes."""
    pos, n = 0, len(payload)
    if n < 8:
        return False
    while pos < n:
        if n - pos < 8:
            return False
        if payload[pos + 2] or payload[pos + 3]:
            return False
        length = (payload[pos + 4] << 8) | payload[pos + 5]
        if not 2 <= length <= spec.MAX_LENGTH or (payload[pos + 7] & 0x7F) not in spec.PUBLIC:
            return False
        pos += 6 + length
    return pos == n
