"""The login gate in front of every route (see :mod:`._auth` for the two ways in)."""

from __future__ import annotations

import time
from collections.abc import Callable
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

from otsentry.collector.pki import RevocationList
from otsentry.collector.web._auth import (COOKIE, Analyst, AuthError, analyst_of_certificate,
                                          peer_certificate, token_key, verify_token)
from otsentry.common.logging import get_logger

__all__ = ["AnalystAuth", "OPEN_PATHS"]

#: The only paths served without a login: the bare login page and its form.
OPEN_PATHS = frozenset({"/login"})


def _header(scope: dict[str, Any], name: bytes) -> str:
    for k, v in scope.get("headers", ()):
        if k == name:
            return v.decode("latin-1")
    return ""


def _token_of(scope: dict[str, Any]) -> str:
    auth = _header(scope, b"authorization")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    morsel = SimpleCookie(_header(scope, b"cookie")).get(COOKIE)
    return morsel.value if morsel else ""


class AnalystAuth:
    """ASGI middleware: only analysts get through; ``scope["otsentry.analyst"]`` says who.

    A client certificate is checked first; an agent's certificate is refused
    (403) even with a valid token.  Without certificate or token, the request
    gets 401 and, in a browser, the login page (``login_page(reason)``).

    Args:
        app: the protected app.
        pki_dir: the collector's PKI folder (revocation list, token key).
        login_page: reason -> the login page's HTML.
        clock: wall clock in seconds (token expiry).
    """

    def __init__(self, app: Any, pki_dir: Path, login_page: Callable[[str], str],
                 clock: Callable[[], float] = time.time) -> None:
        self.app, self.pki_dir, self.login_page, self.clock = app, Path(pki_dir), login_page, clock
        self.revocations = RevocationList(self.pki_dir / "revoked.json")

    def authenticate(self, scope: dict[str, Any]) -> Analyst | None:
        """The analyst of this request, None when it carries nothing.

        Raises:
            AuthError: it carries a certificate or token that is refused.
        """
        cert = peer_certificate(scope)
        if cert is not None:
            return analyst_of_certificate(cert, self.revocations)
        token = _token_of(scope)
        if not token:
            return None
        return verify_token(token, token_key(self.pki_dir), self.revocations, self.clock())

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            who = self.authenticate(scope)
            reason = "" if who else "Log in with your analyst certificate or a login token."
        except AuthError as exc:
            who, reason = None, str(exc)
            get_logger("collector.web").warning("dashboard login refused", reason=reason,
                                                path=scope["path"], client=scope.get("client"))
        if who is not None or scope["path"] in OPEN_PATHS:
            scope["otsentry.analyst"] = who
            await self.app(scope, receive, send)
            return
        status = 403 if peer_certificate(scope) is not None else 401
        await self._refuse(scope, send, status, reason)

    async def _refuse(self, scope: dict[str, Any], send: Any, status: int, reason: str) -> None:
        html = "text/html" in _header(scope, b"accept")
        body = (self.login_page(reason) if html else reason + "\n").encode()
        ctype = b"text/html; charset=utf-8" if html else b"text/plain; charset=utf-8"
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode()),
                                (b"cache-control", b"no-store")]})
        await send({"type": "http.response.body", "body": body})
