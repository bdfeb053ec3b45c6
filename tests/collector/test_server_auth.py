"""Real mTLS handshakes against a real grpc.aio server on 127.0.0.1: who gets in, who is refused."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from structlog.testing import capture_logs

from otsentry.collector.server import run_server
from otsentry.common.pki import load_certificate, serial_hex
from otsentry.common.tls import channel_credentials, explain_rpc_error
from otsentry.v1 import ingest_pb2, ingest_pb2_grpc
from tests.collector.conftest import Creds, Pki


def _batch(agent_id: str = "site/plant1/agent/a1", seq: int = 1) -> ingest_pb2.Batch:
    return ingest_pb2.Batch(agent_id=agent_id, epoch=7, first_seq=seq,
                            messages=[ingest_pb2.Envelope(queued_ns=1)])


async def _with_server(pki: Pki, fn: Callable[[int], Awaitable[object]]) -> object:
    server, port = await run_server(pki.ca.dir)
    try:
        return await fn(port)
    finally:
        await server.stop(None)


def _channel(port: int, creds: Creds | None, ca: Path) -> grpc.aio.Channel:
    if creds is None:
        cc = grpc.ssl_channel_credentials(root_certificates=ca.read_bytes())
    else:
        cc = channel_credentials(creds.ca, creds.cert, creds.key)
    return grpc.aio.secure_channel(f"localhost:{port}", cc)


async def _send(port: int, creds: Creds | None, ca: Path, batches: list[ingest_pb2.Batch]) -> list:
    async with _channel(port, creds, ca) as ch:
        call = ingest_pb2_grpc.IngestStub(ch).Stream(iter(batches), timeout=10)
        return [ack async for ack in call]


def _refusal(pki: Pki, creds: Creds | None, batches: list | None = None) -> tuple[grpc.RpcError, list]:
    with capture_logs() as logs:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            asyncio.run(_with_server(pki, lambda port: _send(port, creds, pki.ca.ca_cert_path,
                                                             batches or [_batch()])))
    return err.value, [e for e in logs if e.get("event") == "call refused"]


class TestAccepted:
    def test_agent_gets_acks(self, pki: Pki) -> None:
        """An enrolled agent opens the stream and every batch is acked."""
        acks = asyncio.run(_with_server(pki, lambda port: _send(
            port, pki.agent(), pki.ca.ca_cert_path, [_batch(seq=1), _batch(seq=2)])))
        assert [(a.epoch, a.seq) for a in acks] == [(7, 1), (7, 2)]
        assert all(a.ingest_ns > 0 for a in acks)

    def test_health(self, pki: Pki) -> None:
        """The standard health service answers SERVING for Ingest, for any CA-signed client."""
        async def check(port: int) -> int:
            async with _channel(port, pki.analyst(), pki.ca.ca_cert_path) as ch:
                resp = await health_pb2_grpc.HealthStub(ch).Check(
                    health_pb2.HealthCheckRequest(service="otsentry.v1.Ingest"), timeout=10)
                return resp.status
        assert asyncio.run(_with_server(pki, check)) == health_pb2.HealthCheckResponse.SERVING


class TestRefused:
    def test_unknown_ca(self, pki: Pki, tmp_path: Path) -> None:
        """A client certificate from another CA fails the handshake: UNAVAILABLE."""
        other = Pki(tmp_path / "other")
        creds = other.agent()
        creds = Creds(creds.key, creds.cert, pki.ca.ca_cert_path)
        err, _ = _refusal(pki, creds)
        assert err.code() == grpc.StatusCode.UNAVAILABLE
        assert "TLS" in explain_rpc_error(err)

    def test_no_client_cert(self, pki: Pki) -> None:
        """A client without a certificate fails the handshake: UNAVAILABLE."""
        err, _ = _refusal(pki, None)
        assert err.code() == grpc.StatusCode.UNAVAILABLE

    def test_wrong_server_ca(self, pki: Pki, tmp_path: Path) -> None:
        """An agent that trusts another CA refuses the collector: UNAVAILABLE."""
        other = Pki(tmp_path / "other")
        creds = pki.agent()
        err, _ = _refusal(pki, Creds(creds.key, creds.cert, other.ca.ca_cert_path))
        assert err.code() == grpc.StatusCode.UNAVAILABLE

    def test_expired(self, pki: Pki) -> None:
        """An expired agent certificate is refused in the handshake: UNAVAILABLE."""
        past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=30)
        err, _ = _refusal(pki, pki.agent(now=past, not_before=past, days=1))
        assert err.code() == grpc.StatusCode.UNAVAILABLE

    def test_revoked(self, pki: Pki) -> None:
        """A revoked certificate is refused with UNAUTHENTICATED and a log line naming it."""
        creds = pki.agent()
        serial = serial_hex(load_certificate(creds.cert))
        pki.ca.revoke(serial, reason="test")
        err, logs = _refusal(pki, creds)
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "revoked" in err.details()
        assert [(e["reason"], e["serial"], e["identity"]) for e in logs] == [
            ("revoked", serial, "site/plant1/agent/a1")]

    def test_other_agents_id(self, pki: Pki) -> None:
        """An agent reporting under another agent's id is refused with PERMISSION_DENIED."""
        err, logs = _refusal(pki, pki.agent(), [_batch(agent_id="site/plant1/agent/a2")])
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
        assert [(e["reason"], e["claimed"]) for e in logs] == [
            ("agent-id-mismatch", "site/plant1/agent/a2")]

    def test_analyst_on_ingest(self, pki: Pki) -> None:
        """An analyst's certificate on Ingest is refused with PERMISSION_DENIED."""
        err, logs = _refusal(pki, pki.analyst("eve"))
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
        assert [(e["reason"], e["identity"]) for e in logs] == [("wrong-kind", "analyst/eve")]

    def test_revoked_while_connected(self, pki: Pki) -> None:
        """Revoking an agent cuts its open stream at the next batch."""
        creds = pki.agent()

        async def scenario(port: int) -> list[int]:
            queue: asyncio.Queue[ingest_pb2.Batch | None] = asyncio.Queue()

            async def requests():  # type: ignore[no-untyped-def]
                while (b := await queue.get()) is not None:
                    yield b

            acks = []
            async with _channel(port, creds, pki.ca.ca_cert_path) as ch:
                call = ingest_pb2_grpc.IngestStub(ch).Stream(requests(), timeout=10)
                await queue.put(_batch(seq=1))
                acks.append((await call.read()).seq)
                pki.ca.revoke("site/plant1/agent/a1")
                await queue.put(_batch(seq=2))
                await call.read()
            return acks

        with capture_logs() as logs, pytest.raises(grpc.aio.AioRpcError) as err:
            asyncio.run(_with_server(pki, scenario))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert any(e.get("reason") == "revoked-while-connected" for e in logs)


class TestGarbage:
    def test_garbage_bytes(self, pki: Pki) -> None:
        """Garbage bytes on the gRPC port do not stop the server from serving agents."""
        async def scenario(port: int) -> list:
            for junk in (b"\x00" * 100, b"GET / HTTP/1.1\r\n\r\n", bytes(range(256)) * 4):
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    s.sendall(junk)
            return await _send(port, pki.agent(), pki.ca.ca_cert_path, [_batch()])
        assert len(asyncio.run(_with_server(pki, scenario))) == 1
