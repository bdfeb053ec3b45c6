"""Learning a :class:`Baseline` from transactions (bounded, sans-I/O)."""

from __future__ import annotations

from typing import Any

from otsentry.agent.detect._baseline import Baseline, Cycle, Envelope, add_range
from otsentry.agent.detect._family import decoded
from otsentry.agent.detect._state import BoundedMap, Bucket, signature
from otsentry.agent.detect._writes import read_last, read_range, write_points
from otsentry.agent.flows import Flow
from otsentry.agent.modbus._events import Message, _ReadRequest, _RegistersResponse
from otsentry.agent.transactions import Transaction

__all__ = ["Learner"]

_READ_TABLES = {3: "holding_registers", 4: "input_registers"}
_MIN_CYCLE_SAMPLES = 5
_MAX_FLOWS = 4096
_INTERVALS = 64  # latest intervals kept per cycle
_LATENCIES = 256  # latest response times kept per (server, unit, function)
_MAX_POLLS = 4096


class _Pair:
    __slots__ = ("ranges", "seen", "count", "dead")

    def __init__(self) -> None:
        self.ranges: list[list[int]] = []
        self.seen: set[tuple[int, int]] = set()
        self.count = 0
        self.dead = False  # evicted from Learner.pairs (as every table's values below)


class _Rate:
    """Requests of one (client, server) in the current second, and the peak so far."""

    __slots__ = ("second", "peak", "dead")

    def __init__(self) -> None:
        self.second = Bucket(1_000_000_000)
        self.peak = 0
        self.dead = False


class _Cycle:
    """One repeated request: when it was last sent, recent intervals, how often."""

    __slots__ = ("last", "intervals", "at", "count", "dead")

    def __init__(self) -> None:
        self.last = 0
        self.intervals: list[int] = []  # the latest _INTERVALS, in no order
        self.at = 0  # where the next one goes once the list is full
        self.count = 0
        self.dead = False


class _Latency:
    """Recent response times of one (server, unit, function)."""

    __slots__ = ("samples", "at", "dead")

    def __init__(self) -> None:
        self.samples: list[int] = []  # the latest _LATENCIES, in no order
        self.at = 0
        self.dead = False


class _Block:
    """What one block of registers (first address, count) did while learning."""

    __slots__ = ("mins", "maxs", "steps", "rates", "count", "last", "ts", "dead")

    def __init__(self, values: tuple[int, ...], ts: int) -> None:
        self.mins: list[int] = list(values)
        self.maxs: list[int] = list(values)
        self.steps: list[int] = [0] * len(values)
        self.rates: list[float] = [0.0] * len(values)
        self.count = 1
        self.last: tuple[int, ...] = values
        self.ts = ts
        self.dead = False


class _Poll:
    """One request signature (unit, function, address range) of one flow: direct references
    to the learning state its transactions update, found with one lookup per transaction
    rather than one per table.  A reference whose table evicted it (``dead``) is looked up
    again; ``block`` is the block its answers fill (``n`` registers), once one came."""

    __slots__ = ("pair", "listed", "cycle", "latency", "block", "n")

    def __init__(self, pair: _Pair, cycle: _Cycle) -> None:
        self.pair = pair
        self.listed = False  # the signature's range is in pair.seen (for good)
        self.cycle = cycle
        self.latency: _Latency | None = None
        self.block: _Block | None = None
        self.n = 0


class _Flow:
    """What the learner keeps per flow: the pair's request rate and the flow's signatures."""

    __slots__ = ("rate", "polls")

    def __init__(self, rate: _Rate) -> None:
        self.rate = rate
        self.polls: dict[int, _Poll] = {}


class Learner:
    """Collects what normal looks like; :meth:`baseline` freezes it.

    Args:
        max_keys: bound of each learning table (pairs, cycles, registers...).
    """

    def __init__(self, max_keys: int = 100_000) -> None:
        self.pairs: BoundedMap = BoundedMap(max_keys, "learn.pairs", marks=True)
        self.cycles: BoundedMap = BoundedMap(max_keys, "learn.cycles", marks=True)
        self.latency: BoundedMap = BoundedMap(max_keys, "learn.latency", marks=True)
        self.rates: BoundedMap = BoundedMap(max_keys, "learn.rates", marks=True)
        self.blocks: BoundedMap = BoundedMap(max_keys, "learn.blocks", marks=True)
        self.first_ns = 0
        self.last_ns = 0
        self.transactions = 0
        # Per flow id, references into the tables above (a cache: cleared when it holds
        # _MAX_FLOWS flows, or a flow _MAX_POLLS signatures; looked up again then).  By id,
        # so that it keeps no closed flow (and its frame ring) alive.
        self._flows: dict[int, _Flow] = {}

    def transaction(self, tx: Transaction) -> None:
        """Learn from one transaction (requests with a decodable message only)."""
        self.decoded(tx, decoded(tx.request), decoded(tx.response))

    def decoded(self, tx: Transaction, req: Message | None, rsp: Message | None) -> None:
        """:meth:`transaction`, given its request and response as :func:`decoded` has them."""
        if req is None:
            return
        flow: Flow = tx.flow
        ts = req.ts
        self.first_ns = self.first_ns or ts
        if ts > self.last_ns:
            self.last_ns = ts
        self.transactions += 1
        fl = self._flows.get(flow.id)
        if fl is None or fl.rate.dead:
            fl = self._flow(flow)
        rate = fl.rate
        n = rate.second.hit(ts)
        if n > rate.peak:
            rate.peak = n
        server, unit, fc = flow.server, req.unit, req.fc
        poll: _Poll | None = None
        first = last = -1
        rd = req if isinstance(req, _ReadRequest) else None  # function codes 1-4: cast once
        if rd is not None:  # as read_range has it
            first, last = rd.address, read_last(rd)
        else:
            rng = read_range(req)
            if rng is not None:
                first, last = rng
        if first < 0:
            self._pair(self._pair_of((flow.client, server, unit, fc)), None)
        else:
            k = signature(unit, fc, first, last)
            got = fl.polls.get(k)
            if got is None or got.pair.dead or got.cycle.dead:
                got = self._poll(fl, k, flow, unit, fc, first, last)
            poll = got
            if poll.listed:
                poll.pair.count += 1
            else:
                rng = (first, last)
                self._pair(poll.pair, rng)
                poll.listed = rng in poll.pair.seen
            c = poll.cycle
            if c.last:
                c.at = _keep(c.intervals, c.at, ts - c.last, _INTERVALS)
            c.last = ts
            c.count += 1
        status = tx.status
        latency = tx.latency_ns
        if latency is not None and (status == "ok" or status == "exception"):
            lat = poll.latency if poll is not None else None
            if lat is None or lat.dead:
                lat = self._latency_of((server, unit, fc))
                if poll is not None:
                    poll.latency = lat
            lat.at = _keep(lat.samples, lat.at, latency, _LATENCIES)
        if status == "ok":
            if rd is not None and isinstance(rsp, _RegistersResponse):  # FC 3, 4
                regs = rsp.registers
                values = regs if len(regs) <= 125 else regs[:125]
                if poll is not None and values:
                    b = poll.block
                    if b is not None and not b.dead and poll.n == len(values):
                        _update(b, values, ts)
                    else:
                        poll.block = self._block((server, unit, _READ_TABLES[fc], rd.address),
                                                 values, ts)
                        poll.n = len(values)
                else:
                    self._block((server, unit, _READ_TABLES[fc], rd.address), values, ts)
            points = write_points(req)
            if points is not None and points[0] == "holding_registers":
                self._block((server, unit, points[0], points[1]), points[2][:125], ts)

    def _flow(self, flow: Flow) -> _Flow:
        pair = (flow.client, flow.server)
        got = self.rates.get(pair)
        fl = _Flow(got if got is not None else self.rates.put_new(pair, _Rate()))
        if len(self._flows) >= _MAX_FLOWS:
            self._flows.clear()
        self._flows[flow.id] = fl
        return fl

    def _poll(self, fl: _Flow, k: int, flow: Flow, unit: int, fc: int, first: int,
              last: int) -> _Poll:
        client, server = flow.client, flow.server
        pair = self._pair_of((client, server, unit, fc))
        key = (client, server, unit, fc, first, last)
        got = self.cycles.get(key)
        poll = _Poll(pair, got if got is not None else self.cycles.put_new(key, _Cycle()))
        if len(fl.polls) >= _MAX_POLLS:
            fl.polls.clear()
        fl.polls[k] = poll
        return poll

    def _pair_of(self, key: tuple) -> _Pair:
        got = self.pairs.get(key)
        return got if got is not None else self.pairs.put_new(key, _Pair())

    def _latency_of(self, key: tuple) -> _Latency:
        got = self.latency.get(key)
        return got if got is not None else self.latency.put_new(key, _Latency())

    @staticmethod
    def _pair(p: _Pair, rng: tuple[int, int] | None) -> None:
        p.count += 1
        if rng is not None and rng not in p.seen:
            if len(p.seen) < 4096:
                p.seen.add(rng)
            add_range(p.ranges, *rng)

    def _block(self, key: tuple, values: tuple[int, ...], ts: int) -> _Block | None:
        """One answer (or write) of a block of registers: per address min, max, step, rate.

        Learned per block (a poll repeats the same one): steps and rates are between two
        polls of the same block, as protection measures them.  Returns the block."""
        n = len(values)
        if not n:
            return None
        full = (*key, n)
        b: _Block | None = self.blocks.get(full)
        if b is None:
            return self.blocks.put_new(full, _Block(values, ts))
        _update(b, values, ts)
        return b

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
        for key, lat in self.latency.items():
            s = sorted(lat.samples)
            b.latency[key] = (s[len(s) // 2], s[min(len(s) - 1, len(s) * 95 // 100)], len(s))
        b.rates = {k: v.peak for k, v in self.rates.items()}
        b.registers = self._envelopes()
        b.index()
        return b


def _update(b: _Block, values: tuple[int, ...], ts: int) -> None:
    """Another answer of block ``b`` (as many values as it has registers)."""
    n = len(values)
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


def _keep(values: list[int], at: int, value: int, size: int) -> int:
    """Keep ``value`` among the latest ``size`` of ``values`` (written in a circle, ``at``
    the place of the oldest once full); returns the next ``at``."""
    if len(values) < size:
        values.append(value)
        return at
    values[at] = value
    return at + 1 if at + 1 < size else 0


def _cycle(intervals: Any, count: int) -> Cycle:
    s = sorted(intervals)
    median = s[len(s) // 2]
    p90 = s[min(len(s) - 1, len(s) * 9 // 10)]
    return Cycle(median, max(0, p90 - median), count)
