"""Ingest into the store on both databases: dedup, merge forward, assets, status, group commit."""

from __future__ import annotations

import asyncio
from concurrent.futures import wait
from pathlib import Path

import grpc
import pytest
from otsentry.agent.outbox import Outbox
from otsentry.collector.server import run_server
from otsentry.collector.store import Store
from otsentry.common.errors import MessageError
from otsentry.common.pki import load_certificate, serial_hex
from otsentry.common.tls import channel_credentials
from otsentry.v1 import convert, ingest_pb2, ingest_pb2_grpc, inventory_pb2

from tests.collector.conftest import Pki
from tests.collector.store.helpers import A1, A2, B1, batch, delta, finding, status


async def _exchange(pki: Pki, store: Store, batches: list[ingest_pb2.Batch]) -> list[int]:
    server, port = await run_server(pki.ca.dir, commit=store.commit)
    creds = pki.agent()
    try:
        async with grpc.aio.secure_channel(
                f"localhost:{port}", channel_credentials(creds.ca, creds.cert, creds.key)) as ch:
            call = ingest_pb2_grpc.IngestStub(ch).Stream(iter(batches), timeout=20)
            return [ack.seq async for ack in call]
    finally:
        await server.stop(None)


def _outbox_batch(box: Outbox, entries: list) -> ingest_pb2.Batch:
    return ingest_pb2.Batch(agent_id=A1.short, epoch=box.epoch, first_seq=entries[0].seq,
                            messages=[convert.parse(ingest_pb2.Envelope, e.body) for e in entries])


class TestOverGrpc:
    def test_resend_is_idempotent(self, pki: Pki, store: Store, tmp_path: Path) -> None:
        """Batches resent after a lost ack are skipped; each finding's last revision is stored once."""
        box = Outbox(tmp_path / "outbox.db")
        box.put_finding(finding("a", 1))
        box.put_finding(finding("b", 1))
        first = box.take(max_messages=2)
        box.put_finding(finding("a", 2))
        box.put_finding(finding("a", 3))
        second = box.take()
        acks = asyncio.run(_exchange(pki, store, [_outbox_batch(box, first),
                                                  _outbox_batch(box, second)]))
        assert acks == [2, 3]
        assert asyncio.run(_exchange(pki, store, [_outbox_batch(box, box.unacked())])) == [3]
        stored = store.findings()
        assert {k: (f.revision, f.count) for k, f in stored.items()} == {
            (A1.short, "a"): (3, 3), (A1.short, "b"): (1, 1)}
        assert all(f.times.ingest_ns > 0 for f in stored.values())

    def test_invalid_finding_refused(self, pki: Pki, store: Store) -> None:
        """A finding that breaks the model ends the stream with INVALID_ARGUMENT; nothing is stored."""
        bad = ingest_pb2.Envelope()
        bad.finding.id = "x"
        with pytest.raises(grpc.aio.AioRpcError) as err:
            asyncio.run(_exchange(pki, store, [
                ingest_pb2.Batch(agent_id=A1.short, epoch=1, first_seq=1, messages=[bad])]))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert store.findings() == {}

    def test_agent_row_has_certificate(self, pki: Pki, db_url: str) -> None:
        """The agent's row carries the serial and SHA-256 fingerprint of the certificate it used."""
        from otsentry.collector.store import ca_fingerprints

        store = Store(db_url, fingerprint=ca_fingerprints(pki.ca.dir))
        try:
            asyncio.run(_exchange(pki, store, [batch(A1, 1, 1, [finding("a")])]))
            (agent,) = store.agents()
        finally:
            store.close()
        (crt,) = [c for c in pki.ca.issued() if serial_hex(c) == agent["cert_serial"]]
        from cryptography.hazmat.primitives import hashes
        assert agent["cert_fingerprint"] == crt.fingerprint(hashes.SHA256()).hex()
        assert load_certificate  # the CA's issued/ folder is where fingerprints come from


class TestFindings:
    def test_older_revision_after_newer(self, store: Store) -> None:
        """A late older revision (a new epoch after a wipe) never moves a finding backwards."""
        store.ingest.commit_sync(A1, "s", batch(A1, 1, 1, [finding("a", 5)]))
        store.ingest.commit_sync(A1, "s", batch(A1, 2, 1, [finding("a", 2)]))
        f = store.findings()[(A1.short, "a")]
        assert (f.revision, f.count, f.last_seen_ns) == (5, 5, 51)

    def test_ids_are_per_agent(self, store: Store) -> None:
        """Two agents may use the same finding id: they are two findings."""
        store.ingest.commit_sync(A1, "s", batch(A1, 1, 1, [finding("a", 1)]))
        store.ingest.commit_sync(A2, "s", batch(A2, 1, 1, [finding("a", 2)]))
        assert set(store.findings()) == {(A1.short, "a"), (A2.short, "a")}

    def test_agent_cannot_predate_ingest(self, store: Store) -> None:
        """The ingest time is the collector's clock, whatever the agent put in the message."""
        f = finding("a")
        import dataclasses
        f = dataclasses.replace(f, times=dataclasses.replace(f.times, ingest_ns=1))
        store.ingest.commit_sync(A1, "s", batch(A1, 1, 1, [f]))
        assert store.findings()[(A1.short, "a")].times.ingest_ns > 1

    def test_bad_batch_fails_alone(self, store: Store) -> None:
        """In one group commit, a batch with a bad message is refused and the others commit."""
        bad = batch(A2, 1, 1, [])
        bad.messages.add().finding.id = "x"
        futs = [store.ingest.submit(A1, "s", batch(A1, 1, 1, [finding("a")])),
                store.ingest.submit(A2, "s", bad),
                store.ingest.submit(B1, "s", batch(B1, 1, 1, [finding("b")]))]
        wait(futs)
        assert futs[0].result() == 1 and futs[2].result() == 1
        with pytest.raises(MessageError):
            futs[1].result()
        assert set(store.findings()) == {(A1.short, "a"), (B1.short, "b")}

    def test_group_commit_shares_transactions(self, store: Store) -> None:
        """Many batches queued at once commit in fewer transactions than batches, all acked."""
        futs = [store.ingest.submit(ident, "s", batch(ident, 1, i * 10 + 1,
                                                       [finding(f"{ident.name}-{i}-{j}")
                                                        for j in range(10)]))
                for i in range(20) for ident in (A1, A2, B1)]
        assert [f.result() for f in futs] == [i * 10 + 10 for i in range(20) for _ in range(3)]
        assert store.ingest.transactions < len(futs)
        assert len(store.findings()) == 600


class TestAssets:
    def test_merged_per_site_from_every_agent(self, store: Store) -> None:
        """Two agents of one site report one asset: one row, the latest value of each attribute."""
        store.ingest.commit_sync(A1, "s", batch(A1, 1, 1, [
            delta("10.0.0.9", at=100, attrs={"role": "server", "vendor": "Acme"})]))
        store.ingest.commit_sync(A2, "s", batch(A2, 1, 1, [
            delta("10.0.0.9", inventory_pb2.CHANGE_KIND_UPDATED, at=200, attrs={"vendor": "Bcme"}),
            delta("10.0.0.9", inventory_pb2.CHANGE_KIND_UPDATED, at=50, attrs={"role": "client"})]))
        store.ingest.commit_sync(B1, "s", batch(B1, 1, 1, [delta("10.0.0.9", at=10)]))
        rows = store.assets("plant1")
        assert len(rows) == 1 and len(store.assets()) == 2
        assert rows[0]["attributes"] == {"role": "server", "vendor": "Bcme"}
        assert (rows[0]["first_seen_ns"], rows[0]["last_seen_ns"]) == (50, 200)
        assert [h["change"] for h in store.asset_history(rows[0]["id"])] == [1, 2, 2]

    def test_device_id_change_recorded(self, store: Store) -> None:
        """A new firmware revision in the device id is recorded as a change pattern."""
        store.ingest.commit_sync(A1, "s", batch(A1, 1, 1, [
            delta("10.0.0.9", at=100, unit=1, device_id={0: b"Acme", 2: b"v1.0"}),
            delta("10.0.0.9", inventory_pb2.CHANGE_KIND_UPDATED, at=200, unit=1,
                  device_id={0: b"Acme", 2: b"v6.6"})]))
        (row,) = store.assets()
        assert row["unit"] == 1 and row["device_id"] == {0: b"Acme", 2: b"v6.6"}
        hist = store.asset_history(row["id"])
        assert [h["device_id_change"] for h in hist] == ["", '{"2": ["76312e30", "76362e36"]}']

    def test_removed_then_seen(self, store: Store) -> None:
        """An asset removed is flagged removed until it is seen again later."""
        store.ingest.commit_sync(A1, "s", batch(A1, 1, 1, [
            delta("10.0.0.9", at=100), delta("10.0.0.9", inventory_pb2.CHANGE_KIND_REMOVED, at=300)]))
        assert store.assets()[0]["removed"]
        store.ingest.commit_sync(A1, "s", batch(A1, 1, 3, [
            delta("10.0.0.9", inventory_pb2.CHANGE_KIND_SEEN, at=400)]))
        assert not store.assets()[0]["removed"]


class TestStatus:
    def test_history_and_skew(self, store: Store) -> None:
        """Every status report is kept; the agent row has the latest version and the clock skew."""
        now = store.clock()
        store.ingest.commit_sync(A1, "s", batch(A1, 1, 1, [status(now - 5_000_000_000, "0.1.0")]))
        store.ingest.commit_sync(A1, "s", batch(A1, 1, 2, [status(now + 60_000_000_000, "0.2.0", 7)]))
        (agent,) = store.agents()
        assert agent["version"] == "0.2.0" and agent["status"].outbox_depth == 7
        assert 50_000_000_000 < agent["skew_ns"] < 61_000_000_000
        assert [h["version"] for h in store.status_history(A1.short)] == ["0.1.0", "0.2.0"]

    def test_a_status_that_waited_in_the_outbox_is_no_skew(self, store: Store) -> None:
        """The skew comes from when the batch was sent, not when its status was written: a
        status delivered after an outage is old, not a clock 10 minutes slow."""
        now = store.clock()
        b = batch(A1, 1, 1, [status(now - 600_000_000_000, "0.1.0")])
        b.sent_ns = now + 42_000_000_000  # an agent clock 42 s fast
        store.ingest.commit_sync(A1, "s", b)
        (agent,) = store.agents()
        assert 40_000_000_000 < agent["skew_ns"] < 43_000_000_000


class TestCommitContract:
    def test_same_reads_as_the_interim_store(self, store: Store) -> None:
        """streams(), status() and inventory_count() answer like the interim store's."""
        store.ingest.commit_sync(A1, "s", batch(A1, 9, 1, [finding("a"), delta("10.0.0.9"),
                                                           status(store.clock())]))
        store.ingest.commit_sync(A1, "s", batch(A1, 9, 3, [delta("10.0.0.9"), finding("b")]))
        assert store.streams() == {(A1.short, 9): (4, 4)}
        skew, st = store.status(A1.short)  # type: ignore[misc]
        assert abs(skew) < 5_000_000_000 and st.mode == "protecting"
        assert store.status(A2.short) is None
        assert store.inventory_count() == store.inventory_count(A1.short) == 1


def test_writer_survives_a_failing_group(db_url: str) -> None:
    """An unexpected failure after a commit fails that batch's waiter; the next batch still commits."""
    calls = []

    def on_commit() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("hook failed")

    store = Store(db_url, on_commit=on_commit)
    try:
        with pytest.raises(RuntimeError, match="hook failed"):
            store.ingest.commit_sync(A1, "s", batch(A1, 1, 1, [finding("x")]))
        assert store.ingest.commit_sync(A1, "s", batch(A1, 1, 2, [finding("y")])) == 2
    finally:
        store.close()
