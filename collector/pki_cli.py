"""``otsentry-collector pki``: the admin's commands for certificates."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from otsentry.collector.pki import DEFAULT_DAYS, CertificateAuthority
import structlog

from otsentry.common.logging import get_logger
from otsentry.collector.enroll import TokenStore
from otsentry.common.config import parse_duration_s
from otsentry.common.errors import PkiError
from otsentry.common.pki import (
    Identity, fingerprint, identity_of, load_certificate, load_csr, serial_hex,
)

__all__ = ["SUMMARY", "add_arguments", "run", "DEFAULT_PKI_DIR"]

SUMMARY = "manage certificates: CA, collector, agents and analysts"
DEFAULT_PKI_DIR = os.environ.get("OTSENTRY_PKI_DIR", "/var/lib/otsentry/collector/pki")

DESCRIPTION = """\
Manage the certificates that agents, analysts and the collector use to prove
who they are.  Typical order:

  1. once:  otsentry-collector pki init --dns collector.plant.example --ip 10.1.2.3
  2. each agent, online (the agent can reach this collector's [server] enroll_port):
            otsentry-collector pki token --site S --agent A
     and give the token and CA fingerprint it prints to the agent's operator;
     or offline (air-gapped site): on the agent box run
     'otsentry-agent enroll --site S --agent A', carry its agent.csr here, then:
            otsentry-collector pki sign agent.csr --out agent.crt
     and carry agent.crt and ca.crt back to the agent box.
     Agents renew their certificates by themselves before they expire.
  3. each analyst:  otsentry-collector pki issue-analyst NAME
  4. a box is lost or stolen:  otsentry-collector pki revoke site/S/agent/A
  5. what was issued:  otsentry-collector pki list

Keep ca.key secret and backed up offline: whoever has it can make agents.
"""

def log() -> structlog.typing.FilteringBoundLogger:
    """This module's logger, looked up per call so that it follows ``configure()``."""
    return get_logger("collector.pki")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``pki`` sub-commands to ``parser``."""
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--pki-dir", type=Path, default=Path(DEFAULT_PKI_DIR),
                        help=f"where the CA lives (default: {DEFAULT_PKI_DIR}, "
                             "or $OTSENTRY_PKI_DIR)")
    sub = parser.add_subparsers(dest="pki_command", metavar="ACTION", required=True)
    p = sub.add_parser("init", help="create the CA and the collector's server certificate")
    p.add_argument("--dns", action="append", default=[], metavar="NAME",
                   help="a DNS name agents use to reach the collector (repeat for several)")
    p.add_argument("--ip", action="append", default=[], metavar="ADDR",
                   help="an IP address agents use to reach the collector (repeat for several)")
    p.add_argument("--name", default="collector", help="this collector's name (default: collector)")
    p = sub.add_parser("sign", help="sign an agent's certificate request (CSR)")
    p.add_argument("csr", type=Path, metavar="CSR", help="the agent.csr made by 'otsentry-agent enroll'")
    p.add_argument("--out", type=Path, help="where to write the certificate (default: CSR with .crt)")
    p.add_argument("--days", type=int, default=DEFAULT_DAYS["agent"],
                   help=f"validity in days (default: {DEFAULT_DAYS['agent']})")
    p = sub.add_parser("token", help="make a one-time token to enrol one agent online",
                       description="Make a one-time token that enrols exactly one agent "
                       "(--site, --agent) at this collector's [server] enroll_port.  The token "
                       "is printed once, with the CA fingerprint and the command to run on the "
                       "agent box; only its hash is kept.  It works once, until --ttl has passed.")
    p.add_argument("--site", required=True, help="the agent's site (plant) name")
    p.add_argument("--agent", required=True, help="the agent's name within the site")
    p.add_argument("--ttl", default="24h", metavar="DURATION",
                   help="how long the token can be used, e.g. 30m, 24h, 7d (default: 24h)")
    p.add_argument("--days", type=float, default=DEFAULT_DAYS["agent"],
                   help=f"validity of the agent's certificate in days (default: {DEFAULT_DAYS['agent']})")
    sub.add_parser("tokens", help="list tokens not used yet (identity and expiry; never the token)")
    p = sub.add_parser("issue-analyst", help="make a key and certificate for an analyst")
    p.add_argument("name", metavar="NAME", help="the analyst's name (letters, digits, . _ -)")
    p.add_argument("--out-dir", type=Path, default=Path("."), help="where to write NAME.key/.crt")
    p.add_argument("--days", type=int, default=DEFAULT_DAYS["analyst"],
                   help=f"validity in days (default: {DEFAULT_DAYS['analyst']})")
    p = sub.add_parser("revoke", help="revoke a certificate by serial, or all of an identity")
    p.add_argument("what", metavar="SERIAL|IDENTITY",
                   help="a serial from 'pki list', or e.g. site/S/agent/A or analyst/NAME")
    p.add_argument("--reason", default="", help="why (kept in the revocation list)")
    p = sub.add_parser("list", help="list issued certificates and their status")
    p.add_argument("--json", action="store_true", help="one JSON object per line")


def run(args: argparse.Namespace) -> int:
    """Run the chosen ``pki`` action; errors are raised as PkiError."""
    return _ACTIONS[args.pki_command](args)


def _init(args: argparse.Namespace) -> int:
    ca = CertificateAuthority.init(args.pki_dir, dns_names=args.dns, ips=args.ip, name=args.name)
    print(f"CA created in {ca.dir}")
    print(f"  give every agent a copy of {ca.ca_cert_path}")
    print(f"  keep {ca.ca_key_path} secret, with a backup offline")
    return 0


def _sign(args: argparse.Namespace) -> int:
    csr = load_csr(args.csr)
    cert = CertificateAuthority(args.pki_dir).sign_csr(csr, days=args.days)
    out = args.out or args.csr.with_suffix(".crt")
    out.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    ident = identity_of(cert)
    log().info("certificate issued", identity=ident.short, serial=serial_hex(cert))
    print(f"signed {ident.uri}\n  serial {serial_hex(cert)}\n  sha256 {fingerprint(cert)}")
    print(f"  valid until {cert.not_valid_after_utc:%Y-%m-%d} UTC\n  wrote {out}")
    print(f"carry {out} and {CertificateAuthority(args.pki_dir).ca_cert_path} to the agent and run:")
    print(f"  otsentry-agent enroll --site {ident.site} --agent {ident.name} "
          f"--install {out.name} --ca ca.crt")
    return 0


def _issue_analyst(args: argparse.Namespace) -> int:
    key, cert = CertificateAuthority(args.pki_dir).issue_analyst(args.name, args.out_dir, days=args.days)
    print(f"wrote {key} (secret, mode 0600) and {cert}; give both and ca.crt to {args.name}")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    done = CertificateAuthority(args.pki_dir).revoke(args.what, args.reason)
    for serial in done:
        log().warning("certificate revoked", serial=serial, what=args.what, reason=args.reason)
        print(f"revoked {serial}")
    if not done:
        print(f"{args.what}: already revoked")
    return 0


def _list(args: argparse.Namespace) -> int:
    rows = CertificateAuthority(args.pki_dir).list()
    for r in rows:
        if args.json:
            print(json.dumps({"serial": r.serial, "identity": r.identity, "status": r.status,
                              "not_after": r.not_after.isoformat()}))
        else:
            print(f"{r.serial:<34} {r.status:<8} {r.not_after:%Y-%m-%d}  {r.identity}")
    return 0


def _token(args: argparse.Namespace) -> int:
    try:
        ttl = dt.timedelta(seconds=parse_duration_s(args.ttl))
    except ValueError:
        raise PkiError(f"--ttl {args.ttl!r}: expected a duration such as 30m, 24h or 7d") from None
    if ttl.total_seconds() <= 0 or args.days <= 0:
        raise PkiError("--ttl and --days must be more than zero")
    ca = CertificateAuthority(args.pki_dir)
    ca_fp = fingerprint(load_certificate(ca.ca_cert_path))
    ident = Identity.agent(args.site, args.agent)
    token, rec = TokenStore(ca.dir).create(ident, ttl, cert_days=args.days,
                                           now=dt.datetime.now(dt.timezone.utc))
    log().info("enrolment token made", identity=ident.short, expires_at=rec.expires_at)
    print(f"one-time token for {ident.uri}, valid until {rec.expires_at[:19]} UTC:\n\n  {token}\n")
    print(f"CA fingerprint (SHA-256):\n  {ca_fp}\n")
    print("It is shown only this once. On the agent box run:")
    print(f"  otsentry-agent enroll --site {ident.site} --agent {ident.name} "
          f"--collector HOST:ENROLL_PORT --token {token} --ca-fingerprint {ca_fp.replace(':', '')}")
    return 0


def _tokens(args: argparse.Namespace) -> int:
    for rec in TokenStore(args.pki_dir).pending(dt.datetime.now(dt.timezone.utc)):
        print(f"{rec.identity:<40} until {rec.expires_at[:19]} UTC  certificate {rec.cert_days:g} days")
    return 0


_ACTIONS = {"init": _init, "sign": _sign, "token": _token, "tokens": _tokens,
            "issue-analyst": _issue_analyst, "revoke": _revoke, "list": _list}
