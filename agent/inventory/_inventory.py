"""The inventory: a pipeline sink that learns assets, devices, register maps and cycles.

    inv = Inventory(state_dir=Path("/var/lib/otsentry"))   # loads what is there
    pipe = Pipeline([inv])
    ...                                                     # feed frames
    inv.drain_changes()                                     # new assets, clients, ...
    inv.save()

Sans-I/O: every time comes from the events (capture time); the only I/O is
reading the user map and the state at construction (when asked) and
:meth:`Inventory.save`.  No logging per packet.

What costs what, per packet: a dict lookup for the flow's assets; per request,
one polling-cycle update; per transaction, counters on the device and, for
reads, one tuple comparison with the range's previous values (unchanged
values stop there).  Reads (FC 1-4), the bulk of polling, go through a
per-flow cache keyed by one integer (unit, function, address, quantity) that
holds direct references to their cycle, device, counters, register range and
client entry, so a warm read costs no further lookups; everything else takes
the general path, which the cache only short-cuts (the same counts result).
Memory is bounded by :class:`~._assets.Limits`, never by the number of
packets (the per-flow caches are bounded too).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, cast

from otsentry.agent.flows import Flow
from otsentry.agent.inventory._assets import (
    GATEWAY_EXCEPTIONS,
    Asset,
    Device,
    Limits,
    StatusCounts,
    asset_id,
)
from otsentry.agent.inventory._changes import InventoryChange
from otsentry.agent.inventory._cycles import Cycle
from otsentry.agent.inventory._registers import READ, WRITE, RangeStat, RegisterTable, Use
from otsentry.agent.inventory._usermap import UserMap, load_user_map
from otsentry.agent.modbus import spec
from otsentry.agent.modbus._events import (
    Message,
    _BitsResponse,
    _ReadRequest,
    _RegistersResponse,
)
from otsentry.agent.transactions import Transaction

__all__ = ["Inventory"]

STATE_FILE: Final = "inventory.sqlite"
_MAX_FLOW_CACHE: Final = 65_536
#: Read keys cached per flow (a scanner's sweep takes the general path beyond this).
_MAX_READ_KEYS: Final = 1_024
_TABLE_OF_READ: Final = ("", "coils", "discrete_inputs", "holding_registers", "input_registers")
#: what an event class is, for the inventory (see _kind)
_NOT_MESSAGE: Final = 0
_RESPONSE: Final = 1
_READ_REQUEST: Final = 2
_REQUEST: Final = 3


def _kind(e: Any) -> int:
    if not isinstance(e, Message):  # KIND "message"
        return _NOT_MESSAGE
    if not e.is_request:
        return _RESPONSE
    return _READ_REQUEST if isinstance(e, _ReadRequest) else _REQUEST


def _read_key(req: _ReadRequest) -> int:
    """(unit, fc 1-4, address, quantity) of a read request as one integer."""
    return (((req.unit << 3 | req.fc) << 16 | req.address) << 16) | req.quantity


class _Read:
    """Direct references for one read key of one flow, filled in as they come to exist."""

    __slots__ = ("cycle", "dev", "counts", "dclient", "table", "rng", "rclient", "quantity")

    def __init__(self, quantity: int) -> None:
        self.cycle: Cycle | None = None
        self.dev: Device | None = None
        self.counts: StatusCounts | None = None
        self.dclient: Use | None = None  # the client's use of the device
        self.table: RegisterTable | None = None
        self.rng: RangeStat | None = None
        self.rclient: Use | None = None  # the client's use of the range
        self.quantity = quantity


class _FlowCtx:
    """Per-flow cache: the two assets, the flow's cycles by (unit, fc, address, quantity),
    and its read keys (see the module docstring)."""

    __slots__ = ("owner", "generation", "client", "server", "client_id", "cycles", "reads")

    def __init__(self, owner: Any, generation: int, client: Asset, server: Asset) -> None:
        # the inventory it belongs to and its flow cache's generation: also hung on the
        # flow (``Flow.user``), valid while both match
        self.owner = owner
        self.generation = generation
        self.client = client
        self.server = server
        self.client_id = client.id
        self.cycles: dict[tuple, Cycle] = {}
        self.reads: dict[int, _Read] = {}


class Inventory:
    """Assets, devices, register maps and polling cycles, learned from pipeline output.

    A pipeline sink: call it as ``inv(flow, events, transactions)``.

    Args:
        state_dir: folder of the SQLite state (``inventory.sqlite``); when it holds
            a saved inventory, that is loaded now and new traffic merges into it.
            :meth:`save` writes there.
        user_map: a register map TOML file (see :mod:`._usermap`) or a parsed
            :class:`UserMap`; names, types and scaling override the guesses.
        limits: bounds on state (:class:`Limits`).

    Raises:
        ConfigError: the user map or the saved state is invalid.
    """

    def __init__(self, state_dir: str | Path | None = None,
                 user_map: str | Path | UserMap | None = None,
                 limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.state_dir = Path(state_dir) if state_dir is not None else None
        if user_map is None or isinstance(user_map, UserMap):
            self.user_map = user_map
        else:
            self.user_map = load_user_map(user_map)
        self._assets: dict[str, Asset] = {}
        self._by_ip: dict[str, list[Asset]] = {}
        self._cycles: dict[tuple, Cycle] = {}
        self._changes: list[InventoryChange] = []
        #: called with each change as it happens (the detection engine listens here)
        self.listeners: list[Callable[[InventoryChange], None]] = []
        #: asset_name() answers by IP, forgotten whenever an identity or an asset is added
        self._names: dict[str, str] = {}
        self._flows: dict[Any, _FlowCtx | None] = {}
        self._generation = 0
        self._kinds: dict[type, int] = {}  # event class -> what it is (see _kind)
        # The read request whose cache slot was found last, and that slot: its answer
        # usually comes next, and finds the slot with no second lookup.
        self._slot_of: Any = None
        self._slot: _Read | None = None
        #: state that did not fit the limits: {"assets": n, "cycles": n, "changes": n, ...}
        self.dropped: dict[str, int] = {}
        if self.state_dir is not None and (self.state_dir / STATE_FILE).exists():
            from otsentry.agent.inventory._store import load_into

            load_into(self, self.state_dir / STATE_FILE)

    @classmethod
    def load(cls, state_dir: str | Path, user_map: str | Path | UserMap | None = None,
             limits: Limits | None = None) -> Inventory:
        """The inventory saved in ``state_dir`` (empty when nothing was saved yet)."""
        return cls(state_dir=state_dir, user_map=user_map, limits=limits)

    def save(self, state_dir: str | Path | None = None) -> Path:
        """Write the whole inventory to ``state_dir`` (default: the one given at construction).

        Returns the database path.  Raises ConfigError when there is no state folder
        or it cannot be written.
        """
        from otsentry.agent.inventory._store import save

        folder = Path(state_dir) if state_dir is not None else self.state_dir
        if folder is None:
            from otsentry.common.errors import ConfigError

            raise ConfigError("<inventory>", "state_dir", "a folder to save the inventory in")
        return save(self, folder / STATE_FILE)

    # --- the sink -------------------------------------------------------------------------

    def __call__(self, flow: Flow | None, events: list, txs: list) -> None:
        if flow is None:
            return
        if flow.kind == "modbus-tls":
            self._tls(flow, events)
            return
        hung = flow.user
        if (isinstance(hung, _FlowCtx) and hung.owner is self
                and hung.generation == self._generation):
            ctx = hung
        else:
            got = self._flows.get(flow, False)
            if got is False:
                got = self._bind_first(flow, events, txs)
            if not isinstance(got, _FlowCtx):
                return  # no Modbus message yet, or an asset that did not fit the limits
            ctx = flow.user = got
        kinds = self._kinds
        latest: Any = None  # the last message
        for e in events:
            # What an event is (a read request, another request, a response, not a message)
            # is fixed by its class: looked up by class, with no type check per event.
            kind = kinds.get(type(e))
            if kind is None:
                kind = kinds[type(e)] = _kind(e)
            if kind == _READ_REQUEST:
                self._read_request(ctx, cast(_ReadRequest, e))
            elif kind == _REQUEST:
                self._request(ctx, e)
            elif kind != _RESPONSE:
                continue
            latest = e
        last = cast(Message, latest).ts if latest is not None else 0
        if last:
            client, server = ctx.client, ctx.server
            if last > client.last_ts:
                client.last_ts = last
            if last > server.last_ts:
                server.last_ts = last
        for tx in txs:
            t: Transaction = tx
            req = t.request
            if (isinstance(req, _ReadRequest) and t.status == "ok"
                    and self._warm_read(ctx, t, req)):
                continue
            self._transaction(ctx, t)

    def _tls(self, flow: Any, events: list) -> None:
        """Keep what a Modbus/TLS handshake showed of the server's certificate."""
        for e in events:
            if e.KIND != "tls-certificate":
                continue
            server = self._asset(flow.server, flow.server_mac, flow.vlan, e.ts)
            if server is None:
                return
            server.is_server = True
            if e.ts > server.last_ts:
                server.last_ts = e.ts
            cert = e.certificate.to_dict()
            old = server.tls.get(str(flow.server_port))
            server.tls[str(flow.server_port)] = cert
            if old is not None and old.get("sha256") != cert.get("sha256"):
                self._emit("device-id-change", e.ts, server, None,
                           {"tls_certificate": {"old": old, "new": cert}})

    def _bind_first(self, flow: Any, events: list, txs: list) -> _FlowCtx | None:
        ts = next((e.ts for e in events if e.KIND == "message"), None)
        if ts is None:
            ts = next((tx.first.ts for tx in txs if tx.first.KIND == "message"), None)
        if ts is None:
            return None  # no Modbus message yet: gaps, violations, other protocols
        if len(self._flows) >= _MAX_FLOW_CACHE:
            self._flows.clear()
            self._generation += 1  # what flows hold is void too
        ctx = self._flows[flow] = self._bind(flow, ts)
        return ctx

    def _bind(self, flow: Any, ts: int) -> _FlowCtx | None:
        client = self._asset(flow.client, flow.client_mac, flow.vlan, ts)
        server = self._asset(flow.server, flow.server_mac, flow.vlan, ts)
        if client is None or server is None:
            return None
        new = [a for a in (client, server) if a.role is None]
        client.is_client = True
        server.is_server = True
        client.hint(client.ttls, flow.ttl)
        client.hint(client.windows, flow.window)
        server.hint(server.ttls, flow.server_ttl)
        for a in dict.fromkeys((client, server)):
            if a in new:
                a.role = a.current_role()
                self._emit("new-asset", ts, a, None, {"role": a.role, "known_macs": sorted(
                    b.mac or "" for b in self._by_ip.get(a.ip, ()) if b is not a)})
            else:
                self._check_role(a, ts)
        limit = self.limits.max_peers
        if server.peer(server.clients, client.id, ts, limit):
            self._emit("new-client", ts, server, None,
                       {"client": client.ip, "client_mac": client.mac, "client_id": client.id})
        client.peer(client.servers, server.id, ts, limit)
        return _FlowCtx(self, self._generation, client, server)

    def _asset(self, ip: str, mac: str | None, vlan: int | None, ts: int) -> Asset | None:
        aid = asset_id(ip, mac, vlan)
        a = self._assets.get(aid)
        if a is not None:
            if ts < a.first_ts:
                a.first_ts = ts
            return a
        if len(self._assets) >= self.limits.max_assets:
            self._drop("assets")
            return None
        a = self._assets[aid] = Asset(ip, mac, vlan, ts)
        self._names.pop(ip, None)
        self._by_ip.setdefault(ip, []).append(a)
        return a

    def _read_request(self, ctx: _FlowCtx, e: _ReadRequest) -> None:
        """A read request (FC 1-4): its cycle through the flow's read cache."""
        k = _read_key(e)
        slot = ctx.reads.get(k)
        if slot is None:
            if len(ctx.reads) >= _MAX_READ_KEYS:
                self._request(ctx, e)
                return
            slot = ctx.reads[k] = _Read(e.quantity)
        self._slot_of, self._slot = e, slot
        c = slot.cycle
        if c is not None:
            c.request(e.ts)
        else:
            slot.cycle = self._cycle(ctx, (e.unit, e.fc, e.address, e.quantity), e.ts)

    def _request(self, ctx: _FlowCtx, e: Any) -> None:
        fc = e.fc
        if fc == 23:
            key: tuple = (e.unit, fc, e.read_address, e.read_quantity)
        else:
            key = (e.unit, fc, getattr(e, "address", None), getattr(e, "quantity", None))
        c = ctx.cycles.get(key)
        if c is None:
            self._cycle(ctx, key, e.ts)
        else:
            c.request(e.ts)

    def _cycle(self, ctx: _FlowCtx, key: tuple, ts: int) -> Cycle | None:
        """Count a request of a cycle not in the flow's cache; the cycle, None when dropped."""
        c = ctx.cycles.get(key)
        if c is not None:
            c.request(ts)
            return c
        full = (ctx.client.id, ctx.server.id, *key)
        c = self._cycles.get(full)
        if c is None:
            if len(self._cycles) >= self.limits.max_cycles:
                self._drop("cycles")
                return None
            self._cycles[full] = ctx.cycles[key] = Cycle(ts)
            return ctx.cycles[key]
        ctx.cycles[key] = c
        c.request(ts)
        return c

    def _warm_read(self, ctx: _FlowCtx, tx: Transaction, req: _ReadRequest) -> bool:
        """An answered read through the flow's read cache: what :meth:`_transaction` does.

        False (nothing done) unless every reference is cached; then the general path
        runs and fills them in.
        """
        slot = self._slot if req is self._slot_of else ctx.reads.get(_read_key(req))
        if slot is None:
            return False
        rng, rclient, dev, counts, table = slot.rng, slot.rclient, slot.dev, slot.counts, slot.table
        dclient = slot.dclient
        rsp = tx.response
        if (rng is None or rclient is None or dev is None or counts is None or table is None
                or dclient is None):
            self._transaction(ctx, tx)
            self._fill(ctx, slot, req, rsp)
            return True
        fc = req.fc
        if fc >= 3:
            if not isinstance(rsp, _RegistersResponse):
                return False
            values: Any = rsp.registers
            if len(values) != slot.quantity:
                return False  # a short or long answer: its own range, general path
            ts = rsp.ts
        elif isinstance(rsp, _BitsResponse):
            values = rsp.bits
            ts = rsp.ts
        else:
            return False
        counts.ok += 1
        if ts > dev.last_ts:
            dev.last_ts = ts
        dclient.seen(ts)
        lat = tx.latency_ns
        if lat is not None:
            dev.latency(lat)
        rng.count += 1
        if ts > rng.last_ts:
            rng.last_ts = ts
        rclient.seen(ts)
        if values != rng.last:
            if fc >= 3:
                table.changed_read(rng, req.address, values, ts)
            else:
                table.changed_bits(rng, req.address, req.quantity, values, ts)
        return True

    def _fill(self, ctx: _FlowCtx, slot: _Read, req: _ReadRequest, rsp: Any) -> None:
        """Cache the references an answered read now has (those that exist)."""
        dev = ctx.server.devices.get(req.unit)
        if dev is None:
            return
        slot.dev = dev
        slot.counts = dev.functions.get(req.fc)
        slot.dclient = dev.clients.get(ctx.client_id)
        table = slot.table = dev.tables.get(_TABLE_OF_READ[req.fc])
        if table is None:
            return
        if req.fc >= 3:
            if not isinstance(rsp, _RegistersResponse) or len(rsp.registers) != req.quantity:
                return
        rng = slot.rng = table.ranges.get((READ, req.address, req.quantity))
        if rng is not None:
            slot.rclient = rng.clients.get(ctx.client_id)

    def _transaction(self, ctx: _FlowCtx, tx: Any) -> None:
        rsp, req, status = tx.response, tx.request, tx.status
        server = ctx.server
        first = tx.first
        unit, fc, ts = first.unit, first.fc, (rsp if rsp is not None else req).ts
        if unit is None or fc is None:
            return
        code = rsp.code if rsp is not None and rsp.is_exception else None
        gateway_exc = code in GATEWAY_EXCEPTIONS
        if gateway_exc:
            server.gateway_exceptions += 1
        dev = server.devices.get(unit)
        if dev is None:
            if status in ("ok", "exception") and not gateway_exc:
                dev = self._new_device(server, unit, ts)
            else:
                server.unanswered_units[unit] = server.unanswered_units.get(unit, 0) + 1
                if gateway_exc:
                    self._check_role(server, ts)
                return
        counts = dev.count(fc, status)
        if status == "ok" and counts.ok == 1 and dev.ok_count() == 1:
            self._check_role(server, ts)  # a unit answering for the first time: a gateway?
        if ts > dev.last_ts:
            dev.last_ts = ts
        client_id = ctx.client.id
        use = dev.clients.get(client_id)
        if use is not None:
            use.seen(ts)
        elif len(dev.clients) < self.limits.max_peers:
            dev.clients[client_id] = Use(1, ts, ts)
        if tx.latency_ns is not None and status in ("ok", "exception"):
            dev.latency(tx.latency_ns)
        if code is not None:
            k = (fc, code)
            dev.exceptions[k] = dev.exceptions.get(k, 0) + 1
            if gateway_exc:
                self._check_role(server, ts)
        if req is None or req.KIND != "message":
            return
        handler = _CONTENT.get(fc)
        if handler is not None and (status == "ok" or fc in spec.WRITE_FUNCTIONS):
            handler(self, ctx, dev, req, rsp if status == "ok" else None, ts)

    def _new_device(self, server: Asset, unit: int, ts: int) -> Device:
        dev = server.devices[unit] = Device(unit, ts)
        self._emit("new-device", ts, server, unit,
                   {"first": len(server.devices) == 1, "units": sorted(server.devices)})
        return dev

    def _check_role(self, a: Asset, ts: int) -> None:
        role = a.current_role()
        if role != a.role:
            old, a.role = a.role, role
            self._emit("role-change", ts, a, None, {"old": old, "new": role})

    def _emit(self, kind: str, ts: int, a: Asset, unit: int | None, detail: dict) -> None:
        if len(self._changes) >= self.limits.max_changes:
            self._changes.pop(0)
            self._drop("changes")
        change = InventoryChange(kind, ts, a.ip, a.mac, a.vlan, unit, detail)
        self._names.clear()
        self._changes.append(change)
        for listener in self.listeners:
            listener(change)

    def _drop(self, what: str) -> None:
        self.dropped[what] = self.dropped.get(what, 0) + 1

    # --- content of transactions ----------------------------------------------------------

    def _read_bits(self, ctx: _FlowCtx, dev: Device, req: Any, rsp: Any, ts: int) -> None:
        table = "coils" if req.fc == 1 else "discrete_inputs"
        dev.table(table, self.limits).read_bits(req.address, req.quantity, rsp.bits,
                                                ctx.client.id, ts)

    def _read_registers(self, ctx: _FlowCtx, dev: Device, req: Any, rsp: Any, ts: int) -> None:
        table = "holding_registers" if req.fc == 3 else "input_registers"
        dev.table(table, self.limits).read(req.address, rsp.registers, ctx.client.id, ts)

    def _write(self, ctx: _FlowCtx, dev: Device, req: Any, rsp: Any, ts: int) -> None:
        fc = req.fc
        if fc in (5, 15):
            table = dev.table("coils", self.limits)
            values = (1 if req.value == 0xFF00 else 0,) if fc == 5 else tuple(req.values())
        else:
            table = dev.table("holding_registers", self.limits)
            if fc == 6:
                values = (req.value,)
            elif fc == 22:
                cur = table.value(req.address)
                values = None if cur is None else (
                    (cur & req.and_mask) | (req.or_mask & ~req.and_mask & 0xFFFF),)  # type: ignore[assignment]
            else:
                values = req.registers
        quantity = getattr(req, "quantity", 1)
        table.write(req.address, quantity, values, ctx.client.id, ts, rsp is not None)

    def _read_write(self, ctx: _FlowCtx, dev: Device, req: Any, rsp: Any, ts: int) -> None:
        table = dev.table("holding_registers", self.limits)
        table.write(req.write_address, req.write_quantity, req.registers, ctx.client.id, ts,
                    rsp is not None)
        if rsp is not None:
            table.read(req.read_address, rsp.registers, ctx.client.id, ts)

    def _files(self, ctx: _FlowCtx, dev: Device, req: Any, rsp: Any, ts: int) -> None:
        kind = READ if req.fc == 20 else WRITE
        for rec in req.records:
            _ref, file_no, record, x = rec[:4]
            length = x if kind == READ else len(x) // 2
            dev.table(f"file_records/{file_no}", self.limits).count_only(
                kind, record, length, ctx.client.id, ts)

    def _device_id(self, ctx: _FlowCtx, dev: Device, req: Any, rsp: Any, ts: int) -> None:
        objects = getattr(rsp, "objects", None)
        if objects is None:
            return
        dev.conformity_level = rsp.conformity_level
        for oid, raw in objects:
            text = raw.decode("latin-1")
            old = dev.device_id.get(oid)
            if old == text:
                continue
            if old is None and len(dev.device_id) >= self.limits.max_device_id_objects:
                dev.dropped["device_id_objects"] = dev.dropped.get("device_id_objects", 0) + 1
                continue
            dev.device_id[oid] = text
            self._names.clear()
            if old is not None:
                self._emit("device-id-change", ts, ctx.server, dev.unit,
                           {"field": spec.device_id_object_name(oid), "old": old, "new": text})

    def _server_id(self, ctx: _FlowCtx, dev: Device, req: Any, rsp: Any, ts: int) -> None:
        sid = rsp.server_id
        new = sid.hex()
        dev.run_indicator = rsp.run_indicator
        if new == dev.server_id:
            return
        old, dev.server_id = dev.server_id, new
        self._names.clear()
        dev.server_id_text = sid.decode("ascii") if sid.isascii() else None
        if old is not None:
            self._emit("device-id-change", ts, ctx.server, dev.unit,
                       {"field": "server_id", "old": old, "new": new})

    # --- queries --------------------------------------------------------------------------

    def drain_changes(self) -> list[InventoryChange]:
        """The changes since the last call, oldest first."""
        out, self._changes = self._changes, []
        return out

    def assets(self) -> list[Asset]:
        """Every asset, ordered by IP address, then MAC and VLAN."""
        return sorted(self._assets.values(), key=_asset_order)

    def asset(self, ip: str, mac: str | None = None, vlan: int | None = None) -> Asset | None:
        """The asset with this IP (and MAC/VLAN when given); the most recently seen if several."""
        found = [a for a in self._by_ip.get(ip, ())
                 if (mac is None or a.mac == mac) and (vlan is None or a.vlan == vlan)]
        return max(found, key=lambda a: a.last_ts) if found else None

    def asset_name(self, ip: str) -> str:
        """A short name for findings: the device identification's vendor and product
        (``Schneider Electric BMX P34 2020``), else the FC17 server id text, else the MAC
        vendor; "" when nothing is known of ``ip``."""
        got = self._names.get(ip)
        if got is not None:
            return got
        if len(self._names) >= self.limits.max_assets:
            self._names.clear()
        got = self._names[ip] = self._name_of(ip)
        return got

    def _name_of(self, ip: str) -> str:
        assets = self._by_ip.get(ip)
        if not assets:
            return ""
        fallback = ""
        for a in sorted(assets, key=lambda a: -a.last_ts):
            for unit in sorted(a.devices):
                dev = a.devices[unit]
                ident = dev.device_id
                name = " ".join(x for x in (ident.get(0, ""), ident.get(1) or ident.get(4, ""))
                                if x).strip()
                if name:
                    return name
                fallback = fallback or (dev.server_id_text or "").strip()
            fallback = fallback or (a.vendor or "")
        return fallback

    def cycles(self) -> list[dict[str, Any]]:
        """Polling cycles as JSON values, ordered by client, server, unit, function, range."""
        out = []
        for key in sorted(self._cycles, key=_cycle_order):
            cid, sid, unit, fc, address, quantity = key
            out.append({"client": cid.split("|", 1)[0], "client_id": cid,
                        "server": sid.split("|", 1)[0], "server_id": sid, "unit": unit,
                        "fc": fc, "function": spec.function_name(fc), "address": address,
                        "quantity": quantity, **self._cycles[key].to_dict()})
        return out

    def to_dict(self) -> dict[str, Any]:
        """The whole inventory as JSON values (what ``inventory --json`` prints)."""
        user = None
        if self.user_map is not None:
            user = self.user_map.lookup
        return {"assets": [a.to_dict(user) for a in self.assets()],
                "cycles": self.cycles(),
                "dropped": dict(sorted(self.dropped.items()))}


def _ip_order(ip: str) -> tuple:
    try:
        addr = ipaddress.ip_address(ip)
        return (addr.version, int(addr), "")
    except ValueError:
        return (9, 0, ip)


def _asset_order(a: Asset) -> tuple:
    return (_ip_order(a.ip), a.mac or "", -1 if a.vlan is None else a.vlan)


def _cycle_order(key: tuple) -> tuple:
    cid, sid, unit, fc, address, quantity = key
    return (_ip_order(cid.split("|", 1)[0]), cid, _ip_order(sid.split("|", 1)[0]), sid, unit, fc,
            -1 if address is None else address, -1 if quantity is None else quantity)


_CONTENT: Final = {
    1: Inventory._read_bits, 2: Inventory._read_bits,
    3: Inventory._read_registers, 4: Inventory._read_registers,
    5: Inventory._write, 6: Inventory._write, 15: Inventory._write, 16: Inventory._write,
    22: Inventory._write, 23: Inventory._read_write, 20: Inventory._files, 21: Inventory._files,
    43: Inventory._device_id, 17: Inventory._server_id,
}
