"""Asset inventory and passive fingerprinting: who is on the wire, what they are, how they talk.

Public API::

    from otsentry.agent.inventory import Inventory, InventoryChange
    inv = Inventory(state_dir=None, user_map=None)   # a pipeline sink: inv(flow, events, txs)
    inv.drain_changes()                              # [InventoryChange], oldest first
    inv.assets(); inv.asset("192.168.0.20"); inv.cycles(); inv.to_dict()
    inv.save(); Inventory.load(state_dir)

See :mod:`._inventory` for the sink, :mod:`._assets` for assets, roles and
devices, :mod:`._registers` and :mod:`._types` for register maps and type
guesses, :mod:`._cycles` for polling cycles, :mod:`._usermap` for the user map
and :mod:`._store` for the SQLite state.
"""

from otsentry.agent.inventory._assets import Asset, Device, Limits, asset_id
from otsentry.agent.inventory._changes import CHANGE_KINDS, InventoryChange
from otsentry.agent.inventory._cycles import Cycle
from otsentry.agent.inventory._inventory import STATE_FILE, Inventory
from otsentry.agent.inventory._oui import mac_kind, oui_vendor
from otsentry.agent.inventory._registers import TABLES, modicon_ref
from otsentry.agent.inventory._snapshot import Snapshot, snapshots
from otsentry.agent.inventory._types import TYPES, WORD_ORDERS, interpret
from otsentry.agent.inventory._usermap import (
    RegisterSpec,
    UserMap,
    load_user_map,
    parse_ref,
    parse_user_map,
)

__all__ = [
    "Inventory", "InventoryChange", "CHANGE_KINDS", "Asset", "Device", "Cycle", "Limits",
    "asset_id", "STATE_FILE", "oui_vendor", "mac_kind", "TABLES", "modicon_ref", "TYPES",
    "WORD_ORDERS", "interpret", "UserMap", "RegisterSpec", "load_user_map", "parse_user_map",
    "parse_ref", "Snapshot", "snapshots",
]
