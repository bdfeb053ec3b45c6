"""packaging/build-offline-bundle: a signed tarball that installs with no network at all.

The bundle is built once per run (wheels cached in build/offline-cache), then
installed by its own install.sh into a fresh virtualenv inside a network
namespace with no interfaces (``unshare -n``: pip has nowhere to reach), and
the installed agent decodes the sample capture exactly as the checkout does.
Tampering with anything signed makes install.sh refuse.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

REPO = Path(__file__).resolve().parents[2]
BUILDER = REPO / "packaging" / "build-offline-bundle"
SAMPLE = REPO / "samples" / "plant-small.pcap"


def _run(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False,
                          **kw)  # type: ignore[call-overload]


def _offline(argv: list[str]) -> list[str]:
    """``argv`` in a new network namespace with no interfaces (CI runs as root)."""
    if os.geteuid() != 0:
        pytest.fail("the offline install test needs root for unshare -n (CI runs as root)")
    return ["unshare", "--net", *argv]


@pytest.fixture(name="built", scope="module")
def _built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("bundle")
    res = _run([sys.executable, str(BUILDER), "--generate-key", str(tmp / "keys")])
    assert res.returncode == 0, res.stderr
    res = _run([sys.executable, str(BUILDER), "--signing-key", str(tmp / "keys/bundle.key"),
                "--out", str(tmp / "dist")])
    assert res.returncode == 0, res.stderr
    (tarball,) = (tmp / "dist").glob("otsentry-*-agent.tar.gz")
    with tarfile.open(tarball) as tf:
        tf.extractall(tmp / "x", filter="data")
    (tree,) = (tmp / "x").iterdir()
    return {"tmp": tmp, "tree": tree, "pub": tmp / "keys/bundle.pub", "tarball": tarball}


def test_installs_offline_and_decodes(built: dict[str, Path]) -> None:
    """install.sh verifies, installs with pip --no-index and no network; the agent runs."""
    tmp, tree = built["tmp"], built["tree"]
    prefix = tmp / "opt"
    res = _run(_offline([str(tree / "install.sh"), "--public-key", str(built["pub"]),
                         "--prefix", str(prefix), "--config-dir", str(tmp / "etc"),
                         "--unit-dir", str(tmp / "units"), "--no-users",
                         "--python", sys.executable]))
    assert res.returncode == 0, res.stderr
    assert "signature and" in res.stderr
    agent = prefix / "bin" / "otsentry-agent"
    assert _run(_offline([str(agent), "--help"])).returncode == 0
    got = _run(_offline([str(agent), "decode", str(SAMPLE)]))
    want = _run([str(Path(sys.executable).parent / "otsentry-agent"), "decode", str(SAMPLE)])
    assert got.returncode == 0 and got.stdout.count("\n") > 1000, got.stderr
    assert got.stdout == want.stdout
    # agent bundle: the agent's dependencies only, the units point into the prefix
    freeze = _run([str(prefix / "venv/bin/python"), "-m", "pip", "freeze"]).stdout.lower()
    assert "grpcio==" in freeze and "sqlalchemy" not in freeze
    unit = (tmp / "units" / "otsentry-agent.service").read_text()
    assert f"ExecStart={prefix}/venv/bin/otsentry-agent" in unit
    assert (tmp / "etc" / "agent.toml").read_text() == (
        REPO / "packaging" / "agent.toml").read_text()


def test_both_platforms_have_every_wheel(built: dict[str, Path]) -> None:
    """x86_64 and aarch64 get the same packages; binary wheels are for their machine."""
    tree = built["tree"]
    names = {}
    for arch in ("x86_64", "aarch64"):
        lines = (tree / f"requirements-linux-{arch}.txt").read_text().splitlines()
        names[arch] = {ln.split("==")[0] for ln in lines}
        for whl in (tree / "wheels" / f"linux-{arch}").iterdir():
            assert whl.name.endswith(("-none-any.whl", f"_{arch}.whl")), whl.name
    assert names["x86_64"] == names["aarch64"] >= {"otsentry", "grpcio", "protobuf"}
    meta = json.loads((tree / "BUNDLE.json").read_text())
    assert meta["platforms"] == ["linux-x86_64", "linux-aarch64"] and meta["left_out"] == {}


def test_sbom_is_valid_cyclonedx(built: dict[str, Path]) -> None:
    """sbom.cdx.json passes the CycloneDX 1.5 schema and lists every wheel with its hash."""
    tree = built["tree"]
    text = (tree / "sbom.cdx.json").read_text()
    assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(text) is None
    bom = json.loads(text)
    assert bom["metadata"]["component"]["purl"].startswith("pkg:pypi/otsentry@")
    files = {ref["url"]: ref["hashes"][0]["content"]
             for c in bom["components"] for ref in c["externalReferences"]}
    wheels = {p.relative_to(tree).as_posix() for p in (tree / "wheels").rglob("*.whl")
              if not p.name.startswith("otsentry-")}
    assert set(files) == wheels
    grpc = next(d for d in bom["dependencies"] if d["ref"].startswith("pkg:pypi/grpcio@"))
    assert any(r.startswith("pkg:pypi/typing-extensions@") for r in grpc["dependsOn"])


def _copy(built: dict[str, Path], name: str) -> Path:
    dst = built["tmp"] / name
    shutil.copytree(built["tree"], dst, symlinks=True)
    return dst


def _verify(tree: Path, pub: Path) -> subprocess.CompletedProcess[str]:
    return _run([str(tree / "install.sh"), "verify", "--public-key", str(pub)])


def test_verify_accepts_the_bundle_as_built(built: dict[str, Path]) -> None:
    """The untouched bundle verifies."""
    res = _verify(built["tree"], built["pub"])
    assert res.returncode == 0, res.stderr


def test_tampered_manifest_is_refused(built: dict[str, Path]) -> None:
    """A wheel swapped together with its line in the manifest breaks the signature."""
    tree = _copy(built, "tampered-manifest")
    whl = next((tree / "wheels" / "linux-x86_64").glob("structlog-*.whl"))
    old = subprocess.run(["sha256sum", whl.name], cwd=whl.parent, capture_output=True,
                         text=True, check=True).stdout.split()[0]
    whl.write_bytes(whl.read_bytes() + b"evil")
    new = subprocess.run(["sha256sum", whl.name], cwd=whl.parent, capture_output=True,
                         text=True, check=True).stdout.split()[0]
    manifest = tree / "MANIFEST.sha256"
    manifest.write_text(manifest.read_text().replace(old, new))
    res = _verify(tree, built["pub"])
    assert res.returncode != 0 and "signature of MANIFEST.sha256 does not match" in res.stderr


def test_tampered_file_is_refused(built: dict[str, Path]) -> None:
    """A changed file, or one added to the bundle, is refused under a valid signature."""
    tree = _copy(built, "tampered-file")
    (tree / "etc" / "agent.toml").write_text("[capture]\ninterface = \"eth0\"\n")
    res = _verify(tree, built["pub"])
    assert res.returncode != 0 and "files differ from the signed manifest" in res.stderr
    tree = _copy(built, "added-file")
    (tree / "wheels" / "linux-x86_64" / "extra-1.0-py3-none-any.whl").write_bytes(b"PK")
    res = _verify(tree, built["pub"])
    assert res.returncode != 0 and "not in the signed manifest" in res.stderr


def test_another_key_is_refused(built: dict[str, Path]) -> None:
    """A bundle checked against someone else's public key is refused."""
    other = built["tmp"] / "other"
    assert _run([sys.executable, str(BUILDER), "--generate-key", str(other)]).returncode == 0
    res = _verify(built["tree"], other / "bundle.pub")
    assert res.returncode != 0 and "signature" in res.stderr
