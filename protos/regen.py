"""Regenerate the Python code of the otsentry.v1 contract from the .proto files.

Usage (from the repository root)::

    python protos/regen.py            # rewrite protos/otsentry/v1/*_pb2*.py(i)
    python protos/regen.py --check    # exit 1 if the committed files are stale
    python protos/regen.py --out DIR  # generate into DIR (DIR/otsentry/v1/...)

The protos are compiled with ``protos/`` as the only import root, so the
generated modules import each other as ``otsentry.v1.x_pb2``, which is the
installed import package: no import rewriting is needed.  The exact
grpcio-tools version is pinned in pyproject.toml's ``test`` extra because the
generated files carry the protoc and grpcio versions that made them.
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
PACKAGE = Path("otsentry", "v1")
SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def proto_files(root: Path = ROOT) -> list[Path]:
    """The contract's .proto files, relative to the import root."""
    return sorted(p.relative_to(root) for p in (root / PACKAGE).glob("*.proto"))


def generate(out: Path, root: Path = ROOT) -> list[Path]:
    """Compile every proto into ``out``; return the generated files relative to ``out``."""
    from grpc_tools import protoc  # build-time only: grpcio-tools is a test dependency

    import importlib.resources as res

    include = str(res.files("grpc_tools") / "_proto")
    (out / PACKAGE).mkdir(parents=True, exist_ok=True)
    args = ["protoc", f"-I{root}", f"-I{include}", f"--python_out={out}", f"--pyi_out={out}",
            f"--grpc_python_out={out}", *(str(p) for p in proto_files(root))]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed; see the messages above")
    for stub in (out / PACKAGE).glob("*_pb2_grpc.py"):
        if "class " not in stub.read_text():  # a proto without services: nothing to keep
            stub.unlink()
    return sorted(p.relative_to(out) for p in (out / PACKAGE).iterdir() if p.name.endswith(SUFFIXES))


def stale(root: Path = ROOT) -> list[str]:
    """Names of generated files that differ from a fresh generation (empty if current)."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = set(generate(Path(tmp), root))
        committed = {p.relative_to(root) for p in (root / PACKAGE).iterdir()
                     if p.name.endswith(SUFFIXES)}
        bad = [str(p) for p in sorted(fresh ^ committed)]
        bad += [str(p) for p in sorted(fresh & committed)
                if not filecmp.cmp(Path(tmp) / p, root / p, shallow=False)]
    return bad


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(description="Regenerate the otsentry.v1 Python code.")
    parser.add_argument("--check", action="store_true", help="only check that it is current")
    parser.add_argument("--out", type=Path, default=ROOT, help="output root (default: protos/)")
    args = parser.parse_args(argv)
    if args.check:
        bad = stale()
        for name in bad:
            print(f"stale: {name} (run: python protos/regen.py)", file=sys.stderr)
        return 1 if bad else 0
    for path in generate(args.out):
        print(args.out / path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
