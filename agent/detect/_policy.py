"""Write policy: writes the configured allow-list does not cover.

Off by default.  With ``[detect.policy] writes = "allow-listed"``, every
write request (FC 5, 6, 15, 16, 21, 22, 23) must match one of the
``[[detect.policy.allow_writes]]`` rules (client, server, unit, table,
addresses), or it is a finding.
"""

from __future__ import annotations

from typing import Any, Final

from otsentry.agent.detect._entry import Entry
from otsentry.agent.detect._family import Family
from otsentry.agent.detect._writes import WRITES, write_points
from otsentry.agent.modbus import spec
from otsentry.common.finding import Severity

__all__ = ["WritePolicy"]

ENTRIES: Final = (
    Entry("policy.write-not-allowed", "Write the policy does not allow", Severity.HIGH,
          ("T0855", "T0836", "T0831"),
          "A client wrote to coils or registers that no [[detect.policy.allow_writes]] rule "
          "allows. Active only when the config sets [detect.policy] writes = \"allow-listed\"."),
)


class WritePolicy(Family):
    """Every write request checked against the allow-list."""

    ENTRIES = ENTRIES
    REQUESTS = {fc: "write" for fc in WRITES}

    def __init__(self, engine: Any) -> None:
        super().__init__(engine)
        self.rules = engine.config.allow_writes
        self.enabled = engine.config.write_policy != "off"

    def requests(self) -> dict[int, str]:
        return self.REQUESTS if self.enabled else {}

    def write(self, msg: Any, flow: Any) -> None:
        points = write_points(msg)
        if points is None:
            return
        table, first, values = points
        addresses = tuple(range(first, first + max(len(values), 1)))
        for rule in self.rules:
            if rule.matches("", flow.client, flow.server, msg.unit, msg.fc, addresses):
                return
        self.report("policy.write-not-allowed", (flow.client, flow.server, msg.unit, table),
                    msg.ts, flow, f"{flow.client} wrote {_what(table, first, values)} on "
                    f"{flow.server} unit {msg.unit}, which the write policy does not allow.",
                    unit=msg.unit, fc=msg.fc, addresses=addresses[:64], values=values[:64],
                    frames=(msg.frame,), details={"function": spec.function_name(msg.fc)})


def _what(table: str, first: int, values: tuple[int, ...]) -> str:
    name = table.replace("_", " ").rstrip("s")
    if len(values) == 1:
        return f"{values[0]} to {name} {first}"
    if not values:
        return f"{name} {first}"
    return f"{len(values)} values to {name}s {first}-{first + len(values) - 1}"
