"""The interim ingest store: one SQLite file with agents, findings, inventory and status.

Exactly-once effect from at-least-once delivery:

* per (agent, epoch) the store keeps the highest sequence number committed;
  messages at or below it are duplicates and are skipped;
* findings are merged forward by id (:func:`otsentry.common.finding.merge_forward`);
* the batch and the new high-water mark commit in one transaction, and the
  servicer acks only after that commit.

The full store (SQLAlchemy, PostgreSQL, migrations) replaces this module; the
commit contract (:data:`otsentry.collector.ingest.Commit`) stays.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import replace
from pathlib import Path

from otsentry.collector.auth import Peer
from otsentry.common.finding import Finding, merge_forward
from otsentry.common.logging import get_logger
from otsentry.v1 import convert, finding_pb2, ingest_pb2

__all__ = ["IngestStore"]

_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS streams (agent TEXT NOT NULL, epoch INTEGER NOT NULL, "
    "seq INTEGER NOT NULL, last_ns INTEGER NOT NULL, PRIMARY KEY (agent, epoch))",
    "CREATE TABLE IF NOT EXISTS findings (agent TEXT NOT NULL, id TEXT NOT NULL, "
    "revision INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY (agent, id))",
    "CREATE TABLE IF NOT EXISTS inventory (agent TEXT NOT NULL, seq INTEGER NOT NULL, "
    "epoch INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY (agent, epoch, seq))",
    "CREATE TABLE IF NOT EXISTS status (agent TEXT PRIMARY KEY, skew_ns INTEGER NOT NULL, "
    "body BLOB NOT NULL)",
]


def log():  # type: ignore[no-untyped-def]
    """This module's logger, looked up per call so that it follows ``configure()``."""
    return get_logger("collector.ingest")


class IngestStore:
    """Idempotent storage of batches; ``await store.commit(peer, batch)`` is a :data:`Commit`.

    Args:
        path: the SQLite file (created if missing).
    """

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        for stmt in _SCHEMA:
            self._db.execute(stmt)
        self._lock = asyncio.Lock()

    async def commit(self, peer: Peer, batch: ingest_pb2.Batch) -> int:
        """Store the new messages of ``batch``; return the epoch's committed high-water mark."""
        async with self._lock:
            return await asyncio.to_thread(self._commit, peer.identity.short, batch)

    def _commit(self, agent: str, batch: ingest_pb2.Batch) -> int:
        now = time.time_ns()
        self._db.execute("BEGIN IMMEDIATE")
        try:
            row = self._db.execute("SELECT seq FROM streams WHERE agent=? AND epoch=?",
                                   (agent, batch.epoch)).fetchone()
            hwm = row[0] if row else 0
            if batch.first_seq > hwm + 1:
                log().warning("sequence gap", agent=agent, epoch=batch.epoch, expected=hwm + 1,
                              got=batch.first_seq)
            for i, env in enumerate(batch.messages):
                seq = batch.first_seq + i
                if seq > hwm:
                    self._store(agent, batch.epoch, seq, env, now)
                    hwm = seq
            self._db.execute("INSERT OR REPLACE INTO streams VALUES (?, ?, ?, ?)",
                             (agent, batch.epoch, hwm, now))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return hwm

    def _store(self, agent: str, epoch: int, seq: int, env: ingest_pb2.Envelope, now: int) -> None:
        kind = env.WhichOneof("body")
        if kind == "finding":
            self._merge(agent, convert.finding_from_proto(env.finding), now)
        elif kind == "inventory":
            self._db.execute("INSERT OR IGNORE INTO inventory VALUES (?, ?, ?, ?)",
                             (agent, seq, epoch, env.inventory.SerializeToString()))
        elif kind == "status":
            skew = env.status.agent_clock_ns - now if env.status.agent_clock_ns else 0
            self._db.execute("INSERT OR REPLACE INTO status VALUES (?, ?, ?)",
                             (agent, skew, env.status.SerializeToString()))
        else:  # a newer agent's message kind: skipped, counted in the log, still acked
            log().warning("unknown message kind skipped", agent=agent, epoch=epoch, seq=seq)

    def _merge(self, agent: str, new: Finding, now: int) -> None:
        row = self._db.execute("SELECT body FROM findings WHERE agent=? AND id=?",
                               (agent, new.id)).fetchone()
        if row is None:
            merged = replace(new, times=replace(new.times, ingest_ns=now))
        else:
            old = convert.finding_from_proto(convert.parse(finding_pb2.Finding, row[0]))
            merged = merge_forward(old, new)
        self._db.execute("INSERT OR REPLACE INTO findings VALUES (?, ?, ?, ?)",
                         (agent, merged.id, merged.revision,
                          convert.finding_to_proto(merged).SerializeToString()))

    def findings(self, agent: str | None = None) -> dict[tuple[str, str], Finding]:
        """Every stored finding, keyed by (agent, id)."""
        rows = self._db.execute("SELECT agent, id, body FROM findings WHERE ?1 IS NULL OR agent=?1",
                                (agent,)).fetchall()
        return {(a, i): convert.finding_from_proto(convert.parse(finding_pb2.Finding, b))
                for a, i, b in rows}

    def close(self) -> None:
        """Close the database."""
        self._db.close()
