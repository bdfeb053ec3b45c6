#!/usr/bin/env python3
"""Generate a realistic, seeded Modbus/TCP capture of a small plant, plus its ground truth.

The plant: 3 masters (two SCADA pollers and an engineering HMI) and 20 servers
(PLCs and serial gateways), all on TCP port 502.  The capture holds

- Ethernet II frames with stable MACs per host, padded to 60 bytes as a mirror
  port delivers them; the flows of two servers are 802.1Q-tagged (VLAN 20);
- complete TCP connections: SYN / SYN-ACK / ACK, data with real sequence and
  acknowledgement numbers, delayed and immediate ACK-only segments, FIN
  teardown, reconnects on new ephemeral ports; per-flow IP ids, per-host TTLs,
  correct IPv4 and TCP checksums;
- polling cycles (100 ms - 2 s, with jitter) reading coils, discrete inputs,
  holding and input registers (FC1-FC4) whose values drift like process values;
  writes (FC5, FC6, FC15, FC16); device identification (FC43/14, objects
  VendorName, ProductCode, MajorMinorRevision) and diagnostics echo (FC8/0);
  exception responses (1 ILLEGAL FUNCTION, 2 ILLEGAL DATA ADDRESS,
  3 ILLEGAL DATA VALUE);
- several ADUs in one segment (pipelined requests, batched responses), ADUs
  split across two segments -- some inside the 7-byte MBAP header -- and a few
  retransmitted (identical, re-sent) segments.  One server's stack always sends
  the MBAP header and the PDU in two segments.

tshark 4.0 does not dissect a segment that starts an ADU with fewer than 8 bytes
(MBAP header + function code; ``dissect_mbtcp`` returns 0 before any
reassembly), so it drops every ADU of such a segment; an MBAP header split
later in a segment is reassembled.  The truth file counts both cases apart.

PDUs follow the Modbus Application Protocol Specification V1.1b3 (§6 for the
function codes, §7 for exceptions) and the MBAP header of the Modbus Messaging
on TCP/IP Implementation Guide V1.0b (§3.1.3).

Next to the capture, ``<out>.truth.json`` says what was generated: ADUs per
function code and direction, exceptions per code, the [src, dst, unit]
endpoints, split, pipelined and retransmitted counts.  The same seed and knobs
always give byte-identical output.

Examples::

    python bench/gen_capture.py --packets 2000000 --seed 1 --out bench/out/plant-2m.pcap
    python bench/gen_capture.py --minutes 1 --period-scale 6 --seed 1 \\
        --out samples/plant-small.pcap --truth samples/plant-small.truth.json
    python bench/gen_capture.py --packets 50000 --format pcapng --out /tmp/plant.pcapng
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import struct
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

START_EPOCH = 1_709_535_600.0  # 2024-03-04 07:00:00 UTC, the capture's first second
MODBUS_PORT = 502
SYN, FIN, PSH_ACK, ACK, SYN_ACK, FIN_ACK = 0x02, 0x01, 0x18, 0x10, 0x12, 0x11
MIN_FRAME = 60  # Ethernet minimum without FCS; shorter frames are zero-padded on the wire
DELAYED_ACK = 0.040
REGISTER_MAP = 2000  # every server maps addresses 0..1999 of each table; beyond -> exception 2

# Modbus Application Protocol V1.1b3 §7: the exception codes this plant produces.
ILLEGAL_FUNCTION, ILLEGAL_DATA_ADDRESS, ILLEGAL_DATA_VALUE = 1, 2, 3
# §6.3 / §6.4: read quantity limits; §6.11 / §6.12: write quantity limits.
MAX_READ_BITS, MAX_READ_REGS, MAX_WRITE_BITS, MAX_WRITE_REGS = 2000, 125, 0x7B0, 123

_u16 = struct.Struct(">H").pack
_mbap = struct.Struct(">HHHB").pack
_ip_hdr = struct.Struct("!BBHHHBBH4s4s").pack
_tcp_hdr = struct.Struct("!HHIIBBHHH").pack
_pcap_rec = struct.Struct("<IIII").pack


# ---------------------------------------------------------------------------- output

class CaptureWriter:
    """Time-ordered frame sink writing pcap (microseconds) or pcapng, with progress on stderr.

    Frames are pushed with :meth:`push` in any order; :meth:`release` writes, in
    time order, every buffered frame not later than a given time (the caller
    promises no later push will be earlier than that).
    """

    def __init__(self, fh: BinaryIO, fmt: str, target: int | None, progress: bool) -> None:
        self.fh, self.fmt, self.target, self.progress = fh, fmt, target, progress
        self.heap: list[tuple[int, int, bytes]] = []
        self.seq = 0
        self.written = 0
        self.chunk: list[bytes] = []
        self.t0 = time.monotonic()
        self.next_report = 250_000
        fh.write(_pcap_header() if fmt == "pcap" else _pcapng_header())

    def push(self, t: float, frame: bytes) -> None:
        """Buffer one Ethernet frame captured at ``t`` (epoch seconds)."""
        if len(frame) < MIN_FRAME:
            frame += bytes(MIN_FRAME - len(frame))
        self.seq += 1
        heapq.heappush(self.heap, (round(t * 1e6), self.seq, frame))

    def release(self, until: float | None = None) -> None:
        """Write every buffered frame up to time ``until`` (all of them if None)."""
        limit = None if until is None else round(until * 1e6)
        heap, chunk, record = self.heap, self.chunk, self._record
        while heap and (limit is None or heap[0][0] <= limit):
            ts, _, frame = heapq.heappop(heap)
            chunk.append(record(ts, frame))
            self.written += 1
            if len(chunk) >= 20_000:
                self._flush()
        if until is None:
            self._flush()

    def _record(self, ts: int, frame: bytes) -> bytes:
        n = len(frame)
        if self.fmt == "pcap":
            return _pcap_rec(ts // 1_000_000, ts % 1_000_000, n, n) + frame
        pad = -n % 4
        total = 32 + n + pad
        return (struct.pack("<IIIIIII", 6, total, 0, ts >> 32, ts & 0xFFFFFFFF, n, n)
                + frame + bytes(pad) + struct.pack("<I", total))

    def _flush(self) -> None:
        self.fh.write(b"".join(self.chunk))
        self.chunk.clear()
        if self.progress and self.written >= self.next_report:
            self.next_report += 250_000
            rate = self.written / max(time.monotonic() - self.t0, 1e-9)
            goal = f"/{self.target:,}" if self.target else ""
            print(f"gen_capture: {self.written:,}{goal} packets written ({rate:,.0f}/s)",
                  file=sys.stderr, flush=True)


def _pcap_header() -> bytes:
    """libpcap global header: microsecond timestamps, snaplen 65535, LINKTYPE_ETHERNET."""
    return struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)


def _pcapng_header() -> bytes:
    """pcapng Section Header Block and one Interface Description Block (Ethernet, µs)."""
    shb = struct.pack("<IIIHHqI", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1, 28)
    idb = struct.pack("<IIHHII", 1, 20, 1, 0, 65535, 20)
    return shb + idb


# ---------------------------------------------------------------------------- TCP/IP

def _fold(s: int) -> int:
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def _sum16(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    return sum(struct.unpack(f">{len(data) // 2}H", data))


@dataclass(slots=True)
class Host:
    """One station on the plant network: address, MAC, and its stack's TTL and window."""

    ip: str
    mac: bytes
    ttl: int
    window: int

    @property
    def ip_bytes(self) -> bytes:
        return bytes(int(x) for x in self.ip.split("."))


class Half:
    """One direction of a TCP connection: builds its frames and tracks seq, ack and IP id."""

    def __init__(self, src: Host, dst: Host, sport: int, dport: int, vlan: int | None,
                 rng: random.Random) -> None:
        self.src, self.dst, self.sport, self.dport = src, dst, sport, dport
        tag = struct.pack("!HH", 0x8100, vlan) if vlan is not None else b""
        self.eth = dst.mac + src.mac + tag + b"\x08\x00"
        self.sip, self.dip = src.ip_bytes, dst.ip_bytes
        self.ip_const = _sum16(self.sip + self.dip) + (0x45 << 8) + 0x4000 + (src.ttl << 8) + 6
        self.pseudo = _sum16(self.sip + self.dip) + 6 + sport + dport
        self.seq = rng.getrandbits(32)
        self.ip_id = rng.getrandbits(16)
        self.peer: Half | None = None

    def frame(self, flags: int, payload: bytes = b"", options: bytes = b"") -> bytes:
        """One Ethernet frame from this side, acking everything the peer has sent so far."""
        ack = self.peer.seq if self.peer is not None and flags != SYN else 0
        doff = 5 + len(options) // 4
        tcp_len = doff * 4 + len(payload)
        total = 20 + tcp_len
        self.ip_id = (self.ip_id + 1) & 0xFFFF
        ip_sum = 0xFFFF - _fold(self.ip_const + total + self.ip_id)
        ip = _ip_hdr(0x45, 0, total, self.ip_id, 0x4000, self.src.ttl, 6, ip_sum, self.sip, self.dip)
        seq, win = self.seq, self.src.window
        s = (self.pseudo + tcp_len + (seq >> 16) + (seq & 0xFFFF) + (ack >> 16) + (ack & 0xFFFF)
             + ((doff << 12) | flags) + win + _sum16(options) + _sum16(payload))
        tcp = _tcp_hdr(self.sport, self.dport, seq, ack, doff << 4, flags, win,
                       0xFFFF - _fold(s), 0)
        self.seq = (seq + len(payload) + (1 if flags & (SYN | FIN) else 0)) & 0xFFFFFFFF
        return self.eth + ip + tcp + options + payload


class Conn:
    """A client-server TCP connection on port 502 (both halves)."""

    def __init__(self, client: Host, server: Host, sport: int, vlan: int | None,
                 rng: random.Random) -> None:
        self.c = Half(client, server, sport, MODBUS_PORT, vlan, rng)
        self.s = Half(server, client, MODBUS_PORT, sport, vlan, rng)
        self.c.peer, self.s.peer = self.s, self.c


# ---------------------------------------------------------------------------- truth

@dataclass
class Truth:
    """What the generator put into the capture, in the shape of ``decode --stats --json``."""

    requests: Counter = field(default_factory=Counter)
    responses: Counter = field(default_factory=Counter)
    exceptions: Counter = field(default_factory=Counter)
    endpoints: set = field(default_factory=set)
    split_mbap: dict = field(default_factory=lambda: {"requests": Counter(), "responses": Counter()})
    short_start: dict = field(default_factory=lambda: {"requests": Counter(), "responses": Counter()})
    split_mbap_at_start: int = 0
    short_start_exceptions: Counter = field(default_factory=Counter)
    short_start_endpoints: set = field(default_factory=set)
    split_segments: int = 0
    pipelined_segments: int = 0
    retransmitted: int = 0
    connections: int = 0
    vlan_frames: int = 0

    def adu(self, src: Host, dst: Host, unit: int, fc: int, is_request: bool,
            exc: int | None) -> None:
        """Count one ADU sent (retransmissions are not ADUs of their own)."""
        (self.requests if is_request else self.responses)[fc] += 1
        if exc is not None:
            self.exceptions[exc] += 1
        self.endpoints.add((src.ip, dst.ip, unit))

    def as_json(self, meta: dict) -> dict:
        """The truth file's content."""
        def by_fc(c: Counter) -> dict[str, int]:
            return {str(k): c[k] for k in sorted(c)}
        split = {k: by_fc(v) for k, v in self.split_mbap.items()}
        short = {k: by_fc(v) for k, v in self.short_start.items()}
        return {
            **meta,
            "requests_by_function": by_fc(self.requests),
            "responses_by_function": by_fc(self.responses),
            "exceptions_by_code": by_fc(self.exceptions),
            "endpoints": [list(e) for e in sorted(self.endpoints)],
            "adus": sum(self.requests.values()) + sum(self.responses.values()),
            "mbap_split_adus": sum(sum(v.values()) for v in self.split_mbap.values()),
            "mbap_split_by_function": split,
            "mbap_split_at_segment_start_adus": self.split_mbap_at_start,
            "short_start_adus": sum(sum(v.values()) for v in self.short_start.values()),
            "short_start_by_function": short,
            "short_start_exceptions_by_code": by_fc(self.short_start_exceptions),
            "short_start_endpoints": [list(e) for e in sorted(self.short_start_endpoints)],
            "split_segments": self.split_segments,
            "pipelined_segments": self.pipelined_segments,
            "retransmitted_segments": self.retransmitted,
            "tcp_connections": self.connections,
            "vlan_frames": self.vlan_frames,
        }


# ---------------------------------------------------------------------------- servers

@dataclass(slots=True)
class UnitState:
    """The four data tables of one unit (slave) behind a server, with drifting values."""

    holding: list[int]
    inputs: list[int]
    coils: bytearray
    discretes: bytearray

    @classmethod
    def make(cls, rng: random.Random) -> UnitState:
        regs = [rng.randrange(0, 4000) for _ in range(REGISTER_MAP)]
        bits = bytearray(rng.getrandbits(1) for _ in range(REGISTER_MAP))
        return cls(regs, [v + rng.randrange(-50, 50) & 0xFFFF for v in regs], bits,
                   bytearray(rng.getrandbits(1) for _ in range(REGISTER_MAP)))


@dataclass
class Device:
    """A Modbus server: a PLC (one unit) or a serial gateway (several units)."""

    host: Host
    units: dict[int, UnitState]
    latency: tuple[float, float]
    vlan: int | None
    fc8: bool
    devid: tuple[bytes, bytes, bytes] | None
    header_apart: bool  # its stack sends the MBAP header and the PDU in separate segments
    ack_first: bool  # slow gateway: ACKs a request at once, answers later


Pdu = bytes
AduInfo = tuple[int, bool, int, "int | None"]  # length, is request, function code, exception
Reply = tuple[Pdu, int | None]  # (response PDU, exception code or None)


def _looks_like_mbap(payload: bytes, at: int) -> bool:
    """Whether ``payload[at:]`` starts like an MBAP header (protocol id 0, length >= 2)."""
    head = payload[at:at + 6]
    return len(head) < 6 or (head[2:4] == b"\0\0" and int.from_bytes(head[4:6], "big") >= 2)


def _pack_bits(bits: bytearray | bytes, start: int, qty: int) -> bytes:
    """§6.1: bit 0 of the first byte is the first coil; unused high bits are zero."""
    out = bytearray((qty + 7) // 8)
    for i in range(qty):
        if bits[start + i]:
            out[i >> 3] |= 1 << (i & 7)
    return bytes(out)


def _exc(fc: int, code: int) -> Reply:
    return bytes((fc | 0x80, code)), code


def _read_bits(table: str) -> Callable[[UnitState, Pdu, random.Random], Reply]:
    def handler(u: UnitState, pdu: Pdu, rng: random.Random) -> Reply:
        fc, addr, qty = struct.unpack_from(">BHH", pdu)
        if not 1 <= qty <= MAX_READ_BITS:
            return _exc(fc, ILLEGAL_DATA_VALUE)
        if addr + qty > REGISTER_MAP:
            return _exc(fc, ILLEGAL_DATA_ADDRESS)
        bits = getattr(u, table)
        if rng.random() < 0.05:
            i = addr + rng.randrange(qty)
            bits[i] ^= 1
        data = _pack_bits(bits, addr, qty)
        return bytes((fc, len(data))) + data, None
    return handler


def _read_regs(table: str) -> Callable[[UnitState, Pdu, random.Random], Reply]:
    def handler(u: UnitState, pdu: Pdu, rng: random.Random) -> Reply:
        fc, addr, qty = struct.unpack_from(">BHH", pdu)
        if not 1 <= qty <= MAX_READ_REGS:
            return _exc(fc, ILLEGAL_DATA_VALUE)
        if addr + qty > REGISTER_MAP:
            return _exc(fc, ILLEGAL_DATA_ADDRESS)
        regs = getattr(u, table)
        i = addr + rng.randrange(qty)  # one process value moves a little per read
        regs[i] = (regs[i] + rng.randrange(-3, 4)) & 0xFFFF
        return struct.pack(f">BB{qty}H", fc, 2 * qty, *regs[addr:addr + qty]), None
    return handler


def _write_coil(u: UnitState, pdu: Pdu, rng: random.Random) -> Reply:
    fc, addr, value = struct.unpack_from(">BHH", pdu)
    if value not in (0x0000, 0xFF00):
        return _exc(fc, ILLEGAL_DATA_VALUE)
    u.coils[addr] = value == 0xFF00
    return pdu, None  # §6.5: the normal response is an echo of the request


def _write_register(u: UnitState, pdu: Pdu, rng: random.Random) -> Reply:
    _, addr, value = struct.unpack_from(">BHH", pdu)
    u.holding[addr] = value
    return pdu, None  # §6.6: echo


def _write_coils(u: UnitState, pdu: Pdu, rng: random.Random) -> Reply:
    _, addr, qty = struct.unpack_from(">BHH", pdu)
    for i in range(qty):
        u.coils[addr + i] = (pdu[6 + (i >> 3)] >> (i & 7)) & 1
    return pdu[:5], None  # §6.11: fc, starting address, quantity


def _write_registers(u: UnitState, pdu: Pdu, rng: random.Random) -> Reply:
    _, addr, qty = struct.unpack_from(">BHH", pdu)
    u.holding[addr:addr + qty] = struct.unpack_from(f">{qty}H", pdu, 6)
    return pdu[:5], None  # §6.12


RESPONDERS: dict[int, Callable[[UnitState, Pdu, random.Random], Reply]] = {
    1: _read_bits("coils"),
    2: _read_bits("discretes"),
    3: _read_regs("holding"),
    4: _read_regs("inputs"),
    5: _write_coil,
    6: _write_register,
    15: _write_coils,
    16: _write_registers,
}


def respond(dev: Device, unit: int, pdu: Pdu, rng: random.Random) -> Reply:
    """The server's answer to a request PDU (normal response or exception, per §6 and §7)."""
    fc = pdu[0]
    if fc == 8:
        return (pdu, None) if dev.fc8 else _exc(fc, ILLEGAL_FUNCTION)  # §6.8.1 sub 0x00: echo
    if fc == 43:
        return _device_id(dev) if dev.devid else _exc(fc, ILLEGAL_FUNCTION)
    return RESPONDERS[fc](dev.units[unit], pdu, rng)


def _device_id(dev: Device) -> Reply:
    """§6.21 Read Device Identification, basic stream (code 01) from object 0: 3 objects."""
    assert dev.devid is not None
    objs = b"".join(bytes((i, len(v))) + v for i, v in enumerate(dev.devid))
    # MEI 0x0E, read code 01, conformity 0x81 (basic, stream + individual), no more, next 0, 3 objects
    return bytes((43, 0x0E, 0x01, 0x81, 0x00, 0x00, 3)) + objs, None


# ---------------------------------------------------------------------------- requests

def req_read(fc: int, addr: int, qty: int) -> Pdu:
    """FC1-FC4 request (§6.1-§6.4): function, starting address, quantity."""
    return struct.pack(">BHH", fc, addr, qty)


def req_write_coil(addr: int, on: bool) -> Pdu:
    """FC5 (§6.5): output value 0xFF00 = ON, 0x0000 = OFF."""
    return struct.pack(">BHH", 5, addr, 0xFF00 if on else 0)


def req_write_register(addr: int, value: int) -> Pdu:
    """FC6 (§6.6)."""
    return struct.pack(">BHH", 6, addr, value)


def req_write_coils(addr: int, bits: list[int]) -> Pdu:
    """FC15 (§6.11): quantity, byte count = ceil(N/8), packed outputs."""
    data = _pack_bits(bytes(bits), 0, len(bits))
    return struct.pack(">BHHB", 15, addr, len(bits), len(data)) + data


def req_write_registers(addr: int, values: list[int]) -> Pdu:
    """FC16 (§6.12): quantity, byte count = 2N, register values."""
    n = len(values)
    return struct.pack(f">BHHB{n}H", 16, addr, n, 2 * n, *values)


def req_diag_echo(data: int) -> Pdu:
    """FC8 sub-function 0x0000 Return Query Data (§6.8.1): two data bytes, echoed back."""
    return struct.pack(">BHH", 8, 0x0000, data)


def req_device_id() -> Pdu:
    """FC43 / MEI 14 (§6.21): read device id code 01 (basic), object id 0 (VendorName)."""
    return bytes((43, 0x0E, 0x01, 0x00))


# ---------------------------------------------------------------------------- pollers

@dataclass
class Shaping:
    """How often segments are split or re-sent (probabilities per data segment / request)."""

    split: float = 0.008
    split_in_header: float = 0.4
    retransmit: float = 0.0004


class Poller:
    """One master polling one server over its own connection, cycle after cycle."""

    def __init__(self, name: str, master: Host, dev: Device, rng: random.Random, out: CaptureWriter,
                 truth: Truth, shaping: Shaping, period: float, plan: list[tuple[int, Pdu]],
                 pipelined: bool, session: tuple[int, int] | None, writes: float) -> None:
        self.name, self.master, self.dev, self.rng = name, master, dev, rng
        self.out, self.truth, self.shaping = out, truth, shaping
        self.period, self.plan, self.pipelined = period, plan, pipelined
        self.session, self.writes = session, writes  # session: (min, max) cycles per connection
        self.conn: Conn | None = None
        self.idle_at = 0.0  # time of this poller's last frame so far
        self.cycles_left = 0
        self.tid = rng.randrange(1, 60000)
        self.port = rng.randrange(49152, 60000)

    @property
    def live(self) -> Conn:
        """The open connection (only called while one is open)."""
        assert self.conn is not None
        return self.conn

    # -- one cycle --------------------------------------------------------------------

    def cycle(self, t0: float) -> float:
        """Emit one polling cycle starting at ``t0``; return when the next one starts."""
        t = self._connect(t0) if self.conn is None else t0
        txs = list(self.plan) + self._extras()
        t = self._pipelined(t, txs) if self.pipelined else self._sequential(t, txs)
        self.idle_at = t
        self.cycles_left -= 1
        if self.cycles_left <= 0:
            t_fin = t + self.rng.uniform(0.001, 0.08)
            self._maybe_ack(t, t_fin)
            t = self.close(t_fin)
            # the HMI comes back for another session later; a SCADA poller reconnects at once
            return t + (self.rng.uniform(3.0, 20.0) if self.session else self.period)
        nxt = max(t + 0.002, t0 + self.period + self.rng.gauss(0, self.period * 0.03))
        self._maybe_ack(t, nxt)
        return nxt

    def _extras(self) -> list[tuple[int, Pdu]]:
        """Occasional writes (setpoints, commands) mixed into a cycle."""
        rng, unit = self.rng, self.plan[0][0]
        if rng.random() >= self.writes:
            return []
        kind = rng.randrange(4)
        addr = rng.randrange(0, 64)
        if kind == 0:
            return [(unit, req_write_register(1000 + addr, rng.randrange(0, 1500)))]
        if kind == 1:
            return [(unit, req_write_coil(addr, rng.random() < 0.5))]
        if kind == 2:
            n = rng.randrange(2, 12)
            return [(unit, req_write_registers(1100 + addr, [rng.randrange(0, 3000) for _ in range(n)]))]
        return [(unit, req_write_coils(200 + addr, [rng.getrandbits(1) for _ in range(rng.randrange(4, 24))]))]

    def _sequential(self, t: float, txs: list[tuple[int, Pdu]]) -> float:
        """Request, wait for the response, next request (the ACK rides on it)."""
        c = self.live.c
        for unit, pdu in txs:
            adu, fc = self._request_adu(unit, pdu)
            t = self._send(c, t, adu, [(len(adu), True, fc, None)], may_retransmit=True)
            t = self._answer(t, unit, pdu, adu)
            t += self.rng.uniform(0.0002, 0.0015)
        return t

    def _pipelined(self, t: float, txs: list[tuple[int, Pdu]]) -> float:
        """All requests of the cycle in one segment; responses batched or one by one."""
        c = self.live.c
        adus: list[tuple[int, Pdu, bytes]] = []
        info: list[AduInfo] = []
        for unit, pdu in txs:
            adu, fc = self._request_adu(unit, pdu)
            adus.append((unit, pdu, adu))
            info.append((len(adu), True, fc, None))
        t = self._send(c, t, b"".join(a for _, _, a in adus), info)
        if len(adus) > 1:
            self.truth.pipelined_segments += 1
        return self._answer_batch(t, adus)

    # -- ADUs -------------------------------------------------------------------------

    def _request_adu(self, unit: int, pdu: Pdu) -> tuple[bytes, int]:
        self.tid = self.tid + 1 if self.tid < 0xFFFF else 1
        self.truth.adu(self.master, self.dev.host, unit, pdu[0], True, None)
        return _mbap(self.tid, 0, len(pdu) + 1, unit) + pdu, pdu[0]

    def _response_adu(self, unit: int, req_adu: bytes, req: Pdu) -> tuple[bytes, int, int | None]:
        pdu, exc = respond(self.dev, unit, req, self.rng)
        fc = pdu[0] & 0x7F
        self.truth.adu(self.dev.host, self.master, unit, fc, False, exc)
        return _mbap(struct.unpack_from(">H", req_adu)[0], 0, len(pdu) + 1, unit) + pdu, fc, exc

    def _answer(self, t: float, unit: int, req: Pdu, req_adu: bytes) -> float:
        s = self.live.s
        lat = self.rng.uniform(*self.dev.latency)
        if self.dev.ack_first:
            self.out.push(t + self.rng.uniform(0.0001, 0.0005), self._count(s, s.frame(ACK)))
        rsp, fc, exc = self._response_adu(unit, req_adu, req)
        return self._send(s, t + lat, rsp, [(len(rsp), False, fc, exc)])

    def _answer_batch(self, t: float, adus: list[tuple[int, Pdu, bytes]]) -> float:
        s, rng = self.live.s, self.rng
        batch = rng.random() < 0.5 and not self.dev.ack_first
        payload: list[bytes] = []
        info: list[AduInfo] = []
        for unit, pdu, adu in adus:
            t += rng.uniform(*self.dev.latency) * (0.3 if batch else 1.0)
            rsp, fc, exc = self._response_adu(unit, adu, pdu)
            if batch:
                payload.append(rsp)
                info.append((len(rsp), False, fc, exc))
            else:
                t = self._send(s, t, rsp, [(len(rsp), False, fc, exc)])
        if batch:
            t = self._send(s, t, b"".join(payload), info)
            if len(info) > 1:
                self.truth.pipelined_segments += 1
        return t

    # -- segments ---------------------------------------------------------------------

    def _send(self, half: Half, t: float, payload: bytes, info: list[AduInfo],
              may_retransmit: bool = False) -> float:
        """Send ``payload`` (whole ADUs) as one segment, or split in two, or re-sent once.

        ``info`` has (length, is_request, function code, exception) per ADU in ``payload``.
        Returns the time of the last frame sent.
        """
        rng, shaping = self.rng, self.shaping
        cut = self._cut_point(half, payload, info)
        if cut:
            return self._split(half, t, payload, info, cut)
        seq = half.seq
        frame = half.frame(PSH_ACK, payload)
        self.out.push(t, self._count(half, frame))
        if may_retransmit and rng.random() < shaping.retransmit:
            # The segment got lost beyond the mirror port; the sender re-sends it unchanged
            # after its retransmission timeout, and the answer follows the copy.
            rto = rng.uniform(0.2, 0.35)
            self.out.push(t + rto, self._count(half, frame))
            self.truth.retransmitted += 1
            assert half.seq == (seq + len(payload)) & 0xFFFFFFFF
            return t + rto
        return t

    def _cut_point(self, half: Half, payload: bytes, info: list[AduInfo]) -> int:
        """Where to split this segment in two (0: do not split).

        A cut within the first 8 bytes leaves a second piece that starts inside an
        ADU; such a cut is only made where that piece does not look like an MBAP
        header itself (protocol id 0, length >= 2), so no reader can take it for one.
        """
        if half is self.live.s and self.dev.header_apart and len(info) == 1:
            cut = 7  # this device's stack sends the MBAP header and the PDU in two send() calls
        elif self.rng.random() >= self.shaping.split:
            return 0
        elif self.rng.random() < self.shaping.split_in_header:
            starts = [0]
            for n, *_ in info[:-1]:
                starts.append(starts[-1] + n)
            cut = self.rng.choice(starts) + self.rng.randrange(1, 7)
        else:
            cut = self.rng.randrange(1, len(payload))
        return 0 if cut < 8 and _looks_like_mbap(payload, cut) else cut

    def _split(self, half: Half, t: float, payload: bytes, info: list[AduInfo],
               cut: int) -> float:
        """Two segments; counts split MBAP headers, and the ADUs of a segment whose first
        piece is shorter than 8 bytes (MBAP + function code), which tshark cannot dissect."""
        self.truth.split_segments += 1
        start = 0
        for n, is_req, fc, exc in info:
            side = "requests" if is_req else "responses"
            if start < cut < start + 7:
                self.truth.split_mbap[side][fc] += 1
                self.truth.split_mbap_at_start += start == 0
            if cut < 8:
                self.truth.short_start[side][fc] += 1
                self.truth.short_start_endpoints.add((half.src.ip, half.dst.ip, payload[start + 6]))
                if exc is not None:
                    self.truth.short_start_exceptions[exc] += 1
            start += n
        self.out.push(t, self._count(half, half.frame(PSH_ACK, payload[:cut])))
        t2 = t + self.rng.uniform(0.00005, 0.003)
        self.out.push(t2, self._count(half, half.frame(PSH_ACK, payload[cut:])))
        return t2

    def _maybe_ack(self, t_end: float, t_next: float) -> None:
        """The master's delayed ACK of the last response, unless its next segment comes first."""
        if t_next - t_end > DELAYED_ACK + 0.002:
            c = self.live.c
            self.idle_at = t_end + DELAYED_ACK + self.rng.uniform(0, 0.002)
            self.out.push(self.idle_at, self._count(c, c.frame(ACK)))

    def _count(self, half: Half, frame: bytes) -> bytes:
        if frame[12] == 0x81:
            self.truth.vlan_frames += 1
        return frame

    # -- connection -------------------------------------------------------------------

    def _connect(self, t: float) -> float:
        """Three-way handshake on a fresh ephemeral port; the HMI asks for the device id first."""
        rng = self.rng
        self.port = self.port + rng.randrange(1, 40) if self.port < 65000 else 49152
        self.conn = Conn(self.master, self.dev.host, self.port, self.dev.vlan, rng)
        self.truth.connections += 1
        c, s = self.live.c, self.live.s
        self.out.push(t, self._count(c, c.frame(SYN, options=b"\x02\x04\x05\xb4\x01\x01\x04\x02")))
        t += rng.uniform(0.0002, 0.002)
        self.out.push(t, self._count(s, s.frame(SYN_ACK, options=b"\x02\x04\x05\xb4")))
        t += rng.uniform(0.00003, 0.0002)
        self.out.push(t, self._count(c, c.frame(ACK)))
        lo, hi = self.session or (2000, 20000)
        self.cycles_left = rng.randrange(lo, hi)
        if self.session is not None:
            t += rng.uniform(0.001, 0.01)
            unit = self.plan[0][0]
            t_end = self._sequential(t, [(unit, req_device_id()),
                                         (unit, req_diag_echo(rng.getrandbits(16)))])
            t = t_end + rng.uniform(0.02, 0.2)
            self._maybe_ack(t_end, t)
        return t + rng.uniform(0.0005, 0.005)

    def close(self, t: float) -> float:
        """FIN from the master at ``t`` (or once its last exchange is over), FIN from the server,
        last ACK; returns the time of that ACK."""
        if self.conn is None:
            return t
        t = max(t, self.idle_at + self.rng.uniform(0.001, 0.01))
        c, s = self.live.c, self.live.s
        self.out.push(t, self._count(c, c.frame(FIN_ACK)))
        t += self.rng.uniform(0.0002, 0.003)
        self.out.push(t, self._count(s, s.frame(FIN_ACK)))
        t += self.rng.uniform(0.00003, 0.0003)
        self.out.push(t, self._count(c, c.frame(ACK)))
        self.conn = None
        return t


# ---------------------------------------------------------------------------- the plant

VENDORS = [(b"Schneider Electric", b"BMX P34 2020", b"v3.20"),
           (b"Siemens", b"6ES7 214-1AG40", b"V4.5"),
           (b"WAGO", b"750-8212", b"03.10.08"),
           (b"Moxa", b"MGate MB3180", b"v2.2"),
           (b"Phoenix Contact", b"AXC F 2152", b"2022.0.4")]


def _mac(rng: random.Random, oui: bytes) -> bytes:
    return oui + bytes(rng.getrandbits(8) for _ in range(3))


def build_plant(rng: random.Random) -> tuple[list[Host], list[Device]]:
    """3 masters (.11 SCADA A, .12 SCADA B, .13 engineering HMI) and 20 servers (.21-.40)."""
    masters = [Host("10.20.1.11", _mac(rng, b"\x00\x50\x56"), 64, 64240),
               Host("10.20.1.12", _mac(rng, b"\x00\x50\x56"), 64, 64240),
               Host("10.20.1.13", _mac(rng, b"\x00\x1c\x42"), 128, 65535)]
    devices = []
    for i in range(20):
        gateway = i in (0, 1, 10, 11, 12)
        units = [1, 2, 3, 7] if gateway and i != 12 else [1, 2] if gateway else [255 if i % 2 else 1]
        oui = b"\x00\x90\xe8" if gateway else b"\x00\x80\xf4"
        vendor = VENDORS[3] if gateway else VENDORS[i % 5 if i % 5 != 3 else 0]
        devices.append(Device(
            host=Host(f"10.20.2.{21 + i}", _mac(rng, oui), 64 if gateway else rng.choice((30, 60, 255)),
                      rng.choice((2048, 5840, 8192))),
            units={u: UnitState.make(rng) for u in units},
            latency=(0.015, 0.060) if gateway else (0.001, 0.008),
            vlan=20 if i in (18, 19) else None,
            fc8=i % 3 != 2,
            devid=vendor if i % 4 != 3 else None,
            header_apart=i == 5,
            ack_first=gateway,
        ))
    return masters, devices


def _read_plan(rng: random.Random, units: list[int], gateway: bool) -> list[tuple[int, Pdu]]:
    """The reads a master makes each cycle: per unit 1-2 (gateway) or 2-4 blocks of FC1-FC4."""
    plan = []
    for unit in units:
        for _ in range(rng.randrange(1, 3) if gateway else rng.randrange(2, 5)):
            fc = rng.choice((1, 2, 3, 3, 4, 4))
            qty = rng.randrange(8, 129) if fc <= 2 else rng.randrange(2, 41)
            addr = rng.randrange(0, 1200) // 8 * 8
            plan.append((unit, req_read(fc, addr, qty)))
    return plan


def build_pollers(rng: random.Random, masters: list[Host], devices: list[Device], out: CaptureWriter,
                  truth: Truth, shaping: Shaping, period_scale: float) -> list[Poller]:
    """SCADA A polls servers 0-9 fast, SCADA B servers 10-19 slower, the HMI 8 of them in sessions."""
    pollers = []
    for i, dev in enumerate(devices):
        m = masters[0] if i < 10 else masters[1]
        gateway = len(dev.units) > 1
        period = (rng.uniform(0.1, 0.6) if i < 10 else rng.uniform(0.5, 2.0)) * period_scale
        plan = _read_plan(rng, list(dev.units), gateway)
        if i == 7:  # a mis-configured tag beyond the device's map: exception 2 every cycle
            plan.append((plan[0][0], req_read(3, 9000, 10)))
        pipelined = not gateway and i % 3 == 0 or i == 10
        pollers.append(Poller(f"{m.ip}->{dev.host.ip}", m, dev, rng, out, truth, shaping,
                              period, plan, pipelined, None, 0.01))
    for i in (0, 2, 4, 6, 11, 14, 17, 19):
        dev = devices[i]
        unit = next(iter(dev.units))
        plan = [(unit, req_read(3, 1000, 16)), (unit, req_read(1, 200, 32))]
        if i == 14:  # an HMI faceplate asking for 126 registers: exception 3 (§6.3 limit is 125)
            plan.append((unit, req_read(3, 0, MAX_READ_REGS + 1)))
        pollers.append(Poller(f"{masters[2].ip}->{dev.host.ip}", masters[2], dev, rng, out, truth,
                              shaping, rng.uniform(1.0, 2.0) * period_scale, plan, False,
                              (5, 40), 0.15))
    return pollers


# ---------------------------------------------------------------------------- driver

def generate(out_path: Path, seed: int, packets: int | None, minutes: float | None,
             fmt: str = "pcap", period_scale: float = 1.0, progress: bool = True,
             truth_path: Path | None = None) -> dict:
    """Write the capture to ``out_path`` and its truth to ``truth_path`` (default
    ``<out_path>.truth.json``); return the truth.

    Generation stops starting new polling cycles once ``packets`` frames were
    produced or ``minutes`` of capture time passed (whichever comes first; at
    least one must be given); then every open connection is closed with FINs.
    """
    if packets is None and minutes is None:
        raise ValueError("give packets or minutes")
    rng = random.Random(seed)
    truth, shaping = Truth(), Shaping()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with out_path.open("wb") as fh:
        out = CaptureWriter(fh, fmt, packets, progress)
        masters, devices = build_plant(rng)
        pollers = build_pollers(rng, masters, devices, out, truth, shaping, period_scale)
        end = START_EPOCH + (minutes * 60 if minutes is not None else float("inf"))
        t = _run(pollers, out, rng, packets or float("inf"), end)
        for p in pollers:
            t = max(t, p.close(t + rng.uniform(0.001, 0.01)))
        out.release()
    meta = {"generator": "bench/gen_capture.py", "seed": seed, "format": fmt,
            "period_scale": period_scale, "packets": out.written,
            "first_time": START_EPOCH, "duration_s": round(t - START_EPOCH, 6),
            "masters": [m.ip for m in masters], "servers": [d.host.ip for d in devices]}
    result = truth.as_json(meta)
    truth_path = truth_path or Path(f"{out_path}.truth.json")
    truth_path.write_text(json.dumps(result, indent=1) + "\n")
    return result


def _run(pollers: list[Poller], out: CaptureWriter, rng: random.Random, packets: float,
         end: float) -> float:
    """The event loop: start the earliest due cycle, release frames older than its start."""
    heap = [(START_EPOCH + rng.uniform(0, p.period), i) for i, p in enumerate(pollers)]
    heapq.heapify(heap)
    t = START_EPOCH
    while heap:
        t, i = heapq.heappop(heap)
        if out.seq >= packets or t >= end:
            break
        out.release(t)
        heapq.heappush(heap, (pollers[i].cycle(t), i))
    return t


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; see --help."""
    ap = argparse.ArgumentParser(
        description="Generate a seeded, realistic Modbus/TCP capture of a small plant "
                    "(3 masters, 20 servers, gateways with several unit ids) and a JSON "
                    "file with what it contains (<out>.truth.json). Same seed, same bytes.",
        epilog="examples:\n"
               "  %(prog)s --packets 2000000 --seed 1 --out bench/out/plant-2m.pcap\n"
               "  %(prog)s --minutes 1 --period-scale 6 --seed 1 --out samples/plant-small.pcap \\\n"
               "      --truth samples/plant-small.truth.json\n"
               "\nThe truth file has the keys of 'otsentry-agent decode F --stats --json'\n"
               "(requests_by_function, responses_by_function, exceptions_by_code,\n"
               "endpoints, packets) and what was done to the TCP stream: ADUs whose\n"
               "MBAP header was split (mbap_split_*), ADUs in segments that start with\n"
               "fewer than 8 bytes of an ADU (short_start_*: tshark drops those),\n"
               "pipelined and retransmitted segments, connections, VLAN frames.\n",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="capture file to write")
    ap.add_argument("--truth", type=Path,
                    help="where to write the ground truth (default: <out>.truth.json)")
    ap.add_argument("--packets", type=int, help="stop after about this many frames")
    ap.add_argument("--minutes", type=float, help="stop after this much capture time")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    ap.add_argument("--format", choices=("pcap", "pcapng"), default="pcap",
                    help="capture format (default pcap, microsecond timestamps)")
    ap.add_argument("--period-scale", type=float, default=1.0,
                    help="multiply every polling period (default 1: 100 ms - 2 s); "
                         "larger values give a lighter load per minute")
    ap.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = ap.parse_args(argv)
    if args.packets is None and args.minutes is None:
        ap.error("give --packets N and/or --minutes M")
    t0 = time.monotonic()
    truth = generate(args.out, args.seed, args.packets, args.minutes, args.format,
                     args.period_scale, not args.quiet, args.truth)
    if not args.quiet:
        print(f"gen_capture: wrote {args.out} ({truth['packets']:,} packets, {truth['adus']:,} ADUs, "
              f"{truth['duration_s']:.0f} s of traffic) and {args.truth or f'{args.out}.truth.json'} "
              f"in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
