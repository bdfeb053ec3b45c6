"""Signed outbox segments: delivery by file, for plants behind a data diode or with no link.

A segment is what the stream would have carried, in a file an operator can
move by hand or through a diode, signed with the agent's own key::

    b"OTSEG1\\n"
    u32 length, header (JSON: format, agent_id, epoch, first_seq, last_seq,
                messages, segment, created_ns, certificate (the agent's, PEM))
    u32 count, then count times: u32 length, one serialized otsentry.v1.Batch
    u32 length, ECDSA P-256 / SHA-256 signature (DER) over every byte before it

All integers are big-endian.  :func:`read_segment` checks the structure and the
signature against the certificate in the header; whether that certificate is
one the collector trusts (CA, validity, revocation, identity) is the
importer's check, the same as for a stream.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from otsentry.common.errors import MessageError
from otsentry.v1 import convert, ingest_pb2

__all__ = ["MAGIC", "Segment", "write_segment", "read_segment", "MAX_SEGMENT_BYTES"]

MAGIC = b"OTSEG1\n"
FORMAT = "otsentry-segment-1"
#: Largest file read (bounds memory on untrusted input).
MAX_SEGMENT_BYTES = 1 << 30
_U32 = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class Segment:
    """A segment whose signature verified against ``certificate``."""

    header: dict[str, Any]
    certificate: x509.Certificate
    batches: list[ingest_pb2.Batch]


def write_segment(path: Path, header: dict[str, Any], batches: list[bytes],
                  certificate_pem: bytes, key: ec.EllipticCurvePrivateKey) -> None:
    """Write and sign a segment atomically (a temp file renamed into place, fsynced)."""
    head = json.dumps({"format": FORMAT, **header,
                       "certificate": certificate_pem.decode("ascii")}, sort_keys=True).encode()
    parts = [MAGIC, _U32.pack(len(head)), head, _U32.pack(len(batches))]
    for b in batches:
        parts += (_U32.pack(len(b)), b)
    body = b"".join(parts)
    sig = key.sign(body, ec.ECDSA(hashes.SHA256()))
    tmp = Path(f"{path}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(body + _U32.pack(len(sig)) + sig)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class _Reader:
    def __init__(self, data: bytes, name: str) -> None:
        self.data, self.pos, self.name = data, 0, name

    def take(self, n: int, what: str) -> bytes:
        if n > len(self.data) - self.pos:
            raise MessageError(f"{self.name}: truncated in the {what} at byte {self.pos}")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u32(self, what: str) -> int:
        return _U32.unpack(self.take(4, what))[0]


def read_segment(path: Path) -> Segment:
    """Read a segment and verify its signature.

    Raises:
        MessageError: not a segment, truncated, malformed, or the signature does not
            verify (the file was changed after the agent signed it).
    """
    name = str(path)
    try:
        if os.path.getsize(path) > MAX_SEGMENT_BYTES:
            raise MessageError(f"{name}: larger than {MAX_SEGMENT_BYTES} bytes")
        data = Path(path).read_bytes()
    except OSError as exc:
        raise MessageError(f"{name}: cannot read: {exc.strerror}") from None
    r = _Reader(data, name)
    if r.take(len(MAGIC), "magic") != MAGIC:
        raise MessageError(f"{name}: not an otsentry segment (bad magic)")
    header = _header(r.take(r.u32("header length"), "header"), name)
    raw = [r.take(r.u32("batch length"), "batch") for _ in range(r.u32("batch count"))]
    signed = r.pos
    sig = r.take(r.u32("signature length"), "signature")
    if r.pos != len(data):
        raise MessageError(f"{name}: {len(data) - r.pos} unexpected bytes after the signature")
    cert = _certificate(header, name)
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise MessageError(f"{name}: the signer's key is not an EC key")
    try:
        key.verify(sig, data[:signed], ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise MessageError(f"{name}: the signature does not verify: the file was changed "
                           "after the agent signed it, or it is damaged") from None
    return Segment(header, cert, [convert.parse(ingest_pb2.Batch, b) for b in raw])


def _header(raw: bytes, name: str) -> dict[str, Any]:
    try:
        header = json.loads(raw)
    except ValueError:
        raise MessageError(f"{name}: the header is not JSON") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise MessageError(f"{name}: unknown segment format {header.get('format')!r}"
                           if isinstance(header, dict) else f"{name}: bad header")
    for key in ("agent_id", "epoch", "first_seq", "last_seq", "segment", "certificate"):
        if key not in header:
            raise MessageError(f"{name}: the header lacks '{key}'")
    return header


def _certificate(header: dict[str, Any], name: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(str(header["certificate"]).encode())
    except ValueError:
        raise MessageError(f"{name}: the header's certificate is not a PEM certificate") from None


def certificate_pem(cert: x509.Certificate) -> bytes:
    """PEM bytes of ``cert``."""
    return cert.public_bytes(serialization.Encoding.PEM)
