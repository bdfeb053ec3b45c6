"""One-time enrolment tokens, kept hashed in the PKI directory.

Layout, under the PKI directory::

    tokens/<sha256 of the token>.json        a token not used yet
    tokens/used/<sha256 of the token>.json   a used token, with when, by whom, and the serial

A token file holds the identity it may claim, its expiry and the lifetime of
the certificate it buys; the token itself is never stored, only its SHA-256,
so a copy of the directory gives no usable token.  A token is consumed by
renaming its file into ``used/``: a rename is atomic, so of two requests with
the same token exactly one wins, and a replay finds the file gone.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from otsentry.common.errors import PkiError
from otsentry.common.pki import Identity

__all__ = ["Token", "TokenError", "TokenStore"]


class TokenError(PkiError):
    """A token was refused.

    Attributes:
        reason: ``unknown-token``, ``token-used``, ``token-expired`` or ``identity-mismatch``.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Token:
    """What a token allows (never the token itself).

    Attributes:
        digest: SHA-256 of the token (hex): its file name.
        identity: the only identity it enrols, ``site/S/agent/A``.
        created_at, expires_at: ISO 8601 UTC.
        cert_days: lifetime of the certificate it buys, in days.
    """

    digest: str
    identity: str
    created_at: str
    expires_at: str
    cert_days: float

    def expired(self, now: dt.datetime) -> bool:
        """Whether the token can no longer be used at ``now``."""
        return now >= dt.datetime.fromisoformat(self.expires_at)


def _used() -> TokenError:
    return TokenError("token-used", "this enrolment token was used already; "
                      "ask the collector's admin for a new one")


def _digest(token: str) -> str:
    return hashlib.sha256(token.strip().encode()).hexdigest()


class TokenStore:
    """The tokens of one CA (see the module docstring).

    Args:
        pki_dir: the CA's directory.
    """

    def __init__(self, pki_dir: Path) -> None:
        self.dir = Path(pki_dir) / "tokens"
        self.used_dir = self.dir / "used"

    def create(self, ident: Identity, ttl: dt.timedelta, *, cert_days: float,
               now: dt.datetime) -> tuple[str, Token]:
        """Make a token for ``ident`` usable until ``now + ttl``.

        Returns:
            (the token, to be shown once; its record).
        """
        if ident.kind != "agent":
            raise PkiError(f"tokens enrol agents only, not {ident.short}")
        self.used_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        token = secrets.token_hex(24)  # 192 bits; hex never starts with "-" on a command line
        rec = Token(_digest(token), ident.short, now.isoformat(), (now + ttl).isoformat(), cert_days)
        fd = os.open(self.dir / f"{rec.digest}.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(rec), f, indent=1)
        return token, rec

    def _load(self, path: Path) -> Token:
        """The token file's record; FileNotFoundError passes through."""
        try:
            return Token(**json.loads(path.read_text()))
        except FileNotFoundError:
            raise
        except (OSError, ValueError, TypeError) as exc:
            raise PkiError(f"{path}: not a valid token file ({exc}); delete it and make a new "
                           "token") from None

    def consume(self, token: str, ident: Identity, now: dt.datetime) -> Token:
        """Use ``token`` to enrol ``ident``: check it, then mark it used (atomically).

        A token for another identity, or an expired one, is refused and left as
        it is (an expired one is moved to ``used/`` as nothing can use it).

        Raises:
            TokenError: unknown, used, expired, or made for another identity.
        """
        digest = _digest(token)
        path = self.dir / f"{digest}.json"
        try:
            if len(token.strip()) < 16:
                raise FileNotFoundError
            rec = self._load(path)
        except FileNotFoundError:
            if (self.used_dir / f"{digest}.json").is_file():
                raise _used() from None
            raise TokenError("unknown-token", "unknown enrolment token; check it was copied "
                             "whole, or ask the collector's admin for a new one") from None
        if rec.identity != ident.short:
            raise TokenError("identity-mismatch", f"this token enrols {rec.identity}, "
                             f"not {ident.short}; run enroll with the --site and --agent it was made for")
        try:
            os.rename(path, self.used_dir / path.name)
        except FileNotFoundError:  # another request with the same token won the race
            raise _used() from None
        if rec.expired(now):
            raise TokenError("token-expired", f"this enrolment token expired at {rec.expires_at}; "
                             "ask the collector's admin for a new one")
        return rec

    def record_use(self, rec: Token, *, serial: str, peer: str, now: dt.datetime) -> None:
        """Note in the used token's file which certificate it bought."""
        path = self.used_dir / f"{rec.digest}.json"
        data = {**asdict(rec), "used_at": now.isoformat(), "serial": serial, "peer": peer}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, path)

    def pending(self, now: dt.datetime) -> list[Token]:
        """Tokens not used yet and not expired, oldest first."""
        if not self.dir.is_dir():
            return []
        recs = []
        for path in sorted(self.dir.glob("*.json")):
            try:
                recs.append(self._load(path))
            except FileNotFoundError:  # used meanwhile
                continue
        return sorted((r for r in recs if not r.expired(now)), key=lambda r: r.created_at)
