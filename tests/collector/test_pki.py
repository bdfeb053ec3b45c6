"""Tests of the collector's certificate authority (real certificates)."""

from __future__ import annotations

import datetime as dt
import json
import stat

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from otsentry.collector.pki import CertificateAuthority
from otsentry.common.errors import PkiError
from otsentry.common.pki import (
    Identity, build_csr, generate_key, identity_of, load_certificate, serial_hex,
)
from tests.collector.conftest import Pki


class TestInit:
    def test_files(self, pki: Pki) -> None:
        """init writes the CA and server keys with mode 0600 and a server cert with the names."""
        ca = pki.ca
        for key in (ca.ca_key_path, ca.server_key_path):
            assert stat.S_IMODE(key.stat().st_mode) == 0o600
        cert = load_certificate(ca.server_cert_path)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == ["localhost"]
        assert [str(i) for i in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert ExtendedKeyUsageOID.SERVER_AUTH in eku
        assert identity_of(cert) == Identity("collector", "collector")

    def test_refuses_second_init(self, pki: Pki) -> None:
        """A second init in the same directory is refused: the CA is never overwritten."""
        with pytest.raises(PkiError, match="exists already"):
            CertificateAuthority.init(pki.ca.dir, dns_names=["x"], ips=[])

    def test_bad_ip(self, tmp_path) -> None:
        """An invalid IP address is refused by name."""
        with pytest.raises(PkiError, match="not-an-ip"):
            CertificateAuthority.init(tmp_path, dns_names=[], ips=["not-an-ip"])


class TestSign:
    def test_agent(self, pki: Pki) -> None:
        """An agent CSR is signed with its SPIFFE identity and client-auth usage."""
        cert = pki.ca.sign_csr(build_csr(generate_key(), Identity.agent("s1", "a9")))
        assert identity_of(cert).uri == "spiffe://otsentry/site/s1/agent/a9"
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]

    def test_refuses_analyst_csr(self, pki: Pki) -> None:
        """A CSR asking for an analyst identity is not signed by 'pki sign'."""
        with pytest.raises(PkiError, match="not an agent"):
            pki.ca.sign_csr(build_csr(generate_key(), Identity("analyst", "eve")))

    def test_no_ca(self, tmp_path) -> None:
        """Signing without a CA tells the admin to run pki init."""
        with pytest.raises(PkiError, match="pki init"):
            CertificateAuthority(tmp_path).sign_csr(build_csr(generate_key(), Identity.agent("s", "a")))


class TestRevoke:
    def test_list_and_revoke(self, pki: Pki) -> None:
        """Revoking by identity marks every certificate of it revoked in list and on disk."""
        pki.agent("s1", "a1")
        pki.agent("s1", "a1")
        pki.analyst("ana")
        done = pki.ca.revoke("site/s1/agent/a1", reason="box stolen")
        assert len(done) == 2
        status = {(r.identity, r.status) for r in pki.ca.list()}
        assert status >= {("site/s1/agent/a1", "revoked"), ("analyst/ana", "valid")}
        data = json.loads(pki.ca.revocations.path.read_text())
        assert all(e["reason"] == "box stolen" for e in data["revoked"].values())

    def test_revoke_by_serial(self, pki: Pki) -> None:
        """A serial as printed by list revokes that one certificate."""
        creds = pki.agent()
        serial = serial_hex(load_certificate(creds.cert))
        assert pki.ca.revoke(serial) == [serial]
        assert pki.ca.revocations.is_revoked(serial)
        assert pki.ca.revoke(serial) == []

    def test_unknown(self, pki: Pki) -> None:
        """Revoking something never issued is an error, not a silent no-op."""
        with pytest.raises(PkiError, match="no certificate"):
            pki.ca.revoke("site/x/agent/y")

    def test_expired_listed(self, pki: Pki) -> None:
        """A certificate past its end is listed as expired."""
        past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=30)
        pki.agent(now=past, not_before=past, days=1)
        rows = {r.identity: r.status for r in pki.ca.list()}
        assert rows == {"site/plant1/agent/a1": "expired", "collector/collector": "valid"}

    def test_corrupt_list(self, pki: Pki) -> None:
        """A damaged revocation list is an error that names the file."""
        pki.ca.revocations.path.write_text("{")
        with pytest.raises(PkiError, match="revoked.json"):
            pki.ca.revocations.is_revoked("1")
