"""The tshark oracle reproduces the figures of shared/data/MANIFEST.md (tshark 4.0.17).

This pins the oracle itself: if a tshark upgrade or a preference change alters
how ADUs are counted, these tests say so before any decoder test is blamed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.oracles.tshark import TsharkError, tshark_command, tshark_stats

#: file -> (packets, request ADUs, response ADUs, exception responses, triples), from MANIFEST.md.
MANIFEST: dict[str, tuple[int, int, int, int, int]] = {
    "coil-poll-write-big.pcap": (13_622, 2_774, 2_774, 0, 2),
    "coil-read-write-multiple-small.pcap": (166, 16, 16, 0, 1),
    "fuzzed-function-codes.pcap": (36, 16, 1, 1, 2),
    "fuzzed-input-registers.pcap": (6, 2, 2, 0, 2),
    "fc23-length-mismatch.pcap": (2, 1, 1, 1, 2),
    "device-id-fc43.pcap": (4, 2, 2, 1, 4),
    "scada-one-master-13-slaves.pcap": (15_387, 7_990, 7_986, 0, 26),
    "scada-multi-slave-s7-mixed.pcap": (13_472, 1_789, 1_789, 0, 26),
    "input-regs-poll-write-register.pcap": (2_257, 1_142, 1_116, 0, 18),
    "gateway-units-unanswered.pcap": (4_901, 2_382, 1_593, 0, 8),
    "function-code-scan.pcap": (350, 141, 140, 130, 2),
    "holding-regs-poll-fc3.pcap": (102, 51, 51, 0, 2),
}

#: file -> ADUs per function code (requests + responses), where MANIFEST lists them.
FUNCTIONS: dict[str, dict[str, int]] = {
    "coil-poll-write-big.pcap": {"1": 2774, "5": 2774},
    "coil-read-write-multiple-small.pcap": {"1": 16, "15": 16},
    "fuzzed-function-codes.pcap": {
        "29": 1, "32": 1, "33": 1, "35": 1, "36": 1, "37": 1, "43": 1, "46": 1, "47": 1,
        "50": 1, "52": 1, "54": 1, "63": 1, "65": 1, "70": 1, "71": 2},
    "fuzzed-input-registers.pcap": {"4": 4},
    "fc23-length-mismatch.pcap": {"23": 2},
    "device-id-fc43.pcap": {"43": 4},
    "scada-one-master-13-slaves.pcap": {"1": 3038, "2": 3146, "4": 5536, "15": 4228, "16": 28},
    "scada-multi-slave-s7-mixed.pcap": {"1": 690, "2": 723, "4": 1169, "15": 996},
    "input-regs-poll-write-register.pcap": {"4": 2132, "6": 126},
    "gateway-units-unanswered.pcap": {"3": 86, "4": 3889},
    "holding-regs-poll-fc3.pcap": {"3": 102},
}

#: file -> exception responses per exception code, where MANIFEST names the codes.
EXCEPTIONS: dict[str, dict[str, int]] = {
    "function-code-scan.pcap": {"1": 104, "2": 8, "3": 18},
    "device-id-fc43.pcap": {"4": 1},
    "fc23-length-mismatch.pcap": {"10": 1},
    "fuzzed-function-codes.pcap": {"1": 1},
}


def test_manifest_lists_every_shared_capture(shared_pcaps: Path) -> None:
    """Every capture in the shared folder has figures here, and no figure lacks its file."""
    assert sorted(p.name for p in shared_pcaps.glob("*.pcap")) == sorted(MANIFEST)


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_oracle_matches_manifest(shared_pcaps: Path, name: str) -> None:
    """Packets, ADU request/response totals, exception responses and triples equal MANIFEST.md."""
    stats = tshark_stats(shared_pcaps / name)
    packets, requests, responses, exceptions, triples = MANIFEST[name]
    assert set(stats) == {"requests_by_function", "responses_by_function",
                          "exceptions_by_code", "endpoints", "packets"}
    assert stats["packets"] == packets
    assert sum(stats["requests_by_function"].values()) == requests
    assert sum(stats["responses_by_function"].values()) == responses
    assert sum(stats["exceptions_by_code"].values()) == exceptions
    assert len(stats["endpoints"]) == triples
    assert stats["endpoints"] == sorted(stats["endpoints"])
    if name in FUNCTIONS:
        both = dict(stats["requests_by_function"])
        for fc, n in stats["responses_by_function"].items():
            both[fc] = both.get(fc, 0) + n
        assert both == FUNCTIONS[name]
    if name in EXCEPTIONS:
        assert stats["exceptions_by_code"] == EXCEPTIONS[name]


def test_function_code_scan_sweeps_every_code(shared_pcaps: Path) -> None:
    """MANIFEST: 128 distinct function codes (0-127) in the scan capture."""
    stats = tshark_stats(shared_pcaps / "function-code-scan.pcap")
    seen = set(stats["requests_by_function"]) | set(stats["responses_by_function"])
    assert seen == {str(fc) for fc in range(128)}


def test_gateway_units_are_separate_triples(shared_pcaps: Path) -> None:
    """The gateway capture's master talks to units 1, 2, 3 and 7 behind one server."""
    stats = tshark_stats(shared_pcaps / "gateway-units-unanswered.pcap")
    units = {unit for src, dst, unit in stats["endpoints"] if src == "192.168.0.21"}
    assert units == {1, 2, 3, 7}


def test_other_ports_are_decoded_as_modbus_when_named(shared_pcaps: Path) -> None:
    """Extra server ports become '-d tcp.port==N,mbtcp'; 502 needs none."""
    cmd = tshark_command(shared_pcaps / "holding-regs-poll-fc3.pcap", (502, 5020))
    assert "tcp.port==5020,mbtcp" in cmd and "tcp.port==502,mbtcp" not in cmd
    assert "mbtcp.tcp.port:502" in cmd and "occurrence=a" in cmd


def test_unreadable_capture_raises_tshark_error(tmp_path: Path) -> None:
    """A file tshark cannot read gives TsharkError with tshark's reason, not a count of zero."""
    bad = tmp_path / "not-a-capture.pcap"
    bad.write_bytes(b"this is not a capture file\n")
    with pytest.raises(TsharkError, match="not-a-capture.pcap"):
        tshark_stats(bad)
