"""Process values: setpoint writes and read values outside the learned envelope.

Each holding or input register seen while learning has an envelope: its
minimum and maximum, its largest step between two readings and its largest
rate of change.  A write outside [min, max] (widened by ``margin``) changes a
setpoint beyond anything seen: high (T0836 Modify Parameter, T0831
Manipulation of Control).  A value read outside it, or a jump since the previous
poll of the same block larger (and faster) than any learned step, is low by
default: process values drift.  Registers learned from fewer than
``min_samples`` values are not judged.
"""

from __future__ import annotations

from typing import Any, Final

from otsentry.agent.detect._aggregate import LazyHit, RawEvidence, _Slot
from otsentry.agent.detect._entry import Entry, Knob
from otsentry.agent.detect._family import Family
from otsentry.agent.detect._writes import read_last, write_points
from otsentry.agent.flows import Flow
from otsentry.agent.modbus._events import Message, _ReadRequest, _RegistersResponse
from otsentry.agent.transactions import Transaction
from otsentry.common.finding import Severity

__all__ = ["ProcessValues"]

_S = Severity
_KNOBS = {"margin": Knob(0.1, "envelope widened by this share of its span on each side"),
          "min_samples": Knob(10, "values learned before a register is judged")}
ENTRIES: Final = (
    Entry("process.setpoint-out-of-envelope", "Setpoint written outside its learned range",
          _S.HIGH, ("T0836", "T0831"),
          "A client wrote a value to a holding register outside the range that register held "
          "while learning.", knobs=_KNOBS, needs_baseline=True),
    Entry("process.value-out-of-envelope", "Process value outside its learned range", _S.LOW,
          ("T0836", "T0831"),
          "A device reported a register value outside its learned range, or one that jumped "
          "further than any learned step. Low by default because process values drift; raise "
          "it in [detect.severity] once the baseline covers every operating state.",
          knobs=_KNOBS, needs_baseline=True),
)
_READS: Final = {3: "holding_registers", 4: "input_registers"}
_VALUE: Final = "process.value-out-of-envelope"


_NONE = 1 << 20  # bounds that no 16-bit value or step leaves: "no envelope"


class _Range:
    """One polled block of registers: the envelope of each of its addresses as parallel
    lists (low, high, largest step, largest rate; ``_NONE`` bounds where the baseline has
    none), and its last answer with its time.  ``judged`` is False when no register of
    the block has an envelope."""

    __slots__ = ("key", "judged", "low", "high", "step", "rate", "bounds", "last", "ts", "slot",
                 "hit", "dead", "flow", "involved")

    def __init__(self, key: tuple[str, int, str],
                 bounds: list[tuple[int, int, int, float] | None]) -> None:
        #: (server, unit, table): the findings' aggregation key.  Kept as a plain tuple
        #: object: a typed one would be built anew for every hit that hands it on.
        self.key: tuple = key
        self.judged = any(b is not None for b in bounds)
        self.bounds = bounds
        self.low = [b[0] if b is not None else -_NONE for b in bounds]
        self.high = [b[1] if b is not None else _NONE for b in bounds]
        self.step = [b[2] if b is not None else _NONE for b in bounds]
        self.rate = [b[3] if b is not None else 0.0 for b in bounds]
        self.last: tuple[int, ...] | None = None
        self.ts = 0
        self.slot: _Slot | None = None  # the open finding its hits last folded into
        self.hit: _OutOfEnvelope | None = None  # the latest hit (what that finding shows)
        self.dead = False  # evicted from ProcessValues.ranges
        self.flow: Flow | None = None  # the flow of the latest hit, and whom it involved
        self.involved: tuple[Flow, str, str] | None = None


class ProcessValues(Family):
    """Register values of read responses and write requests, against their envelopes."""

    ENTRIES = ENTRIES
    MODES = frozenset({"protect"})
    EVERY_TX = "tx"

    def __init__(self, engine: Any) -> None:
        super().__init__(engine)
        self.margin = self.knob("process.value-out-of-envelope", "margin")
        self.min_samples = self.knob("process.value-out-of-envelope", "min_samples")
        # Per (server, unit, table): address -> (min, max, step, rate).
        self.envelopes: dict[tuple, dict[int, tuple[int, int, int, float]]] = {}
        # Per polled block (server, unit, table, first address, count): a _Range. A poll
        # reads the same block again and again, so one lookup per answer finds every
        # envelope and the previous values; a jump is measured against the previous poll
        # of the same block.
        self.ranges = self.table("polled-blocks")
        self.ranges.marks = True
        self.value_entry = engine.entries[_VALUE]
        self.value_severity = engine.fixed_severity(_VALUE)

    def on_protect(self, baseline: Any) -> None:
        self.envelopes = {}
        self.ranges.clear()
        for (server, unit, table, addr), e in baseline.registers.items():
            if e.count >= self.min_samples:
                self.envelopes.setdefault((server, unit, table), {})[addr] = self._bounds(e)

    def _bounds(self, e: Any) -> tuple[int, int, int, float]:
        pad = max(1, int((e.max - e.min) * self.margin))
        # A jump must be larger than any learned step AND faster than any learned rate of
        # change (twice the peak): a poll delayed by jitter sees a larger step, not a faster one.
        return e.min - pad, e.max + pad, e.max_step + pad, 2.0 * e.max_rate

    def tx(self, tx: Transaction, req: Message | None, rsp: Message | None) -> None:
        if req is None or tx.status != "ok":
            return
        fc = req.fc
        if fc == 3 or fc == 4:  # reads only: no write to judge
            if isinstance(req, _ReadRequest) and isinstance(rsp, _RegistersResponse):
                self._reads(tx, req, _READS[fc], rsp)
            return
        points = write_points(req)
        if points is not None and points[0] == "holding_registers":
            self._writes(tx, points[1], points[2])

    def _reads(self, tx: Transaction, req: _ReadRequest, table: str,
               rsp: _RegistersResponse) -> None:
        values, ts = rsp.registers, rsp.ts
        n = len(values)
        flow: Flow = tx.flow
        server, unit, first = flow.server, req.unit, req.address
        poll = self.engine.poll(flow, req, first, read_last(req))
        got: _Range | None = poll.block
        if got is None or got.dead or poll.n != n:
            got = poll.block = self._range((server, unit, table, first, n))
            poll.n = n
        r: _Range = got  # typed, so the loop below runs on native lists and ints
        if not r.judged:
            return  # no register of this block has an envelope
        prev, prev_ts = r.last, r.ts
        r.last, r.ts = values, ts
        if _first_outside(r, values, prev, ts - prev_ts) >= 0:
            self._values(tx, req, rsp, r, first, values, prev, ts - prev_ts)

    def _range(self, block: tuple[str, int, str, int, int]) -> _Range:
        """The :class:`_Range` of a (server, unit, table, first address, count) block."""
        got = self.ranges.get(block)
        if got is None:
            server, unit, table, first, n = block
            env = self.envelopes.get((server, unit, table), {})
            got = self.ranges.put_new(block, _Range((server, unit, table),
                                                    [env.get(first + i) for i in range(n)]))
        return got

    def _values(self, tx: Transaction, req: _ReadRequest, rsp: _RegistersResponse, r: _Range,
                first: int, values: tuple[int, ...], prev: tuple[int, ...] | None,
                dt: int) -> None:
        """One hit per answer and register table: registers of it left their envelope,
        out of range or jumped (which ones is worked out only if a revision shows them).

        When nothing about one hit can change its severity or drop it
        (:meth:`Engine.fixed_severity`), the hit goes straight to the aggregator, as
        :meth:`Engine.report` would send it: most answers of a drifting plant fold into the
        table's open finding (``r.slot`` remembers it, so there is no lookup), with the
        sentence and evidence made only if a revision shows them."""
        flow: Flow = tx.flow
        ts = rsp.ts
        fc = req.fc
        key = r.key
        sev = self.value_severity
        if sev is not None:
            involved = r.involved
            if involved is None or r.flow is not flow:
                involved = r.involved = (flow, flow.client, flow.server)
                r.flow = flow
            agg = self.engine.agg
            slot, hit = r.slot, r.hit
            # The block's previous hit is shown by no finding but, perhaps, r.slot: it can
            # become this one (no new object per answer) unless r.slot is a finding this hit
            # does not fold into that still has to show it.
            if hit is not None and (slot is None or slot.evidence is not hit or not slot.dirty
                                    or not slot.live or agg.takes(slot, ts)):
                hit.again(flow, fc, values, prev, dt)
            else:
                hit = r.hit = _OutOfEnvelope(flow, key, fc, first, values, prev, r, dt)
            if slot is not None and agg.takes(slot, ts):  # most answers: no tuple of frames
                agg.fold_frame(slot, ts, sev, hit, involved, hit, rsp.frame, flow.ring, 1)
            else:
                r.slot = agg.record(slot, self.value_entry, key, ts, sev, hit, involved, hit,
                                    (rsp.frame,), flow.ring, 1)
            return
        hit = _OutOfEnvelope(flow, key, fc, first, values, prev, r, dt)
        ev = hit.raw()
        self.report(_VALUE, key, ts, flow, hit, unit=key[1], fc=fc, addresses=ev[3],
                    values=ev[4], frames=(rsp.frame,))

    def _writes(self, tx: Any, first: int, values: tuple[int, ...]) -> None:
        flow, unit = tx.flow, tx.request.unit
        env = self.envelopes.get((flow.server, unit, "holding_registers"))
        if env is None:
            return
        for i, v in enumerate(values):
            bounds = env.get(first + i)
            if bounds is None or bounds[0] <= v <= bounds[1]:
                continue
            self.report("process.setpoint-out-of-envelope",
                        (flow.client, flow.server, unit, first + i), tx.request.ts, flow,
                        f"{flow.client} set holding register {first + i} of {flow.server} unit "
                        f"{unit} to {v}, outside its learned range {bounds[0]}..{bounds[1]}.",
                        unit=unit, fc=tx.request.fc, addresses=(first + i,), values=(v,),
                        frames=(tx.request.frame,))


class _OutOfEnvelope(LazyHit):
    """Registers of one answer outside their envelope; which ones, the sentence and the
    evidence are worked out on demand (from the answer, the previous one and the time
    between them, against the block's envelopes)."""

    __slots__ = ("flow", "key", "fc", "first", "values", "prev", "r", "dt")

    def __init__(self, flow: Flow, key: tuple, fc: int, first: int,
                 values: tuple[int, ...], prev: tuple[int, ...] | None, r: _Range,
                 dt: int) -> None:
        self.flow, self.key, self.fc, self.first = flow, key, fc, first
        self.values, self.prev, self.r, self.dt = values, prev, r, dt

    def again(self, flow: Flow, fc: int, values: tuple[int, ...], prev: tuple[int, ...] | None,
              dt: int) -> None:
        """Become the block's next hit (only while no finding shows this one but the
        one it is folded into again)."""
        self.flow, self.fc, self.values, self.prev, self.dt = flow, fc, values, prev, dt

    def out(self) -> list[int]:
        """Offsets in the block of the registers that left their envelope."""
        return _outside(self.r, self.values, self.prev, self.dt)

    def __call__(self) -> str:
        server, unit, table = self.key
        values, prev, bounds, first = self.values, self.prev, self.r.bounds, self.first
        out = self.out()
        name = table.replace("_", " ")[:-1]
        parts = []
        for i in out[:3]:
            v, b = values[i], bounds[i]
            assert b is not None  # a register with no envelope is never outside
            if b[0] <= v <= b[1] and prev is not None:
                parts.append(f"{first + i} jumped from {prev[i]} to {v}")
            else:
                parts.append(f"{first + i} reads {v}, outside {b[0]}..{b[1]}")
        more = f" (and {len(out) - 3} more)" if len(out) > 3 else ""
        return f"{name} {'; '.join(parts)}{more} on {server} unit {unit} (learned range)."

    def raw(self) -> RawEvidence:
        first, values, out = self.first, self.values, self.out()
        return (self.flow, self.key[1], self.fc, tuple([first + i for i in out]),
                tuple([values[i] for i in out]), None)


def _first_outside(r: _Range, values: tuple[int, ...], prev: tuple[int, ...] | None, dt: int,
                   start: int = 0) -> int:
    """The offset (from ``start`` on) of the first register of an answer outside its
    envelope: out of range, or a jump since the previous answer ``prev``, ``dt`` ns
    earlier.  -1 when none is."""
    low: list[int] = r.low
    high: list[int] = r.high
    step: list[int] = r.step
    rate: list[float] = r.rate
    for i in range(start, len(values)):
        v: int = values[i]
        if v < low[i] or v > high[i]:
            return i
        if prev is not None:
            p: int = prev[i]
            d = v - p if v >= p else p - v
            if d > step[i] and _faster(d, dt, rate[i]):
                return i
    return -1


def _outside(r: _Range, values: tuple[int, ...], prev: tuple[int, ...] | None,
             dt: int) -> list[int]:
    """The offsets of every register of an answer outside its envelope."""
    out: list[int] = []
    i = _first_outside(r, values, prev, dt)
    while i >= 0:
        out.append(i)
        i = _first_outside(r, values, prev, dt, i + 1)
    return out


def _faster(step: int, dt_ns: int, max_rate: float) -> bool:
    """True when ``step`` over ``dt_ns`` is faster than ``max_rate`` per second (or no rate was
    learned, or no time passed)."""
    if max_rate <= 0 or dt_ns <= 0:
        return True
    return step * 1e9 / dt_ns > max_rate
