"""A throwaway PKI with real certificates for the collector's tests."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest

from otsentry.collector.pki import CertificateAuthority
from otsentry.common.pki import Identity, build_csr, generate_key, write_private_key

NOW = dt.datetime.now(dt.timezone.utc)


@dataclass
class Creds:
    """Paths of one client's key, certificate and the CA it trusts."""

    key: Path
    cert: Path
    ca: Path


class Pki:
    """A CA in a temp dir that hands out client credentials on demand."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ca = CertificateAuthority.init(root / "ca", dns_names=["localhost"], ips=["127.0.0.1"])

    def agent(self, site: str = "plant1", agent: str = "a1", *, ca: CertificateAuthority | None = None,
              **sign: object) -> Creds:
        """Key and certificate of an agent, signed from a CSR as an admin would."""
        ca = ca or self.ca
        d = self.root / "clients" / f"{site}-{agent}-{len(list((self.root).rglob('*.key')))}"
        d.mkdir(parents=True)
        key = generate_key()
        write_private_key(d / "agent.key", key)
        cert = ca.sign_csr(build_csr(key, Identity.agent(site, agent)), **sign)  # type: ignore[arg-type]
        (d / "agent.crt").write_bytes(cert.public_bytes(__import__(
            "cryptography.hazmat.primitives.serialization", fromlist=["Encoding"]).Encoding.PEM))
        return Creds(d / "agent.key", d / "agent.crt", self.ca.ca_cert_path)

    def analyst(self, name: str = "ana") -> Creds:
        """Key and certificate of an analyst."""
        key, cert = self.ca.issue_analyst(name, self.root / "analysts")
        return Creds(key, cert, self.ca.ca_cert_path)


@pytest.fixture(name="pki")
def _pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


# The store fixtures (db_url: both databases, store) for every collector test.
from tests.collector.databases import _db_url, _pg_cluster, _sqlite_template, _store  # noqa: E402,F401
