"""The whole-system demo (the README's first command): live on lo as root, else a replay."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _run(tmp_path: Path, *extra: str) -> tuple[str, Path]:
    root = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "otsentry.collector.demo", "--dir", str(root),
                           *extra], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout, root


def _check(out: str, root: Path) -> None:
    for step in ("1/6 PKI", "2/6 Collector", "3/6 Plant", "4/6 Attack", "5/6 What the collector",
                 "6/6 STIX 2.1 sent to the NICC", "Demo finished."):
        assert step in out, out
    # the incident, found from the attack and reported upstream
    assert "incident #1" in out and "reconnaissance then write from 127.0.0.66" in out
    assert "upstream nicc early-warning: acknowledged" in out
    for kind in ("baseline.new-master", "baseline.new-write", "modbus.fc8-restart",
                 "scan.unit-ids"):
        assert kind in out
    # graded as the catalogue says: a restart command is high (docs/detections.md) ...
    assert "HIGH     modbus.fc8-restart" in out, out
    # ... and the HMI's identification read while learning is info, so not listed
    assert "modbus.device-id" not in out, out
    # the inventory reached the collector with the PLC's register map and polling cycles
    plc = next(line for line in out.splitlines() if line.strip().startswith("127.0.0.20"))
    regs, cycles = map(int, plc.split()[-2:])
    assert regs > 0 and cycles > 0, plc
    # ... and its vendor and product from the identification the HMI read (the simulator's)
    from otsentry.agent.simulate import IDENTITY

    assert IDENTITY["VendorName"] in plc and IDENTITY["ProductName"] in plc, plc
    # the bundle sent is on disk, and the NICC holds the incident
    bundle = json.loads((root / "incident-1.json").read_text())
    assert any(o["type"] == "incident" for o in bundle["objects"])
    assert "marking: TLP:AMBER" in out
    # everything sent is held upstream, the Modbus extension definition included
    n = len(bundle["objects"])
    assert any(o["type"] == "extension-definition" for o in bundle["objects"])
    assert f"read back from the NICC's TAXII collection: all {n} of {n} objects" in out, out
    assert "login token: ots1." in out


def test_demo_replays_a_capture_it_made(tmp_path: Path) -> None:
    out, root = _run(tmp_path, "--replay")
    assert "replaying plant.pcap" in out
    _check(out, root)


@pytest.mark.needs_root
def test_demo_captures_live_on_lo(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("live capture on lo needs CAP_NET_RAW (run as root); CI runs as root")
    out, root = _run(tmp_path, "--learn", "8")
    assert "the agent captures on lo" in out
    _check(out, root)
