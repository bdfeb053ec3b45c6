"""Learning ends exactly when the learning time is up, not at the next whole tick."""

from __future__ import annotations

from otsentry.agent.detect import Engine
from otsentry.agent.detect._config import DetectConfig
from otsentry.agent.pipeline import Pipeline, PipelineConfig
from otsentry.agent.testing import Conversation
from otsentry.common.finding import merge_all

from tests.agent.test_pipeline import MS, Wire


def test_a_new_master_right_after_learning_is_not_learned() -> None:
    """A master that first writes 0.1 s after a 1.5 s learning period is reported, not learned."""
    hmi, rogue = Wire(), Wire(client=("10.0.0.66", 41000))
    conv = Conversation()
    for dt in (0, 900 * MS, 500 * MS):  # polls at 0, 0.9 s and 1.4 s: ticks at 0 and 1.4 s
        ex = conv.exchange(3)
        hmi.send(True, ex.request, dt=dt)
        hmi.send(False, ex.response, dt=1 * MS)
    frames = list(hmi.frames)
    rogue.ts = hmi.ts + 200 * MS  # 1.6 s after the start
    ex = Conversation(first_tid=900).exchange(6, address=10, value=99)
    rogue.exchange(ex)
    engine = Engine(DetectConfig(), learn_ns=1_500 * MS)
    pipe = Pipeline([engine], PipelineConfig(ring_frames=16))
    for ts, lt, data in sorted(frames + rogue.frames):
        pipe.feed(ts, lt, data)
    pipe.finish()
    kinds = {f.kind for f in merge_all(engine.drain()).values()}
    assert engine.mode == "protect"
    assert "baseline.new-master" in kinds
    assert engine.learner is None  # what learning kept is let go once the baseline is made
