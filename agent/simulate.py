"""A small plant on loopback: a pymodbus PLC, an HMI that polls it, attacks, and a live capture.

    from otsentry.agent import simulate as sim
    port = sim.free_port()
    with sim.Capture(port) as cap:                       # live on lo, "tcp port PORT"
        asyncio.run(sim.run_plant(port, normal_s=3, attack=sim.rogue_write, attack_s=3))
    cap.write_pcap("plant.pcap")

    python -m otsentry.agent.simulate --out plant.pcap --attack scan,rogue-write,fc8-restart

The parts, each usable alone (the demo and the detection evaluation reuse them):

- :class:`Plc` -- a pymodbus TCP server on ``PLC_IP`` with several units
  (pump station, tank, dosing).  Input and holding registers hold process
  values that drift (slow waves plus noise, always inside their normal
  range), coils and discrete inputs hold states; holding register 100 of
  unit 1 is the setpoint (normally 480..520).  The PLC answers FC 43/14 with
  an identity and FC 17 with a server id, honours FC 8/4 (listen-only: it
  stops answering everybody until FC 8/1), executes unit-0 writes as
  broadcasts without answering, and can be slowed down (:attr:`Plc.delay_s`)
  or pushed outside its range (:meth:`Plc.excursion`).
- :class:`Poller` -- a pymodbus client polling on a fixed period from its own
  loopback address: the HMI (``HMI_IP``, units 1-2, and a setpoint write every
  ``write_every`` cycles, alternating inside the normal range) or the
  historian (``HISTORIAN_IP``, input registers of units 1 and 3).
- the attacks, each an ``async def attack(port)`` function from ``ROGUE_IP``
  (or another address): scans of addresses, unit ids, function codes and
  hosts, device identification reads, rogue writes, FC 8 restart, listen-only
  and counter clearing, floods, repeated writes, an out-of-range setpoint, a
  new master, UMAS engineering requests, nonstandard function codes, broadcast
  writes, other protocols and malformed frames on the Modbus port.  pymodbus
  clients send what a Modbus stack can send; what it cannot (arbitrary
  function codes, malformed frames, non-Modbus bytes) goes through
  :class:`RawClient`, a plain TCP socket.
- :class:`Capture` -- everything on ``lo`` for one port, captured live with
  :func:`otsentry.agent.source.open_live` (needs CAP_NET_RAW) and written as a
  nanosecond pcap.

Every address is a loopback address (127.0.0.0/8 all lives on ``lo`` on
Linux), so each role keeps its own IP, as on a plant network.  pymodbus is
imported lazily: it is not part of the agent's base install
(``pip install otsentry[demo]``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import random
import socket
import struct
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ATTACKS",
    "FIELD_IPS",
    "HISTORIAN_IP",
    "HMI_IP",
    "NEW_MASTER_IP",
    "PLC_IP",
    "ROGUE_IP",
    "SETPOINT",
    "SETPOINT_VALUES",
    "Capture",
    "Plant",
    "Plc",
    "Poller",
    "RawClient",
    "free_port",
    "historian",
    "hmi",
    "run_plant",
    "write_pcap",
]

PLC_IP = "127.0.0.20"
HMI_IP = "127.0.0.10"
HISTORIAN_IP = "127.0.0.11"
NEW_MASTER_IP = "127.0.0.12"
ROGUE_IP = "127.0.0.66"
#: other Modbus devices on the "network" (started for host sweeps)
FIELD_IPS = tuple(f"127.0.0.{h}" for h in range(30, 40))
#: (unit, holding register) of the setpoint the HMI writes, and the values it writes
SETPOINT = (1, 100)
SETPOINT_VALUES = (480, 520)
UNITS = (1, 2, 3)
#: What the PLC answers to a device identification read (FC 43/14), object id -> value.
IDENTITY = {"VendorName": "otsentry", "ProductCode": "SIM-PLC", "MajorMinorRevision": "1.0",
            "VendorUrl": "https://example.invalid/otsentry", "ProductName": "plant simulator",
            "ModelName": "SIM-3U"}
LINKTYPE_ETHERNET = 1


def _pymodbus() -> Any:
    """Import pymodbus, quietly, with a clear error when it is missing."""
    try:
        import pymodbus
    except ImportError:
        raise SystemExit("the plant simulator needs pymodbus: pip install 'otsentry[demo]'") from None
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    return pymodbus


# --------------------------------------------------------------------------- the PLC

@dataclass
class Signal:
    """A process value: ``base + amplitude * sin(2 pi t / period) + noise``, rounded."""

    base: int
    amplitude: int
    period_s: float
    noise: int = 1

    def value(self, t: float, rng: random.Random) -> int:
        wave = self.amplitude * math.sin(2 * math.pi * t / self.period_s)
        return max(0, min(0xFFFF, round(self.base + wave + rng.randint(-self.noise, self.noise))))


#: unit -> input register -> signal (measurements; holding registers 0-9 mirror them)
SIGNALS: dict[int, dict[int, Signal]] = {
    1: {0: Signal(1000, 40, 2.0), 1: Signal(650, 25, 1.5), 2: Signal(220, 10, 1.0),
        3: Signal(35, 3, 1.25), 4: Signal(1480, 30, 2.0)},                 # pump station
    2: {0: Signal(4200, 150, 2.0), 1: Signal(180, 8, 2.0), 2: Signal(72, 4, 1.5)},  # tank
    3: {0: Signal(12, 2, 1.0), 1: Signal(300, 15, 2.0)},                 # dosing
}


class Plc:
    """A pymodbus TCP server with drifting process values (see the module docstring).

    Args:
        host: address to listen on (a loopback address).
        port: TCP port.
        units: the unit ids it serves.
        seed: seed of the value noise (runs are repeatable up to timing).
    """

    def __init__(self, host: str = PLC_IP, port: int = 502, units: Iterable[int] = UNITS,
                 seed: int = 1) -> None:
        _pymodbus()
        self.host, self.port, self.units = host, port, tuple(units)
        self.rng = random.Random(seed)
        self.t0 = time.monotonic()
        self.delay_s = 0.0
        self.listen_only = False
        self.excursions: dict[tuple[int, int], int] = {}
        self.server: Any = None
        self._task: asyncio.Task | None = None

    def excursion(self, unit: int, register: int, value: int | None) -> None:
        """Force input register ``register`` (and its holding mirror) of ``unit`` to ``value``
        (None ends the excursion)."""
        if value is None:
            self.excursions.pop((unit, register), None)
        else:
            self.excursions[(unit, register)] = value

    def _devices(self) -> list:
        from pymodbus.simulator import SimData, SimDevice
        from pymodbus.simulator.simutils import DataType

        devices = []
        for unit in self.units:
            hr = [0] * 120
            hr[100:110] = [500, 20, 80, 5, 0, 0, 0, 0, 0, 1]      # setpoint and limits
            coils = [unit % 2 == 1, True, False, True] + [False] * 12
            blocks = ([SimData(0, values=coils, datatype=DataType.BITS)],
                      [SimData(0, values=[True, False] * 8, datatype=DataType.BITS)],
                      [SimData(0, values=hr, datatype=DataType.REGISTERS)],
                      [SimData(0, values=[0] * 20, datatype=DataType.REGISTERS)])
            devices.append(SimDevice(id=unit, simdata=blocks, action=self._action(unit)))
        return devices

    def _action(self, unit: int) -> Callable[..., Awaitable[None]]:
        signals = SIGNALS.get(unit, {})

        async def action(fc: int, start: int, address: int, count: int, registers: list[int],
                         set_values: Any) -> None:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if set_values is None and fc in (3, 4):
                t = time.monotonic() - self.t0
                for reg, sig in signals.items():
                    v = self.excursions.get((unit, reg))
                    registers[reg - start] = sig.value(t, self.rng) if v is None else v
        return action

    def _trace_pdu(self, sending: bool, pdu: Any) -> Any:
        if not sending and pdu.function_code == 8:
            sub = getattr(pdu, "sub_function_code", None)
            if sub == 1:
                self.listen_only = False   # restart communications ends listen-only mode
            elif sub == 4:
                self.listen_only = True
        return pdu

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        return b"" if sending and self.listen_only else data

    async def start(self) -> None:
        """Listen; returns once the server accepts connections."""
        from pymodbus.pdu.device import ModbusDeviceIdentification
        from pymodbus.server import ModbusTcpServer

        identity = ModbusDeviceIdentification(info_name=dict(IDENTITY))
        self.server = ModbusTcpServer(self._devices(), address=(self.host, self.port),
                                      identity=identity, broadcast_enable=True,
                                      trace_pdu=self._trace_pdu, trace_packet=self._trace_packet)
        self._task = asyncio.create_task(self.server.serve_forever())
        for _ in range(100):
            await asyncio.sleep(0.02)
            if self.server.transport is not None:
                return
        raise RuntimeError(f"the PLC simulator did not start on {self.host}:{self.port}")

    async def stop(self) -> None:
        """Close the server and its connections."""
        if self.server is not None:
            await self.server.shutdown()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


# --------------------------------------------------------------------------- the masters

@dataclass
class Poll:
    """One request of a polling cycle: function, unit, address, count."""

    fc: int
    unit: int
    address: int
    count: int


#: what the HMI reads every cycle: process values, the setpoint read back, coils, tank level
HMI_POLLS = (Poll(3, 1, 0, 10), Poll(4, 1, 0, 5), Poll(3, 1, 100, 2), Poll(1, 1, 0, 8),
             Poll(3, 2, 0, 10), Poll(4, 2, 0, 3))
#: what the historian reads every cycle
HISTORIAN_POLLS = (Poll(4, 1, 0, 10), Poll(4, 3, 0, 2))


class Poller:
    """A master polling a PLC on a fixed period from its own address.

    Args:
        ip: source address (a loopback address).
        port: the PLC's port.
        polls: the requests of one cycle.
        period_s: cycle period.
        write_every: write the setpoint every this many cycles (0: never), alternating
            between :data:`SETPOINT_VALUES`.
        timeout_s: request timeout (a silent PLC costs this much per request).
    """

    def __init__(self, ip: str, port: int, polls: Iterable[Poll], period_s: float = 0.2,
                 write_every: int = 0, timeout_s: float = 0.3, server: str = PLC_IP) -> None:
        _pymodbus()
        self.ip, self.port, self.server = ip, port, server
        self.polls = tuple(polls)
        self.period_s, self.write_every, self.timeout_s = period_s, write_every, timeout_s
        self.cycles = self.errors = 0
        self.paused_until = 0.0
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.client: Any = None

    async def _connect(self) -> Any:
        from pymodbus.client import AsyncModbusTcpClient

        client = AsyncModbusTcpClient(self.server, port=self.port, source_address=(self.ip, 0),
                                      timeout=self.timeout_s, retries=0)
        await client.connect()
        return client

    async def _cycle(self, client: Any) -> None:
        for p in self.polls:
            if self._stop.is_set():
                return
            try:
                if p.fc == 1:
                    await client.read_coils(p.address, count=p.count, device_id=p.unit)
                elif p.fc == 2:
                    await client.read_discrete_inputs(p.address, count=p.count, device_id=p.unit)
                elif p.fc == 3:
                    await client.read_holding_registers(p.address, count=p.count, device_id=p.unit)
                else:
                    await client.read_input_registers(p.address, count=p.count, device_id=p.unit)
            except Exception:  # noqa: BLE001 -- a timeout or a lost connection: poll on
                self.errors += 1
        if self.write_every and self.cycles % self.write_every == 0:
            value = SETPOINT_VALUES[(self.cycles // self.write_every) % len(SETPOINT_VALUES)]
            with contextlib.suppress(Exception):
                await client.write_register(SETPOINT[1], value, device_id=SETPOINT[0])

    async def run(self) -> None:
        """Poll until :meth:`stop`; each cycle starts on the period grid."""
        self.client = await self._connect()
        start = time.monotonic()
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= self.paused_until:
                    if not self.client.connected:
                        with contextlib.suppress(Exception):
                            await self.client.connect()
                    await self._cycle(self.client)
                    self.cycles += 1
                n = math.floor((time.monotonic() - start) / self.period_s) + 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(),
                                           max(0.0, start + n * self.period_s - time.monotonic()))
        finally:
            self.client.close()

    def start(self) -> asyncio.Task:
        """Run in the background (call from a running loop)."""
        self._task = asyncio.create_task(self.run())
        return self._task

    def pause(self, seconds: float) -> None:
        """Skip the cycles of the next ``seconds``."""
        self.paused_until = time.monotonic() + seconds

    async def stop(self) -> None:
        """Stop after the current request."""
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task


def hmi(port: int, period_s: float = 0.2, ip: str = HMI_IP) -> Poller:
    """The HMI: units 1 and 2 every ``period_s``, a setpoint write every 10 cycles."""
    return Poller(ip, port, HMI_POLLS, period_s=period_s, write_every=10)


def historian(port: int, period_s: float = 0.5) -> Poller:
    """The historian: input registers of units 1 and 3 every ``period_s``."""
    return Poller(HISTORIAN_IP, port, HISTORIAN_POLLS, period_s=period_s)


# --------------------------------------------------------------------------- the plant

@dataclass
class Plant:
    """What runs during one simulation: the PLC, the masters, extra field devices."""

    port: int
    plc: Plc
    hmi: Poller
    historian: Poller | None
    devices: list[Plc] = field(default_factory=list)
    attack_start_ns: int = 0
    attack_end_ns: int = 0
    notes: list[str] = field(default_factory=list)


Attack = Callable[[Plant], Awaitable[None]]


async def run_plant(port: int, normal_s: float = 3.0, attack: Attack | None = None,
                    attack_s: float = 3.0, period_s: float = 0.2, with_historian: bool = True,
                    field_devices: int = 0, seed: int = 1, startup: Attack | None = None) -> Plant:
    """Run the plant for ``normal_s``, then ``attack`` (if any), then until ``attack_s`` has
    passed since the attack began; stop everything and return the :class:`Plant` (with the
    wall-clock time the attack began, in ns, for the learning split).  ``startup`` runs
    once the masters poll, within ``normal_s`` (normal traffic, such as
    :func:`scada_identify`)."""
    plc = Plc(PLC_IP, port, seed=seed)
    await plc.start()
    fields = [Plc(ip, port, units=(1,), seed=seed + k) for k, ip in enumerate(FIELD_IPS[:field_devices])]
    for f in fields:
        await f.start()
    plant = Plant(port, plc, hmi(port, period_s), historian(port) if with_historian else None,
                  fields)
    masters = [plant.hmi] + ([plant.historian] if plant.historian else [])
    for m in masters:
        m.start()
    try:
        t0 = time.monotonic()
        if startup is not None:
            await startup(plant)
        await asyncio.sleep(max(0.0, normal_s - (time.monotonic() - t0)))
        plant.attack_start_ns = time.time_ns()
        t = time.monotonic()
        if attack is not None:
            await attack(plant)
        plant.attack_end_ns = time.time_ns()
        await asyncio.sleep(max(0.0, attack_s - (time.monotonic() - t)))
    finally:
        for m in masters:
            await m.stop()
        for f in fields:
            await f.stop()
        await plc.stop()
    return plant


# --------------------------------------------------------------------------- attacks

async def _client(port: int, ip: str = ROGUE_IP, server: str = PLC_IP, timeout_s: float = 0.5) -> Any:
    from pymodbus.client import AsyncModbusTcpClient

    client = AsyncModbusTcpClient(server, port=port, source_address=(ip, 0), timeout=timeout_s,
                                  retries=0)
    if not await client.connect():
        raise ConnectionError(f"cannot connect to {server}:{port} from {ip}")
    return client


async def _quietly(coro: Awaitable[Any]) -> Any:
    try:
        return await coro
    except Exception:  # noqa: BLE001 -- an attacker does not care about the answer
        return None


async def address_sweep(plant: Plant, ip: str = ROGUE_IP) -> None:
    """Read 10 holding registers at every 100th address up to 3000: illegal-address exceptions."""
    c = await _client(plant.port, ip)
    for a in range(100, 3000, 100):
        await _quietly(c.read_holding_registers(a, count=10, device_id=1))
    c.close()


async def unit_sweep(plant: Plant, ip: str = ROGUE_IP) -> None:
    """Read holding register 0 of unit ids 1 to 20."""
    c = await _client(plant.port, ip, timeout_s=0.2)
    for u in range(1, 21):
        await _quietly(c.read_holding_registers(0, count=1, device_id=u))
    c.close()


async def function_sweep(plant: Plant, ip: str = ROGUE_IP) -> None:
    """Try function codes 1 to 40 (4 zero bytes of data each) on unit 1, over a raw socket."""
    async with RawClient(plant.port, ip) as raw:
        for fc in range(1, 41):
            await raw.request(1, bytes([fc]) + b"\x00\x00\x00\x01")


async def host_sweep(plant: Plant, ip: str = ROGUE_IP) -> None:
    """One device identification read on every field device and the PLC (start the plant
    with ``field_devices``)."""
    for server in (*(f.host for f in plant.devices), PLC_IP):
        c = await _client(plant.port, ip, server=server, timeout_s=0.3)
        await _quietly(c.read_device_information(read_code=1, device_id=1))
        c.close()
        await asyncio.sleep(0.02)


async def device_id(plant: Plant, ip: str = ROGUE_IP) -> None:
    """Read the device identification (FC 43/14) and the server id (FC 17)."""
    c = await _client(plant.port, ip)
    await _quietly(c.read_device_information(read_code=1, device_id=1))
    await _quietly(c.read_device_information(read_code=2, device_id=1))
    await _quietly(c.report_device_id(device_id=1))
    c.close()


async def scada_identify(plant: Plant, ip: str = HMI_IP) -> None:
    """Normal traffic: the SCADA host reads the PLC's identification (FC 43/14, basic and
    regular objects) once, as SCADA and engineering software do when they connect."""
    c = await _client(plant.port, ip)
    await _quietly(c.read_device_information(read_code=1, device_id=1))
    await _quietly(c.read_device_information(read_code=2, device_id=1))
    c.close()


async def rogue_write(plant: Plant, ip: str = ROGUE_IP) -> None:
    """Write holding register 50 and the setpoint block from a host that is not the HMI."""
    c = await _client(plant.port, ip)
    await _quietly(c.write_register(50, 1234, device_id=1))
    await _quietly(c.write_registers(SETPOINT[1], [500, 20], device_id=SETPOINT[0]))
    await _quietly(c.write_coil(3, False, device_id=1))
    c.close()


async def fc8_restart(plant: Plant, ip: str = ROGUE_IP) -> None:
    """FC 8/1: restart communications."""
    c = await _client(plant.port, ip)
    await _quietly(c.diag_restart_communication(False, device_id=1))
    c.close()


async def fc8_listen_only(plant: Plant, ip: str = ROGUE_IP) -> None:
    """FC 8/4: force listen-only mode; the PLC then answers nobody."""
    c = await _client(plant.port, ip)
    await _quietly(c.diag_force_listen_only(device_id=1))
    await asyncio.sleep(0.05)
    c.close()


async def fc8_clear_counters(plant: Plant, ip: str = ROGUE_IP) -> None:
    """FC 8/10: clear counters and diagnostic register."""
    c = await _client(plant.port, ip)
    await _quietly(c.diag_clear_counters(device_id=1))
    c.close()


async def fc8_echo(plant: Plant, ip: str = ROGUE_IP) -> None:
    """FC 8/0: return query data (echo)."""
    c = await _client(plant.port, ip)
    await _quietly(c.diag_query_data(b"\x12\x34", device_id=1))
    c.close()


async def flood(plant: Plant, ip: str = ROGUE_IP, seconds: float = 1.5, clients: int = 4) -> None:
    """Read as fast as possible from ``clients`` connections for ``seconds``."""
    end = time.monotonic() + seconds

    async def one() -> None:
        c = await _client(plant.port, ip)
        while time.monotonic() < end:
            await _quietly(c.read_holding_registers(0, count=10, device_id=1))
        c.close()
    await asyncio.gather(*(one() for _ in range(clients)))


async def rate_spike(plant: Plant, n: int = 150) -> None:
    """The HMI's address reads ``n`` times in a burst (a compromised or runaway HMI)."""
    c = await _client(plant.port, HMI_IP)
    for _ in range(n):
        await _quietly(c.read_holding_registers(0, count=10, device_id=1))
    c.close()


async def write_repeat(plant: Plant, ip: str = ROGUE_IP) -> None:
    """Toggle coil 7 of unit 1 24 times, 0.05 s apart (brute force I/O)."""
    c = await _client(plant.port, ip)
    for k in range(24):
        await _quietly(c.write_coil(7, bool(k % 2), device_id=1))
        await asyncio.sleep(0.05)
    c.close()


async def setpoint_out_of_range(plant: Plant) -> None:
    """The HMI's address writes 9999 to the setpoint (normally 480..520)."""
    c = await _client(plant.port, HMI_IP)
    await _quietly(c.write_register(SETPOINT[1], 9999, device_id=SETPOINT[0]))
    c.close()


async def new_master(plant: Plant, ip: str = NEW_MASTER_IP) -> None:
    """A host never seen before polls like an HMI (5 reads, 0.3 s apart)."""
    c = await _client(plant.port, ip)
    for _ in range(5):
        await _quietly(c.read_holding_registers(0, count=10, device_id=1))
        await asyncio.sleep(0.3)
    c.close()


async def hmi_novelties(plant: Plant) -> None:
    """From the HMI's address: another unit, another function, another range, another write."""
    c = await _client(plant.port, HMI_IP)
    await _quietly(c.read_holding_registers(0, count=2, device_id=3))
    await _quietly(c.read_discrete_inputs(0, count=8, device_id=1))
    await _quietly(c.read_holding_registers(110, count=5, device_id=1))
    await _quietly(c.write_register(105, 7, device_id=1))
    c.close()


async def stop_polling(plant: Plant) -> None:
    """The HMI stops (the historian goes on)."""
    await plant.hmi.stop()


async def pause_polling(plant: Plant, seconds: float = 0.6) -> None:
    """The HMI skips its cycles for ``seconds``, then polls on."""
    plant.hmi.pause(seconds)


async def slow_plc(plant: Plant, delay_s: float = 0.06) -> None:
    """The PLC answers ``delay_s`` later from now on (overload, or a man in the middle)."""
    plant.plc.delay_s = delay_s


async def process_excursion(plant: Plant, value: int = 5000) -> None:
    """Input register 0 of unit 1 (and its holding mirror) reads ``value``, far outside its range."""
    plant.plc.excursion(1, 0, value)


async def umas(plant: Plant, ip: str = ROGUE_IP) -> None:
    """UMAS (FC 90) engineering requests: reservation, stop, program download and upload, start."""
    async with RawClient(plant.port, ip) as raw:
        for f in (0x02, 0x10, 0x41, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x40):
            await raw.request(0, bytes([90, 0, f]))


async def nonstandard(plant: Plant, ip: str = ROGUE_IP) -> None:
    """Function codes 66 (user-defined) and 41 (reserved)."""
    async with RawClient(plant.port, ip) as raw:
        await raw.request(1, b"\x42\x00\x01")
        await raw.request(1, b"\x29")


async def broadcast_write(plant: Plant, ip: str = ROGUE_IP) -> None:
    """Write holding register 100 on unit 0 (a broadcast: executed, not answered)."""
    c = await _client(plant.port, ip)
    await _quietly(c.write_register(SETPOINT[1], 0, device_id=0, no_response_expected=True))
    await asyncio.sleep(0.1)
    c.close()


async def not_modbus(plant: Plant, ip: str = ROGUE_IP) -> None:
    """An HTTP request on the Modbus port."""
    async with RawClient(plant.port, ip) as raw:
        await raw.send(b"GET / HTTP/1.1\r\nHost: plc\r\nUser-Agent: curl/8.0\r\n\r\n")
        await raw.read(0.3)


async def malformed(plant: Plant, ip: str = ROGUE_IP) -> None:
    """Frames a Modbus stack would not send: a bad protocol id, a byte count that lies."""
    async with RawClient(plant.port, ip) as raw:
        await raw.send(struct.pack(">HHHB", 1, 7, 6, 1) + b"\x03\x00\x00\x00\x01")
        await raw.read(0.2)
        await raw.send(struct.pack(">HHHB", 2, 0, 9, 1) + b"\x10\x00\x00\x00\x05\x02\x00\x01")
        await raw.read(0.2)


async def unit_flood_nonstandard(plant: Plant, ip: str = ROGUE_IP) -> None:
    """Function code 66 on 39 unit ids in quick succession (many findings at once)."""
    async with RawClient(plant.port, ip) as raw:
        for u in range(1, 40):
            await raw.request(u, b"\x42", timeout_s=0.05)


#: attack name -> function, for the command line and the demo
ATTACKS: dict[str, Attack] = {
    "address-sweep": address_sweep, "unit-sweep": unit_sweep, "function-sweep": function_sweep,
    "scan": function_sweep, "device-id": device_id, "rogue-write": rogue_write,
    "fc8-restart": fc8_restart, "fc8-listen-only": fc8_listen_only,
    "fc8-clear-counters": fc8_clear_counters, "fc8-echo": fc8_echo, "flood": flood,
    "write-repeat": write_repeat, "setpoint": setpoint_out_of_range, "new-master": new_master,
    "stop-polling": stop_polling, "umas": umas, "nonstandard": nonstandard,
    "broadcast-write": broadcast_write, "not-modbus": not_modbus, "malformed": malformed,
}


class RawClient:
    """A plain TCP connection that sends Modbus/TCP frames as given (or any bytes at all)."""

    def __init__(self, port: int, ip: str = ROGUE_IP, server: str = PLC_IP) -> None:
        self.port, self.ip, self.server = port, ip, server
        self.tid = 0
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> RawClient:
        self.reader, self.writer = await asyncio.open_connection(
            self.server, self.port, local_addr=(self.ip, 0))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()

    async def send(self, data: bytes) -> None:
        assert self.writer is not None
        self.writer.write(data)
        await self.writer.drain()

    async def read(self, timeout_s: float) -> bytes:
        """What arrives within ``timeout_s`` (b"" if nothing)."""
        assert self.reader is not None
        try:
            return await asyncio.wait_for(self.reader.read(4096), timeout_s)
        except (TimeoutError, ConnectionError):
            return b""

    async def request(self, unit: int, pdu: bytes, timeout_s: float = 0.2) -> bytes:
        """One MBAP-framed request; the answer, if one comes within ``timeout_s``."""
        self.tid = (self.tid + 1) & 0xFFFF
        await self.send(struct.pack(">HHHB", self.tid, 0, len(pdu) + 1, unit) + pdu)
        return await self.read(timeout_s)


# --------------------------------------------------------------------------- capture

def free_port(hosts: Iterable[str] = (PLC_IP, *FIELD_IPS)) -> int:
    """A TCP port free on every address in ``hosts``."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind((PLC_IP, 0))
            port = s.getsockname()[1]
        try:
            for h in hosts:
                with socket.socket() as t:
                    t.bind((h, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free TCP port on the loopback addresses")


class Capture:
    """Capture ``tcp port PORT`` on ``lo`` in a background thread (needs CAP_NET_RAW).

    Use as a context manager around the traffic; leaving it waits until the
    interface has been quiet for ``settle_s``, then stops.  ``frames`` holds
    ``(ts_ns, linktype, frame)``; ``stats`` the source's counters (drops).
    """

    def __init__(self, port: int, interface: str = "lo", settle_s: float = 0.3) -> None:
        self.port, self.interface, self.settle_s = port, interface, settle_s
        self.frames: list[tuple[int, int, bytes]] = []
        self.src: Any = None
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def start(self) -> Capture:
        from otsentry.agent.source import open_live

        self.src = open_live(self.interface, bpf=f"tcp port {self.port}", poll_interval=0.05)
        self._thread = threading.Thread(target=self._read, name="capture", daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        try:
            for pkt in self.src:
                self.frames.append(pkt)
        except BaseException as exc:  # noqa: BLE001 -- reported by stop()
            self.error = exc

    def stop(self) -> None:
        """Wait for quiet, stop and close; raises what the capture thread raised."""
        if self.src is None:
            return
        n, deadline = -1, time.monotonic() + 10
        while n != len(self.frames) and time.monotonic() < deadline:
            n = len(self.frames)
            time.sleep(self.settle_s)
        self.src.stop()
        if self._thread is not None:
            self._thread.join(5)
        self.src.close()
        if self.error is not None:
            raise self.error

    @property
    def drops(self) -> int:
        st = self.src.stats if self.src is not None else None
        return int(getattr(st, "dropped", 0) or 0) + int(getattr(st, "if_dropped", 0) or 0)

    def __enter__(self) -> Capture:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def write_pcap(self, path: str) -> int:
        """Write the frames as a nanosecond pcap; returns how many."""
        return write_pcap(path, self.frames)


def write_pcap(path: str, frames: Iterable[tuple[int, int, bytes]]) -> int:
    """Write ``(ts_ns, linktype, frame)`` as a nanosecond pcap (one linktype: the first's)."""
    frames = list(frames)
    linktype = frames[0][1] if frames else LINKTYPE_ETHERNET
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, linktype))
        for ts, _lt, data in frames:
            fh.write(struct.pack("<IIII", ts // 10**9, ts % 10**9, len(data), len(data)) + data)
    return len(frames)


# --------------------------------------------------------------------------- command line

def main(argv: list[str] | None = None) -> int:
    """Run the plant (and attacks) on loopback, optionally capturing it into a pcap."""
    p = argparse.ArgumentParser(prog="python -m otsentry.agent.simulate",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=0, help="PLC port (default: a free one)")
    p.add_argument("--normal", type=float, default=10.0, metavar="SECONDS",
                   help="normal operation before the attacks")
    p.add_argument("--attack", default="", metavar="LIST",
                   help="comma-separated attacks: " + ", ".join(ATTACKS))
    p.add_argument("--after", type=float, default=5.0, metavar="SECONDS",
                   help="normal operation after the attacks began")
    p.add_argument("--period", type=float, default=0.2, help="HMI polling period (s)")
    p.add_argument("--out", metavar="PCAP", help="capture on lo into this pcap (needs root)")
    args = p.parse_args(argv)
    names = [a for a in args.attack.split(",") if a]
    unknown = [a for a in names if a not in ATTACKS]
    if unknown:
        p.error(f"unknown attack(s): {', '.join(unknown)}")
    port = args.port or free_port()

    async def attacks(plant: Plant) -> None:
        for name in names:
            print(f"attack: {name}", flush=True)
            await ATTACKS[name](plant)
            await asyncio.sleep(0.3)

    cap = Capture(port).start() if args.out else None
    try:
        print(f"plant: PLC {PLC_IP}:{port}, HMI {HMI_IP}, historian {HISTORIAN_IP}, "
              f"attacker {ROGUE_IP}", flush=True)
        asyncio.run(run_plant(port, args.normal, attacks if names else None, args.after,
                              period_s=args.period))
    finally:
        if cap is not None:
            cap.stop()
    if cap is not None and args.out:
        n = cap.write_pcap(args.out)
        print(f"captured {n} frames -> {args.out} (decode with --ports {port})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
