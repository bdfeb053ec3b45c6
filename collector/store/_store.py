"""The store as the rest of the collector sees it: open, commit batches, read back.

``Store(url)`` refuses a database that is not at the newest schema revision
(``otsentry-collector db upgrade`` brings it there), so a replica never
writes to a schema it does not know.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from otsentry.collector.store import _schema as S
from otsentry.collector.store._engine import connect, current_revision, read, redact, upgrade
from otsentry.collector.store._errors import StoreError
from otsentry.collector.store._feed import EVERYTHING, FeedEntry, FeedFilter, head, read_feed
from otsentry.collector.store._ingest import Ingest
from otsentry.collector.store._jobs import Pruned, prune
from otsentry.common.finding import Finding
from otsentry.v1 import convert, finding_pb2, ingest_pb2, status_pb2
from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError

__all__ = ["Store", "ca_fingerprints", "head_revision"]


def head_revision() -> str:
    """The newest schema revision this code knows."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).resolve().parent.parent / "migrations"))
    return ScriptDirectory.from_config(cfg).get_current_head() or ""


def ca_fingerprints(pki_dir: Path) -> Callable[[str], str]:
    """serial -> SHA-256 fingerprint of the certificate the CA in ``pki_dir`` issued ("" if none)."""
    cache: dict[str, str] = {}
    lock = threading.Lock()

    def fingerprint(serial: str) -> str:
        with lock:
            if serial not in cache:
                path = Path(pki_dir) / "issued" / f"{serial}.crt"
                try:
                    from cryptography.hazmat.primitives import hashes
                    from otsentry.common.pki import load_certificate

                    cache[serial] = load_certificate(path).fingerprint(hashes.SHA256()).hex()
                except Exception:  # an unreadable file only loses the fingerprint  # noqa: BLE001
                    cache[serial] = ""
            return cache[serial]

    return fingerprint


class Store:
    """The collector's database: ingest (group commit), reads, retention.

    Args:
        url: ``sqlite:///PATH`` or ``postgresql://…``.
        create: upgrade the schema first (SQLite default set-up, tests); replicas
            on PostgreSQL run ``db upgrade`` once instead.
        group_max: most messages per ingest transaction.
        fingerprint: certificate serial -> fingerprint (see :func:`ca_fingerprints`).
        clock: the collector's wall clock in ns.
        on_commit: called after each ingest commit (in the writer thread).
        max_batches: most batches per ingest transaction.
        max_clock_skew_s: agents whose clock is off by more are flagged in the log.
    Raises:
        StoreError: unreachable database, or a schema older or newer than this code.
    """

    def __init__(self, url: str, *, create: bool = False, group_max: int = 5000,
                 fingerprint: Callable[[str], str] = lambda serial: "",
                 clock: Callable[[], int] = time.time_ns,
                 on_commit: Callable[[], None] | None = None, max_batches: int = 256,
                 max_clock_skew_s: float = 30.0) -> None:
        self.url = url
        self.engine: Engine = connect(url)
        try:
            if create:
                upgrade(self.engine)
            have, want = current_revision(self.engine), head_revision()
        except OperationalError as exc:
            raise StoreError(f"{redact(url)}: cannot open the database: {exc.orig}") from None
        if have != want:
            raise StoreError(f"{redact(url)}: schema revision {have or 'none'}, this collector needs "
                             f"{want}: run 'otsentry-collector db upgrade --db URL'")
        self.clock = clock
        self.ingest = Ingest(self.engine, group_max=group_max, max_batches=max_batches,
                             max_clock_skew_s=max_clock_skew_s, fingerprint=fingerprint,
                             clock=clock, on_commit=on_commit)

    async def commit(self, peer: Any, batch: ingest_pb2.Batch) -> int:
        """The :data:`otsentry.collector.ingest.Commit` of this store."""
        return await self.ingest.commit(peer, batch)

    def close(self) -> None:
        """Commit what is queued, stop the writer, close the connections."""
        self.ingest.close()
        self.engine.dispose()

    # --- reading ------------------------------------------------------------------------

    def findings(self, agent: str | None = None) -> dict[tuple[str, str], Finding]:
        """Every stored finding (merged), keyed by (agent, id)."""
        t = S.findings.c
        q = select(t.agent_id, t.finding_id, t.body)
        if agent is not None:
            q = q.where(t.agent_id == agent)
        with read(self.engine) as conn:
            return {(a, i): convert.finding_from_proto(convert.parse(finding_pb2.Finding, b))
                    for a, i, b in conn.execute(q)}

    def streams(self) -> dict[tuple[str, int], tuple[int, int]]:
        """(agent, epoch) -> (highest seq committed, messages stored); equal when nothing doubled."""
        t = S.streams.c
        with read(self.engine) as conn:
            return {(a, e): (s, n) for a, e, s, n in conn.execute(
                select(t.agent_id, t.epoch, t.seq, t.count))}

    def status(self, agent: str) -> tuple[int, status_pb2.AgentStatus] | None:
        """The agent's latest (skew in ns, AgentStatus), or None before its first status."""
        t = S.agents.c
        with read(self.engine) as conn:
            row = conn.execute(select(t.skew_ns, t.status).where(t.agent_id == agent)).first()
        if row is None or row.status is None:
            return None
        return row.skew_ns, convert.parse(status_pb2.AgentStatus, row.status)

    def inventory_count(self, agent: str | None = None) -> int:
        """Inventory changes kept in the assets' history (refreshes of last seen are not)."""
        from sqlalchemy import func

        q = select(func.count()).select_from(S.asset_history)
        if agent is not None:
            q = q.where(S.asset_history.c.agent_id == agent)
        with read(self.engine) as conn:
            return conn.execute(q).scalar_one()

    def agents(self) -> list[dict[str, Any]]:
        """Every agent with its site, version, certificate, last ingest time and skew."""
        with read(self.engine) as conn:
            rows = [dict(r) for r in conn.execute(select(S.agents).order_by(S.agents.c.agent_id))
                    .mappings()]
        for r in rows:
            body = r.pop("status")
            r["status"] = convert.parse(status_pb2.AgentStatus, body) if body else None
        return rows

    def status_history(self, agent_id: str) -> list[dict[str, Any]]:
        """The agent's status reports, oldest first (without the raw bodies)."""
        t = S.agent_status
        with read(self.engine) as conn:
            return [{k: v for k, v in r.items() if k != "body"} for r in conn.execute(
                select(t).where(t.c.agent_id == agent_id).order_by(t.c.id)).mappings()]

    def assets(self, site: str | None = None) -> list[dict[str, Any]]:
        """Assets (and their units) merged per site, with attributes as plain values."""
        q = select(S.assets).order_by(S.assets.c.site, S.assets.c.ip, S.assets.c.unit)
        if site is not None:
            q = q.where(S.assets.c.site == site)
        with read(self.engine) as conn:
            rows = [dict(r) for r in conn.execute(q).mappings()]
        for r in rows:
            r["attributes"] = {k: v for k, (v, _) in json.loads(r["attributes"]).items()}
            r["device_id"] = {int(k): bytes.fromhex(v) for k, (v, _) in json.loads(r["device_id"]).items()}
            r["removed"] = r["removed_ns"] > r["last_seen_ns"]
        return rows

    def asset_history(self, asset: int) -> list[dict[str, Any]]:
        """Every change of one asset, oldest first."""
        t = S.asset_history
        with read(self.engine) as conn:
            return [dict(r) for r in conn.execute(select(t).where(t.c.asset == asset)
                                                  .order_by(t.c.id)).mappings()]

    def read_feed(self, after: int, limit: int = 1000,
                  filters: FeedFilter = EVERYTHING) -> list[FeedEntry]:
        """See :func:`otsentry.collector.store.read_feed`."""
        with read(self.engine) as conn:
            return read_feed(conn, after, limit, filters)

    def feed_head(self) -> int:
        """The newest feed cursor."""
        with read(self.engine) as conn:
            return head(conn)

    def prune(self, days: float, now: int | None = None) -> Pruned:
        """Run retention once (see :func:`otsentry.collector.store.prune`)."""
        return prune(self.engine, days, now or self.clock())
