"""Function codes outside the public set, and broadcast writes.

User-defined (65-72, 100-110), reserved and unassigned function codes
([AP] §5) have no place on most plant networks.  FC 90 is left to the UMAS
family.  A write to unit 0 is a broadcast ([AP] §2.2 on serial lines): a real
broadcast gets no reply, while many TCP devices simply answer on unit 0, so
only an unanswered write to unit 0 is reported.
"""

from __future__ import annotations

from typing import Any, Final

from otsentry.agent.detect._entry import Entry
from otsentry.agent.detect._family import Family
from otsentry.agent.modbus import spec
from otsentry.common.finding import Severity

__all__ = ["Functions"]

_S = Severity
ENTRIES: Final = (
    Entry("modbus.nonstandard-function", "User-defined, reserved or unknown function code",
          _S.MEDIUM, ("T0855",),
          "A client sent a function code that is user-defined, reserved or unassigned in the "
          "Modbus specification. Legitimate only for vendor tools that are known to use it."),
    Entry("modbus.broadcast-write", "Broadcast write (unit 0, no reply)", _S.HIGH,
          ("T0855", "T0831"),
          "A client wrote to unit 0 and no device answered: a broadcast that every device on a "
          "gateway's serial line executes. Writes to unit 0 that a device answers are not "
          "broadcasts and are not reported here."),
)

NONSTANDARD: Final = tuple(fc for fc in range(0, 128) if fc not in spec.PUBLIC and fc != 90)


class Functions(Family):
    """Nonstandard function codes (by table) and unanswered writes to unit 0."""

    ENTRIES = ENTRIES
    REQUESTS = {fc: "nonstandard" for fc in NONSTANDARD}
    STATUSES = {"unanswered": "unanswered"}

    def nonstandard(self, msg: Any, flow: Any) -> None:
        cls = spec.function_class(msg.fc)
        self.report("modbus.nonstandard-function", (flow.client, flow.server, msg.unit), msg.ts,
                    flow, f"{flow.client} sent {cls} function code {msg.fc} to {flow.server} "
                    f"unit {msg.unit}.", unit=msg.unit, fc=msg.fc, values=(msg.fc,),
                    frames=(msg.frame,), details={"function_class": cls})

    def unanswered(self, tx: Any) -> None:
        req = tx.request
        if req.unit != 0 or req.fc not in spec.WRITE_FUNCTIONS or req.KIND != "message":
            return
        flow = tx.flow
        self.report("modbus.broadcast-write", (flow.client, flow.server), req.ts, flow,
                    f"{flow.client} broadcast a {spec.function_name(req.fc)} to every device "
                    f"behind {flow.server} (unit 0, no reply).", unit=0, fc=req.fc,
                    addresses=_first_address(req), frames=(req.frame,))


def _first_address(msg: Any) -> tuple[int, ...]:
    addr = getattr(msg, "address", getattr(msg, "write_address", None))
    return () if addr is None else (addr,)
