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
from otsentry.agent.detect._state import Bucket
from otsentry.common.finding import AssetRef, Evidence, Finding, Severity, Times, finding_id

__all__ = ["Aggregator", "Hit"]

_FIRST_FRAMES = 8
_LAST_FRAMES = 24
_MAX_VALUES = 64


class Hit:
    """What a detector saw once: the parts of a finding that come from one occurrence.

    ``summary`` and ``assets`` may be functions making them: an update folded into an
    open finding keeps only the latest, and it is made when a revision is emitted.
    """

    __slots__ = ("entry", "key", "ts", "severity", "summary", "assets", "evidence", "frames",
                 "pcap", "add")

    def __init__(self, entry: Entry, key: tuple, ts: int, severity: Severity, summary: Any,
                 assets: Any, evidence: dict[str, Any], frames: tuple[int, ...],
                 pcap: Callable[[], bytes] | None, add: int) -> None:
        self.entry, self.key, self.ts, self.severity = entry, key, ts, severity
        self.summary, self.assets, self.evidence = summary, assets, evidence
        self.frames, self.pcap, self.add = frames, pcap, add


class _Slot:
    """Mutable aggregation state of one open finding."""

    __slots__ = ("finding", "count", "last_ts", "severity", "summary", "assets", "evidence",
                 "first_frames", "last_frames", "pcap", "emitted_ts", "dirty")

    def __init__(self, finding: Finding, hit: Hit) -> None:
        self.finding = finding
        self.count = hit.add
        self.last_ts = hit.ts
        self.severity = hit.severity
        self.summary, self.assets, self.evidence = hit.summary, hit.assets, hit.evidence
        self.first_frames = list(hit.frames[:_FIRST_FRAMES])
        self.last_frames = list(hit.frames[_FIRST_FRAMES:])[-_LAST_FRAMES:]
        self.pcap = b""
        self.emitted_ts = hit.ts
        self.dirty = True


class Aggregator:
    """Open findings per (detector, key); see the module docstring."""

    def __init__(self, window_ns: int, revision_interval_ns: int, max_new: int, max_open: int,
                 scope: str, agent_clock: Callable[[int], int], live: bool) -> None:
        self.window_ns = window_ns
        self.interval_ns = revision_interval_ns
        self.max_new = max_new
        self.max_open = max_open
        self.scope = scope
        self.clock = agent_clock
        self.live = live
        self.open: dict[tuple[str, tuple], _Slot] = {}
        self.new_per_kind: dict[str, Bucket] = {}
        self.dropped: dict[str, int] = {}
        self.out: list[Finding] = []

    def admit(self, kind: str, key: tuple, ts: int, add: int) -> bool:
        """Whether a hit of ``kind`` for ``key`` at ``ts`` goes on to :meth:`hit`.

        False when it would open a new finding beyond ``max_new`` per window: it is
        counted in :attr:`dropped` and nothing else is built for it, so a flood of hits
        costs a lookup each, not a finding each.
        """
        slot = self.open.get((kind, key))
        if slot is not None and ts - slot.last_ts <= self.window_ns:
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
            self._update(slot, hit)
            return
        if slot is not None:
            self._emit(slot)
            del self.open[k]
        self._open(k, hit)

    def _open(self, k: tuple[str, tuple], hit: Hit) -> None:
        if len(self.open) >= self.max_open:
            for old in list(self.open)[: max(1, self.max_open // 10)]:
                self._emit(self.open.pop(old))
        fid = finding_id(hit.entry.id, hit.key, hit.ts, self.scope)
        hit.summary, hit.assets = _made(hit.summary), _made(hit.assets)
        first = Finding(id=fid, revision=1, kind=hit.entry.id, severity=hit.severity,
                        techniques=hit.entry.techniques, first_seen_ns=hit.ts,
                        last_seen_ns=hit.ts, count=hit.add, assets=hit.assets,
                        summary=hit.summary)
        slot = self.open[k] = _Slot(first, hit)
        self._pcap(slot, hit)
        self._emit(slot, first=True)

    def _update(self, slot: _Slot, hit: Hit) -> None:
        slot.count += hit.add
        slot.last_ts = max(slot.last_ts, hit.ts)
        slot.summary, slot.assets, slot.evidence = hit.summary, hit.assets, hit.evidence
        room = _FIRST_FRAMES - len(slot.first_frames)
        frames = list(hit.frames)
        if room > 0:
            slot.first_frames += frames[:room]
            frames = frames[room:]
        if frames:
            slot.last_frames = (slot.last_frames + frames)[-_LAST_FRAMES:]
        rose = self._severity(slot, hit)
        slot.dirty = True
        if rose:
            self._pcap(slot, hit)
        if rose or hit.ts - slot.emitted_ts >= self.interval_ns:
            self._emit(slot)

    def _severity(self, slot: _Slot, hit: Hit) -> bool:
        sev = max(slot.severity, hit.severity)
        esc = hit.entry.escalate_at
        if esc and slot.count >= esc:
            sev = max(sev, Severity(min(hit.severity + 1, Severity.CRITICAL)))
        rose = sev > slot.severity
        slot.severity = sev
        return rose

    def _pcap(self, slot: _Slot, hit: Hit) -> None:
        if slot.severity >= Severity.MEDIUM and hit.pcap is not None:
            slot.pcap = hit.pcap() or slot.pcap

    def _emit(self, slot: _Slot, first: bool = False) -> None:
        if not slot.dirty:
            return
        slot.dirty = False
        slot.emitted_ts = slot.last_ts
        slot.summary, slot.assets = _made(slot.summary), _made(slot.assets)
        ev = slot.evidence
        frames = tuple(slot.first_frames + slot.last_frames)
        evidence = Evidence.make(
            flow=ev.get("flow"), unit=ev.get("unit"), function_code=ev.get("fc"),
            addresses=tuple(ev.get("addresses", ()))[:_MAX_VALUES],
            values=tuple(ev.get("values", ()))[:_MAX_VALUES],
            frames=() if self.live else frames, offsets=frames if self.live else (),
            pcap=slot.pcap, details=ev.get("details"))
        times = Times(capture_ns=slot.last_ts, agent_ns=self.clock(slot.last_ts))
        f = slot.finding
        if first:
            f = slot.finding = Finding(**{**_fields(f), "evidence": evidence, "times": times})
        else:
            f = slot.finding = f.revise(last_seen_ns=slot.last_ts, agent_ns=times.agent_ns,
                                        add=slot.count - f.count, severity=slot.severity,
                                        summary=slot.summary, assets=slot.assets,
                                        evidence=evidence)
        self.out.append(f)

    def flush(self, ts: int | None = None) -> None:
        """Emit held-back updates (all of them when ``ts`` is None); close idle findings."""
        for k, slot in list(self.open.items()):
            if ts is None or ts - slot.emitted_ts >= self.interval_ns:
                self._emit(slot)
            if ts is not None and ts - slot.last_ts > self.window_ns:
                del self.open[k]


def _made(x: Any) -> Any:
    """``x``, or what it makes when it is a function (a lazy summary or asset list)."""
    return x if isinstance(x, (str, tuple)) else x()


def _fields(f: Finding) -> dict[str, Any]:
    return {name: getattr(f, name) for name in Finding.__dataclass_fields__}
