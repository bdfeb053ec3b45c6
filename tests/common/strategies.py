"""Hypothesis strategies for the finding model, shared by the model and contract tests."""

from __future__ import annotations

import dataclasses

from hypothesis import strategies as st

from otsentry.common.finding import AssetRef, Evidence, Finding, Flow, Severity, Times

__all__ = ["findings", "evidences", "copies_of_one_finding", "u32", "u64"]

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**63 - 1)
text = st.text(max_size=20)
ips = st.sampled_from(["10.0.0.1", "10.0.0.2", "192.168.1.10", "fe80::1", ""])
vlans = st.none() | st.integers(0, 4095)

flows = st.builds(Flow, client_ip=ips, client_port=u16, server_ip=ips, server_port=u16, vlan=vlans)
assets = st.builds(AssetRef, ip=ips, mac=st.sampled_from(["", "00:11:22:33:44:55"]), vlan=vlans,
                   name=text, role=st.sampled_from(["", "client", "server"]))
evidences = st.builds(
    Evidence.make,
    flow=st.none() | flows,
    unit=st.none() | st.integers(0, 255),
    function_code=st.none() | st.integers(0, 255),
    addresses=st.lists(u16, max_size=5).map(tuple),
    values=st.lists(u16, max_size=5).map(tuple),
    frames=st.lists(u64, max_size=3).map(tuple),
    offsets=st.lists(u64, max_size=3).map(tuple),
    pcap=st.binary(max_size=64),
    details=st.dictionaries(text, text, max_size=3),
)


@st.composite
def findings(draw: st.DrawFn, fid: str | None = None) -> Finding:
    """A valid finding; ``fid`` fixes the id."""
    first = draw(st.integers(0, 2**62))
    last = first + draw(st.integers(0, 10**12))
    return Finding(
        id=fid or draw(st.text(min_size=1, max_size=40)),
        revision=draw(st.integers(1, 2**31)),
        kind=draw(text),
        severity=draw(st.sampled_from(Severity)),
        techniques=tuple(draw(st.lists(st.from_regex(r"T0[0-9]{3}", fullmatch=True), max_size=3))),
        first_seen_ns=first,
        last_seen_ns=last,
        count=draw(st.integers(1, 2**40)),
        assets=tuple(draw(st.lists(assets, max_size=3))),
        summary=draw(text),
        evidence=draw(evidences),
        times=Times(capture_ns=last, agent_ns=draw(u64), ingest_ns=draw(st.sampled_from([0, 7, 9]))),
    )


@st.composite
def copies_of_one_finding(draw: st.DrawFn) -> list[Finding]:
    """Several revisions (and duplicate or conflicting copies) of one finding id."""
    base = draw(findings(fid="f-1"))
    out = [base]
    for _ in range(draw(st.integers(0, 5))):
        prev = draw(st.sampled_from(out))
        step = draw(st.sampled_from(["revise", "dup", "conflict"]))
        if step == "revise":
            out.append(prev.revise(last_seen_ns=prev.last_seen_ns + draw(st.integers(0, 100)),
                                   agent_ns=draw(u64), add=draw(st.integers(0, 3))))
        elif step == "dup":
            out.append(prev)
        else:
            out.append(dataclasses.replace(prev, summary=prev.summary + "x",
                                           count=draw(st.integers(1, 10))))
    return out
