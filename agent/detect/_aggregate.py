"""Aggregation and rate limiting: many hits, few findings, nothing lost silently.

Hits with the same (detector, key) within ``window_ns`` of capture time of the
previous one are one finding: its count grows, its last-seen moves, and its
severity can only rise.  A new revision is emitted at most once per
``revision_interval_ns`` (or at once when the severity rises); updates held
back meanwhile are emitted by :meth:`Aggregator.flush` (the engine calls it
every tick and at the end).  At most ``max_new`` new findings per detector
are opened per window; hits beyond that are counted in :attr:`dropped` and
reported by the engine.

Sans-I/O: no clock, no I/O; time comes with each hit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from otsentry.agent.detect._entry import Entry
from otsentry.agent.detect._pcap import pcap_slice
from otsentry.agent.detect._state import Bucket
from otsentry.agent.flows import FrameRing
from otsentry.common.finding import (AssetRef, Evidence, Finding, Flow as FlowRef, Severity,
                                     Times, finding_id)

__all__ = ["Aggregator", "Hit", "LazyHit"]

_FIRST_FRAMES = 8
_LAST_FRAMES = 24
_MAX_VALUES = 64
_NEVER = 1 << 62  # later than any capture time
_MAX_REFS = 4096  # flow references kept for reuse (all dropped, then made again)


#: The raw evidence of one occurrence: (flow, unit, function code, addresses, values,
#: details); made into an :class:`Evidence` only when a revision is emitted.  A detector
#: that may fire on every answer passes a :class:`LazyHit` instead, which makes it then.
RawEvidence = tuple[Any, "int | None", "int | None", tuple, tuple, "dict[str, str] | None"]


class LazyHit:
    """One occurrence whose summary and evidence are made only if a revision shows them.

    A subclass keeps what it saw; calling it makes the summary, :meth:`raw` the evidence.
    Folded into an open finding, a hit then costs one object, not a sentence and tuples.
    """

    __slots__ = ()

    def __call__(self) -> str:
        raise NotImplementedError

    def raw(self) -> RawEvidence:
        raise NotImplementedError


#: What a hit carries as evidence: raw, or made when needed.
AnyEvidence = RawEvidence | LazyHit
#: Whom an occurrence involves: (flow, client, server); made into asset references only when
#: a revision is emitted.
Involved = tuple[Any, str, str]


class Hit:
    """What a detector saw once: the parts of a finding that come from one occurrence.

    ``summary`` may be a function making it.  An update folded into an open finding keeps
    only the latest summary, assets and evidence, in their raw form, and they are made
    when a revision is emitted: a flood of hits costs no text, no asset list and no
    evidence object each.  ``ring`` is the flow's frame ring for the pcap slice (or None).
    """

    __slots__ = ("entry", "key", "ts", "severity", "summary", "assets", "evidence", "frames",
                 "ring", "add")

    def __init__(self, entry: Entry, key: tuple, ts: int, severity: Severity, summary: Any,
                 assets: Involved, evidence: AnyEvidence, frames: tuple[int, ...],
                 ring: FrameRing | None, add: int) -> None:
        self.entry, self.key, self.ts, self.severity = entry, key, ts, severity
        self.summary, self.assets, self.evidence = summary, assets, evidence
        self.frames, self.ring, self.add = frames, ring, add


class _Slot:
    """Mutable aggregation state of one open finding."""

    __slots__ = ("finding", "count", "last_ts", "severity", "summary", "involved", "assets",
                 "evidence", "first_frames", "last_frames", "last_at", "pcap", "emitted_ts", "dirty",
                 "live", "escalate_at", "k")

    def __init__(self, finding: Finding, hit: Hit, k: tuple[str, tuple]) -> None:
        self.finding = finding
        self.count = hit.add
        self.last_ts = hit.ts
        self.severity = hit.severity
        self.summary: Any = hit.summary
        self.involved = hit.assets
        self.assets: tuple[AssetRef, ...] | None = None  # made from involved when emitted
        self.evidence = hit.evidence
        self.first_frames: list[int] = []
        #: the latest frames after the first ones: up to _LAST_FRAMES, written in a circle
        #: (the next goes at ``last_at`` once full)
        self.last_frames: list[int] = []
        self.last_at = 0
        self.more_frames(hit.frames)
        self.pcap = b""
        self.emitted_ts = hit.ts
        self.dirty = True
        self.live = True  # in Aggregator.open (False once closed)
        self.escalate_at = hit.entry.escalate_at or 0  # its detector's (0: never)
        self.k = k  # its key in Aggregator.open

    def more_frames(self, frames: tuple[int, ...]) -> None:
        """Frames of another occurrence: among the first ones while there is room, else kept
        if among the latest."""
        for f in frames:
            self.add_frame(f)

    def add_frame(self, f: int) -> None:
        """One frame of another occurrence (see :meth:`more_frames`)."""
        first = self.first_frames
        if len(first) < _FIRST_FRAMES:
            first.append(f)
            return
        last = self.last_frames
        if len(last) < _LAST_FRAMES:
            last.append(f)
        else:
            i = self.last_at
            last[i] = f
            self.last_at = i + 1 if i + 1 < _LAST_FRAMES else 0

    def frames(self) -> tuple[int, ...]:
        """The first frames, then the latest ones, oldest first."""
        last, i = self.last_frames, self.last_at
        return (*self.first_frames, *last[i:], *last[:i])


class Aggregator:
    """Open findings per (detector, key); see the module docstring."""

    def __init__(self, window_ns: int, revision_interval_ns: int, max_new: int, max_open: int,
                 scope: str, agent_clock: Callable[[int], int] | None, live: bool,
                 assets_of: Callable[[Any, str, str], tuple[AssetRef, ...]]) -> None:
        self.window_ns = window_ns
        self.interval_ns = revision_interval_ns
        self.max_new = max_new
        self.max_open = max_open
        self.scope = scope
        self.clock = agent_clock  # capture ns -> agent ns; None: the capture time (replay)
        self.live = live
        self.assets_of = assets_of  # (flow, client, server) -> asset references
        self.open: dict[tuple[str, tuple], _Slot] = {}
        self.new_per_kind: dict[str, Bucket] = {}
        self.dropped: dict[str, int] = {}
        self.out: list[Finding] = []
        self.flow_refs: dict[tuple, FlowRef] = {}  # see _flow_ref
        #: No open finding is due for a held-back revision or for closing before this
        #: capture time: a tick before it has nothing to flush (a lower bound, kept by
        #: whatever can make a finding due earlier: opening one, or a hit held back).
        self.due = 0

    def current(self, kind: str, key: tuple, ts: int) -> _Slot | None:
        """The open finding a hit of ``kind`` for ``key`` at ``ts`` folds into, if any."""
        slot = self.open.get((kind, key))
        if slot is not None and ts - slot.last_ts <= self.window_ns:
            return slot
        return None

    def takes(self, slot: _Slot | None, ts: int) -> bool:
        """Whether a hit at ``ts`` folds into ``slot`` (a finding a detector kept)."""
        return slot is not None and slot.live and ts - slot.last_ts <= self.window_ns

    def record(self, kept: _Slot | None, entry: Entry, key: tuple, ts: int, severity: Severity,
               summary: Any, assets: Involved, evidence: AnyEvidence, frames: tuple[int, ...],
               ring: FrameRing | None, add: int) -> _Slot | None:
        """One occurrence of detector ``entry`` for ``key``, its severity settled: folded into
        its open finding (``kept``, one the detector remembers, is checked first), else
        admitted and opened.  Returns the open finding it went into, None when the rate
        limit dropped it (counted in :attr:`dropped`)."""
        if kept is not None and self.takes(kept, ts):
            # the common case of a busy detector: one more occurrence of the finding it kept
            self.fold(kept, ts, severity, summary, assets, evidence, frames, ring, add)
            return kept
        kind = entry.id
        slot = self.current(kind, key, ts)
        if slot is not None:
            self.fold(slot, ts, severity, summary, assets, evidence, frames, ring, add)
            return slot
        if not self.admit(kind, key, ts, add):
            return None
        self.hit(Hit(entry, key, ts, severity, summary, assets, evidence, frames, ring, add))
        return self.open.get((kind, key))

    def admit(self, kind: str, key: tuple, ts: int, add: int) -> bool:
        """Whether a hit of ``kind`` for ``key`` at ``ts`` goes on to :meth:`hit`.

        False when it would open a new finding beyond ``max_new`` per window: it is
        counted in :attr:`dropped` and nothing else is built for it, so a flood of hits
        costs a lookup each, not a finding each.
        """
        if self.current(kind, key, ts) is not None:
            return True
        bucket = self.new_per_kind.get(kind)
        if bucket is None:
            bucket = self.new_per_kind[kind] = Bucket(self.window_ns)
        if bucket.hit(ts) > self.max_new and not kind.startswith("detect."):
            self.dropped[kind] = self.dropped.get(kind, 0) + add
            return False
        return True

    def hit(self, hit: Hit) -> None:
        """Aggregate one admitted occurrence (see :meth:`admit`): open or revise a finding."""
        k = (hit.entry.id, hit.key)
        slot = self.open.get(k)
        if slot is not None and hit.ts - slot.last_ts <= self.window_ns:
            self.fold(slot, hit.ts, hit.severity, hit.summary, hit.assets,
                      hit.evidence, hit.frames, hit.ring, hit.add)
            return
        if slot is not None:
            self._emit(slot)
            self._close(k)
        self._open(k, hit)

    def _open(self, k: tuple[str, tuple], hit: Hit) -> None:
        if len(self.open) >= self.max_open:
            for old in list(self.open)[: max(1, self.max_open // 10)]:
                self._emit(self.open[old])
                self._close(old)
        fid = finding_id(hit.entry.id, hit.key, hit.ts, self.scope)
        summary, assets = _made(hit.summary), self.assets_of(*hit.assets)
        first = Finding(id=fid, revision=1, kind=hit.entry.id, severity=hit.severity,
                        techniques=hit.entry.techniques, first_seen_ns=hit.ts,
                        last_seen_ns=hit.ts, count=hit.add, assets=assets, summary=summary)
        slot = self.open[k] = _Slot(first, hit, k)
        slot.summary, slot.assets = summary, assets
        self._pcap(slot, hit.ring)
        self._emit(slot, first=True)
        if hit.ts + self.window_ns < self.due:
            self.due = hit.ts + self.window_ns

    def fold(self, slot: _Slot, ts: int, severity: Severity, summary: Any,
             assets: Involved, evidence: AnyEvidence, frames: tuple[int, ...],
             ring: FrameRing | None, add: int) -> None:
        """One more occurrence of the open finding ``slot`` (see :meth:`current`)."""
        slot.more_frames(frames)
        self._fold(slot, ts, severity, summary, assets, evidence, ring, add)

    def fold_frame(self, slot: _Slot, ts: int, severity: Severity, summary: Any,
                   assets: Involved, evidence: AnyEvidence, frame: int,
                   ring: FrameRing | None, add: int) -> None:
        """:meth:`fold` for an occurrence seen in one frame (no tuple of frames to build:
        a detector that may fire on every answer calls this once :meth:`takes` said yes)."""
        slot.add_frame(frame)
        self._fold(slot, ts, severity, summary, assets, evidence, ring, add)

    def _fold(self, slot: _Slot, ts: int, severity: Severity, summary: Any,
              assets: Involved, evidence: AnyEvidence, ring: FrameRing | None,
              add: int) -> None:
        """:meth:`fold` once the occurrence's frames are kept."""
        slot.count += add
        if ts > slot.last_ts:
            slot.last_ts = ts
        slot.summary, slot.evidence = summary, evidence
        slot.involved, slot.assets = assets, None
        rose = self._severity(slot, severity)
        slot.dirty = True
        if rose:
            self._pcap(slot, ring)
        if rose or ts - slot.emitted_ts >= self.interval_ns:
            self._emit(slot)
        elif slot.emitted_ts + self.interval_ns < self.due:
            self.due = slot.emitted_ts + self.interval_ns

    def _severity(self, slot: _Slot, severity: Severity) -> bool:
        sev = slot.severity if slot.severity >= severity else severity
        esc = slot.escalate_at
        if esc and slot.count >= esc:
            sev = max(sev, Severity(min(severity + 1, Severity.CRITICAL)))
        if sev > slot.severity:
            slot.severity = sev
            return True
        return False

    def _pcap(self, slot: _Slot, ring: FrameRing | None) -> None:
        if slot.severity >= Severity.MEDIUM and ring:
            slot.pcap = pcap_slice(ring.items()) or slot.pcap

    def _emit(self, slot: _Slot, first: bool = False) -> None:
        if not slot.dirty:
            return
        slot.dirty = False
        slot.emitted_ts = slot.last_ts
        slot.summary = _made(slot.summary)
        if slot.assets is None:
            slot.assets = self.assets_of(*slot.involved)
        ev = slot.evidence
        flow, unit, fc, addresses, values, details = ev if isinstance(ev, tuple) else ev.raw()
        frames = slot.frames()
        evidence = Evidence.make(
            flow=_flow_ref(flow, self.flow_refs), unit=unit, function_code=fc,
            addresses=tuple(addresses)[:_MAX_VALUES], values=tuple(values)[:_MAX_VALUES],
            frames=() if self.live else frames, offsets=frames if self.live else (),
            pcap=slot.pcap, details=details)
        last = slot.last_ts
        agent_ns = self.clock(last) if self.clock is not None else last
        f = slot.finding
        if first:
            f = slot.finding = Finding(**{**_fields(f), "evidence": evidence,
                                          "times": Times(last, agent_ns)})
        else:
            f = slot.finding = f.revise(last_seen_ns=last, agent_ns=agent_ns,
                                        add=slot.count - f.count, severity=slot.severity,
                                        summary=slot.summary, assets=slot.assets,
                                        evidence=evidence)
        self.out.append(f)

    def flush(self, ts: int | None = None) -> None:
        """Emit held-back updates (all of them when ``ts`` is None); close idle findings."""
        if ts is not None and ts < self.due:
            return
        due = _NEVER
        interval, window = self.interval_ns, self.window_ns
        for slot in list(self.open.values()):
            if ts is None or ts - slot.emitted_ts >= interval:
                self._emit(slot)
            if ts is not None and ts - slot.last_ts > window:
                self._close(slot.k)
                continue
            if slot.dirty and slot.emitted_ts + interval < due:
                due = slot.emitted_ts + interval
            if slot.last_ts + window < due:
                due = slot.last_ts + window
        self.due = due

    def _close(self, k: tuple[str, tuple]) -> None:
        self.open.pop(k).live = False


def _made(x: Any) -> Any:
    """``x``, or what it makes when it is a function (a lazy summary)."""
    return x if isinstance(x, str) else x()


def _flow_ref(flow: Any, refs: dict[tuple, FlowRef]) -> FlowRef | None:
    """The evidence's reference to ``flow``: a value, shared by the revisions that show the
    same flow (``refs`` keeps them)."""
    if flow is None:
        return None
    k = (flow.client, flow.client_port, flow.server, flow.server_port, flow.vlan)
    got = refs.get(k)
    if got is None:
        if len(refs) >= _MAX_REFS:
            refs.clear()
        got = refs[k] = FlowRef(*k)
    return got


def _fields(f: Finding) -> dict[str, Any]:
    return {name: getattr(f, name) for name in Finding.__dataclass_fields__}
