"""Live capture on lo: the agent decodes exactly the transactions a real client made."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
from pymodbus.server import ModbusTcpServer

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="live capture needs CAP_NET_RAW (run as root; CI does)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_agent(port: int, out: Path, duration: float) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "otsentry.agent.cli", "decode", "iface:lo", "--filter",
         f"tcp port {port}", "--ports", str(port), "--duration", str(duration), "-o", str(out)],
        stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if "capture.started" in line:
            return proc
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError("the agent did not start capturing")


async def _client_session(port: int) -> list[tuple]:
    """Run a known sequence of requests; return what each one asked and got."""
    store = ModbusDeviceContext(
        co=ModbusSequentialDataBlock(1, [0] * 200), di=ModbusSequentialDataBlock(1, [1, 0] * 100),
        hr=ModbusSequentialDataBlock(1, list(range(1000, 1200))),
        ir=ModbusSequentialDataBlock(1, list(range(2000, 2200))))
    server = ModbusTcpServer(ModbusServerContext(devices={7: store}, single=False),
                             address=("127.0.0.1", port))
    task = asyncio.create_task(server.serve_forever())
    await asyncio.sleep(0.3)
    client = AsyncModbusTcpClient("127.0.0.1", port=port)
    await client.connect()
    made = []
    r = await client.read_holding_registers(10, count=4, device_id=7)
    made.append((3, 10, list(r.registers)))
    r = await client.read_input_registers(5, count=2, device_id=7)
    made.append((4, 5, list(r.registers)))
    r = await client.read_coils(0, count=10, device_id=7)
    made.append((1, 0, [int(b) for b in r.bits[:10]]))
    r = await client.read_discrete_inputs(0, count=8, device_id=7)
    made.append((2, 0, [int(b) for b in r.bits[:8]]))
    await client.write_register(20, 4242, device_id=7)
    made.append((6, 20, [4242]))
    await client.write_coil(3, True, device_id=7)
    made.append((5, 3, [0xFF00]))
    await client.write_registers(30, [1, 2, 3], device_id=7)
    made.append((16, 30, [1, 2, 3]))
    await client.write_coils(40, [True, False, True], device_id=7)
    made.append((15, 40, [1, 0, 1]))
    r = await client.read_holding_registers(30, count=3, device_id=7)
    made.append((3, 30, list(r.registers)))
    client.close()
    await server.shutdown()
    task.cancel()
    return made


def _observed(rec: dict) -> tuple:
    req, rsp = rec["request"], rec["response"]
    fc = rec["fc"]
    if fc in (1, 2, 3, 4):
        return (fc, req["address"], rsp["registers"] if fc in (3, 4) else rsp["values"])
    if fc in (5, 6):
        return (fc, req["address"], [req["value"]])
    return (fc, req["address"], req["registers"] if fc == 16 else req["values"])


def test_live_capture_on_lo_decodes_every_transaction(tmp_path: Path) -> None:
    """Every request/response a pymodbus client made is decoded once, in order, with its values."""
    port = _free_port()
    out = tmp_path / "live.jsonl"
    agent = _start_agent(port, out, duration=60.0)
    try:
        made = asyncio.run(_client_session(port))
        time.sleep(0.5)
        agent.terminate()  # SIGTERM: the agent stops capturing and flushes what it has
        agent.wait(timeout=30)
    finally:
        if agent.poll() is None:
            agent.kill()
    assert agent.returncode == 0, agent.stderr.read() if agent.stderr else ""
    records = [json.loads(line) for line in out.read_text().splitlines()]
    txs = [r for r in records if r["type"] == "transaction"]
    assert [t["status"] for t in txs] == ["ok"] * len(made)
    assert all(t["unit"] == 7 and t["server"] == f"127.0.0.1:{port}" for t in txs)
    assert [_observed(t) for t in txs] == made
    assert [r for r in records if r["type"] != "transaction"] == []
