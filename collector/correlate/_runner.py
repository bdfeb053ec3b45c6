"""The collector's background jobs in ``serve``: correlation and retention, on every replica.

Every replica runs this loop; the job rows (``FOR UPDATE SKIP LOCKED``) make
sure one does each job at a time, so a replica that dies leaves its job to
the next one that asks.  Correlation runs after each local commit and every
``interval_s`` (commits by other replicas are picked up by that poll).
"""

from __future__ import annotations

import asyncio
import time

from otsentry.collector.correlate._job import correlate_once
from otsentry.collector.correlate._rules import Rules
from otsentry.collector.store import Store
from otsentry.common.logging import get_logger

__all__ = ["run_jobs", "RETENTION_EVERY_S"]

#: How often retention runs (it is cheap when there is nothing to prune).
RETENTION_EVERY_S = 3600.0


def log():  # type: ignore[no-untyped-def]
    """This module's logger, looked up per call so that it follows ``configure()``."""
    return get_logger("collector.jobs")


async def run_jobs(store: Store, rules: Rules, stop: asyncio.Event, *, wake: asyncio.Event,
                   retention_days: float | None, interval_s: float = 1.0,
                   limit: int = 500) -> None:
    """Run correlation and retention until ``stop`` is set; ``wake`` asks for a run now."""
    next_prune = 0.0
    while not stop.is_set():
        wake.clear()
        try:
            ran = await asyncio.to_thread(correlate_once, store.engine, rules, limit=limit)
            if ran.created:
                log().info("incidents opened", ids=ran.created, cursor=ran.cursor)
            if retention_days and time.monotonic() >= next_prune:
                next_prune = time.monotonic() + RETENTION_EVERY_S
                pruned = await asyncio.to_thread(store.prune, retention_days)
                if pruned.ran and pruned.findings:
                    log().info("retention pruned", findings=pruned.findings, feed=pruned.feed)
        except Exception as exc:  # noqa: BLE001 - the database may be away for a while; retry
            log().warning("background job failed; retrying", error=str(exc))
            ran = None
        if ran is not None and ran.entries >= limit:
            continue  # more is waiting
        waits = [asyncio.create_task(stop.wait()), asyncio.create_task(wake.wait())]
        await asyncio.wait(waits, timeout=interval_s, return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            w.cancel()
