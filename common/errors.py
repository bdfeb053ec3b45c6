"""The one error family of otsentry.

Each boundary raises exactly one public exception type: the Modbus decoder
raises only :class:`MalformedFrame`, capture sources raise :class:`CaptureError`,
configuration loading raises :class:`ConfigError`.  Anything else escaping a
boundary is a bug (and a fuzz-test failure).
"""

from __future__ import annotations

__all__ = [
    "OtSentryError",
    "MalformedFrame",
    "CaptureError",
    "ConfigError",
    "OutboxError",
    "PkiError",
    "TransportError",
    "MessageError",
]


class OtSentryError(Exception):
    """Base class of every error otsentry raises on purpose."""


class MalformedFrame(OtSentryError):
    """Bytes from the wire that cannot be decoded.

    Attributes:
        reason: short machine-readable reason, e.g. ``"short-pdu"``.
        offset: byte offset of the problem inside ``evidence``.
        evidence: the raw bytes that were being decoded (bounded by the caller).
    """

    def __init__(self, reason: str, offset: int = 0, evidence: bytes = b"") -> None:
        super().__init__(f"{reason} at offset {offset}")
        self.reason = reason
        self.offset = offset
        self.evidence = bytes(evidence)


class CaptureError(OtSentryError):
    """A capture source (file, stdin or interface) failed.

    Attributes:
        source: the file name, ``-`` for stdin, or the interface name.
        offset: byte offset in the file where reading stopped, or ``None``.
    """

    def __init__(self, message: str, source: str = "", offset: int | None = None) -> None:
        where = f"{source}: " if source else ""
        at = f" (at byte offset {offset})" if offset is not None else ""
        super().__init__(f"{where}{message}{at}")
        self.source = source
        self.offset = offset


class ConfigError(OtSentryError):
    """A configuration file is invalid.

    The message always names the file, the key (dotted path) and what was
    expected, so that an operator can fix it without reading code.
    """

    def __init__(self, path: str, key: str, expected: str, line: int | None = None) -> None:
        at = f":{line}" if line is not None else ""
        super().__init__(f"{path}{at}: key '{key}': expected {expected}")
        self.path = path
        self.key = key
        self.expected = expected
        self.line = line


class OutboxError(OtSentryError):
    """The agent's durable outbox cannot be read or written."""


class PkiError(OtSentryError):
    """A certificate, key, CSR or revocation list is missing, invalid or refused.

    The message names the file (or subject) and what is wrong with it.
    """


class TransportError(OtSentryError):
    """Delivery between agent and collector failed."""


class MessageError(TransportError):
    """A message from the wire does not fit the otsentry.v1 contract.

    Attributes:
        field: dotted path of the offending field ("" when the bytes do not parse).
    """

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
