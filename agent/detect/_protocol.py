"""Protocol hygiene: non-Modbus on a Modbus port, malformed ADUs, violations,
responses nobody asked for, and repeated responses that disagree.

STYLE rule 6: violations are data.  The decoder reports them as events; this
family turns them into findings with the raw bytes as evidence.  Two normal
causes of unmatched responses are not reported: the first response of a
connection captured mid-stream, and a late answer to a request the pairing
already reported as unanswered.
"""

from __future__ import annotations

from typing import Any, Final

from otsentry.agent.detect._entry import Entry, Knob
from otsentry.agent.detect._family import Family
from otsentry.agent.modbus._events import Message
from otsentry.agent.transactions import Transaction
from otsentry.common.finding import Severity

__all__ = ["Protocol"]

_S = Severity
ENTRIES: Final = (
    Entry("net.not-modbus", "Other protocol on a Modbus port", _S.MEDIUM, ("T0869", "T0885"),
          "A connection on a Modbus port carries another protocol (HTTP, TLS, SSH...): a tunnel "
          "or a tool hiding in allowed traffic."),
    Entry("modbus.malformed", "Malformed Modbus frame", _S.MEDIUM, (),
          "Bytes on a Modbus connection that cannot be decoded (bad protocol id, bad length, "
          "short PDU...): a fuzzer, an exploit attempt or a broken device.", escalate_at=50),
    Entry("modbus.spec-violation", "Modbus specification violation", _S.LOW, (),
          "A decodable message that breaks a limit of the specification (quantity out of range, "
          "byte count mismatch...) or a pairing oddity. Quirks of known devices (servers that "
          "do not echo the transaction id) are info.", escalate_at=100),
    Entry("net.tcp-violation", "TCP/IP violation on a Modbus connection", _S.MEDIUM, ("T0830",),
          "Overlapping TCP segments with different bytes (injection or evasion), invalid TCP "
          "flag combinations, or IP fragments on a Modbus port.", escalate_at=50),
    Entry("modbus.unmatched-response", "Response without a request", _S.LOW, ("T0856", "T0830"),
          "A device answered a request nobody sent: a spoofed or injected reporting message. "
          "Not reported: the first responses of a connection captured mid-stream, and late "
          "answers to requests already reported unanswered.", escalate_at=5,
          knobs={"midstream_grace_s": Knob(2.0, "seconds after the first packet of a connection "
                                            "captured mid-stream during which responses without "
                                            "a request are expected")}),
    Entry("modbus.duplicate-response", "Repeated response with different values", _S.HIGH,
          ("T0856", "T0830"),
          "A second response to the same request carries different values than the first: "
          "someone is injecting reporting messages."),
)

#: decoder/pairing violation -> severity (anything else: the entry's default)
VIOLATION_SEVERITY: Final[dict[str, Severity]] = {
    "transaction-id-mismatch": _S.INFO, "function-mismatch": _S.LOW,
    "response-before-request": _S.LOW,
}
#: TCP/IP violation kind -> severity
NET_SEVERITY: Final[dict[str, Severity]] = {
    "overlap-mismatch": _S.MEDIUM, "invalid-tcp-flags": _S.LOW, "ip-fragment": _S.LOW,
}
_UNMATCHED = "modbus.unmatched-response"


class Protocol(Family):
    """Decoder events and pairing outcomes that are findings in themselves."""

    ENTRIES = ENTRIES
    EVENTS = {"not-modbus": "not_modbus", "malformed": "malformed", "violation": "violation"}
    STATUSES = {"unmatched": "unmatched", "duplicate": "duplicate", "unanswered": "unanswered"}
    EVERY_TX = "tx"

    def __init__(self, engine: Any) -> None:
        super().__init__(engine)
        self.expired = self.table("unanswered-keys")

    def not_modbus(self, e: Any, flow: Any) -> None:
        self.report("net.not-modbus", (flow.client, flow.server, flow.server_port), e.ts, flow,
                    f"{flow.client} and {flow.server} speak {e.protocol} on Modbus port "
                    f"{flow.server_port}.", frames=(e.frame,),
                    details={"protocol": e.protocol, "sample": e.sample[:32].hex()})

    def malformed(self, e: Any, flow: Any) -> None:
        who = flow.client if e.direction == 0 else flow.server
        self.report("modbus.malformed", (flow.client, flow.server), e.ts, flow,
                    f"{who} sent a malformed Modbus frame ({e.reason}) on "
                    f"{flow.client_endpoint} -> {flow.server_endpoint}.", unit=e.unit, fc=e.fc,
                    frames=(e.frame,), details={"reason": e.reason, "raw": e.raw[:64].hex()})

    def violation(self, e: Any, flow: Any) -> None:
        where = f" on {flow.client} -> {flow.server}" if flow is not None else ""
        self.report("net.tcp-violation", (e.kind,) + ((flow.client, flow.server) if flow else ()),
                    e.ts, flow, f"TCP/IP violation {e.kind}{where}.", frames=(e.frame,),
                    details={"kind": e.kind, "detail": e.detail or ""},
                    severity=NET_SEVERITY.get(e.kind))

    def tx(self, tx: Transaction, req: Message | None, rsp: Message | None) -> None:
        if tx.violations:
            for v in tx.violations:
                self._spec(tx, v)
        # a malformed ADU has no violations of its own (its reason is the finding)
        if req is not None and req.violations:
            for v in req.violations:
                self._spec(tx, v)
        if rsp is not None and rsp.violations:
            for v in rsp.violations:
                self._spec(tx, v)

    def _spec(self, tx: Any, v: str) -> None:
        flow, msg = tx.flow, tx.first
        self.report("modbus.spec-violation", (flow.client, flow.server, v), msg.ts, flow,
                    f"Modbus {v} between {flow.client} and {flow.server} unit {msg.unit}.",
                    unit=msg.unit, fc=msg.fc, frames=(msg.frame,), details={"violation": v},
                    severity=VIOLATION_SEVERITY.get(v))

    def unanswered(self, tx: Any) -> None:
        req = tx.request
        self.expired.get_or_make((tx.flow.id, req.tid, req.unit), lambda: True)

    def unmatched(self, tx: Any) -> None:
        rsp, flow = tx.response, tx.flow
        if self.expired.pop((flow.id, rsp.tid, rsp.unit), None):
            return  # a late answer to a request already reported unanswered
        if flow.midstream and rsp.ts - flow.first_ts < self.knob(_UNMATCHED, "midstream_grace_s") * 1e9:
            return  # the request was sent before the capture started
        self.report("modbus.unmatched-response", (flow.client, flow.server), rsp.ts, flow,
                    f"{flow.server} sent a response (function {rsp.fc}, unit {rsp.unit}) that "
                    f"{flow.client} never asked for.", unit=rsp.unit, fc=rsp.fc,
                    frames=(rsp.frame,), details={"tid": str(rsp.tid)})

    def duplicate(self, tx: Any) -> None:
        rsp, prev, flow = tx.response, tx.previous, tx.flow
        if prev is None or prev.fields() == rsp.fields():
            return
        self.report("modbus.duplicate-response", (flow.client, flow.server, rsp.unit), rsp.ts,
                    flow, f"{flow.server} answered the same request twice with different "
                    f"values (function {rsp.fc}, unit {rsp.unit}).", unit=rsp.unit, fc=rsp.fc,
                    frames=(prev.frame, rsp.frame),
                    details={"first": str(prev.fields())[:200], "second": str(rsp.fields())[:200]})
