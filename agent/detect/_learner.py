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


class _Block:
    """What one block of registers (first address, count) did while learning."""

    __slots__ = ("mins", "maxs", "steps", "rates", "count", "last", "ts")

    def __init__(self, values: tuple[int, ...], ts: int) -> None:
        self.mins: list[int] = list(values)
        self.maxs: list[int] = list(values)
        self.steps: list[int] = [0] * len(values)
        self.rates: list[float] = [0.0] * len(values)
        self.count = 1
        self.last: tuple[int, ...] = values
        self.ts = ts


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
        self.blocks: BoundedMap = BoundedMap(max_keys, "learn.blocks")
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
            self._block((server, unit, table, req.address), tx.response.registers[:125], ts)
        points = write_points(req)
        if points is not None and points[0] == "holding_registers":
            self._block((server, unit, points[0], points[1]), points[2][:125], ts)

    def _block(self, key: tuple, values: tuple[int, ...], ts: int) -> None:
        """One answer (or write) of a block of registers: per address min, max, step, rate.

        Learned per block (a poll repeats the same one): steps and rates are between two
        polls of the same block, as protection measures them."""
        n = len(values)
        if not n:
            return
        full = (*key, n)
        b: _Block | None = self.blocks.get(full)
        if b is None:
            self.blocks.put_new(full, _Block(values, ts))
            return
        last, dt = b.last, ts - b.ts
        mins, maxs, steps, rates = b.mins, b.maxs, b.steps, b.rates
        for i in range(n):
            v: int = values[i]
            if v < mins[i]:
                mins[i] = v
            elif v > maxs[i]:
                maxs[i] = v
            step = v - last[i]
            if step:
                if step < 0:
                    step = -step
                if step > steps[i]:
                    steps[i] = step
                if dt > 0:
                    rate = step * 1e9 / dt
                    if rate > rates[i]:
                        rates[i] = rate
        b.count += 1
        b.last, b.ts = values, ts

    def _envelopes(self) -> dict[tuple, Envelope]:
        """Per register (server, unit, table, address): every block covering it, merged."""
        out: dict[tuple, Envelope] = {}
        for (server, unit, table, first, n), b in self.blocks.items():
            for i in range(n):
                key = (server, unit, table, first + i)
                e = out.get(key)
                if e is None:
                    out[key] = Envelope(b.mins[i], b.maxs[i], b.steps[i], b.rates[i], b.count)
                else:
                    e.min, e.max = min(e.min, b.mins[i]), max(e.max, b.maxs[i])
                    e.max_step = max(e.max_step, b.steps[i])
                    e.max_rate = max(e.max_rate, b.rates[i])
                    e.count += b.count
        return out

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
        b.registers = self._envelopes()
        b.index()
        return b


def _cycle(intervals: Any, count: int) -> Cycle:
    s = sorted(intervals)
    median = s[len(s) // 2]
    p90 = s[min(len(s) - 1, len(s) * 9 // 10)]
    return Cycle(median, max(0, p90 - median), count)
