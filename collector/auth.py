"""Who may call what: the collector's authentication and authorisation interceptor.

The TLS handshake has already refused certificates from an unknown CA and
expired ones (grpc core does that, and the client sees UNAVAILABLE).  This
interceptor then, on every call and before any handler code runs:

1. reads the peer's leaf certificate from the auth context; a call without
   one (only possible on the enrolment port, whose TLS asks for none) is
   refused with UNAUTHENTICATED, except ``Enroll.Enroll`` (:data:`OPEN_METHODS`);
2. takes its identity from the one SPIFFE URI SAN (none: UNAUTHENTICATED);
3. re-checks the validity period against our clock (UNAUTHENTICATED);
4. checks the serial against the revocation list (UNAUTHENTICATED), because
   grpcio has no CRL option;
5. checks that the identity's kind may call the method (PERMISSION_DENIED:
   e.g. an analyst's certificate on Ingest).

Each refusal is one warning log line with the reason, identity, serial,
method and peer address.  The identity of an accepted call is available to
the servicer through :func:`current_peer`.
"""

from __future__ import annotations

import contextvars
import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import grpc

from otsentry.collector.pki import RevocationList
from otsentry.common.errors import PkiError
import structlog

from otsentry.common.logging import get_logger
from otsentry.common.pki import Identity, check_validity, identity_of, serial_hex
from otsentry.common.tls import peer_certificate

__all__ = ["Peer", "AuthInterceptor", "current_peer", "refuse", "INGEST_POLICY", "ANY_KIND",
           "OPEN_METHODS"]

def log() -> structlog.typing.FilteringBoundLogger:
    """This module's logger, looked up per call so that it follows ``configure()``."""
    return get_logger("collector.auth")

#: method -> identity kinds allowed; methods not listed (health) need a valid, unrevoked
#: certificate of any kind (:data:`ANY_KIND`), except the :data:`OPEN_METHODS`.
INGEST_POLICY: Mapping[str, frozenset[str]] = {
    "/otsentry.v1.Ingest/Stream": frozenset({"agent"}),
    "/otsentry.v1.Feed/Subscribe": frozenset({"analyst"}),
    "/otsentry.v1.Enroll/Renew": frozenset({"agent"}),
}
ANY_KIND: frozenset[str] = frozenset({"agent", "analyst", "collector"})
#: Callable without a client certificate (on the enrolment port, where no call has one):
#: only enrolment, which its one-time token authorises.
OPEN_METHODS: frozenset[str] = frozenset({"/otsentry.v1.Enroll/Enroll"})


@dataclass(frozen=True, slots=True)
class Peer:
    """An authenticated caller: its identity and certificate serial (hex)."""

    identity: Identity
    serial: str
    address: str


_PEER: contextvars.ContextVar[Peer] = contextvars.ContextVar("otsentry_peer")


def current_peer() -> Peer:
    """The authenticated peer of the call being handled (set by :class:`AuthInterceptor`)."""
    return _PEER.get()


async def refuse(context: grpc.aio.ServicerContext, code: grpc.StatusCode, reason: str,
                 details: str, **kv: object) -> None:
    """Log one refusal line and end the call with ``code``; never returns."""
    log().warning("call refused", reason=reason, code=code.name, peer=context.peer(), **kv)
    await context.abort(code, details)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Authenticates every call by certificate identity; see the module docstring.

    Args:
        revocations: the CA's revocation list, read on every call.
        policy: method -> identity kinds allowed.
        clock: returns aware UTC now (tests move it).
    """

    def __init__(self, revocations: RevocationList, policy: Mapping[str, frozenset[str]] = INGEST_POLICY,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)) -> None:
        self._revocations = revocations
        self._policy = policy
        self._clock = clock

    async def intercept_service(self, continuation: Callable[..., Awaitable[grpc.RpcMethodHandler]],
                                details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None or details.method in OPEN_METHODS:
            return handler
        allowed = self._policy.get(details.method, ANY_KIND)
        return _guard(handler, lambda ctx: self._authorize(ctx, details.method, allowed))

    async def _authorize(self, context: grpc.aio.ServicerContext, method: str,
                         allowed: frozenset[str]) -> Peer:
        cert = peer_certificate(context)
        if cert is None:
            await refuse(context, grpc.StatusCode.UNAUTHENTICATED, "no-client-certificate",
                         "a client certificate is required", method=method)
        serial = serial_hex(cert)
        try:
            ident = identity_of(cert)
            check_validity(cert, self._clock())
        except PkiError as exc:
            await refuse(context, grpc.StatusCode.UNAUTHENTICATED, "bad-certificate", str(exc),
                         serial=serial, method=method)
        if self._revocations.is_revoked(serial):
            await refuse(context, grpc.StatusCode.UNAUTHENTICATED, "revoked",
                         f"certificate {serial} of {ident.short} is revoked",
                         identity=ident.short, serial=serial, method=method)
        if ident.kind not in allowed:
            await refuse(context, grpc.StatusCode.PERMISSION_DENIED, "wrong-kind",
                         f"a certificate of kind '{ident.kind}' may not call {method}",
                         identity=ident.short, serial=serial, method=method)
        return Peer(ident, serial, context.peer())


def _guard(handler: grpc.RpcMethodHandler,
           authorize: Callable[[grpc.aio.ServicerContext], Awaitable[Peer]]) -> grpc.RpcMethodHandler:
    """The same handler, with ``authorize`` run first and its peer put in :func:`current_peer`."""
    if handler.response_streaming:
        inner = handler.stream_stream or handler.unary_stream

        async def streaming(request, context):  # type: ignore[no-untyped-def]
            _PEER.set(await authorize(context))
            async for response in inner(request, context):
                yield response

        behavior = streaming
    else:
        inner = handler.stream_unary or handler.unary_unary

        async def unary(request, context):  # type: ignore[no-untyped-def]
            _PEER.set(await authorize(context))
            return await inner(request, context)

        behavior = unary
    factory = {(False, False): grpc.unary_unary_rpc_method_handler,
               (False, True): grpc.unary_stream_rpc_method_handler,
               (True, False): grpc.stream_unary_rpc_method_handler,
               (True, True): grpc.stream_stream_rpc_method_handler}
    return factory[(handler.request_streaming, handler.response_streaming)](
        behavior, request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer)
