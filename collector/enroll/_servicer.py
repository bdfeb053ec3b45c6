"""The Enroll service: certificates for a one-time token, and renewals over mutual TLS.

A thin adapter: the checks live in :class:`~otsentry.collector.pki.CertificateAuthority`
and :class:`.TokenStore`; who may call what is the interceptor's job
(:mod:`otsentry.collector.auth`: ``Enroll`` is open, ``Renew`` needs an agent
certificate that is valid and not revoked).  Every issued certificate is one
``certificate issued`` log line; every refusal one ``call refused`` line.
"""

from __future__ import annotations

import datetime as dt
import weakref
from collections.abc import Callable

import grpc
import structlog
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from otsentry.collector.auth import current_peer, refuse
from otsentry.collector.enroll._tokens import TokenError, TokenStore
from otsentry.collector.pki import DEFAULT_DAYS, CertificateAuthority
from otsentry.common.errors import PkiError
from otsentry.common.logging import get_logger
from otsentry.common.pki import Identity, parse_csr, serial_hex
from otsentry.common.tls import enrollment_server_credentials, peer_certificate
from otsentry.v1 import enroll_pb2, enroll_pb2_grpc

__all__ = ["EnrollServicer", "add_enroll_service", "enroll_port_of", "MAX_CSR_BYTES"]

#: A P-256 CSR is under 1 KB; anything much larger is not one.
MAX_CSR_BYTES = 16 * 1024
_TOKEN_CODES = {"identity-mismatch": grpc.StatusCode.PERMISSION_DENIED}
_ENROLL_PORTS: weakref.WeakKeyDictionary[grpc.aio.Server, int] = weakref.WeakKeyDictionary()


def log() -> structlog.typing.FilteringBoundLogger:
    """This module's logger, looked up per call so that it follows ``configure()``."""
    return get_logger("collector.enroll")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _spki(obj: x509.Certificate | x509.CertificateSigningRequest) -> bytes:
    return obj.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


class EnrollServicer(enroll_pb2_grpc.EnrollServicer):
    """Signs agents' CSRs for a token (``Enroll``) or for their current certificate (``Renew``).

    Args:
        ca: the CA that signs.
        clock: aware UTC now (tests move it).
    """

    def __init__(self, ca: CertificateAuthority, clock: Callable[[], dt.datetime] = _now) -> None:
        self._ca, self._tokens, self._clock = ca, TokenStore(ca.dir), clock

    async def _csr(self, data: bytes, context: grpc.aio.ServicerContext,
                   ) -> tuple[x509.CertificateSigningRequest, Identity]:
        try:
            if len(data) > MAX_CSR_BYTES:
                raise PkiError(f"request: {len(data)} bytes, more than a CSR ({MAX_CSR_BYTES})")
            csr = parse_csr(data)
            return csr, self._ca.check_csr(csr)
        except PkiError as exc:
            await refuse(context, grpc.StatusCode.INVALID_ARGUMENT, "bad-csr", str(exc))
            raise AssertionError("unreachable") from None

    def _issued(self, csr: x509.CertificateSigningRequest, ident: Identity, how: str, peer: str,
                **sign: object) -> x509.Certificate:
        cert = self._ca.sign_csr(csr, now=self._clock(), **sign)  # type: ignore[arg-type]
        log().info("certificate issued", how=how, identity=ident.short, serial=serial_hex(cert),
                   not_after=cert.not_valid_after_utc.isoformat(), peer=peer)
        return cert

    async def Enroll(self, request: enroll_pb2.EnrollRequest,
                     context: grpc.aio.ServicerContext) -> enroll_pb2.EnrollResponse:
        """A first certificate for the identity the token was made for; the token is used up."""
        csr, ident = await self._csr(request.csr_pem, context)
        now = self._clock()
        try:
            rec = self._tokens.consume(request.token, ident, now)
        except TokenError as exc:
            await refuse(context, _TOKEN_CODES.get(exc.reason, grpc.StatusCode.UNAUTHENTICATED),
                         exc.reason, str(exc), identity=ident.short, method="Enroll")
            raise AssertionError("unreachable") from None
        cert = self._issued(csr, ident, "token", context.peer(), days=rec.cert_days)
        self._tokens.record_use(rec, serial=serial_hex(cert), peer=context.peer(), now=now)
        return enroll_pb2.EnrollResponse(certificate_pem=_pem(cert),
                                         ca_pem=self._ca.ca_cert_path.read_bytes())

    async def Renew(self, request: enroll_pb2.RenewRequest,
                    context: grpc.aio.ServicerContext) -> enroll_pb2.RenewResponse:
        """A new certificate for the caller's own identity and new key, with the same lifetime."""
        peer = current_peer()
        csr, ident = await self._csr(request.csr_pem, context)
        if ident != peer.identity:
            await refuse(context, grpc.StatusCode.PERMISSION_DENIED, "identity-mismatch",
                         f"a certificate of {peer.identity.short} cannot renew {ident.short}",
                         identity=peer.identity.short, claimed=ident.short, serial=peer.serial)
        old = peer_certificate(context)
        assert old is not None  # the interceptor refused calls without one
        if _spki(old) == _spki(csr):
            await refuse(context, grpc.StatusCode.INVALID_ARGUMENT, "key-reused",
                         "a renewal needs a new key", identity=ident.short, serial=peer.serial)
        lifetime = min(old.not_valid_after_utc - old.not_valid_before_utc,
                       dt.timedelta(days=DEFAULT_DAYS["agent"]))
        cert = self._issued(csr, ident, "renewal", peer.address, validity=lifetime)
        return enroll_pb2.RenewResponse(certificate_pem=_pem(cert),
                                        ca_pem=self._ca.ca_cert_path.read_bytes())


def add_enroll_service(server: grpc.aio.Server, ca: CertificateAuthority, *, host: str,
                       port: int | None) -> int | None:
    """Serve Enroll on ``server``, and listen for enrolments on ``host:port`` (0: a free port).

    Call before ``server.start()``.  ``port=None`` opens no enrolment port:
    renewals still work over the mutual-TLS port, and agents are enrolled
    offline with ``pki sign``.

    Returns:
        The enrolment port bound, or None; also kept for :func:`enroll_port_of`.
    """
    enroll_pb2_grpc.add_EnrollServicer_to_server(EnrollServicer(ca), server)
    if port is None:
        return None
    creds = enrollment_server_credentials(ca.server_cert_path, ca.server_key_path, ca.ca_cert_path)
    bound = server.add_secure_port(f"{host}:{port}", creds)
    _ENROLL_PORTS[server] = bound
    return bound


def enroll_port_of(server: grpc.aio.Server) -> int | None:
    """The enrolment port :func:`add_enroll_service` opened on ``server``, if any."""
    return _ENROLL_PORTS.get(server)
