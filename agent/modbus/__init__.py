"""Modbus/TCP decoding: sans-I/O, table-driven, one decoder for every output.

Public API::

    from otsentry.agent.modbus import Decoder, NEED_DATA, REQUEST, RESPONSE
    from otsentry.agent.modbus import decode_request, decode_response
    from otsentry.agent.modbus import events, spec

See :mod:`._decoder` for the stream contract and :mod:`._events` for the events.
"""

from otsentry.agent.modbus import _events as events
from otsentry.agent.modbus import _spec as spec
from otsentry.agent.modbus._decoder import MAX_BAD_HEADERS, NEED_DATA, Decoder, classify_payload
from otsentry.agent.modbus._events import (
    REQUEST,
    RESPONSE,
    ExceptionResponse,
    Gap,
    Malformed,
    Message,
    NotModbus,
    Request,
    Violation,
    Response,
)
from otsentry.agent.modbus._pdu import decode_request, decode_response

__all__ = [
    "Decoder", "NEED_DATA", "MAX_BAD_HEADERS", "REQUEST", "RESPONSE", "Message", "Request",
    "Response", "ExceptionResponse", "Malformed", "Gap", "NotModbus", "Violation", "classify_payload",
    "decode_request", "decode_response", "events", "spec",
]
