"""The collector's certificate authority: CA, server, agent and analyst certificates.

Layout of the PKI directory (the collector reads it at start and the
revocation list on every stream)::

    ca.key           CA private key (0600); keep a backup offline
    ca.crt           CA certificate; every agent needs a copy
    collector.key    the collector's TLS key (0600)
    collector.crt    the collector's TLS certificate (DNS names and IPs)
    issued/<serial>.crt   every certificate this CA signed
    revoked.json     serials revoked, with identity, time and reason

grpcio has no CRL option, so revocation is checked by the collector itself:
:class:`RevocationList` re-reads ``revoked.json`` when it changes.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from otsentry.common.errors import PkiError
from otsentry.common.pki import (
    Identity, generate_key, identity_of, load_certificate, load_private_key, serial_hex,
    write_private_key,
)

__all__ = ["CertificateAuthority", "IssuedCert", "RevocationList", "DEFAULT_DAYS"]

#: Default lifetimes in days.
DEFAULT_DAYS = {"ca": 3650, "collector": 825, "agent": 397, "analyst": 90}


@dataclass(frozen=True, slots=True)
class IssuedCert:
    """One row of ``pki list``."""

    serial: str
    identity: str
    not_after: dt.datetime
    status: str  # "valid", "expired" or "revoked"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


class RevocationList:
    """The revoked serials, re-read from ``revoked.json`` when the file changes.

    Args:
        path: the JSON file; a missing file means nothing is revoked.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._entries: dict[str, dict[str, str]] = {}

    def entries(self) -> dict[str, dict[str, str]]:
        """Serial (hex) -> {identity, revoked_at, reason}, fresh from disk.

        Raises:
            PkiError: the file exists but is not a valid revocation list.
        """
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._entries = None, {}
            return self._entries
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            self._entries = self._read()
            self._stamp = stamp
        return self._entries

    def _read(self) -> dict[str, dict[str, str]]:
        try:
            data = json.loads(self.path.read_text())
            entries = data["revoked"]
            if not isinstance(entries, dict):
                raise TypeError
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise PkiError(f"{self.path}: not a valid revocation list ({exc!r}); "
                           "expected {\"revoked\": {serial: {...}}}") from None
        return entries

    def is_revoked(self, serial: str) -> bool:
        """Whether the certificate with this serial (hex) is revoked."""
        return serial in self.entries()

    def add(self, serial: str, identity: str, reason: str, when: dt.datetime) -> None:
        """Revoke ``serial`` (written atomically)."""
        entries = dict(self.entries())
        entries[serial] = {"identity": identity, "revoked_at": when.isoformat(), "reason": reason}
        _write_public(self.path, json.dumps({"revoked": entries}, indent=2, sort_keys=True).encode())


class CertificateAuthority:
    """A CA kept in one directory (see the module docstring for the layout).

    Args:
        directory: the PKI directory.
    """

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.revocations = RevocationList(self.dir / "revoked.json")

    ca_cert_path = property(lambda self: self.dir / "ca.crt")
    ca_key_path = property(lambda self: self.dir / "ca.key")
    server_cert_path = property(lambda self: self.dir / "collector.crt")
    server_key_path = property(lambda self: self.dir / "collector.key")

    @classmethod
    def init(cls, directory: Path, *, dns_names: list[str], ips: list[str], name: str = "collector",
             now: dt.datetime | None = None, days: int = DEFAULT_DAYS["ca"]) -> CertificateAuthority:
        """Create the CA and the collector's server certificate in a new directory.

        Raises:
            PkiError: a CA exists already there, an IP is invalid, or no DNS name or IP given.
        """
        if not dns_names and not ips:
            raise PkiError("give at least one DNS name or IP address agents use to reach the collector")
        try:
            addrs = [ipaddress.ip_address(ip) for ip in ips]
        except ValueError as exc:
            raise PkiError(str(exc)) from None
        ca = cls(directory)
        if ca.ca_key_path.exists():
            raise PkiError(f"{ca.ca_key_path}: a CA exists already in {ca.dir}")
        now = now or _now()
        (ca.dir / "issued").mkdir(parents=True, exist_ok=True)
        os.chmod(ca.dir, 0o700)
        key = generate_key()
        write_private_key(ca.ca_key_path, key)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "otsentry CA"),
                             x509.NameAttribute(NameOID.ORGANIZATION_NAME, "otsentry")])
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=days))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                             False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                               critical=False)
                .sign(key, hashes.SHA256()))
        _write_public(ca.ca_cert_path, _pem(cert))
        skey = generate_key()
        write_private_key(ca.server_key_path, skey)
        sans = [x509.DNSName(d) for d in dns_names] + [x509.IPAddress(a) for a in addrs]
        sans.append(x509.UniformResourceIdentifier(Identity("collector", name).uri))
        server = ca._issue(skey.public_key(), dns_names[0] if dns_names else ips[0], sans,
                           ExtendedKeyUsageOID.SERVER_AUTH, now,
                           dt.timedelta(days=DEFAULT_DAYS["collector"]))
        _write_public(ca.server_cert_path, _pem(server))
        return ca

    def _ca(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        if not self.ca_key_path.exists():
            raise PkiError(f"no CA in {self.dir}: run 'otsentry-collector pki init' first")
        return load_certificate(self.ca_cert_path), load_private_key(self.ca_key_path)

    def _issue(self, public_key: ec.EllipticCurvePublicKey, cn: str, sans: list[x509.GeneralName],
               usage: x509.ObjectIdentifier, now: dt.datetime, lifetime: dt.timedelta,
               not_before: dt.datetime | None = None) -> x509.Certificate:
        ca_cert, ca_key = self._ca()
        not_after = min(now + lifetime, ca_cert.not_valid_after_utc)
        # Backdated for clocks a little behind ours, by at most a tenth of a short lifetime.
        backdate = min(dt.timedelta(minutes=5), lifetime / 10)
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn[:64])]))
                .issuer_name(ca_cert.subject).public_key(public_key)
                .serial_number(int.from_bytes(secrets.token_bytes(16), "big") >> 1 | 1)
                .not_valid_before(not_before or now - backdate)
                .not_valid_after(not_after)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(True, False, False, False, True, False, False, False,
                                             False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    ca_key.public_key()), critical=False)
                .sign(ca_key, hashes.SHA256()))
        _write_public(self.dir / "issued" / f"{serial_hex(cert)}.crt", _pem(cert))
        return cert

    def sign_csr(self, csr: x509.CertificateSigningRequest, *, days: float = DEFAULT_DAYS["agent"],
                 validity: dt.timedelta | None = None, now: dt.datetime | None = None,
                 not_before: dt.datetime | None = None) -> x509.Certificate:
        """Sign an agent's CSR (its signature was checked by :func:`load_csr`).

        Only agent identities are signed here; analysts get theirs from
        :meth:`issue_analyst`.  The certificate is valid for ``validity`` if
        given, else ``days`` (never beyond the CA's own expiry).
        ``not_before`` exists for tests of expiry.

        Raises:
            PkiError: the CSR carries no agent identity, or the key is not EC P-256.
        """
        ident = self.check_csr(csr)
        key = csr.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        return self._issue(key, ident.short, [x509.UniformResourceIdentifier(ident.uri)],
                           ExtendedKeyUsageOID.CLIENT_AUTH, now or _now(),
                           validity or dt.timedelta(days=days), not_before)

    @staticmethod
    def check_csr(csr: x509.CertificateSigningRequest) -> Identity:
        """The agent identity an agent's CSR asks for, if this CA would sign it.

        Raises:
            PkiError: the CSR carries no agent identity, or the key is not EC P-256.
        """
        ident = identity_of(csr)
        if ident.kind != "agent":
            raise PkiError(f"the request is for {ident}, not an agent; use 'pki issue-analyst'")
        key = csr.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
            raise PkiError("the request's key is not EC P-256; generate it with 'otsentry-agent enroll'")
        return ident

    def issue_analyst(self, name: str, out_dir: Path, *, days: int = DEFAULT_DAYS["analyst"],
                      now: dt.datetime | None = None) -> tuple[Path, Path]:
        """Make a key and certificate for analyst ``name`` in ``out_dir``.

        Returns:
            (key path, certificate path); the key is mode 0600.
        """
        ident = Identity("analyst", name)
        out_dir.mkdir(parents=True, exist_ok=True)
        key_path, cert_path = out_dir / f"{name}.key", out_dir / f"{name}.crt"
        key = generate_key()
        write_private_key(key_path, key)
        cert = self._issue(key.public_key(), ident.short, [x509.UniformResourceIdentifier(ident.uri)],
                           ExtendedKeyUsageOID.CLIENT_AUTH, now or _now(), dt.timedelta(days=days))
        _write_public(cert_path, _pem(cert))
        return key_path, cert_path

    def issued(self) -> list[x509.Certificate]:
        """Every certificate this CA signed, oldest first."""
        certs = [load_certificate(p) for p in sorted((self.dir / "issued").glob("*.crt"))]
        return sorted(certs, key=lambda c: c.not_valid_before_utc)

    def list(self, now: dt.datetime | None = None) -> list[IssuedCert]:
        """The issued certificates with their status at ``now``."""
        now = now or _now()
        revoked = self.revocations.entries()
        rows = []
        for cert in self.issued():
            serial = serial_hex(cert)
            status = ("revoked" if serial in revoked
                      else "expired" if now > cert.not_valid_after_utc else "valid")
            rows.append(IssuedCert(serial, identity_of(cert).short, cert.not_valid_after_utc, status))
        return rows

    def revoke(self, what: str, reason: str = "", now: dt.datetime | None = None) -> list[str]:
        """Revoke a certificate by serial (hex), or every certificate of an identity.

        Args:
            what: a serial as ``pki list`` prints it, or an identity
                (``site/S/agent/A``, ``analyst/NAME`` or the SPIFFE URI).
        Returns:
            The serials newly revoked.
        Raises:
            PkiError: nothing issued matches ``what``.
        """
        now = now or _now()
        rows = self.list(now)
        match = [r for r in rows if r.serial == what.lower().removeprefix("0x")]
        if not match:
            try:
                short = Identity.parse(what).short
            except PkiError:
                short = None
            match = [r for r in rows if r.identity == short]
        if not match:
            raise PkiError(f"no certificate with serial or identity {what!r}; see 'pki list'")
        done = []
        for row in match:
            if row.status != "revoked":
                self.revocations.add(row.serial, row.identity, reason, now)
                done.append(row.serial)
        return done
