"""The analysts' web dashboard: Starlette over HTTPS, live updates by server-sent events.

Pages are rendered on the server from Jinja2 templates with a little vanilla
JavaScript and CSS shipped as package data (no build step).  Every route,
the event streams and the static files included, needs an analyst's client
certificate or a login token issued for one (see :mod:`._auth`).

    app = create_app("sqlite:///collector.sqlite", Path("pki"))
    web = WebServer(app, Path("pki"), host="0.0.0.0", port=8443)
    await web.start(); ...; await web.stop()
"""

from otsentry.collector.web._app import create_app, upstream_status
from otsentry.collector.web._auth import Analyst, AuthError, issue_token, token_key, verify_token
from otsentry.collector.web._server import WebServer

__all__ = ["Analyst", "AuthError", "WebServer", "create_app", "issue_token", "token_key",
           "upstream_status", "verify_token"]
