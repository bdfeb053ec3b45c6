"""Certificate renewal: the file dance, refusals, and a running shipper that renews mid-delivery."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import stat
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from structlog.testing import capture_logs

from otsentry.agent.outbox import Outbox
from otsentry.agent.renew import Renewer, recover
from otsentry.agent.shipper import Shipper
from otsentry.collector.ingest_store import IngestStore
from otsentry.collector.server import run_server
from otsentry.common.pki import (
    Identity, build_csr, generate_key, load_certificate, public_keys_match, serial_hex,
    write_private_key,
)
from otsentry.common.tls import channel_credentials
from tests.agent.test_shipper import AGENT, _finding, _link
from tests.collector.conftest import Creds, Pki, _pki  # noqa: F401  (the pki fixture)


def _new_pair(pki: Pki, creds: Creds, *, cert_too: bool = True) -> None:
    """A second key as agent.key.new and, optionally, its certificate as agent.crt.new."""
    key = generate_key()
    write_private_key(creds.key.with_name("agent.key.new"), key)
    if cert_too:
        cert = pki.ca.sign_csr(build_csr(key, Identity.agent("plant1", "a1")))
        creds.cert.with_name("agent.crt.new").write_bytes(
            cert.public_bytes(serialization.Encoding.PEM))


def _matches(creds: Creds) -> bool:
    from otsentry.common.pki import load_private_key

    return public_keys_match(load_certificate(creds.cert), load_private_key(creds.key))


def _leftovers(creds: Creds) -> list[str]:
    return sorted(p.name for p in creds.key.parent.iterdir() if p.suffix in (".new", ".tmp"))


class TestRecover:
    def test_complete_pair_installed(self, pki: Pki) -> None:
        """A new key and certificate both written: both installed, key still 0600."""
        creds = pki.agent()
        old = serial_hex(load_certificate(creds.cert))
        _new_pair(pki, creds)
        assert recover(creds.cert, creds.key)
        assert serial_hex(load_certificate(creds.cert)) != old and _matches(creds)
        assert stat.S_IMODE(creds.key.stat().st_mode) == 0o600 and _leftovers(creds) == []

    def test_crash_between_renames(self, pki: Pki) -> None:
        """Certificate renamed, key not yet: the key follows, the pair matches again."""
        creds = pki.agent()
        _new_pair(pki, creds)
        creds.cert.with_name("agent.crt.new").replace(creds.cert)
        assert not _matches(creds)
        assert recover(creds.cert, creds.key) and _matches(creds) and _leftovers(creds) == []

    def test_incomplete_dropped(self, pki: Pki) -> None:
        """Only a new key (no certificate came): it is dropped and the old pair kept."""
        creds = pki.agent()
        before = creds.cert.read_bytes(), creds.key.read_bytes()
        _new_pair(pki, creds, cert_too=False)
        assert not recover(creds.cert, creds.key)
        assert (creds.cert.read_bytes(), creds.key.read_bytes()) == before and _leftovers(creds) == []


async def _renew_once(pki: Pki, creds: Creds) -> None:
    server, port = await run_server(pki.ca.dir)
    try:
        cc = channel_credentials(creds.ca, creds.cert, creds.key)
        async with grpc.aio.secure_channel(f"localhost:{port}", cc) as ch:
            await Renewer(creds.cert, creds.key, creds.ca, fraction=0.5).renew(ch)
    finally:
        await server.stop(None)


class TestRenewer:
    def test_renews_with_new_key(self, pki: Pki) -> None:
        """The certificate and key are replaced by a new matching pair; the key is 0600."""
        creds = pki.agent()
        old_cert, old_key = load_certificate(creds.cert), creds.key.read_bytes()
        with capture_logs() as logs:
            asyncio.run(_renew_once(pki, creds))
        assert serial_hex(load_certificate(creds.cert)) != serial_hex(old_cert)
        assert creds.key.read_bytes() != old_key and _matches(creds)
        assert stat.S_IMODE(creds.key.stat().st_mode) == 0o600 and _leftovers(creds) == []
        assert [e["old_serial"] for e in logs if e["event"] == "certificate renewed"] == [
            serial_hex(old_cert)]

    def test_revoked_keeps_old_pair(self, pki: Pki) -> None:
        """A revoked certificate is refused (UNAUTHENTICATED) and nothing on disk changes."""
        creds = pki.agent()
        pki.ca.revoke(serial_hex(load_certificate(creds.cert)))
        before = creds.cert.read_bytes(), creds.key.read_bytes()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            asyncio.run(_renew_once(pki, creds))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert (creds.cert.read_bytes(), creds.key.read_bytes()) == before and _leftovers(creds) == []

    def test_due(self, pki: Pki) -> None:
        """Due once less than the fraction of the validity period remains."""
        creds = pki.agent(validity=dt.timedelta(days=30))
        start = load_certificate(creds.cert).not_valid_before_utc.timestamp()
        for fraction, at_day, due in ((1 / 3, 19, False), (1 / 3, 21, True), (0.5, 16, True)):
            r = Renewer(creds.cert, creds.key, creds.ca, fraction=fraction,
                        clock=lambda d=at_day: start + d * 86400)
            assert (r.seconds_until_due() <= 0) is due


def test_shipper_renews_while_delivering(pki: Pki, tmp_path: Path) -> None:
    """A running shipper with a 6-second certificate renews it (new serial, new key) and
    reconnects with it, while findings keep flowing: every one is stored exactly once and
    nothing had to be resent across the switch."""
    link = _link(pki, [0], renew_fraction=0.5)
    creds = Creds(link.key, link.cert, link.ca)
    key = generate_key()
    link.key.unlink()
    write_private_key(link.key, key)
    cert = pki.ca.sign_csr(build_csr(key, Identity.agent("plant1", "a1")),
                           validity=dt.timedelta(seconds=6))
    link.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    store = IngestStore(tmp_path / "c.db")
    n_rounds, per_round = 50, 10

    async def produce(box: Outbox) -> None:
        for r in range(n_rounds):
            box.put_many([_finding(r * per_round + i) for i in range(per_round)], [])  # ms
            await asyncio.sleep(0.1)

    async def main() -> Shipper:
        server, port = await run_server(pki.ca.dir, commit=store.commit)
        Outbox(tmp_path / "out.db").close()
        ship = Shipper(tmp_path / "out.db", AGENT, replace(link, endpoints=(f"localhost:{port}",)),
                       rng=random.Random(1))
        box = Outbox(tmp_path / "out.db")  # the capture side, writing while the shipper ships
        stop = asyncio.Event()
        run = asyncio.ensure_future(ship.run(stop))
        await produce(box)
        while (await ship.outbox_stats())["depth"]:
            await asyncio.sleep(0.05)
        stop.set()
        await run
        box.close()
        await server.stop(None)
        return ship
    with capture_logs() as logs:
        ship = asyncio.run(main())
    renewed = [e for e in logs if e["event"] == "certificate renewed"]
    assert renewed and renewed[0]["old_serial"] == serial_hex(cert)
    assert serial_hex(load_certificate(creds.cert)) != serial_hex(cert) and _matches(creds)
    assert ship.state.connects == len(renewed) + 1
    assert ship.state.messages_resent == 0
    assert len(store.findings()) == n_rounds * per_round
    [(hwm, count)] = store.streams().values()
    assert hwm == count == n_rounds * per_round
