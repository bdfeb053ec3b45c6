"""Tests of live capture on the loopback interface (agent/source/_live.py), with real sockets."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from otsentry.agent.source import LINKTYPE_ETHERNET, LiveSource, open_live, open_source
from otsentry.common.errors import CaptureError
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.needs_root


@pytest.fixture(autouse=True)
def _needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("live capture needs CAP_NET_RAW (run as root)")


@pytest.fixture(name="server")
def _server() -> Iterator[socket.socket]:
    """A listening TCP socket on 127.0.0.1 with an ephemeral port."""
    srv = socket.create_server(("127.0.0.1", 0))
    yield srv
    srv.close()


def converse(port: int, srv: socket.socket, payloads: list[bytes]) -> None:
    """Connect to ``srv``, send each payload and answer it with ``ok:`` + payload, then close."""
    cli = socket.create_connection(("127.0.0.1", port))
    cli.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn, _ = srv.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for p in payloads:
        cli.sendall(p)
        assert conn.recv(4096) == p
        conn.sendall(b"ok:" + p)
        assert cli.recv(4096) == b"ok:" + p
    cli.close()
    conn.close()


def capture_for(src: LiveSource, seconds: float) -> list[tuple[int, int, bytes]]:
    """Everything the source delivers until ``seconds`` after the call (stop() from a timer)."""
    timer = threading.Timer(seconds, src.stop)
    timer.start()
    try:
        return list(src)
    finally:
        timer.cancel()


class TestLoopback:
    def test_each_packet_once(self, server: socket.socket) -> None:
        """Every packet of a TCP conversation on lo is delivered exactly once, in order, with its payload."""
        port = server.getsockname()[1]
        payloads = [f"request-{i}-".encode() * (i + 1) for i in range(8)]
        src = open_live("lo", bpf=f"tcp port {port}")
        t0 = time.time_ns()
        converse(port, server, payloads)
        t1 = time.time_ns()
        got = capture_for(src, 1.0)
        src.close()
        assert all(lt == LINKTYPE_ETHERNET for _, lt, _ in got)
        frames = [d for _, _, d in got]
        assert len(set(frames)) == len(frames), "a packet was delivered twice"
        data = [bytes(Ether(d)[TCP].payload) for d in frames]
        want = [x for p in payloads for x in (p, b"ok:" + p)]
        assert [d for d in data if d] == want
        flags = [Ether(d)[TCP].flags for d in frames]
        assert str(flags[0]) == "S" and sum("F" in str(f) for f in flags) == 2
        assert all(t0 - 10**9 <= ts <= t1 + 10**9 for ts, _, _ in got)
        assert src.stats.packets == len(got)
        assert src.stats.bytes_read == sum(len(f) for f in frames)
        assert src.stats.kernel_drops == 0

    def test_filter(self, server: socket.socket) -> None:
        """The BPF filter keeps only the traffic it names."""
        other = socket.create_server(("127.0.0.1", 0))
        port, other_port = server.getsockname()[1], other.getsockname()[1]
        with open_live("lo", bpf=f"tcp port {port}") as src:
            converse(other_port, other, [b"not-me"])
            converse(port, server, [b"me"])
            got = capture_for(src, 0.6)
        other.close()
        ports = {(Ether(d)[TCP].sport, Ether(d)[TCP].dport) for _, _, d in got}
        assert all(port in pair for pair in ports) and ports
        assert all(IP in Ether(d) for _, _, d in got)

    def test_stop_from_loop_body(self, server: socket.socket) -> None:
        """stop() called inside the loop ends the iteration without waiting for more packets."""
        port = server.getsockname()[1]
        src = open_live("lo", bpf=f"tcp port {port}", poll_interval=0.05)
        converse(port, server, [b"x"])
        n = 0
        for _ in src:
            n += 1
            src.stop()
        assert n == 1
        src.close()
        src.close()

    def test_idle_stop(self) -> None:
        """With no traffic at all, stop() ends the iteration within the poll interval."""
        src = open_live("lo", bpf="tcp port 9", poll_interval=0.05)
        t0 = time.monotonic()
        assert capture_for(src, 0.2) == []
        assert time.monotonic() - t0 < 1.0
        src.close()

    def test_on_idle(self) -> None:
        """on_idle runs after each idle poll interval and may stop the capture."""
        src = open_live("lo", bpf="tcp port 9", poll_interval=0.02)
        calls: list[int] = []

        def idle() -> None:
            calls.append(1)
            if len(calls) == 3:
                src.stop()

        src.on_idle = idle
        assert list(src) == []
        assert len(calls) == 3
        src.close()

    def test_open_source_iface(self) -> None:
        """open_source('iface:lo') and a bare interface name open live capture."""
        for name in ("iface:lo", "lo"):
            with open_source(name) as src:
                assert isinstance(src, LiveSource) and src.name == "lo"
                assert src.bpf == "tcp" and src.stats.total_bytes is None


class TestRefusals:
    def test_bad_filter(self) -> None:
        """A filter that does not compile is a CaptureError quoting libpcap's reason."""
        with pytest.raises(CaptureError, match="bad BPF filter"):
            open_live("lo", bpf="tcp port banana")

    def test_unknown_interface(self) -> None:
        """An unknown interface is refused with the list of this host's interfaces."""
        with pytest.raises(CaptureError, match="lo"):
            open_live("nosuch0")

    def test_missing_capability(self) -> None:
        """Without CAP_NET_RAW the error says which capability is needed (setpriv is in util-linux)."""
        code = ("from otsentry.agent.source import open_live\n"
                "from otsentry.common.errors import CaptureError\n"
                "try:\n    open_live('lo')\n"
                "except CaptureError as e:\n    print(e)\n")
        out = subprocess.run(["setpriv", "--bounding-set", "-net_raw", sys.executable, "-c", code],
                             capture_output=True, text=True, cwd=REPO, timeout=60, check=True)
        assert "CAP_NET_RAW" in out.stdout
