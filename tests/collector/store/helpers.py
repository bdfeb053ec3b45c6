"""Batches and findings for the store tests, built the way an agent builds them."""

from __future__ import annotations

from otsentry.common.finding import AssetRef, Evidence, Finding, Flow, Severity
from otsentry.common.pki import Identity
from otsentry.v1 import common_pb2, convert, ingest_pb2, inventory_pb2, status_pb2

A1 = Identity.agent("plant1", "a1")
A2 = Identity.agent("plant1", "a2")
B1 = Identity.agent("plant2", "b1")


def finding(fid: str, rev: int = 1, *, kind: str = "k", severity: Severity = Severity.MEDIUM,
            techniques: tuple[str, ...] = (), client: str = "", server: str = "10.0.0.9",
            first: int = 1) -> Finding:
    """A finding whose count and last-seen grow with its revision."""
    flow = Flow(client, 40000, server, 502) if client else None
    assets = (AssetRef(ip=client, role="client"), AssetRef(ip=server, role="server")) if client else ()
    return Finding(id=fid, revision=rev, kind=kind, severity=severity, techniques=techniques,
                   first_seen_ns=first, last_seen_ns=first + rev * 10, count=rev, assets=assets,
                   summary=f"{kind} seen", evidence=Evidence(flow=flow))


def env(body: object) -> ingest_pb2.Envelope:
    """An envelope around a finding, an inventory change or a status."""
    if isinstance(body, Finding):
        return ingest_pb2.Envelope(finding=convert.finding_to_proto(body))
    if isinstance(body, inventory_pb2.InventoryDelta):
        return ingest_pb2.Envelope(inventory=body)
    return ingest_pb2.Envelope(status=body)


def batch(ident: Identity, epoch: int, first_seq: int, bodies: list[object]) -> ingest_pb2.Batch:
    """Consecutive messages of one agent's epoch."""
    return ingest_pb2.Batch(agent_id=ident.short, epoch=epoch, first_seq=first_seq,
                            messages=[env(b) for b in bodies])


def delta(ip: str, change: int = inventory_pb2.CHANGE_KIND_ADDED, *, rev: int = 1, at: int = 100,
          unit: int | None = None, attrs: dict[str, str] | None = None,
          device_id: dict[int, bytes] | None = None) -> inventory_pb2.InventoryDelta:
    """An inventory change of one asset (or unit)."""
    d = inventory_pb2.InventoryDelta(asset=common_pb2.AssetKey(ip=ip), change=change, revision=rev,
                                     attributes=attrs or {}, times=common_pb2.Times(capture_ns=at))
    if unit is not None:
        d.unit = unit
    for oid, value in (device_id or {}).items():
        d.device_id.add(object_id=oid, value=value)
    return d


def status(clock_ns: int, version: str = "0.1.0", depth: int = 0) -> status_pb2.AgentStatus:
    """An agent status report made at ``clock_ns`` on the agent's clock."""
    return status_pb2.AgentStatus(version=version, agent_clock_ns=clock_ns, outbox_depth=depth,
                                  mode="protecting")
