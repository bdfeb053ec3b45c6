"""A host stays 'new' for its first minute, so its opening requests do not make it known."""

from __future__ import annotations

from otsentry.agent.detect import Engine
from otsentry.agent.detect._config import DetectConfig
from otsentry.agent.pipeline import Pipeline, PipelineConfig
from otsentry.agent.testing import Conversation
from otsentry.common.finding import Severity, merge_all

from tests.agent.test_pipeline import MS, Wire


def _reservation_severity(gap_ms: int) -> Severity:
    wire, conv = Wire(client=("10.0.0.66", 41000)), Conversation()
    wire.handshake()
    wire.exchange(conv.exchange(90, function=0x02))  # a UMAS info read first
    wire.ts += gap_ms * MS
    wire.exchange(conv.exchange(90, function=0x10))  # then the reservation
    engine = Engine(DetectConfig())
    pipe = Pipeline([engine], PipelineConfig(ring_frames=16))
    for ts, lt, data in wire.frames:
        pipe.feed(ts, lt, data)
    pipe.finish()
    (found,) = [f for f in merge_all(engine.drain()).values() if f.kind == "umas.reservation"]
    return found.severity


def test_reservation_right_after_first_contact_is_high() -> None:
    """A reservation a brand-new host takes seconds after its first request is high."""
    assert _reservation_severity(gap_ms=2_000) == Severity.HIGH


def test_reservation_from_a_host_seen_for_minutes_is_not_new() -> None:
    """A host first seen two minutes earlier is no longer new: the default severity applies."""
    assert _reservation_severity(gap_ms=120_000) == Severity.LOW
