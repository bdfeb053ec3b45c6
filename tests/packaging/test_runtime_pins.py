"""pyproject.toml requires at least the protobuf and grpcio versions the generated code checks.

``*_pb2.py`` call ``ValidateProtobufRuntimeVersion(PUBLIC, major, minor, patch)``
at import and refuse an older runtime; ``*_pb2_grpc.py`` refuse a grpcio older
than ``GRPC_GENERATED_VERSION``.  A pin below those lets pip install a set that
fails at the first import on the plant's box.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
V1 = REPO / "protos" / "otsentry" / "v1"
_PB = re.compile(r"ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,"
                 r"\s*(\d+),\s*(\d+),\s*(\d+),\s*'([^']*)'")
_GRPC = re.compile(r"^GRPC_GENERATED_VERSION = '([\d.]+)'$", re.M)


def _requirements(extra: str | None = None) -> dict[str, Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    return {(r := Requirement(text)).name.lower(): r for text in reqs}


def generated_protobuf() -> set[Version]:
    """The protobuf versions the generated modules check for."""
    found = set()
    for path in sorted(V1.glob("*_pb2.py")):
        m = _PB.search(path.read_text())
        assert m, f"{path.name}: no runtime version check"
        found.add(Version(".".join(m.group(1, 2, 3)) + m.group(4)))
    return found


def generated_grpc() -> set[Version]:
    """The grpcio versions the generated service modules check for."""
    found = set()
    for path in sorted(V1.glob("*_pb2_grpc.py")):
        m = _GRPC.search(path.read_text())
        assert m, f"{path.name}: no GRPC_GENERATED_VERSION"
        found.add(Version(m.group(1)))
    return found


def test_protobuf_pin_matches_the_generated_code() -> None:
    """protobuf's lower bound is the gencode version; the bound stops below the next major."""
    (gen,) = generated_protobuf()  # one protoc made them all
    spec = _requirements()["protobuf"].specifier
    assert [Version(s.version) for s in spec if s.operator == ">="] == [gen], str(spec)
    assert not spec.contains(Version(f"{gen.major + 1}.0.0")), str(spec)


def test_grpc_pins_match_the_generated_code() -> None:
    """grpcio and grpcio-health-checking start at GRPC_GENERATED_VERSION; the generator is that one."""
    (gen,) = generated_grpc()
    deps = _requirements()
    for name in ("grpcio", "grpcio-health-checking"):
        bounds = [Version(s.version) for s in deps[name].specifier if s.operator == ">="]
        assert bounds == [gen], f"{name}: {deps[name].specifier}, generated code needs >={gen}"
    tools = _requirements("test")["grpcio-tools"].specifier
    assert str(tools) == f"=={gen}"


def test_the_check_reads_real_versions() -> None:
    """Every generated module was read (a file without a check would be a silent pass)."""
    assert len(generated_protobuf()) == 1 and len(list(V1.glob("*_pb2.py"))) >= 6
    assert len(list(V1.glob("*_pb2_grpc.py"))) >= 3 and generated_grpc()
