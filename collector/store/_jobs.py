"""Background jobs shared by replicas: one row per job, taken with FOR UPDATE SKIP LOCKED.

Whichever replica takes a job's row does that job's work in the same
transaction, and moves the job's cursor in it; the others skip it at once
instead of waiting.  So a job runs at most once at a time across replicas, and
work done (the cursor moved) commits with its results or not at all.  On
SQLite (one process) ``BEGIN IMMEDIATE`` gives the same exclusion.

Retention (DESIGN principle 1: windows and retention use ingest time): a
finding whose latest change was ingested more than ``days`` ago is pruned,
unless it belongs to an incident; incidents are kept.  A replayed old capture
is ingested now, so it is not pruned on arrival.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from otsentry.collector.store import _schema as S
from otsentry.collector.store._engine import write
from sqlalchemy import Connection, Engine, delete, select, update

__all__ = ["NS_PER_DAY", "Pruned", "job", "prune", "set_cursor"]

NS_PER_DAY = 86_400 * 1_000_000_000
_HOLDER = f"{socket.gethostname()}:{os.getpid()}"


@contextmanager
def job(engine: Engine, name: str, now: int | None = None) -> Iterator[tuple[Connection, int] | None]:
    """Take job ``name`` for one transaction: yields (connection, cursor), or None if another
    replica holds it.  Store the new cursor with :func:`set_cursor` before leaving."""
    with write(engine) as conn:
        cursor = conn.execute(select(S.jobs.c.cursor).where(S.jobs.c.name == name)
                              .with_for_update(skip_locked=True)).scalar_one_or_none()
        if cursor is None:
            yield None
            return
        conn.execute(update(S.jobs).where(S.jobs.c.name == name)
                     .values(run_ns=now or time.time_ns(), holder=_HOLDER))
        yield conn, cursor


def set_cursor(conn: Connection, name: str, cursor: int) -> None:
    """Move job ``name``'s cursor (inside the transaction of :func:`job`)."""
    conn.execute(update(S.jobs).where(S.jobs.c.name == name).values(cursor=cursor))


@dataclass(frozen=True, slots=True)
class Pruned:
    """What one retention run deleted (``ran`` is False when another replica held the job)."""

    ran: bool
    findings: int = 0
    feed: int = 0
    status: int = 0
    asset_history: int = 0


def prune(engine: Engine, days: float, now: int | None = None) -> Pruned:
    """Delete what was ingested more than ``days`` ago; incidents and their members stay."""
    now = now or time.time_ns()
    cutoff = now - int(days * NS_PER_DAY)
    with job(engine, "retention", now) as taken:
        if taken is None:
            return Pruned(False)
        conn, _ = taken
        m = S.incident_members.c
        kept = lambda kind: select(m.ref).where(m.member_kind == kind)
        f = conn.execute(delete(S.findings).where(S.findings.c.updated_ns < cutoff,
                                                  S.findings.c.id.not_in(kept("finding"))))
        fe = conn.execute(delete(S.feed).where(S.feed.c.ingest_ns < cutoff))
        st = conn.execute(delete(S.agent_status).where(S.agent_status.c.ingest_ns < cutoff))
        ah = conn.execute(delete(S.asset_history).where(
            S.asset_history.c.ingest_ns < cutoff, S.asset_history.c.id.not_in(kept("asset-change"))))
        return Pruned(True, f.rowcount, fe.rowcount, st.rowcount, ah.rowcount)
