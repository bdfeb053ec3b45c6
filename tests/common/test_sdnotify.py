"""sd_notify over a real AF_UNIX datagram socket, as systemd listens for it."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from otsentry.common import sdnotify


@pytest.fixture(name="listener")
def _listener(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def test_ready_watchdog_stopping_reach_the_socket(listener: socket.socket) -> None:
    """Each call sends one datagram with the sd_notify assignment."""
    assert sdnotify.ready("capturing from iface:eth1")
    assert sdnotify.watchdog() and sdnotify.stopping()
    got = [listener.recv(4096).decode() for _ in range(3)]
    assert got == ["READY=1\nSTATUS=capturing from iface:eth1", "WATCHDOG=1", "STOPPING=1"]


def test_abstract_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    """``@name`` is a socket in the abstract namespace."""
    name = f"otsentry-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sdnotify.ready()
        assert sock.recv(64) == b"READY=1"


def test_no_op_outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without $NOTIFY_SOCKET nothing is sent and nothing fails."""
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.ready() is False and sdnotify.watchdog_interval_s() is None


def test_a_vanished_socket_is_not_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A socket that is gone makes notify return False, never raise."""
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    assert sdnotify.stopping() is False


@pytest.mark.parametrize(("env", "want"), [
    ({"WATCHDOG_USEC": "20000000"}, 10.0),
    ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"}, None),
    ({"WATCHDOG_USEC": "bogus"}, None),
    ({}, None),
])
def test_watchdog_interval(env: dict[str, str], want: float | None) -> None:
    """Half of WatchdogSec, only for the process the watchdog is meant for."""
    assert sdnotify.watchdog_interval_s(env) == want


def _drain(sock: socket.socket) -> list[bytes]:
    sock.setblocking(False)
    got = []
    while True:
        try:
            got.append(sock.recv(64))
        except BlockingIOError:
            return got


def test_watchdog_loop_pings_only_while_healthy(listener: socket.socket,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop pings every half WatchdogSec while healthy, and stops pinging when not."""
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    healthy = {"ok": True}
    seen: dict[str, list[bytes]] = {}

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(sdnotify.watchdog_loop(stop, lambda: healthy["ok"]))
        await asyncio.sleep(0.35)
        healthy["ok"] = False
        seen["healthy"] = _drain(listener)
        await asyncio.sleep(0.35)
        seen["unhealthy"] = _drain(listener)
        stop.set()
        await asyncio.wait_for(task, 1)

    asyncio.run(main())
    assert set(seen["healthy"]) == {b"WATCHDOG=1"} and 2 <= len(seen["healthy"]) <= 5
    assert seen["unhealthy"] == []
