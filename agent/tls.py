"""Modbus/TCP Security (TLS, port 802): read the server certificate from the handshake.

Sans-I/O: :class:`TlsCertificateReader` takes the server-to-client byte stream of
a connection (in order, as reassembled) and, when the handshake carries the
server's certificate in the clear (TLS 1.0 to 1.2), yields a
:class:`TlsCertificate` with its subject, issuer, validity and names.  TLS 1.3
encrypts the certificate: the reader then reports the negotiated version only.

Bounds: at most ``MAX_HANDSHAKE`` bytes of handshake are buffered per
connection; after the certificate (or the first encrypted record) the reader
stops looking and drops its buffer.
"""

from __future__ import annotations

import datetime as dt
from struct import Struct
from typing import Final

__all__ = ["MAX_HANDSHAKE", "TlsCertificate", "TlsCertificateReader"]

MAX_HANDSHAKE: Final = 64 * 1024
_RECORD = Struct(">BHH")
_HANDSHAKE, _CHANGE_CIPHER_SPEC, _APPLICATION_DATA = 22, 20, 23
_SERVER_HELLO, _CERTIFICATE = 2, 11
_VERSIONS: Final = {0x0300: "SSL 3.0", 0x0301: "TLS 1.0", 0x0302: "TLS 1.1", 0x0303: "TLS 1.2",
                    0x0304: "TLS 1.3"}


class TlsCertificate:
    """What the handshake told about the server.

    Attributes:
        version: negotiated protocol (``TLS 1.2``...), or None if no ServerHello was seen.
        subject, issuer: RFC 4514 strings, or None when the certificate was not visible.
        not_before, not_after: validity as ISO 8601 UTC strings, or None.
        names: DNS names and IP addresses from the subjectAltName extension.
        sha256: fingerprint of the DER certificate (hex), or None.
        error: why the certificate could not be read, or None.
    """

    __slots__ = (
        "error",
        "issuer",
        "names",
        "not_after",
        "not_before",
        "sha256",
        "subject",
        "version",
    )

    def __init__(self, version: str | None = None) -> None:
        self.version = version
        self.subject: str | None = None
        self.issuer: str | None = None
        self.not_before: str | None = None
        self.not_after: str | None = None
        self.names: tuple[str, ...] = ()
        self.sha256: str | None = None
        self.error: str | None = None

    def to_dict(self) -> dict:
        """JSON-friendly form."""
        return {name: getattr(self, name) for name in self.__slots__}

    def __repr__(self) -> str:
        return f"TlsCertificate({self.version}, subject={self.subject!r})"


class TlsCertificateReader:
    """Feed the server's bytes; :attr:`result` is set once the handshake says enough."""

    __slots__ = ("_buf", "_hs", "_version", "done", "result")

    def __init__(self) -> None:
        self._buf = bytearray()  # record layer
        self._hs = bytearray()  # handshake messages, records' payloads joined
        self._version: str | None = None
        #: The certificate (or what could be learnt) once known, else None.
        self.result: TlsCertificate | None = None
        #: True when the reader has stopped looking.
        self.done = False

    def receive(self, data: bytes) -> TlsCertificate | None:
        """Take the next server bytes; return the result the first time it is known."""
        if self.done:
            return None
        self._buf += data
        while len(self._buf) >= 5:
            ctype, _ver, length = _RECORD.unpack_from(self._buf, 0)
            if ctype not in (_HANDSHAKE, _CHANGE_CIPHER_SPEC, _APPLICATION_DATA, 21) or length > 18432:
                return self._finish(error="not a TLS record stream")
            if len(self._buf) < 5 + length:
                break
            body = bytes(self._buf[5 : 5 + length])
            del self._buf[: 5 + length]
            if ctype != _HANDSHAKE:
                return self._finish(error="certificate not visible (encrypted or absent)")
            self._hs += body
            found = self._handshake()
            if found is not None:
                return found
        if len(self._buf) + len(self._hs) > MAX_HANDSHAKE:
            return self._finish(error="handshake too large")
        return None

    def _handshake(self) -> TlsCertificate | None:
        while len(self._hs) >= 4:
            mtype = self._hs[0]
            length = int.from_bytes(self._hs[1:4], "big")
            if len(self._hs) < 4 + length:
                return None
            body = bytes(self._hs[4 : 4 + length])
            del self._hs[: 4 + length]
            if mtype == _SERVER_HELLO:
                self._version = _server_hello_version(body)
                if self._version == "TLS 1.3":
                    return self._finish(error="TLS 1.3 encrypts the certificate")
            elif mtype == _CERTIFICATE:
                return self._certificate(body)
        return None

    def _certificate(self, body: bytes) -> TlsCertificate:
        if len(body) < 6:
            return self._finish(error="empty certificate message")
        first_len = int.from_bytes(body[3:6], "big")
        der = body[6 : 6 + first_len]
        if len(der) != first_len:
            return self._finish(error="truncated certificate")
        return self._finish(der=der)

    def _finish(self, der: bytes | None = None, error: str | None = None) -> TlsCertificate:
        self.done = True
        self._buf.clear()
        self._hs.clear()
        result = TlsCertificate(self._version)
        if der is not None:
            _describe(result, der)
        else:
            result.error = error
        self.result = result
        return result


def _server_hello_version(body: bytes) -> str | None:
    if len(body) < 2:
        return None
    version = int.from_bytes(body[0:2], "big")
    # TLS 1.3 keeps 0x0303 here and names itself in the supported_versions extension (43).
    if version == 0x0303 and b"\x00\x2b\x00\x02\x03\x04" in body:
        version = 0x0304
    return _VERSIONS.get(version, f"unknown-{version:#06x}")


def _describe(result: TlsCertificate, der: bytes) -> None:
    """Fill subject, issuer, validity and names from a DER certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        result.error = f"unreadable certificate: {exc}"
        return
    result.subject = cert.subject.rfc4514_string()
    result.issuer = cert.issuer.rfc4514_string()
    result.not_before = _iso(cert.not_valid_before_utc)
    result.not_after = _iso(cert.not_valid_after_utc)
    result.sha256 = cert.fingerprint(hashes.SHA256()).hex()
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        result.names = tuple(map(str, san.get_values_for_type(x509.DNSName))) + tuple(
            map(str, san.get_values_for_type(x509.IPAddress)))
    except x509.ExtensionNotFound:
        result.names = ()


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
