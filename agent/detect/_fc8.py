"""FC 8 diagnostics: restart, listen-only, counter clearing and the other sub-functions.

[AP] §6.8.1.  Restart communications (sub-function 1) restarts the device's
port; force listen-only mode (4) silences it until a restart; clearing the
counters (10, 20) wipes the device's own record of errors.  The read-only
sub-functions are used by some masters as a health check, so their severity
depends on who sends them.
"""

from __future__ import annotations

from typing import Any, Final

from otsentry.agent.detect._entry import Entry
from otsentry.agent.detect._family import Family
from otsentry.common.finding import Severity

__all__ = ["Diagnostics"]

_S = Severity
ENTRIES: Final = (
    Entry("modbus.fc8-restart", "Device restart command (FC 8/1)", _S.HIGH, ("T0816",),
          "A client told a device to restart its communications (diagnostics sub-function 1). "
          "The device drops off the network while it restarts."),
    Entry("modbus.fc8-listen-only", "Force listen-only mode (FC 8/4)", _S.HIGH, ("T0814",),
          "A client put a device into listen-only mode (diagnostics sub-function 4): it stops "
          "answering every master until it is restarted."),
    Entry("modbus.fc8-clear-counters", "Diagnostic counters cleared (FC 8/10, 8/20)", _S.MEDIUM,
          ("T0872",), "A client cleared a device's diagnostic counters or overrun flag, which "
          "erases the device's own record of communication errors."),
    Entry("modbus.fc8-other", "Other diagnostics request (FC 8)", _S.LOW, ("T0888",),
          "A client used another diagnostics sub-function (echo, counter reads). Routine for some "
          "masters; unusual from a host that does not poll the device.",
          context={"learned-master": _S.INFO, "new-host": _S.MEDIUM}),
)

#: sub-function -> (detector id, what it does, in words)
SUBFUNCTIONS: Final[dict[int, tuple[str, str]]] = {
    1: ("modbus.fc8-restart", "restart its communications"),
    4: ("modbus.fc8-listen-only", "go into listen-only mode"),
    10: ("modbus.fc8-clear-counters", "clear its diagnostic counters"),
    20: ("modbus.fc8-clear-counters", "clear its overrun counter"),
}


class Diagnostics(Family):
    """FC 8 requests, graded by sub-function."""

    ENTRIES = ENTRIES
    REQUESTS = {8: "request"}

    def request(self, msg: Any, flow: Any) -> None:
        sub = msg.sub_function
        kind, what = SUBFUNCTIONS.get(sub, ("modbus.fc8-other", f"run diagnostics {msg.sub_function_name}"))
        self.report(kind, (flow.client, flow.server, msg.unit, sub), msg.ts, flow,
                    f"{flow.client} told device {flow.server} unit {msg.unit} to {what}.",
                    unit=msg.unit, fc=8, values=(sub,), frames=(msg.frame,),
                    details={"sub_function": msg.sub_function_name})
