"""Segment files through the import, with the stream's identity checks and the same dedup."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from otsentry.agent.export import export
from otsentry.agent.outbox import Outbox
from otsentry.collector.cli import main
from otsentry.collector.import_cmd import import_file
from otsentry.collector.ingest_store import IngestStore
from otsentry.collector.pki import CertificateAuthority
from otsentry.common.errors import MessageError, PkiError
from otsentry.common.finding import Finding, Severity
from otsentry.common.pki import load_certificate, load_private_key
from otsentry.common.segment import certificate_pem, read_segment, write_segment

from tests.collector.conftest import Creds, Pki

AGENT = "site/plant1/agent/a1"


def _state(tmp_path: Path, creds: Creds, n: int = 30, name: str = "state") -> Path:
    state = tmp_path / name
    (state / "tls").mkdir(parents=True)
    shutil.copy(creds.key, state / "tls" / "agent.key")
    shutil.copy(creds.cert, state / "tls" / "agent.crt")
    box = Outbox(state / "outbox.sqlite")
    box.put_many([Finding(id=f"f{i}", revision=1, kind="k", severity=Severity.HIGH, techniques=(),
                          first_seen_ns=1, last_seen_ns=1, count=1, assets=(), summary="s")
                  for i in range(n)], [])
    box.close()
    return state


def _import(path: Path, pki: Pki, store: IngestStore) -> object:
    return asyncio.run(import_file(path, pki.ca, store))


def test_export_then_import_twice(pki: Pki, tmp_path: Path) -> None:
    """Everything exported is stored once; importing the file again stores nothing new."""
    state = _state(tmp_path, pki.agent())
    assert export(state, tmp_path / "seg.otseg") == (30, 1, 30)
    assert Outbox(state / "outbox.sqlite").depth() == 0
    store = IngestStore(tmp_path / "c.db")
    assert _import(tmp_path / "seg.otseg", pki, store).new == 30  # type: ignore[attr-defined]
    assert _import(tmp_path / "seg.otseg", pki, store).new == 0  # type: ignore[attr-defined]
    assert len(store.findings()) == 30
    assert list(store.streams().values()) == [(30, 30)]


def test_keep_and_overlap(pki: Pki, tmp_path: Path) -> None:
    """With --keep the messages stay; a later overlapping segment adds only the new ones."""
    state = _state(tmp_path, pki.agent())
    export(state, tmp_path / "one.otseg", keep=True)
    box = Outbox(state / "outbox.sqlite")
    assert box.depth() == 30
    box.put("status", b"")
    box.close()
    assert export(state, tmp_path / "two.otseg") == (31, 1, 31)
    store = IngestStore(tmp_path / "c.db")
    _import(tmp_path / "one.otseg", pki, store)
    assert _import(tmp_path / "two.otseg", pki, store).new == 1  # type: ignore[attr-defined]
    assert read_segment(tmp_path / "two.otseg").header["segment"] == 2


def test_tampered_file_refused(pki: Pki, tmp_path: Path) -> None:
    """A changed byte anywhere makes the signature fail; nothing is stored."""
    export(_state(tmp_path, pki.agent()), tmp_path / "seg.otseg")
    data = bytearray((tmp_path / "seg.otseg").read_bytes())
    data[len(data) // 2] ^= 0x01
    (tmp_path / "bad.otseg").write_bytes(bytes(data))
    store = IngestStore(tmp_path / "c.db")
    with pytest.raises(MessageError, match="signature does not verify"):
        _import(tmp_path / "bad.otseg", pki, store)
    (tmp_path / "short.otseg").write_bytes(bytes(data[:100]))
    with pytest.raises(MessageError, match="truncated"):
        _import(tmp_path / "short.otseg", pki, store)
    assert store.streams() == {}


def test_other_agents_identity_refused(pki: Pki, tmp_path: Path) -> None:
    """A segment signed by one agent that claims to be another is refused."""
    state = _state(tmp_path, pki.agent("plant1", "a1"))
    export(state, tmp_path / "seg.otseg")
    seg = read_segment(tmp_path / "seg.otseg")
    other = pki.agent("plant1", "evil")
    header = {k: v for k, v in seg.header.items() if k not in ("format", "certificate")}
    write_segment(tmp_path / "forged.otseg", header, [b.SerializeToString() for b in seg.batches],
                  certificate_pem(load_certificate(other.cert)), load_private_key(other.key))
    with pytest.raises(PkiError, match="may not report as"):
        _import(tmp_path / "forged.otseg", pki, IngestStore(tmp_path / "c.db"))


def test_foreign_ca_and_revoked_refused(pki: Pki, tmp_path: Path) -> None:
    """A signer from another CA, or a revoked one, is refused like on a stream."""
    other_ca = CertificateAuthority.init(tmp_path / "other", dns_names=["x"], ips=[])
    export(_state(tmp_path, pki.agent(ca=other_ca), name="s1"), tmp_path / "foreign.otseg")
    store = IngestStore(tmp_path / "c.db")
    with pytest.raises(PkiError, match="not issued by this collector's CA"):
        _import(tmp_path / "foreign.otseg", pki, store)
    creds = pki.agent()
    export(_state(tmp_path, creds, name="s2"), tmp_path / "revoked.otseg")
    pki.ca.revoke(AGENT)
    with pytest.raises(PkiError, match="revoked"):
        _import(tmp_path / "revoked.otseg", pki, store)
    assert store.streams() == {}


def test_command_line(pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`otsentry-collector import` reports new and already stored counts, and refusals."""
    export(_state(tmp_path, pki.agent()), tmp_path / "seg.otseg")
    (tmp_path / "c.toml").write_text(f'[server]\npki_dir = "{pki.ca.dir}"\n'
                                     f'[store]\npath = "{tmp_path / "c.db"}"\n')
    (tmp_path / "junk.otseg").write_bytes(b"junk" * 10)
    argv = ["import", "--config", str(tmp_path / "c.toml")]
    assert main([*argv, str(tmp_path / "seg.otseg")]) == 0
    assert main([*argv, str(tmp_path / "seg.otseg"), str(tmp_path / "junk.otseg")]) == 1
    out = capsys.readouterr().out
    assert "30 new, 0 already stored" in out and "0 new, 30 already stored" in out
    assert "REFUSED: " in out and "bad magic" in out
