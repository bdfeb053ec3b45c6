"""Certificate renewal before expiry, over the agent's authenticated channel.

Rules of this module:

* **A new key every time.**  The collector signs a CSR for our own identity
  only while our current certificate is valid and not revoked
  (``otsentry.v1.Enroll/Renew``); it refuses a CSR with the old key.
* **The old pair stays until the new one is complete.**  The new key is
  written to ``agent.key.new`` (0600), the new certificate to
  ``agent.crt.new``, both fsynced; then the certificate and the key are moved
  over the old ones with atomic renames.  :func:`recover` finishes (or drops)
  a renewal cut by a crash between the renames, so a key and a certificate
  that do not match are never left behind.
* **When.**  Renewal is due once less than ``fraction`` of the certificate's
  validity period remains; a failed attempt is retried every ``retry_s``
  while the current certificate still works.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import structlog
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from otsentry.common.errors import PkiError
from otsentry.common.logging import get_logger
from otsentry.common.pki import (
    Identity, build_csr, generate_key, identity_of, load_certificate, load_private_key,
    public_keys_match, serial_hex, write_private_key,
)
from otsentry.v1 import enroll_pb2, enroll_pb2_grpc

__all__ = ["Renewer", "recover", "check_issued", "write_public_atomically"]


def log() -> structlog.typing.FilteringBoundLogger:
    """This module's logger, looked up per call so that it follows ``configure()``."""
    return get_logger("agent.renew")


def _new(path: Path) -> Path:
    return path.with_name(path.name + ".new")


def write_public_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a fsynced temporary file and a rename."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def recover(cert_path: Path, key_path: Path) -> bool:
    """Finish a renewal whose new key (and certificate) were written, or drop an incomplete one.

    Returns:
        Whether a new pair was put in place.
    """
    key_new, cert_new = _new(key_path), _new(cert_path)
    if not key_new.exists():
        cert_new.unlink(missing_ok=True)
        return False
    key = load_private_key(key_new)
    if cert_new.exists() and public_keys_match(load_certificate(cert_new), key):
        os.replace(cert_new, cert_path)
    if cert_path.exists() and public_keys_match(load_certificate(cert_path), key):
        os.replace(key_new, key_path)
        _fsync_dir(key_path.parent)
        return True
    key_new.unlink()
    cert_new.unlink(missing_ok=True)
    return False


def check_issued(cert_pem: bytes, key: object, ident: Identity, ca: x509.Certificate) -> x509.Certificate:
    """The certificate the collector sent, if it is for our key and identity and signed by our CA.

    Raises:
        PkiError: it is not.
    """
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise PkiError("the collector sent a certificate that is not signed by our CA") from None
    if not public_keys_match(cert, key):  # type: ignore[arg-type]
        raise PkiError("the collector sent a certificate for another key")
    if identity_of(cert) != ident:
        raise PkiError(f"the collector sent a certificate for {identity_of(cert).short}, "
                       f"not {ident.short}")
    return cert


class Renewer:
    """Renews the agent's certificate over an open channel when it is due.

    Args:
        cert_path, key_path, ca_path: the agent's certificate, key and CA (as in ``[collector]``).
        fraction: renew once less than this part of the validity period remains (0 < f < 1).
        retry_s: wait between failed attempts.
        clock: seconds since the epoch (tests move it).
    """

    def __init__(self, cert_path: Path, key_path: Path, ca_path: Path, *, fraction: float,
                 retry_s: float = 60.0, clock: Callable[[], float] = time.time) -> None:
        self.cert_path, self.key_path, self.ca_path = Path(cert_path), Path(key_path), Path(ca_path)
        self.fraction, self.retry_s, self._clock = fraction, retry_s, clock
        #: Set when a new certificate was installed; the shipper reconnects with it.
        self.switched = False
        if recover(self.cert_path, self.key_path):
            log().info("certificate renewal completed after a restart", path=str(self.cert_path))

    def seconds_until_due(self) -> float:
        """Seconds until renewal is due (<= 0: due now)."""
        cert = load_certificate(self.cert_path)
        start, end = cert.not_valid_before_utc.timestamp(), cert.not_valid_after_utc.timestamp()
        return end - self.fraction * (end - start) - self._clock()

    async def run(self, channel: grpc.aio.Channel, ending: asyncio.Event) -> None:
        """Renew when due; then set ``switched`` and ``ending`` (the session ends) and wait."""
        while not ending.is_set():
            wait = self.seconds_until_due()
            if wait <= 0:
                try:
                    await self.renew(channel)
                except (grpc.RpcError, PkiError) as exc:
                    why = (f"{exc.code().name}: {exc.details()}"  # type: ignore[attr-defined]
                           if isinstance(exc, grpc.RpcError) else str(exc))
                    log().warning("certificate renewal failed", reason=why, retry_in_s=self.retry_s)
                    wait = self.retry_s
                else:
                    self.switched = True
                    ending.set()
                    break
            try:
                await asyncio.wait_for(ending.wait(), min(wait, 3600.0))
            except asyncio.TimeoutError:
                pass
        await asyncio.Event().wait()  # the session's end cancels us

    async def renew(self, channel: grpc.aio.Channel, timeout: float = 30.0) -> x509.Certificate:
        """Make a new key, have the collector sign it, and install the pair.

        Raises:
            grpc.RpcError: the collector refused (its details say why) or cannot be reached.
            PkiError: the answer is not a certificate for our new key and identity.
        """
        old = load_certificate(self.cert_path)
        ident = identity_of(old)
        key_new, cert_new = _new(self.key_path), _new(self.cert_path)
        key_new.unlink(missing_ok=True)
        key = generate_key()
        write_private_key(key_new, key)
        try:
            csr = build_csr(key, ident).public_bytes(serialization.Encoding.PEM)
            resp = await enroll_pb2_grpc.EnrollStub(channel).Renew(
                enroll_pb2.RenewRequest(csr_pem=csr), timeout=timeout)
            cert = check_issued(resp.certificate_pem, key, ident, load_certificate(self.ca_path))
        except BaseException:
            key_new.unlink(missing_ok=True)
            raise
        write_public_atomically(cert_new, resp.certificate_pem)
        recover(self.cert_path, self.key_path)
        log().info("certificate renewed", identity=ident.short, old_serial=serial_hex(old),
                   serial=serial_hex(cert), not_after=cert.not_valid_after_utc.isoformat())
        return cert
