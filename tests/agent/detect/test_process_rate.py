"""A value jump is judged by its rate of change, so a poll delayed by jitter is no jump."""

from __future__ import annotations

from otsentry.agent.detect._process import _faster

SECOND = 1_000_000_000


def test_delayed_poll_is_not_a_jump() -> None:
    """Twice the usual step over twice the usual time is the learned rate, not faster."""
    assert not _faster(step=8, dt_ns=2 * SECOND, max_rate=2 * 4.0)


def test_fast_change_is_a_jump() -> None:
    """A large step within a tenth of a second is far beyond twice the learned rate."""
    assert _faster(step=50, dt_ns=SECOND // 10, max_rate=2 * 4.0)


def test_no_learned_rate_or_no_time_keeps_the_step_rule() -> None:
    """Without a learned rate (a constant register) or elapsed time, the step alone decides."""
    assert _faster(step=3, dt_ns=SECOND, max_rate=0.0)
    assert _faster(step=3, dt_ns=0, max_rate=10.0)
