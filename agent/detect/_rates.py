"""Rates: request floods and spikes, brute-force writes, exception and unanswered storms.

Per (client, server) counters in tumbling windows of capture time, a count of
requests left unanswered in a row, and per written point a count of value
changes.  A read flood is a flood (T0814), not
brute force I/O: only writes that keep changing a point are T0806.
"""

from __future__ import annotations

from typing import Any, Final, cast

from otsentry.agent.detect._entry import Entry, Knob
from otsentry.agent.detect._family import Family, first_of
from otsentry.agent.detect._state import Bucket, PairState
from otsentry.agent.detect._writes import write_points
from otsentry.agent.flows import Flow
from otsentry.agent.modbus._events import Message
from otsentry.agent.transactions import Transaction
from otsentry.common.finding import Severity

__all__ = ["Rates"]

_S = Severity
ENTRIES: Final = (
    Entry("rate.flood", "Request flood", _S.HIGH, ("T0814",),
          "One client sent requests to one server faster than any poll needs: a denial of "
          "service against the device.", knobs={"rate": Knob(200, "requests in one second")}),
    Entry("rate.spike", "Request rate spike", _S.MEDIUM, ("T0814",),
          "A known client sent requests to a server much faster than it did while learning.",
          knobs={"factor": Knob(4.0, "times the learned peak rate"),
                 "minimum": Knob(20, "requests in one second, at least")}, needs_baseline=True),
    Entry("rate.write-repeat", "Repeated writes changing one point", _S.HIGH, ("T0806",),
          "One client kept changing the same coil or register: brute force I/O that can wear "
          "or trip equipment.", knobs={"changes": Knob(10, "value changes"),
                                       "window_s": Knob(10.0, "window (seconds)")}),
    Entry("rate.exception-storm", "Exception storm", _S.MEDIUM, ("T0814",),
          "A server refused many requests of one client in a short time: a misbehaving master, "
          "a probe, or a device in trouble.", knobs={"exceptions": Knob(20, "exception responses"),
                                                    "window_s": Knob(10.0, "window (seconds)")}),
    Entry("rate.unanswered-storm", "Unanswered request storm", _S.MEDIUM, ("T0803", "T0804"),
          "A server stopped answering a client's requests: its commands or reports are being "
          "blocked, or it was silenced. Low for a server that often fails to answer anyway.",
          knobs={"unanswered": Knob(10, "unanswered requests in a row, with no answer between"),
                 "chronic": Knob(0.05, "a server that lost more than this share of earlier "
                                       "requests is flaky: its storms are low"),
                 "timeout_s": Knob(10.0, "requests younger than this at the end of the capture "
                                         "are not counted (their answer may come later)")}),
)


class _Point(Bucket):
    """A written point: its last value, and its value changes counted in tumbling windows."""

    __slots__ = ("value",)

    def __init__(self, value: int, span_ns: int) -> None:
        super().__init__(span_ns)
        self.value = value


class _Pair:
    __slots__ = ("second", "exc", "streak", "answered", "lost", "spike")

    def __init__(self, exc_span: int, spike: int) -> None:
        self.second = Bucket(1_000_000_000)
        self.exc = Bucket(exc_span)
        self.streak = self.answered = self.lost = 0
        self.spike = spike  # requests in one second that make a spike (0: none learned)


class Rates(Family):
    """Counting per (client, server) and per written point."""

    ENTRIES = ENTRIES
    EVERY_TX = "tx"

    def __init__(self, engine: Any) -> None:
        super().__init__(engine)
        self.flood = int(self.knob("rate.flood", "rate"))
        self.changes = int(self.knob("rate.write-repeat", "changes"))
        self.change_span = int(self.knob("rate.write-repeat", "window_s") * 1e9)
        self.exc_n = int(self.knob("rate.exception-storm", "exceptions"))
        self.exc_span = int(self.knob("rate.exception-storm", "window_s") * 1e9)
        self.un_n = int(self.knob("rate.unanswered-storm", "unanswered"))
        self.timeout = int(self.knob("rate.unanswered-storm", "timeout_s") * 1e9)
        self.chronic = float(self.knob("rate.unanswered-storm", "chronic"))
        self.points = self.table("written-points")
        self.spike: dict[tuple[str, str], int] = {}

    def on_protect(self, baseline: Any) -> None:
        factor, low = self.knob("rate.spike", "factor"), self.knob("rate.spike", "minimum")
        self.spike = {k: max(low, int(r * factor)) for k, r in baseline.rates.items()}
        for pair in self.engine.pairs.values():
            if pair.rates is not None:
                pair.rates.spike = self.spike.get((pair.client, pair.server), 0)

    def tx(self, tx: Transaction, req: Message | None, rsp: Message | None) -> None:
        flow: Flow = tx.flow
        pair = cast(PairState, flow.det)  # set by the engine before the hooks run
        got = pair.rates
        if got is None:
            got = pair.rates = _Pair(self.exc_span,
                                     self.spike.get((flow.client, flow.server), 0))
        st: _Pair = got
        first = first_of(tx, req, rsp)
        ts = first.ts if first is not None else tx.first.ts
        status = tx.status
        if tx.request is not None:  # a malformed request counts towards a flood too
            n = st.second.hit(ts)
            if n == self.flood:
                self._flood(tx, n, "rate.flood")
            elif n == st.spike:
                self._flood(tx, n, "rate.spike")
            if req is not None:
                fc = req.fc
                if fc == 5 or fc == 6 or fc == 15 or fc == 16 or fc == 23:
                    self._write(tx)
        if status == "exception" and st.exc.hit(ts) == self.exc_n:
            self._exceptions(tx)
        if status in ("ok", "exception", "unanswered"):
            self._answers(tx, st, ts, status == "unanswered")

    def _flood(self, tx: Any, n: int, kind: str) -> None:
        flow = tx.flow
        self.report(kind, (flow.client, flow.server), tx.first.ts, flow,
                    f"{flow.client} sent {n} requests to {flow.server} within one second.",
                    unit=tx.unit, fc=tx.fc, values=(n,), frames=(tx.first.frame,), add=n)

    def _write(self, tx: Any) -> None:
        table, first, values = write_points(tx.request)  # type: ignore[misc]
        flow, ts = tx.flow, tx.first.ts
        for i, value in enumerate(values[:8]):
            key = (flow.client, flow.server, tx.unit, table, first + i)
            point: _Point | None = self.points.get(key)
            if point is None:
                point = self.points.put_new(key, _Point(value, self.change_span))
            if point.value == value:
                continue
            point.value = value
            if point.hit(ts) == self.changes:
                self.report("rate.write-repeat", key, ts, flow,
                            f"{flow.client} changed {table.replace('_', ' ')[:-1]} {first + i} "
                            f"on {flow.server} unit {tx.unit} {self.changes} times within "
                            f"{self.change_span / 1e9:g} s.", unit=tx.unit, fc=tx.fc,
                            addresses=(first + i,), values=(value,), frames=(tx.first.frame,),
                            add=self.changes)

    def _exceptions(self, tx: Any) -> None:
        flow = tx.flow
        self.report("rate.exception-storm", (flow.client, flow.server), tx.first.ts, flow,
                    f"{flow.server} refused {self.exc_n} requests of {flow.client} within "
                    f"{self.exc_span / 1e9:g} s.", unit=tx.unit, fc=tx.fc,
                    frames=(tx.first.frame,), add=self.exc_n)

    def _answers(self, tx: Any, st: _Pair, ts: int, unanswered: bool) -> None:
        if not unanswered:
            st.lost += st.streak
            st.streak = 0
            st.answered += 1
            return
        if self.engine.last_ts - ts < self.timeout:
            return  # expired by the end of the capture, not by a timeout
        st.streak += 1
        if st.streak == self.un_n:
            flow = tx.flow
            flaky = st.lost > self.chronic * (st.lost + st.answered)
            self.report("rate.unanswered-storm", (flow.client, flow.server), ts, flow,
                        f"{flow.server} left {st.streak} requests of {flow.client} in a row "
                        "unanswered" + (" (it often fails to answer)." if flaky else "."),
                        unit=tx.unit, fc=tx.fc, frames=(tx.first.frame,), add=st.streak,
                        severity=Severity.LOW if flaky else None)
