"""The push job: queued reports to each recipient's TAXII 2.1 collection, with retries.

Three steps per run, so that no database lock is held while the network is slow:

1. under the ``upstream`` job row (one replica at a time): schedule (clocks,
   rebuilds), log warnings for stages due soon or overdue, and lease the rows
   ready to push;
2. outside any transaction: push each leased row with taxii2-client, in
   envelopes no larger than the API root's ``max_content_length``;
3. one short transaction per row: its new status, or the reason it failed and
   when it is tried again (exponential backoff up to ``retry_max``).

A replica that dies in step 2 leaves a lease that expires; the next push of
the same objects is harmless, because ids and versions are deterministic and
TAXII servers keep one copy per (id, modified).
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from otsentry.collector.store import _schema as S
from otsentry.collector.store import job, write
from otsentry.collector.upstream._queue import schedule, warn_due
from otsentry.collector.upstream._split import envelope_bytes, split_envelopes
from otsentry.common.errors import OtSentryError
from otsentry.common.logging import get_logger
from otsentry.common.upstream_config import Recipient, ReportingConfig
from sqlalchemy import Engine, select, update

__all__ = ["DeliveryError", "Outcome", "Pushed", "TaxiiCollection", "push_once", "run_upstream"]

R = S.upstream_reports.c
_NS = 1_000_000_000
LEASE_S = 600.0


def log():  # type: ignore[no-untyped-def]
    """This module's logger, looked up per call so that it follows ``configure()``."""
    return get_logger("collector.upstream")


class DeliveryError(OtSentryError):
    """A push failed; the message says why in words an admin can act on."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one push of one row achieved."""

    status: str  # acknowledged, sent, failed
    parts: int
    parts_done: int
    status_ids: str = ""
    reason: str = ""


@dataclass
class Pushed:
    """What one :func:`push_once` run did."""

    ran: bool = False
    queued: list[int] = field(default_factory=list)
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    warnings: list[dict[str, Any]] = field(default_factory=list)


class TaxiiCollection:
    """One recipient's collection, through taxii2-client (basic auth or a client certificate)."""

    def __init__(self, rc: Recipient) -> None:
        from taxii2client.v21 import ApiRoot, Collection

        self.rc = rc
        cert = (str(rc.client_cert), str(rc.client_key)) if rc.client_cert else None
        verify: bool | str = str(rc.ca) if rc.ca else True
        auth = {"user": rc.username, "password": rc.password} if rc.username else {}
        self.root = ApiRoot(rc.api_root, verify=verify, cert=cert, **auth)
        self.root._conn.session.request = _with_defaults(self.root._conn.session.request,
                                                         timeout=rc.timeout_s, verify=verify)
        self.collection = Collection(f"{rc.api_root}collections/{rc.collection}/",
                                     conn=self.root._conn)

    def max_content_length(self) -> int:
        return int(_call(self.rc, lambda: self.root.max_content_length))

    def add(self, body: bytes) -> tuple[str, str, list[dict[str, Any]]]:
        """POST one envelope; returns (status id, "complete" or "pending", failures)."""
        st = _call(self.rc, lambda: self.collection.add_objects(body, wait_for_completion=False))
        return st.id, st.status, list(getattr(st, "failures", None) or [])

    def status(self, status_id: str) -> tuple[str, list[dict[str, Any]]]:
        """("complete" or "pending", failures) of an earlier POST."""
        from taxii2client.v21 import Status

        st = Status(f"{self.rc.api_root}status/{status_id}/", conn=self.root._conn)
        _call(self.rc, st.refresh)
        return st.status, list(getattr(st, "failures", None) or [])

    def present(self, ids: list[str]) -> dict[str, set[str]]:
        """id -> the versions the collection holds, from its manifest (for ``ids``)."""
        out: dict[str, set[str]] = {}
        for i in range(0, len(ids), 50):
            filters = {"match[id]": ",".join(ids[i:i + 50]), "match[version]": "all"}
            page: dict[str, Any] = {"more": True}
            while page.get("more"):
                if page.get("next"):
                    filters["next"] = page["next"]
                page = _call(self.rc, functools.partial(self.collection.get_manifest, **filters))
                for m in page.get("objects", []):
                    out.setdefault(m["id"], set()).add(m.get("version", ""))
        return out

    def close(self) -> None:
        self.root.close()


def _with_defaults(request: Callable[..., Any], **defaults: Any) -> Callable[..., Any]:
    """``request`` with keyword defaults.  ``verify`` is passed per request because requests
    lets REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE in the environment override the session's:
    without it a configured ``ca`` would be ignored wherever those are set."""
    def call(*args: Any, **kwargs: Any) -> Any:
        return request(*args, **{**defaults, **kwargs})
    return call


def _refused(target: Any, part: list[dict[str, Any]], failures: list[dict[str, Any]]) -> str:
    """Why the server refused objects of ``part`` ("" when every "failure" is an object it
    already holds in that version: a re-push, which TAXII servers may report as a failure)."""
    if not failures:
        return ""
    mine = {o["id"]: o.get("modified") for o in part}
    held = target.present(sorted({f.get("id", "") for f in failures} & set(mine)))
    real = [f for f in failures if f.get("id") not in mine or not _holds(
        held.get(f["id"], set()), mine[f["id"]])]
    return "; ".join(f"{f.get('id')}: {f.get('message', 'refused')}" for f in real[:5])


def _holds(versions: set[str], modified: str | None) -> bool:
    """The manifest's versions include ``modified`` (any version for an unversioned object)."""
    if modified is None:
        return bool(versions)
    want = _instant(modified)
    return any(_instant(v) == want for v in versions)


def _instant(stamp: str) -> str:
    import datetime as dt

    try:
        t = dt.datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    return t.astimezone(dt.UTC).isoformat(timespec="milliseconds")


_HTTP_REASON = {
    401: "the server refused the credentials (HTTP 401): check username and password_file "
         "(or the client certificate)",
    403: "the server denies access (HTTP 403): is the account allowed to write to collection {c}?",
    404: "no such API root or collection (HTTP 404): check api_root and collection {c}",
    413: "the server refused the size of a request (HTTP 413)",
}


#: TLS failures, by what OpenSSL's message says (lower case), first match wins.  A
#: server that refuses our client certificate sends an alert; when it closes the
#: connection before the alert arrives the client sees only EOF or a reset.
_TLS_REASON: tuple[tuple[str, str], ...] = (
    ("key values mismatch", "client_key {key} is not the key of client_cert {cert}"),
    ("alert certificate required",
     "the server requires a client certificate (TLS alert: certificate required): {mine}"),
    *((f"alert {alert}", f"the server refused our client certificate (TLS alert: {alert}): {{mine}}")
      for alert in ("unknown ca", "bad certificate", "certificate unknown", "certificate expired",
                    "certificate revoked", "unsupported certificate", "access denied")),
    ("mismatch, certificate is not valid",
     "the server's certificate does not name the host of api_root ({detail})"),
    ("certificate verify failed",
     "the server's certificate is not signed by {ca} (certificate verify failed: {detail})"),
    ("eof occurred in violation of protocol",
     "the server closed the connection during the TLS handshake: {closed}"),
    ("connection reset by peer", "the server reset the connection: {closed}"),
)


def _tls_reason(rc: Recipient, exc: BaseException) -> str | None:
    """Words for a TLS failure of ``exc`` (None if it is none), naming the key to check."""
    import re

    text = str(exc).lower()
    if not rc.api_root.startswith("https:"):
        return None
    for marker, reason in _TLS_REASON:
        if marker in text:
            detail = re.search(r"verify failed: (.+?) \(_ssl", str(exc), re.IGNORECASE)
            return reason.format(
                key=rc.client_key, cert=rc.client_cert,
                ca=f"the CA in ca = {rc.ca}" if rc.ca else
                "a CA the system trusts (set ca to the CA bundle of the server's certificate)",
                detail=detail[1].strip() if detail else marker,
                mine=f"check that client_cert {rc.client_cert} is signed by a CA the server "
                     "trusts, valid and not revoked" if rc.client_cert else
                "none is configured; set client_cert and client_key",
                closed=f"does it accept client_cert {rc.client_cert} (signed by a CA it trusts, "
                       "valid, not revoked)?" if rc.client_cert else
                "does it require a client certificate? none is configured (client_cert, "
                "client_key)")
    return None


def _call(rc: Recipient, fn: Callable[[], Any]) -> Any:
    """Run one taxii2-client call, turning every failure into a :class:`DeliveryError`."""
    import requests
    from taxii2client.exceptions import TAXIIServiceException

    try:
        return fn()
    except requests.HTTPError as exc:
        code = exc.response.status_code if exc.response is not None else 0
        text = _HTTP_REASON.get(code, f"the server answered HTTP {code}").format(c=rc.collection)
        raise DeliveryError(f"{rc.name} ({rc.api_root}): {text}") from None
    except requests.ConnectionError as exc:
        if tls := _tls_reason(rc, exc):
            raise DeliveryError(f"{rc.name} ({rc.api_root}): {tls}") from None
        raise DeliveryError(f"{rc.name}: cannot reach {rc.api_root} ({_short(exc)})") from None
    except requests.Timeout:
        raise DeliveryError(f"{rc.name}: {rc.api_root} did not answer within "
                            f"{rc.timeout_s:g}s") from None
    except (requests.RequestException, TAXIIServiceException, ValueError, KeyError) as exc:
        raise DeliveryError(f"{rc.name} ({rc.api_root}): {_short(exc)}") from None


def _short(exc: BaseException) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "certificate verify failed",
                   "timed out"):
        if marker in text:
            return marker.lower()
    return text[:300]


def push_row(target: Any, objects: list[dict[str, Any]], done: int, pending: str) -> Outcome:
    """Push the parts of one report not yet acknowledged (``done`` of them are).

    ``pending`` is the status id of a part the server had not finished; it is
    asked first.  Returns the new state; never raises :class:`DeliveryError`.
    """
    try:
        parts = split_envelopes(objects, target.max_content_length())
        if pending and done < len(parts):
            state, failures = target.status(pending)
            if state != "complete":
                return Outcome("sent", len(parts), done, pending)
            if refused := _refused(target, parts[done], failures):
                return Outcome("failed", len(parts), done, "", f"the server refused {refused}")
            done += 1
        for part in parts[done:]:
            sid, state, failures = target.add(envelope_bytes(part))
            if state != "complete":
                return Outcome("sent", len(parts), done, sid)
            if refused := _refused(target, part, failures):
                return Outcome("failed", len(parts), done, "", f"the server refused {refused}")
            done += 1
        return Outcome("acknowledged", len(parts), done)
    except (DeliveryError, OtSentryError) as exc:
        return Outcome("failed", 0, done, "", str(exc))


def _lease(engine: Engine, cfg: ReportingConfig, now: int, limit: int) -> Pushed | None:
    with job(engine, "upstream", now) as taken:
        if taken is None:
            return None
        conn, _ = taken
        out = Pushed(True, schedule(conn, cfg, now), warnings=warn_due(conn, cfg, now))
        rows = conn.execute(select(R.id).where(
            R.status.in_(("queued", "failed", "sent", "sending")), R.next_try_ns <= now,
            R.lease_ns <= now).order_by(R.due_ns, R.id).limit(limit)).scalars().all()
        if rows:
            conn.execute(update(S.upstream_reports).where(R.id.in_(rows)).values(
                lease_ns=now + int(LEASE_S * _NS)))
        out.outcomes = {rid: Outcome("sending", 0, 0) for rid in rows}
        return out


def push_once(engine: Engine, cfg: ReportingConfig, *, now: int | None = None, limit: int = 20,
              connect: Callable[[Recipient], Any] = TaxiiCollection) -> Pushed:
    """One run of the push job (see the module docstring); ``connect`` opens a recipient's
    collection (the real TAXII client unless a test passes another real server's)."""
    now = time.time_ns() if now is None else now
    pushed = _lease(engine, cfg, now, limit)
    if pushed is None:
        return Pushed()
    for w in pushed.warnings:
        (log().error if w["overdue"] else log().warning)(
            "report overdue" if w["overdue"] else "report due soon", **w)
    targets: dict[str, Any] = {}
    try:
        for rid in list(pushed.outcomes):
            pushed.outcomes[rid] = _push_one(engine, cfg, rid, targets, connect, now)
    finally:
        for t in targets.values():
            t.close()
    return pushed


def _push_one(engine: Engine, cfg: ReportingConfig, rid: int, targets: dict[str, Any],
              connect: Callable[[Recipient], Any], now: int) -> Outcome:
    with write(engine) as conn:
        row = conn.execute(select(S.upstream_reports).where(R.id == rid)).one()
    rc = cfg.recipient(row.recipient)
    if rc is None:
        outcome = Outcome("failed", row.parts, row.parts_done, "",
                          f"no [[upstream]] recipient named {row.recipient!r} in the config")
    else:
        if rc.name not in targets:
            targets[rc.name] = connect(rc)
        outcome = push_row(targets[rc.name], json.loads(row.bundle), row.parts_done,
                           row.status_ids if row.status == "sent" else "")
    _record(engine, cfg, row, outcome, now)
    return outcome


def _record(engine: Engine, cfg: ReportingConfig, row: Any, o: Outcome, now: int) -> None:
    values: dict[str, Any] = {"status": o.status, "parts": o.parts, "parts_done": o.parts_done,
                              "status_ids": o.status_ids, "reason": o.reason, "lease_ns": 0,
                              "attempts": row.attempts + 1, "updated_ns": now}
    if o.status == "failed":
        delay = min(cfg.retry_max_s, cfg.retry_initial_s * 2 ** min(row.attempts, 30))
        values["next_try_ns"] = now + int(delay * _NS)
        log().warning("report push failed; will retry", incident=row.incident,
                      recipient=row.recipient, stage=row.stage, reason=o.reason,
                      retry_in_s=round(delay, 1))
    else:
        values["next_try_ns"] = now + int(cfg.retry_initial_s * _NS) if o.status == "sent" else 0
        values["sent_ns"] = row.sent_ns or now
        if o.status == "acknowledged":
            values["acked_ns"] = now
            log().info("report acknowledged", incident=row.incident, recipient=row.recipient,
                       stage=row.stage, parts=o.parts)
    with write(engine) as conn:
        # Only if nobody rebuilt the row meanwhile (a rebuild resets the lease to 0).
        conn.execute(update(S.upstream_reports).where(
            R.id == row.id, R.lease_ns == row.lease_ns).values(**values))


async def run_upstream(engine: Engine, cfg: ReportingConfig, stop: asyncio.Event) -> None:
    """Run :func:`push_once` every ``[reporting] interval`` until ``stop`` is set (in ``serve``)."""
    if not cfg.recipients and not cfg.automatic:
        return
    while not stop.is_set():
        try:
            await asyncio.to_thread(push_once, engine, cfg)
        except Exception as exc:  # noqa: BLE001 - the database may be away for a while; retry
            log().warning("upstream job failed; retrying", error=str(exc))
        try:
            await asyncio.wait_for(stop.wait(), timeout=cfg.interval_s)
        except TimeoutError:
            pass
