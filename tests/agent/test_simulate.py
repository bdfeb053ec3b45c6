"""The plant simulator: values stay in range, the PLC behaves like one, the capture sees it all."""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

import pytest
from otsentry.agent import simulate as sim
from otsentry.agent.source import open_source
from pymodbus.exceptions import ModbusException


def test_signals_stay_inside_their_range() -> None:
    """Every process value drifts within base +- (amplitude + noise), never below 0."""
    rng = random.Random(3)
    for unit, signals in sim.SIGNALS.items():
        for reg, s in signals.items():
            values = [s.value(t / 50, rng) for t in range(500)]
            assert all(s.base - s.amplitude - s.noise <= v <= s.base + s.amplitude + s.noise
                       for v in values), (unit, reg)
            assert max(values) - min(values) > s.amplitude, (unit, reg)  # it does drift


def test_write_pcap_round_trips(tmp_path: Path) -> None:
    """Frames written as a nanosecond pcap read back identical."""
    frames = [(1_700_000_000_123_456_789 + k, 1, bytes([k]) * (60 + k)) for k in range(5)]
    path = tmp_path / "x.pcap"
    assert sim.write_pcap(str(path), frames) == 5
    src = open_source(str(path))
    try:
        assert [(ts, lt, bytes(d)) for ts, lt, d in src] == frames
    finally:
        src.close()


async def _session(port: int) -> dict:
    plc = sim.Plc(sim.PLC_IP, port)
    await plc.start()
    hmi = sim.hmi(port, period_s=0.1)
    hmi.start()
    out: dict = {}
    try:
        await asyncio.sleep(0.5)
        c = await sim._client(port, sim.ROGUE_IP, timeout_s=0.3)
        out["ident"] = await c.read_device_information(read_code=1, device_id=1)
        out["unit9"] = await c.read_holding_registers(0, count=1, device_id=9)
        await c.write_register(100, 7, device_id=0, no_response_expected=True)  # broadcast
        await asyncio.sleep(0.1)
        out["after_broadcast"] = (await c.read_holding_registers(100, count=1,
                                                                 device_id=2)).registers
        # before listen-only, which silences the PLC for the HMI too
        out["errors_before_stop"] = hmi.errors
        await c.diag_force_listen_only(device_id=1)
        await asyncio.sleep(0.05)
        with pytest.raises(ModbusException):
            await c.read_holding_registers(0, count=1, device_id=1)  # silent now
        out["silent"] = plc.listen_only
        plc.listen_only = False
        c.close()
    finally:
        await hmi.stop()
        await plc.stop()
    out["cycles"] = hmi.cycles
    return out


def test_plc_and_hmi_on_loopback() -> None:
    """The HMI polls without errors; FC 43 returns the identity; unit 0 writes reach every unit
    unanswered; FC 8/4 silences the PLC."""
    port = sim.free_port()
    out = asyncio.run(_session(port))
    assert out["cycles"] >= 4
    assert out["errors_before_stop"] == 0
    assert out["ident"].information[0] == b"otsentry"
    assert out["unit9"].isError()
    assert out["after_broadcast"] == [7]
    assert out["silent"] is True


@pytest.mark.needs_root
def test_capture_sees_every_role_on_its_own_address(tmp_path: Path) -> None:
    """Captured live on lo: the HMI, the historian, the attacker and the PLC keep their addresses."""
    if os.geteuid() != 0:
        pytest.fail("live capture on lo needs root (CAP_NET_RAW); CI runs as root")
    from otsentry.agent.packet import PacketParser

    port = sim.free_port()
    with sim.Capture(port) as cap:
        asyncio.run(sim.run_plant(port, normal_s=1.0, attack=sim.device_id, attack_s=0.5))
    path = tmp_path / "plant.pcap"
    assert cap.write_pcap(str(path)) == len(cap.frames) > 50
    parser, ips = PacketParser(), set()
    for _ts, lt, frame in cap.frames:
        p = parser.parse(lt, frame)
        if p is not None:
            ips |= {".".join(map(str, p[1])), ".".join(map(str, p[2]))}
    assert {sim.PLC_IP, sim.HMI_IP, sim.HISTORIAN_IP, sim.ROGUE_IP} <= ips
