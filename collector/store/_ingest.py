"""Idempotent ingest with group commit: batches from any agents share one transaction.

Exactly-once effect from at-least-once delivery (DESIGN principle 4):

* per (agent, epoch) the store keeps the highest sequence number committed;
  messages at or below it are duplicates and are skipped;
* findings merge forward by (id, revision) (:func:`merge_forward`), so count and
  last seen never go backwards;
* a batch, its new high-water mark and its feed entries commit in one
  transaction, and the servicer acks only after that commit.

Group commit: :meth:`Ingest.commit` queues the batch for one writer thread,
which takes everything queued (up to ``group_max`` messages) into one
transaction.  Under load many batches share one commit (and its fsync); idle,
a batch commits alone at once.  A batch that breaks the contract
(:class:`MessageError`) fails alone, before the transaction starts.

Replicas on PostgreSQL: rows are locked in one global order (sites with
inventory changes, then agents, then the feed sequencer), so two replicas
never deadlock on them; a deadlock or serialization failure PostgreSQL still
reports (e.g. an index page) retries the whole group.  The agent row's lock
serialises everything about one agent, so the same agent reconnecting to
another replica while an old stream is still committing cannot double-store.
"""

from __future__ import annotations

import concurrent.futures
import json
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from otsentry.collector.store import _merge, _raw
from otsentry.collector.store import _schema as S
from otsentry.collector.store._engine import is_postgres, write
from otsentry.collector.store._feed import FeedRow, append_feed, upsert
from otsentry.common.errors import MessageError
from otsentry.common.logging import get_logger
from otsentry.common.pki import Identity
from otsentry.v1 import convert, finding_pb2, ingest_pb2, inventory_pb2
from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import DBAPIError

__all__ = ["Ingest", "source_ip"]

#: Roles whose address is "the source" of a finding when it has no flow.
_SOURCE_ROLES = ("client", "source", "attacker", "master")
#: SQLSTATEs worth retrying the whole group for: deadlock, serialization failure.
_RETRY_STATES = ("40P01", "40001")
_CHUNK = 400  # keys per IN (...) list


def log():  # type: ignore[no-untyped-def]
    """This module's logger, looked up per call so that it follows ``configure()``."""
    return get_logger("collector.store")


def source_ip(f: finding_pb2.Finding) -> str:
    """The address a finding came from: the flow's client, else a client-like asset, else ""."""
    if f.evidence.flow.client_ip:
        return f.evidence.flow.client_ip
    for a in f.assets:
        if a.role in _SOURCE_ROLES and a.key.ip:
            return a.key.ip
    return ""


def _marks(items: Iterable[str]) -> str:
    """``",a,b,"`` so that ``LIKE '%,a,%'`` finds one item."""
    items = [i for i in items if i]
    return "," + ",".join(items) + "," if items else ""


@dataclass(slots=True)
class _Request:
    """One batch waiting for the writer, with its messages checked and converted."""

    agent_id: str
    site: str
    name: str
    serial: str
    batch: ingest_pb2.Batch
    future: concurrent.futures.Future[int]
    messages: list[tuple[int, str, object]] = field(default_factory=list)
    #: collector clock when the batch arrived (ns); with ``batch.sent_ns`` it gives the skew
    received_ns: int = 0

    def skew_ns(self, status_clock_ns: int, now: int) -> int:
        """The agent's clock minus ours: from the batch's send time and its arrival (the
        status may have waited in the outbox), else from the status itself."""
        if self.batch.sent_ns and self.received_ns:
            return self.batch.sent_ns - self.received_ns
        return status_clock_ns - now if status_clock_ns else 0


@dataclass(slots=True)
class _FindingRow:
    pk: int | None
    finding: finding_pb2.Finding
    first_ingest_ns: int
    changed: bool = False


@dataclass(slots=True)
class _AssetRow:
    pk: int | None
    site: str
    key: tuple[str, str, int, int]
    attributes: dict[str, list]
    device_id: dict[str, list]
    first_seen_ns: int
    last_seen_ns: int
    removed_ns: int
    first_ingest_ns: int
    changed: bool = False
    history: list[dict] = field(default_factory=list)


def _prepare(req: _Request) -> None:
    """Check and convert every message of the batch (outside the transaction).

    Raises:
        MessageError: a message breaks the contract; the whole batch is refused.
    """
    for i, env in enumerate(req.batch.messages):
        seq = req.batch.first_seq + i
        kind = env.WhichOneof("body")
        if kind == "finding":
            _merge.check(env.finding)
            req.messages.append((seq, kind, env.finding))
        elif kind == "inventory":
            inv = env.inventory
            if not (inv.asset.ip or inv.asset.mac):
                raise MessageError("an inventory change needs an IP or MAC address",
                                   "inventory.asset")
            req.messages.append((seq, kind, inv))
        elif kind == "status":
            req.messages.append((seq, kind, env.status))
        else:  # a newer agent's message kind: skipped (and still acked)
            req.messages.append((seq, "unknown", None))


class _Group:
    """The state of one transaction: what was read, what to write, what the feed gets."""

    def __init__(self, conn: Connection, reqs: list[_Request], now: int,
                 fingerprint: Callable[[str], str]) -> None:
        self.conn, self.reqs, self.now, self.fingerprint = conn, reqs, now, fingerprint
        self.hwm: dict[tuple[str, int], int] = {}
        self.count: dict[tuple[str, int], int] = {}
        self.findings: dict[tuple[str, str], _FindingRow] = {}
        self.assets: dict[tuple[str, tuple[str, str, int, int]], _AssetRow] = {}
        self.status: list[tuple[_Request, object]] = []
        self.unknown = 0

    def run(self) -> list[int]:
        """Apply and write every request; return each one's committed high-water mark."""
        self._lock_and_load()
        acks = [self._apply(req) for req in self.reqs]
        feed = self._write_findings() + self._write_assets() + self._write_status()
        self._write_streams()
        append_feed(self.conn, feed, self.now)
        return acks

    # --- reading, in lock order ---------------------------------------------------------

    def _lock_and_load(self) -> None:
        c, pg = self.conn, is_postgres(self.conn)
        sites = sorted({r.site for r in self.reqs})
        upsert(c, S.sites, [{"name": s, "first_ingest_ns": self.now} for s in sites], ["name"])
        inv_sites = sorted({r.site for r in self.reqs if any(k == "inventory" for _, k, _ in r.messages)})
        if pg and inv_sites:
            c.execute(select(S.sites.c.name).where(S.sites.c.name.in_(inv_sites))
                      .order_by(S.sites.c.name).with_for_update())
        agents = {r.agent_id: r for r in self.reqs}
        upsert(c, S.agents, [
            {"agent_id": a, "site": agents[a].site, "name": agents[a].name,
             "cert_serial": agents[a].serial, "cert_fingerprint": self.fingerprint(agents[a].serial),
             "first_ingest_ns": self.now, "last_ingest_ns": self.now} for a in sorted(agents)],
            ["agent_id"], update=["cert_serial", "cert_fingerprint", "last_ingest_ns"])
        for agent_id, epoch, seq, count in c.execute(
                select(S.streams.c.agent_id, S.streams.c.epoch, S.streams.c.seq, S.streams.c.count)
                .where(S.streams.c.agent_id.in_(sorted(agents)))):
            self.hwm[(agent_id, epoch)] = seq
            self.count[(agent_id, epoch)] = count
        self._load_findings()
        self._load_assets()

    def _load_findings(self) -> None:
        keys = sorted({(r.agent_id, m.id) for r in self.reqs for _, k, m in r.messages
                       if k == "finding"})  # type: ignore[attr-defined]
        for pk, agent_id, fid, first, body in _raw.select_in(
                self.conn, S.findings, ("id", "agent_id", "finding_id", "first_ingest_ns", "body"),
                ("agent_id", "finding_id"), keys):
            f = convert.parse(finding_pb2.Finding, bytes(body))
            self.findings[(agent_id, fid)] = _FindingRow(pk, f, first)

    def _load_assets(self) -> None:
        keys = sorted({(r.site, _asset_key(m)) for r in self.reqs for _, k, m in r.messages
                       if k == "inventory"})  # type: ignore[arg-type]
        cols = ("id", "site", "ip", "mac", "vlan", "unit", "attributes", "device_id",
                "first_seen_ns", "last_seen_ns", "removed_ns", "first_ingest_ns")
        for (pk, site, ip, mac, vlan, unit, attrs, dev, first, last, removed,
             first_ingest) in _raw.select_in(self.conn, S.assets, cols,
                                             ("site", "ip", "mac", "vlan", "unit"),
                                             [(s, *k) for s, k in keys], chunk=_CHUNK):
            key = (ip, mac, vlan, unit)
            self.assets[(site, key)] = _AssetRow(pk, site, key, json.loads(attrs),
                                                 json.loads(dev), first, last, removed,
                                                 first_ingest)

    # --- applying messages in memory ----------------------------------------------------

    def _apply(self, req: _Request) -> int:
        key = (req.agent_id, req.batch.epoch)
        hwm = self.hwm.get(key, 0)
        if req.batch.first_seq > hwm + 1:
            log().warning("sequence gap", agent=req.agent_id, epoch=req.batch.epoch,
                          expected=hwm + 1, got=req.batch.first_seq)
        for seq, kind, msg in req.messages:
            if seq <= hwm:
                continue
            hwm = seq
            self.count[key] = self.count.get(key, 0) + 1
            if kind == "finding":
                self._finding(req, msg)  # type: ignore[arg-type]
            elif kind == "inventory":
                self._inventory(req, msg)  # type: ignore[arg-type]
            elif kind == "status":
                self.status.append((req, msg))
            else:
                self.unknown += 1
                log().warning("unknown message kind skipped", agent=req.agent_id, seq=seq)
        self.hwm[key] = hwm
        return hwm

    def _finding(self, req: _Request, new: finding_pb2.Finding) -> None:
        # The collector's clock is the only ingest time: an agent cannot pre-date it.
        new.times.ingest_ns = self.now
        cur = self.findings.get((req.agent_id, new.id))
        if cur is None:
            self.findings[(req.agent_id, new.id)] = _FindingRow(None, new, self.now, True)
            return
        merged = _merge.merge(cur.finding, new)
        if merged is not None:
            cur.finding, cur.changed = merged, True

    def _inventory(self, req: _Request, d: inventory_pb2.InventoryDelta) -> None:
        key = _asset_key(d)
        cap = d.times.capture_ns
        row = self.assets.get((req.site, key))
        if row is None:
            row = self.assets[(req.site, key)] = _AssetRow(None, req.site, key, {}, {}, cap, cap, 0,
                                                         self.now)
        later = cap > row.last_seen_ns
        pattern = _merge_asset(row, d)
        if d.change == inventory_pb2.CHANGE_KIND_SEEN and row.pk is not None and not pattern:
            row.changed = row.changed or later  # last seen only: no history, no feed entry
            return
        row.changed = True
        row.history.append({
            "site": req.site, "agent_id": req.agent_id, "change": int(d.change),
            "revision": d.revision, "capture_ns": cap, "ingest_ns": self.now,
            "attributes": json.dumps(dict(sorted(d.attributes.items()))),
            "device_id": json.dumps({str(o.object_id): o.value.hex() for o in d.device_id}),
            "device_id_change": pattern})

    # --- writing ------------------------------------------------------------------------

    def _write_findings(self) -> list[FeedRow]:
        site = {r.agent_id: r.site for r in self.reqs}
        new, old = [], []
        for (agent_id, _), row in self.findings.items():
            if row.changed:
                (new if row.pk is None else old).append((agent_id, row))
        values = {id(r): _finding_values(a, site[a], r, self.now) for a, r in new + old}
        if new:
            # A plain executemany, then the ids in one query: INSERT .. RETURNING in order
            # runs row by row on SQLite.
            _raw.insert_many(self.conn, S.findings, _FINDING_COLS, [values[id(r)] for _, r in new])
            keys = [(a, r.finding.id) for a, r in new]
            pks = {(a, f): pk for pk, a, f in _raw.select_in(
                self.conn, S.findings, ("id", "agent_id", "finding_id"),
                ("agent_id", "finding_id"), keys)}
            for key, (_, row) in zip(keys, new):
                row.pk = pks[key]
        if old:
            _raw.update_many(self.conn, S.findings, _FINDING_COLS, "id",
                             [(*values[id(r)], r.pk) for _, r in old])
        inserted = {id(r) for _, r in new}
        # values: agent_id, finding_id, site, kind, severity, ..., techniques (10), assets (11)
        return [FeedRow("finding", r.pk, id(r) in inserted, v[2], a, v[4], v[3],  # type: ignore[arg-type]
                        v[10], v[11]) for a, r in new + old for v in (values[id(r)],)]

    def _write_assets(self) -> list[FeedRow]:
        rows = [r for r in self.assets.values() if r.changed]
        new = [r for r in rows if r.pk is None]
        if new:
            pks = self.conn.execute(S.assets.insert().returning(S.assets.c.id,
                                                                sort_by_parameter_order=True),
                                    [_asset_values(r, self.now) for r in new]).scalars().all()
            for r, pk in zip(new, pks):
                r.pk = pk
        old = [r for r in rows if r not in new]
        if old:
            self.conn.execute(S.assets.update().where(S.assets.c.id == _bind("pk")),
                              [{"pk": r.pk, **_asset_values(r, self.now)} for r in old])
        hist = [{"asset": r.pk, **h} for r in rows for h in r.history]
        if hist:
            self.conn.execute(S.asset_history.insert(), hist)
        agent = {r.site: r.agent_id for r in self.reqs}
        return [FeedRow("asset", r.pk, r in new, r.site, agent.get(r.site, ""), None,  # type: ignore[arg-type]
                        "device-id-change" if any(h["device_id_change"] for h in r.history) else "",
                        "", _marks([r.key[0]])) for r in rows if r.history]

    def _write_status(self) -> list[FeedRow]:
        if not self.status:
            return []
        values = [_status_values(r, st, self.now) for r, st in self.status]  # type: ignore[arg-type]
        pks = self.conn.execute(S.agent_status.insert().returning(S.agent_status.c.id,
                                                                  sort_by_parameter_order=True),
                                values).scalars().all()
        latest = {v["agent_id"]: v for v in values}
        self.conn.execute(S.agents.update().where(S.agents.c.agent_id == _bind("aid")), [
            {"aid": a, "version": v["version"], "mode": v["mode"], "skew_ns": v["skew_ns"],
             "status": v["body"], "status_ingest_ns": self.now} for a, v in latest.items()])
        site = {r.agent_id: r.site for r in self.reqs}
        return [FeedRow("agent", pk, False, site[v["agent_id"]], v["agent_id"], None, "", "", "")
                for v, pk in zip(values, pks)]

    def _write_streams(self) -> None:
        upsert(self.conn, S.streams, [
            {"agent_id": a, "epoch": e, "seq": s, "count": self.count.get((a, e), 0),
             "updated_ns": self.now}
            for (a, e), s in sorted(self.hwm.items())
            if any(r.agent_id == a and r.batch.epoch == e for r in self.reqs)],
            ["agent_id", "epoch"], update=["seq", "count", "updated_ns"])


def _bind(name: str):  # type: ignore[no-untyped-def]
    from sqlalchemy import bindparam
    return bindparam(name)


def _asset_key(d: inventory_pb2.InventoryDelta) -> tuple[str, str, int, int]:
    vlan = d.asset.vlan if d.asset.HasField("vlan") else S.NONE
    unit = d.unit if d.HasField("unit") else S.NONE
    return (d.asset.ip, d.asset.mac.lower(), vlan, unit)


def _merge_asset(row: _AssetRow, d: inventory_pb2.InventoryDelta) -> str:
    """Merge one change into the asset; return its device-id change pattern ("" if none).

    Per attribute and per device-id object the value seen latest (capture time)
    wins, ties broken by value, so agents of one site may report in any order.
    """
    cap = d.times.capture_ns
    if d.change == inventory_pb2.CHANGE_KIND_REMOVED:
        row.removed_ns = max(row.removed_ns, cap)
    else:
        row.first_seen_ns = min(row.first_seen_ns, cap)
        row.last_seen_ns = max(row.last_seen_ns, cap)
    for k, v in d.attributes.items():
        old = row.attributes.get(k)
        if old is None or (cap, v) > (old[1], old[0]):
            row.attributes[k] = [v, cap]
    changes = {}
    for obj in d.device_id:
        oid, value = str(obj.object_id), obj.value.hex()
        old = row.device_id.get(oid)
        if old is None or (cap, value) > (old[1], old[0]):
            if old is not None and old[0] != value and cap >= old[1]:
                changes[oid] = [old[0], value]
            row.device_id[oid] = [value, cap]
    return json.dumps(changes, sort_keys=True) if changes else ""


_FINDING_COLS = ("agent_id", "finding_id", "site", "kind", "severity", "revision", "count",
                 "first_seen_ns", "last_seen_ns", "source_ip", "techniques", "assets", "summary",
                 "first_ingest_ns", "updated_ns", "body")


def _finding_values(agent_id: str, site: str, row: _FindingRow, now: int) -> tuple:
    f = row.finding
    return (agent_id, f.id, site, f.kind, f.severity - 1, f.revision, f.count, f.first_seen_ns,
            f.last_seen_ns, source_ip(f), _marks(f.techniques), _marks(a.key.ip for a in f.assets),
            f.summary, row.first_ingest_ns, now, f.SerializeToString())


def _asset_values(r: _AssetRow, now: int) -> dict:
    ip, mac, vlan, unit = r.key
    return {"site": r.site, "ip": ip, "mac": mac, "vlan": vlan, "unit": unit,
            "attributes": json.dumps(r.attributes, sort_keys=True),
            "device_id": json.dumps(r.device_id, sort_keys=True),
            "first_seen_ns": r.first_seen_ns, "last_seen_ns": r.last_seen_ns,
            "removed_ns": r.removed_ns, "first_ingest_ns": r.first_ingest_ns, "updated_ns": now}


def _status_values(req: _Request, st, now: int) -> dict:  # type: ignore[no-untyped-def]
    skew = req.skew_ns(st.agent_clock_ns, now)
    drops = sum(c.kernel_drops + c.interface_drops + c.libpcap_drops for c in st.capture)
    return {"agent_id": req.agent_id, "ingest_ns": now, "agent_clock_ns": st.agent_clock_ns,
            "skew_ns": skew, "version": st.version, "mode": st.mode,
            "outbox_depth": st.outbox_depth, "outbox_dropped": st.outbox_dropped,
            "capture_drops": drops, "body": st.SerializeToString()}


class Ingest:
    """Idempotent group-committed storage of batches: ``await ingest.commit(peer, batch)``.

    Args:
        engine: an upgraded store (see :func:`~._engine.upgrade`).
        group_max: most messages one transaction takes from the queue.
        max_batches: most batches one transaction takes from the queue.
        max_clock_skew_s: an agent whose clock is off by more is flagged in the log.
        fingerprint: certificate serial -> SHA-256 fingerprint ("" when unknown).
        clock: the collector's wall clock in ns (ingest time).
        on_commit: called in the writer thread after each commit (wakes local readers).
    """

    def __init__(self, engine: Engine, *, group_max: int = 5000, max_batches: int = 256,
                 max_clock_skew_s: float = 30.0,
                 fingerprint: Callable[[str], str] = lambda serial: "",
                 clock: Callable[[], int] = time.time_ns,
                 on_commit: Callable[[], None] | None = None) -> None:
        self._engine, self._group_max, self._max_batches = engine, group_max, max_batches
        self._max_skew_ns = int(max_clock_skew_s * 1e9)
        self._fingerprint, self._clock, self._on_commit = fingerprint, clock, on_commit
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        #: committed so far (read by the metrics endpoint)
        self.transactions = self.batches = self.messages = 0

    async def commit(self, peer, batch: ingest_pb2.Batch) -> int:  # type: ignore[no-untyped-def]
        """Store the new messages of ``batch``; return the epoch's committed high-water mark.

        This is a :data:`otsentry.collector.ingest.Commit`.

        Raises:
            MessageError: a message breaks the contract; nothing of the batch is stored.
        """
        import asyncio

        return await asyncio.wrap_future(self.submit(peer.identity, peer.serial, batch))

    def submit(self, identity: Identity, serial: str,
               batch: ingest_pb2.Batch) -> concurrent.futures.Future[int]:
        """Queue ``batch`` for the writer; the future resolves to the committed high-water mark."""
        fut: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._queue.put(_Request(identity.short, identity.site, identity.name, serial, batch, fut,
                                 received_ns=self._clock()))
        self._start()
        return fut

    def commit_sync(self, identity: Identity, serial: str, batch: ingest_pb2.Batch) -> int:
        """:meth:`submit` and wait."""
        return self.submit(identity, serial, batch).result()

    @property
    def queue_depth(self) -> int:
        """Batches waiting for the writer thread (approximate)."""
        return self._queue.qsize()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="otsentry-ingest",
                                                daemon=True)
                self._thread.start()

    def close(self) -> None:
        """Commit what is queued, then stop the writer."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()

    def _run(self) -> None:
        stop = False
        while not stop:
            group, n = [], 0
            item = self._queue.get()
            while item is not None:
                group.append(item)
                n += len(item.batch.messages)
                if n >= self._group_max or len(group) >= self._max_batches:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            stop = item is None
            if group:
                try:
                    self._commit_group(group)
                except Exception as exc:  # noqa: BLE001 - the writer must outlive any one batch
                    log().error("ingest writer: batch group failed", error=repr(exc),
                                batches=len(group))
                    for req in group:
                        _settle(req.future, exc=exc)

    def _commit_group(self, group: list[_Request]) -> None:
        ready = []
        for req in group:
            try:
                _prepare(req)
                ready.append(req)
            except MessageError as exc:
                _settle(req.future, exc=exc)
        if not ready:
            return
        try:
            acks = self._transaction(ready)
        except Exception as exc:  # noqa: BLE001 - any database failure goes to every waiting batch
            log().error("ingest transaction failed", error=str(exc), batches=len(ready))
            for req in ready:
                _settle(req.future, exc=exc)
            return
        self.transactions += 1
        self.batches += len(ready)
        self.messages += sum(len(req.batch.messages) for req in ready)
        if self._on_commit is not None:
            self._on_commit()
        for req, ack in zip(ready, acks):
            _settle(req.future, result=ack)

    def _transaction(self, reqs: list[_Request]) -> list[int]:
        for attempt in range(8):
            try:
                with write(self._engine) as conn:
                    group = _Group(conn, reqs, self._clock(), self._fingerprint)
                    acks = group.run()
            except DBAPIError as exc:
                state = getattr(exc.orig, "sqlstate", None)
                if state not in _RETRY_STATES or attempt == 7:
                    raise
                log().info("ingest transaction retried", sqlstate=state, attempt=attempt + 1)
                time.sleep(0.01 * (attempt + 1))
                continue
            for req, st in group.status:
                skew = req.skew_ns(st.agent_clock_ns, group.now)  # type: ignore[attr-defined]
                if abs(skew) > self._max_skew_ns:
                    log().warning("agent clock skew", agent=req.agent_id,
                                  skew_s=round(skew / 1e9, 3))
            return acks
        raise AssertionError("unreachable")


def _settle(fut: concurrent.futures.Future, result: int | None = None,
            exc: BaseException | None = None) -> None:
    """Resolve a batch's future unless its stream gave up on it (cancelled when the agent
    went away mid-commit): the commit stands, and the writer must keep serving others."""
    try:
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)
    except concurrent.futures.InvalidStateError:
        pass
