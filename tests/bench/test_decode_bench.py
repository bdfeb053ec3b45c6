"""bench/decode.py on the shipped sample: every tool runs for real, failures are reported.

No timing is asserted (figures depend on the machine); the tests check that
each tool really processed the capture and that a missing tool is reported as
failed while the others still run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench" / "decode.py"
SAMPLE = REPO / "samples" / "plant-small.pcap"
TRUTH = json.loads((REPO / "samples" / "plant-small.truth.json").read_text())


def _bench(*args: str, env: dict[str, str] | None = None) -> tuple[int, dict]:
    proc = subprocess.run([sys.executable, str(BENCH), "--capture", str(SAMPLE), "--runs", "1",
                           "--no-install", "--json", *args], capture_output=True, text=True,
                          env=env, check=False)
    return proc.returncode, json.loads(proc.stdout)


def test_tshark_and_suricata_parse_the_sample() -> None:
    """tshark runs; Suricata (when installed) parses one transaction per request made."""
    code, report = _bench("--tools", "tshark,suricata,suricata-eve")
    assert report["packets"] == TRUTH["packets"] and report["adus"] == TRUTH["adus"]
    tshark = report["tools"]["tshark"]
    assert "error" not in tshark and tshark["packets_per_s"] > 0 and tshark["peak_rss_mb"] > 0
    requests = sum(TRUTH["requests_by_function"].values())
    for tool in ("suricata", "suricata-eve"):
        got = report["tools"][tool]
        if shutil.which("suricata") is None:
            assert "bookworm-backports" in got["error"]
            continue
        assert "error" not in got, got
        assert got["note"].startswith(f"{requests:,} Modbus transactions")
    if shutil.which("suricata") is not None:
        assert f"{requests:,} eve modbus records" in report["tools"]["suricata-eve"]["note"]
        assert code == 0


def test_a_missing_tool_is_reported_and_the_others_still_run() -> None:
    """Without tshark on PATH the bench says so, exits 1, and still times our decoder."""
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}
    code, report = _bench("--tools", "tshark,ours-stats", env=env)
    assert code == 1
    assert "tshark is not installed" in report["tools"]["tshark"]["error"]
    ours = report["tools"]["ours-stats"]
    if "error" not in ours:
        assert "counts equal the truth" in ours["note"]
    assert report["ratios"]["decode --stats vs tshark field export"] is None


def test_help_explains_the_tools() -> None:
    """--help names every tool and the examples a newcomer needs."""
    out = subprocess.run([sys.executable, str(BENCH), "--help"], capture_output=True, text=True,
                         check=True).stdout
    for word in ("ours-stats", "ours-jsonl", "tshark", "suricata-eve", "--runs", "./dev bench"):
        assert word in out
