"""A device's identity changed: firmware replaced, or the device swapped.

Fed by the inventory's ``device-id-change`` changes (see
:mod:`otsentry.agent.inventory._changes`): an FC43/14 device identification
object (vendor, product code, revision...), the FC17 server id, or the
certificate of a Modbus/TLS server differs from the value the inventory held.
A revision change is how a firmware update shows on the wire, wanted or not
(Triton and Industroyer-class tools replace or patch firmware); a vendor or
product change means another device answers at that address.
"""

from __future__ import annotations

from typing import Any, Final

from otsentry.agent.detect._entry import Entry
from otsentry.agent.detect._family import Family
from otsentry.common.finding import Severity

__all__ = ["Identity"]

ENTRIES: Final = (
    Entry("inventory.device-id-change", "Device identity changed", Severity.HIGH,
          ("T0839", "T0857", "T0849"),
          "A device reported an identification (FC 43/14 vendor, product or revision, FC 17 "
          "server id, or its Modbus/TLS certificate) different from the one it reported "
          "before: new firmware, or another device at its address. Confirm it with the "
          "plant's change records."),
)


class Identity(Family):
    """Turns the inventory's ``device-id-change`` changes into findings."""

    ENTRIES = ENTRIES
    CHANGES = {"device-id-change": "changed"}

    def changed(self, change: Any) -> None:
        d = change.detail
        unit = change.unit
        where = f"{change.ip}" + (f" unit {unit}" if unit is not None else "")
        if "tls_certificate" in d:
            field, old, new = "TLS certificate", d["tls_certificate"]["old"].get("sha256", ""), \
                d["tls_certificate"]["new"].get("sha256", "")
        else:
            field, old, new = str(d.get("field", "")), str(d.get("old", "")), str(d.get("new", ""))
        self.report("inventory.device-id-change", (change.ip, unit, field), change.ts, None,
                    f"{where} changed its {field} from {old!r} to {new!r}: new firmware or "
                    "a different device.", unit=unit, server=change.ip, client="",
                    details={"field": field, "old": old[:200], "new": new[:200]})
