"""An incident as STIX 2.1 objects for one recipient: the mapping of docs/stix.md.

Sans-I/O: facts (plain data read from the store by the caller) and the time
the report is built go in, JSON-ready dicts come out; no database, clock or
network here.

Rules of this module:

* **Deterministic ids.**  Every id is a uuid5 of what identifies the thing
  (never of an internal address: a hash of a private address can be brute
  forced, so assets are named by their inventory id), so sending twice is
  idempotent.  Cyber-observables use the STIX 2.1 namespace and their
  id-contributing properties (STIX 2.1 §2.9).
* **Versions.**  ``modified`` is the time of the last change of what the
  object says (ingest times of findings, the incident, notes), so an
  unchanged object is byte-identical in every report; the report's own
  ``modified`` is the time it was built.
* **Policy.**  Only sites whose policy shares, at or above its minimum
  severity, contribute; only their allowed kinds of finding leave; every
  object carries the TLP 2.0 marking of its site (the report, the incident
  and notes the strictest of them); text and addresses pass through the
  site's :class:`~._redact.Redactor`.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from otsentry.collector.upstream._redact import AssetInfo, Redactor, is_global
from otsentry.collector.upstream._tlp import TLP_IDS, strictest, tlp_marking
from otsentry.common.attack import TECHNIQUES, technique_url
from otsentry.common.finding import Finding, Severity
from otsentry.common.upstream_config import Recipient, ReportingConfig, SharingPolicy

__all__ = ["MODBUS_EXTENSION", "FindingFacts", "IncidentFacts", "NoteFacts", "incident_objects",
           "make_bundle", "shared_sites"]

#: Namespace of our uuid5 ids; SCOs use the STIX 2.1 one.
_NS = uuid.UUID("5a1c3a52-8e0b-4e0c-9a57-6f7473656e74")
_SCO_NS = uuid.UUID("00abedb4-aa42-466c-9c01-fed23315a9b7")
_EPOCH = "2026-01-01T00:00:00.000Z"  # created/modified of the fixed objects below
OTSENTRY_IDENTITY = f"identity--{uuid.uuid5(_NS, 'otsentry')}"
MODBUS_EXTENSION = f"extension-definition--{uuid.uuid5(_NS, 'modbus-network-traffic/1')}"
_STAGE_TITLE = {"early-warning": "Early warning", "notification": "Incident notification",
                "final-report": "Final report", "export": "Incident report"}


@dataclass(frozen=True, slots=True)
class FindingFacts:
    """One member finding as stored: its row id, agent, site and merged body."""

    ref: int
    agent_id: str
    site: str
    finding: Finding
    first_ingest_ns: int
    updated_ns: int


@dataclass(frozen=True, slots=True)
class NoteFacts:
    """An analyst's note on the incident."""

    id: int
    created_ns: int
    author: str
    text: str


@dataclass(frozen=True, slots=True)
class IncidentFacts:
    """Everything the mapping needs about one incident.

    ``assets`` maps site -> address -> :class:`AssetInfo` (the inventory);
    ``declared_ns`` is 0 when the reporting clock has not started.
    """

    id: int
    rule: str
    title: str
    severity: int
    sites: tuple[str, ...]
    first_ns: int
    last_ns: int
    created_ns: int
    updated_ns: int
    declared_ns: int = 0
    findings: tuple[FindingFacts, ...] = ()
    notes: tuple[NoteFacts, ...] = ()
    assets: Mapping[str, Mapping[str, AssetInfo]] = field(default_factory=dict)

    @property
    def version_ns(self) -> int:
        """When what a report says about this incident last changed."""
        return max([self.updated_ns, self.declared_ns, *(n.created_ns for n in self.notes),
                    *(f.updated_ns for f in self.findings)])


def ts(ns: int) -> str:
    """A STIX timestamp (UTC, milliseconds) of ``ns`` since the epoch."""
    t = dt.datetime.fromtimestamp(ns // 1_000_000 / 1000, dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _id(kind: str, *parts: object) -> str:
    return f"{kind}--{uuid.uuid5(_NS, '|'.join(str(p) for p in (kind, *parts)))}"


def _sco(kind: str, **props: Any) -> dict[str, Any]:
    """A cyber-observable with its deterministic id (STIX 2.1 §2.9)."""
    canon = json.dumps(props, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return {"type": kind, "spec_version": "2.1", "id": f"{kind}--{uuid.uuid5(_SCO_NS, canon)}",
            **props}


def shared_sites(inc: IncidentFacts, recipient: Recipient) -> dict[str, SharingPolicy]:
    """site -> policy, for the incident's sites that may report it to ``recipient``."""
    out = {}
    for site in inc.sites:
        p = recipient.policy_for(site)
        if p.share and inc.severity >= p.min_severity:
            out[site] = p
    return out


def _kept(inc: IncidentFacts, sites: Mapping[str, SharingPolicy]) -> list[FindingFacts]:
    return [f for f in inc.findings if f.site in sites and sites[f.site].allows(f.finding.kind)]


class _Builder:
    """Collects the objects of one report (a helper of :func:`incident_objects`)."""

    def __init__(self, inc: IncidentFacts, recipient: Recipient, cfg: ReportingConfig,
                 sites: Mapping[str, SharingPolicy]) -> None:
        self.inc, self.recipient, self.cfg, self.sites = inc, recipient, cfg, sites
        self.org = _id("identity", "org", cfg.organisation)
        self.red = {s: Redactor(inc.assets.get(s, {}), p.redact) for s, p in sites.items()}
        self.top_tlp = strictest({p.tlp for p in sites.values()})
        self.top_red = Redactor({a: i for s in sites for a, i in inc.assets.get(s, {}).items()},
                                any(p.redact for p in sites.values()))
        self.objects: dict[str, dict[str, Any]] = {}
        self.tlps: set[str] = {"clear", self.top_tlp, recipient.policy.tlp}

    def add(self, obj: dict[str, Any]) -> str:
        self.objects.setdefault(obj["id"], obj)
        return obj["id"]

    def sdo(self, kind: str, oid: str, created: int, modified: int, tlp: str,
            **props: Any) -> dict[str, Any]:
        self.tlps.add(tlp)
        return {"type": kind, "spec_version": "2.1", "id": oid, "created_by_ref": self.org,
                "created": ts(created), "modified": ts(max(created, modified)), **props,
                "object_marking_refs": [TLP_IDS[tlp]]}

    def identities(self) -> None:
        tlp = self.recipient.policy.tlp
        self.tlps.add(tlp)
        self.add({"type": "identity", "spec_version": "2.1", "id": self.org, "created": _EPOCH,
                  "modified": _EPOCH, "name": self.cfg.organisation,
                  "identity_class": "organization", "sectors": [self.cfg.sector],
                  "object_marking_refs": [TLP_IDS[tlp]]})
        for site, p in self.sites.items():
            obj = self.sdo("identity", self.site_id(site), 0, 0, tlp, name=p.label or site,
                           identity_class="organization", sectors=[self.cfg.sector],
                           description=f"A site of {self.cfg.organisation}")
            self.add({**obj, "created": _EPOCH, "modified": _EPOCH})

    def site_id(self, site: str) -> str:
        return _id("identity", "site", self.cfg.organisation, site)

    def fixed(self) -> None:
        """The otsentry identity and the Modbus extension definition (the same for everyone)."""
        clear = [TLP_IDS["clear"]]
        self.add({"type": "identity", "spec_version": "2.1", "id": OTSENTRY_IDENTITY,
                  "created": _EPOCH, "modified": _EPOCH, "name": "otsentry",
                  "identity_class": "system", "object_marking_refs": clear})
        self.add({"type": "extension-definition", "spec_version": "2.1", "id": MODBUS_EXTENSION,
                  "created_by_ref": OTSENTRY_IDENTITY, "created": _EPOCH, "modified": _EPOCH,
                  "name": "Modbus/TCP transaction",
                  "description": "Modbus function code, unit id, register or coil addresses and "
                                 "values of the traffic a finding is about (otsentry docs/stix.md).",
                  "schema": "https://otsentry.invalid/docs/stix.md#the-modbus-extension",
                  "version": "1.0.0", "extension_types": ["property-extension"],
                  "object_marking_refs": clear})

    def attack_pattern(self, technique: str) -> str:
        return self.add({"type": "attack-pattern", "spec_version": "2.1",
                         "id": _id("attack-pattern", "ics-attack", technique),
                         "created": _EPOCH, "modified": _EPOCH,
                         "name": TECHNIQUES.get(technique, technique),
                         "external_references": [{"source_name": "mitre-ics-attack",
                                                  "external_id": technique,
                                                  "url": technique_url(technique)}],
                         "object_marking_refs": [TLP_IDS["clear"]]})

    def endpoint(self, site: str, ip: str) -> str:
        """The SCO of one side of a flow: the address, or a pseudonym when it is redacted."""
        red = self.red[site]
        if not red.on or is_global(ip):
            kind = "ipv6-addr" if ":" in ip else "ipv4-addr"
            return self.add(_sco(kind, value=ip))
        label = red.label(ip)
        slug = "-".join("".join(c if c.isalnum() else " " for c in label.lower()).split())
        return self.add(_sco("domain-name", value=f"{slug or 'host'}.redacted.invalid"))

    def finding(self, ff: FindingFacts) -> None:
        f, tlp = ff.finding, self.sites[ff.site].tlp
        od = self.observed(ff, tlp)
        for t in f.techniques:
            self.add(self.sdo(
                "sighting", _id("sighting", self.cfg.organisation, ff.agent_id, f.id, t),
                ff.first_ingest_ns, ff.updated_ns, tlp, sighting_of_ref=self.attack_pattern(t),
                where_sighted_refs=[self.site_id(ff.site)], observed_data_refs=[od],
                first_seen=ts(f.first_seen_ns), last_seen=ts(f.last_seen_ns),
                count=min(f.count, 999_999_999),
                description=self.red[ff.site].text(f.summary)))
        self.indicator(ff, tlp)
        if self.sites[ff.site].infrastructure:
            self.infrastructure(ff, tlp)

    def observed(self, ff: FindingFacts, tlp: str) -> str:
        f, ev = ff.finding, ff.finding.evidence
        refs = []
        if ev.flow is not None:
            src, dst = self.endpoint(ff.site, ev.flow.client_ip), self.endpoint(ff.site,
                                                                               ev.flow.server_ip)
            traffic = {"src_ref": src, "dst_ref": dst, "src_port": ev.flow.client_port,
                       "dst_port": ev.flow.server_port, "protocols": ["ipv4", "tcp", "mbap"],
                       "extensions": {MODBUS_EXTENSION: _modbus(f)}}
            if ":" in ev.flow.client_ip:
                traffic["protocols"] = ["ipv6", "tcp", "mbap"]
            refs = [self.add(_sco("network-traffic", **traffic)), src, dst]
        else:
            refs = [self.endpoint(ff.site, a.ip) for a in f.assets if a.ip][:8]
        if not refs:
            refs = [self.add(_sco("domain-name", value="host.redacted.invalid"))]
        return self.add(self.sdo(
            "observed-data", _id("observed-data", self.cfg.organisation, ff.agent_id, f.id),
            ff.first_ingest_ns, ff.updated_ns, tlp, first_observed=ts(f.first_seen_ns),
            last_observed=ts(f.last_seen_ns), number_observed=min(f.count, 999_999_999),
            object_refs=list(dict.fromkeys(refs))))

    def indicator(self, ff: FindingFacts, tlp: str) -> None:
        flow = ff.finding.evidence.flow
        ip = flow.client_ip if flow is not None else ""
        if not is_global(ip):
            return  # private addresses mean nothing to other members, and may not leave
        kind = "ipv6-addr" if ":" in ip else "ipv4-addr"
        oid = _id("indicator", self.cfg.organisation, ip)
        created = min([x.first_ingest_ns for x in self._from(ip)])
        modified = max([x.updated_ns for x in self._from(ip)])
        first = min([x.finding.first_seen_ns for x in self._from(ip)])
        self.add(self.sdo("indicator", oid, created, modified, tlp,
                          name=f"Modbus/TCP client {ip}", indicator_types=["malicious-activity"],
                          description=f"{ip} sent Modbus/TCP traffic to industrial control "
                                      f"systems that otsentry reported as an incident.",
                          pattern=f"[{kind}:value = '{ip}']", pattern_type="stix",
                          pattern_version="2.1", valid_from=ts(first)))
        for t in ff.finding.techniques:
            ap = self.attack_pattern(t)
            self.add(self.sdo("relationship", _id("relationship", oid, "indicates", ap),
                              created, created, tlp, relationship_type="indicates",
                              source_ref=oid, target_ref=ap))

    def _from(self, ip: str) -> list[FindingFacts]:
        return [x for x in self.inc.findings if x.finding.evidence.flow is not None
                and x.finding.evidence.flow.client_ip == ip and x.site in self.sites]

    def infrastructure(self, ff: FindingFacts, tlp: str) -> None:
        for a in ff.finding.assets:
            if a.role == "client" or not a.ip:
                continue
            info = self.inc.assets.get(ff.site, {}).get(a.ip, AssetInfo())
            key = info.asset_id or f"finding:{ff.ref}:{a.role}"
            oid = _id("infrastructure", self.cfg.organisation, ff.site, key)
            red = self.red[ff.site]
            self.add(self.sdo("infrastructure", oid, ff.first_ingest_ns, ff.first_ingest_ns, tlp,
                              name=red.name(a.ip, a.name or info.name),
                              infrastructure_types=["control-system"],
                              description=red.text(f"{info.role or a.role or 'device'} at "
                                                   f"{self.sites[ff.site].label or ff.site}")))
            self.add(self.sdo("relationship", _id("relationship", self.incident_id, "related-to",
                                                  oid),
                              ff.first_ingest_ns, ff.first_ingest_ns, tlp,
                              relationship_type="related-to", source_ref=self.incident_id,
                              target_ref=oid))

    @property
    def incident_id(self) -> str:
        return _id("incident", self.cfg.organisation, self.inc.id)

    def incident(self) -> str:
        inc = self.inc
        labels = ", ".join(p.label or s for s, p in self.sites.items())
        sev = str(Severity(inc.severity))
        return self.add(self.sdo(
            "incident", self.incident_id, inc.created_ns, max(inc.updated_ns, inc.declared_ns),
            self.top_tlp, name=self.top_red.text(inc.title),
            description=self.top_red.text(
                f"Severity {sev}, correlated by rule {inc.rule} at {labels}; first activity "
                f"{ts(inc.first_ns)}, latest {ts(inc.last_ns)}."),
            labels=[f"severity-{sev}", inc.rule]))

    def notes(self) -> None:
        for n in self.inc.notes:
            props: dict[str, Any] = {"abstract": self.top_red.text(n.text.splitlines()[0][:80]
                                                                    if n.text else ""),
                                     "content": self.top_red.text(n.text),
                                     "object_refs": [self.incident_id]}
            if not self.top_red.on and n.author:
                props["authors"] = [n.author]
            self.add(self.sdo("note", _id("note", self.cfg.organisation, self.inc.id, n.id),
                              n.created_ns, n.created_ns, self.top_tlp, **props))


def _modbus(f: Finding) -> dict[str, Any]:
    ev = f.evidence
    ext: dict[str, Any] = {"extension_type": "property-extension"}
    if ev.function_code is not None:
        ext["function_code"] = ev.function_code
    if ev.unit is not None:
        ext["unit_id"] = ev.unit
    if ev.addresses:
        ext["addresses"] = list(ev.addresses[:256])
    if ev.values:
        ext["values"] = list(ev.values[:256])
    return ext


def incident_objects(inc: IncidentFacts, recipient: Recipient, cfg: ReportingConfig, stage: str,
                     built_ns: int, due_ns: int = 0) -> list[dict[str, Any]]:
    """The STIX objects of ``stage``'s report of ``inc`` to ``recipient``; [] when policy withholds.

    Args:
        inc: the incident's facts.
        recipient: who receives it (its sharing policy per site applies).
        cfg: the reporting organisation.
        stage: one of :data:`otsentry.common.upstream_config.STAGES`, or ``"export"``.
        built_ns: now; the report's ``modified`` and ``published``.
        due_ns: the stage's deadline (0: none), named in the report's description.
    """
    sites = shared_sites(inc, recipient)
    kept = _kept(inc, sites)
    if not sites or (inc.findings and not kept):
        return []
    b = _Builder(inc, recipient, cfg, sites)
    b.fixed()
    b.identities()
    for ff in kept:
        b.finding(ff)
    incident = b.incident()
    b.notes()
    report = _report(b, incident, stage, built_ns, due_ns)
    markings = [tlp_marking(level) for level in TLP_IDS if level in b.tlps]
    return [*markings, *b.objects.values(), report]


def _report(b: _Builder, incident: str, stage: str, built_ns: int, due_ns: int) -> dict[str, Any]:
    inc = b.inc
    created = inc.declared_ns or inc.created_ns
    due = f" Due {ts(due_ns)}." if due_ns else ""
    return b.sdo("report", _id("report", b.cfg.organisation, inc.id), created, built_ns,
                 b.top_tlp, name=f"{_STAGE_TITLE[stage]}: {b.objects[incident]['name']}",
                 description=f"{_STAGE_TITLE[stage]} of an incident at "
                             f"{len(b.sites)} site(s) of {b.cfg.organisation}.{due}",
                 report_types=["threat-report"], published=ts(max(created, built_ns)),
                 labels=[f"nis2-{stage}"], object_refs=list(b.objects))


def make_bundle(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """A STIX 2.1 bundle of ``objects``; its id is a uuid5 of their ids and versions."""
    key = "|".join(f"{o['id']}@{o.get('modified', '')}" for o in objects)
    return {"type": "bundle", "id": f"bundle--{uuid.uuid5(_NS, key)}", "objects": objects}
