"""Who may subscribe, and what a bad request gets: real certificates against a real collector."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from structlog.testing import capture_logs

from otsentry.common.pki import load_certificate, serial_hex
from otsentry.v1 import feed_pb2
from tests.collector.conftest import Creds, Pki
from tests.collector.feed.harness import Collector, live
from tests.collector.store.helpers import A1, batch, finding


def _sqlite(tmp_path: Path) -> str:
    from otsentry.collector.store import connect, upgrade

    url = f"sqlite:///{tmp_path / 'feed.sqlite'}"
    engine = connect(url)
    upgrade(engine)
    engine.dispose()
    return url


def _refused(tmp_path: Path, pki: Pki, creds: Creds | None,
             request: feed_pb2.SubscribeRequest | None = None) -> tuple[grpc.StatusCode, str, list]:
    async def main() -> None:
        async with Collector(_sqlite(tmp_path), pki) as c:
            await c.collect(request or feed_pb2.SubscribeRequest(after=0, history_only=True), creds)
    with capture_logs() as logs, pytest.raises(grpc.aio.AioRpcError) as err:
        asyncio.run(main())
    return err.value.code(), err.value.details() or "", [
        e for e in logs if e.get("event") == "call refused"]


def test_agent_certificate_refused(tmp_path: Path, pki: Pki) -> None:
    """An agent's certificate may not read the feed: PERMISSION_DENIED, and one log line says why."""
    code, details, logs = _refused(tmp_path, pki, pki.agent())
    assert code == grpc.StatusCode.PERMISSION_DENIED and "agent" in details
    assert [(e["reason"], e["identity"], e["method"]) for e in logs] == [
        ("wrong-kind", A1.short, "/otsentry.v1.Feed/Subscribe")]


def test_revoked_analyst_refused(tmp_path: Path, pki: Pki) -> None:
    """A revoked analyst's certificate is refused with UNAUTHENTICATED."""
    creds = pki.analyst("gone")
    pki.ca.revoke("analyst/gone", "left the company")
    code, details, logs = _refused(tmp_path, pki, creds)
    assert code == grpc.StatusCode.UNAUTHENTICATED and "revoked" in details
    assert [e["reason"] for e in logs] == ["revoked"]


def test_bad_filter_refused(tmp_path: Path, pki: Pki) -> None:
    """A filter value that is not a plain name is INVALID_ARGUMENT, naming the field."""
    code, details, _ = _refused(tmp_path, pki, None, feed_pb2.SubscribeRequest(
        filter=feed_pb2.FeedFilter(sites=["plant%"])))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "filter.sites" in details


def test_revoked_while_subscribed_is_cut(tmp_path: Path, pki: Pki) -> None:
    """Revoking the analyst's certificate cuts an open subscription at its next page."""
    async def main() -> grpc.StatusCode:
        async with Collector(_sqlite(tmp_path), pki, poll_s=0.1) as c:
            stream = c.client().events(feed_pb2.SubscribeRequest())
            await live(stream)
            pki.ca.revoke(serial_hex(load_certificate(c.analyst_creds.cert)))
            await c.ingest(batch(A1, 1, 1, [finding("after-revoke")]))
            with pytest.raises(grpc.aio.AioRpcError) as err:
                async with asyncio.timeout(10):
                    async for ev in stream:
                        assert not ev.HasField("finding"), "an event reached a revoked analyst"
            return err.value.code()
    assert asyncio.run(main()) == grpc.StatusCode.UNAUTHENTICATED
