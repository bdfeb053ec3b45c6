"""Identities, keys and certificates shared by the agent and the collector.

An otsentry identity *is* a certificate: its one URI SAN in SPIFFE form.

=========  ==========================================
agent      ``spiffe://otsentry/site/<S>/agent/<A>``
analyst    ``spiffe://otsentry/analyst/<NAME>``
collector  ``spiffe://otsentry/collector/<NAME>``
=========  ==========================================

Names are 1..64 characters of letters, digits, ``.``, ``_`` and ``-``, starting
with a letter or digit.  Private keys are EC P-256 and are written with mode
0600 before any byte of them is written.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from otsentry.common.errors import PkiError

__all__ = [
    "TRUST_DOMAIN",
    "Identity",
    "generate_key",
    "write_private_key",
    "load_private_key",
    "load_certificate",
    "load_certificates",
    "load_csr",
    "parse_csr",
    "build_csr",
    "identity_of",
    "fingerprint",
    "serial_hex",
    "check_validity",
    "public_keys_match",
]

TRUST_DOMAIN = "otsentry"
Kind = Literal["agent", "analyst", "collector"]

_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
_FORMS: dict[Kind, re.Pattern[str]] = {
    "agent": re.compile(rf"spiffe://{TRUST_DOMAIN}/site/(?P<site>{_NAME})/agent/(?P<name>{_NAME})"),
    "analyst": re.compile(rf"spiffe://{TRUST_DOMAIN}/analyst/(?P<name>{_NAME})"),
    "collector": re.compile(rf"spiffe://{TRUST_DOMAIN}/collector/(?P<name>{_NAME})"),
}


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a certificate speaks for.

    Attributes:
        kind: ``"agent"``, ``"analyst"`` or ``"collector"``.
        name: the agent, analyst or collector name.
        site: the agent's site ("" for other kinds).
    """

    kind: Kind
    name: str
    site: str = ""

    def __post_init__(self) -> None:
        try:
            ok = Identity.parse(self._uri()) == self
        except PkiError:
            ok = False
        if not ok:
            raise PkiError(f"invalid {self.kind} identity {self._uri()!r}: names are 1..64 "
                           "letters, digits, '.', '_' or '-'")

    @classmethod
    def agent(cls, site: str, agent: str) -> Identity:
        """The identity of agent ``agent`` at site ``site``."""
        return cls("agent", agent, site)

    @classmethod
    def parse(cls, uri: str) -> Identity:
        """Parse a SPIFFE URI or a short form (``site/S/agent/A``, ``analyst/N``).

        Raises:
            PkiError: ``uri`` is no otsentry identity.
        """
        full = uri if uri.startswith("spiffe://") else f"spiffe://{TRUST_DOMAIN}/{uri}"
        for kind, form in _FORMS.items():
            m = form.fullmatch(full)
            if m:
                ident = object.__new__(cls)
                for attr, value in (("kind", kind), ("name", m["name"]),
                                    ("site", m.groupdict().get("site") or "")):
                    object.__setattr__(ident, attr, value)
                return ident
        raise PkiError(f"{uri!r} is not an otsentry identity (expected e.g. "
                       f"spiffe://{TRUST_DOMAIN}/site/S/agent/A or .../analyst/NAME)")

    def _uri(self) -> str:
        path = f"site/{self.site}/agent/{self.name}" if self.kind == "agent" else f"{self.kind}/{self.name}"
        return f"spiffe://{TRUST_DOMAIN}/{path}"

    @property
    def uri(self) -> str:
        """The SPIFFE URI carried as URI SAN."""
        return self._uri()

    @property
    def short(self) -> str:
        """The URI without scheme and trust domain, e.g. ``site/S/agent/A``; the agent id."""
        return self._uri().removeprefix(f"spiffe://{TRUST_DOMAIN}/")

    def __str__(self) -> str:
        return self.uri


def generate_key() -> ec.EllipticCurvePrivateKey:
    """A new EC P-256 private key."""
    return ec.generate_private_key(ec.SECP256R1())


def write_private_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """Write ``key`` as unencrypted PKCS#8 PEM, mode 0600 from creation on.

    Raises:
        PkiError: ``path`` exists already (keys are never overwritten) or cannot be written.
    """
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise PkiError(f"{path}: a key exists already; it is never overwritten") from None
    except OSError as exc:
        raise PkiError(f"{path}: cannot write key: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise PkiError(f"{path}: cannot read {what}: {exc.strerror}") from None


def load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """Read a PEM private key.

    Raises:
        PkiError: missing, unreadable, readable by others, or not an EC key.
    """
    data = _read(path, "private key")
    if os.stat(path).st_mode & 0o077:
        raise PkiError(f"{path}: private key is readable by others; run: chmod 600 {path}")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise PkiError(f"{path}: not a PEM private key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{path}: expected an EC private key")
    return key


def load_certificates(path: Path) -> list[x509.Certificate]:
    """Read every PEM certificate of ``path`` (a chain or a single certificate)."""
    data = _read(path, "certificate")
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise PkiError(f"{path}: not a PEM certificate ({exc})") from None
    return certs


def load_certificate(path: Path) -> x509.Certificate:
    """Read the first PEM certificate of ``path``.

    Raises:
        PkiError: missing, unreadable or not a PEM certificate.
    """
    return load_certificates(path)[0]


def load_csr(path: Path) -> x509.CertificateSigningRequest:
    """Read a PEM CSR and check its self-signature.

    Raises:
        PkiError: missing, not a CSR, or its signature is wrong (tampered with).
    """
    return parse_csr(_read(path, "certificate request"), str(path))


def parse_csr(data: bytes, where: str = "request") -> x509.CertificateSigningRequest:
    """Parse PEM CSR bytes (e.g. from the wire) and check their self-signature.

    Args:
        where: names the source in error messages (a file name, "request").
    Raises:
        PkiError: not a PEM CSR, or its signature is wrong.
    """
    try:
        csr = x509.load_pem_x509_csr(data)
    except ValueError as exc:
        raise PkiError(f"{where}: not a PEM certificate request ({exc})") from None
    try:
        ok = csr.is_signature_valid
    except InvalidSignature:
        ok = False
    if not ok:
        raise PkiError(f"{where}: the request's signature is invalid (damaged or altered)")
    return csr


def build_csr(key: ec.EllipticCurvePrivateKey, ident: Identity) -> x509.CertificateSigningRequest:
    """A CSR for ``ident``: CN is the short form, the one URI SAN is the SPIFFE id."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ident.short[:64])])
    san = x509.SubjectAlternativeName([x509.UniformResourceIdentifier(ident.uri)])
    usage = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
    return (x509.CertificateSigningRequestBuilder().subject_name(name)
            .add_extension(san, critical=False).add_extension(usage, critical=False)
            .sign(key, hashes.SHA256()))


def identity_of(obj: x509.Certificate | x509.CertificateSigningRequest) -> Identity:
    """The identity in the one otsentry URI SAN of a certificate or CSR.

    Raises:
        PkiError: no URI SAN, several, or not an otsentry identity.
    """
    try:
        san = obj.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise PkiError("no subject alternative name: not an otsentry certificate") from None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) != 1:
        raise PkiError(f"expected exactly one URI SAN with the identity, found {len(uris)}")
    return Identity.parse(uris[0])


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint, colon-separated upper-case hex (as openssl prints it)."""
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def serial_hex(cert: x509.Certificate) -> str:
    """The serial number as lower-case hex, the key of the revocation list."""
    return format(cert.serial_number, "x")


def check_validity(cert: x509.Certificate, now: dt.datetime) -> None:
    """Refuse a certificate outside its validity period at ``now`` (aware UTC).

    Raises:
        PkiError: expired, or not valid yet; the message gives the dates.
    """
    if now > cert.not_valid_after_utc:
        raise PkiError(f"certificate expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
    if now < cert.not_valid_before_utc:
        raise PkiError(f"certificate not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")


def public_keys_match(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> bool:
    """Whether ``cert`` is for ``key``."""
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return cert.public_key().public_bytes(*fmt) == key.public_key().public_bytes(*fmt)
