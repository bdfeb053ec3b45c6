"""The inventory's state in SQLite (``inventory.sqlite`` in the agent's state folder).

One row per asset, device, register table and polling cycle.  Each row has a
few readable columns (IP, MAC, role, vendor, product...) for people who open
the file with ``sqlite3``, and a JSON ``state`` column that holds everything
needed to carry on exactly where the last run stopped: loading a saved
inventory and reading more traffic gives the same inventory as reading all
of it in one run.

:func:`save` rewrites the whole file content in one transaction, so a crash
during a save leaves the previous state.  The schema carries a version; a file
of another version is refused with a ConfigError rather than misread.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Final

from otsentry.agent.inventory._assets import Asset, Device
from otsentry.agent.inventory._cycles import Cycle
from otsentry.agent.inventory._registers import RegisterTable
from otsentry.common.errors import ConfigError

__all__ = ["save", "load_into", "SCHEMA_VERSION"]

SCHEMA_VERSION: Final = "1"

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS assets (
    id TEXT PRIMARY KEY, ip TEXT NOT NULL, mac TEXT, vlan INTEGER, role TEXT,
    mac_vendor TEXT, first_seen INTEGER, last_seen INTEGER, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    asset_id TEXT NOT NULL, unit INTEGER NOT NULL, vendor_name TEXT, product_code TEXT,
    revision TEXT, first_seen INTEGER, last_seen INTEGER, state TEXT NOT NULL,
    PRIMARY KEY (asset_id, unit));
CREATE TABLE IF NOT EXISTS register_tables (
    asset_id TEXT NOT NULL, unit INTEGER NOT NULL, name TEXT NOT NULL, state TEXT NOT NULL,
    PRIMARY KEY (asset_id, unit, name));
CREATE TABLE IF NOT EXISTS cycles (
    key TEXT PRIMARY KEY, client_id TEXT NOT NULL, server_id TEXT NOT NULL, unit INTEGER,
    fc INTEGER, address INTEGER, quantity INTEGER, state TEXT NOT NULL);
"""


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def save(inv: Any, path: Path) -> Path:
    """Write ``inv`` to the database at ``path`` (created with its folder when missing)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(path)
        try:
            with con:
                con.executescript(_SCHEMA)
                for table in ("assets", "devices", "register_tables", "cycles"):
                    con.execute(f"DELETE FROM {table}")  # noqa: S608 (fixed names)
                _write(con, inv)
        finally:
            con.close()
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(str(path), "state_dir", f"a writable folder for the inventory ({exc})") \
            from None
    return path


def _write(con: sqlite3.Connection, inv: Any) -> None:
    con.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
    con.execute("INSERT OR REPLACE INTO meta VALUES ('dropped', ?)", (_dumps(inv.dropped),))
    for a in inv._assets.values():
        con.execute("INSERT INTO assets VALUES (?,?,?,?,?,?,?,?,?)",
                    (a.id, a.ip, a.mac, a.vlan, a.current_role(), a.vendor, a.first_ts,
                     a.last_ts, _dumps(a.to_state())))
        for unit, d in a.devices.items():
            ident = d.device_id
            con.execute("INSERT INTO devices VALUES (?,?,?,?,?,?,?,?)",
                        (a.id, unit, ident.get(0), ident.get(1), ident.get(2), d.first_ts,
                         d.last_ts, _dumps(d.to_state())))
            for name, t in d.tables.items():
                con.execute("INSERT INTO register_tables VALUES (?,?,?,?)",
                            (a.id, unit, name, _dumps(t.to_state())))
    for key, c in inv._cycles.items():
        cid, sid, unit, fc, address, quantity = key
        con.execute("INSERT INTO cycles VALUES (?,?,?,?,?,?,?,?)",
                    (_dumps(list(key)), cid, sid, unit, fc, address, quantity,
                     _dumps(c.to_state())))


def load_into(inv: Any, path: Path) -> None:
    """Load the database at ``path`` into an empty inventory.

    Raises:
        ConfigError: the file is not an inventory database of this version, or is damaged.
    """
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            _read(con, inv, str(path))
        finally:
            con.close()
    except (sqlite3.Error, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(str(path), "state_dir",
                          f"an otsentry inventory database ({type(exc).__name__}: {exc})") from None


def _read(con: sqlite3.Connection, inv: Any, where: str) -> None:
    meta = dict(con.execute("SELECT key, value FROM meta"))
    if meta.get("schema") != SCHEMA_VERSION:
        raise ConfigError(where, "meta.schema",
                          f"inventory schema version {SCHEMA_VERSION}, found {meta.get('schema')}")
    inv.dropped = dict(json.loads(meta.get("dropped", "{}")))
    for (state,) in con.execute("SELECT state FROM assets ORDER BY rowid"):
        a = Asset.from_state(json.loads(state))
        inv._assets[a.id] = a
        inv._by_ip.setdefault(a.ip, []).append(a)
    for aid, state in con.execute("SELECT asset_id, state FROM devices ORDER BY rowid"):
        d = Device.from_state(json.loads(state))
        inv._assets[aid].devices[d.unit] = d
    for aid, unit, name, state in con.execute(
            "SELECT asset_id, unit, name, state FROM register_tables ORDER BY rowid"):
        table = RegisterTable.from_state(name, inv.limits, json.loads(state))
        inv._assets[aid].devices[unit].tables[name] = table
    for key, state in con.execute("SELECT key, state FROM cycles ORDER BY rowid"):
        inv._cycles[tuple(json.loads(key))] = Cycle.from_state(json.loads(state))
