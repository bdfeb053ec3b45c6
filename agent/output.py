"""JSON lines: one object per transaction, plus malformed frames and violations.

A sink (see :mod:`.pipeline`) that writes ``decode``'s output.  Every line is
a JSON object with a ``type``: ``transaction`` (request and/or response, with
``status`` ok, exception, unanswered, unmatched or duplicate), ``malformed``
(bytes that could not be decoded, hex evidence), ``not-modbus`` (a flow on a
Modbus port carrying another protocol) or ``violation`` (TCP/IP-level).
Times are ISO 8601 UTC with nanoseconds; addresses are 0-based, as on the wire.

:func:`transaction_record` defines a transaction's object; the writer prints
the same object with :func:`transaction_line`, which encodes only the decoded
fields with :mod:`json` and writes the fixed keys itself (a test checks the
two agree byte for byte on every shared capture).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final, TextIO

from otsentry.agent.flows import Flow
from otsentry.agent.modbus import spec
from otsentry.agent.modbus._events import ExceptionResponse, Malformed, Message
from otsentry.agent.transactions import Transaction

__all__ = ["JsonLinesWriter", "iso_ns", "transaction_record", "transaction_line"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _compact_dumps() -> Callable[[Any], str]:
    """``json.dumps`` with compact separators and UTF-8 text, made once.

    ``JSONEncoder.encode`` builds its C encoder again on every call, which costs
    more than encoding a small record; the encoder is built here once instead, with
    exactly the arguments ``JSONEncoder.iterencode`` passes it.
    """
    enc = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator: the plain encoder
        return enc.encode
    chunks = make(None, enc.default, json.encoder.encode_basestring, None, ":", ",",
                  False, False, True)

    def dumps(obj: Any) -> str:
        return "".join(chunks(obj, 0))
    return dumps


_DUMPS: Final = _compact_dumps()


class _SecondCache:
    """The last second formatted by :func:`iso_ns` (consecutive packets share it)."""

    __slots__ = ("sec", "text")

    def __init__(self) -> None:
        self.sec = -1
        self.text = ""


_last_second: Final = _SecondCache()


def iso_ns(ts: int) -> str:
    """Integer nanoseconds since the epoch to ``YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ``."""
    sec, ns = divmod(ts, 1_000_000_000)
    cache = _last_second
    if sec != cache.sec:  # consecutive packets share the second: format it once
        cache.sec = sec
        cache.text = f"{datetime.fromtimestamp(sec, UTC):%Y-%m-%dT%H:%M:%S}."
    return f"{cache.text}{ns:09d}Z"


def _flow_fields(flow: Flow | None) -> dict[str, Any]:
    if flow is None:
        return {}
    return {
        "transport": flow.transport,
        "client": flow.client_endpoint, "server": flow.server_endpoint,
        "client_mac": flow.client_mac, "server_mac": flow.server_mac, "vlan": flow.vlan,
    }


def _response_fields(req: Message | Malformed | None, rsp: Message | Malformed) -> dict[str, Any]:
    fields = rsp.fields()
    if (req is not None and rsp.fc in (1, 2) and "values" in fields
            and isinstance(req, Message) and hasattr(req, "quantity")):
        fields["values"] = fields["values"][: getattr(req, "quantity")]
    return fields


def transaction_record(tx: Transaction) -> dict[str, Any]:
    """The JSON object of one transaction."""
    req, rsp = tx.request, tx.response
    first = req if req is not None else rsp
    assert first is not None
    rec: dict[str, Any] = {"type": "transaction", "status": tx.status, "ts": iso_ns(first.ts)}
    # Messages carry fc without the exception bit; a malformed ADU carries the raw code.
    rec.update(_flow_fields(tx.flow))
    fc: int = first.fc  # type: ignore[assignment]  # paired ADUs always have one
    rec.update({"unit": first.unit, "tid": first.tid, "fc": fc & 0x7F,
                "function": spec.function_name(fc)})
    violations = list(tx.violations)
    if req is not None:
        rec["request"] = {"ts": iso_ns(req.ts), "frame": req.frame, **req.fields()}
        violations.extend(req.violations)
    if rsp is not None:
        rec["response"] = {"ts": iso_ns(rsp.ts), "frame": rsp.frame, **_response_fields(req, rsp)}
        violations.extend(rsp.violations)
    exc = rsp if isinstance(rsp, ExceptionResponse) else None  # is_exception: this class only
    rec["exception_code"] = exc.code if exc is not None else None
    rec["exception"] = exc.code_name if exc is not None else None
    rec["latency_ms"] = round(tx.latency_ns / 1e6, 6) if tx.latency_ns is not None else None
    rec["violations"] = violations
    return rec


def _value(v: object) -> str:
    """One JSON value: ints and None directly, everything else through :mod:`json`."""
    if type(v) is int:
        return str(v)
    if v is None:
        return "null"
    return _DUMPS(v)


def _flow_json(flow: Flow | None) -> str:
    """The flow's keys as a JSON fragment (``,"transport":...``), made once per flow."""
    if flow is None:
        return ""
    text = flow.json_fields
    if text is None:
        text = _DUMPS(_flow_fields(flow))
        text = "," + text[1:-1] if len(text) > 2 else ""
        flow.json_fields = text
    return text


def _message_json(key: str, ts: int, frame: int, fields: dict[str, Any]) -> str:
    body = _DUMPS(fields) if fields else "{}"
    sep = "," if len(body) > 2 else ""
    return f',"{key}":{{"ts":"{iso_ns(ts)}","frame":{frame}{sep}{body[1:]}'


def transaction_line(tx: Transaction) -> str:
    """``transaction_record(tx)`` as a JSON line (without the newline), made faster."""
    req, rsp = tx.request, tx.response
    first = req if req is not None else rsp
    assert first is not None
    fc: int = first.fc  # type: ignore[assignment]
    ts = iso_ns(first.ts)
    # status and function names are plain identifiers ([a-z0-9_-]): nothing to escape
    parts = [
        f'{{"type":"transaction","status":"{tx.status}","ts":"{ts}"', _flow_json(tx.flow),
        f',"unit":{_value(first.unit)},"tid":{_value(first.tid)},"fc":{fc & 0x7F},'
        f'"function":"{spec.function_name(fc)}"',
    ]
    violations = list(tx.violations)
    if req is not None:
        parts.append(_message_json("request", req.ts, req.frame, req.fields()))
        violations.extend(req.violations)
    if rsp is not None:
        parts.append(_message_json("response", rsp.ts, rsp.frame, _response_fields(req, rsp)))
        violations.extend(rsp.violations)
    if isinstance(rsp, ExceptionResponse):
        parts.append(f',"exception_code":{_value(rsp.code)},"exception":{_DUMPS(rsp.code_name)}')
    else:
        parts.append(',"exception_code":null,"exception":null')
    latency = tx.latency_ns
    parts.append(f',"latency_ms":{round(latency / 1e6, 6)!r}' if latency is not None
                 else ',"latency_ms":null')
    parts.append(f',"violations":{_DUMPS(violations)}}}' if violations else ',"violations":[]}')
    return "".join(parts)


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
    elif e.KIND == "tls-certificate":
        rec["certificate"] = e.certificate.to_dict()
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
        self._dumps = _DUMPS

    def __call__(self, flow: Flow | None, events: list, txs: list) -> None:
        lines: list[str] = []
        for e in events:
            if isinstance(e, Message):
                continue  # written with its transaction
            kind = e.KIND
            if (kind == "gap" and not self.gaps) or (kind == "malformed" and e.fc is not None):
                continue  # a malformed ADU with a function code is written with its transaction
            if kind == "connection":
                continue  # flows are not transactions; --stats counts them
            lines.append(_DUMPS(_event_record(flow, e)))
        for tx in txs:
            lines.append(transaction_line(tx))
        if lines:
            lines.append("")
            self.out.write("\n".join(lines))
            self.lines += len(lines) - 1
