"""``decode --stats``: counts per ADU, the way tshark counts, from the one pipeline.

A sink (see :mod:`.pipeline`) that counts every request and response ADU by
function code (exception responses under their code without the 0x80 bit),
exceptions by code, the distinct ``[source ip, destination ip, unit]`` triples,
violations by kind, flows that turned out not to be Modbus, and transaction
outcomes.  Malformed ADUs whose function code could be read count under it,
as tshark counts them.
"""

from __future__ import annotations

from typing import Any

from otsentry.agent.flows import Flow
from otsentry.agent.modbus._events import (
    ExceptionResponse,
    Gap,
    Malformed,
    Message,
    NotModbus,
    Violation,
)

__all__ = ["Stats"]


def _by_int_key(c: dict[int, int]) -> dict[str, int]:
    return {str(k): c[k] for k in sorted(c)}


class Stats:
    """Counting sink; :meth:`as_dict` gives the ``--stats --json`` object."""

    def __init__(self) -> None:
        # Plain dicts counted with get(): as fast interpreted as compiled.
        self.requests: dict[int, int] = {}
        self.responses: dict[int, int] = {}
        self.exceptions: dict[int, int] = {}
        self.violations: dict[str, int] = {}
        self.transactions: dict[str, int] = {}
        self.non_modbus: dict[str, int] = {}
        self.gaps = 0
        self.gap_bytes = 0
        self._endpoints: dict[int, set[int]] = {}
        self._flows: dict[int, Flow] = {}

    def __call__(self, flow: Flow | None, events: list, txs: list) -> None:
        violations = self.violations
        seen: set[int] | None = None  # this flow's endpoint keys
        if flow is not None:
            seen = self._endpoints.get(flow.id)
            if seen is None and events:
                self._endpoints[flow.id] = seen = set()
                self._flows[flow.id] = flow
        for e in events:
            if isinstance(e, Message):
                fc = e.fc
                if e.is_request:
                    self.requests[fc] = self.requests.get(fc, 0) + 1
                    if seen is not None:
                        seen.add(e.unit << 1 | 1)  # an int, no tuple per ADU
                else:
                    self.responses[fc] = self.responses.get(fc, 0) + 1
                    if isinstance(e, ExceptionResponse):
                        self.exceptions[e.code] = self.exceptions.get(e.code, 0) + 1
                    if seen is not None:
                        seen.add(e.unit << 1)
                for v in e.violations:
                    violations[v] = violations.get(v, 0) + 1
            elif isinstance(e, Malformed):
                violations[e.reason] = violations.get(e.reason, 0) + 1
                if e.fc is not None:
                    is_req = e.direction == 0
                    counts = self.requests if is_req else self.responses
                    counts[e.fc & 0x7F] = counts.get(e.fc & 0x7F, 0) + 1
                    if seen is not None and e.unit is not None:
                        seen.add(e.unit << 1 | is_req)
            elif isinstance(e, Gap):
                self.gaps += 1
                self.gap_bytes += e.nbytes
            elif isinstance(e, NotModbus):
                self.non_modbus[e.protocol] = self.non_modbus.get(e.protocol, 0) + 1
                violations["not-modbus"] = violations.get("not-modbus", 0) + 1
            elif isinstance(e, Violation):
                violations[e.kind] = violations.get(e.kind, 0) + 1
        for tx in txs:
            status = tx.status
            self.transactions[status] = self.transactions.get(status, 0) + 1
            for v in tx.violations:
                violations[v] = violations.get(v, 0) + 1

    def endpoints(self) -> list[list[Any]]:
        """Sorted distinct ``[source ip, destination ip, unit]`` of every ADU."""
        out = set()
        for fid, keys in self._endpoints.items():
            f = self._flows[fid]
            for key in keys:
                unit, is_request = key >> 1, key & 1
                out.add((f.client, f.server, unit) if is_request else (f.server, f.client, unit))
        return [list(t) for t in sorted(out)]

    def as_dict(self, pipeline: Any = None) -> dict[str, Any]:
        """The figures as one JSON-ready object (keys documented in ``decode --help``)."""
        out: dict[str, Any] = {
            "requests_by_function": _by_int_key(self.requests),
            "responses_by_function": _by_int_key(self.responses),
            "exceptions_by_code": _by_int_key(self.exceptions),
            "endpoints": self.endpoints(),
            "violations_by_kind": dict(sorted(self.violations.items())),
            "transactions": dict(sorted(self.transactions.items())),
            "non_modbus_flows": sum(self.non_modbus.values()),
            "non_modbus_protocols": dict(sorted(self.non_modbus.items())),
            "gaps": self.gaps,
            "gap_bytes": self.gap_bytes,
        }
        if pipeline is not None:
            p = pipeline.parser
            out["packets"] = pipeline.frames
            out["flows"] = pipeline.flows_created
            out["flows_evicted"] = pipeline.flows_evicted
            out["tcp"] = pipeline.tcp.as_dict()
            out["ip"] = {"non_ip": p.non_ip, "non_transport": p.non_transport,
                         "fragments": p.fragments, "fragments_on_modbus_ports": p.fragments_modbus,
                         "truncated_headers": p.truncated, "unknown_linktype": p.unknown_linktype}
        return out
