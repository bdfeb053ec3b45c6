"""The interim ingest store: one SQLite file with agents, findings, inventory and status.

Exactly-once effect from at-least-once delivery:

* per (agent, epoch) the store keeps the highest sequence number committed and
  how many messages it stored; messages at or below the mark are duplicates
  and are skipped (so ``count == seq`` for a stream with no gaps);
* findings are merged forward by id (:func:`otsentry.common.finding.merge_forward`);
* the batch and the new high-water mark commit in one transaction, and the
  servicer acks only after that commit.

**Group commit.** Batches from every stream are queued and written by one
writer: each transaction takes every batch waiting (up to ``group_max``), so
one fsync covers many agents' commits.  Each batch sits in its own savepoint:
a batch the model refuses is rolled back alone and its stream refused, the
others commit.

**Clock skew.** When a batch carries an ``AgentStatus``, the agent's clock at
send time (``Batch.sent_ns``, else the status's ``agent_clock_ns``) minus ours
is the agent's skew estimate; it is stored with the status, and a skew larger
than ``max_clock_skew_s`` is flagged by a warning (once per agent until it
comes back within bounds).

The full store (SQLAlchemy, PostgreSQL, migrations) replaces this module; the
commit contract (:data:`otsentry.collector.ingest.Commit`) stays.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import replace
from pathlib import Path

import structlog

from otsentry.collector.auth import Peer
from otsentry.common.errors import MessageError
from otsentry.common.finding import Finding, merge_forward
from otsentry.common.logging import get_logger
from otsentry.v1 import convert, finding_pb2, ingest_pb2, status_pb2

__all__ = ["IngestStore"]

_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS streams (agent TEXT NOT NULL, epoch INTEGER NOT NULL, "
    "seq INTEGER NOT NULL, last_ns INTEGER NOT NULL, count INTEGER NOT NULL DEFAULT 0, "
    "PRIMARY KEY (agent, epoch))",
    "CREATE TABLE IF NOT EXISTS findings (agent TEXT NOT NULL, id TEXT NOT NULL, "
    "revision INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY (agent, id))",
    "CREATE TABLE IF NOT EXISTS inventory (agent TEXT NOT NULL, seq INTEGER NOT NULL, "
    "epoch INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY (agent, epoch, seq))",
    "CREATE TABLE IF NOT EXISTS status (agent TEXT PRIMARY KEY, skew_ns INTEGER NOT NULL, "
    "body BLOB NOT NULL)",
]


def log() -> structlog.typing.FilteringBoundLogger:
    """This module's logger, looked up per call so that it follows ``configure()``."""
    return get_logger("collector.ingest")


class IngestStore:
    """Idempotent storage of batches; ``await store.commit(peer, batch)`` is a :data:`Commit`.

    Args:
        path: the SQLite file (created if missing).
        max_clock_skew_s: skew beyond which an agent is flagged.
        group_max: most batches committed in one transaction.
    """

    def __init__(self, path: Path, *, max_clock_skew_s: float = 30.0, group_max: int = 64) -> None:
        self.path = Path(path)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        for stmt in _SCHEMA:
            self._db.execute(stmt)
        if "count" not in [r[1] for r in self._db.execute("PRAGMA table_info(streams)")]:
            self._db.execute("ALTER TABLE streams ADD COLUMN count INTEGER NOT NULL DEFAULT 0")
        self._max_skew_ns = int(max_clock_skew_s * 1e9)
        self._group_max = group_max
        self._queue: list[tuple[str, ingest_pb2.Batch, asyncio.Future[int]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._flagged: set[str] = set()
        #: transactions and batches committed (group commit figures for the bench).
        self.transactions = 0
        self.batches = 0

    async def commit(self, peer: Peer, batch: ingest_pb2.Batch) -> int:
        """Store the new messages of ``batch``; return the epoch's committed high-water mark.

        Raises:
            MessageError: a message breaks the model; nothing of ``batch`` was stored.
        """
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.append((peer.identity.short, batch, fut))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._drain())
        return await fut

    async def _drain(self) -> None:
        while self._queue:
            group = self._queue[:self._group_max]
            del self._queue[:len(group)]
            try:
                results = await asyncio.to_thread(self._commit_group,
                                                  [(a, b) for a, b, _ in group])
            except BaseException as exc:  # the whole transaction failed: every batch fails
                results = [exc] * len(group)
            for (_a, _b, fut), res in zip(group, results):
                if fut.done():
                    continue
                if isinstance(res, BaseException):
                    fut.set_exception(res)
                else:
                    fut.set_result(res)

    def _commit_group(self, items: list[tuple[str, ingest_pb2.Batch]]) -> list[int | Exception]:
        now = time.time_ns()
        out: list[int | Exception] = []
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for agent, batch in items:
                self._db.execute("SAVEPOINT batch")
                try:
                    out.append(self._apply(agent, batch, now))
                except MessageError as exc:
                    self._db.execute("ROLLBACK TO batch")
                    out.append(exc)
                self._db.execute("RELEASE batch")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self.transactions += 1
        self.batches += len(items)
        return out

    def _apply(self, agent: str, batch: ingest_pb2.Batch, now: int) -> int:
        row = self._db.execute("SELECT seq, count FROM streams WHERE agent=? AND epoch=?",
                               (agent, batch.epoch)).fetchone()
        hwm, count = row if row else (0, 0)
        if batch.first_seq > hwm + 1:
            log().warning("sequence gap", agent=agent, epoch=batch.epoch, expected=hwm + 1,
                          got=batch.first_seq)
        for i, env in enumerate(batch.messages):
            seq = batch.first_seq + i
            if seq > hwm:
                self._store(agent, batch, seq, env, now)
                hwm, count = seq, count + 1
        self._db.execute("INSERT OR REPLACE INTO streams VALUES (?, ?, ?, ?, ?)",
                         (agent, batch.epoch, hwm, now, count))
        return hwm

    def _store(self, agent: str, batch: ingest_pb2.Batch, seq: int, env: ingest_pb2.Envelope,
               now: int) -> None:
        kind = env.WhichOneof("body")
        if kind == "finding":
            self._merge(agent, convert.finding_from_proto(env.finding), now)
        elif kind == "inventory":
            self._db.execute("INSERT OR IGNORE INTO inventory VALUES (?, ?, ?, ?)",
                             (agent, seq, batch.epoch, env.inventory.SerializeToString()))
        elif kind == "status":
            self._status(agent, batch, env.status, now)
        else:  # a newer agent's message kind: skipped, counted in the log, still acked
            log().warning("unknown message kind skipped", agent=agent, epoch=batch.epoch, seq=seq)

    def _status(self, agent: str, batch: ingest_pb2.Batch, status: status_pb2.AgentStatus,
                now: int) -> None:
        clock = batch.sent_ns or status.agent_clock_ns
        skew = clock - now if clock else 0
        self._db.execute("INSERT OR REPLACE INTO status VALUES (?, ?, ?)",
                         (agent, skew, status.SerializeToString()))
        if abs(skew) > self._max_skew_ns:
            if agent not in self._flagged:
                self._flagged.add(agent)
                log().warning("agent clock skew", agent=agent, skew_s=round(skew / 1e9, 3),
                              limit_s=self._max_skew_ns / 1e9)
        elif agent in self._flagged:
            self._flagged.discard(agent)
            log().info("agent clock skew back within bounds", agent=agent,
                       skew_s=round(skew / 1e9, 3))

    def _merge(self, agent: str, new: Finding, now: int) -> None:
        row = self._db.execute("SELECT body FROM findings WHERE agent=? AND id=?",
                               (agent, new.id)).fetchone()
        if row is None:
            merged = replace(new, times=replace(new.times, ingest_ns=now))
        else:
            old = convert.finding_from_proto(convert.parse(finding_pb2.Finding, row[0]))
            merged = merge_forward(old, new)
            if merged is old:
                return
        self._db.execute("INSERT OR REPLACE INTO findings VALUES (?, ?, ?, ?)",
                         (agent, merged.id, merged.revision,
                          convert.finding_to_proto(merged).SerializeToString()))

    # -- reading (tests, status, the fault tests' comparison) ----------------------------------

    def findings(self, agent: str | None = None) -> dict[tuple[str, str], Finding]:
        """Every stored finding, keyed by (agent, id)."""
        rows = self._db.execute("SELECT agent, id, body FROM findings WHERE ?1 IS NULL OR agent=?1",
                                (agent,)).fetchall()
        return {(a, i): convert.finding_from_proto(convert.parse(finding_pb2.Finding, b))
                for a, i, b in rows}

    def streams(self) -> dict[tuple[str, int], tuple[int, int]]:
        """(agent, epoch) -> (highest seq committed, messages stored); equal when nothing doubled."""
        return {(a, e): (s, c) for a, e, s, c in
                self._db.execute("SELECT agent, epoch, seq, count FROM streams")}

    def status(self, agent: str) -> tuple[int, status_pb2.AgentStatus] | None:
        """The agent's latest (skew in ns, AgentStatus), or None before its first status."""
        row = self._db.execute("SELECT skew_ns, body FROM status WHERE agent=?",
                               (agent,)).fetchone()
        return (row[0], convert.parse(status_pb2.AgentStatus, row[1])) if row else None

    def inventory_count(self, agent: str | None = None) -> int:
        """Inventory deltas stored."""
        return self._db.execute("SELECT count(*) FROM inventory WHERE ?1 IS NULL OR agent=?1",
                                (agent,)).fetchone()[0]

    def close(self) -> None:
        """Close the database."""
        self._db.close()
