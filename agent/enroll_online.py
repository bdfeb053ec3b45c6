"""Online enrolment: send the CSR and a one-time token to the collector's enrolment port.

The agent has no client certificate yet, so it proves nothing but the token;
it must therefore be sure it talks to the real collector before it sends the
token.  Two ways:

* ``--ca ca.crt``: the CA certificate carried by hand;
* ``--ca-fingerprint SHA256``: only the CA's fingerprint is carried (read out
  over the phone, say); the CA certificate is taken from the chain the
  enrolment port presents, and used only if its SHA-256 matches and it signed
  the collector's certificate.
"""

from __future__ import annotations

import re
import socket
import ssl

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization

from otsentry.common.errors import PkiError
from otsentry.v1 import enroll_pb2, enroll_pb2_grpc

__all__ = ["fetch_ca", "request_certificate", "normalize_fingerprint"]

_HEX64 = re.compile(r"[0-9a-f]{64}")


def normalize_fingerprint(text: str) -> str:
    """``AB:CD:...``, ``abcd...`` or ``sha256:...`` as 64 lower-case hex digits.

    Raises:
        PkiError: not a SHA-256 fingerprint.
    """
    fp = text.strip().lower().removeprefix("sha256:").removeprefix("sha256 fingerprint=")
    fp = fp.replace(":", "").replace(" ", "")
    if not _HEX64.fullmatch(fp):
        raise PkiError(f"{text!r} is not a SHA-256 fingerprint (64 hex digits, colons allowed), "
                       "as 'otsentry-collector pki token' prints it")
    return fp


def _split(endpoint: str) -> tuple[str, int]:
    host, sep, port = endpoint.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise PkiError(f"--collector {endpoint!r}: expected HOST:PORT, e.g. collector.plant:50052")
    return host.strip("[]"), int(port)


def _unverified_chain(tls: ssl.SSLSocket) -> list[x509.Certificate]:
    """The certificates the server sent, in order (leaf first)."""
    public = getattr(tls, "get_unverified_chain", None)  # Python >= 3.13
    if public is not None:
        return [x509.load_der_x509_certificate(bytes(c)) for c in public()]
    raw = tls._sslobj.get_unverified_chain()  # type: ignore[union-attr]  # 3.11, 3.12: private
    return [x509.load_der_x509_certificate(c.public_bytes(ssl._ssl.ENCODING_DER))  # type: ignore[attr-defined]
            for c in raw or []]


def fetch_ca(endpoint: str, fingerprint: str, timeout: float = 10.0) -> bytes:
    """The CA certificate (PEM) from the chain of ``endpoint``, if its SHA-256 is ``fingerprint``.

    Raises:
        PkiError: unreachable, or no certificate of the chain has that fingerprint,
            or that CA did not sign the server's certificate.
    """
    want = normalize_fingerprint(fingerprint)
    host, port = _split(endpoint)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # checked below, by fingerprint
    ctx.set_alpn_protocols(["h2"])
    try:
        with socket.create_connection((host, port), timeout) as raw, \
                ctx.wrap_socket(raw, server_hostname=host) as tls:
            chain = _unverified_chain(tls)
    except (OSError, ssl.SSLError) as exc:
        raise PkiError(f"cannot reach the collector's enrolment port {endpoint}: {exc}") from None
    found = [c for c in chain if c.fingerprint(hashes.SHA256()).hex() == want]
    if not found or not chain:
        raise PkiError(f"{endpoint} does not present a CA with fingerprint {fingerprint}: check "
                       "the fingerprint and the address; someone may be in between")
    try:
        chain[0].verify_directly_issued_by(found[0])
    except (ValueError, TypeError, InvalidSignature):
        raise PkiError(f"the collector's certificate at {endpoint} is not signed by the CA "
                       "with that fingerprint") from None
    return found[0].public_bytes(serialization.Encoding.PEM)


def request_certificate(endpoint: str, ca_pem: bytes, csr_pem: bytes, token: str,
                        timeout: float = 30.0) -> tuple[bytes, bytes]:
    """Send the CSR and token over TLS verified with ``ca_pem``; return (certificate, CA) PEM.

    Raises:
        PkiError: the collector refused (its reason is in the message) or cannot be reached.
    """
    _split(endpoint)
    creds = grpc.ssl_channel_credentials(root_certificates=ca_pem)
    with grpc.secure_channel(endpoint, creds) as channel:
        try:
            resp = enroll_pb2_grpc.EnrollStub(channel).Enroll(
                enroll_pb2.EnrollRequest(csr_pem=csr_pem, token=token), timeout=timeout)
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details()  # type: ignore[attr-defined]
            if code == grpc.StatusCode.UNAVAILABLE:
                raise PkiError(f"cannot enrol at {endpoint}: the collector cannot be reached or "
                               f"its certificate is not signed by our CA ({details})") from None
            raise PkiError(f"the collector refused the enrolment: {details}") from None
    return resp.certificate_pem, resp.ca_pem
