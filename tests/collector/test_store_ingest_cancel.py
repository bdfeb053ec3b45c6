"""A batch whose stream went away mid-commit never stops the store's writer."""

from __future__ import annotations

import concurrent.futures

from otsentry.collector.store._ingest import _settle


def test_cancelled_future_is_left_alone() -> None:
    """Settling a future its waiter cancelled is a no-op, not an error that kills the writer."""
    fut: concurrent.futures.Future[int] = concurrent.futures.Future()
    fut.cancel()
    _settle(fut, result=5)
    _settle(fut, exc=RuntimeError("late"))
    assert fut.cancelled()


def test_live_future_gets_its_result() -> None:
    """A waiting batch gets its high-water mark."""
    fut: concurrent.futures.Future[int] = concurrent.futures.Future()
    _settle(fut, result=7)
    assert fut.result() == 7
