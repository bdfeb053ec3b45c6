"""``decode --stats``: counts per ADU, the way tshark counts, from the one pipeline.

A sink (see :mod:`.pipeline`) that counts every request and response ADU by
function code (exception responses under their code without the 0x80 bit),
exceptions by code, the distinct ``[source ip, destination ip, unit]`` triples,
violations by kind, flows that turned out not to be Modbus, and transaction
outcomes.  Malformed ADUs whose function code could be read count under it,
as tshark counts them.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from otsentry.agent.flows import Flow

__all__ = ["Stats"]


def _by_int_key(c: Counter) -> dict[str, int]:
    return {str(k): c[k] for k in sorted(c)}


class Stats:
    """Counting sink; :meth:`as_dict` gives the ``--stats --json`` object."""

    def __init__(self) -> None:
        self.requests: Counter[int] = Counter()
        self.responses: Counter[int] = Counter()
        self.exceptions: Counter[int] = Counter()
        self.violations: Counter[str] = Counter()
        self.transactions: Counter[str] = Counter()
        self.non_modbus: Counter[str] = Counter()
        self.gaps = 0
        self.gap_bytes = 0
        self._endpoints: dict[int, set[int]] = {}
        self._flows: dict[int, Flow] = {}

    def __call__(self, flow: Flow | None, events: list, txs: list) -> None:
        for e in events:
            kind = e.KIND
            if kind == "message":
                if e.is_request:
                    self.requests[e.fc] += 1
                else:
                    self.responses[e.fc] += 1
                    if e.is_exception:
                        self.exceptions[e.code] += 1
                self._endpoint(flow, e.is_request, e.unit)
                for v in e.violations:
                    self.violations[v] += 1
            elif kind == "malformed":
                self.violations[e.reason] += 1
                if e.fc is not None:
                    is_req = e.direction == 0
                    (self.requests if is_req else self.responses)[e.fc & 0x7F] += 1
                    self._endpoint(flow, is_req, e.unit)
            elif kind == "gap":
                self.gaps += 1
                self.gap_bytes += e.nbytes
            elif kind == "not-modbus":
                self.non_modbus[e.protocol] += 1
                self.violations["not-modbus"] += 1
            else:
                self.violations[e.kind] += 1
        for tx in txs:
            self.transactions[tx.status] += 1
            for v in tx.violations:
                self.violations[v] += 1

    def _endpoint(self, flow: Flow | None, is_request: bool, unit: int | None) -> None:
        if flow is None or unit is None:
            return
        seen = self._endpoints.get(flow.id)
        if seen is None:
            self._endpoints[flow.id] = seen = set()
            self._flows[flow.id] = flow
        seen.add(unit << 1 | is_request)  # an int, no tuple per ADU

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
