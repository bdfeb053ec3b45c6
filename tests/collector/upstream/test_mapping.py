"""The STIX mapping: valid bundles, deterministic ids, versions, policy, and redaction that never leaks."""

from __future__ import annotations

import dataclasses
import ipaddress
import json

from hypothesis import given, settings
from hypothesis import strategies as st
from otsentry.collector.upstream import (
    TLP_IDS,
    AssetInfo,
    FindingFacts,
    IncidentFacts,
    NoteFacts,
    Redactor,
    envelope_bytes,
    incident_objects,
    leaked_addresses,
    make_bundle,
    split_envelopes,
)
from otsentry.common.finding import AssetRef, Evidence, Finding, Flow, Severity
from otsentry.common.upstream_config import Recipient, ReportingConfig, SharingPolicy

from tests.collector.upstream.conftest import validate

T = 1_764_000_000_000_000_000
MS = 1_000_000
CFG = ReportingConfig(organisation="Example Water")
RC = Recipient("nicc", "http://taxii.invalid/api1/", "c",
               policy=SharingPolicy(infrastructure=True))


def _finding(fid: str, client: str, server: str, *, kind: str = "policy.write-not-allowed",
             techniques: tuple[str, ...] = ("T0855",), summary: str = "", name: str = "PUMP-PLC-1"
             ) -> Finding:
    return Finding(id=fid, revision=1, kind=kind, severity=Severity.HIGH, techniques=techniques,
                   first_seen_ns=T, last_seen_ns=T + 10**9, count=2,
                   assets=(AssetRef(ip=client, role="client"),
                           AssetRef(ip=server, role="server", name=name)),
                   summary=summary or f"{client} wrote register 0 on {server} ({name})",
                   evidence=Evidence(flow=Flow(client, 40000, server, 502), unit=1,
                                     function_code=6, addresses=(0,), values=(99,)))


def _incident(*findings: Finding, title: str = "write from 10.0.0.66 at plant1",
              notes: tuple[NoteFacts, ...] = (), severity: int = 4) -> IncidentFacts:
    return IncidentFacts(
        id=7, rule="site-source", title=title, severity=severity, sites=("plant1",), first_ns=T,
        last_ns=T + 5, created_ns=T + 10, updated_ns=T + 20, declared_ns=T + 30,
        findings=tuple(FindingFacts(i, "site/plant1/agent/a1", "plant1", f, T + 1, T + 2)
                       for i, f in enumerate(findings, 1)),
        notes=notes,
        assets={"plant1": {"10.0.0.9": AssetInfo("plc", "Schneider Electric", "PUMP-PLC-1", 3)}})


def _objects(inc: IncidentFacts, rc: Recipient = RC, built: int = T + 100) -> list[dict]:
    return incident_objects(inc, rc, CFG, "early-warning", built, T + 86400 * 10**9)


def test_bundle_is_valid_and_deterministic() -> None:
    """The same facts give byte-identical objects; the bundle passes the OASIS validator."""
    inc = _incident(_finding("f1", "45.33.32.156", "10.0.0.9"),
                    _finding("f2", "10.0.0.66", "10.0.0.9", techniques=("T0846", "T0855")),
                    notes=(NoteFacts(1, T + 40, "ana", "checked with the operator"),))
    one, two = _objects(inc), _objects(inc)
    assert json.dumps(one) == json.dumps(two)
    validate(make_bundle(one))
    by_type = {}
    for o in one:
        by_type.setdefault(o["type"], []).append(o)
    assert len(by_type["sighting"]) == 3 and len(by_type["attack-pattern"]) == 2
    (ap,) = [a for a in by_type["attack-pattern"] if a["external_references"][0]["external_id"]
             == "T0846"]
    assert ap["name"] == "Remote System Discovery"
    assert ap["external_references"][0]["source_name"] == "mitre-ics-attack"
    assert [i["pattern"] for i in by_type["indicator"]] == ["[ipv4-addr:value = '45.33.32.156']"]
    assert by_type["infrastructure"][0]["infrastructure_types"] == ["control-system"]
    for traffic in by_type["network-traffic"]:
        (modbus,) = traffic["extensions"].values()
        assert (modbus["function_code"], modbus["unit_id"]) == (6, 1)


def test_new_version_on_change() -> None:
    """A change bumps ``modified`` of the incident and report; untouched objects stay identical."""
    inc = _incident(_finding("f1", "10.0.0.66", "10.0.0.9"))
    before = {o["id"]: o for o in _objects(inc)}
    later = dataclasses.replace(inc, updated_ns=T + 50 * MS)  # STIX times are in milliseconds
    after = {o["id"]: o for o in _objects(later, built=T + 200 * MS)}
    assert before.keys() == after.keys()
    changed = {i for i in before if before[i] != after[i]}
    assert {before[i]["type"] for i in changed} == {"incident", "report"}
    assert all(after[i]["modified"] > before[i]["modified"] for i in changed)


def test_policy_tlp_kinds_and_severity() -> None:
    """Markings follow the site's TLP; kinds and severity below the policy keep the incident home."""
    inc = _incident(_finding("f1", "10.0.0.66", "10.0.0.9"))
    red = Recipient("n", "http://x.invalid/", "c", sites={"plant1": SharingPolicy(tlp="red")})
    objs = _objects(inc, red)
    (report,) = [o for o in objs if o["type"] == "report"]
    assert report["object_marking_refs"] == [TLP_IDS["red"]]
    assert {o["id"] for o in objs if o["type"] == "marking-definition"} >= {TLP_IDS["red"]}
    assert _objects(inc, Recipient("n", "http://x.invalid/", "c", policy=SharingPolicy(
        kinds=("scan.hosts",)))) == []
    assert _objects(dataclasses.replace(inc, severity=1), RC) == []
    assert _objects(inc, Recipient("n", "http://x.invalid/", "c",
                                   policy=SharingPolicy(share=False))) == []


def test_no_redaction_keeps_addresses_and_names() -> None:
    """With redaction off the recipient gets the addresses and the asset names."""
    inc = _incident(_finding("f1", "10.0.0.66", "10.0.0.9"))
    text = json.dumps(_objects(inc, Recipient("n", "http://x.invalid/", "c", policy=SharingPolicy(
        redact=False, infrastructure=True))))
    assert "10.0.0.66" in text and "PUMP-PLC-1" in text


def test_split_keeps_every_object_in_order() -> None:
    """Envelopes stay within the limit and hold every object once, in order."""
    objs = _objects(_incident(_finding("f1", "45.33.32.156", "10.0.0.9")))
    parts = split_envelopes(objs, 2500)
    assert all(len(envelope_bytes(p)) <= 2500 for p in parts)
    assert [o for p in parts for o in p] == objs


_private = st.one_of(
    st.ip_addresses(network="10.0.0.0/8"), st.ip_addresses(network="192.168.0.0/16"),
    st.ip_addresses(network="172.16.0.0/12"), st.ip_addresses(network="fd00::/8"),
    st.ip_addresses(network="127.0.0.0/8"), st.ip_addresses(network="169.254.0.0/16"),
).map(str)
_public = st.sampled_from(["45.33.32.156", "8.8.8.8", "2001:4860:4860::8888"])
_noise = st.text(alphabet="0123456789.:abcdef ,;-()[]/x", max_size=12)


@st.composite
def _texts(draw: st.DrawFn, ips: list[str]) -> str:
    parts = [draw(_noise)]
    for ip in ips:
        parts += [draw(st.sampled_from(["", "1", "9.", ".", ":", "::", "x"])), ip,
                  draw(st.sampled_from(["", "1", ".5", ":502", "::1", " "])), draw(_noise)]
    return "".join(parts)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), clients=st.lists(st.one_of(_private, _public), min_size=1, max_size=3),
       server=_private, vendor=st.one_of(st.just(""), _noise))
def test_redaction_never_leaks_a_private_address(data: st.DataObject, clients: list[str],
                                                 server: str, vendor: str) -> None:
    """With redaction on, no internal address and no asset name appears anywhere in the bundle,
    whatever the titles, summaries, notes and inventory attributes contain."""
    ips = clients + [server]
    findings = [_finding(f"f{i}", c, server, summary=data.draw(_texts(ips)), name="HMI-SECRET-7")
                for i, c in enumerate(clients)]
    inc = _incident(*findings, title=data.draw(_texts(ips)),
                    notes=(NoteFacts(1, T + 40, "ana", data.draw(_texts(ips))),))
    inc = dataclasses.replace(inc, assets={"plant1": {server: AssetInfo(
        data.draw(_texts([server])), vendor, "HMI-SECRET-7", 5)}})
    text = json.dumps(_objects(inc))
    assert leaked_addresses(text) == []
    assert "HMI-SECRET-7" not in text
    for ip in ips:
        if not ipaddress.ip_address(ip).is_global:
            assert f'"{ip}"' not in text


@given(st.text(max_size=60))
def test_redactor_output_has_no_private_address(text: str) -> None:
    """Any text at all comes out of a redacting Redactor without an internal address."""
    out = Redactor({"10.0.0.9": AssetInfo("plc", "10.1.2.3 Inc")}, True).text(text)
    assert leaked_addresses(out) == []
