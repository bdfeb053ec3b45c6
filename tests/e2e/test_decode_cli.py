"""decode as an operator runs it: damaged captures, stdin, gzip, wrong files and exit codes."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import SHARED_PCAPS

CAPTURE = SHARED_PCAPS / "holding-regs-poll-fc3.pcap"


def _decode(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "otsentry.agent.cli", "decode", *args],
                          input=stdin, capture_output=True, check=False)


def _record_ends(data: bytes) -> list[int]:
    """Byte offsets where each pcap record ends (classic little-endian pcap)."""
    ends, pos = [], 24
    while pos + 16 <= len(data):
        pos += 16 + int.from_bytes(data[pos + 8 : pos + 12], "little")
        ends.append(pos)
    return ends


def test_truncated_capture_decodes_what_it_can_and_exits_3(tmp_path: Path) -> None:
    """A capture cut inside a packet gives the figures of every whole packet, the byte offset, and exit code 3."""
    data = CAPTURE.read_bytes()
    ends = _record_ends(data)
    whole, cut = tmp_path / "whole.pcap", tmp_path / "cut.pcap"
    whole.write_bytes(data[: ends[60]])
    cut.write_bytes(data[: ends[60] + 20])  # 20 bytes into the 62nd packet
    ok, damaged = _decode(str(whole), "--stats", "--json"), _decode(str(cut), "--stats", "--json")
    assert ok.returncode == 0 and damaged.returncode == 3
    assert json.loads(damaged.stdout) == json.loads(ok.stdout)
    err = damaged.stderr.decode()
    assert str(ends[60]) in err and "cut.pcap" in err


def test_stdin_and_gzip_give_the_same_figures(tmp_path: Path) -> None:
    """'-' reads a capture stream from stdin; gzip is recognised by content, not by name."""
    plain = _decode(str(CAPTURE), "--stats", "--json")
    piped = _decode("-", "--stats", "--json", stdin=CAPTURE.read_bytes())
    zipped = tmp_path / "capture.bin"
    zipped.write_bytes(gzip.compress(CAPTURE.read_bytes()))
    from_gz = _decode(str(zipped), "--stats", "--json")
    assert plain.returncode == piped.returncode == from_gz.returncode == 0
    assert json.loads(plain.stdout) == json.loads(piped.stdout) == json.loads(from_gz.stdout)


def test_not_a_capture_is_a_clear_error(tmp_path: Path) -> None:
    """A file that is not a capture names itself and the accepted formats, exit code 1."""
    bogus = tmp_path / "notes.txt"
    bogus.write_text("these are not packets\n")
    proc = _decode(str(bogus))
    err = proc.stderr.decode()
    assert proc.returncode == 1
    assert "notes.txt" in err and "pcap" in err and "Traceback" not in err


def test_bad_command_line_exits_2() -> None:
    """A malformed option value is refused with a usage message and exit code 2."""
    proc = _decode(str(CAPTURE), "--ports", "502,99999")
    assert proc.returncode == 2 and b"ports must be between 1 and 65535" in proc.stderr
