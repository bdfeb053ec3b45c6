"""Device identification reads: FC 43/14 read device identification and FC 17 report server id.

Both tell a reader the vendor, product and firmware of a device ([AP] §6.13,
§6.21): routine for an inventory poll by the usual master, reconnaissance
from a host that never polled the device.
"""

from __future__ import annotations

from typing import Any, Final

from otsentry.agent.detect._entry import Entry
from otsentry.agent.detect._family import Family
from otsentry.agent.modbus import spec
from otsentry.common.finding import Severity

__all__ = ["Recon"]

_S = Severity
_CONTEXT = {"learned-master": _S.INFO, "new-host": _S.HIGH}
ENTRIES: Final = (
    Entry("modbus.device-id", "Device identification read (FC 43/14)", _S.MEDIUM, ("T0888",),
          "A client read a device's identification (vendor, product, revision). Info when the "
          "device's usual master does it, high from a host never seen before.", context=_CONTEXT),
    Entry("modbus.report-server-id", "Server id read (FC 17)", _S.MEDIUM, ("T0888",),
          "A client asked a device for its server id and run status. Info when the device's "
          "usual master does it, high from a host never seen before.", context=_CONTEXT),
)


class Recon(Family):
    """FC 43/14 and FC 17 requests, graded by who asks."""

    ENTRIES = ENTRIES
    REQUESTS = {43: "device_id", 17: "server_id"}

    def device_id(self, msg: Any, flow: Any) -> None:
        if getattr(msg, "mei_type", None) != spec.MEI_DEVICE_ID:
            return
        code = spec.READ_DEVICE_ID_CODES.get(msg.read_code, f"code {msg.read_code}")
        self.report("modbus.device-id", (flow.client, flow.server), msg.ts, flow,
                    f"{flow.client} read the identification ({code}) of device {flow.server} "
                    f"unit {msg.unit}.", unit=msg.unit, fc=43, frames=(msg.frame,),
                    details={"read_code": str(msg.read_code), "object_id": str(msg.object_id)})

    def server_id(self, msg: Any, flow: Any) -> None:
        self.report("modbus.report-server-id", (flow.client, flow.server), msg.ts, flow,
                    f"{flow.client} asked device {flow.server} unit {msg.unit} for its server id.",
                    unit=msg.unit, fc=17, frames=(msg.frame,))
