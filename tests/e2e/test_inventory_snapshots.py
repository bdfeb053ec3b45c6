"""The agent's inventory reaches the collector: identity, register map and polling cycles."""

from __future__ import annotations

import json
from pathlib import Path

from otsentry.collector.store import connect, read
from otsentry.collector.web._queries import inventory
from tests.conftest import REPO
from tests.fault.harness import SITE, Plant

SAMPLE = REPO / "samples" / "plant-small.pcap"


def test_a_replayed_capture_leaves_the_agents_inventory_at_the_collector(tmp_path: Path) -> None:
    plant = Plant(tmp_path)
    try:
        plant.start_collector()
        plant.agent = plant._spawn("agent", [
            "otsentry.agent.cli", "--log-format", "json", "run", "--config", "agent.toml",
            "--pcap", str(SAMPLE)])
        plant.wait_agent(60)
    finally:
        plant.stop()
    engine = connect(f"sqlite:///{tmp_path / 'store.sqlite'}")
    try:
        with read(engine) as conn:
            inv = inventory(conn, SITE)
    finally:
        engine.dispose()
    moxa = next(a for a in inv["assets"] if a["ip"] == "10.20.2.21")
    # from the snapshot: device identification (FC43/14) as the device sent it
    assert (moxa["vendor"], moxa["product"], moxa["firmware"]) == ("Moxa", "MGate MB3180", "v2.2")
    assert moxa["role"] == "gateway"
    assert [u["unit"] for u in moxa["units"]] == [1, 2, 3, 7]
    unit1 = next(u for u in moxa["units"] if u["unit"] == 1)
    regs = json.loads(unit1["attributes"]["registers"])
    cycles = json.loads(unit1["attributes"]["cycles"])
    ranges = json.loads(unit1["attributes"]["ranges"])
    assert any(r["table"] == "input_registers" for r in regs)
    assert {(c["client"], c["fc"], c["address"]) for c in cycles} >= {("10.20.1.11", 4, 240)}
    assert all(c["period_s"] > 0 for c in cycles if c["count"] > 2)
    assert any(r["kind"] == "write" and r["table"] == "holding_registers" for r in ranges)
    # snapshots add no history rows: the change history holds changes only
    assert all(h["change"] != "seen" for h in inv["history"])
