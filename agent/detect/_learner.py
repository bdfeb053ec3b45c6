"""Learning a :class:`Baseline` from transactions (bounded, sans-I/O)."""

from __future__ import annotations

from collections import deque
from typing import Any

from otsentry.agent.detect._baseline import Baseline, Cycle, Envelope, add_range
from otsentry.agent.detect._state import BoundedMap, Bucket
from otsentry.agent.detect._writes import read_range, write_points
from otsentry.agent.flows import Flow
from otsentry.agent.modbus._events import Message, _ReadRequest, _RegistersResponse
from otsentry.agent.transactions import Transaction

__all__ = ["Learner"]

_READ_TABLES = {3: "holding_registers", 4: "input_registers"}
_MIN_CYCLE_SAMPLES = 5


class _Pair:
    __slots__ = ("ranges", "seen", "count")

    def __init__(self) -> None:
        self.ranges: list[list[int]] = []
        self.seen: set[tuple[int, int]] = set()
        self.count = 0


class _Rate:
    """Requests of one (client, server) in the current second, and the peak so far."""

    __slots__ = ("second", "peak")

    def __init__(self) -> None:
        self.second = Bucket(1_000_000_000)
        self.peak = 0


class _Cycle:
    """One repeated request: when it was last sent, recent intervals, how often."""

    __slots__ = ("last", "intervals", "count")

    def __init__(self) -> None:
        self.last = 0
        self.intervals: deque[int] = deque(maxlen=64)
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

    def transaction(self, tx: Transaction) -> None:
        """Learn from one transaction (requests with a decodable message only)."""
        req = tx.request
        if not isinstance(req, Message):
            return
        flow: Flow = tx.flow
        ts = req.ts
        self.first_ns = self.first_ns or ts
        if ts > self.last_ns:
            self.last_ns = ts
        self.transactions += 1
        rng = read_range(req)
        client, server, unit, fc = flow.client, flow.server, req.unit, req.fc
        self._pair((client, server, unit, fc), rng)
        pair = (client, server)
        got = self.rates.get(pair)
        rate: _Rate = got if got is not None else self.rates.put_new(pair, _Rate())
        n = rate.second.hit(ts)
        if n > rate.peak:
            rate.peak = n
        if rng is not None:
            self._cycle((client, server, unit, fc, rng[0], rng[1]), ts)
        status = tx.status
        latency = tx.latency_ns
        if latency is not None and (status == "ok" or status == "exception"):
            lkey = (server, unit, fc)
            samples = self.latency.get(lkey)
            if samples is None:
                samples = self.latency.put_new(lkey, deque(maxlen=256))
            samples.append(latency)
        if status == "ok":
            self._values(tx, req, server, ts)

    def _pair(self, key: tuple, rng: tuple[int, int] | None) -> None:
        got = self.pairs.get(key)
        p: _Pair = got if got is not None else self.pairs.put_new(key, _Pair())
        p.count += 1
        if rng is not None and rng not in p.seen:
            if len(p.seen) < 4096:
                p.seen.add(rng)
            add_range(p.ranges, *rng)

    def _cycle(self, key: tuple, ts: int) -> None:
        got = self.cycles.get(key)
        c: _Cycle = got if got is not None else self.cycles.put_new(key, _Cycle())
        last = c.last
        if last:
            c.intervals.append(ts - last)
        c.last = ts
        c.count += 1

    def _values(self, tx: Transaction, req: Message, server: str, ts: int) -> None:
        unit, fc = req.unit, req.fc
        rsp = tx.response
        if isinstance(req, _ReadRequest) and isinstance(rsp, _RegistersResponse):  # FC 3, 4
            regs = rsp.registers
            self._block((server, unit, _READ_TABLES[fc], req.address),
                        regs if len(regs) <= 125 else regs[:125], ts)
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
        for key, c in self.cycles.items():
            if len(c.intervals) >= _MIN_CYCLE_SAMPLES:
                b.cycles[key] = _cycle(c.intervals, c.count)
        for key, samples in self.latency.items():
            s = sorted(samples)
            b.latency[key] = (s[len(s) // 2], s[min(len(s) - 1, len(s) * 95 // 100)], len(s))
        b.rates = {k: v.peak for k, v in self.rates.items()}
        b.registers = self._envelopes()
        b.index()
        return b


def _cycle(intervals: Any, count: int) -> Cycle:
    s = sorted(intervals)
    median = s[len(s) // 2]
    p90 = s[min(len(s) - 1, len(s) * 9 // 10)]
    return Cycle(median, max(0, p90 - median), count)
