"""One per collector process: knows the feed's head and wakes the subscribers when it moves.

Rule: the hub hands out *wake-ups*, never entries.  Every subscriber reads
the log itself, from its own cursor, with its own filter, one bounded page at
a time, in the hub's small thread pool.  So a slow subscriber only falls
behind (it reads its next page when gRPC has sent the last one), it never
holds memory for others or slows ingest; and a subscriber on replica A sees
replica B's commits because it reads the database, not this process.

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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import structlog
from sqlalchemy import Connection, Engine

from otsentry.collector.store import FeedWaiter, head, read
from otsentry.common.logging import get_logger

__all__ = ["FeedHub"]

T = TypeVar("T")


def log() -> structlog.typing.FilteringBoundLogger:
    """This module's logger, looked up per call so that it follows ``configure()``."""
    return get_logger("collector.feed")


class FeedHub:
    """The feed's head for this process, and the pool its subscribers read in.

    Args:
        engine: the store's engine.
        readers: threads reading for subscribers (the bound on concurrent feed reads).
        poll_s: safety-net poll of the head.
        recheck_s: PostgreSQL: the listener re-checks the head this often even without
            a notification (and notices a stop no later).
    """

    def __init__(self, engine: Engine, *, readers: int = 4, poll_s: float = 0.5,
                 recheck_s: float = 1.0) -> None:
        self.engine = engine
        self.head = 0
        self._poll_s, self._recheck_s = poll_s, recheck_s
        self._pool = ThreadPoolExecutor(readers, thread_name_prefix="feed-read")
        self._moved = asyncio.Event()
        self._poked = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None

    async def start(self) -> None:
        """Read the head and start following it."""
        self._loop = asyncio.get_running_loop()
        self.head = await self.run(self._read_head)
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

    def poke(self) -> None:
        """Something was committed; safe to call from any thread (the store's writer)."""
        if self._loop is not None and not self._stop.is_set():
            self._loop.call_soon_threadsafe(self._poked.set)

    async def run(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn(conn)`` in a read transaction in the pool (the bound on feed reads)."""
        def job() -> T:
            with read(self.engine) as conn:
                return fn(conn)
        return await asyncio.get_running_loop().run_in_executor(self._pool, job)

    async def wait(self, after: int, timeout: float) -> int:
        """Return the head as soon as it is above ``after``, or after ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                while self.head <= after:
                    await self._moved.wait()
        except TimeoutError:
            pass
        return self.head

    def _advance(self, value: int) -> None:
        if value > self.head:
            self.head = value
            moved, self._moved = self._moved, asyncio.Event()
            moved.set()

    @staticmethod
    def _read_head(conn: Connection) -> int:
        return head(conn)

    async def _follow(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self._poll_s):
                    await self._poked.wait()
            except TimeoutError:
                pass
            self._poked.clear()
            try:
                self._advance(await self.run(self._read_head))
            except Exception as exc:  # noqa: BLE001 - the database may be away; keep following
                log().warning("feed head unreadable; retrying", error=str(exc))

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
                    assert self._loop is not None
                    self._loop.call_soon_threadsafe(self._advance, now)
        finally:
            waiter.close()
