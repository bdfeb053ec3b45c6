"""Tests of the otsentry.v1 contract: generated code is current, conversions round-trip."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from otsentry.common.errors import MessageError
from otsentry.common.finding import Finding, Severity
from otsentry.v1 import convert, finding_pb2, ingest_pb2
from tests.common.strategies import findings

REPO = Path(__file__).resolve().parents[2]


def _regen():  # protos/regen.py is a script, not part of the import package
    spec = importlib.util.spec_from_file_location("otsentry_regen", REPO / "protos" / "regen.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


class TestGeneratedCode:
    def test_current(self) -> None:
        """The committed generated code equals a fresh generation from the .proto files."""
        assert _regen().stale() == [], "run: python protos/regen.py"

    def test_detects_stale(self, tmp_path: Path) -> None:
        """A changed .proto makes the check fail, so the test above can catch drift."""
        regen = _regen()
        root = tmp_path / "protos"
        (root / "otsentry" / "v1").mkdir(parents=True)
        for p in (REPO / "protos" / "otsentry" / "v1").iterdir():
            if p.is_file():
                (root / "otsentry" / "v1" / p.name).write_bytes(p.read_bytes())
        ack = root / "otsentry" / "v1" / "ingest.proto"
        ack.write_text(ack.read_text().replace("int64 ingest_ns = 3;", "int64 ingest_ns = 3;\n  bool x = 4;"))
        assert "otsentry/v1/ingest_pb2.py" in regen.stale(root)

    def test_imports_as_package(self) -> None:
        """Generated modules import each other as otsentry.v1, the installed package."""
        text = (REPO / "protos" / "otsentry" / "v1" / "ingest_pb2.py").read_text()
        assert "from otsentry.v1 import finding_pb2" in text
        assert ingest_pb2.DESCRIPTOR.package == "otsentry.v1"


class TestSeverity:
    @pytest.mark.parametrize("sev", list(Severity))
    def test_round_trip(self, sev: Severity) -> None:
        """Every severity maps to a named wire value and back."""
        wire = convert.severity_to_proto(sev)
        assert finding_pb2.Severity.Name(wire) == f"SEVERITY_{sev.name}"
        assert convert.severity_from_proto(wire) is sev

    def test_unspecified(self) -> None:
        """An unspecified severity on the wire is refused."""
        with pytest.raises(MessageError, match="severity"):
            convert.severity_from_proto(0)


class TestFinding:
    @given(findings())
    def test_round_trip(self, f: Finding) -> None:
        """model -> proto -> bytes -> proto -> model gives the same finding."""
        data = convert.finding_to_proto(f).SerializeToString()
        assert convert.finding_from_proto(convert.parse(finding_pb2.Finding, data)) == f

    @given(st.binary(max_size=300))
    def test_garbage_only_message_error(self, data: bytes) -> None:
        """Random bytes give a finding or a MessageError, never another exception."""
        try:
            convert.finding_from_proto(convert.parse(finding_pb2.Finding, data))
        except MessageError:
            pass

    @pytest.mark.parametrize("field,value", [("revision", 0), ("count", 0), ("id", "")])
    def test_invalid_refused(self, field: str, value: object) -> None:
        """A wire finding that breaks the model is refused with the field named."""
        msg = finding_pb2.Finding(id="a", revision=1, count=1, severity=3)
        setattr(msg, field, value)
        with pytest.raises(MessageError, match="finding"):
            convert.finding_from_proto(msg)

    def test_oversized_pcap(self) -> None:
        """An oversized pcap slice is refused as evidence."""
        msg = finding_pb2.Finding(id="a", revision=1, count=1, severity=3)
        msg.evidence.pcap = b"\0" * (1 << 20)
        with pytest.raises(MessageError, match="finding.evidence"):
            convert.finding_from_proto(msg)
