"""Polling stopped is about the master: a master that goes on asking has not stopped polling."""

from __future__ import annotations

from bench.scenarios.crafted import LEARN_S, S, scenarios
from otsentry.agent.detect import detect_frames


def _kinds(name: str) -> set[str]:
    s = next(s for s in scenarios() if s.name == name)
    _engine, findings = detect_frames(s.frames(), learn_ns=LEARN_S * S)
    return {f.kind for f in findings}


def test_unanswered_polls_are_not_stopped_polling():
    # Unanswered requests only become transactions at their 10 s timeout: timing cycles on
    # transactions made a silent PLC look like a master that stopped polling.
    kinds = _kinds("plc-silent-learned")
    assert "rate.unanswered-storm" in kinds
    assert "baseline.polling-stopped" not in kinds


def test_a_master_that_stops_asking_is_still_reported():
    assert "baseline.polling-stopped" in _kinds("polling-stopped")
