"""Tell systemd how a service is doing: ``READY=1``, ``WATCHDOG=1``, ``STOPPING=1``.

The sd_notify protocol is one datagram per message on the AF_UNIX socket named
by ``$NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace).  When
the variable is unset -- any run outside a ``Type=notify`` unit -- every call
here does nothing and returns ``False``, so commands call it unconditionally.

The watchdog pings only while the caller says the service is healthy: a sensor
whose capture thread died stops pinging, and systemd restarts it after
``WatchdogSec``.

No dependency (not libsystemd, not the sdnotify package): a plain socket.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Mapping

from otsentry.common.logging import get_logger

__all__ = ["notify", "ready", "stopping", "watchdog", "watchdog_interval_s", "watchdog_loop"]


def _address(env: Mapping[str, str]) -> str | None:
    addr = env.get("NOTIFY_SOCKET", "")
    if addr.startswith("@"):
        return "\0" + addr[1:]
    return addr if addr.startswith("/") else None


def notify(state: str, env: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. ``"READY=1\\nSTATUS=listening"``) to systemd.

    Returns:
        True when the message was sent; False when not under systemd or the
        socket is gone (a failure is logged, never raised: telling systemd must
        not stop the service).
    """
    addr = _address(os.environ if env is None else env)
    if addr is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(addr)
            sock.sendall(state.encode("utf-8"))
    except OSError as exc:
        get_logger("common.sdnotify").warning("cannot notify systemd", socket=addr.lstrip("\0"),
                                              error=exc.strerror or str(exc))
        return False
    return True


def ready(status: str = "") -> bool:
    """``READY=1`` (with a ``STATUS=`` line shown by ``systemctl status``)."""
    return notify("READY=1" + (f"\nSTATUS={status}" if status else ""))


def stopping() -> bool:
    """``STOPPING=1``: the service is shutting down on purpose."""
    return notify("STOPPING=1")


def watchdog() -> bool:
    """``WATCHDOG=1``: one keep-alive ping."""
    return notify("WATCHDOG=1")


def watchdog_interval_s(env: Mapping[str, str] | None = None) -> float | None:
    """Half of the unit's ``WatchdogSec`` (from ``$WATCHDOG_USEC``), or None without a watchdog.

    ``$WATCHDOG_PID``, when set, must be this process: a child does not ping for
    its parent.
    """
    env = os.environ if env is None else env
    pid = env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", "0"))
    except ValueError:
        return None
    return usec / 2e6 if usec > 0 else None


async def watchdog_loop(stop: asyncio.Event, healthy: Callable[[], bool] = lambda: True) -> None:
    """Ping the watchdog every half ``WatchdogSec`` while ``healthy()``, until ``stop`` is set.

    Returns at once when the unit has no watchdog.  Running on the event loop,
    the pings also prove that the loop itself is not stuck.
    """
    interval = watchdog_interval_s()
    if interval is None:
        return
    while not stop.is_set():
        if healthy():
            watchdog()
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except TimeoutError:
            pass
