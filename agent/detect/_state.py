"""Bounded per-key state for detectors.

Rule (DESIGN principle 4): whatever an attacker sends, detector memory stays
bounded.  Every per-key table is a :class:`BoundedMap`: a dict with a cap that
evicts its least recently created keys and counts the evictions, which the
engine reports as a finding (nothing is lost silently).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["BoundedMap", "PairState", "Poll", "Seen", "Window", "Bucket", "signature"]

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
        seen: where ``Scans`` keeps when the signature was last seen (a :class:`Seen`).
    """

    __slots__ = ("first", "last", "known", "inside", "cycle", "block", "n", "seen")

    def __init__(self, first: int, last: int) -> None:
        self.first, self.last = first, last
        self.known: Any = None
        self.inside: bool | None = None
        self.cycle: Any = None
        self.block: Any = None
        self.n = 0
        self.seen: Seen | None = None


class Seen:
    """When some items of one or more :class:`Window` were last seen together, kept outside
    the windows (see :attr:`Window.sources`).

    ``items[k]`` is the item in the window it serves as its ``k``-th source; ``gens[k]``
    the generation of that window in which the item was last known to be in it (-1: not
    yet).  ``live`` is False once the windows no longer read it.
    """

    __slots__ = ("gens", "items", "live", "ts")

    def __init__(self, items: tuple[Any, ...]) -> None:
        self.items = items
        self.ts = 0
        self.gens = [-1] * len(items)
        self.live = True


class Window:
    """Distinct items seen in a sliding window of capture time (bounded).

    ``add(ts, item)`` records an occurrence and returns how many distinct items
    were seen in the last ``span_ns``.  At most ``cap`` items are kept, so the
    count saturates at ``cap``; when full, the item seen first goes.  A repeat of the
    latest item (a steady poll) only moves a time: its entry is brought up to date when
    another item comes or before anything expires.

    Items expire in passes, when the oldest time kept is more than ``span_ns`` old.  A
    caller that sees the same items again and again can keep their times itself, in a
    :class:`Seen` listed in ``sources`` (``source`` says which of its items is this
    window's): a pass first brings every time kept up to date from them.  ``gen`` counts
    the passes and evictions that dropped items: while it is what a source last saw, the
    source's item is still in the window, and :meth:`count` stands for :meth:`add`.
    """

    __slots__ = ("span_ns", "cap", "items", "oldest", "last", "last_ts", "held", "gen",
                 "sources", "source")

    def __init__(self, span_ns: int, cap: int = 1024, sources: list[Seen] | None = None,
                 source: int = 0) -> None:
        self.span_ns = span_ns
        self.cap = cap
        self.items: dict[Any, int] = {}  # item -> time last seen, in order first seen
        self.oldest = 0
        self.last: Any = _NOTHING  # the latest item added (in items), or nothing
        self.last_ts = 0  # when it was last seen, while ``held``
        self.held = False  # items[last] is older than last_ts
        self.gen = 0
        self.sources: list[Seen] = sources if sources is not None else []
        self.source = source

    def add(self, ts: int, item: Any) -> int:
        """Record ``item`` at ``ts``; return the number of distinct items in the window."""
        items = self.items
        if ts - self.oldest > self.span_ns and items:
            self.expire(ts)
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
                self.gen += 1
                n -= 1
            elif not before:
                self.oldest = ts
        self.last = item
        return n

    def count(self, ts: int, seen: Seen) -> int:
        """:meth:`add` of ``seen``'s item at ``ts``, for a source of this window: with no
        store while the item is known to be in the window (``seen.ts`` is set after)."""
        if ts - self.oldest > self.span_ns and self.items:
            self.expire(ts)
        k = self.source
        if seen.gens[k] == self.gen:
            return len(self.items)
        n = self.add(ts, seen.items[k])
        seen.gens[k] = self.gen
        return n

    def expire(self, ts: int) -> None:
        """A pass: drop the items not seen in the last ``span_ns`` before ``ts``."""
        items = self.items
        self._settle()
        self.fold()
        limit = ts - self.span_ns
        old = [i for i, t in items.items() if t < limit]
        for i in old:
            del items[i]
        if old:
            self.gen += 1
        self.oldest = min(items.values(), default=ts)
        self.last = _NOTHING  # it may have expired

    def fold(self) -> None:
        """Bring the times of the items still kept up to date from the sources."""
        items, k = self.items, self.source
        for seen in self.sources:
            item = seen.items[k]
            t = items.get(item)
            if t is not None and t < seen.ts:
                items[item] = seen.ts

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
