"""The attack half of each crafted scenario (see :mod:`bench.scenarios.crafted`)."""

from __future__ import annotations

import struct

from bench.scenarios.crafted import EVIL, HMI, PLC, S, T0, attacker
from otsentry.agent.detect.testing import Wire, mac_of
from otsentry.agent.testing import Conversation, adu

MS = 1_000_000


def _many(wire: Wire, pairs: list[tuple[bytes, bytes | None]], step: int = 20 * MS,
          ip: str = EVIL) -> None:
    conn, ts = attacker(wire, ip)
    for k, (req, rsp) in enumerate(pairs):
        wire.exchange(conn, ts + k * step, req, rsp)


def fc8(sub: int):
    def build(wire: Wire) -> None:
        _many(wire, [Conversation(unit=1).exchange(8, sub_function=sub)])
    return build


def listen_only(wire: Wire) -> None:
    """FC 8/4, after which the PLC answers nobody: the HMI's requests go unanswered."""
    fc8(4)(wire)


def device_id(wire: Wire) -> None:
    conv = Conversation(unit=1)
    _many(wire, [conv.exchange(43, read_code=1), conv.exchange(17)])


def firmware_change(wire: Wire) -> None:
    """The engineering station reads the PLC's identity before and after its firmware changed."""
    conv = Conversation(unit=1)
    ident = ((0, b"Schneider Electric"), (1, b"BMX P34 2020"), (2, b"v3.10"))
    for at, objects in ((5, ident), (40, (*ident[:2], (2, b"v3.99")))):
        conn, ts = attacker(wire, "10.0.0.12", at=at)
        wire.exchange(conn, ts, *conv.exchange(43, read_code=1, objects=objects))


def umas(wire: Wire) -> None:
    conv = Conversation(unit=0)
    _many(wire, [conv.exchange(90, function=f) for f in (0x02, 0x10, 0x41, 0x30, 0x31, 0x32, 0x33, 0x34, 0x40)])
    conn, ts = attacker(wire, "10.0.0.77", at=40)
    wire.exchange(conn, ts, *conv.exchange(90, function=0x10))


def nonstandard(wire: Wire) -> None:
    conv = Conversation(unit=1)
    _many(wire, [conv.raw(66, b"\x00\x01", b"\x00"), conv.raw(41, b"", b"")])


def broadcast(wire: Wire) -> None:
    conv = Conversation(unit=0)
    _many(wire, [(conv.exchange(6, address=100, value=0)[0], None)])
    conn, ts = attacker(wire, "10.0.0.11", at=33)
    wire.exchange(conn, ts, *Conversation(unit=0).exchange(6, address=100, value=1))  # answered: no broadcast


def writes(wire: Wire) -> None:
    conv = Conversation(unit=1)
    _many(wire, [conv.exchange(6, address=50, value=1234), conv.exchange(16, address=100, registers=(9, 9))])


def not_modbus(wire: Wire) -> None:
    conn, ts = attacker(wire)
    wire.send(conn, ts, 0, b"GET / HTTP/1.1\r\nHost: plc\r\n\r\n")
    wire.send(conn, ts + MS, 1, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")


def malformed(wire: Wire) -> None:
    conn, ts = attacker(wire)
    wire.send(conn, ts, 0, adu(1, 1, b"\x03\x00\x00\x00\x01", protocol=7))
    wire.send(conn, ts + 10 * MS, 0, adu(2, 1, b"\x10\x00\x00\x00\x05\x02\x00\x01"))


def overlap(wire: Wire) -> None:
    """The same TCP bytes sent twice with different content."""
    conn, ts = attacker(wire)
    conv = Conversation(unit=1)
    req, rsp = conv.exchange(3, address=0, registers=(1,))
    seq = conn.seq[0]
    wire.send(conn, ts, 0, req)
    evil = req[:-1] + b"\x09"
    wire.frame(ts + MS, conn, 0, 0x18, evil, seq=seq)
    wire.send(conn, ts + 2 * MS, 1, rsp)


def unmatched(wire: Wire) -> None:
    conn, ts = attacker(wire, HMI, at=30)
    conv = Conversation(unit=1, first_tid=7000)
    for k in range(6):
        wire.send(conn, ts + S * 3 + k * 100 * MS, 1, conv.exchange(3, address=0, registers=(k,))[1])


def duplicate(wire: Wire) -> None:
    conn, ts = attacker(wire, HMI, at=30)
    conv = Conversation(unit=1, first_tid=8000)
    req, rsp = conv.exchange(3, address=0, registers=(1, 2))
    wire.exchange(conn, ts, req, rsp)
    wire.send(conn, ts + 5 * MS, 1, rsp[:-1] + b"\x07")


def mac_change(wire: Wire) -> None:
    """A new connection from the PLC's address, now behind another MAC."""
    ts = T0 + 32 * S
    conn = wire.connect(ts, HMI, PLC, smac=bytes.fromhex("02aabbccddee"))
    wire.exchange(conn, ts + MS, *Conversation(unit=1).exchange(3, address=0, registers=(1,)))


def unit_sweep(wire: Wire) -> None:
    conv = Conversation()
    _many(wire, [(conv.exchange(3, unit=u, address=0, registers=(0,))[0], None if u != 1 else
                  conv.exchange(3, unit=u, address=0, registers=(0,))[1]) for u in range(1, 20)])


def fc_sweep(wire: Wire) -> None:
    conv = Conversation(unit=1)
    _many(wire, [conv.exception(fc, 1) for fc in range(1, 40) if fc not in (3, 4, 6)])


def address_sweep(wire: Wire) -> None:
    conv = Conversation(unit=1)
    _many(wire, [conv.exception(3, 2, address=a, registers=(0,) * 10) for a in range(100, 3000, 100)])


def host_sweep(wire: Wire) -> None:
    for h in range(30, 45):
        conn, ts = attacker(wire, server=f"10.0.0.{h}", at=ATTACK + (h - 30) * 0.05)
        wire.exchange(conn, ts, *Conversation(unit=1).exchange(43, read_code=1))


ATTACK = 30


def flood(wire: Wire) -> None:
    conv = Conversation(unit=1)
    _many(wire, [conv.exchange(3, address=0, registers=(0,)) for _ in range(600)], step=MS)


def write_repeat(wire: Wire) -> None:
    conv = Conversation(unit=1)
    _many(wire, [conv.exchange(5, address=7, value=0xFF00 if k % 2 else 0) for k in range(24)],
          step=200 * MS)


def new_master(wire: Wire) -> None:
    conv = Conversation(unit=1)
    _many(wire, [conv.exchange(3, address=0, registers=(0,) * 10) for _ in range(5)], step=S,
          ip="10.0.0.12")


def known_master_novelties(wire: Wire) -> None:
    """The HMI reads another unit, a new function, a new range, and writes a new register."""
    conn, ts = attacker(wire, HMI)
    conv = Conversation(unit=1, first_tid=6000)
    for k, pair in enumerate([conv.exchange(3, unit=2, address=0, registers=(0,)),
                              conv.exchange(1, address=0, values=(1,)),
                              conv.exchange(3, address=300, registers=(0,) * 5),
                              conv.exchange(6, address=50, value=7)]):
        wire.exchange(conn, ts + k * 50 * MS, *pair)


def setpoint(wire: Wire) -> None:
    conn, ts = attacker(wire, HMI)
    wire.exchange(conn, ts, *Conversation(unit=1, first_tid=5000).exchange(6, address=100, value=9999))


def rate_limited(wire: Wire) -> None:
    conv = Conversation()
    _many(wire, [conv.raw(66, b"", b"", unit=u) for u in range(1, 40)], step=5 * MS)


def state_evicted(wire: Wire) -> None:
    host_sweep(wire)
    for h in range(100, 250):
        conn, ts = attacker(wire, ip=f"10.0.1.{h}", at=34)
        wire.exchange(conn, ts, *Conversation(unit=1).exchange(3, address=0, registers=(1,)))


def nothing(wire: Wire) -> None:
    """No attack: the plant alone."""
