"""Golden baselines: the inventory of every shared capture stays exactly as reviewed.

The baselines live in ``tests/baselines/inventory/<capture>.json.gz``; they are
rewritten only with ``pytest --update-baselines`` (then reviewed in the diff).
Times are capture times, so nothing in them is volatile.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from otsentry.agent.decode import run_pipeline
from otsentry.agent.inventory import Inventory
from otsentry.agent.pipeline import PipelineConfig
from tests.conftest import REPO, SHARED_PCAPS

BASELINES = REPO / "tests" / "baselines" / "inventory"


def _inventory(pcap: Path) -> dict:
    inv = Inventory()
    run_pipeline(str(pcap), [inv], PipelineConfig(heuristic=False), "never")
    return json.loads(json.dumps(inv.to_dict(), sort_keys=True))


@pytest.mark.parametrize("name", sorted(p.name for p in SHARED_PCAPS.glob("*.pcap")))
def test_inventory_matches_golden_baseline(name: str, update_baselines: bool) -> None:
    """The inventory of the capture equals the reviewed one, asset by asset."""
    got = _inventory(SHARED_PCAPS / name)
    path = BASELINES / f"{name}.json.gz"
    if update_baselines:
        BASELINES.mkdir(parents=True, exist_ok=True)
        with gzip.GzipFile(path, "wb", mtime=0) as f:
            f.write((json.dumps(got, indent=1, sort_keys=True) + "\n").encode())
    assert path.exists(), f"no baseline for {name}: run pytest --update-baselines and review it"
    want = json.loads(gzip.decompress(path.read_bytes()))
    assert sorted(got) == sorted(want)
    for key in want:
        assert got[key] == want[key], f"{name}: '{key}' differs"
