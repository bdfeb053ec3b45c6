"""Reports pushed to a real TAXII 2.1 server (medallion): read back, re-push, outages, refusals,
and over HTTPS with a client certificate (mutual TLS)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from otsentry.collector.pki import CertificateAuthority
from otsentry.collector.store import Store, read, write
from otsentry.collector.store import _schema as S
from otsentry.collector.upstream import (
    add_note,
    declare,
    incident_report_status,
    parse_bundle,
    push_once,
)
from otsentry.collector.upstream.testing import TaxiiServer
from otsentry.common.config import load_collector_config
from otsentry.common.upstream_config import Deadlines, Recipient, ReportingConfig
from sqlalchemy import select, update

from tests.collector.conftest import Creds, Pki
from tests.collector.upstream.conftest import (
    ATTACKER,
    make_incident,
    mtls,
    recipient,
    reporting,
    serve_taxii,
    validate,
)

NS = 1_000_000_000
HOUR = 3600 * NS


@pytest.fixture(name="sqlite_store")
def _sqlite_store(tmp_path: Path, sqlite_template: Path) -> Iterator[Store]:
    path = tmp_path / "collector.sqlite"
    shutil.copyfile(sqlite_template, path)
    store = Store(f"sqlite:///{path}")
    try:
        yield store
    finally:
        store.close()


def _declared(store: Store, client: str = "10.0.0.66") -> tuple[int, int]:
    """A new incident declared now: (its id, now)."""
    iid, now = make_incident(store, client=client), store.clock()
    with write(store.engine) as conn:
        declare(conn, iid, "ana", now)
    return iid, now


def _stages(store: Store, iid: int, now: int) -> dict[str, dict]:
    with read(store.engine) as conn:
        return {r["stage"]: r for r in incident_report_status(conn, iid, now)}


def _bundle(taxii: TaxiiServer) -> dict:
    return {"type": "bundle", "id": "bundle--00000000-0000-4000-8000-000000000000",
            "objects": taxii.objects()}


def test_push_and_read_back(store: Store, taxii: TaxiiServer) -> None:
    """A declared incident's early warning reaches the collection and reads back as valid STIX 2.1."""
    iid, now = _declared(store, client=ATTACKER)
    pushed = push_once(store.engine, reporting(recipient(taxii)), now=now)
    assert [o.status for o in pushed.outcomes.values()] == ["acknowledged"]
    stages = _stages(store, iid, now)
    assert stages["early-warning"]["status"] == "acknowledged"
    assert stages["notification"]["status"] == "waiting"
    assert stages["final-report"]["due_ns"] - now == 30 * 24 * HOUR
    back = _bundle(taxii)
    validate(back)
    types = {o["type"] for o in back["objects"]}
    assert {"report", "incident", "sighting", "attack-pattern", "observed-data", "indicator",
            "network-traffic", "identity", "marking-definition"} <= types
    assert len(parse_bundle(back).objects) == len(back["objects"])
    (ind,) = [o for o in back["objects"] if o["type"] == "indicator"]
    assert ind["pattern"] == f"[ipv4-addr:value = '{ATTACKER}']"
    assert any(m["id"].startswith("extension-definition--") for m in taxii.manifest())


def test_repush_is_idempotent(sqlite_store: Store, taxii: TaxiiServer) -> None:
    """Pushing the same report twice leaves one copy of each object version on the server."""
    _, now = _declared(sqlite_store)
    cfg = reporting(recipient(taxii))
    push_once(sqlite_store.engine, cfg, now=now)
    first = sorted((m["id"], m["version"]) for m in taxii.manifest())
    with write(sqlite_store.engine) as conn:  # as if the acknowledgement had been lost
        conn.execute(update(S.upstream_reports).where(S.upstream_reports.c.stage == "early-warning")
                     .values(status="queued", parts_done=0))
    pushed = push_once(sqlite_store.engine, cfg, now=now + NS)
    assert [o.status for o in pushed.outcomes.values()] == ["acknowledged"]
    assert sorted((m["id"], m["version"]) for m in taxii.manifest()) == first


def test_server_down_then_retried(sqlite_store: Store, taxii: TaxiiServer) -> None:
    """With the server down the stage fails with the reason and is retried after the backoff."""
    iid, now = _declared(sqlite_store)
    cfg = reporting(recipient(taxii))
    taxii.stop()
    push_once(sqlite_store.engine, cfg, now=now)
    ew = _stages(sqlite_store, iid, now)["early-warning"]
    assert ew["status"] == "failed" and "cannot reach" in ew["reason"] and ew["next_try"]
    assert push_once(sqlite_store.engine, cfg, now=now + 5 * NS).outcomes == {}  # backoff: 10 s
    taxii.restart()
    pushed = push_once(sqlite_store.engine, cfg, now=now + 11 * NS)
    assert [o.status for o in pushed.outcomes.values()] == ["acknowledged"]
    assert [o for o in taxii.objects() if o["type"] == "report"]


def test_wrong_credentials(sqlite_store: Store, taxii: TaxiiServer) -> None:
    """Wrong credentials fail the stage with a reason that names what to check."""
    iid, now = _declared(sqlite_store)
    bad = Recipient("nicc", taxii.api_root, taxii.collection, "nicc", "not-the-password")
    push_once(sqlite_store.engine, reporting(bad), now=now)
    ew = _stages(sqlite_store, iid, now)["early-warning"]
    assert ew["status"] == "failed"
    assert "refused the credentials (HTTP 401)" in ew["reason"] and "password_file" in ew["reason"]
    assert taxii.manifest() == []


def test_oversized_bundle_is_split(sqlite_store: Store, tmp_path: Path) -> None:
    """A report larger than max_content_length goes in several envelopes, all of them stored."""
    with TaxiiServer.start(tmp_path / "small", max_content_length=3000) as taxii:
        _, now = _declared(sqlite_store, client=ATTACKER)
        pushed = push_once(sqlite_store.engine, reporting(recipient(taxii)), now=now)
        (outcome,) = pushed.outcomes.values()
        assert outcome.status == "acknowledged" and outcome.parts > 3
        with read(sqlite_store.engine) as conn:
            sent = conn.execute(select(S.upstream_reports.c.bundle).where(
                S.upstream_reports.c.stage == "early-warning")).scalar_one()
        assert len(sent) > 3000
        assert {m["id"] for m in taxii.manifest()} == {o["id"] for o in parse_bundle(
            {"type": "bundle", "id": "bundle--00000000-0000-4000-8000-000000000000",
             "objects": json.loads(sent)}).objects}


def test_changed_incident_is_a_new_version(sqlite_store: Store, taxii: TaxiiServer) -> None:
    """A note after the early warning re-sends the report: the same id, a newer modified."""
    iid, now = _declared(sqlite_store)
    cfg = reporting(recipient(taxii))
    push_once(sqlite_store.engine, cfg, now=now)
    with write(sqlite_store.engine) as conn:
        add_note(conn, iid, "ana", "The operator confirmed 10.0.0.66 is not theirs", now + NS)
    push_once(sqlite_store.engine, cfg, now=now + 2 * NS)
    reports = [o for o in taxii.objects() if o["type"] == "report"]
    assert len(reports) == 2 and len({r["id"] for r in reports}) == 1
    assert len({r["modified"] for r in reports}) == 2
    (note,) = [o for o in taxii.objects() if o["type"] == "note"]
    assert "10.0.0.66" not in note["content"] and "authors" not in note
    validate(_bundle(taxii))


def test_stages_warnings_and_overdue(sqlite_store: Store, taxii: TaxiiServer) -> None:
    """Later stages are queued before they are due; one that is not delivered in time is overdue."""
    iid, now = _declared(sqlite_store)
    rc = recipient(taxii)
    rc = Recipient(rc.name, rc.api_root, rc.collection, rc.username, rc.password,
                   deadlines=Deadlines(1 * HOUR / NS, 3 * HOUR / NS, 10 * HOUR / NS, HOUR / NS))
    cfg = reporting(rc, warn_before_s=3600)
    push_once(sqlite_store.engine, cfg, now=now)
    taxii.stop()
    pushed = push_once(sqlite_store.engine, cfg, now=now + 2 * HOUR + NS)  # notification: send
    assert [w["stage"] for w in pushed.warnings] == ["notification"]  # due in < 1 h
    st = _stages(sqlite_store, iid, now + 2 * HOUR + NS)["notification"]
    assert st["status"] == "failed" and st["due_soon"] and not st["overdue"]
    pushed = push_once(sqlite_store.engine, cfg, now=now + 3 * HOUR + NS)
    assert [(w["stage"], w["overdue"]) for w in pushed.warnings] == [("notification", True)]
    assert _stages(sqlite_store, iid, now + 3 * HOUR + NS)["notification"]["overdue"]
    assert not _stages(sqlite_store, iid, now + 3 * HOUR)["early-warning"]["overdue"]


def test_automatic_rule_and_policy(sqlite_store: Store, taxii: TaxiiServer) -> None:
    """An automatic rule starts the clock without a declaration; a policy above the incident's
    severity, or without its kinds, sends nothing."""
    iid = make_incident(sqlite_store)
    now = sqlite_store.clock()
    withheld = reporting(recipient(taxii, kinds=("modbus.fc8-restart",)),
                         automatic=("site-source",))
    assert push_once(sqlite_store.engine, withheld, now=now).outcomes == {}
    assert _stages(sqlite_store, iid, now) == {}
    with read(sqlite_store.engine) as conn:
        assert conn.execute(select(S.incident_declarations.c.by)).scalar_one() == "rule"
    pushed = push_once(sqlite_store.engine, reporting(recipient(taxii)), now=now)
    assert [o.status for o in pushed.outcomes.values()] == ["acknowledged"]


def test_metrics_show_stages_by_status_and_the_overdue(sqlite_store: Store,
                                                       taxii: TaxiiServer) -> None:
    """The collector's metrics say what was reported upstream and what is late."""
    from otsentry.collector.metrics import register_upstream
    from otsentry.common.metrics import Registry

    iid, now = _declared(sqlite_store, client=ATTACKER)
    push_once(sqlite_store.engine, reporting(recipient(taxii)), now=now)
    later = now + 80 * HOUR  # the 72 h notification is due and was never sent
    registry = Registry()
    register_upstream(sqlite_store, registry, clock=lambda: later)
    text = registry.render().decode()
    assert 'otsentry_upstream_stages{recipient="nicc",status="acknowledged"} 1' in text
    assert 'otsentry_upstream_stages{recipient="nicc",status="waiting"} 2' in text
    assert 'otsentry_upstream_overdue{recipient="nicc"} 1' in text


def _mtls_config(tmp_path: Path, taxii: TaxiiServer, client: Creds | None,
                 ca: Path) -> ReportingConfig:
    """An [[upstream]] table as an admin writes it: ``ca``, and ``client_cert`` and
    ``client_key`` if ``client`` is given; no username or password."""
    keys = f'client_cert = "{client.cert}"\nclient_key = "{client.key}"\n' if client else ""
    path = tmp_path / "collector.toml"
    path.write_text(f"""
[reporting]
organisation = "Example Water"
retry_initial = "10s"

[[upstream]]
name = "nicc"
api_root = "{taxii.api_root}"
collection = "{taxii.collection}"
ca = "{ca}"
{keys}timeout = "10s"
""")
    return load_collector_config(path).reporting


def test_client_certificate_push_and_read_back(store: Store, taxii_tls: TaxiiServer, pki: Pki,
                                               tmp_path: Path) -> None:
    """A server that requires a client certificate accepts a recipient configured with ca,
    client_cert and client_key only; the collection reads back as valid STIX 2.1."""
    iid, now = _declared(store, client=ATTACKER)
    cfg = _mtls_config(tmp_path, taxii_tls, pki.analyst("nicc"), pki.ca.ca_cert_path)
    assert taxii_tls.api_root.startswith("https://") and not cfg.recipients[0].password
    pushed = push_once(store.engine, cfg, now=now)
    assert [o.status for o in pushed.outcomes.values()] == ["acknowledged"]
    assert _stages(store, iid, now)["early-warning"]["status"] == "acknowledged"
    back = _bundle(taxii_tls)
    validate(back)
    assert [o for o in back["objects"] if o["type"] == "report"]
    assert len(parse_bundle(back).objects) == len(back["objects"])


@pytest.mark.parametrize("client", ["none", "another-ca"])
def test_client_certificate_refused(sqlite_store: Store, taxii_tls: TaxiiServer, pki: Pki,
                                    tmp_path: Path, client: str) -> None:
    """Without a client certificate, or with one of another CA, the stage fails with a reason
    that names the client certificate, and is retried; once configured right it goes through."""
    iid, now = _declared(sqlite_store)
    creds = None if client == "none" else Pki(tmp_path / "other").analyst("nicc")
    cfg = _mtls_config(tmp_path, taxii_tls, creds, pki.ca.ca_cert_path)
    (outcome,) = push_once(sqlite_store.engine, cfg, now=now).outcomes.values()
    ew = _stages(sqlite_store, iid, now)["early-warning"]
    assert outcome.status == ew["status"] == "failed" and ew["next_try"]
    # The server answers with a TLS alert, or closes before the client reads it: both named.
    if creds is None:
        assert "client certificate" in ew["reason"] and "none is configured" in ew["reason"]
    else:
        assert f"client_cert {creds.cert}" in ew["reason"] and "signed by a CA" in ew["reason"]
    assert taxii_tls.manifest() == []
    cfg = _mtls_config(tmp_path, taxii_tls, pki.analyst("nicc"), pki.ca.ca_cert_path)
    pushed = push_once(sqlite_store.engine, cfg, now=now + 11 * NS)
    assert [o.status for o in pushed.outcomes.values()] == ["acknowledged"]


@pytest.mark.parametrize("server", ["another-ca", "another-name"])
def test_server_certificate_not_trusted(sqlite_store: Store, pki: Pki, tmp_path: Path,
                                        server: str) -> None:
    """A server certificate not signed by the configured ca, or not naming the api_root's
    host, fails the stage with a reason that says so; nothing reaches the server."""
    if server == "another-ca":
        ca = Pki(tmp_path / "other").ca
        expected = f"the server's certificate is not signed by the CA in ca = {pki.ca.ca_cert_path}"
    else:
        ca = CertificateAuthority.init(tmp_path / "named", dns_names=["taxii.example"], ips=[])
        expected = "the server's certificate does not name the host of api_root (IP address mismatch"
    trusted = pki.ca.ca_cert_path if server == "another-ca" else ca.ca_cert_path
    with serve_taxii(tmp_path / "taxii-tls", mtls(pki, ca)) as taxii:
        iid, now = _declared(sqlite_store)
        cfg = _mtls_config(tmp_path, taxii, pki.analyst("nicc"), trusted)
        (outcome,) = push_once(sqlite_store.engine, cfg, now=now).outcomes.values()
        ew = _stages(sqlite_store, iid, now)["early-warning"]
        assert outcome.status == ew["status"] == "failed" and expected in ew["reason"], ew["reason"]
        assert taxii.manifest() == []
