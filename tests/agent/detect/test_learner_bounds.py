"""The learner's bounded tables under pressure: a poll whose entries a sweep pushed out of
the tables is learned afresh in new entries, never into the ones that were dropped."""

from __future__ import annotations

from typing import Any

from otsentry.agent.detect._learner import Learner
from otsentry.agent.detect.testing import Wire
from otsentry.agent.pipeline import Pipeline
from otsentry.agent.testing import Conversation

S = 1_000_000_000
T0 = 1_700_000_000 * S
HMI, PLC, SCANNER = "10.0.0.10", "10.0.0.20", "10.0.0.66"


def _learn(max_keys: int) -> Learner:
    """An HMI reads holding registers 10-11 every second for 40 s (values 100+k, 7);
    for the first 10 s a scanner reads 30 other single registers a second."""
    wire, hmi, scan = Wire(), Conversation(unit=1), Conversation(unit=1)
    a = wire.connect(T0, HMI, PLC)
    b = wire.connect(T0, SCANNER, PLC)
    for k in range(40):
        wire.exchange(a, T0 + (k + 1) * S,
                      *hmi.exchange(3, address=10, registers=(100 + k, 7)))
    for k in range(300):
        wire.exchange(b, T0 + S + k * S // 30 + 1000,
                      *scan.exchange(3, address=1000 + k, registers=(k,)))
    learner = Learner(max_keys)

    def sink(flow: Any, events: list, txs: list) -> None:
        for tx in txs:
            learner.transaction(tx)

    pipe = Pipeline([sink])
    for frame in wire.sorted_frames():
        pipe.feed(*frame)
    pipe.finish()
    return learner


def test_a_poll_pushed_out_of_full_tables_is_learned_again_in_new_entries() -> None:
    """With room for 10 keys a table, the sweep pushes the HMI's cycle and block out again
    and again; once it stops (after the poll at 10 s), the polls at 11-40 s land in the
    entries made for them: 30 polls, 29 intervals of 1 s, and the values they read."""
    learner = _learn(10)
    assert learner.cycles.evicted > 0 and learner.blocks.evicted > 0
    b = learner.baseline()
    cycle = b.cycles[(HMI, PLC, 1, 3, 10, 11)]
    assert (cycle.count, cycle.period_ns) == (30, S)
    low = b.registers[(PLC, 1, "holding_registers", 10)]
    assert (low.min, low.max, low.count) == (110, 139, 30)
    assert b.registers[(PLC, 1, "holding_registers", 11)].max_step == 0


def test_with_room_for_everything_the_whole_poll_is_learned() -> None:
    """The same traffic with room to spare: all 40 polls, values 100-139."""
    learner = _learn(10_000)
    assert learner.cycles.evicted == 0
    b = learner.baseline()
    assert b.cycles[(HMI, PLC, 1, 3, 10, 11)].count == 40
    low = b.registers[(PLC, 1, "holding_registers", 10)]
    assert (low.min, low.max, low.count) == (100, 139, 40)
