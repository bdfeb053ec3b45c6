"""Crafted scenarios: a small plant (an HMI polling a PLC) plus one attack each.

Deterministic frames built with :class:`otsentry.agent.detect.testing.Wire` and
the :class:`~otsentry.agent.testing.Conversation` ADU builder.  The plant runs
for ``DURATION_S``; scenarios in ``learn`` mode learn its first ``LEARN_S``
seconds, and every attack starts at ``ATTACK_S``, after learning.  Each
scenario names the detectors it must fire; ``plant`` alone fires none.

    python -m bench.scenarios.crafted OUTDIR      # write every scenario as a pcap
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from otsentry.agent.detect.testing import Conn, Wire
from otsentry.agent.testing import Conversation, adu

S = 1_000_000_000
T0 = 1_700_000_000 * S
DURATION_S, LEARN_S, ATTACK_S = 50, 25, 30
HMI, PLC, EVIL = "10.0.0.10", "10.0.0.20", "10.0.0.66"


@dataclass
class Plant:
    """The normal traffic; knobs bend it for the baseline scenarios."""

    period_ns: int = S // 5
    stop_fc4_at: float | None = None
    pause_at: float | None = None
    slow_from: float | None = None
    burst_at: float | None = None
    silent_from: float | None = None
    setpoint: Callable[[int], int] = lambda i: 480 + (i * 7) % 40
    value0: Callable[[float], int] = lambda t: 1000 + int(t * 10) % 50


def plant(wire: Wire, p: Plant) -> Conn:
    """An HMI polling FC 3 (0-9) and FC 4 (0-4) and writing a setpoint (100) every 2 s."""
    conn = wire.connect(T0, HMI, PLC)
    conv = Conversation(unit=1)
    t, i = T0 + S // 100, 0
    while t < T0 + DURATION_S * S:
        sec = (t - T0) / S
        if p.pause_at is not None and p.pause_at <= sec < p.pause_at + 3:
            t += p.period_ns
            continue
        lat = 150_000_000 if p.slow_from is not None and sec >= p.slow_from else 2_000_000
        regs = (p.value0(sec), *range(200, 209))
        if p.silent_from is not None and sec >= p.silent_from:  # the HMI asks, nobody answers
            wire.send(conn, t, 0, conv.exchange(3, address=0, registers=regs)[0])
            wire.send(conn, t + S // 50, 0, conv.exchange(4, address=0, registers=(7, 8, 9, 10, 11))[0])
            if i % 10 == 0:
                wire.send(conn, t + S // 25, 0, conv.exchange(6, address=100, value=p.setpoint(i))[0])
            t += p.period_ns
            i += 1
            continue
        wire.exchange(conn, t, *conv.exchange(3, address=0, registers=regs), latency_ns=lat)
        if p.stop_fc4_at is None or sec < p.stop_fc4_at:
            wire.exchange(conn, t + lat + S // 50, *conv.exchange(4, address=0, registers=(7, 8, 9, 10, 11)))
        if i % 10 == 0:
            wire.exchange(conn, t + lat + S // 25, *conv.exchange(6, address=100, value=p.setpoint(i)))
        if p.burst_at is not None and int(sec * 5) == int(p.burst_at * 5):
            for k in range(100):
                wire.exchange(conn, t + 60_000_000 + k * 5_000_000, *conv.exchange(3, address=0, registers=regs))
        t += p.period_ns
        i += 1
    return conn


def attacker(wire: Wire, ip: str = EVIL, server: str = PLC, at: float = ATTACK_S) -> tuple[Conn, int]:
    """A new connection from ``ip`` at ``at`` seconds; returns it and its start time."""
    ts = T0 + int(at * S)
    return wire.connect(ts, ip, server), ts + 10_000


@dataclass
class Scenario:
    """One crafted capture and what it must fire."""

    name: str
    build: Callable[[Wire], None]
    expected: frozenset[str]
    mode: str = "plain"  # or "learn"
    config: dict[str, Any] = field(default_factory=dict)
    plant: Plant | None = field(default_factory=Plant)

    def frames(self) -> list[tuple[int, int, bytes]]:
        wire = Wire()
        if self.plant is not None:
            plant(wire, self.plant)
        self.build(wire)
        return wire.sorted_frames()


def scenarios() -> list[Scenario]:
    """Every crafted scenario, with the detectors it must fire."""
    from bench.scenarios import _attacks as a

    def sc(name: str, build: Callable[[Wire], None], *expected: str, **kw: Any) -> Scenario:
        return Scenario(name, build, frozenset(expected), **kw)

    learn = {"mode": "learn"}
    return [
        sc("plant", a.nothing), sc("plant-learned", a.nothing, **learn),
        sc("fc8-restart", a.fc8(1), "modbus.fc8-restart"),
        sc("fc8-listen-only", a.listen_only, "modbus.fc8-listen-only", "rate.unanswered-storm",
           plant=Plant(silent_from=31)),
        sc("fc8-clear-counters", a.fc8(10), "modbus.fc8-clear-counters"),
        sc("fc8-echo", a.fc8(0), "modbus.fc8-other"),
        sc("device-id-reads", a.device_id, "modbus.device-id", "modbus.report-server-id"),
        sc("firmware-change", a.firmware_change, "inventory.device-id-change",
           "modbus.device-id"),
        sc("umas-engineering", a.umas, "umas.start-stop", "umas.program-download",
           "umas.program-upload", "umas.reservation"),
        sc("nonstandard-functions", a.nonstandard, "modbus.nonstandard-function"),
        sc("broadcast-write", a.broadcast, "modbus.broadcast-write"),
        sc("writes-second-client", a.writes, "policy.write-not-allowed",
           config={"policy": {"writes": "allow-listed",
                              "allow_writes": [{"client": HMI, "addresses": [[100, 100]]}]}}),
        sc("not-modbus-on-502", a.not_modbus, "net.not-modbus"),
        sc("malformed-frames", a.malformed, "modbus.malformed"),
        sc("tcp-overlap", a.overlap, "net.tcp-violation"),
        sc("unmatched-responses", a.unmatched, "modbus.unmatched-response"),
        sc("duplicate-response", a.duplicate, "modbus.duplicate-response"),
        sc("mac-change", a.mac_change, "net.mac-change"),
        sc("unit-sweep", a.unit_sweep, "scan.unit-ids"),
        sc("function-sweep", a.fc_sweep, "scan.function-codes", "modbus.nonstandard-function"),
        sc("address-sweep", a.address_sweep, "scan.addresses", "rate.exception-storm"),
        sc("host-sweep", a.host_sweep, "scan.hosts", "modbus.device-id"),
        sc("flood", a.flood, "rate.flood"),
        sc("write-repeat", a.write_repeat, "rate.write-repeat"),
        sc("new-master", a.new_master, "baseline.new-master", **learn),
        sc("writes-second-client-learned", a.writes, "baseline.new-master", "baseline.new-write",
           **learn),
        sc("known-master-novelties", a.known_master_novelties, "baseline.new-pair",
           "baseline.new-function", "baseline.new-range", "baseline.new-write", **learn),
        sc("polling-stopped", a.nothing, "baseline.polling-stopped", **learn,
           plant=Plant(stop_fc4_at=35)),
        sc("plc-silent-learned", a.nothing, "rate.unanswered-storm", **learn,
           plant=Plant(silent_from=35)),
        sc("polling-drift", a.nothing, "baseline.polling-drift", **learn, plant=Plant(pause_at=35)),
        sc("latency-drift", a.nothing, "baseline.latency-drift", **learn, plant=Plant(slow_from=35)),
        sc("rate-spike", a.nothing, "rate.spike", **learn, plant=Plant(burst_at=35)),
        sc("setpoint-out-of-range", a.setpoint, "process.setpoint-out-of-envelope", **learn),
        sc("value-out-of-range", a.nothing, "process.value-out-of-envelope", **learn,
           plant=Plant(value0=lambda t: 1000 + int(t * 10) % 50 if t < 35 else 5000)),
        sc("rate-limited", a.rate_limited, "detect.rate-limited", "modbus.nonstandard-function"),
        sc("state-evicted", a.state_evicted, "detect.state-evicted", config={"max_keys": 100}),
    ]


def main(argv: list[str]) -> int:
    """Write every scenario as ``OUTDIR/<name>.pcap``."""
    import os

    out = argv[0] if argv else "scenarios"
    os.makedirs(out, exist_ok=True)
    for s in scenarios():
        wire = Wire()
        wire.frames = s.frames()
        wire.write_pcap(os.path.join(out, f"{s.name}.pcap"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
