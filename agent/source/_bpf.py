"""Compile a BPF filter expression ("tcp port 502") with libpcap's compiler.

Only the compiler of libpcap is used (``pcap_open_dead`` + ``pcap_compile``),
through :mod:`ctypes`: no capture handle, no Python extension to build, and
the filter language is exactly tcpdump's.  The Debian package is
``libpcap0.8``.  The compiled program is attached to a socket with
``SO_ATTACH_FILTER`` by the caller.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Final

from otsentry.common.errors import CaptureError

__all__ = ["compile_bpf"]

_NETMASK_UNKNOWN: Final = 0xFFFFFFFF
_LIBRARY_NAMES: Final = ("libpcap.so.0.8", "libpcap.so.1", "libpcap.so")


class _BpfProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.c_void_p)]


def _libpcap() -> ctypes.CDLL:
    names = [n for n in (ctypes.util.find_library("pcap"),) if n] + list(_LIBRARY_NAMES)
    for name in names:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        lib.pcap_open_dead.restype = ctypes.c_void_p
        lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.POINTER(_BpfProgram),
                                     ctypes.c_char_p, ctypes.c_int, ctypes.c_uint32]
        lib.pcap_geterr.restype = ctypes.c_char_p
        lib.pcap_geterr.argtypes = [ctypes.c_void_p]
        lib.pcap_freecode.argtypes = [ctypes.POINTER(_BpfProgram)]
        lib.pcap_close.argtypes = [ctypes.c_void_p]
        return lib
    raise CaptureError("a BPF filter needs libpcap (Debian: apt install libpcap0.8)")


def compile_bpf(expression: str, linktype: int, snaplen: int, source: str) -> bytes:
    """Compile a filter expression to classic BPF instructions.

    Args:
        expression: tcpdump filter syntax, e.g. ``"tcp port 502"``.
        linktype: the pcap LINKTYPE of the frames the filter will see.
        snaplen: the snap length (libpcap uses it for ``ret`` values).
        source: the interface name, for error messages.

    Returns:
        The instructions as bytes (8 bytes each, ``struct sock_filter``).

    Raises:
        CaptureError: libpcap is missing or the expression does not compile.
    """
    lib = _libpcap()
    handle = lib.pcap_open_dead(linktype, snaplen)
    if not handle:
        raise CaptureError("libpcap could not open a compiler handle", source=source)
    prog = _BpfProgram()
    try:
        if lib.pcap_compile(handle, ctypes.byref(prog), expression.encode(), 1,
                            _NETMASK_UNKNOWN) != 0:
            reason = (lib.pcap_geterr(handle) or b"syntax error").decode(errors="replace")
            raise CaptureError(f"bad BPF filter {expression!r}: {reason}", source=source)
        try:
            return ctypes.string_at(prog.bf_insns, prog.bf_len * 8)
        finally:
            lib.pcap_freecode(ctypes.byref(prog))
    finally:
        lib.pcap_close(handle)
