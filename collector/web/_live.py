"""Live updates: one poller of the feed's head per process, one SSE stream per open page.

:class:`FeedHub` reads the head of the commit-ordered feed log every
``poll_s`` (one cheap query however many pages are open) and wakes the
streams; each stream then reads the entries past its own cursor with its own
filter.  Cursors follow commit order (see ``store/_feed.py``), so a stream
that starts from the cursor its page was rendered at misses nothing and
repeats nothing; after a reconnect the browser sends ``Last-Event-ID`` and
the stream resumes there.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from sqlalchemy import Engine

from otsentry.collector.store import FeedFilter, head, read, read_feed

__all__ = ["FeedHub", "sse_findings"]


class FeedHub:
    """Wakes waiting streams when the feed grows.

    Args:
        engine: the store's engine.
        poll_s: how often the head is read.
    """

    def __init__(self, engine: Engine, poll_s: float = 0.5) -> None:
        self.engine, self.poll_s = engine, poll_s
        self.head = 0
        self._changed = asyncio.Condition()

    def _read_head(self) -> int:
        with read(self.engine) as conn:
            return head(conn)

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            now = await asyncio.to_thread(self._read_head)
            if now != self.head:
                async with self._changed:
                    self.head = now
                    self._changed.notify_all()
            await asyncio.sleep(self.poll_s)

    async def wait(self, after: int, timeout: float) -> bool:
        """Whether the head passed ``after`` within ``timeout`` seconds."""
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: self.head > after), timeout)
            except TimeoutError:
                return False
        return True


def _read_after(engine: Engine, after: int, filters: FeedFilter, limit: int) -> tuple[list, int]:
    with read(engine) as conn:
        seen = head(conn)
        return read_feed(conn, after, limit, filters), seen


async def sse_findings(hub: FeedHub, after: int, filters: FeedFilter,
                       render: Callable[[dict[str, Any]], dict[str, Any]],
                       keepalive_s: float = 15.0, limit: int = 200) -> AsyncIterator[str]:
    """Server-sent events for the findings past ``after`` that match ``filters``.

    Each event is ``event: finding`` with ``id:`` the feed cursor and as data
    the JSON of ``render(row)``; a comment line keeps idle connections open.
    """
    while True:
        if not await hub.wait(after, keepalive_s):
            yield ": keep-alive\n\n"
            continue
        entries, seen = await asyncio.to_thread(_read_after, hub.engine, after, filters, limit)
        for e in entries:
            if e.body:  # a finding pruned by retention since has no body
                yield f"id: {e.cursor}\nevent: finding\ndata: {json.dumps(render(e.body))}\n\n"
        # Every matching entry up to the head read with them was returned (commit order),
        # unless the page was full: then go on from the last one.
        after = entries[-1].cursor if len(entries) == limit else max(seen, after,
                                                                     *(e.cursor for e in entries))
