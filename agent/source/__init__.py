"""Capture sources: pcap/pcapng files (gzip'd or not), stdin, live interfaces.

    from otsentry.agent.source import open_source
    src = open_source("capture.pcapng.gz")    # a path, "-" for stdin, or "iface:eth1"
    for ts_ns, linktype, frame in src:
        ...
    src.stats.packets, src.stats.bytes_read, src.stats.total_bytes

Every source yields ``(ts_ns, linktype, frame)``: integer nanoseconds since
the epoch, the pcap ``LINKTYPE_*`` value, and the frame bytes.  The only
exception a source raises on bad input is
:class:`~otsentry.common.errors.CaptureError`, and a damaged file first
yields every good packet before the damage.
"""

from __future__ import annotations

import os

from otsentry.agent.source._base import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IEEE802_11_RADIOTAP,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    Packet,
    Source,
)
from otsentry.agent.source._file import ACCEPTED, FileSource, open_file, open_path
from otsentry.agent.source._live import LiveSource, interface_exists, open_live
from otsentry.agent.source._stream import CHUNK, SourceStats

__all__ = [
    "ACCEPTED",
    "CHUNK",
    "IFACE_PREFIX",
    "LINKTYPE_ETHERNET",
    "LINKTYPE_IEEE802_11_RADIOTAP",
    "LINKTYPE_IPV4",
    "LINKTYPE_IPV6",
    "LINKTYPE_LINUX_SLL",
    "LINKTYPE_LINUX_SLL2",
    "LINKTYPE_LOOP",
    "LINKTYPE_NULL",
    "LINKTYPE_RAW",
    "FileSource",
    "LiveSource",
    "Packet",
    "Source",
    "SourceStats",
    "open_file",
    "open_live",
    "open_source",
]

IFACE_PREFIX = "iface:"


def open_source(target: str | os.PathLike[str], bpf: str = "tcp") -> Source:
    """Open a capture by name: a file path, ``"-"`` (stdin) or an interface.

    Args:
        target: a path to a pcap/pcapng file (gzip'd or not, told by content);
            ``"-"`` for a binary capture stream on stdin
            (``tcpdump -w - | otsentry-agent decode -``); ``"iface:NAME"`` for
            live capture; a bare name that is not a file but is an interface of
            this host also means live capture.
        bpf: filter for live capture (ignored for files).

    Returns:
        A :class:`Source`; for files the format has already been detected.

    Raises:
        CaptureError: the file is missing, unreadable or not a capture (the
            message lists the accepted formats), or live capture cannot start.
    """
    name = os.fspath(target)
    if name.startswith(IFACE_PREFIX):
        return open_live(name[len(IFACE_PREFIX):], bpf=bpf)
    if name != "-" and not os.path.exists(name) and interface_exists(name):
        return open_live(name, bpf=bpf)
    return open_path(name)
