"""Inventory changes: what the detection engine and the collector are told.

Kinds (:data:`CHANGE_KINDS`):

- ``new-asset``: a network asset (IP, MAC, VLAN) sent or received Modbus for the
  first time.  ``detail``: ``role``, ``known_macs`` (other MACs already seen with
  this IP, for "known IP, new MAC" checks).
- ``new-device``: a unit id answered for the first time on a server.  Emitted for
  every device, the first one of a new asset included; ``detail``: ``first``
  (True for the asset's first device), ``units`` (all units now known).
- ``new-client``: a client talked to a server (any unit) for the first time.
  ``ip``/``mac``/``vlan`` are the server's; ``detail``: ``client``, ``client_mac``,
  ``fc`` (function code of the first request).
- ``device-id-change``: an FC43/14 object or the FC17 server id of a device
  changed value.  ``detail``: ``field`` (object name or ``server_id``), ``old``, ``new``.
- ``role-change``: the role of an asset changed (``server`` -> ``gateway``,
  ``client`` -> ``both``...).  ``detail``: ``old``, ``new``.

``ts`` is the capture time (ns) of the message that caused the change.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["InventoryChange", "CHANGE_KINDS"]

CHANGE_KINDS: Final = frozenset(
    {"new-asset", "new-device", "new-client", "device-id-change", "role-change"})


class InventoryChange:
    """One change of the inventory.

    Attributes:
        kind: one of :data:`CHANGE_KINDS`.
        ts: capture time in integer nanoseconds.
        ip, mac, vlan: the asset the change is about (mac/vlan may be None).
        unit: the Modbus unit id concerned, or None.
        detail: kind-specific facts (plain JSON values), see the module docstring.
    """

    __slots__ = ("kind", "ts", "ip", "mac", "vlan", "unit", "detail")

    def __init__(self, kind: str, ts: int, ip: str, mac: str | None, vlan: int | None,
                 unit: int | None = None, detail: dict[str, Any] | None = None) -> None:
        self.kind = kind
        self.ts = ts
        self.ip = ip
        self.mac = mac
        self.vlan = vlan
        self.unit = unit
        self.detail = detail or {}

    def to_dict(self) -> dict[str, Any]:
        """The change as plain JSON values."""
        return {"kind": self.kind, "ts": self.ts, "ip": self.ip, "mac": self.mac,
                "vlan": self.vlan, "unit": self.unit, "detail": self.detail}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, InventoryChange):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"InventoryChange({self.kind!r}, {self.ip}, unit={self.unit}, {self.detail})"
