"""The learned baseline: who polls whom, with which functions, ranges, periods and values.

Learn, then protect.  A :class:`Learner` watches transactions for a while
(``otsentry-agent learn``, or the first minutes of ``detect --learn``) and
makes a :class:`Baseline`; the ``baseline.*`` and ``process.*`` detectors
compare later traffic with it.  The baseline is a JSON file an operator can
read and edit (allow a write: add its function and range to a pair; widen a
register's envelope); see :mod:`._baseline_file`.

Keys:
- pair: (client, server, unit, function) -> address ranges, request count;
- cycle: (client, server, unit, function, first, last) -> polling period, jitter;
- latency: (server, unit, function) -> median and 95th percentile response time;
- rate: (client, server) -> peak requests in one second;
- register: (server, unit, table, address) -> envelope (min, max, largest step,
  largest rate of change per second).

Memory is bounded: every table of the learner is a :class:`BoundedMap`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Baseline", "Envelope", "Cycle", "add_range", "covered"]


def add_range(ranges: list[list[int]], lo: int, hi: int) -> None:
    """Insert [lo, hi] into sorted disjoint ``ranges``, merging overlapping or adjacent ones."""
    out: list[list[int]] = []
    for r in ranges:
        if r[1] + 1 < lo or hi + 1 < r[0]:
            out.append(r)
        else:
            lo, hi = min(lo, r[0]), max(hi, r[1])
    out.append([lo, hi])
    out.sort()
    ranges[:] = out


def covered(ranges: list[list[int]], lo: int, hi: int) -> bool:
    """True when [lo, hi] lies inside one of ``ranges``."""
    for r in ranges:
        if r[0] <= lo and hi <= r[1]:
            return True
    return False


@dataclass(slots=True)
class Envelope:
    """What one register did while learning (values are unsigned 16-bit)."""

    min: int
    max: int
    max_step: int = 0
    max_rate: float = 0.0
    count: int = 1


@dataclass(frozen=True, slots=True)
class Cycle:
    """A polling cycle: the same request repeated every ``period_ns`` (+- ``jitter_ns``)."""

    period_ns: int
    jitter_ns: int
    count: int


@dataclass(slots=True)
class Baseline:
    """A learned (or edited) baseline; see the module docstring for the keys."""

    pairs: dict[tuple[str, str, int, int], list[list[int]]] = field(default_factory=dict)
    counts: dict[tuple[str, str, int, int], int] = field(default_factory=dict)
    cycles: dict[tuple[str, str, int, int, int, int], Cycle] = field(default_factory=dict)
    latency: dict[tuple[str, int, int], tuple[int, int, int]] = field(default_factory=dict)
    rates: dict[tuple[str, str], int] = field(default_factory=dict)
    registers: dict[tuple[str, int, str, int], Envelope] = field(default_factory=dict)
    first_ns: int = 0
    last_ns: int = 0
    transactions: int = 0
    masters: set[tuple[str, str]] = field(default_factory=set)
    hosts: set[str] = field(default_factory=set)
    clients: set[str] = field(default_factory=set)
    units: set[tuple[str, str, int]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.index()

    def index(self) -> None:
        """Rebuild the lookup sets from ``pairs`` (after loading or editing)."""
        self.masters = {(c, s) for c, s, _u, _f in self.pairs}
        self.clients = {c for c, _s in self.masters}
        self.hosts = self.clients | {s for _c, s in self.masters}
        self.units = {(c, s, u) for c, s, u, _f in self.pairs}

    def is_master_of(self, client: str, server: str) -> bool:
        """True when ``client`` polled ``server`` while learning."""
        return (client, server) in self.masters

    def knows_host(self, ip: str) -> bool:
        """True when ``ip`` took part in any learned pair."""
        return ip in self.hosts
