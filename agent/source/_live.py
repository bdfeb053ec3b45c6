"""Live capture from a network interface with an AF_PACKET socket and a BPF filter.

Why AF_PACKET and not libpcap through pcapy-ng:

- no compiled Python extension in the agent's base install (it runs on small,
  often air-gapped boxes); only libpcap's filter *compiler* is borrowed, via
  ctypes (:mod:`._bpf`), so the filter language stays tcpdump's;
- we see each packet's direction (``sll_pkttype``), which is what removes the
  loopback duplicates: on ``lo`` the kernel hands a packet socket every packet
  twice, once as ``PACKET_OUTGOING`` and once as incoming; outgoing copies are
  dropped on loopback interfaces only (the rule libpcap itself applies);
- kernel drops come from ``PACKET_STATISTICS``, kernel timestamps from
  ``SO_TIMESTAMPNS``, and VLAN tags that the NIC stripped come back from
  ``PACKET_AUXDATA`` (re-inserted into the frame, as libpcap does);
- the read blocks at most ``poll_interval`` seconds (``SO_RCVTIMEO``), so the
  loop sees :meth:`LiveSource.stop` promptly without threads.

Race-free start: the socket is created with protocol 0 (it receives nothing),
the filter is attached, and only then is it bound to the interface with
``ETH_P_ALL``, so no unfiltered packet is ever queued.

Needs CAP_NET_RAW (root, or ``setcap cap_net_raw+eip`` on the interpreter).
One ``recvmsg`` per packet: enough for a plant segment's Modbus traffic; a
TPACKET_V3 ring would be the next step for multi-gigabit links.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

from otsentry.agent.source._base import LINKTYPE_ETHERNET, LINKTYPE_RAW, Packet, Source
from otsentry.agent.source._bpf import compile_bpf
from otsentry.agent.source._stream import SourceStats
from otsentry.common.errors import CaptureError

__all__ = ["LiveSource", "interface_exists", "open_live"]

_ETH_P_ALL: Final = 0x0003
_SOL_PACKET: Final = 263
_PACKET_ADD_MEMBERSHIP: Final = 1
_PACKET_MR_PROMISC: Final = 1
_PACKET_STATISTICS: Final = 6
_PACKET_AUXDATA: Final = 8
_PACKET_OUTGOING: Final = 4
_SO_ATTACH_FILTER: Final = 26
_SO_TIMESTAMPNS: Final = 35
_SO_RCVBUFFORCE: Final = 33
_TP_STATUS_VLAN_VALID: Final = 0x10
_TP_STATUS_VLAN_TPID_VALID: Final = 0x40
_ARPHRD_LOOPBACK: Final = 772
_SYS_NET: Final = Path("/sys/class/net")
_RCVBUF: Final = 8 << 20
_STATS_EVERY: Final = 0xFFF   # poll the kernel's drop counter every 4096 packets (mask)
_ANCBUF: Final = 128
_TIMESPEC: Final = struct.Struct("qq")
_AUXDATA: Final = struct.Struct("IIIIHHHH")   # struct tpacket_auxdata
_STATS: Final = struct.Struct("II")           # struct tpacket_stats

# ARPHRD_* (from /sys/class/net/IF/type) -> pcap LINKTYPE_* of what SOCK_RAW returns.
_LINKTYPES: Final = {1: LINKTYPE_ETHERNET, _ARPHRD_LOOPBACK: LINKTYPE_ETHERNET,
                     65534: LINKTYPE_RAW}


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def interface_exists(name: str) -> bool:
    """Whether ``name`` is a network interface of this host."""
    return bool(name) and "/" not in name and (_SYS_NET / name).exists()


class LiveSource(Source):
    """Packets from a network interface, as they arrive.

    Iteration blocks until packets arrive and ends only after :meth:`stop`
    (callable from the loop body or a signal handler) or :meth:`close`.

    Attributes:
        name: the interface name.
        stats: packets, bytes_read (captured bytes), kernel_drops (packets the
            socket buffer lost because we were too slow), if_drops (packets the
            interface dropped since the start), total_bytes ``None``.
        linktype: the link type of every frame.
        bpf: the filter expression in use.
        on_idle: called with no arguments after each ``poll_interval`` without
            a packet (to flush, sweep timeouts or check a deadline); it may call
            :meth:`stop`.  ``None`` by default.
    """

    def __init__(self, interface: str, bpf: str = "tcp", snaplen: int = 65535,
                 promisc: bool = True, poll_interval: float = 0.2) -> None:
        self.name = interface
        self.stats = SourceStats(None)
        self.bpf = bpf
        self.snaplen = snaplen
        self.poll_interval = poll_interval
        self._stopped = False
        self.on_idle: Callable[[], None] | None = None
        hatype = _hardware_type(interface)
        if hatype not in _LINKTYPES:
            raise CaptureError(f"unsupported interface type (ARPHRD {hatype}); supported: "
                               "Ethernet, loopback, raw IP (tun)", source=interface)
        self.linktype = _LINKTYPES[hatype]
        self._loopback = hatype == _ARPHRD_LOOPBACK
        self._if_drops0 = _rx_dropped(interface)
        self._sock: socket.socket | None = _open_socket(interface, bpf, self.linktype, snaplen, poll_interval)
        try:
            if promisc and not self._loopback:
                _set_promisc(self._sock, interface)
        except OSError as exc:
            self.close()
            raise CaptureError(f"cannot set promiscuous mode: {exc.strerror}",
                               source=interface) from None

    def stop(self) -> None:
        """Ask the iteration to end; it returns within ``poll_interval`` seconds."""
        self._stopped = True

    def close(self) -> None:
        """Stop, update the drop counters and close the socket; safe to call twice."""
        self._stopped = True
        sock, self._sock = self._sock, None
        if sock is not None:
            self._poll_stats(sock)
            sock.close()

    def __iter__(self) -> Iterator[Packet]:
        sock = self._sock
        if sock is None:
            return
        recvmsg, stats, linktype, snaplen = sock.recvmsg, self.stats, self.linktype, self.snaplen
        skip_outgoing = self._loopback
        while not self._stopped:
            try:
                data, anc, _flags, addr = recvmsg(snaplen, _ANCBUF)
            except BlockingIOError:        # SO_RCVTIMEO expired: look at the stop flag
                self._poll_stats(sock)
                if self.on_idle is not None:
                    self.on_idle()
                continue
            except OSError as exc:
                if self._sock is None:
                    return
                raise CaptureError(f"capture failed: {exc.strerror or exc}",
                                   source=self.name) from None
            if skip_outgoing and addr[2] == _PACKET_OUTGOING:
                continue
            ts, data = _ancillary(anc, data)
            stats.packets += 1
            stats.bytes_read += len(data)
            if not stats.packets & _STATS_EVERY:
                self._poll_stats(sock)
            yield ts, linktype, data

    def _poll_stats(self, sock: socket.socket) -> None:
        # Reading PACKET_STATISTICS resets the kernel's counters: accumulate.
        try:
            _received, drops = _STATS.unpack(
                sock.getsockopt(_SOL_PACKET, _PACKET_STATISTICS, _STATS.size))
        except OSError:
            return
        self.stats.kernel_drops += drops
        now = _rx_dropped(self.name)
        if now is not None and self._if_drops0 is not None:
            self.stats.if_drops = max(0, now - self._if_drops0)


def _ancillary(anc: list[tuple[int, int, bytes]], data: bytes) -> tuple[int, bytes]:
    """Return the kernel timestamp and the frame with any stripped VLAN tag put back."""
    ts = 0
    for level, kind, cdata in anc:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS:
            sec, nsec = _TIMESPEC.unpack_from(cdata)
            ts = sec * 1_000_000_000 + nsec
        elif level == _SOL_PACKET and kind == _PACKET_AUXDATA and len(cdata) >= _AUXDATA.size:
            status, _len, _snap, _mac, _net, tci, tpid, _pad = _AUXDATA.unpack_from(cdata)
            if status & _TP_STATUS_VLAN_VALID and len(data) >= 12:
                tpid = tpid if status & _TP_STATUS_VLAN_TPID_VALID else 0x8100
                data = data[:12] + struct.pack("!HH", tpid, tci) + data[12:]
    return ts or time.time_ns(), data


def _hardware_type(interface: str) -> int:
    if not interface_exists(interface):
        known = ", ".join(sorted(p.name for p in _SYS_NET.iterdir())) if _SYS_NET.is_dir() else ""
        raise CaptureError(f"no such network interface (this host has: {known})",
                           source=interface)
    try:
        return int((_SYS_NET / interface / "type").read_text().strip())
    except (OSError, ValueError):
        raise CaptureError("cannot read the interface type", source=interface) from None


def _rx_dropped(interface: str) -> int | None:
    try:
        return int((_SYS_NET / interface / "statistics" / "rx_dropped").read_text())
    except (OSError, ValueError):
        return None


def _open_socket(interface: str, bpf: str, linktype: int, snaplen: int,
                 poll_interval: float) -> socket.socket:
    program = compile_bpf(bpf, linktype, snaplen, interface) if bpf else b""
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    except PermissionError:
        raise CaptureError(
            "live capture needs the CAP_NET_RAW capability: run as root, or grant it "
            "with 'setcap cap_net_raw,cap_net_admin+eip' on the Python interpreter",
            source=interface) from None
    try:
        _configure(sock, program, poll_interval)
        sock.bind((interface, _ETH_P_ALL))
    except OSError as exc:
        sock.close()
        reason = "no such interface" if exc.errno == errno.ENODEV else exc.strerror
        raise CaptureError(f"cannot capture: {reason}", source=interface) from None
    return sock


def _configure(sock: socket.socket, program: bytes, poll_interval: float) -> None:
    if program:
        insns = ctypes.create_string_buffer(program, len(program))
        fprog = _SockFprog(len(program) // 8, ctypes.addressof(insns))
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, bytes(fprog))
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, _RCVBUF)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
    sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    sock.setsockopt(_SOL_PACKET, _PACKET_AUXDATA, 1)
    sec = int(poll_interval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                    struct.pack("qq", sec, int((poll_interval - sec) * 1_000_000)))


def _set_promisc(sock: socket.socket, interface: str) -> None:
    mreq = struct.pack("iHH8s", socket.if_nametoindex(interface), _PACKET_MR_PROMISC, 0, b"")
    sock.setsockopt(_SOL_PACKET, _PACKET_ADD_MEMBERSHIP, mreq)


def open_live(interface: str, bpf: str = "tcp", snaplen: int = 65535, promisc: bool = True,
              poll_interval: float = 0.2) -> LiveSource:
    """Start capturing on a network interface.

    Args:
        interface: the interface name, e.g. ``"eth1"`` or ``"lo"``.
        bpf: tcpdump filter expression; ``"tcp"`` (the default) sees Modbus on
            every port; ``""`` captures everything.
        snaplen: bytes kept of each frame.
        promisc: put the interface in promiscuous mode (needed on a SPAN port;
            undone by the kernel when the socket closes).
        poll_interval: longest wait inside one read, i.e. how soon :meth:`stop`
            is noticed.

    Returns:
        A :class:`LiveSource`; packets are queued by the kernel from now on.

    Raises:
        CaptureError: no such interface, missing CAP_NET_RAW, bad filter, or
            libpcap missing (needed to compile a filter).
    """
    if os.name != "posix" or not hasattr(socket, "AF_PACKET"):
        raise CaptureError("live capture needs Linux (AF_PACKET sockets)", source=interface)
    return LiveSource(interface, bpf, snaplen, promisc, poll_interval)
