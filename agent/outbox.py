"""The agent's durable outbox: SQLite (WAL), epochs, sequence numbers, bounded.

Rules of this module:

* **Durable.** :meth:`Outbox.put` returns after its transaction committed with
  ``synchronous=FULL``: a message put survives kill -9 and power loss.
* **Epoch.** A random non-zero 63-bit epoch is chosen when the database is
  created, so an agent whose state dir was wiped starts a new epoch and is not
  taken for a replay of the old one.
* **Sequence numbers at send time** (Kafka's idempotent producer): messages
  wait *pending*, without a number.  :meth:`Outbox.take` gives the oldest
  pending ones the next numbers, with no gaps, and moves them *in flight*.
  In-flight messages keep their number until acked, so a resend after a
  reconnect or a restart (:meth:`Outbox.unacked`) carries the same (epoch,
  seq) and the collector drops the duplicate.
* **Findings are versioned.** A finding put while an older revision of it is
  still pending replaces that revision in its queue position; a stale
  revision is ignored.  In-flight revisions are never touched (they have
  numbers); the collector merges forward.
* **Bounded, never silent.** At most ``max_messages`` messages (pending plus in
  flight) and ``max_bytes`` of bodies.  Overflow policy: drop the oldest
  pending message of the lowest priority first, where priority is status
  (lowest), then findings by severity (info .. critical) with inventory
  changes ranked as medium.  Every drop is counted, and the counts are
  reported as the finding ``otsentry.outbox-overflow`` (high severity, one per
  epoch, a new revision per drop), which is itself never dropped.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from otsentry.common.errors import OutboxError
from otsentry.common.finding import Evidence, Finding, Severity, Times
from otsentry.v1 import convert, ingest_pb2

__all__ = ["Outbox", "Entry", "PRIORITY", "LOSS_KIND"]

#: Drop priority per kind; findings use their severity (0..4).
PRIORITY = {"status": -1, "inventory": int(Severity.MEDIUM), "loss": 100}
LOSS_KIND = "otsentry.outbox-overflow"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pending (
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, key TEXT, revision INTEGER NOT NULL,
    priority INTEGER NOT NULL, queued_ns INTEGER NOT NULL, body BLOB NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS pending_key ON pending (key) WHERE key IS NOT NULL;
CREATE INDEX IF NOT EXISTS pending_drop ON pending (priority, id);
CREATE TABLE IF NOT EXISTS inflight (
    seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, priority INTEGER NOT NULL,
    queued_ns INTEGER NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS usage (part TEXT PRIMARY KEY, n INTEGER NOT NULL, bytes INTEGER NOT NULL);
INSERT OR IGNORE INTO usage SELECT 'pending', count(*), coalesce(sum(length(body)), 0)
    FROM pending WHERE kind != 'loss';
INSERT OR IGNORE INTO usage SELECT 'loss', count(*), coalesce(sum(length(body)), 0)
    FROM pending WHERE kind = 'loss';
INSERT OR IGNORE INTO usage SELECT 'inflight', count(*), coalesce(sum(length(body)), 0)
    FROM inflight;
CREATE TRIGGER IF NOT EXISTS pending_in AFTER INSERT ON pending BEGIN
    UPDATE usage SET n = n + 1, bytes = bytes + length(NEW.body)
    WHERE part = CASE NEW.kind WHEN 'loss' THEN 'loss' ELSE 'pending' END; END;
CREATE TRIGGER IF NOT EXISTS pending_out AFTER DELETE ON pending BEGIN
    UPDATE usage SET n = n - 1, bytes = bytes - length(OLD.body)
    WHERE part = CASE OLD.kind WHEN 'loss' THEN 'loss' ELSE 'pending' END; END;
CREATE TRIGGER IF NOT EXISTS pending_body AFTER UPDATE OF body ON pending BEGIN
    UPDATE usage SET bytes = bytes - length(OLD.body) + length(NEW.body)
    WHERE part = CASE NEW.kind WHEN 'loss' THEN 'loss' ELSE 'pending' END; END;
CREATE TRIGGER IF NOT EXISTS inflight_in AFTER INSERT ON inflight BEGIN
    UPDATE usage SET n = n + 1, bytes = bytes + length(NEW.body) WHERE part = 'inflight'; END;
CREATE TRIGGER IF NOT EXISTS inflight_out AFTER DELETE ON inflight BEGIN
    UPDATE usage SET n = n - 1, bytes = bytes - length(OLD.body) WHERE part = 'inflight'; END;
"""


@dataclass(frozen=True, slots=True)
class Entry:
    """One numbered message: ``body`` is a serialized ``otsentry.v1.Envelope``."""

    seq: int
    body: bytes


class Outbox:
    """A durable, bounded outbox in one SQLite file; see the module docstring.

    Args:
        path: the database file (created with its epoch if missing).
        max_messages: bound on pending plus in-flight messages.
        max_bytes: bound on the bodies' total size.
        clock: agent wall clock in ns (for the overflow finding).
    Raises:
        OutboxError: the file cannot be opened or is not an outbox.
    """

    def __init__(self, path: Path, *, max_messages: int = 100_000, max_bytes: int = 256 << 20,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.path = Path(path)
        self.max_messages, self.max_bytes, self._clock = max_messages, max_bytes, clock
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            with self._tx():
                for stmt in _statements(_SCHEMA):
                    self._db.execute(stmt)
                self._init_meta()
        except sqlite3.Error as exc:
            raise OutboxError(f"{self.path}: cannot open the outbox: {exc}") from None
        self.epoch = int(self._meta("epoch"))

    # -- transactions and meta ------------------------------------------------

    def _tx(self) -> _Tx:
        return _Tx(self._db)

    def _meta(self, key: str) -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        if row is None:
            raise OutboxError(f"{self.path}: not an outbox (no '{key}')")
        return row[0]

    def _set(self, key: str, value: object) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, str(value)))

    def _init_meta(self) -> None:
        if self._db.execute("SELECT 1 FROM meta WHERE key='epoch'").fetchone():
            return
        for key, value in (("epoch", secrets.randbits(63) or 1), ("next_seq", 1), ("acked_seq", 0),
                           ("dropped", "{}"), ("loss_revision", 0), ("loss_first_ns", 0)):
            self._set(key, value)

    def close(self) -> None:
        """Close the database (everything put is already committed)."""
        self._db.close()

    # -- put --------------------------------------------------------------------

    def put(self, kind: str, body: bytes, *, key: str | None = None, revision: int = 0,
            priority: int | None = None, queued_ns: int | None = None) -> None:
        """Queue one serialized Envelope durably.

        Args:
            kind: ``"finding"``, ``"inventory"``, ``"status"`` (or another name).
            body: the serialized ``otsentry.v1.Envelope``.
            key: versioned messages (findings): the id; a pending older revision
                with the same key is replaced, a newer one wins.
            revision: the revision, with ``key``.
            priority: drop priority (see :data:`PRIORITY`), default by ``kind``.
        """
        prio = PRIORITY.get(kind, 0) if priority is None else priority
        now = self._clock() if queued_ns is None else queued_ns
        try:
            with self._tx():
                self._put(kind, body, key, revision, prio, now)
        except sqlite3.Error as exc:
            raise OutboxError(f"{self.path}: cannot write: {exc}") from None

    def put_finding(self, finding: Finding, queued_ns: int | None = None) -> None:
        """Queue a finding (a new revision supersedes a pending older one)."""
        now = self._clock() if queued_ns is None else queued_ns
        env = ingest_pb2.Envelope(queued_ns=now, finding=convert.finding_to_proto(finding))
        self.put("finding", env.SerializeToString(), key=finding.id, revision=finding.revision,
                 priority=int(finding.severity), queued_ns=now)

    def put_envelope(self, envelope: ingest_pb2.Envelope) -> None:
        """Queue an inventory change or a status; findings go through :meth:`put_finding`."""
        kind = envelope.WhichOneof("body")
        if kind == "finding":
            self.put_finding(convert.finding_from_proto(envelope.finding), envelope.queued_ns)
            return
        self.put(kind or "unknown", envelope.SerializeToString(), queued_ns=envelope.queued_ns)

    def put_many(self, findings: list[Finding], envelopes: list[ingest_pb2.Envelope],
                 queued_ns: int | None = None) -> None:
        """Queue findings and other envelopes in one transaction (one fsync for all)."""
        now = self._clock() if queued_ns is None else queued_ns
        try:
            with self._tx():
                for f in findings:
                    env = ingest_pb2.Envelope(queued_ns=now, finding=convert.finding_to_proto(f))
                    self._put("finding", env.SerializeToString(), f.id, f.revision,
                              int(f.severity), now)
                for env in envelopes:
                    kind = env.WhichOneof("body") or "unknown"
                    self._put(kind, env.SerializeToString(), None, 0, PRIORITY.get(kind, 0),
                              env.queued_ns or now)
        except sqlite3.Error as exc:
            raise OutboxError(f"{self.path}: cannot write: {exc}") from None

    def _put(self, kind: str, body: bytes, key: str | None, revision: int, prio: int, now: int) -> None:
        if key is not None:
            row = self._db.execute("SELECT revision FROM pending WHERE key=?", (key,)).fetchone()
            if row is not None:
                if row[0] < revision:
                    self._db.execute("UPDATE pending SET revision=?, priority=?, queued_ns=?, body=? "
                                     "WHERE key=?", (revision, prio, now, body, key))
                return
        if not self._make_room(len(body), prio, kind):
            return
        self._db.execute("INSERT INTO pending (kind, key, revision, priority, queued_ns, body) "
                         "VALUES (?, ?, ?, ?, ?, ?)", (kind, key, revision, prio, now, body))

    # -- overflow ---------------------------------------------------------------

    def _parts(self) -> dict[str, tuple[int, int]]:
        """(messages, body bytes) of ``pending``, ``loss`` (pending loss report) and
        ``inflight``: kept by triggers, so reading them costs no scan."""
        return {p: (n, b) for p, n, b in self._db.execute("SELECT part, n, bytes FROM usage")}

    def _usage(self, bounded_only: bool = False) -> tuple[int, int]:
        # The pending loss report is outside the bound (at most one extra message).
        parts = self._parts()
        use = ("pending", "inflight") if bounded_only else ("pending", "loss", "inflight")
        return sum(parts[p][0] for p in use), sum(parts[p][1] for p in use)

    def _make_room(self, size: int, prio: int, kind: str) -> bool:
        """Drop by the overflow policy until ``size`` more bytes fit; False drops the newcomer."""
        dropped: dict[str, int] = {}
        n, used = self._usage(bounded_only=True)
        ok = True
        while n + 1 > self.max_messages or used + size > self.max_bytes:
            row = self._db.execute("SELECT id, kind, priority, length(body) FROM pending "
                                   "WHERE kind != 'loss' ORDER BY priority, id LIMIT 1").fetchone()
            if row is None or row[2] > prio:
                # Nothing pending ranks below the newcomer: the newcomer is the one dropped.
                dropped[_drop_label(kind, prio)] = dropped.get(_drop_label(kind, prio), 0) + 1
                ok = False
                break
            self._db.execute("DELETE FROM pending WHERE id=?", (row[0],))
            label = _drop_label(row[1], row[2])
            dropped[label] = dropped.get(label, 0) + 1
            n, used = n - 1, used - row[3]
        if dropped:
            self._report_loss(dropped)
        return ok

    def _report_loss(self, new: dict[str, int]) -> None:
        counts: dict[str, int] = json.loads(self._meta("dropped"))
        for label, c in new.items():
            counts[label] = counts.get(label, 0) + c
        self._set("dropped", json.dumps(counts, sort_keys=True))
        now = self._clock()
        first = int(self._meta("loss_first_ns")) or now
        rev = int(self._meta("loss_revision")) + 1
        self._set("loss_first_ns", first)
        self._set("loss_revision", rev)
        finding = _loss_finding(self.epoch, rev, counts, first, max(now, first))
        env = ingest_pb2.Envelope(queued_ns=now, finding=convert.finding_to_proto(finding))
        body = env.SerializeToString()
        key = finding.id
        if self._db.execute("SELECT 1 FROM pending WHERE key=?", (key,)).fetchone():
            self._db.execute("UPDATE pending SET revision=?, body=?, queued_ns=? WHERE key=?",
                             (rev, body, now, key))
        else:  # the loss report itself may exceed the bound by one message
            self._db.execute("INSERT INTO pending (kind, key, revision, priority, queued_ns, body) "
                             "VALUES ('loss', ?, ?, ?, ?, ?)", (key, rev, PRIORITY["loss"], now, body))

    # -- take, resend, ack ------------------------------------------------------

    def take(self, max_messages: int = 500, max_bytes: int = 1 << 20) -> list[Entry]:
        """Number the oldest pending messages and move them in flight.

        At least one message is taken if any is pending, even if it alone is
        larger than ``max_bytes``.
        """
        with self._tx():
            rows = self._db.execute("SELECT id, kind, priority, queued_ns, body FROM pending "
                                    "ORDER BY id LIMIT ?", (max_messages,)).fetchall()
            seq = int(self._meta("next_seq"))
            out, size = [], 0
            for rid, kind, prio, queued, body in rows:
                if out and size + len(body) > max_bytes:
                    break
                self._db.execute("DELETE FROM pending WHERE id=?", (rid,))
                self._db.execute("INSERT INTO inflight VALUES (?, ?, ?, ?, ?)",
                                 (seq, kind, prio, queued, body))
                out.append(Entry(seq, body))
                seq, size = seq + 1, size + len(body)
            self._set("next_seq", seq)
        return out

    def unacked(self, after_seq: int = 0, max_messages: int = 500,
                max_bytes: int = 1 << 20) -> list[Entry]:
        """In-flight messages with seq > ``after_seq``, in order: what to resend."""
        rows = self._db.execute("SELECT seq, body FROM inflight WHERE seq > ? ORDER BY seq LIMIT ?",
                                (after_seq, max_messages)).fetchall()
        out, size = [], 0
        for seq, body in rows:
            if out and size + len(body) > max_bytes:
                break
            out.append(Entry(seq, body))
            size += len(body)
        return out

    def ack(self, seq: int) -> int:
        """Forget every in-flight message up to ``seq`` (acks are cumulative).

        Returns:
            How many messages were removed.
        Raises:
            OutboxError: ``seq`` was never handed out (the collector acks what we never sent).
        """
        with self._tx():
            if seq >= int(self._meta("next_seq")):
                raise OutboxError(f"{self.path}: ack for seq {seq}, which was never sent")
            cur = self._db.execute("DELETE FROM inflight WHERE seq <= ?", (seq,))
            if seq > int(self._meta("acked_seq")):
                self._set("acked_seq", seq)
        return cur.rowcount

    # -- inspection -------------------------------------------------------------

    def next_export_segment(self) -> int:
        """The next number of an exported segment (1, 2, ...), counted durably."""
        with self._tx():
            row = self._db.execute("SELECT value FROM meta WHERE key='export_segment'").fetchone()
            n = int(row[0]) + 1 if row else 1
            self._set("export_segment", n)
        return n

    def pending_count(self) -> int:
        """Messages waiting for a sequence number (not yet sent)."""
        parts = self._parts()
        return parts["pending"][0] + parts["loss"][0]

    def depth(self) -> int:
        """Messages not yet acked (pending plus in flight)."""
        return self._usage()[0]

    def stats(self) -> dict[str, object]:
        """Counters for ``otsentry-agent status`` and AgentStatus."""
        n, size = self._usage()
        inflight = self._parts()["inflight"][0]
        return {"epoch": self.epoch, "depth": n, "bytes": size, "in_flight": inflight,
                "next_seq": int(self._meta("next_seq")), "acked_seq": int(self._meta("acked_seq")),
                "dropped": json.loads(self._meta("dropped"))}


def _statements(script: str) -> list[str]:
    """The SQL statements of ``script`` (triggers hold ``;`` inside their body)."""
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    return out


def _drop_label(kind: str, prio: int) -> str:
    if kind == "finding" and 0 <= prio <= 4:
        return f"finding-{Severity(prio)}"
    return kind


def _loss_finding(epoch: int, rev: int, counts: dict[str, int], first: int, last: int) -> Finding:
    total = sum(counts.values())
    parts = ", ".join(f"{c} {label}" for label, c in sorted(counts.items()))
    return Finding(
        id=f"outbox-overflow-{epoch:x}", revision=rev, kind=LOSS_KIND, severity=Severity.HIGH,
        techniques=(), first_seen_ns=first, last_seen_ns=last, count=total, assets=(),
        summary=f"The agent's outbox was full and dropped {total} messages ({parts}).",
        evidence=Evidence.make(details={k: str(v) for k, v in counts.items()}),
        times=Times(capture_ns=last, agent_ns=last),
    )


class _Tx:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on error."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
