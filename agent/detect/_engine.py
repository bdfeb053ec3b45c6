"""The detection engine: a pipeline sink that turns events into findings.

    engine = Engine(DetectConfig(), baseline=None, learn_ns=None)
    pipe = Pipeline([engine], PipelineConfig(ring_frames=64))
    ... pipe.feed(...) ...; pipe.finish(); engine.finish()
    for finding in engine.drain(): ...        # new revisions, in order

Rule 1 (sans-I/O): time comes from the events; no clock, no I/O, no logging
per packet.  Rule 2: the hot path is table dispatch -- per request or
response one dict lookup by function code, per transaction one by status,
then the few families that want every transaction (see :mod:`._family`).

Modes: ``plain`` (no baseline: policy and behavioural detectors), ``learning``
(the first ``learn_ns`` of capture time feed a :class:`Learner`) and
``protect`` (against a :class:`Baseline`, loaded or just learned).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from otsentry.agent.detect._aggregate import Aggregator
from otsentry.agent.detect._config import DetectConfig
from otsentry.agent.detect._family import Family, decoded
from otsentry.agent.detect._learner import Learner
from otsentry.agent.detect._registry import FAMILIES, catalogue
from otsentry.agent.detect._state import BoundedMap, PairState, Poll, signature
from otsentry.agent.flows import Flow
from otsentry.agent.modbus._events import ExceptionResponse, Message, RawRequest, RawResponse
from otsentry.agent.transactions import Transaction
from otsentry.common.errors import ConfigError
from otsentry.common.finding import AssetRef, Finding, Severity

__all__ = ["Engine"]

_TICK_NS = 1_000_000_000
_POLLS_FOR_MASTER = 3
_MAX_SIGNATURES = 4096  # request signatures kept per pair (all dropped, then made again)
#: Without a baseline, a host counts as new for this long after its first transaction.
_NEW_HOST_NS = 60_000_000_000
#: Message classes whose function code is each message's own, not the class's.
_OWN_FC = (ExceptionResponse, RawRequest, RawResponse)
_MAX_REFS = 4096  # asset reference pairs kept for reuse (all dropped, then made again)
_NO_HOOKS: list = []
_NO_FAMILIES: list[Family] = []


class _Hooks:
    """What the events of one class are handed to: bound methods (``calls``), and the
    families whose :meth:`Family.request` is called natively (``families``)."""

    __slots__ = ("calls", "families")

    def __init__(self, calls: list, families: list[Family]) -> None:
        self.calls = calls
        self.families = families


class Engine:
    """Runs every enabled detector family on the pipeline's output (see the module docstring).

    Args:
        config: detection settings.
        baseline: protect against this learned baseline (None: no baseline).
        learn_ns: learn for this much capture time first, then protect.
        scope: the agent's identity, mixed into finding ids.
        agent_clock: ``f(capture_ns) -> agent_ns`` for the agent time of revisions; the
            default (replay) uses the capture time.
        asset_name: ``f(ip) -> name`` from the inventory, "" when unknown.
        live: frame numbers are live capture offsets rather than file frame numbers.

    Attributes:
        findings: latest revision of every finding, by id.
        tables: every bounded per-key table (for eviction reports).
        suppressed: hits dropped by suppress rules, per detector.
    """

    def __init__(self, config: DetectConfig | None = None, baseline: Any = None,
                 learn_ns: int | None = None, scope: str = "",
                 agent_clock: Callable[[int], int] | None = None,
                 asset_name: Callable[[str], str] | None = None, live: bool = False) -> None:
        self.config = cfg = config or DetectConfig()
        self.entries = catalogue()
        _check_config(cfg, self.entries)
        self.baseline = baseline
        self.learn_ns = learn_ns
        self.learner = Learner(cfg.max_keys * 5) if learn_ns is not None else None
        self.mode = "learning" if learn_ns is not None else ("protect" if baseline else "plain")
        self.asset_name = asset_name or (lambda ip: "")
        self.tables: list[BoundedMap] = []
        self.suppressed: dict[str, int] = {}
        self.agg = Aggregator(cfg.window_ns, cfg.revision_interval_ns, cfg.max_new_per_window,
                              cfg.max_keys, scope, agent_clock, live,
                              self._assets)
        self.findings: dict[str, Finding] = {}
        self._refs: dict[tuple, tuple[AssetRef, ...]] = {}  # see _assets
        #: (client, server) -> the pair's state, also cached on its flows (``Flow.det``)
        self.pairs = self._table("pairs")
        self.pairs.marks = True
        self.hosts = self._table("hosts")
        self._hosts_evicted = 0  # hosts.evicted, as of the last key added
        self.families = [family(self) for family in FAMILIES]
        self.start_ts: int | None = None
        self.last_ts = 0
        self._next_tick = 0
        self._reported_evictions = 0
        if self.mode == "protect":
            self.protect(baseline)
        else:
            self._bind()

    def _table(self, name: str) -> BoundedMap:
        m: BoundedMap = BoundedMap(self.config.max_keys, f"engine.{name}")
        self.tables.append(m)
        return m

    def _bind(self) -> None:
        """Build the dispatch tables for the current mode."""
        self._req: dict[int, list] = {}
        self._rsp: dict[int, list] = {}
        self._req_families: dict[int, list[Family]] = {}
        self._by_class: dict[type, _Hooks] = {}  # event class -> its hooks (see _hooks)
        self._ev: dict[str, list] = {}
        self._status: dict[str, list] = {}
        self._every: list = []
        # The families whose EVERY_TX is "tx", called natively: chained through
        # Family.next_tx (a typed attribute, read with no type check as a list's item has).
        self._first_tx: Family | None = None
        last_tx: Family | None = None
        self._new_flow: list = []
        self._new_end: list = []
        self._tick: list = []
        self._changes: dict[str, list] = {}
        for fam in self.families:
            if self.mode not in fam.MODES:
                continue
            for fc, method in fam.requests().items():
                if method == "request":  # the Family.request override: called natively
                    self._req_families.setdefault(fc, []).append(fam)
                else:
                    self._req.setdefault(fc, []).append(getattr(fam, method))
            for fc, method in fam.RESPONSES.items():
                self._rsp.setdefault(fc, []).append(getattr(fam, method))
            for kind, method in fam.EVENTS.items():
                self._ev.setdefault(kind, []).append(getattr(fam, method))
            for status, method in fam.STATUSES.items():
                self._status.setdefault(status, []).append(getattr(fam, method))
            for kind, method in fam.CHANGES.items():
                self._changes.setdefault(kind, []).append(getattr(fam, method))
            if fam.EVERY_TX == "tx":
                fam.next_tx = None
                if last_tx is None:
                    self._first_tx = fam
                else:
                    last_tx.next_tx = fam
                last_tx = fam
            elif fam.EVERY_TX:
                self._every.append(getattr(fam, fam.EVERY_TX))
            for hooks, name in ((self._new_flow, fam.NEW_FLOW),
                                (self._new_end, fam.NEW_END), (self._tick, fam.TICK)):
                if name:
                    hooks.append(getattr(fam, name))
        self._learning = self.learner if self.mode == "learning" else None

    # --- the sink ---------------------------------------------------------------------------

    def __call__(self, flow: Flow | None, events: list, txs: list) -> None:
        if events:
            e0 = events[0]
            # the same attribute either way; narrowed, a message's is read natively
            ts: int = e0.ts if isinstance(e0, Message) else e0.ts
        elif txs:
            first: Transaction = txs[0]
            ts = first.first.ts
        else:
            ts = self.last_ts
        if ts > self.last_ts:
            self.last_ts = ts
        if ts >= self._next_tick:
            self._on_tick(ts)
        if flow is not None and flow.det_ends != flow.seen_ends:
            self._flow_seen(flow, ts)
        by_class = self._by_class
        for e in events:
            # The hooks of an event are those of its class (one lookup, with no type check)
            # unless its function code is its own (exceptions, unknown codes).
            hooks = by_class.get(type(e))
            if hooks is None:
                hooks = self._hooks(e)
            if hooks.calls:
                for hook in hooks.calls:
                    hook(e, flow)
            if hooks.families:
                for fam in hooks.families:
                    fam.request(e, flow)
        if txs:
            self._transactions(txs)

    def _hooks(self, e: Any) -> _Hooks:
        """The hooks of event ``e`` (by kind, for a message by direction and function code),
        remembered for its class when every event of the class has the same."""
        if isinstance(e, Message):  # KIND "message"
            if e.is_request:
                hooks = _Hooks(self._req.get(e.fc, _NO_HOOKS),
                               self._req_families.get(e.fc, _NO_FAMILIES))
            else:
                hooks = _Hooks(self._rsp.get(e.fc, _NO_HOOKS), _NO_FAMILIES)
            if isinstance(e, _OWN_FC):
                return hooks
        else:
            hooks = _Hooks(self._ev.get(e.KIND, _NO_HOOKS), _NO_FAMILIES)
        self._by_class[type(e)] = hooks
        return hooks

    def _flow_seen(self, flow: Flow, ts: int) -> None:
        """A flow new to the engine, or one an end of which sent its first frame."""
        new = flow.det_ends < 0
        flow.det_ends = flow.seen_ends
        if new:
            for hook in self._new_flow:
                hook(flow, ts)
        for hook in self._new_end:
            hook(flow, ts)

    def _transactions(self, txs: list) -> None:
        status, every, hosts = self._status, self._every, self.hosts
        first_tx, learning = self._first_tx, self._learning
        # Keys are added to the hosts table only below, so its evictions are read only then.
        hosts_evicted = self._hosts_evicted
        for tx in txs:
            t: Transaction = tx
            flow: Flow = t.flow
            pair = self.pair_of(flow)
            # The request and response as decoded messages (None when missing or malformed),
            # cast once here: the families read their fields natively.
            req, rsp = decoded(t.request), decoded(t.response)
            st = t.status
            hooks = status.get(st)
            if hooks:
                for hook in hooks:
                    hook(t)
            fam = first_tx
            while fam is not None:
                fam.tx(t, req, rsp)
                fam = fam.next_tx
            for hook in every:
                hook(t)
            if learning is not None:
                learning.decoded(t, req, rsp)
            if st == "ok" and (req.fc if req is not None else t.first.fc or 0) <= 4:
                pair.polls += 1
            # The client's first-seen time: looked up again only when the table evicted
            # keys since the pair last found it there.
            if pair.hosts_at != hosts_evicted:
                client = flow.client
                if client not in hosts:
                    hosts.put_new(client, t.first.ts)  # first seen (capture time)
                    hosts_evicted = self._hosts_evicted = hosts.evicted
                pair.hosts_at = hosts_evicted

    def pair_of(self, flow: Flow) -> PairState:
        """The state of ``flow``'s (client, server) pair: the one cached on the flow
        (``Flow.det``) unless it was evicted, else looked up or made, and cached."""
        d = flow.det
        if d is not None:
            cached = cast(PairState, d)
            if not cached.dead:
                return cached
        key = (flow.client, flow.server)
        got = self.pairs.get(key)
        pair: PairState = got if got is not None else self.pairs.put_new(
            key, PairState(flow.client, flow.server))
        flow.det = pair
        return pair

    def poll(self, flow: Flow, req: Message, first: int, last: int) -> Poll:
        """The :class:`Poll` of ``req``'s signature (unit, function, ``first``-``last``) for
        ``flow``'s pair, made if new.  The pair remembers the last one found with its
        request: the families that look at the request, and then at its transaction, share
        it with one lookup."""
        pair = self.pair_of(flow)
        if req is pair.last_request:
            got = pair.last_poll
            if got is not None:
                return got
        sigs = pair.signatures
        if sigs is None:
            sigs = pair.signatures = {}
        k = signature(req.unit, req.fc, first, last)
        poll = sigs.get(k)
        if poll is None:
            if len(sigs) >= _MAX_SIGNATURES:
                sigs.clear()
            poll = sigs[k] = Poll(first, last)
        pair.last_request, pair.last_poll = req, poll
        return poll

    def inventory_change(self, change: Any) -> None:
        """One change of the inventory (:class:`InventoryChange`), as it happens.

        Wire it with ``inventory.listeners.append(engine.inventory_change)``; the
        inventory must run before the engine in the pipeline's sinks.
        """
        for hook in self._changes.get(change.kind, ()):
            hook(change)

    def _on_tick(self, ts: int) -> None:
        self._next_tick = ts + _TICK_NS
        if self.start_ts is None:
            self.start_ts = ts
        if self.mode == "learning":
            end = self.start_ts + self.learn_ns  # type: ignore[operator]
            if ts >= end:
                self.protect(self._learned())
            else:
                # Learning ends exactly at start + learn_ns, not at the next whole tick.
                self._next_tick = min(self._next_tick, end)
        for hook in self._tick:
            hook(ts)
        self._meta(ts)
        self.agg.flush(ts)

    def _learned(self) -> Any:
        """The baseline of what was learned; what learning kept is let go (the learner's
        state is as large as the plant's polling, and the baseline holds what it found)."""
        assert self.learner is not None
        baseline = self.learner.baseline()
        self.learner = self._learning = None
        return baseline

    def protect(self, baseline: Any) -> None:
        """Switch to protecting against ``baseline`` (the end of learning)."""
        self.baseline = baseline
        self.mode = "protect"
        self._bind()
        for pair in self.pairs.values():  # what the families made of the old one is void
            pair.signatures = pair.last_request = pair.last_poll = None
        for fam in self.families:
            hook = getattr(fam, "on_protect", None)
            if hook is not None:
                hook(baseline)

    # --- hits ---------------------------------------------------------------------------------

    def report(self, kind: str, key: tuple, ts: int, flow: Any, summary: Any, *,
               unit: int | None = None, fc: int | None = None, addresses: tuple = (),
               values: tuple = (), frames: tuple = (), details: dict[str, str] | None = None,
               client: str | None = None, server: str | None = None,
               severity: Severity | None = None, add: int = 1) -> None:
        """Record one occurrence of detector ``kind`` for aggregation ``key``.

        Args:
            flow: the pipeline flow (for endpoints, MACs and the pcap ring), or None.
            summary: one sentence for a shift operator, or a function making it (called
                only when the hit is not dropped: for detectors that may fire per value).
            client, server: endpoint addresses when there is no flow.
            severity: this occurrence's severity, when the detector grades it itself.
            add: occurrences this hit stands for.
        """
        cfg = self.config
        if kind in cfg.disable:
            return
        entry = self.entries[kind]
        client = client if client is not None else (flow.client if flow is not None else "")
        server = server if server is not None else (flow.server if flow is not None else "")
        sev = self._severity(entry, severity, client, server)
        for rule in cfg.suppress:
            if rule.matches(kind, client, server, unit, fc, tuple(addresses)):
                self.suppressed[kind] = self.suppressed.get(kind, 0) + add
                return
        if sev < cfg.min_severity:
            return
        self.agg.record(None, entry, key, ts, sev, summary, (flow, client, server),
                        (flow, unit, fc, addresses, values, details), frames,
                        flow.ring if flow is not None else None, add)

    def fixed_severity(self, kind: str) -> Severity | None:
        """The severity every hit of ``kind`` gets, when nothing about one hit can change or
        drop it: the detector is enabled, its severity has no context, no suppress rule
        could name it, and it reaches ``min_severity``.  None otherwise.

        A detector that may fire on every answer then hands its hits straight to
        :meth:`Aggregator.record`, as :meth:`report` would.
        """
        cfg = self.config
        entry = self.entries[kind]
        if kind in cfg.disable or (entry.context and entry.id not in cfg.severity):
            return None
        if any(rule.may_match(kind) for rule in cfg.suppress):
            return None
        sev = self._severity(entry, None, "", "")
        return sev if sev >= cfg.min_severity else None

    def _severity(self, entry: Any, severity: Severity | None, client: str, server: str) -> Severity:
        configured = self.config.severity.get(entry.id)
        if configured is not None:
            return configured
        sev = severity if severity is not None else entry.severity
        if entry.context:
            sev = entry.context.get(self.context_of(client, server), sev)
        return sev

    def context_of(self, client: str, server: str) -> str:
        """``learned-master``, ``new-host`` or "" for a client talking to a server.

        While learning, every client is what the baseline will make it: known.  SCADA
        software reads a device's identification when it connects, before its first
        poll; graded as a new host, the usual master would raise a high finding during
        the very traffic that defines normal.
        """
        if self.mode == "learning":
            return "learned-master"
        if self.mode == "protect" and self.baseline is not None:
            if self.baseline.is_master_of(client, server):
                return "learned-master"
            return "" if self.baseline.knows_host(client) else "new-host"
        pair = self.pairs.get((client, server))
        if pair is not None and pair.polls >= _POLLS_FOR_MASTER:
            return "learned-master"
        first = self.hosts.get(client)
        # Still "new" for its first minute: an attacker's opening requests (a UMAS info read
        # before the reservation, say) must not make it a known host.
        return "new-host" if first is None or self.last_ts - first < _NEW_HOST_NS else ""

    def _assets(self, flow: Any, client: str, server: str) -> tuple[AssetRef, ...]:
        name = self.asset_name
        if flow is None:
            return tuple(AssetRef(ip=ip, name=name(ip), role=role)
                         for ip, role in ((client, "client"), (server, "server")) if ip)
        # The references are values: a revision of the same flow's finding, with the same
        # names, shares the tuple its previous revision had.
        k = (flow.client, flow.client_mac or "", flow.vlan, name(flow.client),
             flow.server, flow.server_mac or "", name(flow.server))
        got = self._refs.get(k)
        if got is None:
            if len(self._refs) >= _MAX_REFS:
                self._refs.clear()
            got = self._refs[k] = (
                AssetRef(ip=k[0], mac=k[1], vlan=k[2], name=k[3], role="client"),
                AssetRef(ip=k[4], mac=k[5], vlan=k[2], name=k[6], role="server"))
        return got

    # --- bookkeeping --------------------------------------------------------------------------

    def _meta(self, ts: int) -> None:
        """Report losses: rate-limited hits and evicted detector state (principle 4)."""
        for kind, n in self.agg.dropped.items():
            self.report("detect.rate-limited", (kind,), ts, None,
                        f"{n} further '{kind}' findings were rate limited and counted only.",
                        details={"detector": kind, "dropped": str(n)}, add=n)
        self.agg.dropped.clear()
        evicted = sum(t.evicted for t in self.tables)
        if evicted > self._reported_evictions:
            names = {t.name: str(t.evicted) for t in self.tables if t.evicted}
            self.report("detect.state-evicted", (), ts, None,
                        f"Detector memory was full: {evicted} tracked keys were dropped, "
                        "so some behaviour may have gone unseen.",
                        details=names, add=evicted - self._reported_evictions)
            self._reported_evictions = evicted

    def finish(self, ts: int | None = None) -> None:
        """End of input: finish learning if still learning, emit every held-back update."""
        end = ts if ts is not None else self.last_ts
        if self.mode == "learning" and self.learner is not None:
            self.baseline = self.learner.baseline()
        self._meta(end)
        self.agg.flush(None)

    def drain(self) -> list[Finding]:
        """The revisions made since the last call, oldest first."""
        out = self.agg.out
        self.agg.out = []
        for f in out:
            self.findings[f.id] = f
        return out


def _check_config(cfg: DetectConfig, entries: dict) -> None:
    """Every detector id and knob named in the config must exist, with the default's type."""
    for where, ids in (("detect.disable", cfg.disable), ("detect.severity", cfg.severity),
                       ("detect.knobs", cfg.knobs)):
        for kind in ids:
            if kind not in entries:
                raise ConfigError(cfg.path, f'{where}."{kind}"',
                                  "a detector id listed in docs/detections.md")
    for kind, knobs in cfg.knobs.items():
        for name, value in knobs.items():
            knob = entries[kind].knobs.get(name)
            if knob is None:
                raise ConfigError(cfg.path, f'detect.knobs."{kind}".{name}',
                                  "one of " + ", ".join(entries[kind].knobs) or "no knobs")
            if type(value) is not type(knob.default) and not (
                    isinstance(knob.default, float) and type(value) is int):
                raise ConfigError(cfg.path, f'detect.knobs."{kind}".{name}',
                                  f"a {type(knob.default).__name__} like {knob.default!r}")
