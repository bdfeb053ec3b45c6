"""Type guesses on real traffic: a pymodbus server with known values, polled and captured on lo."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import threading

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
from pymodbus.server import ModbusTcpServer

from otsentry.agent.inventory import Inventory
from otsentry.agent.pipeline import Pipeline, PipelineConfig
from otsentry.agent.source import open_live

pytestmark = [pytest.mark.needs_root,
              pytest.mark.skipif(os.geteuid() != 0, reason="live capture needs CAP_NET_RAW")]

UNIT = 5
POLLS = 30
#: holding register layout: first address -> (type, word order)
LAYOUT = {0: ("float32", "big"), 2: ("float32", "little"), 4: ("i32", "big"),
          6: ("u16", None), 7: ("u16", None), 8: ("float32", "little"), 10: ("i16", None)}


def pack(kind: str, order: str | None, value: float | int) -> list[int]:
    """Registers holding ``value`` as ``kind``, packed with struct (the oracle)."""
    if kind in ("u16", "i16"):
        return [value & 0xFFFF]
    hi, lo = struct.unpack(">HH", struct.pack(">f" if kind == "float32" else ">i", value))
    return [hi, lo] if order == "big" else [lo, hi]


def plant_values(k: int) -> dict[int, float | int]:
    """What the simulated plant holds at poll ``k``: temperatures, pressures, a totaliser..."""
    return {0: 21.37 + 0.13 * k, 2: -1234.567 + 1.7 * k, 4: -100_000 - 9_000 * k,
            6: 42 + k, 7: 1000, 8: 0.0123 * (k + 1), 10: -5 + (k % 4)}


def registers(k: int) -> list[int]:
    out: list[int] = []
    for addr, (kind, order) in LAYOUT.items():
        assert len(out) == addr
        out += pack(kind, order, plant_values(k)[addr])
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _session(port: int) -> list[list[int]]:
    """Serve a PLC on ``port``; an I/O writer updates it (FC16), an HMI polls it (FC3)."""
    block = ModbusSequentialDataBlock(1, registers(0))  # pymodbus: starts at wire address 0
    server = ModbusTcpServer(
        ModbusServerContext(devices={UNIT: ModbusDeviceContext(hr=block)}, single=False),
        address=("127.0.0.1", port))
    task = asyncio.create_task(server.serve_forever())
    await asyncio.sleep(0.3)
    writer = AsyncModbusTcpClient("127.0.0.1", port=port)
    hmi = AsyncModbusTcpClient("127.0.0.1", port=port)
    await writer.connect()
    await hmi.connect()
    seen = []
    for k in range(POLLS):
        await writer.write_registers(0, registers(k), device_id=UNIT)
        r = await hmi.read_holding_registers(0, count=len(registers(k)), device_id=UNIT)
        seen.append(list(r.registers))
        await asyncio.sleep(0.01)
    writer.close()
    hmi.close()
    await server.shutdown()
    task.cancel()
    return seen


def test_types_and_word_orders_of_a_real_server() -> None:
    """float32 in both word orders, a negative i32, u16 and i16 are guessed as the server holds them."""
    port = _free_port()
    src = open_live("lo", bpf=f"tcp port {port}", poll_interval=0.05)
    frames: list = []
    reader = threading.Thread(target=lambda: frames.extend(src))
    reader.start()
    try:
        seen = asyncio.run(_session(port))
    finally:
        threading.Timer(0.5, src.stop).start()
        reader.join(timeout=10)
        src.close()
    assert seen == [registers(k) for k in range(POLLS)]  # the server held what we meant

    inv = Inventory()
    pipe = Pipeline([inv], PipelineConfig(ports=(port,)))
    for ts, linktype, data in frames:
        pipe.feed(ts, linktype, data)
    pipe.finish()
    [server] = [a for a in inv.assets() if a.is_server]
    table = server.to_dict()["devices"][0]["tables"]["holding_registers"]
    got = {r["address"]: (r["type"], r.get("word_order")) for r in table["registers"]}
    want = {a: (kind, order) for a, (kind, order) in LAYOUT.items()}
    assert got == want
    last = {r["address"]: r["value"] for r in table["registers"]}
    final = plant_values(POLLS - 1)
    assert last[0] == pytest.approx(final[0], rel=1e-6) and last[4] == final[4]
    assert last[8] == pytest.approx(final[8], rel=1e-6) and last[10] == final[10]
    [cycle] = [c for c in inv.cycles() if c["fc"] == 3]
    assert cycle["count"] == POLLS and cycle["period_s"] > 0.01
