"""One per collector process: follows the feed's head, keeps its newest entries, wakes subscribers.

Rule: subscribers at the head share one read of the log per commit.  When the
head moves, the hub reads the new entries once (in a thread of its own),
turns each into its wire frame once (:func:`~._query.event_frame`) and keeps
them in a bounded cache of the newest entries; a subscriber whose cursor is
inside the cache filters it in memory (:func:`~otsentry.collector.store.matches`,
the same answer as the SQL filter) and sends the shared frames.  Subscribers
with the same cursor and filter share even that work (a memo per head).  A
subscriber behind the cache reads the log itself, from its own cursor, one
bounded page at a time, in the hub's small reader pool, until it reaches the
cache.  So a slow subscriber only falls behind (it reads its next page when
gRPC has sent the last one) and holds one page at most; it never holds
memory for others or slows ingest; and a subscriber on replica A sees
replica B's commits because the hub reads the database, not this process.

The head moves when:

* this process commits (``poke``, wired to the store's ``on_commit``);
* another replica commits (PostgreSQL: :class:`FeedWaiter` LISTENs in a thread
  of its own and re-checks the head after every wake-up or reconnect);
* anything else commits, e.g. the correlator's incidents: the head is polled
  every ``poll_s`` as a safety net (SQLite's only cross-process signal).
"""

from __future__ import annotations

import asyncio
import threading
from bisect import bisect_right
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import structlog
from sqlalchemy import Connection, Engine

from otsentry.collector.feed._query import entry_to_event, event_frame
from otsentry.collector.store import (EVERYTHING, FeedEntry, FeedFilter, FeedWaiter, head, matches,
                                      read, read_feed)
from otsentry.common.logging import get_logger

__all__ = ["FeedHub", "Slice"]

T = TypeVar("T")


def log() -> structlog.typing.FilteringBoundLogger:
    """This module's logger, looked up per call so that it follows ``configure()``."""
    return get_logger("collector.feed")


@dataclass(frozen=True, slots=True)
class Slice:
    """What a subscriber sends next.

    Attributes:
        frames: the matching events' wire frames (:func:`~._query.event_frame`), oldest first.
        last: the cursor of the last of them (unchanged if none).
        scanned: every entry up to this cursor was looked at: the next read starts here.
        head: the newest cursor the read knew of.
    """

    frames: list[bytes]
    last: int
    scanned: int
    head: int


class _Item:
    """A cached entry and its frames, made at most once each: [without pcap, with pcap].

    ``size`` counts both frames (the second one at most the entry's body more).
    """

    __slots__ = ("entry", "frames", "size")

    def __init__(self, entry: FeedEntry) -> None:
        self.entry = entry
        self.frames: list[bytes | None] = [event_frame(entry_to_event(entry, pcap=False)), None]
        body = entry.body.get("body") if entry.kind == "finding" else None
        extra = len(body) if body else 0
        self.size = 2 * (len(self.frames[0]) + extra) + 200  # type: ignore[arg-type]

    def frame(self, pcap: bool) -> bytes:
        got = self.frames[pcap]
        if got is None:
            got = self.frames[pcap] = event_frame(entry_to_event(self.entry, pcap=True))
        return got


def _read_new(after: int, most: int, conn: Connection) -> tuple[int, int, list[_Item]]:
    """(start, head, items): every entry in ``(start, head]``, start = ``after`` unless that
    is more than ``most`` entries behind the head."""
    top = head(conn)
    start = after if top - after <= most else top - most
    items: list[_Item] = []
    cursor = start
    while cursor < top:
        entries = [e for e in read_feed(conn, cursor, 1000) if e.cursor <= top]
        items.extend(_Item(e) for e in entries)
        if not entries:
            break
        cursor = entries[-1].cursor
    return start, top, items


class FeedHub:
    """The feed's head for this process, a cache of its newest entries, and the reader pool.

    Args:
        engine: the store's engine.
        readers: threads reading for subscribers behind the cache (the bound on their reads).
        poll_s: safety-net poll of the head.
        recheck_s: PostgreSQL: the listener re-checks the head this often even without
            a notification (and notices a stop no later).
        cache_entries, cache_bytes: bounds of the cache of the newest entries; subscribers
            further behind read the database.
    """

    def __init__(self, engine: Engine, *, readers: int = 4, poll_s: float = 0.5,
                 recheck_s: float = 1.0, cache_entries: int = 20_000,
                 cache_bytes: int = 64 << 20) -> None:
        self.engine = engine
        self.head = 0
        self._poll_s, self._recheck_s = poll_s, recheck_s
        self._pool = ThreadPoolExecutor(readers, thread_name_prefix="feed-read")
        self._head_pool = ThreadPoolExecutor(1, thread_name_prefix="feed-head")
        self._max_entries, self._max_bytes = cache_entries, cache_bytes
        # The cache holds every entry with a cursor in (base, head].
        self._base, self._cursors, self._items, self._bytes = 0, [], [], 0
        self._memo: dict[tuple, tuple[list[bytes], int, int]] = {}
        self._moved = asyncio.Event()
        self._poked = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None

    async def start(self) -> None:
        """Read the head and start following it."""
        self._loop = asyncio.get_running_loop()
        self.head = self._base = await self.run(head)
        self._task = asyncio.create_task(self._follow())
        if self.engine.dialect.name == "postgresql":
            self._listener = threading.Thread(target=self._listen, name="feed-listen", daemon=True)
            self._listener.start()

    async def stop(self) -> None:
        """Stop following; subscribers still waiting see no more wake-ups."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._listener is not None:
            await asyncio.to_thread(self._listener.join, self._recheck_s + 5)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._head_pool.shutdown(wait=False, cancel_futures=True)

    def poke(self) -> None:
        """Something was committed; safe to call from any thread (the store's writer)."""
        if self._loop is not None and not self._stop.is_set():
            self._loop.call_soon_threadsafe(self._poked.set)

    async def run(self, fn: Callable[[Connection], T], *,
                  pool: ThreadPoolExecutor | None = None) -> T:
        """Run ``fn(conn)`` in a read transaction in the pool (the bound on feed reads)."""
        def job() -> T:
            with read(self.engine) as conn:
                return fn(conn)
        return await asyncio.get_running_loop().run_in_executor(pool or self._pool, job)

    async def wait(self, after: int, timeout: float) -> int:
        """Return the head as soon as it is above ``after``, or after ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                while self.head <= after:
                    await self._moved.wait()
        except TimeoutError:
            pass
        return self.head

    def take(self, after: int, filters: FeedFilter, *, pcap: bool, limit: int,
             end: int | None = None) -> Slice | None:
        """The next matching events after ``after`` (at most ``limit``, none above ``end``)
        from the cache, or None when ``after`` is behind it: read the database then."""
        if after < self._base:
            return None
        hi = self.head if end is None else min(self.head, end)
        if after >= hi:
            return Slice([], after, after, self.head)
        key = (after, hi, filters, pcap, limit)
        got = self._memo.get(key)
        if got is None:
            if len(self._memo) >= 4096:
                self._memo.clear()
            got = self._memo[key] = self._scan(after, hi, filters, pcap, limit)
        frames, last, scanned = got
        return Slice(frames, last or after, scanned, self.head)

    def _scan(self, after: int, hi: int, filters: FeedFilter, pcap: bool,
              limit: int) -> tuple[list[bytes], int, int]:
        frames: list[bytes] = []
        last, every = 0, filters == EVERYTHING
        for k in range(bisect_right(self._cursors, after), bisect_right(self._cursors, hi)):
            item = self._items[k]
            if every or matches(filters, item.entry):
                frames.append(item.frame(pcap))
                last = item.entry.cursor
                if len(frames) == limit:
                    return frames, last, last
        return frames, last, hi

    def _extend(self, start: int, top: int, items: list[_Item]) -> None:
        """Add what :func:`_read_new` read, drop the oldest beyond the bounds, wake subscribers."""
        if start != self.head:  # too far behind to keep what is cached: start over
            self._base, self._cursors, self._items, self._bytes = start, [], [], 0
        self._cursors.extend(i.entry.cursor for i in items)
        self._items.extend(items)
        self._bytes += sum(i.size for i in items)
        drop = 0
        while drop < len(self._items) and (len(self._items) - drop > self._max_entries
                                           or self._bytes > self._max_bytes):
            self._bytes -= self._items[drop].size
            drop += 1
        if drop:
            self._base = self._cursors[drop - 1]
            del self._cursors[:drop], self._items[:drop]
        self._memo.clear()
        if top > self.head:
            self.head = top
            moved, self._moved = self._moved, asyncio.Event()
            moved.set()

    async def _follow(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self._poll_s):
                    await self._poked.wait()
            except TimeoutError:
                pass
            self._poked.clear()
            try:
                got = await self.run(partial(_read_new, self.head, self._max_entries),
                                     pool=self._head_pool)
            except Exception as exc:  # noqa: BLE001 - the database may be away; keep following
                log().warning("feed head unreadable; retrying", error=str(exc))
                continue
            if got[1] > self.head:
                self._extend(*got)

    def _listen(self) -> None:
        waiter, seen = FeedWaiter(self.engine, poll_s=self._poll_s), self.head
        try:
            while not self._stop.is_set():
                try:
                    now = waiter.wait(seen, timeout=self._recheck_s)
                except Exception as exc:  # noqa: BLE001 - database away: FeedWaiter reconnects
                    log().warning("feed listener failed; retrying", error=str(exc))
                    waiter.close()
                    self._stop.wait(self._poll_s)
                    continue
                if now > seen:
                    seen = now
                    self.poke()
        finally:
            waiter.close()
