"""The commit-ordered feed log, and the small read API the analysts' feed builds on.

Rule: a cursor is handed out by the one-row sequencer ``feed_seq`` *inside*
the writing transaction, as its last lock before COMMIT.  A second writer
blocks on that row until the first has committed, so

* cursors are in commit order and have no gaps (a rolled-back writer gives
  its numbers back with its rollback);
* a reader that sees cursor *c* sees every cursor below *c*: it can never skip
  a row that commits late, which plain sequence ids (handed out at INSERT,
  committed in any order by concurrent replicas) cannot promise.

The cost is that the tail of every write transaction (the feed rows and the
commit) is serialised; group commit keeps that tail to one per group.

``LISTEN/NOTIFY`` (PostgreSQL) only wakes readers: the payload is the newest
cursor but a reader always reads the log itself, because notifications are
lost across a reconnect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from otsentry.collector.store import _schema as S
from otsentry.collector.store._engine import is_postgres
from otsentry.collector.store._raw import insert_many
from sqlalchemy import Connection, Table, and_, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

__all__ = ["FeedRow", "FeedFilter", "FeedEntry", "FeedWaiter", "append_feed", "read_feed",
           "head", "matches", "upsert", "NOTIFY_CHANNEL", "EVERYTHING"]

#: PostgreSQL channel notified (after commit) with the newest cursor.
NOTIFY_CHANNEL = "otsentry_feed"


@dataclass(frozen=True, slots=True)
class FeedRow:
    """One entry to append: ``ref`` is the id of the row in the ``kind``'s table."""

    kind: str
    ref: int
    new: bool
    site: str
    agent_id: str
    severity: int | None
    detector: str
    techniques: str
    assets: str


def upsert(conn: Connection, table: Table, rows: Sequence[dict], keys: list[str],
           update: list[str] | None = None) -> None:
    """INSERT ``rows``; on a conflict on ``keys`` update the ``update`` columns (or do nothing)."""
    if not rows:
        return
    ins = (postgresql.insert if is_postgres(conn) else sqlite.insert)(table)
    if update:
        stmt = ins.on_conflict_do_update(index_elements=keys,
                                         set_={c: ins.excluded[c] for c in update})
    else:
        stmt = ins.on_conflict_do_nothing(index_elements=keys)
    conn.execute(stmt, list(rows))


_FEED_COLS = ("cursor", "kind", "ref", "new", "site", "agent_id", "severity", "detector",
              "techniques", "assets", "ingest_ns")


def append_feed(conn: Connection, rows: Sequence[FeedRow], now: int) -> int:
    """Append ``rows`` to the feed in the current transaction; return the last cursor (0: none).

    Call it last in the transaction: it locks the sequencer until COMMIT.
    """
    if not rows:
        return 0
    end = conn.execute(update(S.feed_seq).where(S.feed_seq.c.id == 1)
                       .values(value=S.feed_seq.c.value + len(rows))
                       .returning(S.feed_seq.c.value)).scalar_one()
    first = end - len(rows) + 1
    insert_many(conn, S.feed, _FEED_COLS, [
        (first + i, r.kind, r.ref, int(r.new), r.site, r.agent_id, r.severity, r.detector,
         r.techniques, r.assets, now) for i, r in enumerate(rows)])
    if is_postgres(conn):
        conn.execute(text("SELECT pg_notify(:ch, :c)"), {"ch": NOTIFY_CHANNEL, "c": str(end)})
    return end


def head(conn: Connection) -> int:
    """The newest cursor committed (0 for an empty feed)."""
    return conn.execute(select(S.feed_seq.c.value).where(S.feed_seq.c.id == 1)).scalar_one()


@dataclass(frozen=True, slots=True)
class FeedFilter:
    """What a reader wants; every field left empty matches everything.

    :func:`read_feed` applies it in SQL, :func:`matches` in memory; both match
    names exactly (case included, no wildcards).

    Attributes:
        kinds: entry kinds ("finding", "asset", "agent", "incident").
        sites: site names.
        min_severity: lowest severity (model value, 0 info .. 4 critical); entries
            without a severity (assets, agents) pass only when this is ``None``.
        techniques: ATT&CK ids; an entry matches when it has any of them.
        detectors: finding kinds (or incident rules).
        assets: IP addresses; an entry matches when it involves any of them.
        new_only: only the first entry of each ref (a finding's first revision).
    """

    kinds: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()
    min_severity: int | None = None
    techniques: tuple[str, ...] = ()
    detectors: tuple[str, ...] = ()
    assets: tuple[str, ...] = ()
    new_only: bool = False


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One feed entry; ``body`` is the referenced row as a dict (see :func:`read_feed`).

    ``assets`` are the IP addresses involved (what a filter on assets looks at).
    """

    cursor: int
    kind: str
    ref: int
    new: bool
    site: str
    agent_id: str
    severity: int | None
    detector: str
    techniques: tuple[str, ...]
    ingest_ns: int
    body: dict[str, Any] = field(default_factory=dict)
    assets: tuple[str, ...] = ()


def _where(f: FeedFilter, dialect: str) -> list:
    # Lists are stored as ",a,b,"; a name matches when ",name," is in the list.  instr/strpos,
    # not LIKE: SQLite's LIKE ignores case and "_" is a wildcard, and matches() must agree.
    def has(col: Any, name: str) -> Any:
        return (func.strpos if dialect == "postgresql" else func.instr)(col, f",{name},") > 0

    c = S.feed.c
    conds: list = []
    if f.kinds:
        conds.append(c.kind.in_(f.kinds))
    if f.sites:  # an incident's entry names all its sites: ",plant1,plant2,"
        conds.append(or_(c.site.in_(f.sites), *(has(c.site, s) for s in f.sites)))
    if f.min_severity is not None:
        conds.append(c.severity >= f.min_severity)
    if f.detectors:
        conds.append(c.detector.in_(f.detectors))
    if f.techniques:
        conds.append(or_(*(has(c.techniques, t) for t in f.techniques)))
    if f.assets:
        conds.append(or_(*(has(c.assets, a) for a in f.assets)))
    if f.new_only:
        conds.append(c.new == 1)
    return conds


def matches(f: FeedFilter, e: FeedEntry) -> bool:
    """Whether ``f`` lets ``e`` through: the same answer as :func:`read_feed`'s SQL.

    For readers that already hold entries (the feed hub's cache of the head).
    """
    return ((not f.kinds or e.kind in f.kinds)
            and (not f.sites or e.site in f.sites or any(f",{s}," in e.site for s in f.sites))
            and (f.min_severity is None or (e.severity is not None
                                            and e.severity >= f.min_severity))
            and (not f.detectors or e.detector in f.detectors)
            and (not f.techniques or any(t in e.techniques for t in f.techniques))
            and (not f.assets or any(a in e.assets for a in f.assets))
            and (not f.new_only or e.new))


#: The filter that matches every entry.
EVERYTHING = FeedFilter()

_BODIES = {"finding": S.findings, "asset": S.assets, "agent": S.agent_status,
           "incident": S.incidents}


def read_feed(conn: Connection, after: int, limit: int = 1000,
              filters: FeedFilter = EVERYTHING, *, bodies: bool = True) -> list[FeedEntry]:
    """Entries with a cursor above ``after``, oldest first, at most ``limit``.

    Resume by passing the last entry's cursor: no entry is skipped or repeated,
    because cursors follow commit order (module docstring).  Bodies are the
    referenced rows as they are now (a finding's latest merged revision, with
    its ``body`` column the ``otsentry.v1.Finding`` bytes); an entry whose row
    was pruned by retention has an empty body.
    """
    c = S.feed.c
    q = (select(S.feed).where(and_(c.cursor > after, *_where(filters, conn.dialect.name)))
         .order_by(c.cursor).limit(limit))
    rows = conn.execute(q).mappings().all()
    found: dict[tuple[str, int], dict] = {}
    if bodies:
        for kind, table in _BODIES.items():
            refs = sorted({r["ref"] for r in rows if r["kind"] == kind})
            for i in range(0, len(refs), 500):
                for b in conn.execute(select(table).where(table.c.id.in_(refs[i:i + 500]))).mappings():
                    found[(kind, b["id"])] = dict(b)
    return [FeedEntry(r["cursor"], r["kind"], r["ref"], bool(r["new"]), r["site"], r["agent_id"],
                      r["severity"], r["detector"], tuple(t for t in r["techniques"].split(",") if t),
                      r["ingest_ns"], found.get((r["kind"], r["ref"]), {}),
                      tuple(a for a in r["assets"].split(",") if a)) for r in rows]


class FeedWaiter:
    """Sleeps until the feed may have grown past a cursor; then read it with :func:`read_feed`.

    On PostgreSQL it LISTENs on :data:`NOTIFY_CHANNEL` on a connection of its own
    (and re-checks the head after every wake-up or reconnect, because
    notifications can be lost); on SQLite, one process, it polls the head.

    Args:
        engine: the store's engine.
        poll_s: how often SQLite is polled (and PostgreSQL re-checked).
    """

    def __init__(self, engine: Any, poll_s: float = 0.25) -> None:
        self._engine, self._poll_s = engine, poll_s
        self._listen: Any = None

    def _head(self) -> int:
        with self._engine.connect() as conn:
            return head(conn)

    def _connect(self) -> Any:
        import psycopg

        if self._listen is None or self._listen.closed:
            url = self._engine.url.set(drivername="postgresql")
            self._listen = psycopg.connect(url.render_as_string(hide_password=False),
                                           autocommit=True)
            self._listen.execute(f"LISTEN {NOTIFY_CHANNEL}")
        return self._listen

    def wait(self, after: int, timeout: float) -> int:
        """Return the feed's head as soon as it is above ``after``, or after ``timeout`` seconds."""
        import time

        end = time.monotonic() + timeout
        pg = self._engine.dialect.name == "postgresql"
        while True:
            if pg:
                self._connect()  # listening before the check: no wake-up falls in between
            now_head = self._head()
            left = end - time.monotonic()
            if now_head > after or left <= 0:
                return now_head
            if pg:
                try:
                    for _ in self._listen.notifies(timeout=min(left, self._poll_s * 20),
                                                   stop_after=1):
                        pass
                except Exception:  # noqa: BLE001 - a lost connection: reconnect and re-check
                    self.close()
            else:
                time.sleep(min(left, self._poll_s))

    def close(self) -> None:
        """Close the listening connection."""
        if self._listen is not None:
            try:
                self._listen.close()
            finally:
                self._listen = None
