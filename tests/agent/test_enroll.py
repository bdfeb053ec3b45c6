"""Tests of 'otsentry-agent enroll' together with the admin's 'otsentry-collector pki' commands."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import structlog

from otsentry.agent.cli import main as agent
from otsentry.collector.cli import main as collector
from otsentry.common.pki import Identity, identity_of, load_certificate, load_csr


@pytest.fixture(autouse=True)
def _reset_logging():  # main() configures logging onto pytest's per-test stderr
    yield
    structlog.reset_defaults()


def test_enrolment_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Key and CSR on the agent, signing by the admin, install, list and revoke, all by command."""
    state, pki = tmp_path / "state", tmp_path / "pki"
    assert collector(["pki", "--pki-dir", str(pki), "init", "--dns", "localhost", "--ip", "127.0.0.1"]) == 0
    assert agent(["enroll", "--site", "plant1", "--agent", "a1", "--state-dir", str(state)]) == 0
    key, csr = state / "tls" / "agent.key", state / "tls" / "agent.csr"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert identity_of(load_csr(csr)) == Identity.agent("plant1", "a1")
    crt = tmp_path / "agent.crt"
    assert collector(["pki", "--pki-dir", str(pki), "sign", str(csr), "--out", str(crt)]) == 0
    assert agent(["enroll", "--site", "plant1", "--agent", "a1", "--state-dir", str(state),
                  "--install", str(crt), "--ca", str(pki / "ca.crt")]) == 0
    assert load_certificate(state / "tls" / "agent.crt") == load_certificate(crt)
    capsys.readouterr()
    assert collector(["pki", "--pki-dir", str(pki), "list", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["identity"] for r in rows} == {"site/plant1/agent/a1", "collector/collector"}
    assert collector(["pki", "--pki-dir", str(pki), "revoke", "site/plant1/agent/a1"]) == 0
    collector(["pki", "--pki-dir", str(pki), "list", "--json"])
    assert {json.loads(x)["status"] for x in capsys.readouterr().out.splitlines() if "agent" in x} == {"revoked"}


def test_reenrol_keeps_key(tmp_path: Path) -> None:
    """Running enroll again keeps the existing key: it is never overwritten."""
    args = ["enroll", "--site", "s", "--agent", "a", "--state-dir", str(tmp_path)]
    agent(args)
    before = (tmp_path / "tls" / "agent.key").read_bytes()
    agent(args)
    assert (tmp_path / "tls" / "agent.key").read_bytes() == before


def test_install_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Installing a certificate for another agent, or without the CA, fails with a clear message."""
    pki = tmp_path / "pki"
    collector(["pki", "--pki-dir", str(pki), "init", "--dns", "localhost"])
    for name in ("a", "b"):
        agent(["enroll", "--site", "s", "--agent", name, "--state-dir", str(tmp_path / name)])
    crt = tmp_path / "b.crt"
    collector(["pki", "--pki-dir", str(pki), "sign", str(tmp_path / "b" / "tls" / "agent.csr"),
               "--out", str(crt)])
    capsys.readouterr()
    rc = agent(["enroll", "--site", "s", "--agent", "a", "--state-dir", str(tmp_path / "a"),
                "--install", str(crt), "--ca", str(pki / "ca.crt")])
    assert rc == 1 and "not for this agent's key" in capsys.readouterr().err
    rc = agent(["enroll", "--site", "s", "--agent", "b", "--state-dir", str(tmp_path / "b"),
                "--install", str(crt)])
    assert rc == 1 and "--ca" in capsys.readouterr().err


def test_bad_site_name(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A site name that cannot be part of an identity is refused before any file is written."""
    assert agent(["enroll", "--site", "a/b", "--agent", "x", "--state-dir", str(tmp_path / "s")]) == 1
    assert "invalid agent identity" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_collector_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Admin mistakes give an error message and exit code 1, not a traceback."""
    assert collector(["pki", "--pki-dir", str(tmp_path), "sign", str(tmp_path / "nope.csr")]) == 1
    assert "nope.csr" in capsys.readouterr().err
    assert collector(["pki", "--pki-dir", str(tmp_path), "revoke", "site/x/agent/y"]) == 1
