"""Online enrolment and renewal against a real server with real certificates:
who gets a certificate, and every refusal with its status and log line."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from grpc_health.v1 import health_pb2, health_pb2_grpc
from structlog.testing import capture_logs

from otsentry.collector.cli import main as collector_main
from otsentry.collector.enroll import TokenError, TokenStore
from otsentry.common.pki import (
    Identity, build_csr, generate_key, identity_of, load_certificate, load_private_key, serial_hex,
)
from otsentry.v1 import enroll_pb2, enroll_pb2_grpc, ingest_pb2, ingest_pb2_grpc
from tests.collector.conftest import Creds, Pki
from tests.collector.enroll_server import serving

A1 = Identity.agent("plant1", "a1")
NOW = dt.datetime.now(dt.timezone.utc)


def _csr(ident: Identity = A1, key: object = None) -> bytes:
    return build_csr(key or generate_key(), ident).public_bytes(serialization.Encoding.PEM)  # type: ignore[arg-type]


def _token(pki: Pki, ident: Identity = A1, ttl: dt.timedelta = dt.timedelta(hours=1),
           now: dt.datetime = NOW) -> str:
    return TokenStore(pki.ca.dir).create(ident, ttl, cert_days=30, now=now)[0]


def _agent_certs(pki: Pki) -> list[str]:
    return [r.serial for r in pki.ca.list() if r.identity.startswith("site/")]


def _refused(fn, *args) -> tuple[grpc.RpcError, list[dict]]:  # type: ignore[no-untyped-def]
    with capture_logs() as logs:
        with pytest.raises(grpc.RpcError) as err:
            fn(*args)
    return err.value, [e for e in logs if e.get("event") == "call refused"]


class TestTokens:
    def test_stored_hashed_0600(self, pki: Pki) -> None:
        """The token itself is nowhere on disk; its file is readable by the owner only."""
        token = _token(pki)
        [path] = (pki.ca.dir / "tokens").glob("*.json")
        assert token not in path.read_text()
        assert json.loads(path.read_text())["identity"] == "site/plant1/agent/a1"
        assert os.stat(path).st_mode & 0o777 == 0o600

    def test_used_once(self, pki: Pki) -> None:
        """A token is consumed by its first use; a replay is refused as used."""
        token, store = _token(pki), TokenStore(pki.ca.dir)
        assert store.consume(token, A1, NOW).identity == A1.short
        with pytest.raises(TokenError) as err:
            store.consume(token, A1, NOW)
        assert err.value.reason == "token-used"

    def test_race_has_one_winner(self, pki: Pki) -> None:
        """Of many simultaneous uses of one token exactly one succeeds."""
        token, store = _token(pki), TokenStore(pki.ca.dir)
        results: list[str] = []
        barrier = threading.Barrier(8)

        def use() -> None:
            barrier.wait()
            try:
                store.consume(token, A1, NOW)
                results.append("ok")
            except TokenError as exc:
                results.append(exc.reason)
        threads = [threading.Thread(target=use) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == ["ok"] + ["token-used"] * 7

    @pytest.mark.parametrize(("token", "ident", "now", "reason"), [
        ("x" * 43, A1, NOW, "unknown-token"),
        ("", A1, NOW, "unknown-token"),
        (None, Identity.agent("plant1", "a2"), NOW, "identity-mismatch"),
        (None, A1, NOW + dt.timedelta(hours=2), "token-expired"),
    ])
    def test_refusals(self, pki: Pki, token: str | None, ident: Identity, now: dt.datetime,
                      reason: str) -> None:
        """Unknown, empty, another identity's and expired tokens are refused, each with its reason."""
        real = _token(pki)
        with pytest.raises(TokenError) as err:
            TokenStore(pki.ca.dir).consume(real if token is None else token, ident, now)
        assert err.value.reason == reason

    def test_mismatch_keeps_token(self, pki: Pki) -> None:
        """A typo in --agent does not burn the token: the right identity can still use it."""
        token, store = _token(pki), TokenStore(pki.ca.dir)
        with pytest.raises(TokenError):
            store.consume(token, Identity.agent("plant1", "a2"), NOW)
        assert store.consume(token, A1, NOW).identity == A1.short

    def test_pending(self, pki: Pki) -> None:
        """Tokens not used and not expired are listed; used and expired ones are not."""
        store = TokenStore(pki.ca.dir)
        used = _token(pki)
        _token(pki, Identity.agent("plant1", "a2"))
        _token(pki, Identity.agent("plant1", "a3"), ttl=dt.timedelta(seconds=1),
               now=NOW - dt.timedelta(hours=1))
        store.consume(used, A1, NOW)
        assert [t.identity for t in store.pending(NOW)] == ["site/plant1/agent/a2"]


def _enroll(channel: grpc.Channel, csr: bytes, token: str) -> enroll_pb2.EnrollResponse:
    with channel:
        return enroll_pb2_grpc.EnrollStub(channel).Enroll(
            enroll_pb2.EnrollRequest(csr_pem=csr, token=token), timeout=10)


class TestEnrollRpc:
    def test_token_buys_certificate(self, pki: Pki) -> None:
        """Without a client certificate, a CSR and a valid token get a certificate for the
        CSR's key and identity, with the token's validity; one log line names the serial."""
        key = generate_key()
        token = _token(pki)
        with serving(pki.ca.dir) as srv, capture_logs() as logs:
            resp = _enroll(srv.enrol(pki.ca.ca_cert_path), _csr(key=key), token)
        cert = x509.load_pem_x509_certificate(resp.certificate_pem)
        assert identity_of(cert) == A1
        assert cert.public_key().public_numbers() == key.public_key().public_numbers()
        assert resp.ca_pem == pki.ca.ca_cert_path.read_bytes()
        lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
        assert dt.timedelta(days=30) <= lifetime <= dt.timedelta(days=30, minutes=5)
        [issued] = [e for e in logs if e["event"] == "certificate issued"]
        assert (issued["how"], issued["identity"], issued["serial"]) == (
            "token", "site/plant1/agent/a1", serial_hex(cert))
        [used] = (pki.ca.dir / "tokens" / "used").glob("*.json")
        assert json.loads(used.read_text())["serial"] == serial_hex(cert)

    def test_replay_refused(self, pki: Pki) -> None:
        """The same token a second time: UNAUTHENTICATED, 'used already', one log line."""
        token = _token(pki)
        with serving(pki.ca.dir) as srv:
            _enroll(srv.enrol(pki.ca.ca_cert_path), _csr(), token)
            err, logs = _refused(_enroll, srv.enrol(pki.ca.ca_cert_path), _csr(), token)
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "used already" in err.details()
        assert [(e["reason"], e["identity"]) for e in logs] == [("token-used", A1.short)]

    def test_wrong_identity_refused(self, pki: Pki) -> None:
        """A CSR for another agent than the token's: PERMISSION_DENIED, nothing issued."""
        token = _token(pki)
        with serving(pki.ca.dir) as srv:
            err, logs = _refused(_enroll, srv.enrol(pki.ca.ca_cert_path),
                                 _csr(Identity.agent("plant1", "a2")), token)
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "enrols site/plant1/agent/a1" in err.details()
        assert [e["reason"] for e in logs] == ["identity-mismatch"]
        assert _agent_certs(pki) == []

    def test_expired_and_unknown_refused(self, pki: Pki) -> None:
        """An expired token and a made-up one: UNAUTHENTICATED with the reason."""
        old = _token(pki, ttl=dt.timedelta(seconds=1), now=NOW - dt.timedelta(hours=1))
        with serving(pki.ca.dir) as srv:
            expired, _ = _refused(_enroll, srv.enrol(pki.ca.ca_cert_path), _csr(), old)
            unknown, _ = _refused(_enroll, srv.enrol(pki.ca.ca_cert_path), _csr(), "y" * 43)
        assert (expired.code(), unknown.code()) == (grpc.StatusCode.UNAUTHENTICATED,) * 2
        assert "expired" in expired.details() and "unknown" in unknown.details()

    @pytest.mark.parametrize("csr", [b"", b"garbage", b"x" * 20_000, "analyst"])
    def test_bad_csr_refused(self, pki: Pki, csr: bytes | str) -> None:
        """Garbage, oversized or non-agent requests: INVALID_ARGUMENT, the token is kept."""
        token = _token(pki)
        body = _csr(Identity("analyst", "eve")) if csr == "analyst" else csr
        with serving(pki.ca.dir) as srv:
            err, logs = _refused(_enroll, srv.enrol(pki.ca.ca_cert_path), body, token)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [e["reason"] for e in logs] == ["bad-csr"]
        assert len(TokenStore(pki.ca.dir).pending(NOW)) == 1


class TestEnrolmentPortRefusesTheRest:
    """The enrolment port asks for no client certificate, so everything but Enroll is refused."""

    def test_ingest_refused(self, pki: Pki) -> None:
        """Ingest without a client certificate: UNAUTHENTICATED, one log line, nothing acked."""
        def ingest() -> list:
            with srv.enrol(pki.ca.ca_cert_path) as ch:
                batch = ingest_pb2.Batch(agent_id=A1.short, epoch=7, first_seq=1,
                                         messages=[ingest_pb2.Envelope(queued_ns=1)])
                return list(ingest_pb2_grpc.IngestStub(ch).Stream(iter([batch]), timeout=10))
        with serving(pki.ca.dir) as srv:
            err, logs = _refused(ingest)
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        assert [(e["reason"], e["method"]) for e in logs] == [
            ("no-client-certificate", "/otsentry.v1.Ingest/Stream")]

    def test_renew_and_health_refused(self, pki: Pki) -> None:
        """Renew and the health service without a client certificate: UNAUTHENTICATED."""
        def renew() -> None:
            with srv.enrol(pki.ca.ca_cert_path) as ch:
                enroll_pb2_grpc.EnrollStub(ch).Renew(enroll_pb2.RenewRequest(csr_pem=_csr()),
                                                     timeout=10)

        def health() -> None:
            with srv.enrol(pki.ca.ca_cert_path) as ch:
                health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
        with serving(pki.ca.dir) as srv:
            errs = [_refused(renew)[0], _refused(health)[0]]
        assert [e.code() for e in errs] == [grpc.StatusCode.UNAUTHENTICATED] * 2

    def test_mtls_port_still_requires_certificate(self, pki: Pki) -> None:
        """The main port keeps refusing clients without a certificate in the handshake."""
        def ingest() -> None:
            ch = grpc.secure_channel(f"localhost:{srv.port}", grpc.ssl_channel_credentials(
                root_certificates=pki.ca.ca_cert_path.read_bytes()))
            with ch:
                health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
        with serving(pki.ca.dir) as srv:
            err, _ = _refused(ingest)
        assert err.code() == grpc.StatusCode.UNAVAILABLE


def _renew(channel: grpc.Channel, csr: bytes) -> enroll_pb2.RenewResponse:
    with channel:
        return enroll_pb2_grpc.EnrollStub(channel).Renew(enroll_pb2.RenewRequest(csr_pem=csr),
                                                         timeout=10)


class TestRenewRpc:
    def test_renewal_same_lifetime(self, pki: Pki) -> None:
        """A valid agent certificate gets a new one for its new key, with the same lifetime."""
        creds = pki.agent(validity=dt.timedelta(hours=2))
        key = generate_key()
        with serving(pki.ca.dir) as srv, capture_logs() as logs:
            resp = _renew(srv.mtls(creds), _csr(key=key))
        cert, old = x509.load_pem_x509_certificate(resp.certificate_pem), load_certificate(creds.cert)
        assert identity_of(cert) == A1 and serial_hex(cert) != serial_hex(old)
        assert cert.public_key().public_numbers() == key.public_key().public_numbers()
        assert abs((cert.not_valid_after_utc - cert.not_valid_before_utc)
                   - (old.not_valid_after_utc - old.not_valid_before_utc)) < dt.timedelta(minutes=15)
        assert [e["how"] for e in logs if e["event"] == "certificate issued"] == ["renewal"]

    def test_revoked_refused(self, pki: Pki) -> None:
        """A revoked certificate cannot renew itself: UNAUTHENTICATED, nothing issued."""
        creds = pki.agent()
        pki.ca.revoke(serial_hex(load_certificate(creds.cert)), reason="stolen")
        with serving(pki.ca.dir) as srv:
            err, logs = _refused(_renew, srv.mtls(creds), _csr())
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        assert [e["reason"] for e in logs] == ["revoked"]
        assert len(_agent_certs(pki)) == 1

    def test_other_identity_refused(self, pki: Pki) -> None:
        """An agent cannot renew (obtain) another agent's certificate: PERMISSION_DENIED."""
        with serving(pki.ca.dir) as srv:
            err, logs = _refused(_renew, srv.mtls(pki.agent()), _csr(Identity.agent("plant1", "a2")))
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
        assert [(e["reason"], e["claimed"]) for e in logs] == [
            ("identity-mismatch", "site/plant1/agent/a2")]

    def test_analyst_refused(self, pki: Pki) -> None:
        """An analyst's certificate may not call Renew: PERMISSION_DENIED."""
        with serving(pki.ca.dir) as srv:
            err, _ = _refused(_renew, srv.mtls(pki.analyst()), _csr())
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED

    def test_same_key_refused(self, pki: Pki) -> None:
        """A renewal must bring a new key: INVALID_ARGUMENT."""
        creds = pki.agent()
        with serving(pki.ca.dir) as srv:
            err, logs = _refused(_renew, srv.mtls(creds), _csr(key=load_private_key(creds.key)))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [e["reason"] for e in logs] == ["key-reused"]


class TestTokenCommand:
    def test_prints_token_once(self, pki: Pki, capsys: pytest.CaptureFixture[str]) -> None:
        """'pki token' prints a token that works, the CA fingerprint and the agent's command."""
        assert collector_main(["pki", "--pki-dir", str(pki.ca.dir), "token", "--site", "plant1",
                               "--agent", "a1", "--ttl", "2h", "--days", "10"]) == 0
        out = capsys.readouterr().out
        token = out.split("--token ")[1].split()[0]
        assert "otsentry-agent enroll --site plant1 --agent a1" in out
        rec = TokenStore(pki.ca.dir).consume(token, A1, NOW)
        assert rec.cert_days == 10
        assert collector_main(["pki", "--pki-dir", str(pki.ca.dir), "tokens"]) == 0
        assert "plant1" not in capsys.readouterr().out

    @pytest.mark.parametrize(("args", "msg"), [
        (["--ttl", "soon"], "--ttl 'soon': expected a duration"),
        (["--ttl", "0s"], "more than zero"),
    ])
    def test_bad_input(self, pki: Pki, capsys: pytest.CaptureFixture[str], args: list[str],
                       msg: str) -> None:
        """A bad --ttl is a clear error, exit code 1."""
        assert collector_main(["pki", "--pki-dir", str(pki.ca.dir), "token", "--site", "plant1",
                               "--agent", "a1", *args]) == 1
        assert msg in capsys.readouterr().err


def test_creds_fixture_paths(pki: Pki) -> None:
    """The short-lived certificates used by the renewal tests are what they say."""
    creds: Creds = pki.agent(validity=dt.timedelta(seconds=30))
    cert = load_certificate(creds.cert)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc <= dt.timedelta(seconds=34)
