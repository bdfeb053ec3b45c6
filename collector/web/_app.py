"""The dashboard's routes: thin handlers over :mod:`._queries`, rendered with Jinja2 templates.

Page handlers are plain functions: Starlette runs them in its thread pool, so
the store's blocking reads never stall the event loop that carries the live
streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from otsentry.collector.incidents_cmd import incident_detail, list_incidents
from otsentry.collector.store import StoreError, connect, current_revision, head, head_revision, read
from otsentry.collector.store import redact
from otsentry.collector.web import _queries as Q
from otsentry.collector.pki import RevocationList
from otsentry.collector.web._auth import COOKIE, AuthError, token_key, verify_token
from otsentry.collector.web._charts import heat_map, severity_svg
from otsentry.collector.web._live import FeedHub, sse_findings
from otsentry.collector.web._middleware import AnalystAuth
from otsentry.common.finding import Severity
from otsentry.common.logging import get_logger

__all__ = ["create_app", "upstream_status"]

HERE = Path(__file__).resolve().parent


def upstream_status(conn: Connection, incident_id: int) -> Any:
    """The NICC report status of an incident, or "not configured" without upstream reporting.

    Hook: ``otsentry.collector.upstream.incident_report_status(conn, incident_id)``
    returns a string or a dict of facts; the page shows either.
    """
    try:
        from otsentry.collector.upstream import incident_report_status
    except ImportError:
        return "not configured"
    try:
        return incident_report_status(conn, incident_id)
    except Exception as exc:  # noqa: BLE001 - another component's failure must not break the page
        get_logger("collector.web").warning("upstream status unavailable", incident=incident_id,
                                            error=repr(exc))
        return f"unavailable ({exc})"


class _Pages:
    """The page handlers, bound to one engine and template environment."""

    def __init__(self, engine: Engine, pki_dir: Path, hub: FeedHub,
                 clock: Callable[[], int]) -> None:
        self.engine, self.pki_dir, self.hub, self.clock = engine, pki_dir, hub, clock
        self.env = Environment(loader=FileSystemLoader(HERE / "templates"),
                               autoescape=select_autoescape(["html"]))
        self.env.globals["severities"] = [str(s) for s in Severity]

    def render(self, name: str, request: Request | None, status: int = 200,
               **ctx: Any) -> HTMLResponse:
        who = request.scope.get("otsentry.analyst") if request is not None else None
        return HTMLResponse(self.env.get_template(name).render(analyst=who, **ctx),
                            status_code=status)

    def login_page(self, reason: str) -> str:
        return self.env.get_template("login.html").render(reason=reason)

    def row(self, body: dict[str, Any]) -> dict[str, Any]:
        f = Q.finding_summary(body)
        return {"id": f["id"], "html": str(self.env.get_template("_rows.html").module
                                           .finding_row(f))}  # type: ignore[attr-defined]

    def overview(self, request: Request) -> HTMLResponse:
        with read(self.engine) as conn:
            incidents = [i for i in list_incidents(conn, limit=50) if i["status"] == "open"]
            cursor = head(conn)
            return self.render("overview.html", request, page="overview",
                               agents=Q.agents_overview(conn, self.clock()), sites=Q.sites(conn),
                               incidents=incidents, chart=severity_svg(Q.severity_series(conn)),
                               heat=heat_map(Q.technique_counts(conn)),
                               latest=Q.findings_list(conn, Q.Filters(), limit=10),
                               cursor=cursor, live_query="")

    def findings(self, request: Request) -> HTMLResponse:
        try:
            f = Q.parse_filters(request.query_params)
        except ValueError as exc:
            return self.render("error.html", request, 400, page="findings", message=str(exc))
        with read(self.engine) as conn:
            cursor = head(conn)
            rows = Q.findings_list(conn, f)
            kinds = sorted({r["kind"] for r in Q.findings_list(conn, Q.Filters(), limit=2000)})
            return self.render("findings.html", request, page="findings", rows=rows, f=f,
                               cursor=cursor, live_query=f.query(), kinds=kinds,
                               sites=[s["name"] for s in Q.sites(conn)])

    def finding(self, request: Request) -> HTMLResponse:
        with read(self.engine) as conn:
            d = Q.finding_detail(conn, request.path_params["rid"])
        if d is None:
            raise HTTPException(404, f"no finding {request.path_params['rid']}")
        return self.render("finding.html", request, page="findings", f=d)

    def pcap(self, request: Request) -> Response:
        with read(self.engine) as conn:
            got = Q.finding_pcap(conn, request.path_params["rid"])
        if got is None:
            raise HTTPException(404, "this finding has no pcap slice")
        name, data = got
        return Response(data, media_type="application/vnd.tcpdump.pcap",
                        headers={"content-disposition": f'attachment; filename="{name}"'})

    def incidents(self, request: Request) -> HTMLResponse:
        with read(self.engine) as conn:
            rows = list_incidents(conn, limit=500)
        return self.render("incidents.html", request, page="incidents", rows=rows)

    def incident(self, request: Request) -> HTMLResponse:
        iid = request.path_params["iid"]
        with read(self.engine) as conn:
            d = incident_detail(conn, iid)
            if d is None:
                raise HTTPException(404, f"no incident {iid}")
            return self.render("incident.html", request, page="incidents", i=d,
                               timeline=Q.incident_timeline(conn, iid),
                               upstream=upstream_status(conn, iid))

    def inventory_index(self, request: Request) -> HTMLResponse:
        with read(self.engine) as conn:
            return self.render("sites.html", request, page="inventory", sites=Q.sites(conn))

    def inventory(self, request: Request) -> HTMLResponse:
        with read(self.engine) as conn:
            inv = Q.inventory(conn, request.path_params["site"])
            names = [s["name"] for s in Q.sites(conn)]
        if inv["site"] not in names:
            raise HTTPException(404, f"no site {inv['site']!r}")
        return self.render("inventory.html", request, page="inventory", inv=inv, sites=names)

    def asset(self, request: Request) -> HTMLResponse:
        site, aid = request.path_params["site"], request.path_params["aid"]
        with read(self.engine) as conn:
            a = Q.asset_detail(conn, site, aid)
        if a is None:
            raise HTTPException(404, f"no asset {aid} at site {site!r}")
        return self.render("asset.html", request, page="inventory", a=a)

    async def live_findings(self, request: Request) -> Response:
        try:
            f = Q.parse_filters(request.query_params)
            after = int(request.headers.get("last-event-id") or request.query_params["after"])
        except (ValueError, KeyError) as exc:
            return Response(f"bad request: {exc}\n", 400, media_type="text/plain")
        return StreamingResponse(sse_findings(self.hub, after, f.feed_filter(), self.row),
                                 media_type="text/event-stream",
                                 headers={"cache-control": "no-store", "x-accel-buffering": "no"})

    def login(self, request: Request) -> Response:
        if request.scope.get("otsentry.analyst"):
            return RedirectResponse("/", 303)
        return HTMLResponse(self.login_page(""), 200)

    async def login_post(self, request: Request) -> Response:
        form = parse_qs((await request.body())[:8192].decode("utf-8", "replace"))
        try:
            who = verify_token(form.get("token", [""])[0], token_key(self.pki_dir),
                               RevocationList(self.pki_dir / "revoked.json"), time.time())
        except AuthError as exc:
            return HTMLResponse(self.login_page(str(exc)), 401)
        get_logger("collector.web").info("analyst logged in", analyst=who.name, via="token")
        resp = RedirectResponse("/", 303)
        resp.set_cookie(COOKIE, form["token"][0].strip(), httponly=True, secure=True,
                        max_age=max(0, who.expires - int(time.time())), samesite="strict")
        return resp

    def logout(self, request: Request) -> Response:
        resp = RedirectResponse("/login", 303)
        resp.delete_cookie(COOKIE, httponly=True, secure=True, samesite="strict")
        return resp

    async def error(self, request: Request, exc: Exception) -> Response:
        if isinstance(exc, HTTPException):
            return self.render("error.html", request, exc.status_code, message=exc.detail)
        get_logger("collector.web").error("store read failed", path=request.url.path,
                                          error=repr(exc))
        return self.render("error.html", request, 503,
                           message="The store cannot be read right now; try again shortly.")


def _open_store(db_url: str) -> Engine:
    engine = connect(db_url)
    have, want = current_revision(engine), head_revision()
    if have != want:
        engine.dispose()
        raise StoreError(f"{redact(db_url)}: schema revision {have or 'none'}, the dashboard needs "
                         f"{want}: run 'otsentry-collector db upgrade --db URL'")
    return engine


def create_app(db_url: str, pki_dir: Path, *, poll_s: float = 0.5,
               clock: Callable[[], int] = time.time_ns) -> AnalystAuth:
    """The dashboard as an ASGI app, every route behind the analyst login.

    Serve it over TLS with the collector's certificate and optional client
    certificates (:class:`~otsentry.collector.web.WebServer` does).

    Args:
        db_url: the store (``sqlite:///PATH`` or ``postgresql://…``), read only.
        pki_dir: the collector's PKI folder (CA, revocation list, token key).
        poll_s: how often the feed is polled for live updates.
        clock: wall clock in ns (agent health).
    Raises:
        StoreError: the store cannot be opened or is not at this code's schema revision.
    """
    engine = _open_store(db_url)
    hub = FeedHub(engine, poll_s)
    pages = _Pages(engine, Path(pki_dir), hub, clock)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(hub.run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            engine.dispose()

    routes = [
        Route("/", pages.overview), Route("/findings", pages.findings),
        Route("/findings/{rid:int}", pages.finding), Route("/findings/{rid:int}/pcap", pages.pcap),
        Route("/live/findings", pages.live_findings), Route("/incidents", pages.incidents),
        Route("/incidents/{iid:int}", pages.incident), Route("/inventory", pages.inventory_index),
        Route("/inventory/{site}", pages.inventory),
        Route("/inventory/{site}/asset/{aid:int}", pages.asset),
        Route("/login", pages.login, methods=["GET"]),
        Route("/login", pages.login_post, methods=["POST"]),
        Route("/logout", pages.logout, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: pages.error, SQLAlchemyError: pages.error})
    return AnalystAuth(app, Path(pki_dir), pages.login_page)

