"""Who may open the dashboard: analyst certificates, or tokens issued for one.

Two ways in, checked on every request (pages, server-sent events and static
files alike; only the bare login page is served to anyone):

* **an analyst client certificate** at the TLS handshake.  The server asks for
  one but does not require it (``CERT_OPTIONAL``); the handshake already checks
  it against the collector's CA and its dates, and :class:`AnalystAuth` checks
  the identity (kind ``analyst``) and the revocation list.
* **a login token** issued with the analyst's certificate
  (``otsentry-collector web token --cert NAME.crt``), pasted once on the login
  page and then kept in an HTTP-only cookie, or sent as ``Authorization:
  Bearer``.  A token is stateless: ``ots1.<payload>.<HMAC-SHA256>`` with the
  analyst's name, the certificate serial and the expiry, signed with a key kept
  in the PKI folder (``web-token.key``, 0600).  Revoking the certificate revokes
  its tokens; deleting the key revokes all of them.

Agents' certificates are refused here whatever else the request carries.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from otsentry.collector.pki import RevocationList
from otsentry.common.errors import PkiError
from otsentry.common.pki import check_validity, identity_of, load_certificate, serial_hex

__all__ = ["Analyst", "AuthError", "TOKEN_KEY_FILE", "COOKIE", "issue_token", "verify_token",
           "analyst_of_certificate", "token_key"]

#: The token signing key, in the PKI folder.
TOKEN_KEY_FILE = "web-token.key"
#: The session cookie that carries a token.
COOKIE = "otsentry_token"
_PREFIX = "ots1"


class AuthError(PkiError):
    """A certificate or token that does not let its holder in; the message says why."""


@dataclass(frozen=True, slots=True)
class Analyst:
    """An authenticated analyst.

    Attributes:
        name: the analyst's name (``analyst/NAME`` identity).
        serial: serial (hex) of the certificate that vouches for them.
        via: ``"certificate"`` or ``"token"``.
        expires: Unix seconds when a token ends (0 for a certificate).
    """

    name: str
    serial: str
    via: str
    expires: int = 0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def token_key(pki_dir: Path, *, create: bool = True) -> bytes:
    """The token signing key of ``pki_dir``, made (0600) on first use when ``create``.

    Raises:
        AuthError: there is no key and ``create`` is false, or it cannot be read or made.
    """
    path = Path(pki_dir) / TOKEN_KEY_FILE
    if create and not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32) + "\n")
        except FileExistsError:
            pass  # made by another process a moment ago
        except OSError as exc:
            raise AuthError(f"{path}: cannot create the token key: {exc.strerror}") from None
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        raise AuthError(f"{path}: no token key; issue a token first "
                        "(otsentry-collector web token --cert NAME.crt)") from None
    except (OSError, ValueError) as exc:
        raise AuthError(f"{path}: not a token key ({exc})") from None


def _sign(key: bytes, body: str) -> str:
    return _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())


def _checked_analyst_cert(pki_dir: Path, cert: x509.Certificate, now: dt.datetime) -> str:
    """The analyst name of ``cert`` if this CA issued it, it is valid and not revoked."""
    ca = load_certificate(Path(pki_dir) / "ca.crt")
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise AuthError("the certificate was not issued by this collector's CA") from None
    check_validity(cert, now)
    return analyst_of_certificate(cert, RevocationList(Path(pki_dir) / "revoked.json")).name


def issue_token(pki_dir: Path, cert_path: Path, *, hours: float = 12.0,
                now: dt.datetime | None = None) -> tuple[str, Analyst]:
    """A login token for the analyst whose certificate is at ``cert_path``.

    The token ends after ``hours`` or when the certificate does, whichever is first.

    Raises:
        AuthError: not an analyst certificate of this CA, expired, or revoked.
        PkiError: the certificate cannot be read.
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    cert = load_certificate(cert_path)
    name = _checked_analyst_cert(pki_dir, cert, now)
    end = min(now + dt.timedelta(hours=hours), cert.not_valid_after_utc)
    who = Analyst(name, serial_hex(cert), "token", int(end.timestamp()))
    body = _PREFIX + "." + _b64(json.dumps(
        {"sub": who.name, "serial": who.serial, "exp": who.expires}, sort_keys=True).encode())
    return body + "." + _sign(token_key(pki_dir), body), who


def verify_token(token: str, key: bytes, revocations: RevocationList, now_s: float) -> Analyst:
    """The analyst a token speaks for.

    Raises:
        AuthError: malformed, wrongly signed, expired, or its certificate was revoked.
    """
    parts = token.strip().split(".")
    if len(parts) != 3 or parts[0] != _PREFIX:
        raise AuthError("not an otsentry login token")
    body = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(_sign(key, body), parts[2]):
        raise AuthError("the token's signature is wrong (altered, or the key was replaced)")
    try:
        data = json.loads(_unb64(parts[1]))
        who = Analyst(str(data["sub"]), str(data["serial"]), "token", int(data["exp"]))
    except (ValueError, KeyError, TypeError):
        raise AuthError("the token's payload is damaged") from None
    if now_s >= who.expires:
        raise AuthError("the token has expired; ask for a new one")
    if revocations.is_revoked(who.serial):
        raise AuthError(f"the certificate of analyst {who.name} was revoked")
    return who


def analyst_of_certificate(cert: x509.Certificate, revocations: RevocationList) -> Analyst:
    """The analyst a (TLS-verified) client certificate speaks for.

    Raises:
        AuthError: not an analyst's certificate (an agent's, say), or revoked.
    """
    try:
        ident = identity_of(cert)
    except PkiError as exc:
        raise AuthError(f"the client certificate carries no otsentry identity ({exc})") from None
    if ident.kind != "analyst":
        raise AuthError(f"this is the certificate of {ident.short}; the dashboard needs an "
                        "analyst certificate (otsentry-collector pki issue-analyst NAME)")
    serial = serial_hex(cert)
    if revocations.is_revoked(serial):
        raise AuthError(f"the certificate of analyst {ident.name} was revoked")
    return Analyst(ident.name, serial, "certificate")


def peer_certificate(scope: dict[str, Any]) -> x509.Certificate | None:
    """The client certificate of the connection, from the ASGI TLS extension (None if none)."""
    chain = scope.get("extensions", {}).get("tls", {}).get("client_cert_chain") or []
    if not chain:
        return None
    return x509.load_pem_x509_certificate(chain[0].encode())


def der_to_chain(der: bytes | None) -> list[str]:
    """The ASGI TLS extension's ``client_cert_chain`` for a peer certificate in DER."""
    return [ssl.DER_cert_to_PEM_cert(der)] if der else []
