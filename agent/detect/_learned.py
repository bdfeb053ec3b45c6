"""Protect against the learned baseline: new masters, pairs, functions, ranges and writes;
polling that drifts or stops; latency that drifts.

Active in ``protect`` mode only.  One finding per new thing: a new master is
reported once (its writes still are, each as a write never seen), and the
pair, function and range findings only concern masters the baseline knows.
"""

from __future__ import annotations

from typing import Any, Final

from otsentry.agent.detect._baseline import Baseline, covered
from otsentry.agent.detect._entry import Entry, Knob
from otsentry.agent.detect._family import Family
from otsentry.agent.detect._state import Poll
from otsentry.agent.detect._writes import WRITES, read_last, read_range
from otsentry.agent.flows import Flow
from otsentry.agent.modbus import spec
from otsentry.agent.modbus._events import Message, _ReadRequest
from otsentry.agent.transactions import Transaction
from otsentry.common.finding import Severity

__all__ = ["Learned"]

#: Function codes whose requests carry an address range, so learned cycles can have them.
POLLED: Final = (1, 2, 3, 4, 5, 6, 15, 16, 22, 23, 24)

_S = Severity
ENTRIES: Final = (
    Entry("baseline.new-master", "New master", _S.HIGH, ("T0848",),
          "A host that never acted as a Modbus client while learning now sends requests: a "
          "rogue master, or a new HMI nobody told the baseline about.", needs_baseline=True),
    Entry("baseline.new-pair", "New client/server pair", _S.MEDIUM, (),
          "A known master talks to a server or unit it never talked to while learning.",
          needs_baseline=True),
    Entry("baseline.new-function", "New function code for a pair", _S.MEDIUM, ("T0855",),
          "A known master uses a function code on a device that it never used while learning.",
          needs_baseline=True),
    Entry("baseline.new-range", "New address range", _S.LOW, ("T0861",),
          "A known master reads addresses outside the ranges it read while learning.",
          needs_baseline=True),
    Entry("baseline.new-write", "Write never seen while learning", _S.HIGH, ("T0855",),
          "A client wrote to a device, function or address range where no write was seen while "
          "learning. If it is legitimate, add it to the baseline file.", needs_baseline=True),
    Entry("baseline.polling-drift", "Polling period drift", _S.LOW, (),
          "A learned polling cycle came much later than its period.", needs_baseline=True,
          knobs={"factor": Knob(3.0, "an interval longer than period x factor + jitter")}),
    Entry("baseline.polling-stopped", "Polling stopped", _S.MEDIUM, ("T0829", "T0803"),
          "A learned polling cycle stopped while other traffic goes on: the master lost its "
          "view of the device, or its requests are being blocked.", needs_baseline=True,
          knobs={"factor": Knob(5.0, "silent for period x factor"),
                 "minimum_s": Knob(5.0, "and for at least this many seconds"),
                 "min_count": Knob(10, "only cycles learned from this many requests")}),
    Entry("baseline.latency-drift", "Response time drift", _S.LOW, ("T0830",),
          "A device answers much slower than while learning: overload, or a man-in-the-middle.",
          needs_baseline=True,
          knobs={"factor": Knob(3.0, "average above learned 95th percentile x factor"),
                 "minimum_ms": Knob(20.0, "and at least this much above it (ms)"),
                 "samples": Knob(20, "responses averaged before judging")}),
)


class _Cycle:
    """A learned polling cycle being watched: when it was last polled, and its limits."""

    __slots__ = ("key", "period_ns", "drift_after", "stop_after", "last", "stopped")

    def __init__(self, key: tuple, period_ns: int, drift_after: float, stop_after: float) -> None:
        self.key = key
        self.period_ns = period_ns
        self.drift_after = drift_after  # an interval longer than this is a drift
        self.stop_after = stop_after  # silent for longer than this: stopped
        self.last = 0  # capture time of the latest poll (0: none since learning)
        self.stopped = False


class _Latency:
    """Recent response times of one (server, unit, function): a moving average."""

    __slots__ = ("average", "n", "dead")

    def __init__(self) -> None:
        self.average = 0.0
        self.n = 0
        self.dead = False  # evicted from Learned.latency


_NEW_MASTER: Final = "baseline.new-master"
_NEW_PAIR: Final = "baseline.new-pair"
_NEW_FUNCTION: Final = "baseline.new-function"
_NO_CYCLES: Final[dict[int, _Cycle]] = {}
_MAX_CACHED = 4096  # per pair: units x functions


class _Known:
    """What the baseline says about one (client, server, unit, function): looked up once,
    then cached on the pair's :class:`PairState` (``learned``, by unit and function).

    ``novel`` is "" when the baseline has the function for the pair, else the finding its
    requests make; ``cycles`` are the watched cycles of the function by range; ``latency``
    is the shared moving average of the (server, unit, function), once seen.  Whether a
    requested range is learned is kept per request signature (:class:`Poll`)."""

    __slots__ = ("novel", "ranges", "cycles", "learned_latency", "latency")

    def __init__(self, novel: str, ranges: list[list[int]] | None, cycles: dict[int, _Cycle],
                 learned_latency: tuple[int, int, int] | None) -> None:
        self.novel = novel
        self.ranges = ranges
        self.cycles = cycles
        self.learned_latency = learned_latency
        self.latency: _Latency | None = None


def _range_key(first: int, last: int) -> int:
    return first << 18 | last  # last < 2**17: first + quantity - 1


class Learned(Family):
    """Every transaction compared with the baseline; cycles checked every tick."""

    ENTRIES = ENTRIES
    MODES = frozenset({"protect"})
    EVERY_TX = "tx"
    TICK = "tick"
    #: Polling is timed on requests as they are sent: an unanswered request only becomes a
    #: transaction at its timeout, and a master that goes on asking has not stopped polling.
    REQUESTS = {fc: "request" for fc in POLLED}

    def __init__(self, engine: Any) -> None:
        super().__init__(engine)
        k = self.knob
        self.drift = float(k("baseline.polling-drift", "factor"))
        self.stop_factor = float(k("baseline.polling-stopped", "factor"))
        self.stop_min = int(k("baseline.polling-stopped", "minimum_s") * 1e9)
        self.min_count = int(k("baseline.polling-stopped", "min_count"))
        self.lat_factor = float(k("baseline.latency-drift", "factor"))
        self.lat_min = int(k("baseline.latency-drift", "minimum_ms") * 1e6)
        self.lat_samples = int(k("baseline.latency-drift", "samples"))
        self.b: Baseline | None = None
        # the learned cycles with enough polls, by key, and in a list for the tick's sweep
        self.cycles: dict[tuple, _Cycle] = {}
        self.watched: list[_Cycle] = []
        # the watched cycles by (client, server, unit, function), then by range
        self.cycles_of: dict[tuple, dict[int, _Cycle]] = {}
        self.latency = self.table("latency")
        self.latency.marks = True
        self.start = 0

    def on_protect(self, baseline: Any) -> None:
        self.b = baseline
        self.cycles = {k: _Cycle(k, c.period_ns, c.period_ns * self.drift + c.jitter_ns,
                                 max(c.period_ns * self.stop_factor, self.stop_min))
                       for k, c in baseline.cycles.items() if c.count >= self.min_count}
        self.watched = list(self.cycles.values())
        self.cycles_of = {}
        for k, cyc in self.cycles.items():
            self.cycles_of.setdefault(k[:4], {})[_range_key(k[4], k[5])] = cyc
        for pair in self.engine.pairs.values():  # what the old baseline said is void
            pair.learned = None

    def _known(self, flow: Flow, unit: int, fc: int) -> _Known:
        """What the baseline says about ``flow``'s pair, ``unit`` and ``fc`` (cached)."""
        pair = self.engine.pair_of(flow)
        got = pair.learned
        cache: dict[int, _Known] = got if got is not None else {}
        if got is None:
            pair.learned = cache
        k = unit << 8 | fc
        known = cache.get(k)
        if known is None:
            known = self._lookup(pair.client, pair.server, unit, fc)
            if len(cache) >= _MAX_CACHED:
                cache.clear()
            cache[k] = known
        return known

    def _lookup(self, client: str, server: str, unit: int, fc: int) -> _Known:
        b = self.b
        assert b is not None
        ranges = None
        if client not in b.clients:
            novel = _NEW_MASTER
        elif (client, server, unit) not in b.units:
            novel = _NEW_PAIR
        else:
            ranges = b.pairs.get((client, server, unit, fc))
            novel = "" if ranges is not None else _NEW_FUNCTION
        return _Known(novel, ranges, self.cycles_of.get((client, server, unit, fc), _NO_CYCLES),
                      b.latency.get((server, unit, fc)))

    def tx(self, tx: Transaction, req: Message | None, rsp: Message | None) -> None:
        if req is None or self.b is None:
            return
        flow: Flow = tx.flow
        fc = req.fc
        rng: tuple[int, int] | None = None  # a write's range (a read needs no tuple)
        if isinstance(req, _ReadRequest):  # most requests
            rd = req  # cast once
            poll: Poll | None = self._signature(flow, rd, rd.address, read_last(rd))
        else:
            rng = read_range(req)
            poll = None if rng is None else self._signature(flow, req, rng[0], rng[1])
        known: _Known = poll.known if poll is not None else self._known(flow, req.unit, fc)
        if self._novel(known, tx, flow.client, flow.server, req.unit, fc, poll) and fc in WRITES:
            self._new_write(tx, rng)
        latency = tx.latency_ns
        if latency is not None and tx.status == "ok" and known.learned_latency is not None:
            self._latency(known, known.learned_latency, tx, latency, flow.server, req.unit, fc)

    def _signature(self, flow: Flow, req: Message, first: int, last: int) -> Poll:
        """The request's :class:`Poll`, with what the baseline says of it filled in."""
        poll = self.engine.poll(flow, req, first, last)
        if poll.known is None:
            known = poll.known = self._known(flow, req.unit, req.fc)
            if known.cycles:
                poll.cycle = known.cycles.get(_range_key(first, last))
        return poll

    def _novel(self, known: _Known, tx: Any, client: str, server: str, unit: int, fc: int,
               poll: Poll | None) -> bool:
        """Report what the baseline does not know; True unless the request was learned.
        ``poll`` is the request's signature, None when it has no address range."""
        write = fc in WRITES
        novel = known.novel
        if novel:
            if novel == _NEW_MASTER:
                self._new(tx, _NEW_MASTER, (client,),
                          f"{client} acts as a Modbus master for the first time (to {server}).")
            elif novel == _NEW_PAIR:
                self._new(tx, _NEW_PAIR, (client, server, unit),
                          f"{client} talks to {server} unit {unit} for the first time.")
            elif not write:
                self._new(tx, _NEW_FUNCTION, (client, server, unit, fc),
                          f"{client} uses {spec.function_name(fc)} on {server} unit {unit} for "
                          "the first time.")
            return True
        if poll is None:
            return False
        inside = poll.inside
        if inside is None:
            ranges = known.ranges
            assert ranges is not None
            inside = poll.inside = covered(ranges, poll.first, poll.last)
        if inside:
            return False
        if not write:
            self._new(tx, "baseline.new-range", (client, server, unit, fc),
                      f"{client} reads {poll.first}-{poll.last} on {server} unit {unit}, "
                      "outside what it read while learning.", (poll.first, poll.last))
        return True

    def _new(self, tx: Any, kind: str, key: tuple, summary: str,
             rng: tuple[int, int] | None = None) -> None:
        req = tx.request
        self.report(kind, key, req.ts, tx.flow, summary, unit=req.unit, fc=req.fc,
                    addresses=rng or (), frames=(req.frame,))

    def _new_write(self, tx: Any, rng: tuple[int, int] | None) -> None:
        req, flow = tx.request, tx.flow
        self.report("baseline.new-write", (flow.client, flow.server, req.unit, req.fc), req.ts,
                    flow, _NewWrite(flow.client, flow.server, req.unit, req.fc, rng),
                    unit=req.unit, fc=req.fc, addresses=rng or (), frames=(req.frame,))

    def request(self, msg: Any, flow: Any) -> None:
        if self.b is None:
            return
        m: Message = msg  # a request message (one cast)
        fl: Flow = flow
        if isinstance(m, _ReadRequest):  # function codes 1-4, with no tuple
            rd = m
            first, last = rd.address, read_last(rd)
        else:
            rng = read_range(m)
            if rng is None:
                return
            first, last = rng
        cyc = self._signature(fl, m, first, last).cycle
        if cyc is not None:
            self._cycle(cyc, m.ts, m, fl)

    def _cycle(self, cyc: _Cycle, ts: int, msg: Any, flow: Any) -> None:
        key = cyc.key
        last = cyc.last
        cyc.last = ts
        if cyc.stopped:
            cyc.stopped = False
            return
        if last and ts - last > cyc.drift_after:
            self.report("baseline.polling-drift", key, ts, flow,
                        f"{key[0]} polled {key[1]} unit {key[2]} after {(ts - last) / 1e9:.1f} s "
                        f"instead of every {cyc.period_ns / 1e9:.2f} s.", unit=key[2], fc=key[3],
                        addresses=(key[4],), frames=(msg.frame,))

    def _latency(self, known: _Known, learned: tuple[int, int, int], tx: Any, latency: int,
                 server: str, unit: int, fc: int) -> None:
        st = known.latency
        if st is None or st.dead:  # shared by the server's clients: one table entry
            st = known.latency = self._shared_latency((server, unit, fc))
        st.average = latency if not st.n else 0.9 * st.average + 0.1 * latency
        st.n += 1
        p95 = learned[1]
        if st.n >= self.lat_samples and st.average > max(p95 * self.lat_factor,
                                                         p95 + self.lat_min):
            st.n = 0
            key = (server, unit, fc)
            self.report("baseline.latency-drift", key, tx.response.ts, tx.flow,
                        f"{key[0]} unit {key[1]} answers in {st.average / 1e6:.1f} ms on "
                        f"average, against {p95 / 1e6:.1f} ms while learning.", unit=key[1],
                        fc=key[2], frames=(tx.response.frame,))

    def _shared_latency(self, key: tuple[str, int, int]) -> _Latency:
        got = self.latency.get(key)
        return got if got is not None else self.latency.put_new(key, _Latency())

    def tick(self, ts: int) -> None:
        self.start = start = self.start or ts
        for cyc in self.watched:
            if cyc.stopped:
                continue
            silent = ts - (cyc.last or start)
            if silent > cyc.stop_after:
                cyc.stopped = True
                key = cyc.key
                self.report("baseline.polling-stopped", key[:3], ts, None,
                            f"{key[0]} stopped polling {key[1]} unit {key[2]} "
                            f"({spec.function_name(key[3])} {key[4]}-{key[5]}), silent for "
                            f"{silent / 1e9:.0f} s; it polled every {cyc.period_ns / 1e9:.2f} s.",
                            client=key[0], server=key[1], unit=key[2], fc=key[3],
                            addresses=(key[4], key[5]))


class _NewWrite:
    """The sentence of a write never seen while learning, made only if a revision shows it
    (a plant writing setpoints the baseline lacks repeats the finding per write)."""

    __slots__ = ("client", "server", "unit", "fc", "rng")

    def __init__(self, client: str, server: str, unit: int, fc: int,
                 rng: tuple[int, int] | None) -> None:
        self.client, self.server, self.unit, self.fc, self.rng = client, server, unit, fc, rng

    def __call__(self) -> str:
        rng = self.rng
        where = f" {rng[0]}-{rng[1]}" if rng else ""
        return (f"{self.client} used {spec.function_name(self.fc)}{where} on {self.server} "
                f"unit {self.unit}, a write never seen while learning.")
