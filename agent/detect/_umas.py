"""FC 90 (Schneider Electric UMAS): what matters among the engineering traffic.

Engineering and SCADA software sends FC 90 all the time for harmless status
reads, so FC 90 alone is no finding.  The UMAS function byte is what counts:

- 0x40 start PLC, 0x41 stop PLC: change of operating mode (T0858);
- 0x30-0x32 initialize/transfer/end a strategy *upload* in UMAS terms, i.e.
  engineering PC to PLC: a program download in ATT&CK terms (T0843);
- 0x33-0x35 the UMAS strategy *download*, PLC to PC: a program upload (T0845);
- 0x10 take PLC reservation: the start of an engineering session, expected
  from the usual engineering station, not from a host never seen before.
"""

from __future__ import annotations

from typing import Any, Final

from otsentry.agent.detect._entry import Entry
from otsentry.agent.detect._family import Family
from otsentry.common.finding import Severity

__all__ = ["Umas"]

_S = Severity
ENTRIES: Final = (
    Entry("umas.start-stop", "PLC start or stop (UMAS 0x40/0x41)", _S.HIGH, ("T0858",),
          "A client started or stopped the PLC program over UMAS (FC 90). A stopped PLC no "
          "longer controls the process."),
    Entry("umas.program-download", "Program download to the PLC (UMAS 0x30-0x32)", _S.HIGH,
          ("T0843",), "A client transferred a control program into the PLC over UMAS (FC 90)."),
    Entry("umas.program-upload", "Program upload from the PLC (UMAS 0x33-0x35)", _S.MEDIUM,
          ("T0845",), "A client copied the control program out of the PLC over UMAS (FC 90)."),
    Entry("umas.reservation", "PLC reservation taken (UMAS 0x10)", _S.LOW, ("T0848",),
          "A client took the PLC's engineering reservation. Info from the known engineering "
          "station, high from a host never seen before or a second host on the same PLC.",
          context={"learned-master": _S.INFO, "new-host": _S.HIGH}),
)

#: UMAS function byte -> (detector id, what it does, in words)
FUNCTIONS: Final[dict[int, tuple[str, str]]] = {
    0x40: ("umas.start-stop", "started the PLC"),
    0x41: ("umas.start-stop", "stopped the PLC"),
    0x30: ("umas.program-download", "began writing a program into the PLC"),
    0x31: ("umas.program-download", "wrote a program block into the PLC"),
    0x32: ("umas.program-download", "finished writing a program into the PLC"),
    0x33: ("umas.program-upload", "began reading the program out of the PLC"),
    0x34: ("umas.program-upload", "read a program block out of the PLC"),
    0x35: ("umas.program-upload", "finished reading the program out of the PLC"),
    0x10: ("umas.reservation", "took the engineering reservation of the PLC"),
}


class Umas(Family):
    """FC 90 requests with a UMAS function that changes or copies the PLC."""

    ENTRIES = ENTRIES
    REQUESTS = {90: "request"}

    def __init__(self, engine: Any) -> None:
        super().__init__(engine)
        self.holders = self.table("reservation-holders")

    def request(self, msg: Any, flow: Any) -> None:
        hit = FUNCTIONS.get(msg.function)
        if hit is None:
            return
        kind, what = hit
        severity = self._reservation(flow) if kind == "umas.reservation" else None
        self.report(kind, (flow.client, flow.server, kind), msg.ts, flow,
                    f"{flow.client} {what} at {flow.server} (UMAS function {msg.function:#04x}).",
                    unit=msg.unit, fc=90, values=(msg.function,), frames=(msg.frame,),
                    details={"umas_function": f"{msg.function:#04x}"}, severity=severity)

    def _reservation(self, flow: Any) -> Severity | None:
        """High when another host held this PLC's reservation before."""
        holders = self.holders.get_or_make(flow.server, set)
        other = bool(holders - {flow.client})
        if len(holders) < 16:
            holders.add(flow.client)
        return Severity.HIGH if other else None
