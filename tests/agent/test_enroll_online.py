"""'otsentry-agent enroll --collector' against a real collector's enrolment port."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest
import structlog

from otsentry.agent.cli import main as agent
from otsentry.agent.enroll_online import normalize_fingerprint
from otsentry.collector.cli import main as collector
from otsentry.collector.enroll import TokenStore
from otsentry.common.errors import PkiError
from otsentry.common.pki import Identity, fingerprint, identity_of, load_certificate
from tests.collector.conftest import Pki, _pki  # noqa: F401  (the pki fixture)
from tests.collector.enroll_server import serving


@pytest.fixture(autouse=True)
def _reset_logging():  # main() configures logging onto pytest's per-test stderr
    yield
    structlog.reset_defaults()


def _token(pki: Pki, capsys: pytest.CaptureFixture[str], agent_name: str = "a1") -> str:
    assert collector(["pki", "--pki-dir", str(pki.ca.dir), "token", "--site", "plant1",
                      "--agent", agent_name]) == 0
    return capsys.readouterr().out.split("--token ")[1].split()[0]


def _enroll(state: Path, port: int, *extra: str) -> int:
    return agent(["enroll", "--site", "plant1", "--agent", "a1", "--state-dir", str(state),
                  "--collector", f"localhost:{port}", *extra])


def _fp(pki: Pki) -> str:
    return fingerprint(load_certificate(pki.ca.ca_cert_path)).replace(":", "")


def test_fingerprint_enrolment(pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With only the CA's fingerprint and a token, the agent ends with key, certificate and CA."""
    token = _token(pki, capsys)
    with serving(pki.ca.dir) as srv:
        assert _enroll(tmp_path, srv.enroll_port, "--token", token, "--ca-fingerprint", _fp(pki)) == 0
    tls = tmp_path / "tls"
    assert identity_of(load_certificate(tls / "agent.crt")) == Identity.agent("plant1", "a1")
    assert (tls / "ca.crt").read_bytes() == pki.ca.ca_cert_path.read_bytes()
    assert stat.S_IMODE((tls / "agent.key").stat().st_mode) == 0o600
    assert sorted(p.name for p in tls.iterdir()) == ["agent.crt", "agent.csr", "agent.key", "ca.crt"]


def test_ca_file_enrolment_and_replay(pki: Pki, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """With the CA file carried by hand it works too; the same token a second time is refused."""
    token = _token(pki, capsys)
    with serving(pki.ca.dir) as srv:
        ca = ["--token", token, "--ca", str(pki.ca.ca_cert_path)]
        assert _enroll(tmp_path / "one", srv.enroll_port, *ca) == 0
        capsys.readouterr()
        assert _enroll(tmp_path / "two", srv.enroll_port, *ca) == 1
    assert "refused the enrolment: this enrolment token was used already" in capsys.readouterr().err
    assert not (tmp_path / "two" / "tls" / "agent.crt").exists()


def test_wrong_fingerprint_sends_no_token(pki: Pki, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A fingerprint that does not match the collector's CA stops before the token is sent."""
    token = _token(pki, capsys)
    with serving(pki.ca.dir) as srv:
        assert _enroll(tmp_path, srv.enroll_port, "--token", token, "--ca-fingerprint", "ab" * 32) == 1
    assert "does not present a CA with fingerprint" in capsys.readouterr().err
    now = dt.datetime.now(dt.timezone.utc)
    assert [t.identity for t in TokenStore(pki.ca.dir).pending(now)] == ["site/plant1/agent/a1"]


def test_other_ca_file_refused(pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A CA file of another CA: the collector is not trusted, the token is not sent."""
    token = _token(pki, capsys)
    other = Pki(tmp_path / "other")
    with serving(pki.ca.dir) as srv:
        assert _enroll(tmp_path / "s", srv.enroll_port, "--token", token,
                       "--ca", str(other.ca.ca_cert_path)) == 1
    assert "not signed by our CA" in capsys.readouterr().err


@pytest.mark.parametrize(("extra", "msg"), [
    (["--ca-fingerprint", "ab" * 32], "--collector needs --token"),
    (["--token", "t" * 43], "one of --ca ca.crt or --ca-fingerprint"),
    (["--token", "t" * 43, "--ca-fingerprint", "xyz"], "is not a SHA-256 fingerprint"),
])
def test_bad_command_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str],
                           msg: str) -> None:
    """Missing or malformed options are clear errors, exit code 1."""
    assert _enroll(tmp_path, 1, *extra) == 1
    assert msg in capsys.readouterr().err


def test_unreachable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing listening: a clear error naming the address."""
    assert _enroll(tmp_path, 1, "--token", "t" * 43, "--ca-fingerprint", "ab" * 32) == 1
    assert "cannot reach the collector's enrolment port localhost:1" in capsys.readouterr().err


def test_fingerprint_forms() -> None:
    """openssl's colon form, plain hex and a sha256: prefix are the same fingerprint."""
    plain = "ab" * 32
    assert normalize_fingerprint(":".join(["AB"] * 32)) == plain
    assert normalize_fingerprint(f"sha256:{plain.upper()}") == plain
    with pytest.raises(PkiError):
        normalize_fingerprint("ab" * 31)
