"""Polling cycles: period and jitter as the mean and standard deviation of intervals."""

from __future__ import annotations

import statistics

from otsentry.agent.inventory import Cycle


def test_period_and_jitter() -> None:
    """Period and jitter equal the mean and sample standard deviation of the intervals."""
    times = [0, 1_000_000_000, 2_010_000_000, 2_990_000_000, 4_000_000_000, 5_020_000_000]
    c = Cycle(times[0])
    for t in times[1:]:
        c.request(t)
    ivs = [b - a for a, b in zip(times, times[1:])]
    assert c.count == 6
    assert abs(c.period_ns - statistics.mean(ivs)) < 1e-3
    assert abs(c.jitter_ns - statistics.stdev(ivs)) < 1e-3
    assert c.min == min(ivs) and c.max == max(ivs)


def test_pauses_and_out_of_order() -> None:
    """A long silence is a pause, an earlier time is out of order; neither changes the period."""
    c = Cycle(0)
    for k in range(1, 6):
        c.request(k * 1_000_000_000)
    c.request(3_600_000_000_000)
    c.request(5)
    assert c.pauses == 1 and c.out_of_order == 1 and c.count == 8
    assert c.period_ns == 1_000_000_000
    d = c.to_dict()
    assert d["period_s"] == 1.0 and d["jitter_s"] == 0.0


def test_state_round_trip() -> None:
    """A cycle restored from its state continues exactly as the original."""
    a = Cycle(0)
    for k in range(1, 4):
        a.request(k * 500_000_000 + k * 7)
    b = Cycle.from_state(a.to_state())
    for cyc in (a, b):
        cyc.request(2_100_000_000)
    assert a.to_dict() == b.to_dict()
