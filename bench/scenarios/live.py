"""Live scenarios: the plant simulator on loopback, attacked by real clients, captured on ``lo``.

Each scenario starts a fresh plant (:mod:`otsentry.agent.simulate`: a pymodbus
PLC on 127.0.0.20 with three units, an HMI on 127.0.0.10 polling every 0.2 s
and writing the setpoint every 2 s, a historian on 127.0.0.11 polling every
0.5 s), captures ``tcp port PORT`` on ``lo`` live, runs ``NORMAL_S`` seconds of
normal operation, then one attack (mostly from 127.0.0.66), and ``ATTACK_S``
seconds after it began stops everything and writes the pcap.  Needs root (or
CAP_NET_RAW) for the capture.

The learning split: scenarios in ``learn`` mode learn from the start of the
capture until ``LEARN_MARGIN_S`` before the attack began
(``otsentry-agent detect PCAP --learn Ns``), then protect.  The margin covers
the engine's end of learning, which happens on its first one-second tick at
or after the learning time, so up to a second later than asked.

Detector knobs.  Our plant runs for seconds, not hours, so three defaults that
assume minutes are scaled down for every live scenario (``LIVE_DETECT``), and
nothing else:

- ``baseline.polling-stopped.minimum_s = 1.5`` (default 5 s): polling stopped
  is judged after period x 5 = 1 s of silence, and at least 1.5 s;
- ``rate.unanswered-storm.timeout_s = 0.5`` (default 10 s): requests left
  unanswered at the end of the capture count when older than 0.5 s (the
  capture ends a few seconds after the PLC goes silent);
- ``scan.hosts.settle_s = 1.0`` (default 10 s): a contact is judged a probe
  one second after it began (the capture ends seconds after the sweep).

What live traffic cannot show stays crafted (:mod:`bench.scenarios.crafted`):
overlapping TCP segments with different bytes (the kernel never sends them),
responses without a request and duplicated responses (an injector on the
wire, not a Modbus peer), a known IP behind a new MAC (``lo`` has no MAC
addresses), and the state-eviction scenario (hundreds of distinct clients).

    python -m bench.scenarios.live OUTDIR [NAME...]   # write pcaps + a JSON index
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from otsentry.agent import simulate as sim

NORMAL_S, ATTACK_S, LEARN_MARGIN_S = 4.0, 4.0, 1.5

#: knobs scaled down for plants that run seconds (see the module docstring)
LIVE_DETECT: dict[str, Any] = {"knobs": {
    "baseline.polling-stopped": {"minimum_s": 1.5},
    "rate.unanswered-storm": {"timeout_s": 0.5},
    "scan.hosts": {"settle_s": 1.0},
}}

Attack = Callable[[sim.Plant], Awaitable[None]]


@dataclass
class LiveScenario:
    """One live capture and what it must fire."""

    name: str
    attack: Attack | None
    expected: frozenset[str]
    mode: str = "plain"  # or "learn"
    config: dict[str, Any] = field(default_factory=dict)
    field_devices: int = 0

    def detect_config(self) -> dict[str, Any]:
        """``LIVE_DETECT`` merged with the scenario's own ``[detect]`` settings."""
        out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in LIVE_DETECT.items()}
        for k, v in self.config.items():
            out[k] = {**out.get(k, {}), **v} if isinstance(v, dict) else v
        return out


@dataclass
class LiveRun:
    """What one run left: the pcap, its port, the learning split, capture figures."""

    name: str
    pcap: str
    port: int
    expected: list[str]
    mode: str
    config: dict[str, Any]
    learn_ns: int | None
    frames: int
    drops: int
    seconds: float


_POLICY = {"policy": {"writes": "allow-listed",
                      "allow_writes": [{"client": sim.HMI_IP, "addresses": [[100, 100]],
                                        "table": "holding_registers"}]}}


def scenarios() -> list[LiveScenario]:
    """Every live scenario, with the detectors it must fire."""
    def sc(name: str, attack: Attack | None, *expected: str, **kw: Any) -> LiveScenario:
        return LiveScenario(name, attack, frozenset(expected), **kw)

    learn = {"mode": "learn"}
    return [
        sc("plant", None), sc("plant-learned", None, **learn),
        sc("address-sweep", sim.address_sweep, "scan.addresses", "rate.exception-storm"),
        sc("unit-sweep", sim.unit_sweep, "scan.unit-ids"),
        sc("function-sweep", sim.function_sweep, "scan.function-codes",
           "modbus.nonstandard-function"),
        sc("host-sweep", sim.host_sweep, "scan.hosts", "modbus.device-id", field_devices=10),
        sc("device-id-reads", sim.device_id, "modbus.device-id", "modbus.report-server-id"),
        sc("writes-second-client", sim.rogue_write, "policy.write-not-allowed", config=_POLICY),
        sc("writes-second-client-learned", sim.rogue_write, "baseline.new-master",
           "baseline.new-write", **learn),
        sc("fc8-restart", sim.fc8_restart, "modbus.fc8-restart"),
        sc("fc8-listen-only", sim.fc8_listen_only, "modbus.fc8-listen-only",
           "rate.unanswered-storm"),
        sc("fc8-clear-counters", sim.fc8_clear_counters, "modbus.fc8-clear-counters"),
        sc("fc8-echo", sim.fc8_echo, "modbus.fc8-other"),
        sc("flood", sim.flood, "rate.flood"),
        sc("write-repeat", sim.write_repeat, "rate.write-repeat"),
        sc("rate-spike", sim.rate_spike, "rate.spike", **learn),
        sc("setpoint-out-of-range", sim.setpoint_out_of_range,
           "process.setpoint-out-of-envelope", **learn),
        sc("value-out-of-range", sim.process_excursion, "process.value-out-of-envelope", **learn),
        sc("new-master", sim.new_master, "baseline.new-master", **learn),
        sc("known-master-novelties", sim.hmi_novelties, "baseline.new-pair",
           "baseline.new-function", "baseline.new-range", "baseline.new-write", **learn),
        sc("polling-stopped", sim.stop_polling, "baseline.polling-stopped", **learn),
        sc("polling-drift", sim.pause_polling, "baseline.polling-drift", **learn),
        sc("latency-drift", sim.slow_plc, "baseline.latency-drift", **learn),
        sc("umas-engineering", sim.umas, "umas.start-stop", "umas.program-download",
           "umas.program-upload", "umas.reservation"),
        sc("nonstandard-functions", sim.nonstandard, "modbus.nonstandard-function"),
        sc("broadcast-write", sim.broadcast_write, "modbus.broadcast-write"),
        sc("not-modbus-on-port", sim.not_modbus, "net.not-modbus"),
        sc("malformed-frames", sim.malformed, "modbus.malformed"),
        sc("rate-limited", sim.unit_flood_nonstandard, "detect.rate-limited",
           "modbus.nonstandard-function"),
    ]


def by_name(name: str) -> LiveScenario:
    """The scenario called ``name``."""
    for s in scenarios():
        if s.name == name:
            return s
    raise KeyError(name)


def run(s: LiveScenario, outdir: str, normal_s: float = NORMAL_S,
        attack_s: float = ATTACK_S) -> LiveRun:
    """Run the plant with the scenario's attack, captured live; write ``OUTDIR/<name>.pcap``."""
    os.makedirs(outdir, exist_ok=True)
    started = time.monotonic()
    port = sim.free_port()
    cap = sim.Capture(port)
    with cap:
        plant = asyncio.run(sim.run_plant(port, normal_s, s.attack, attack_s,
                                          field_devices=s.field_devices))
    path = os.path.join(outdir, f"{s.name}.pcap")
    cap.write_pcap(path)
    if not cap.frames:
        raise RuntimeError(f"{s.name}: nothing captured on lo (tcp port {port})")
    learn_ns = None
    if s.mode == "learn":
        learn_ns = plant.attack_start_ns - cap.frames[0][0] - int(LEARN_MARGIN_S * 1e9)
        learn_ns = max(1_000_000_000, learn_ns // 100_000_000 * 100_000_000)
    return LiveRun(s.name, path, port, sorted(s.expected), s.mode, s.detect_config(), learn_ns,
                   len(cap.frames), cap.drops, round(time.monotonic() - started, 2))


def run_named(name: str, outdir: str) -> dict[str, Any]:
    """:func:`run` by name, as a plain dict (for process pools)."""
    return asdict(run(by_name(name), outdir))


def run_all(outdir: str, names: list[str] | None = None, jobs: int = 4) -> list[dict[str, Any]]:
    """Run scenarios (all, or ``names``), ``jobs`` at a time, each in its own process."""
    from concurrent.futures import ProcessPoolExecutor

    names = names or [s.name for s in scenarios()]
    if jobs <= 1:
        return [run_named(n, outdir) for n in names]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(run_named, names, [outdir] * len(names)))


def toml_config(config: dict[str, Any]) -> str:
    """The scenario's settings as the ``[detect]`` table of an agent TOML config."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, dict):
            return "{" + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + "}"
        return "[" + ", ".join(value(x) for x in v) + "]"

    lines = ["[detect]"]
    for key, v in config.items():
        if key == "knobs":
            for det, knobs in v.items():
                lines += ["", f'[detect.knobs."{det}"]'] + [f"{k} = {value(x)}"
                                                          for k, x in knobs.items()]
        elif isinstance(v, dict):
            lines += ["", f"[detect.{key}]"] + [f"{k} = {value(x)}" for k, x in v.items()]
        else:
            lines.insert(1, f"{key} = {value(v)}")
    return "\n".join(lines) + "\n"


def detect_args(r: dict[str, Any], config_path: str) -> list[str]:
    """The ``otsentry-agent detect`` arguments that check one run."""
    args = ["detect", r["pcap"], "--ports", str(r["port"]), "--config", config_path, "--json",
            "--progress", "never"]
    if r["learn_ns"] is not None:
        args += ["--learn", f"{r['learn_ns'] / 1e9:g}s"]
    return args


def main(argv: list[str]) -> int:
    """Write every (or the named) scenario as ``OUTDIR/<name>.pcap`` plus ``OUTDIR/live.json``."""
    out = argv[0] if argv else "live-scenarios"
    runs = run_all(out, argv[1:] or None)
    with open(os.path.join(out, "live.json"), "w", encoding="utf-8") as fh:
        json.dump(runs, fh, indent=1)
    for r in runs:
        print(f"{r['name']:<30} {r['frames']:>6} frames  {r['drops']} dropped  {r['seconds']:.1f} s "
              f"-> {r['pcap']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
