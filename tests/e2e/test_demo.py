"""The demo (the README's first command) runs end to end on the shipped sample."""

from __future__ import annotations

import subprocess
import sys


def test_demo_runs_every_step() -> None:
    """The demo prints decode figures, transactions, the inventory and findings, and exits 0."""
    proc = subprocess.run([sys.executable, "-m", "otsentry.agent.demo"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for title in ("Decode: what Modbus is on the wire", "Inventory: who is on the network",
                  "Detection: learn the first 30 s, then protect", "Demo finished."):
        assert title in out
    assert "read_holding_registers" in out and '"type": "transaction"' in out
    assert "gateway" in out and "1,2,3,7" in out
