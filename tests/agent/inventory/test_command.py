"""``otsentry-agent inventory``: tables, JSON, CSV export, state across runs, help."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from otsentry.agent.cli import main

FIRST, SECOND = "input-regs-poll-write-register.pcap", "gateway-units-unanswered.pcap"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["inventory", "--progress", "never", *args])
    return code, capsys.readouterr().out


def test_table(shared_pcaps: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The table lists assets with roles and units, devices, and polling cycles."""
    code, out = run(capsys, str(shared_pcaps / FIRST))
    assert code == 0
    lines = out.splitlines()
    gw = next(line for line in lines if line.startswith("192.168.0.20 "))
    assert "gateway" in gw and "1,2,3,7" in gw and "MOXA" in gw
    assert out.startswith("ASSETS: 6 (5 client, 1 gateway)")
    assert "DEVICES: 4" in out and "POLLING CYCLES:" in out
    assert "4 read_input_registers" in out and "0-7 (300001)" in out


def test_json_and_csv(shared_pcaps: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints the full structure; --export csv one row per device or client asset."""
    code, out = run(capsys, str(shared_pcaps / "scada-one-master-13-slaves.pcap"), "--json")
    d = json.loads(out)
    assert code == 0 and len(d["assets"]) == 14 and d["cycles"]
    code, out = run(capsys, str(shared_pcaps / "scada-one-master-13-slaves.pcap"),
                    "--export", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 14
    servers = [r for r in rows if r["role"] == "server"]
    assert len(servers) == 13 and all(r["unit"] == "255" for r in servers)
    assert all(r["clients"] == "141.81.0.10" for r in servers)


def test_state_across_runs(shared_pcaps: Path, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    """Two runs with --state give the same JSON as one run over both captures."""
    a, b = str(shared_pcaps / FIRST), str(shared_pcaps / SECOND)
    _, both = run(capsys, a, b, "--json")
    run(capsys, a, "--state", str(tmp_path))
    _, merged = run(capsys, b, "--state", str(tmp_path), "--json")
    assert json.loads(merged) == json.loads(both)
    assert (tmp_path / "inventory.sqlite").exists()


def test_output_file_and_registers(shared_pcaps: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """-o writes to a file; --registers adds register maps with 0-based addresses and refs."""
    out = tmp_path / "inv.txt"
    code, printed = run(capsys, str(shared_pcaps / "holding-regs-poll-fc3.pcap"), "--registers",
                        "-o", str(out))
    text = out.read_text()
    assert code == 0 and printed == ""
    assert "REGISTERS 192.168.110.138 unit 1 holding_registers" in text
    assert "\n0        400001" in text


def test_bad_user_map(shared_pcaps: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A broken user map stops the command with an error naming the file and the key."""
    bad = tmp_path / "tags.toml"
    bad.write_text('[[register]]\nref = "999999"\n')
    code = main(["inventory", str(shared_pcaps / FIRST), "--user-map", str(bad)])
    err = capsys.readouterr().err
    assert code == 1 and "tags.toml:1: key 'register[0].ref'" in err


def test_missing_capture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A capture that does not exist is an error, not a traceback."""
    code = main(["inventory", str(tmp_path / "none.pcap")])
    assert code == 1 and "none.pcap" in capsys.readouterr().err


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    """--help explains roles, addresses and --state in plain words."""
    with pytest.raises(SystemExit):
        main(["inventory", "--help"])
    out = capsys.readouterr().out
    for words in ("gateway", "400001", "--state", "--export", "spreadsheet", "0-based"):
        assert words in out
