"""Package discovery for the customer-fixed layout, and the optional compiled decoder.

The import package ``otsentry`` is spread over four top-level folders
(``agent/``, ``collector/``, ``common/`` and the generated ``protos/otsentry/v1``);
setuptools cannot discover that layout from pyproject.toml alone, so the package
list is computed here by walking the folders.

Compiled build (optional): with ``OTSENTRY_COMPILE=1`` the agent's hot modules
(:data:`COMPILED`) are also compiled with mypyc from the same typed source, e.g.

    OTSENTRY_COMPILE=1 pip install --no-build-isolation .   # with mypy in the environment
    python setup.py -q build_compiled      # ./dev: a whole package tree in build/compiled,
                                           # used with PYTHONPATH=build/compiled

The pure-Python modules are always installed next to the compiled ones and stay
the reference: when mypy/mypyc or a C compiler is missing, or compilation fails,
the build says so in one line and installs pure Python only.
"""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Command, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent
ROOTS = {
    "otsentry.agent": "agent",
    "otsentry.collector": "collector",
    "otsentry.common": "common",
    "otsentry.v1": "protos/otsentry/v1",
}
#: The hot path compiled by mypyc (paths relative to the repository).
COMPILED = [
    "agent/packet.py", "agent/flows.py", "agent/pipeline.py", "agent/reassembly.py",
    "agent/transactions.py", "agent/stats.py", "agent/output.py",
    "agent/modbus/_spec.py", "agent/modbus/_events.py", "agent/modbus/_pdu.py",
    "agent/modbus/_decoder.py",
    # the sinks that run per transaction: inventory and detection
    "agent/inventory/_inventory.py", "agent/inventory/_assets.py",
    "agent/inventory/_registers.py", "agent/inventory/_types.py", "agent/inventory/_cycles.py",
    "agent/detect/_engine.py", "agent/detect/_family.py", "agent/detect/_state.py",
    "agent/detect/_aggregate.py", "agent/detect/_writes.py", "agent/detect/_scans.py",
    "agent/detect/_rates.py", "agent/detect/_protocol.py", "agent/detect/_functions.py",
    "agent/detect/_fc8.py", "agent/detect/_recon.py", "agent/detect/_umas.py",
    "agent/detect/_policy.py", "agent/detect/_l2.py", "agent/detect/_learned.py",
    "agent/detect/_process.py", "agent/detect/_learner.py", "agent/detect/_identity.py",
    "agent/detect/_baseline.py",
]
#: Where the sources are staged under their import names (mypyc names modules by path).
STAGE = Path("build", "mypyc-src")


def _packages() -> tuple[list[str], dict[str, str]]:
    packages, package_dir = ["otsentry"], {"otsentry": "protos/otsentry"}
    for name, folder in ROOTS.items():
        for init in sorted((HERE / folder).rglob("__init__.py")):
            rel = init.parent.relative_to(HERE / folder)
            sub = ".".join((name, *rel.parts)) if rel.parts else name
            packages.append(sub)
            package_dir[sub] = str(Path(folder, *rel.parts))
    return packages, package_dir


def _say(msg: str) -> None:
    print(f"otsentry: {msg}", file=sys.stderr, flush=True)


def _stage() -> list[str]:
    """Copy the agent and common sources to ``STAGE/otsentry/...``; return the hot paths there."""
    root = HERE / STAGE
    shutil.rmtree(root, ignore_errors=True)
    (root / "otsentry").mkdir(parents=True)
    shutil.copy2(HERE / "protos/otsentry/__init__.py", root / "otsentry/__init__.py")
    for folder in ("agent", "common"):
        shutil.copytree(HERE / folder, root / "otsentry" / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyc"))
    return [str(STAGE / "otsentry" / p) for p in COMPILED]


def _ext_modules() -> list:
    if os.environ.get("OTSENTRY_COMPILE", "").lower() not in ("1", "true", "yes"):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        _say("OTSENTRY_COMPILE is set but mypy (mypyc) is not installed: pure Python only")
        return []
    try:
        return mypycify(_stage(), opt_level="3", multi_file=True, group_name="otsentry_agent",
                        target_dir=str(Path("build", "mypyc-c")))
    except (SystemExit, Exception) as exc:  # type errors, or mypyc itself failing
        _say(f"mypyc could not compile the decoder ({exc}): pure Python only")
        return []


class OptionalBuildExt(build_ext):
    """Build the compiled modules if possible; otherwise keep the pure-Python install."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler, no Python headers, a compile error
            for ext in self.extensions:
                for path in (self.get_ext_fullpath(ext.name),):
                    Path(path).unlink(missing_ok=True)
            _say(f"compiling the decoder failed ({exc}): pure Python only")
            return
        if self.extensions:
            _say(f"compiled {len(self.extensions) - 1} modules with mypyc")


class BuildCompiled(Command):
    """Build the package with the compiled decoder into one folder (rebuilt when sources change).

    The folder holds the whole ``otsentry`` tree, so ``PYTHONPATH=<folder>`` runs the
    compiled build while the checkout itself stays pure Python.  Exits non-zero when
    the modules could not be compiled.
    """

    description = "build otsentry with the mypyc-compiled decoder into build/compiled"
    user_options = [("build-dir=", "d", "where to build (default build/compiled)")]

    def initialize_options(self) -> None:
        self.build_dir = str(Path("build", "compiled"))

    def finalize_options(self) -> None:
        pass

    def run(self) -> None:
        out = HERE / self.build_dir
        digest = hashlib.sha256(sys.version.encode())
        for path in [HERE / "setup.py", HERE / "pyproject.toml",
                     *sorted(p for folder in ("agent", "common") for p in (HERE / folder).rglob("*")
                             if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".so")]:
            digest.update(str(path.relative_to(HERE)).encode() + b"\0" + path.read_bytes())
        stamp = out / ".stamp"
        if stamp.exists() and stamp.read_text() == digest.hexdigest():
            _say(f"compiled build in {self.build_dir} is up to date")
            return
        shutil.rmtree(out, ignore_errors=True)
        _say(f"compiling the decoder with mypyc into {self.build_dir}")
        proc = subprocess.run([sys.executable, "setup.py", "-q", "build", "--build-lib", str(out),
                               "--build-temp", str(Path("build", "temp-compiled"))],
                              cwd=HERE, env={**os.environ, "OTSENTRY_COMPILE": "1"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              check=False)
        if not list((out / "otsentry" / "agent").glob("packet.*.so")):
            sys.stderr.write("".join(proc.stderr.splitlines(keepends=True)[-40:]))
            raise SystemExit("otsentry: no compiled build (see above)")
        for line in proc.stderr.splitlines():
            if line.startswith("otsentry:"):
                print(line, file=sys.stderr)
        stamp.write_text(digest.hexdigest())


PACKAGES, PACKAGE_DIR = _packages()

setup(
    packages=PACKAGES,
    package_dir=PACKAGE_DIR,
    package_data={"": ["*.proto", "*.toml", "*.json", "*.csv", "*.html", "*.css", "*.js", "*.gz",
                       "py.typed"]},
    include_package_data=True,
    ext_modules=_ext_modules(),
    cmdclass={"build_ext": OptionalBuildExt, "build_compiled": BuildCompiled},
)
