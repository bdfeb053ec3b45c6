"""mTLS credentials for gRPC, and the peer's certificate on the server side.

Both ends pin the otsentry CA: the collector accepts only client certificates
signed by it (an unknown CA or an expired certificate fails in the TLS
handshake, before any of our code runs, and the client sees UNAVAILABLE), and
agents accept only a collector certificate signed by it.
"""

from __future__ import annotations

from pathlib import Path

import grpc
from cryptography import x509

from otsentry.common.errors import PkiError
from otsentry.common.pki import load_certificate, load_private_key, public_keys_match

__all__ = [
    "server_credentials",
    "enrollment_server_credentials",
    "channel_credentials",
    "peer_certificate",
    "explain_rpc_error",
    "KEEPALIVE_OPTIONS",
]

#: Keepalive and size options, one documented list used by both ends.
KEEPALIVE_OPTIONS: list[tuple[str, int]] = [
    # Ping an idle connection every 30 s so a cut link is noticed within a minute,
    ("grpc.keepalive_time_ms", 30_000),
    # and give up after 10 s without an answer.
    ("grpc.keepalive_timeout_ms", 10_000),
    # Keep pinging while a stream is open but idle (slow plants send little).
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # The server accepts pings every 10 s at most; the client's 30 s fits.
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
]


def _read_pair(cert_path: Path, key_path: Path) -> tuple[bytes, bytes]:
    cert, key = load_certificate(cert_path), load_private_key(key_path)
    if not public_keys_match(cert, key):
        raise PkiError(f"{cert_path} is not the certificate of key {key_path}")
    return Path(cert_path).read_bytes(), Path(key_path).read_bytes()


def _read_ca(ca_path: Path) -> bytes:
    load_certificate(ca_path)  # a clear error if it is not a certificate
    return Path(ca_path).read_bytes()


def server_credentials(cert_path: Path, key_path: Path, ca_path: Path) -> grpc.ServerCredentials:
    """Server credentials that require a client certificate signed by ``ca_path``.

    Raises:
        PkiError: a file is missing or invalid, or the certificate does not match the key.
    """
    cert, key = _read_pair(cert_path, key_path)
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=_read_ca(ca_path),
                                       require_client_auth=True)


def enrollment_server_credentials(cert_path: Path, key_path: Path,
                                  ca_path: Path) -> grpc.ServerCredentials:
    """Server-authenticated TLS for the enrolment port: no client certificate is asked for.

    grpcio cannot *request* a client certificate without requiring it
    (``require_client_auth=False`` does not ask for one at all), so enrolment
    has its own port, where no call ever carries a client certificate and the
    collector's interceptor refuses everything but ``Enroll.Enroll``.  The CA
    certificate follows the server's in the chain, so that an agent that knows
    only the CA's fingerprint can pin it.
    """
    cert, key = _read_pair(cert_path, key_path)
    return grpc.ssl_server_credentials([(key, cert.rstrip(b"\n") + b"\n" + _read_ca(ca_path))],
                                       require_client_auth=False)


def channel_credentials(ca_path: Path, cert_path: Path, key_path: Path) -> grpc.ChannelCredentials:
    """Client credentials: present our certificate, trust only ``ca_path``.

    Raises:
        PkiError: a file is missing or invalid, or the certificate does not match the key.
    """
    cert, key = _read_pair(cert_path, key_path)
    return grpc.ssl_channel_credentials(root_certificates=_read_ca(ca_path), private_key=key,
                                        certificate_chain=cert)


def peer_certificate(context: grpc.ServicerContext | grpc.aio.ServicerContext) -> x509.Certificate | None:
    """The client's leaf certificate as verified by the TLS handshake, or ``None``."""
    pems = context.auth_context().get("x509_pem_cert") or []
    if not pems:
        return None
    try:
        return x509.load_pem_x509_certificate(pems[0])
    except ValueError:
        return None


def explain_rpc_error(err: grpc.RpcError) -> str:
    """One sentence an operator can act on for a failed call to the collector."""
    code, details = err.code(), (err.details() or "")
    low = details.lower()
    if code == grpc.StatusCode.UNAVAILABLE and ("ssl" in low or "handshake" in low or "tls" in low):
        return ("the TLS handshake with the collector failed: check that ca.crt is the "
                "collector's CA, that our certificate is signed by it and not expired, and "
                f"the collector's name in the address ({details})")
    if code == grpc.StatusCode.UNAVAILABLE:
        return ("the collector cannot be reached, or it closed the connection during the TLS "
                "handshake because it does not accept our certificate (signed by another CA, "
                f"expired, or missing); its log says which ({details})")
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return f"the collector refused our certificate: {details}"
    return f"{code.name}: {details}"
