"""Scans: unit id sweeps, function code sweeps, address sweeps and host sweeps.

State is one small record per (client, server), kept in the engine's pair state.  Counts are
distinct items in a sliding window of capture time; a sweep is reported when
it crosses its threshold and again each time it doubles, so a long scan is one
finding whose count grows, not thousands of findings.

A host sweep is judged once a contact has settled: a server that a client
contacted and then sent at most ``probe_requests`` requests within ``settle_s``
was probed, not polled.  Normal masters poll their servers over and over.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Final, cast

from otsentry.agent.detect._entry import Entry, Knob
from otsentry.agent.detect._family import Family, first_of
from otsentry.agent.detect._state import Bucket, PairState, Seen, Window
from otsentry.agent.detect._writes import read_last
from otsentry.agent.flows import Flow
from otsentry.agent.modbus._events import Message, _ReadRequest
from otsentry.agent.transactions import Transaction
from otsentry.common.finding import Severity

__all__ = ["Scans", "crossed"]

_S = Severity
_W = {"window_s": Knob(60.0, "sliding window (seconds)")}
ENTRIES: Final = (
    Entry("scan.unit-ids", "Unit id sweep", _S.MEDIUM, ("T0846",),
          "One client addressed many unit ids on one server in a short time: it is looking for "
          "the devices behind a gateway.", knobs={**_W, "units": Knob(8, "distinct unit ids")}),
    Entry("scan.function-codes", "Function code sweep", _S.MEDIUM, ("T0846", "T0888"),
          "One client tried many function codes on one server, or had several refused as "
          "illegal: it is probing what the device supports.",
          knobs={**_W, "functions": Knob(8, "distinct function codes"),
                 "refused": Knob(4, "distinct function codes refused (exception 1)")}),
    Entry("scan.addresses", "Address sweep", _S.MEDIUM, ("T0861",),
          "One client read many different address blocks or drew a burst of illegal-address "
          "exceptions: it is mapping the device's points.",
          knobs={**_W, "exceptions": Knob(10, "illegal data address exceptions (code 2)"),
                 "blocks": Knob(64, "distinct (function, start address) blocks read")}),
    Entry("scan.hosts", "Host sweep on Modbus", _S.MEDIUM, ("T0846",),
          "One client contacted many Modbus servers once or twice each: it is discovering the "
          "devices on the network.",
          knobs={**_W, "hosts": Knob(8, "servers probed"),
                 "probe_requests": Knob(2, "at most this many requests makes a contact a probe"),
                 "settle_s": Knob(10.0, "seconds after first contact when it is judged")}),
)


def crossed(reported: dict, key: str, n: int, threshold: int) -> bool:
    """True when ``n`` reaches ``threshold`` or doubles the last reported value."""
    last = reported.get(key, 0)
    if n < threshold:
        if last:
            reported[key] = 0
        return False
    if last == 0 or n >= 2 * last:
        reported[key] = n
        return True
    return False


#: Read signatures whose times a pair keeps outside its windows (then they are folded in
#: and it starts again): bounds the work of a pass and the memory of an address sweep.
_MAX_SEEN = 256


class _Pair:
    """Per (client, server): the windows, and the read signatures seen (``seen``: each a
    :class:`Seen` of its unit, function code and block, which the windows read)."""

    __slots__ = ("units", "fcs", "refused", "exc2", "blocks", "txs", "reported", "seen")

    def __init__(self, span: int) -> None:
        seen: list[Seen] = []
        self.seen = seen
        self.units, self.fcs = Window(span, 256, seen, 0), Window(span, 256, seen, 1)
        self.refused = Window(span, 256)
        self.exc2 = Bucket(span)
        self.blocks = Window(span, 512, seen, 2)
        self.txs = 0
        self.reported: dict[str, int] = {}

    def new_seen(self, unit: int, fc: int, address: int) -> Seen:
        """A :class:`Seen` for the reads of ``unit``, function code ``fc`` and first
        ``address``; when the pair keeps too many, their times are folded into the windows
        first and they are let go."""
        seen = self.seen
        if len(seen) >= _MAX_SEEN:
            for w in (self.units, self.fcs, self.blocks):
                w.fold()
            for old in seen:
                old.live = False
            seen.clear()
        got = Seen((unit, fc, fc << 16 | address))
        seen.append(got)
        return got


class Scans(Family):
    """Per (client, server) sweep counters, plus settled contacts per client."""

    ENTRIES = ENTRIES
    EVERY_TX = "tx"
    TICK = "tick"

    def __init__(self, engine: Any) -> None:
        super().__init__(engine)
        k = lambda name, knob: self.knob(f"scan.{name}", knob)  # noqa: E731
        self.span = int(k("unit-ids", "window_s") * 1e9)
        self.th_units: int = int(k("unit-ids", "units"))
        self.th_fcs: int = int(k("function-codes", "functions"))
        self.th_refused: int = int(k("function-codes", "refused"))
        self.th_exc: int = int(k("addresses", "exceptions"))
        self.th_blocks: int = int(k("addresses", "blocks"))
        self.th_hosts: int = int(k("hosts", "hosts"))
        self.probe_max: int = int(k("hosts", "probe_requests"))
        self.settle = int(k("hosts", "settle_s") * 1e9)
        self.host_span = int(k("hosts", "window_s") * 1e9)
        self.contacts = self.table("new-contacts")
        self.probes = self.table("probed-hosts")

    def tx(self, tx: Transaction, req: Message | None, rsp: Message | None) -> None:
        flow: Flow = tx.flow
        first = first_of(tx, req, rsp)
        unit: int | None  # None: a malformed message whose header said too little
        fc: int | None
        if first is not None:
            ts, unit, fc = first.ts, first.unit, first.fc
        else:  # a malformed request, paired by its header
            m = tx.first
            ts, unit, fc = m.ts, m.unit, m.fc
        pair = cast(PairState, flow.det)  # set by the engine before the hooks run
        got = pair.scans
        st: _Pair = got if got is not None else self._new_pair(pair, flow, ts)
        st.txs += 1
        rep = st.reported
        blocks = -1  # distinct blocks read, when this is a read that drew no exception
        if isinstance(req, _ReadRequest) and tx.status != "exception":
            units, fcs, blocks = self._read(tx, req, st, ts)
        else:
            units, fcs = st.units.add(ts, unit), st.fcs.add(ts, fc)
        # crossed() only when a count reaches its threshold or one was reported before
        if (units >= self.th_units or rep) and crossed(rep, "units", units, self.th_units):
            self._unit_sweep(tx, st)
        if (fcs >= self.th_fcs or rep) and crossed(rep, "fcs", fcs, self.th_fcs):
            self._fc_sweep(tx, st, "tried")
        if tx.status == "exception":
            self._exception(tx, st, ts)
        elif blocks >= 0 and (blocks >= self.th_blocks or rep) and crossed(
                rep, "blocks", blocks, self.th_blocks):
            self._address_sweep(tx, st, f"read {len(st.blocks.items)} different blocks")

    def _read(self, tx: Transaction, rd: _ReadRequest, st: _Pair,
              ts: int) -> tuple[int, int, int]:
        """The distinct units, function codes and blocks (function, start) in the windows
        after a read that drew no exception (most transactions): counted through the
        signature's :class:`Seen`, with no store in them while they hold its items."""
        poll = self.engine.poll(tx.flow, rd, rd.address, read_last(rd))
        seen = poll.seen
        if seen is None or not seen.live:
            seen = poll.seen = st.new_seen(rd.unit, rd.fc, rd.address)
        counts = st.units.count(ts, seen), st.fcs.count(ts, seen), st.blocks.count(ts, seen)
        seen.ts = ts
        return counts

    def _new_pair(self, pair: PairState, flow: Flow, ts: int) -> _Pair:
        st = pair.scans = _Pair(self.span)
        contacts = self.contacts.get(flow.client)
        if contacts is None:
            contacts = self.contacts.put_new(flow.client, deque(maxlen=1024))
        contacts.append((ts, flow.server))
        return st

    def _exception(self, tx: Any, st: _Pair, ts: int) -> None:
        code = getattr(tx.response, "code", None)
        if code == 1 and crossed(st.reported, "refused", st.refused.add(ts, tx.fc),
                                 self.th_refused):
            self._fc_sweep(tx, st, "had refused as illegal")
        elif code == 2 and crossed(st.reported, "exc2", st.exc2.hit(ts), self.th_exc):
            self._address_sweep(tx, st, f"drew {st.exc2.n} illegal-address exceptions")

    def _unit_sweep(self, tx: Any, st: _Pair) -> None:
        flow, units = tx.flow, sorted(st.units.items)
        self.report("scan.unit-ids", (flow.client, flow.server), tx.first.ts, flow,
                    f"{flow.client} addressed {len(units)} different unit ids on {flow.server} "
                    "within a minute: a sweep for devices behind it.", values=tuple(units[:64]),
                    frames=(tx.first.frame,))

    def _fc_sweep(self, tx: Any, st: _Pair, how: str) -> None:
        flow = tx.flow
        fcs = sorted(st.fcs.items if how == "tried" else st.refused.items)
        self.report("scan.function-codes", (flow.client, flow.server), tx.first.ts, flow,
                    f"{flow.client} {how} {len(fcs)} different function codes on {flow.server} "
                    "within a minute: a function code sweep.", unit=tx.unit,
                    values=tuple(fcs[:64]), frames=(tx.first.frame,))

    def _address_sweep(self, tx: Any, st: _Pair, how: str) -> None:
        flow = tx.flow
        addrs = sorted({b & 0xFFFF for b in st.blocks.items})[:64]
        self.report("scan.addresses", (flow.client, flow.server), tx.first.ts, flow,
                    f"{flow.client} {how} on {flow.server} within a minute: an address sweep.",
                    unit=tx.unit, fc=tx.fc, addresses=tuple(addrs), frames=(tx.first.frame,))

    def tick(self, ts: int) -> None:
        for client, dq in list(self.contacts.items()):
            while dq and ts - dq[0][0] >= self.settle:
                _t0, server = dq.popleft()
                pair = self.engine.pairs.get((client, server))
                st = pair.scans if pair is not None else None
                if st is not None and st.txs <= self.probe_max:
                    self._probe(client, server, ts)
            if not dq:
                del self.contacts[client]

    def _probe(self, client: str, server: str, ts: int) -> None:
        probes = self.probes.get_or_make(client, lambda: (Window(self.host_span, 4096), {}))
        n = probes[0].add(ts, server)
        if crossed(probes[1], "hosts", n, self.th_hosts):
            self.report("scan.hosts", (client,), ts, None,
                        f"{client} probed {n} Modbus servers with one or two requests each: a "
                        "sweep for devices.", client=client, server="",
                        details={"servers": " ".join(sorted(probes[0].items)[:32])})
