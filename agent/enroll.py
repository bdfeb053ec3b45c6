"""``otsentry-agent enroll``: make the agent's key and certificate request, install the certificate.

The private key is made here and never leaves the agent box.  Files, in
``STATE_DIR/tls/``: ``agent.key`` (0600), ``agent.csr`` (carry it to the
admin), then ``agent.crt`` and ``ca.crt`` once installed.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from otsentry.common.errors import PkiError
import structlog

from otsentry.common.logging import get_logger
from otsentry.common.pki import (
    Identity, build_csr, generate_key, identity_of, load_certificate, load_private_key,
    public_keys_match, write_private_key,
)

__all__ = ["SUMMARY", "add_arguments", "run", "enroll", "install", "DEFAULT_STATE_DIR"]

SUMMARY = "create this agent's key and certificate request, or install its certificate"
DEFAULT_STATE_DIR = os.environ.get("OTSENTRY_STATE_DIR", "/var/lib/otsentry/agent")

EPILOG = """\
online, when this box can reach the collector (one step):
  the collector's admin runs 'otsentry-collector pki token --site S --agent A'
  and gives you the token and the CA fingerprint it prints; then run
    otsentry-agent enroll --site S --agent A --collector HOST:50052 \\
        --token TOKEN --ca-fingerprint SHA256
  (or --ca ca.crt instead of --ca-fingerprint if you carried the CA file).
  The key is made here and never leaves this box; the token works once.

offline, for sites with no link to the collector (air gap):
  1. otsentry-agent enroll --site S --agent A
       makes the key (it never leaves this box) and tls/agent.csr
  2. carry agent.csr to the collector's admin, who runs
       otsentry-collector pki sign agent.csr --out agent.crt
  3. carry agent.crt and ca.crt back here and run
       otsentry-agent enroll --site S --agent A --install agent.crt --ca ca.crt

Once enrolled, 'otsentry-agent run' renews the certificate by itself before it
expires ([collector] renew_fraction in the config).
"""

def log() -> structlog.typing.FilteringBoundLogger:
    """This module's logger, looked up per call so that it follows ``configure()``."""
    return get_logger("agent.enroll")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``enroll`` options."""
    parser.epilog = EPILOG
    parser.add_argument("--site", required=True, help="the site (plant) name, e.g. plant-north")
    parser.add_argument("--agent", required=True, help="this agent's name within the site")
    parser.add_argument("--state-dir", type=Path, default=Path(DEFAULT_STATE_DIR),
                        help=f"the agent's state directory (default: {DEFAULT_STATE_DIR}, "
                             "or $OTSENTRY_STATE_DIR)")
    parser.add_argument("--install", type=Path, metavar="CERT",
                        help="install the certificate signed by the admin (step 3)")
    parser.add_argument("--ca", type=Path, metavar="CA_CERT",
                        help="the collector's CA certificate (ca.crt), with --install or --collector")
    parser.add_argument("--collector", metavar="HOST:PORT",
                        help="enrol online at the collector's enrolment port, e.g. "
                             "collector.plant.example:50052 (its [server] enroll_port)")
    parser.add_argument("--token", metavar="TOKEN",
                        help="with --collector: the one-time token from 'otsentry-collector pki token'")
    parser.add_argument("--ca-fingerprint", metavar="SHA256",
                        help="with --collector: the CA's SHA-256 fingerprint printed with the "
                             "token (instead of --ca)")


def run(args: argparse.Namespace) -> int:
    """Run step 1 or, with ``--install``, step 3."""
    ident = Identity.agent(args.site, args.agent)
    tls = args.state_dir / "tls"
    if args.collector:
        return _online(args, ident, tls)
    if args.install:
        if not args.ca:
            raise PkiError("--install needs --ca ca.crt (the collector's CA certificate)")
        install(tls, ident, args.install, args.ca)
        print(f"installed the certificate of {ident.uri} in {tls}")
        return 0
    csr = enroll(tls, ident)
    print(f"key: {tls / 'agent.key'} (stays on this box)\nrequest: {csr}")
    print(f"carry {csr.name} to the collector's admin: otsentry-collector pki sign {csr.name}")
    return 0


def _online(args: argparse.Namespace, ident: Identity, tls: Path) -> int:
    from otsentry.agent.enroll_online import fetch_ca, request_certificate

    if not args.token:
        raise PkiError("--collector needs --token (from 'otsentry-collector pki token')")
    if bool(args.ca) == bool(args.ca_fingerprint):
        raise PkiError("--collector needs one of --ca ca.crt or --ca-fingerprint SHA256, "
                       "to be sure the token goes to the real collector")
    ca_pem = (load_certificate(args.ca).public_bytes(serialization.Encoding.PEM) if args.ca
              else fetch_ca(args.collector, args.ca_fingerprint))
    csr = enroll(tls, ident)
    cert_pem, _ = request_certificate(args.collector, ca_pem, csr.read_bytes(), args.token)
    got_cert, got_ca = tls / "agent.crt.received", tls / "ca.crt.received"
    got_cert.write_bytes(cert_pem)
    got_ca.write_bytes(ca_pem)
    try:
        install(tls, ident, got_cert, got_ca)
    finally:
        got_cert.unlink(missing_ok=True)
        got_ca.unlink(missing_ok=True)
    log().info("enrolled online", identity=ident.short, collector=args.collector)
    print(f"enrolled {ident.uri} at {args.collector}: certificate and CA installed in {tls}")
    return 0


def enroll(tls: Path, ident: Identity) -> Path:
    """Make the key (if there is none yet) and a CSR for ``ident``; return the CSR path."""
    tls.mkdir(parents=True, exist_ok=True)
    os.chmod(tls, 0o700)
    key_path = tls / "agent.key"
    if key_path.exists():
        key = load_private_key(key_path)
        log().info("reusing existing key", path=str(key_path))
    else:
        key = generate_key()
        write_private_key(key_path, key)
    csr_path = tls / "agent.csr"
    csr_path.write_bytes(build_csr(key, ident).public_bytes(serialization.Encoding.PEM))
    log().info("certificate request written", identity=ident.short, path=str(csr_path))
    return csr_path


def install(tls: Path, ident: Identity, cert_path: Path, ca_path: Path) -> None:
    """Check the signed certificate against our key, identity and CA, then copy both in.

    Raises:
        PkiError: the certificate is for another key or identity, or not signed by the CA.
    """
    cert, ca = load_certificate(cert_path), load_certificate(ca_path)
    if not public_keys_match(cert, load_private_key(tls / "agent.key")):
        raise PkiError(f"{cert_path} is not for this agent's key; was it signed from another CSR?")
    if identity_of(cert) != ident:
        raise PkiError(f"{cert_path} is for {identity_of(cert).short}, not {ident.short}")
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise PkiError(f"{cert_path} is not signed by the CA in {ca_path}") from None
    shutil.copyfile(cert_path, tls / "agent.crt")
    shutil.copyfile(ca_path, tls / "ca.crt")
