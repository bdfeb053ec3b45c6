"""``otsentry-collector import``: ingest signed segment files, with the stream's checks and dedup.

The checks are the stream's, in the same order: the signer's certificate is
issued by our CA, valid now and not revoked, it is an agent's, and every batch
speaks for that agent (``PERMISSION_DENIED`` on a stream).  Then each batch
goes through the same commit as a streamed one, so (agent, epoch, seq) dedup
makes a second import of a file, or a file overlapping the stream, store
nothing twice.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
from pathlib import Path
from typing import NoReturn

import structlog
from cryptography.exceptions import InvalidSignature

from otsentry.collector.auth import Peer
from otsentry.collector.pki import CertificateAuthority
from otsentry.common.errors import MessageError, PkiError
from otsentry.common.logging import get_logger
from otsentry.common.pki import check_validity, identity_of, load_certificate, serial_hex
from otsentry.common.segment import Segment, read_segment

__all__ = ["SUMMARY", "add_arguments", "run", "import_file", "ImportResult"]

SUMMARY = "ingest segment files exported by agents behind a data diode or with no link"

HELP = """\
Reads files written by 'otsentry-agent export', checks that each was signed by
an agent enrolled with this collector's CA (not revoked, not expired, writing
only as itself) and that nothing in it was changed, and stores the messages
exactly as if they had been streamed.  A file imported twice, or overlapping
what the stream already delivered, stores nothing twice.

examples:
  otsentry-collector import /media/usb/plant-north-2026-11-24.otseg
  otsentry-collector import --config /etc/otsentry/collector.toml diode/incoming/*.otseg
"""


def log() -> structlog.typing.FilteringBoundLogger:
    """This module's logger, looked up per call so that it follows ``configure()``."""
    return get_logger("collector.import")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``import``."""
    p.description = HELP
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("files", metavar="FILE", nargs="+", type=Path, help="segment files")
    p.add_argument("--config", metavar="FILE", default=None,
                   help="the collector's TOML config (store path and PKI dir)")
    p.add_argument("--db", metavar="URL", default=None,
                   help="the store, as for 'serve' (default: sqlite:/// at the [store] path)")


class ImportResult:
    """What one file brought: its agent, epoch, sequence range, and how much was new."""

    def __init__(self, agent: str, epoch: int, first: int, last: int, new: int) -> None:
        self.agent, self.epoch, self.first, self.last, self.new = agent, epoch, first, last, new

    def __str__(self) -> str:
        total = self.last - self.first + 1
        return (f"{self.agent} epoch {self.epoch:x} messages {self.first}..{self.last}: "
                f"{self.new} new, {total - self.new} already stored")


def run(args: argparse.Namespace) -> int:
    """Import every file; exit 1 if any was refused (the others are still imported)."""
    from otsentry.collector.serve import DEFAULT_CONFIG
    from otsentry.collector.store import Store, ca_fingerprints
    from otsentry.common.config import load_collector_config

    path = args.config or (DEFAULT_CONFIG if Path(DEFAULT_CONFIG).exists() else None)
    cfg = load_collector_config(path)
    ca = CertificateAuthority(cfg.pki_dir)
    db = args.db
    if db is None:
        cfg.store.parent.mkdir(parents=True, exist_ok=True)
        db = f"sqlite:///{cfg.store}"
    store = Store(db, create=db.startswith("sqlite"), max_clock_skew_s=cfg.max_clock_skew_s,
                  fingerprint=ca_fingerprints(cfg.pki_dir))
    failed = 0
    try:
        for f in args.files:
            try:
                print(f"{f}: {asyncio.run(import_file(f, ca, store))}")
            except (MessageError, PkiError) as exc:
                failed += 1
                print(f"{f}: REFUSED: {exc}")
    finally:
        store.close()
    return 1 if failed else 0


async def import_file(path: Path, ca: CertificateAuthority, store: object,
                      now: dt.datetime | None = None) -> ImportResult:
    """Check ``path`` like a stream and commit its batches through ``store.commit``.

    Raises:
        MessageError: not a valid segment, or changed after signing.
        PkiError: the signer is not an enrolled, valid, unrevoked agent, or the file
            speaks for another agent.
    """
    seg = read_segment(path)
    peer = _authenticate(seg, ca, now or dt.datetime.now(dt.timezone.utc), str(path))
    agent = peer.identity.short
    for b in seg.batches:
        if b.agent_id != agent or b.epoch != seg.header["epoch"]:
            _refuse(path, "agent-id-mismatch", f"a batch speaks for {b.agent_id!r} epoch "
                    f"{b.epoch}, the signer is {agent}", agent)
        if b.epoch == 0 or b.first_seq == 0:
            _refuse(path, "bad-batch", "epoch and first_seq must be >= 1", agent)
    key = (agent, int(seg.header["epoch"]))
    before = store.streams().get(key, (0, 0))[1]  # type: ignore[attr-defined]
    for b in seg.batches:
        await store.commit(peer, b)  # type: ignore[attr-defined]
    after = store.streams().get(key, (0, 0))[1]  # type: ignore[attr-defined]
    res = ImportResult(agent, key[1], int(seg.header["first_seq"]), int(seg.header["last_seq"]),
                       after - before)
    log().info("segment imported", path=str(path), agent=agent, epoch=key[1], first=res.first,
               last=res.last, new=res.new, segment=seg.header["segment"])
    return res


def _authenticate(seg: Segment, ca: CertificateAuthority, now: dt.datetime, name: str) -> Peer:
    cert = seg.certificate
    serial = serial_hex(cert)
    try:
        cert.verify_directly_issued_by(load_certificate(ca.ca_cert_path))
    except (ValueError, TypeError, InvalidSignature):
        _refuse(name, "unknown-ca", "the signer's certificate is not issued by this "
                "collector's CA", serial=serial)
    ident = identity_of(cert)
    check_validity(cert, now)
    if ca.revocations.is_revoked(serial):
        _refuse(name, "revoked", f"certificate {serial} of {ident.short} is revoked", ident.short)
    if ident.kind != "agent":
        _refuse(name, "wrong-kind", f"a certificate of kind '{ident.kind}' may not deliver",
                ident.short)
    if seg.header["agent_id"] != ident.short:
        _refuse(name, "agent-id-mismatch", f"certificate of {ident.short} may not report as "
                f"{seg.header['agent_id']!r}", ident.short)
    return Peer(ident, serial, f"file:{name}")


def _refuse(name: object, reason: str, details: str, identity: str = "", **kv: object) -> NoReturn:
    log().warning("import refused", reason=reason, path=str(name), identity=identity, **kv)
    raise PkiError(f"{details} ({reason})")
