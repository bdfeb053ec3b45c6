"""Fixtures of the upstream tests: a real TAXII 2.1 server, incidents in a real store, the validator."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from otsentry.collector.correlate import Rules, correlate_once
from otsentry.collector.pki import CertificateAuthority
from otsentry.collector.store import Store, read
from otsentry.collector.store import _schema as S
from otsentry.collector.upstream.testing import TaxiiServer, TaxiiTls
from otsentry.common.finding import Severity
from otsentry.common.pki import Identity
from otsentry.common.upstream_config import Recipient, ReportingConfig, SharingPolicy
from sqlalchemy import select
from stix2validator import ValidationOptions, validate_instance

from tests.collector.conftest import Pki
from tests.collector.store.helpers import batch, delta, finding

P1 = Identity.agent("plant1", "a1")
ATTACKER = "45.33.32.156"  # a global address
#: Validator checks that our choices fail by design: uuid5 ids (103, "SHOULD be v4"),
#: ATT&CK references without a hash (302).
ALLOWED_WARNINGS = ("{103}", "{302}")


def validate(bundle: dict[str, Any]) -> None:
    """Assert that ``bundle`` is valid STIX 2.1 for the OASIS validator, warnings included."""
    results = validate_instance(json.loads(json.dumps(bundle)), ValidationOptions(version="2.1"))
    warnings = [w for w in results.warnings if not any(c in w for c in ALLOWED_WARNINGS)]
    assert results.is_valid and not results.errors and not warnings, (results.errors, warnings)


@contextlib.contextmanager
def serve_taxii(root: Path, tls: TaxiiTls | None = None) -> Iterator[TaxiiServer]:
    """The test TAXII server with user nicc, over HTTP, or over HTTPS with ``tls``."""
    with TaxiiServer.start(root, users={"nicc": "secret"}, tls=tls) as server:
        yield server


def mtls(clients: Pki, server: CertificateAuthority | None = None) -> TaxiiTls:
    """HTTPS requiring a client certificate from ``clients``' CA, with the server certificate
    of ``server`` (default: that CA's, for localhost and 127.0.0.1); the server reads back with
    an analyst certificate of ``clients``."""
    server = server or clients.ca
    reader = clients.analyst("taxii-reader")
    return TaxiiTls(server.server_cert_path, server.server_key_path, clients.ca.ca_cert_path,
                    (server.ca_cert_path, reader.cert, reader.key))


@pytest.fixture(name="taxii")
def _taxii(tmp_path: Path) -> Iterator[TaxiiServer]:
    with serve_taxii(tmp_path / "taxii") as server:
        yield server


@pytest.fixture(name="taxii_tls")
def _taxii_tls(tmp_path: Path, pki: Pki) -> Iterator[TaxiiServer]:
    """The test server over HTTPS, requiring a client certificate signed by ``pki``'s CA."""
    with serve_taxii(tmp_path / "taxii-tls", mtls(pki)) as server:
        yield server


def recipient(taxii: TaxiiServer, **policy: Any) -> Recipient:
    """The NICC on the test server, with basic auth and ``policy``."""
    sites = policy.pop("sites", {})
    return Recipient("nicc", taxii.api_root, taxii.collection, "nicc", "secret", timeout_s=10,
                     policy=SharingPolicy(**policy), sites=sites)


def reporting(*recipients: Recipient, **kw: Any) -> ReportingConfig:
    return ReportingConfig(organisation="Example Water", recipients=recipients,
                           retry_initial_s=10.0, retry_max_s=60.0, **kw)


def make_incident(store: Store, client: str = "10.0.0.66", site_agent: Identity = P1,
                  seq: int = 1) -> int:
    """Ingest a scan then a write from ``client`` with the PLC in the inventory, correlate;
    returns the incident's id (rule site-source, severity critical)."""
    plc = delta("10.0.0.9", attrs={"role": "plc", "vendor": "Schneider Electric",
                                   "name": "PUMP-PLC-1"})
    scan = finding(f"s{seq}", kind="scan.hosts", severity=Severity.MEDIUM, techniques=("T0846",),
                   client=client, first=10**18)
    write = finding(f"w{seq}", kind="policy.write-not-allowed", severity=Severity.HIGH,
                    techniques=("T0855", "T0836"), client=client, first=10**18 + 10**9)
    store.ingest.commit_sync(site_agent, "s", batch(site_agent, 1, seq, [plc, scan, write]))
    correlate_once(store.engine, Rules())
    with read(store.engine) as conn:
        return conn.execute(select(S.incidents.c.id).order_by(S.incidents.c.id.desc())
                            ).scalars().first()
