"""What every capture source looks like to the pipeline, and the link types.

A source is an iterable of ``(ts_ns, linktype, frame)`` tuples:

- ``ts_ns``: capture time, integer nanoseconds since the Unix epoch;
- ``linktype``: the pcap ``LINKTYPE_*`` value of the frame;
- ``frame``: the captured bytes, starting at the link-layer header.

Sources raise only :class:`~otsentry.common.errors.CaptureError`, and only
after every good packet before the damage has been yielded.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from types import TracebackType
from typing import Final, Self

from otsentry.agent.source._stream import SourceStats

__all__ = [
    "LINKTYPE_ETHERNET",
    "LINKTYPE_IEEE802_11_RADIOTAP",
    "LINKTYPE_IPV4",
    "LINKTYPE_IPV6",
    "LINKTYPE_LINUX_SLL",
    "LINKTYPE_LINUX_SLL2",
    "LINKTYPE_LOOP",
    "LINKTYPE_NULL",
    "LINKTYPE_RAW",
    "Packet",
    "Source",
]

Packet = tuple[int, int, bytes]

# https://www.tcpdump.org/linktypes.html (draft-ietf-opsawg-pcaplinktype)
LINKTYPE_NULL: Final = 0          # BSD loopback, host-order 4-byte family
LINKTYPE_ETHERNET: Final = 1
LINKTYPE_RAW: Final = 101         # raw IPv4 or IPv6
LINKTYPE_LOOP: Final = 108        # OpenBSD loopback, network-order family
LINKTYPE_LINUX_SLL: Final = 113
LINKTYPE_IEEE802_11_RADIOTAP: Final = 127
LINKTYPE_IPV4: Final = 228
LINKTYPE_IPV6: Final = 229
LINKTYPE_LINUX_SLL2: Final = 276


class Source(ABC):
    """A capture source: a file, stdin or a network interface.

    Attributes:
        name: the path, ``"-"`` for stdin, or the interface name.
        stats: the :class:`SourceStats` counters (packets, bytes_read,
            total_bytes, kernel_drops, if_drops).
    """

    name: str
    stats: SourceStats

    @abstractmethod
    def __iter__(self) -> Iterator[Packet]:
        """Yield ``(ts_ns, linktype, frame)`` for every packet.

        Raises:
            CaptureError: the input is damaged or unreadable; every good packet
                before the damage has been yielded.
        """

    @abstractmethod
    def close(self) -> None:
        """Release the file or socket; safe to call twice."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.stats!r}>"
