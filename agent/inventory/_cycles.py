"""Polling cycles: per (client, server, unit, function, range), period, jitter and count.

Intervals between consecutive requests with the same key are folded into a
running mean and variance (Welford), so a cycle costs the same memory after a
minute or a year.  An interval longer than :data:`PAUSE_FACTOR` times the
current period (after :data:`WARMUP` intervals) is counted as a pause, not as
polling: a reconnect, a maintenance stop, or the gap between two captures read
one after another.  Requests older than the last one (captures read out of
order) are counted, not folded in.
"""

from __future__ import annotations

import math
from typing import Any, Final

__all__ = ["Cycle", "PAUSE_FACTOR", "WARMUP"]

PAUSE_FACTOR: Final = 10.0
WARMUP: Final = 4


class Cycle:
    """The polling statistics of one cycle key (times in ns of capture time)."""

    __slots__ = ("count", "first_ts", "last_ts", "n", "mean", "m2", "min", "max", "pauses",
                 "out_of_order")

    def __init__(self, ts: int) -> None:
        self.count = 1
        self.first_ts = self.last_ts = ts
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.min: int | None = None
        self.max: int | None = None
        self.pauses = 0
        self.out_of_order = 0

    def request(self, ts: int) -> None:
        """One more request of this cycle at capture time ``ts``."""
        self.count += 1
        iv = ts - self.last_ts
        if iv < 0:
            self.out_of_order += 1
            return
        self.last_ts = ts
        if self.n >= WARMUP and iv > PAUSE_FACTOR * self.mean:
            self.pauses += 1
            return
        self.n += 1
        delta = iv - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (iv - self.mean)
        if self.min is None or iv < self.min:
            self.min = iv
        if self.max is None or iv > self.max:
            self.max = iv

    @property
    def period_ns(self) -> float | None:
        """Mean interval between requests, or None before the second request."""
        return self.mean if self.n else None

    @property
    def jitter_ns(self) -> float | None:
        """Standard deviation of the intervals, or None before the third request."""
        return math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else None

    def to_state(self) -> list[Any]:
        return [self.count, self.first_ts, self.last_ts, self.n, self.mean, self.m2, self.min,
                self.max, self.pauses, self.out_of_order]

    @classmethod
    def from_state(cls, s: list[Any]) -> Cycle:
        c = cls(s[1])
        (c.count, c.first_ts, c.last_ts, c.n, c.mean, c.m2, c.min, c.max, c.pauses,
         c.out_of_order) = s
        return c

    def to_dict(self) -> dict[str, Any]:
        period, jitter = self.period_ns, self.jitter_ns
        return {"count": self.count, "first_seen": self.first_ts, "last_seen": self.last_ts,
                "period_s": None if period is None else round(period / 1e9, 6),
                "jitter_s": None if jitter is None else round(jitter / 1e9, 6),
                "min_interval_s": None if self.min is None else round(self.min / 1e9, 6),
                "max_interval_s": None if self.max is None else round(self.max / 1e9, 6),
                "pauses": self.pauses, "out_of_order": self.out_of_order}
