"""Live scenarios on lo: a pymodbus PLC polled by an HMI, attacked by real clients, captured
live, then checked by the real ``otsentry-agent detect`` command.

A representative subset of :mod:`bench.scenarios.live` (the full set runs in
``python bench/detect_eval.py --live``): a normal plant learned then protected,
scans, device identification, rogue writes, FC 8, a flood, an out-of-range
setpoint, a new master and stopped polling.  Needs root for the capture; CI
runs as root, so a missing privilege fails rather than skips.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bench.scenarios import live

pytestmark = pytest.mark.needs_root

SUBSET = ["plant-learned", "address-sweep", "unit-sweep", "function-sweep", "device-id-reads",
          "writes-second-client-learned", "fc8-restart", "fc8-listen-only", "flood",
          "setpoint-out-of-range", "new-master", "polling-stopped"]
MEDIUM_UP = {"medium", "high", "critical"}


def _detect(r: dict, tmp: Path) -> dict:
    """Run ``otsentry-agent detect`` on one capture; the strongest severity per detector."""
    cfg = tmp / f"{r['name']}.toml"
    cfg.write_text(live.toml_config(r["config"]))
    proc = subprocess.run([sys.executable, "-m", "otsentry.agent.cli", "--log-level", "warning",
                           *live.detect_args(r, str(cfg))],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, (r["name"], proc.stderr)
    order = ["info", "low", "medium", "high", "critical"]
    fired: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        f = json.loads(line)
        if f["kind"] not in fired or order.index(f["severity"]) > order.index(fired[f["kind"]]):
            fired[f["kind"]] = f["severity"]
    return {"run": r, "fired": fired}


@pytest.fixture(name="results", scope="module")
def _results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    if os.geteuid() != 0:
        pytest.fail("live scenarios capture on lo and need root (CAP_NET_RAW); CI runs as root")
    tmp = tmp_path_factory.mktemp("live")
    runs = live.run_all(str(tmp), SUBSET, jobs=4)
    with ThreadPoolExecutor(4) as pool:
        done = list(pool.map(lambda r: _detect(r, tmp), runs))
    return {d["run"]["name"]: d for d in done}


def test_every_capture_is_whole(results: dict[str, dict]) -> None:
    """Each scenario captured traffic on lo with nothing dropped."""
    assert set(results) == set(SUBSET)
    for name, d in results.items():
        assert d["run"]["frames"] > 200 and d["run"]["drops"] == 0, (name, d["run"])


def test_normal_plant_gives_nothing_at_medium_or_above(results: dict[str, dict]) -> None:
    """The plant learned for its first seconds, then protected: no finding at medium or above."""
    fired = results["plant-learned"]["fired"]
    assert {k: s for k, s in fired.items() if s in MEDIUM_UP} == {}


@pytest.mark.parametrize("name", [n for n in SUBSET if n != "plant-learned"])
def test_attack_fires_its_detectors(results: dict[str, dict], name: str) -> None:
    """Each live attack fires every detector its scenario names."""
    d = results[name]
    expected = set(d["run"]["expected"])
    assert expected <= set(d["fired"]), (name, sorted(expected - set(d["fired"])), d["fired"])


def test_rogue_master_is_high(results: dict[str, dict]) -> None:
    """A new master and its writes are high; the setpoint write outside its range is high."""
    assert results["new-master"]["fired"]["baseline.new-master"] == "high"
    w = results["writes-second-client-learned"]["fired"]
    assert w["baseline.new-master"] == w["baseline.new-write"] == "high"
    assert results["setpoint-out-of-range"]["fired"]["process.setpoint-out-of-envelope"] == "high"


def test_learning_split_is_before_the_attack(results: dict[str, dict]) -> None:
    """Learning scenarios learn at least two seconds, and stop before the attack phase."""
    for name, d in results.items():
        r = d["run"]
        if r["mode"] == "learn":
            assert 2e9 <= r["learn_ns"] <= (live.NORMAL_S - 1) * 1e9, (name, r["learn_ns"])
