"""``otsentry-collector serve`` on each database: stores over mTLS, correlates in the background."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc

from otsentry.collector.store import Store, read
from otsentry.collector.store import _schema as S
from otsentry.collector.store.testing import free_port
from otsentry.common.finding import Severity
from otsentry.common.tls import channel_credentials
from otsentry.v1 import ingest_pb2_grpc
from tests.collector.conftest import Pki
from tests.collector.store.helpers import A1, batch, finding

BIN = Path(sys.executable).parent


def _serve(tmp: Path, pki: Pki, url: str, port: int) -> subprocess.Popen:
    cfg = tmp / "collector.toml"
    cfg.write_text(f'[server]\nhost = "127.0.0.1"\nport = {port}\npki_dir = "{pki.ca.dir}"\n')
    rules = tmp / "rules.toml"
    rules.write_text("[correlate.site_source]\nmin_detectors = 2\nwindow = \"10m\"\n")
    log = (tmp / "serve.log").open("w")
    proc = subprocess.Popen([str(BIN / "otsentry-collector"), "serve", "--config", str(cfg),
                             "--db", url, "--rules", str(rules), "--retention-days", "30"],
                            stdout=log, stderr=log)
    end = time.monotonic() + 30
    while time.monotonic() < end:
        assert proc.poll() is None, (tmp / "serve.log").read_text()
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.1)
    raise AssertionError("serve did not listen")


async def _send(port: int, pki: Pki) -> list[int]:
    creds = pki.agent()
    b = batch(A1, 3, 1, [
        finding("scan", kind="scan.hosts", techniques=("T0846",), client="10.0.0.66"),
        finding("write", kind="policy.write-not-allowed", severity=Severity.HIGH,
                techniques=("T0855",), client="10.0.0.66")])
    async with grpc.aio.secure_channel(f"localhost:{port}",
                                       channel_credentials(creds.ca, creds.cert, creds.key)) as ch:
        return [a.seq async for a in ingest_pb2_grpc.IngestStub(ch).Stream(iter([b]), timeout=20)]


def test_serve_stores_and_correlates(db_url: str, pki: Pki, tmp_path: Path) -> None:
    """Acked findings are in the store, and the background job opens their incident."""
    port = free_port()
    proc = _serve(tmp_path, pki, db_url, port)
    try:
        assert asyncio.run(_send(port, pki)) == [2]
        store = Store(db_url)
        deadline, incidents = time.monotonic() + 20, []
        while not incidents and time.monotonic() < deadline:
            time.sleep(0.1)
            with read(store.engine) as conn:
                incidents = conn.execute(select_incidents()).all()
        assert set(store.findings()) == {(A1.short, "scan"), (A1.short, "write")}
        (agent,) = store.agents()
        assert len(agent["cert_fingerprint"]) == 64
        store.close()
        assert [i.rule for i in incidents] == ["site-source"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def select_incidents():  # type: ignore[no-untyped-def]
    """The incidents, oldest first."""
    from sqlalchemy import select

    return select(S.incidents.c.rule).order_by(S.incidents.c.id)
