"""Bounded per-key state for detectors.

Rule (DESIGN principle 4): whatever an attacker sends, detector memory stays
bounded.  Every per-key table is a :class:`BoundedMap`: a dict with a cap that
evicts its least recently created keys and counts the evictions, which the
engine reports as a finding (nothing is lost silently).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["BoundedMap", "PairState", "Poll", "Window", "Bucket", "signature"]

K = TypeVar("K")
V = TypeVar("V")


class BoundedMap(dict, Generic[K, V]):  # type: ignore[type-arg]
    """A dict holding at most ``cap`` keys; inserting into a full map drops the oldest tenth.

    Attributes:
        cap: the bound.
        evicted: keys dropped so far.
        name: what the map holds, for the eviction report.
    """

    __slots__ = ("cap", "evicted", "name", "marks")

    def __init__(self, cap: int, name: str, marks: bool = False) -> None:
        super().__init__()
        self.cap = cap
        self.evicted = 0
        self.name = name
        #: evicted values are marked ``dead`` (for values others hold references to)
        self.marks = marks

    def get_or_make(self, key: K, make: Callable[[], V]) -> V:
        """The value of ``key``, created with ``make()`` (evicting when full) if missing."""
        value = self.get(key)
        if value is None:
            if len(self) >= self.cap:
                self._evict()
            value = self[key] = make()
        return value

    def put_new(self, key: K, value: V) -> V:
        """Insert a key that is not in the map (evicting when full), as :meth:`get_or_make`.

        The hot paths use this rather than ``get_or_make`` with a closure: a closure in a
        compiled function costs an allocation on every call, not only on a miss.
        """
        if len(self) >= self.cap:
            self._evict()
        self[key] = value
        return value

    def _evict(self) -> None:
        drop = max(1, self.cap // 10)
        for key in list(self)[:drop]:
            value = self.pop(key)
            if self.marks:
                value.dead = True
        self.evicted += drop


class PairState:
    """What detection keeps per (client, server), held by the engine's ``pairs`` table and
    cached on every flow of the pair (``Flow.det``), so a transaction finds it with no
    lookup.  Evicted from the table, it is marked ``dead`` and the flows look it up again.

    Attributes:
        polls: successful reads (function codes 1 to 4) the client made of the server.
        scans, rates: the :class:`Scans` and :class:`Rates` families' state, once made.
        learned: what the baseline says about the pair, per unit and function (the
            :class:`Learned` family's cache, made again for each new baseline).
        signatures: the pair's :class:`Poll` per request signature (see
            :meth:`Engine.poll`), made again for each new baseline.
    """

    __slots__ = ("client", "server", "polls", "scans", "rates", "learned", "signatures",
                 "last_request", "last_poll", "hosts_at", "dead")

    def __init__(self, client: str, server: str) -> None:
        self.client, self.server = client, server
        self.polls = 0
        self.scans: Any = None
        self.rates: Any = None
        self.learned: Any = None
        self.signatures: dict[int, Poll] | None = None
        # the request whose Poll was found last, and that Poll (its answer comes next)
        self.last_request: Any = None
        self.last_poll: Poll | None = None
        #: the engine's ``hosts`` table had evicted this many keys when the client was last
        #: found in it (-1: not yet looked for)
        self.hosts_at = -1
        self.dead = False


def signature(unit: int, fc: int, first: int, last: int) -> int:
    """A request signature (unit, function code, first and last address) as one int."""
    return ((unit << 8 | fc) << 17 | first) << 17 | last


class Poll:
    """What protection keeps per request signature (unit, function code, address range) of
    a pair: a poll repeats the same request, so its transactions find, with one lookup,
    what the families worked out for the signature the first time.

    Attributes:
        first, last: the signature's address range.
        known: what the baseline says about the pair, unit and function (``Learned``).
        inside: whether a learned range holds the signature's (None: not checked yet).
        cycle: the learned polling cycle it belongs to, if any.
        block: the register block its answers fill (``ProcessValues``), for answers of
            ``n`` registers.
    """

    __slots__ = ("first", "last", "known", "inside", "cycle", "block", "n")

    def __init__(self, first: int, last: int) -> None:
        self.first, self.last = first, last
        self.known: Any = None
        self.inside: bool | None = None
        self.cycle: Any = None
        self.block: Any = None
        self.n = 0


class Window:
    """Distinct items seen in a sliding window of capture time (bounded).

    ``add(ts, item)`` records an occurrence and returns how many distinct items
    were seen in the last ``span_ns``.  At most ``cap`` items are kept, so the
    count saturates at ``cap``; when full, the item seen first goes.  A repeat of the
    latest item (a steady poll) only moves a time: its entry is brought up to date when
    another item comes or before anything expires.
    """

    __slots__ = ("span_ns", "cap", "items", "oldest", "last", "last_ts", "held")

    def __init__(self, span_ns: int, cap: int = 1024) -> None:
        self.span_ns = span_ns
        self.cap = cap
        self.items: dict[Any, int] = {}  # item -> time last seen, in order first seen
        self.oldest = 0
        self.last: Any = _NOTHING  # the latest item added (in items), or nothing
        self.last_ts = 0  # when it was last seen, while ``held``
        self.held = False  # items[last] is older than last_ts

    def add(self, ts: int, item: Any) -> int:
        """Record ``item`` at ``ts``; return the number of distinct items in the window."""
        items = self.items
        if ts - self.oldest > self.span_ns and items:
            self._settle()
            limit = ts - self.span_ns
            for old in [i for i, t in items.items() if t < limit]:
                del items[old]
            self.oldest = min(items.values(), default=ts)
            self.last = _NOTHING  # it may have expired
        elif item == self.last:
            self.last_ts, self.held = ts, True
            return len(items)
        self._settle()
        # One store whether the item is new or not (a repeat keeps its place); a new one
        # may then push out the item seen first.
        before = len(items)
        items[item] = ts
        n = len(items)
        if n > before:
            if n > self.cap:
                del items[next(iter(items))]
                n -= 1
            elif not before:
                self.oldest = ts
        self.last = item
        return n

    def _settle(self) -> None:
        if self.held:
            self.items[self.last] = self.last_ts
            self.held = False


_NOTHING: Any = object()


class Bucket:
    """Occurrences in tumbling windows of capture time: cheap rate counting.

    ``hit(ts)`` returns the count in the current window, which restarts when
    ``span_ns`` has passed since it began.  A burst that straddles two windows is
    seen at half strength at worst; thresholds are set with that in mind.
    """

    __slots__ = ("span_ns", "start", "n", "total")

    def __init__(self, span_ns: int) -> None:
        self.span_ns = span_ns
        self.start = 0
        self.n = 0
        self.total = 0

    def hit(self, ts: int, add: int = 1) -> int:
        """Count ``add`` occurrences at ``ts``; return the count of the current window."""
        if ts - self.start >= self.span_ns:
            self.start = ts
            self.n = 0
        self.n += add
        return self.n
