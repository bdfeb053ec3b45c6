"""Splitting a report into TAXII envelopes no larger than the API root's ``max_content_length``.

Pure code.  Objects keep their order (markings and definitions first, the
report last), so a recipient that stores parts as they come never holds a
report whose references have not arrived.
"""

from __future__ import annotations

import json
from typing import Any

from otsentry.common.errors import OtSentryError

__all__ = ["envelope_bytes", "split_envelopes"]

_EMPTY = len(b'{"objects": []}')
_SEP = len(b", ")


def envelope_bytes(objects: list[dict[str, Any]]) -> bytes:
    """The TAXII 2.1 envelope of ``objects`` as the request body (UTF-8 JSON)."""
    return json.dumps({"objects": objects}, ensure_ascii=False).encode()


def split_envelopes(objects: list[dict[str, Any]], max_bytes: int) -> list[list[dict[str, Any]]]:
    """``objects`` in consecutive groups whose envelopes are at most ``max_bytes`` long.

    Raises:
        OtSentryError: one object alone is larger than ``max_bytes``.
    """
    parts: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = _EMPTY
    for obj in objects:
        n = len(json.dumps(obj, ensure_ascii=False).encode())
        if _EMPTY + n > max_bytes:
            raise OtSentryError(f"{obj.get('id')} alone is {n} bytes, more than the server's "
                                f"max_content_length of {max_bytes} bytes")
        if current and size + _SEP + n > max_bytes:
            parts.append(current)
            current, size = [], _EMPTY
        size += n + (_SEP if current else 0)
        current.append(obj)
    if current:
        parts.append(current)
    return parts
