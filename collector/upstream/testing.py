"""A real TAXII 2.1 server for tests and the demo: medallion with its memory backend.

    with TaxiiServer.start(tmp_path, users={"nicc": "secret"}) as taxii:
        rc = Recipient("nicc", taxii.api_root, taxii.collection, "nicc", "secret")
        ...
        taxii.objects()          # what the collection holds, read back over TAXII

Medallion keeps one Flask application per process, so each server runs in its
own process (this module run as a script: medallion's app on werkzeug) on a
free port of 127.0.0.1, over plain HTTP, or with ``tls=`` over HTTPS that
requires a client certificate (medallion serves no TLS itself; werkzeug
does, and the certificate's common name stands for medallion's basic auth,
as behind a TLS-terminating proxy).  :meth:`stop` and :meth:`restart` take it
down and bring it back on the same port with empty collections, for the
"server down, retried later" cases.  medallion is a test dependency
(``otsentry[test]``).
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from otsentry.collector.store.testing import free_port

__all__ = ["COLLECTION", "TaxiiServer", "TaxiiTls"]

COLLECTION = "91a7b528-80eb-42ed-a74d-c6fbd5a26116"
_MEDIA = "application/stix+json;version=2.1"


@dataclass(frozen=True, slots=True)
class TaxiiTls:
    """HTTPS for :meth:`TaxiiServer.start`, with a client certificate required.

    Attributes:
        cert, key: the server's certificate (naming 127.0.0.1) and key, PEM.
        client_ca: the CA that must sign a client's certificate; the
            certificate's common name is the TAXII user (no basic auth).
        reader: (CA of ``cert``, client certificate, its key) with which
            :meth:`TaxiiServer.objects` and :meth:`TaxiiServer.manifest` read back.
    """

    cert: Path
    key: Path
    client_ca: Path
    reader: tuple[Path, Path, Path]

    def reader_context(self) -> ssl.SSLContext:
        ca, cert, key = self.reader
        ctx = ssl.create_default_context(cafile=str(ca))
        ctx.check_hostname = False  # our own server on 127.0.0.1, whatever its certificate names
        ctx.load_cert_chain(cert, key)
        return ctx


class TaxiiServer:
    """One medallion process; see the module docstring."""

    def __init__(self, root: Path, port: int, users: dict[str, str], max_content_length: int,
                 tls: TaxiiTls | None = None):
        self.root, self.port, self.users, self.tls = root, port, users, tls
        self.max_content_length = max_content_length
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(cls, root: Path, *, users: dict[str, str] | None = None,
              max_content_length: int = 10 << 20, tls: TaxiiTls | None = None) -> TaxiiServer:
        """Write the config and data files under ``root`` and start the server."""
        root.mkdir(parents=True, exist_ok=True)
        server = cls(root, free_port(), users or {"nicc": "secret"}, max_content_length, tls)
        server.restart()
        return server

    @property
    def base(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def api_root(self) -> str:
        """The API root URL (ends in /)."""
        return f"{self.base}/api1/"

    @property
    def collection(self) -> str:
        return COLLECTION

    def _write_files(self) -> Path:
        data = {
            "/discovery": {"title": "otsentry test TAXII server", "default": self.api_root,
                           "api_roots": [self.api_root]},
            "api1": {
                "information": {"title": "reports", "versions": ["application/taxii+json;version=2.1"],
                                "max_content_length": self.max_content_length},
                "status": [],
                "collections": [{"id": COLLECTION, "title": "incident reports",
                                 "can_read": True, "can_write": True, "media_types": [_MEDIA],
                                 "objects": [], "manifest": []}],
            },
        }
        (self.root / "data.json").write_text(json.dumps(data))
        config = {"backend": {"module": "medallion.backends.memory_backend",
                              "module_class": "MemoryBackend",
                              "filename": str(self.root / "data.json")},
                  "users": self.users, "taxii": {"max_page_size": 1000},
                  "otsentry": {"port": self.port, "tls": None if self.tls is None else {
                      "cert": str(self.tls.cert), "key": str(self.tls.key),
                      "client_ca": str(self.tls.client_ca)}}}
        path = self.root / "medallion.json"
        path.write_text(json.dumps(config))
        return path

    def restart(self) -> None:
        """Start the server (again) with empty collections; wait until it answers."""
        self.stop()
        config = self._write_files()
        log = (self.root / "medallion.log").open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", __name__, str(config)],
                                     stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"medallion exited: {(self.root / 'medallion.log').read_text()}")
            try:
                self._get("/taxii2/")
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("medallion did not answer within 30 s")

    def stop(self) -> None:
        """Stop the server (its port refuses connections afterwards)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def _get(self, path: str, user: str | None = None) -> Any:
        import base64
        import urllib.request

        user = user or next(iter(self.users))
        req = urllib.request.Request(self.base + path, headers={
            "Accept": "application/taxii+json;version=2.1",
            "Authorization": "Basic " + base64.b64encode(
                f"{user}:{self.users[user]}".encode()).decode()})
        ctx = self.tls.reader_context() if self.tls else None
        with urllib.request.urlopen(req, timeout=10, context=ctx) as resp:
            return json.loads(resp.read())

    def objects(self, **filters: str) -> list[dict[str, Any]]:
        """Every object version in the collection (``match[version]=all``), read over TAXII.

        Extension definitions are left out unless ``match[type]`` asks for them:
        medallion 3.0 takes their ``version`` property ("1.0.0") for an object
        version and fails (HTTP 500) on any listing that includes one; they are
        in :meth:`manifest`.
        """
        types = "attack-pattern,identity,incident,indicator,infrastructure,marking-definition," \
                "note,observed-data,relationship,report,sighting,domain-name,ipv4-addr," \
                "ipv6-addr,network-traffic"
        return self._pages("objects", {"match[version]": "all", "match[type]": types, **filters})

    def manifest(self) -> list[dict[str, Any]]:
        """The collection's manifest: one entry per object version it holds."""
        return self._pages("manifest", {"match[version]": "all"})

    def _pages(self, what: str, filters: dict[str, str]) -> list[dict[str, Any]]:
        from urllib.parse import urlencode

        out, more, nxt = [], True, ""
        while more:
            page = self._get(f"/api1/collections/{COLLECTION}/{what}/?{urlencode(filters)}"
                             + (f"&next={nxt}" if nxt else ""))
            out += page.get("objects", [])
            more, nxt = page.get("more", False), page.get("next", "")
        return out

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _serve(config_path: str) -> None:
    """The server process: medallion's app on werkzeug, over HTTPS if the config has ``tls``."""
    from medallion import load_app
    from werkzeug.serving import make_server

    conf = json.loads(Path(config_path).read_text())["otsentry"]
    app = load_app(config_path)
    ctx = None
    if conf["tls"]:
        ctx = _server_context(**conf["tls"])
        _login_by_certificate()
    make_server("127.0.0.1", conf["port"], app, threaded=True, ssl_context=ctx).serve_forever()


def _server_context(cert: str, key: str, client_ca: str) -> ssl.SSLContext:
    """The server's certificate, and a client certificate signed by ``client_ca`` required."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=client_ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(cert, key)
    return ctx


def _login_by_certificate() -> None:
    """Medallion's logins become the client certificate's common name (the handshake has
    checked it against ``client_ca``; werkzeug passes it on as ``SSL_CLIENT_CERT``)."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    from flask import request
    from medallion import auth

    @auth.verify_password
    def _by_certificate(username: str, password: str) -> str | None:
        pem = request.environ.get("SSL_CLIENT_CERT")
        if not pem:
            return None
        cert = x509.load_pem_x509_certificate(pem.encode())
        return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


if __name__ == "__main__":
    _serve(sys.argv[1])
