"""Learning a :class:`Baseline` from transactions (bounded, sans-I/O)."""

from __future__ import annotations

from collections import deque
from typing import Any

from otsentry.agent.detect._baseline import Baseline, Cycle, Envelope, add_range
from otsentry.agent.detect._state import BoundedMap, Bucket
from otsentry.agent.detect._writes import read_range, write_points

__all__ = ["Learner"]

_READ_TABLES = {3: "holding_registers", 4: "input_registers"}
_MIN_CYCLE_SAMPLES = 5


class _Pair:
    __slots__ = ("ranges", "seen", "count")

    def __init__(self) -> None:
        self.ranges: list[list[int]] = []
        self.seen: set[tuple[int, int]] = set()
        self.count = 0


class Learner:
    """Collects what normal looks like; :meth:`baseline` freezes it.

    Args:
        max_keys: bound of each learning table (pairs, cycles, registers...).
    """

    def __init__(self, max_keys: int = 100_000) -> None:
        self.pairs: BoundedMap = BoundedMap(max_keys, "learn.pairs")
        self.cycles: BoundedMap = BoundedMap(max_keys, "learn.cycles")
        self.latency: BoundedMap = BoundedMap(max_keys, "learn.latency")
        self.rates: BoundedMap = BoundedMap(max_keys, "learn.rates")
        self.registers: BoundedMap = BoundedMap(max_keys, "learn.registers")
        self.first_ns = 0
        self.last_ns = 0
        self.transactions = 0

    def transaction(self, tx: Any) -> None:
        """Learn from one transaction (requests with a decodable message only)."""
        req = tx.request
        if req is None or req.KIND != "message":
            return
        flow, ts = tx.flow, req.ts
        self.first_ns = self.first_ns or ts
        self.last_ns = max(self.last_ns, ts)
        self.transactions += 1
        rng = read_range(req)
        self._pair((flow.client, flow.server, req.unit, req.fc), rng)
        pair = (flow.client, flow.server)
        rate = self.rates.get(pair)
        if rate is None:
            rate = self.rates.put_new(pair, [Bucket(1_000_000_000), 0])
        rate[1] = max(rate[1], rate[0].hit(ts))
        if rng is not None:
            self._cycle((flow.client, flow.server, req.unit, req.fc, *rng), ts)
        if tx.latency_ns is not None and tx.status in ("ok", "exception"):
            lkey = (flow.server, req.unit, req.fc)
            samples = self.latency.get(lkey)
            if samples is None:
                samples = self.latency.put_new(lkey, deque(maxlen=256))
            samples.append(tx.latency_ns)
        if tx.status == "ok":
            self._values(tx, req, ts)

    def _pair(self, key: tuple, rng: tuple[int, int] | None) -> None:
        p = self.pairs.get_or_make(key, _Pair)
        p.count += 1
        if rng is not None and rng not in p.seen:
            if len(p.seen) < 4096:
                p.seen.add(rng)
            add_range(p.ranges, *rng)

    def _cycle(self, key: tuple, ts: int) -> None:
        c = self.cycles.get(key)
        if c is None:
            c = self.cycles.put_new(key, [0, deque(maxlen=64), 0])
        if c[0]:
            c[1].append(ts - c[0])
        c[0] = ts
        c[2] += 1

    def _values(self, tx: Any, req: Any, ts: int) -> None:
        server, unit = tx.flow.server, req.unit
        table = _READ_TABLES.get(req.fc)
        if table is not None and tx.response.KIND == "message":
            for i, v in enumerate(tx.response.registers[:125]):
                self._register((server, unit, table, req.address + i), v, ts)
        points = write_points(req)
        if points is not None and points[0] == "holding_registers":
            for i, v in enumerate(points[2][:125]):
                self._register((server, unit, points[0], points[1] + i), v, ts)

    def _register(self, key: tuple, value: int, ts: int) -> None:
        r = self.registers.get(key)
        if r is None:
            self.registers.put_new(key, [Envelope(value, value), value, ts])
            return
        env, last, last_ts = r
        step = abs(value - last)
        env.min, env.max = min(env.min, value), max(env.max, value)
        env.max_step = max(env.max_step, step)
        if ts > last_ts and step:
            env.max_rate = max(env.max_rate, step * 1e9 / (ts - last_ts))
        env.count += 1
        r[1], r[2] = value, ts

    def baseline(self) -> Baseline:
        """Freeze what was learned into a :class:`Baseline`."""
        b = Baseline(first_ns=self.first_ns, last_ns=self.last_ns, transactions=self.transactions)
        for key, p in self.pairs.items():
            b.pairs[key] = [list(r) for r in p.ranges]
            b.counts[key] = p.count
        for key, (_last, intervals, count) in self.cycles.items():
            if len(intervals) >= _MIN_CYCLE_SAMPLES:
                b.cycles[key] = _cycle(intervals, count)
        for key, samples in self.latency.items():
            s = sorted(samples)
            b.latency[key] = (s[len(s) // 2], s[min(len(s) - 1, len(s) * 95 // 100)], len(s))
        b.rates = {k: v[1] for k, v in self.rates.items()}
        b.registers = {k: v[0] for k, v in self.registers.items()}
        b.index()
        return b


def _cycle(intervals: Any, count: int) -> Cycle:
    s = sorted(intervals)
    median = s[len(s) // 2]
    p90 = s[min(len(s) - 1, len(s) * 9 // 10)]
    return Cycle(median, max(0, p90 - median), count)
