"""JSON lines: one object per transaction, plus malformed frames and violations.

A sink (see :mod:`.pipeline`) that writes ``decode``'s output.  Every line is
a JSON object with a ``type``: ``transaction`` (request and/or response, with
``status`` ok, exception, unanswered, unmatched or duplicate), ``malformed``
(bytes that could not be decoded, hex evidence), ``not-modbus`` (a flow on a
Modbus port carrying another protocol) or ``violation`` (TCP/IP-level).
Times are ISO 8601 UTC with nanoseconds; addresses are 0-based, as on the wire.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, TextIO

from otsentry.agent.flows import Flow
from otsentry.agent.modbus import spec

__all__ = ["JsonLinesWriter", "iso_ns", "transaction_record"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


_last_second: list = [None, ""]


def iso_ns(ts: int) -> str:
    """Integer nanoseconds since the epoch to ``YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ``."""
    sec, ns = divmod(ts, 1_000_000_000)
    if sec != _last_second[0]:  # consecutive packets share the second: format it once
        _last_second[0] = sec
        _last_second[1] = f"{datetime.fromtimestamp(sec, timezone.utc):%Y-%m-%dT%H:%M:%S}."
    return f"{_last_second[1]}{ns:09d}Z"


def _flow_fields(flow: Flow | None) -> dict[str, Any]:
    if flow is None:
        return {}
    return {
        "transport": flow.transport,
        "client": flow.client_endpoint, "server": flow.server_endpoint,
        "client_mac": flow.client_mac, "server_mac": flow.server_mac, "vlan": flow.vlan,
    }


def transaction_record(tx: Any) -> dict[str, Any]:
    """The JSON object of one transaction."""
    req, rsp = tx.request, tx.response
    first = req if req is not None else rsp
    rec: dict[str, Any] = {"type": "transaction", "status": tx.status, "ts": iso_ns(first.ts)}
    # Messages carry fc without the exception bit; a malformed ADU carries the raw code.
    rec.update(_flow_fields(tx.flow))
    rec.update({"unit": first.unit, "tid": first.tid, "fc": first.fc & 0x7F,
                "function": spec.function_name(first.fc)})
    violations = list(tx.violations)
    if req is not None:
        rec["request"] = {"ts": iso_ns(req.ts), "frame": req.frame, **req.fields()}
        violations.extend(req.violations)
    if rsp is not None:
        fields = rsp.fields()
        if req is not None and "values" in fields and hasattr(req, "quantity") and rsp.fc in (1, 2):
            fields["values"] = fields["values"][: req.quantity]
        rec["response"] = {"ts": iso_ns(rsp.ts), "frame": rsp.frame, **fields}
        violations.extend(rsp.violations)
    exc = rsp is not None and rsp.is_exception
    rec["exception_code"] = rsp.code if exc else None
    rec["exception"] = rsp.code_name if exc else None
    rec["latency_ms"] = round(tx.latency_ns / 1e6, 6) if tx.latency_ns is not None else None
    rec["violations"] = violations
    return rec


def _event_record(flow: Flow | None, e: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {"type": e.KIND, "ts": iso_ns(e.ts), "frame": e.frame}
    rec.update(_flow_fields(flow))
    if e.direction is not None:
        rec["direction"] = "request" if e.direction == 0 else "response"
    if e.KIND == "malformed":
        rec.update({"reason": e.reason, "offset": e.offset, "unit": e.unit, "tid": e.tid,
                    "fc": e.fc, "raw": e.raw.hex()})
    elif e.KIND == "not-modbus":
        rec.update({"protocol": e.protocol, "sample": e.sample.hex()})
    elif e.KIND == "gap":
        rec["bytes"] = e.nbytes
    else:
        rec.update({"kind": e.kind, "detail": e.detail})
    return rec


class JsonLinesWriter:
    """Sink that writes JSON lines to a text stream.

    Args:
        out: where lines go (stdout, or a file opened by the caller).
        gaps: also write a line for each gap in a TCP stream.
    """

    def __init__(self, out: TextIO, gaps: bool = True) -> None:
        self.out = out
        self.gaps = gaps
        self.lines = 0
        self._dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

    def __call__(self, flow: Flow | None, events: list, txs: list) -> None:
        write, dumps = self.out.write, self._dumps
        for e in events:
            kind = e.KIND
            if (kind == "message" or (kind == "gap" and not self.gaps)
                    or (kind == "malformed" and e.fc is not None)):  # written with its transaction
                continue
            write(dumps(_event_record(flow, e)) + "\n")
            self.lines += 1
        for tx in txs:
            write(dumps(transaction_record(tx)) + "\n")
            self.lines += 1
