"""The evaluation's important rows: right findings on attacks, none at medium+ on normal traffic."""

from __future__ import annotations

import pytest

from bench.detect_eval import SHARED, crafted_cases, shared_cases, table
from otsentry.agent.detect.catalogue import CATALOGUE
from otsentry.common.finding import Severity


@pytest.fixture(name="cases", scope="module")
def _cases() -> list:
    return shared_cases() + crafted_cases()


def test_normal_shared_captures_give_nothing_at_medium_or_above(cases: list) -> None:
    """The seven normal shared captures raise no finding at medium or above."""
    normal = [c for c in cases if c.name in SHARED and c.normal]
    assert len(normal) == 7
    assert {c.name: {k: str(s) for k, s in c.fired.items() if s >= Severity.MEDIUM}
            for c in normal} == {c.name: {} for c in normal}


@pytest.mark.parametrize("name", ["function-code-scan.pcap", "fuzzed-function-codes.pcap",
                                  "fuzzed-input-registers.pcap", "fc23-length-mismatch.pcap",
                                  "device-id-fc43.pcap"])
def test_attack_shared_captures_give_their_findings(cases: list, name: str) -> None:
    """Scans, fuzzed and malformed captures fire the detectors they must."""
    [case] = [c for c in cases if c.name == name]
    assert SHARED[name] <= set(case.fired)


def test_every_detector_fires_somewhere_and_stays_silent_on_a_normal_capture(cases: list) -> None:
    """Each catalogue entry is expected by a case, found there, never a medium+ false positive."""
    rows = {r["detector"]: r for r in table(cases)}
    assert set(rows) == set(CATALOGUE)
    for kind, r in rows.items():
        assert r["expected"] >= 1 and r["missed"] == [] and r["fp"] == [], (kind, r)
        assert r["silent"] >= 1, kind


def test_function_code_scan_is_one_sweep_finding(cases: list) -> None:
    """The Digital Bond sweep of every function code is reported as a sweep, at medium."""
    [case] = [c for c in cases if c.name == "function-code-scan.pcap"]
    assert case.fired["scan.function-codes"] == Severity.MEDIUM
