"""Conversions between the otsentry.v1 wire messages and the finding model.

Messages from the wire are untrusted (DESIGN principle 7): every ``*_from_proto``
function and :func:`parse` raise only :class:`~otsentry.common.errors.MessageError`,
naming the offending field, for anything the model refuses.
"""

from __future__ import annotations

from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from otsentry.common.errors import MessageError
from otsentry.common.finding import AssetRef, Evidence, Finding, Flow, Severity, Times
from otsentry.v1 import common_pb2, finding_pb2

__all__ = [
    "parse",
    "severity_to_proto",
    "severity_from_proto",
    "times_to_proto",
    "times_from_proto",
    "finding_to_proto",
    "finding_from_proto",
]

M = TypeVar("M", bound=Message)

# The model counts from 0 (INFO); the wire keeps 0 for "unspecified".
_SEVERITY_OFFSET = 1


def parse(cls: type[M], data: bytes) -> M:
    """Parse ``data`` as a ``cls`` message.

    Raises:
        MessageError: the bytes are not a valid ``cls``.
    """
    msg = cls()
    try:
        msg.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise MessageError(f"not a valid {cls.DESCRIPTOR.full_name}: {exc}") from None
    return msg


def severity_to_proto(sev: Severity) -> int:
    """Model severity to the wire enum value."""
    return int(sev) + _SEVERITY_OFFSET


def severity_from_proto(value: int, field: str = "severity") -> Severity:
    """Wire enum value to model severity; unspecified or unknown values are refused."""
    try:
        return Severity(value - _SEVERITY_OFFSET)
    except ValueError:
        raise MessageError(f"unknown or unspecified severity {value}", field) from None


def times_to_proto(t: Times) -> common_pb2.Times:
    """Model times to the wire message."""
    return common_pb2.Times(capture_ns=t.capture_ns, agent_ns=t.agent_ns, ingest_ns=t.ingest_ns)


def times_from_proto(t: common_pb2.Times) -> Times:
    """Wire times to the model."""
    return Times(capture_ns=t.capture_ns, agent_ns=t.agent_ns, ingest_ns=t.ingest_ns)


def _opt(msg: Message, name: str) -> int | None:
    return getattr(msg, name) if msg.HasField(name) else None


def _flow_to_proto(f: Flow) -> finding_pb2.Flow:
    return finding_pb2.Flow(client_ip=f.client_ip, client_port=f.client_port,
                            server_ip=f.server_ip, server_port=f.server_port, vlan=f.vlan)


def _flow_from_proto(f: finding_pb2.Flow) -> Flow:
    return Flow(f.client_ip, f.client_port, f.server_ip, f.server_port, _opt(f, "vlan"))


def _asset_to_proto(a: AssetRef) -> finding_pb2.AssetRef:
    key = common_pb2.AssetKey(ip=a.ip, mac=a.mac, vlan=a.vlan)
    return finding_pb2.AssetRef(key=key, name=a.name, role=a.role)


def _asset_from_proto(a: finding_pb2.AssetRef) -> AssetRef:
    return AssetRef(ip=a.key.ip, mac=a.key.mac, vlan=_opt(a.key, "vlan"), name=a.name, role=a.role)


def _evidence_to_proto(e: Evidence) -> finding_pb2.Evidence:
    msg = finding_pb2.Evidence(
        unit=e.unit, function_code=e.function_code, addresses=e.addresses, values=e.values,
        frames=e.frames, offsets=e.offsets, pcap=e.pcap, details=dict(e.details),
    )
    if e.flow is not None:
        msg.flow.CopyFrom(_flow_to_proto(e.flow))
    return msg


def _evidence_from_proto(e: finding_pb2.Evidence) -> Evidence:
    try:
        return Evidence.make(
            flow=_flow_from_proto(e.flow) if e.HasField("flow") else None,
            unit=_opt(e, "unit"), function_code=_opt(e, "function_code"),
            addresses=tuple(e.addresses), values=tuple(e.values), frames=tuple(e.frames),
            offsets=tuple(e.offsets), pcap=bytes(e.pcap), details=dict(e.details),
        )
    except ValueError as exc:
        raise MessageError(str(exc), "finding.evidence") from None


def finding_to_proto(f: Finding) -> finding_pb2.Finding:
    """Model finding to the wire message.

    Raises:
        ValueError: a number does not fit its wire type (e.g. a negative address).
    """
    return finding_pb2.Finding(
        id=f.id, revision=f.revision, kind=f.kind, severity=severity_to_proto(f.severity),
        techniques=f.techniques, first_seen_ns=f.first_seen_ns, last_seen_ns=f.last_seen_ns,
        count=f.count, assets=[_asset_to_proto(a) for a in f.assets], summary=f.summary,
        evidence=_evidence_to_proto(f.evidence), times=times_to_proto(f.times),
    )


def finding_from_proto(msg: finding_pb2.Finding) -> Finding:
    """Wire finding to the model.

    Raises:
        MessageError: the message breaks the model (empty id, revision 0, count 0,
            last seen before first seen, unknown severity, oversized pcap slice).
    """
    evidence = _evidence_from_proto(msg.evidence)
    try:
        return Finding(
            id=msg.id, revision=msg.revision, kind=msg.kind,
            severity=severity_from_proto(msg.severity, "finding.severity"),
            techniques=tuple(msg.techniques), first_seen_ns=msg.first_seen_ns,
            last_seen_ns=msg.last_seen_ns, count=msg.count,
            assets=tuple(_asset_from_proto(a) for a in msg.assets), summary=msg.summary,
            evidence=evidence, times=times_from_proto(msg.times),
        )
    except ValueError as exc:
        raise MessageError(str(exc), "finding") from None
