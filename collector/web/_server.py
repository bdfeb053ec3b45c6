"""The dashboard's HTTPS server: uvicorn with the collector's certificate.

uvicorn does not put the client certificate into the ASGI scope, so
:class:`_CertH11Protocol` (uvicorn's h11 protocol) reads it from the TLS
transport once per connection, after the handshake, and hands it to the app in
the ASGI TLS extension (``scope["extensions"]["tls"]["client_cert_chain"]``),
where :class:`~otsentry.collector.web._middleware.AnalystAuth` looks for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from otsentry.collector.web._auth import der_to_chain
from otsentry.common.errors import PkiError

__all__ = ["WebServer"]

# uvicorn narrates start-up at INFO in its own format; "dashboard listening" says it once.
logging.getLogger("uvicorn.error").setLevel(logging.WARNING)


class _CertH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, adding the peer certificate to every request's scope."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        tls = transport.get_extra_info("ssl_object")
        der = tls.getpeercert(binary_form=True) if tls is not None else None
        chain, app = der_to_chain(der), self.app

        async def with_peer(scope: dict, receive: Any, send: Any) -> None:
            scope.setdefault("extensions", {})["tls"] = {"client_cert_chain": chain}
            await app(scope, receive, send)

        self.app = with_peer


class _Server(uvicorn.Server):
    """uvicorn's server without its own signal handlers: ``serve`` owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class WebServer:
    """The dashboard over HTTPS on ``host:port`` with the certificates of ``pki_dir``.

    Args:
        app: the ASGI app (:func:`otsentry.collector.web.create_app`).
        pki_dir: the collector's PKI folder (server certificate and key, CA).
        host, port: where to listen (port 0: any free port, see :attr:`port`).
    """

    def __init__(self, app: Any, pki_dir: Path, host: str = "127.0.0.1", port: int = 8443) -> None:
        pki = self.pki_dir = Path(pki_dir)
        config = uvicorn.Config(
            app, host=host, port=port, http=_CertH11Protocol, lifespan="on",
            ssl_certfile=str(pki / "collector.crt"), ssl_keyfile=str(pki / "collector.key"),
            ssl_ca_certs=str(pki / "ca.crt"), ssl_cert_reqs=ssl.CERT_OPTIONAL,
            log_config=None, access_log=False, timeout_graceful_shutdown=2, proxy_headers=False)
        self.server = _Server(config)

    @property
    def port(self) -> int:
        """The port listened on (after :meth:`start`)."""
        return self.server.servers[0].sockets[0].getsockname()[1]

    async def start(self) -> None:
        """Listen; returns once connections are accepted.

        Raises:
            OSError: the address is in use or not available.
            PkiError: the certificate, key or CA cannot be loaded.
        """
        config = self.server.config
        if not config.loaded:
            try:
                config.load()
            except (OSError, ssl.SSLError) as exc:
                raise PkiError(f"the dashboard cannot load the collector's certificate, key "
                               f"or CA from {self.pki_dir}: {exc}") from None
        self.server.lifespan = config.lifespan_class(config)
        try:
            await self.server.startup()
        except SystemExit:  # uvicorn exits on a bind error, after logging it
            raise OSError(f"cannot serve the dashboard on {config.host}:{config.port}: the "
                          "address is in use or not on this machine") from None
        self._loop = asyncio.create_task(self.server.main_loop())

    async def stop(self) -> None:
        """Close the listening socket and open streams (at most 2 s of grace)."""
        self.server.should_exit = True
        await self._loop
        await self.server.shutdown()
