"""The inventory feeds the engine: asset names on findings, and identity changes as findings."""

from __future__ import annotations

from bench.scenarios.crafted import PLC, scenarios
from otsentry.agent.detect import Engine, detect_frames, with_inventory
from otsentry.agent.inventory import Inventory
from otsentry.agent.pipeline import Pipeline, PipelineConfig
from otsentry.common.finding import Severity


def _scenario(name: str):
    return next(s for s in scenarios() if s.name == name)


def test_a_firmware_revision_change_is_a_high_finding_naming_the_device():
    _engine, findings = detect_frames(_scenario("firmware-change").frames())
    changed = [f for f in findings if f.kind == "inventory.device-id-change"]
    assert len(changed) == 1
    f = changed[0]
    assert f.severity == Severity.HIGH
    assert set(f.techniques) == {"T0839", "T0857", "T0849"}
    assert dict(f.evidence.details) == {"field": "MajorMinorRevision", "old": "v3.10", "new": "v3.99"}
    assert f.evidence.unit == 1
    server = [a for a in f.assets if a.role == "server"]
    assert [a.ip for a in server] == [PLC]
    assert server[0].name == "Schneider Electric BMX P34 2020"
    assert "v3.10" in f.summary and "v3.99" in f.summary


def test_findings_about_a_named_device_carry_its_inventory_name():
    _engine, findings = detect_frames(_scenario("firmware-change").frames())
    reads = [f for f in findings if f.kind == "modbus.device-id"]
    assert reads, "the identity reads themselves are findings"
    # the second read happens after the inventory learnt the identity
    assert any(a.name == "Schneider Electric BMX P34 2020" for f in reads for a in f.assets
               if a.ip == PLC)


def test_without_an_inventory_nothing_is_named_and_no_identity_change_is_seen():
    engine = Engine()
    pipe = Pipeline([engine], PipelineConfig())
    for frame in _scenario("firmware-change").frames():
        pipe.feed(*frame)
    pipe.finish()
    engine.finish()
    kinds = {f.kind for f in engine.drain()}
    assert "modbus.device-id" in kinds and "inventory.device-id-change" not in kinds


def test_the_same_identity_read_twice_is_no_change():
    inv, engine = Inventory(), Engine()
    pipe = Pipeline(with_inventory(engine, inv), PipelineConfig())
    frames = _scenario("device-id-reads").frames()
    for frame in frames + [(ts + 60_000_000_000, lt, d) for ts, lt, d in frames]:
        pipe.feed(*frame)
    pipe.finish()
    engine.finish()
    assert "inventory.device-id-change" not in {f.kind for f in engine.drain()}
