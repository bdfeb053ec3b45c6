"""What a baseline says is looked up once per pair, unit and function, then cached: a new
baseline (``Engine.protect``) must void that cache, on flows that stay open."""

from __future__ import annotations

from otsentry.agent.detect import Engine, RING_FRAMES, detect_frames
from otsentry.agent.detect.testing import Wire
from otsentry.agent.pipeline import Pipeline, PipelineConfig
from otsentry.agent.testing import Conversation
from otsentry.common.finding import merge_all

S = 1_000_000_000
T0 = 1_700_000_000 * S


def _polls(wire: Wire, conn, conv: Conversation, start: int, n: int, address: int = 0) -> None:
    for k in range(n):
        wire.exchange(conn, start + k * S, *conv.exchange(3, address=address, registers=(7, 7)))


def test_a_new_baseline_voids_what_the_old_one_said_about_open_flows() -> None:
    """Against a baseline without 10.0.0.66, its polls make a new master; protecting against
    one that learned it, the same open connection's polls of a learned range make nothing,
    while a range that baseline never saw is still a new range."""
    conv = Conversation(unit=1)
    hmi = Wire()
    _polls(hmi, hmi.connect(T0, "10.0.0.10", "10.0.0.20"), conv, T0 + S, 10)
    without = detect_frames(hmi.sorted_frames(), learn_ns=20 * S)[0].baseline
    both = Wire()
    _polls(both, both.connect(T0, "10.0.0.66", "10.0.0.20"), conv, T0 + S, 10)
    learned = detect_frames(both.sorted_frames(), learn_ns=20 * S)[0].baseline
    assert "10.0.0.66" not in without.clients and "10.0.0.66" in learned.clients

    live = Wire()
    conn = live.connect(T0 + 100 * S, "10.0.0.66", "10.0.0.20")
    _polls(live, conn, conv, T0 + 101 * S, 3)
    first_half = live.sorted_frames()
    _polls(live, conn, conv, T0 + 110 * S, 3)
    _polls(live, conn, conv, T0 + 120 * S, 1, address=500)
    second_half = live.sorted_frames()[len(first_half):]

    engine = Engine(baseline=without)
    pipe = Pipeline([engine], PipelineConfig(ring_frames=RING_FRAMES))
    revisions = []
    for frame in first_half:
        pipe.feed(*frame)
    revisions += engine.drain()
    engine.protect(learned)
    for frame in second_half:
        pipe.feed(*frame)
    pipe.finish()
    engine.finish()
    revisions += engine.drain()
    found = {f.kind: f for f in merge_all(revisions).values()}
    assert found["baseline.new-master"].count == 3  # the first three polls only
    assert found["baseline.new-range"].evidence.addresses == (500, 501)
