"""The finding rules of :mod:`otsentry.common.finding`, applied to wire messages.

Ingest sees tens of thousands of findings a second; turning each into the
model and back costs more than the database.  So the store checks and merges
the ``otsentry.v1.Finding`` messages themselves, with the same rules:

* :func:`check` refuses exactly what :func:`convert.finding_from_proto` refuses;
* :func:`merge` gives exactly what :func:`merge_forward` gives, and hands the
  rare equal-revision case to it.

Both are tested against the model (the oracle) with Hypothesis.
"""

from __future__ import annotations

from otsentry.common.errors import MessageError
from otsentry.common.finding import MAX_PCAP_SLICE, merge_forward
from otsentry.v1 import convert, finding_pb2

__all__ = ["check", "merge"]

_SEVERITIES = range(1, 6)  # wire values of info .. critical


def check(msg: finding_pb2.Finding) -> None:
    """Refuse a finding the model would refuse.

    Raises:
        MessageError: naming the field, as :func:`convert.finding_from_proto` does.
    """
    if len(msg.evidence.pcap) > MAX_PCAP_SLICE:
        raise MessageError(f"pcap slice of {len(msg.evidence.pcap)} bytes exceeds {MAX_PCAP_SLICE}",
                           "finding.evidence")
    if msg.severity not in _SEVERITIES:
        raise MessageError(f"unknown or unspecified severity {msg.severity}", "finding.severity")
    if not 0 < len(msg.id) <= 128:
        raise MessageError("finding id must be 1..128 characters", "finding")
    if msg.revision < 1:
        raise MessageError(f"revision must be >= 1, got {msg.revision}", "finding")
    if msg.count < 1:
        raise MessageError(f"count must be >= 1, got {msg.count}", "finding")
    if msg.last_seen_ns < msg.first_seen_ns:
        raise MessageError("last_seen_ns is before first_seen_ns", "finding")


def merge(old: finding_pb2.Finding, new: finding_pb2.Finding) -> finding_pb2.Finding | None:
    """Merge ``new`` into ``old``; return the result, or None when ``old`` is unchanged."""
    if old.revision == new.revision:
        a, b = convert.finding_from_proto(old), convert.finding_from_proto(new)
        merged = merge_forward(a, b)
        return None if merged is a or merged == a else convert.finding_to_proto(merged)
    win = new if new.revision > old.revision else old
    count = max(old.count, new.count)
    first = min(old.first_seen_ns, new.first_seen_ns)
    last = max(old.last_seen_ns, new.last_seen_ns)
    ingest = min((t for t in (old.times.ingest_ns, new.times.ingest_ns) if t), default=0)
    if win is old and (old.count, old.first_seen_ns, old.last_seen_ns, old.times.ingest_ns) == (
            count, first, last, ingest):
        return None
    out = finding_pb2.Finding()
    out.CopyFrom(win)
    out.count, out.first_seen_ns, out.last_seen_ns = count, first, last
    out.times.ingest_ns = ingest
    return out
