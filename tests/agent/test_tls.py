"""The Modbus/TLS server certificate is read from a real TLS handshake captured on lo."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
import ssl
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from otsentry.agent.packet import PacketParser
from otsentry.agent.reassembly import ReassemblyStats, TcpStream
from otsentry.agent.source import open_live
from otsentry.agent.tls import TlsCertificateReader

needs_root = pytest.mark.skipif(os.geteuid() != 0,
                                reason="live capture needs CAP_NET_RAW (run as root; CI does)")


def _certificate(tmp: Path) -> tuple[Path, Path, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "plc-07.plant.example"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Water Works")])
    now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(7)
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("plc-07.plant.example"),
                 x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    crt, pem = tmp / "plc.crt", tmp / "plc.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return crt, pem, cert


class _Collect:
    def __init__(self) -> None:
        self.data = bytearray()

    def receive(self, direction: int, data: bytes, ts: int, frame: int) -> None:
        self.data += data

    def gap(self, direction: int, nbytes: int, ts: int, frame: int) -> None:
        raise AssertionError("no gap expected on lo")

    def eof(self, direction: int, ts: int = 0, frame: int = 0) -> None:
        pass


def _handshake_on_lo(tmp: Path, version: ssl.TLSVersion,
                     frames: list | None = None) -> bytes:
    """Run a TLS server and client on lo; return the server-to-client bytes as captured
    (and every captured frame ``(ts, linktype, data)`` into ``frames`` when given)."""
    crt, key, _cert = _certificate(tmp)
    srv_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    srv_ctx.load_cert_chain(crt, key)
    srv_ctx.maximum_version = version
    lsock = socket.create_server(("127.0.0.1", 0))
    port = lsock.getsockname()[1]
    src = open_live("lo", bpf=f"tcp port {port}", poll_interval=0.1)

    def serve() -> None:
        conn, _ = lsock.accept()
        with srv_ctx.wrap_socket(conn, server_side=True) as tls:
            tls.recv(16)
            tls.sendall(b"ok")

    server = threading.Thread(target=serve)
    server.start()
    cli_ctx = ssl.create_default_context()
    cli_ctx.check_hostname, cli_ctx.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port)) as raw, \
            cli_ctx.wrap_socket(raw) as tls:
        tls.sendall(b"hello")
        tls.recv(16)
    server.join(5)
    lsock.close()
    parser, stats, sink = PacketParser(), ReassemblyStats(), _Collect()
    stream = TcpStream(1, sink, stats, [])
    stopper = threading.Timer(0.5, src.stop)  # everything was sent: drain the queue, then stop
    stopper.start()
    for ts, linktype, frame in src:
        if frames is not None:
            frames.append((ts, linktype, frame, port))
        p = parser.parse(linktype, frame)
        if p is not None and p[3] == port:  # from the server
            stream.segment(p[5], p[6], p[7], ts, 0)
    stopper.join()
    src.close()
    return bytes(sink.data)


@needs_root
def test_tls12_certificate_subject_and_validity(tmp_path: Path) -> None:
    """A TLS 1.2 handshake gives the server certificate's subject, issuer, validity and names."""
    data = _handshake_on_lo(tmp_path, ssl.TLSVersion.TLSv1_2)
    reader = TlsCertificateReader()
    for i in range(0, len(data), 7):  # any chunking
        reader.receive(data[i : i + 7])
    r = reader.result
    assert r is not None and r.error is None
    assert r.version == "TLS 1.2"
    assert r.subject == "O=Water Works,CN=plc-07.plant.example" == r.issuer
    assert (r.not_before, r.not_after) == ("2026-01-01T00:00:00Z", "2035-12-30T00:00:00Z")
    assert r.names == ("plc-07.plant.example", "127.0.0.1")


@needs_root
def test_tls13_says_the_certificate_is_hidden(tmp_path: Path) -> None:
    """TLS 1.3 hides the certificate: the version is reported with the reason."""
    data = _handshake_on_lo(tmp_path, ssl.TLSVersion.TLSv1_3)
    reader = TlsCertificateReader()
    reader.receive(data)
    r = reader.result
    assert r is not None and r.version == "TLS 1.3" and r.subject is None
    assert "TLS 1.3" in (r.error or "")


def test_not_tls_is_reported() -> None:
    """Modbus bytes on port 802 are not a TLS stream, and say so."""
    reader = TlsCertificateReader()
    r = reader.receive(bytes.fromhex("000100000006010300000005"))
    assert r is not None and r.error == "not a TLS record stream" and reader.done


@given(st.lists(st.binary(max_size=300), max_size=20))
def test_random_bytes_never_raise(chunks: list[bytes]) -> None:
    """Whatever the server sends, the reader only returns results; its buffer stays bounded."""
    reader = TlsCertificateReader()
    for chunk in chunks:
        reader.receive(b"\x16\x03\x03" + chunk)
        assert len(reader._buf) + len(reader._hs) <= 70_000


@needs_root
def test_pipeline_gives_the_certificate_to_the_inventory(tmp_path: Path) -> None:
    """A Modbus/TLS connection's certificate reaches the inventory's server asset."""
    from otsentry.agent.inventory import Inventory
    from otsentry.agent.pipeline import Pipeline, PipelineConfig

    frames: list = []
    _handshake_on_lo(tmp_path, ssl.TLSVersion.TLSv1_2, frames)
    port = frames[0][3]
    seen: list = []
    inv = Inventory()
    pipe = Pipeline([inv, lambda flow, events, txs: seen.extend(events)],
                    PipelineConfig(tls_ports=(port,)))
    for ts, linktype, frame, _port in frames:
        pipe.feed(ts, linktype, frame)
    pipe.finish()
    kinds = [e.KIND for e in seen]
    assert kinds.count("tls-certificate") == 1 and kinds[0] == "connection"
    (server,) = [a for a in inv.assets() if a.tls]
    cert = server.tls[str(port)]
    assert cert["subject"] == "O=Water Works,CN=plc-07.plant.example"
    assert cert["version"] == "TLS 1.2" and cert["not_after"] == "2035-12-30T00:00:00Z"
