"""The compiled decoder (mypyc) against the pure-Python one, which stays the oracle.

``./dev test`` builds the compiled tree (``python setup.py build_compiled``, a whole
package in ``build/compiled``) before the test run, runs the whole suite on pure
Python, then the decoder, inventory and detection tests again with
``PYTHONPATH=build/compiled``.  The differential tests here run the ``decode``
command under both builds on every shared capture and want identical
``--stats --json`` and JSON lines, and the ``inventory --json`` and ``detect --json``
commands on a few shared captures and want identical output; they build the tree
itself when it is missing or out of date, so plain pytest works too.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from otsentry.agent.decode import run_pipeline
from otsentry.agent.output import transaction_line, transaction_record
from otsentry.agent.pipeline import PipelineConfig
from tests.conftest import REPO, SHARED_PCAPS

COMPILED = Path(os.environ.get("OTSENTRY_COMPILED_DIR") or REPO / "build" / "compiled")
HOT = ("packet", "flows", "pipeline", "reassembly", "transactions", "stats", "output",
       "modbus._spec", "modbus._events", "modbus._pdu", "modbus._decoder",
       "inventory._inventory", "inventory._assets", "inventory._registers", "inventory._types",
       "inventory._cycles", "detect._engine", "detect._state", "detect._scans", "detect._rates",
       "detect._protocol", "detect._learned", "detect._process")
#: Shared captures the inventory and detect commands are compared on (pure against compiled).
SINK_CAPTURES = ("scada-one-master-13-slaves.pcap", "input-regs-poll-write-register.pcap",
                 "gateway-units-unanswered.pcap", "coil-poll-write-big.pcap",
                 "function-code-scan.pcap", "fuzzed-input-registers.pcap")

# Runs in a child process: decode every capture given, as the CLI does, both ways.
_DECODE_ALL = r"""
import contextlib, io, json, sys
import otsentry.agent.packet
from otsentry.agent.cli import main
out = {"packet_module": otsentry.agent.packet.__file__, "captures": {}}
for name in sys.argv[1:]:
    for args in (["--stats", "--json"], []):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            code = main(["--log-level", "error", "decode", name, *args])
        out["captures"][f"{name} {' '.join(args) or '(JSON lines)'}"] = [code, buf.getvalue()]
json.dump(out, sys.stdout)
"""


def _running_compiled() -> bool:
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    return COMPILED.resolve() in {(REPO / p).resolve() for p in paths if p}


@pytest.fixture(scope="module", name="compiled_tree")
def _compiled_tree() -> Path:
    """The compiled package tree, built (or found up to date) by setup.py."""
    if not _running_compiled():
        proc = subprocess.run([sys.executable, "setup.py", "-q", "build_compiled",
                               "--build-dir", str(COMPILED)], cwd=REPO, capture_output=True,
                              text=True, check=False)
        assert proc.returncode == 0, f"the decoder did not compile:\n{proc.stderr[-4000:]}"
    assert list((COMPILED / "otsentry" / "agent").glob("packet.*.so")), COMPILED
    return COMPILED


def _decode_all(pythonpath: str) -> dict:
    env = {**os.environ, "PYTHONPATH": pythonpath, "PYTHONHASHSEED": "0", "TZ": "UTC"}
    captures = [str(p) for p in sorted(SHARED_PCAPS.glob("*.pcap*"))]
    proc = subprocess.run([sys.executable, "-c", _DECODE_ALL, *captures], env=env, cwd=REPO,
                          capture_output=True, text=True, check=False, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout)


def test_compiled_and_pure_decode_every_capture_alike(compiled_tree: Path) -> None:
    """decode --stats --json and decode's JSON lines are identical, byte for byte."""
    pure = _decode_all("")
    compiled = _decode_all(str(compiled_tree))
    assert pure["packet_module"].endswith(".py"), pure["packet_module"]
    assert compiled["packet_module"].endswith(".so"), compiled["packet_module"]
    assert len(pure["captures"]) >= 2 * 12
    assert pure["captures"].keys() == compiled["captures"].keys()
    for key, (code, text) in pure["captures"].items():
        assert compiled["captures"][key][0] == code, key
        assert compiled["captures"][key][1] == text, f"compiled and pure differ: {key}"


# Runs in a child process: the inventory and detect commands' JSON, as the CLI prints them.
_SINKS_ALL = r"""
import contextlib, io, json, re, sys
import otsentry.agent.inventory._inventory, otsentry.agent.detect._engine
from otsentry.agent.cli import main
out = {"modules": [otsentry.agent.inventory._inventory.__file__,
                   otsentry.agent.detect._engine.__file__], "captures": {}}
for name in sys.argv[1:]:
    for args in (["inventory", name, "--json"], ["detect", name, "--json"],
                 ["detect", name, "--json", "--learn", "20s"]):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            code = main(["--log-level", "error", *args])
        # the agent time of a revision is the wall clock when replaying: not compared
        text = re.sub(r'"agent_time":"[^"]*"', '"agent_time":"-"', buf.getvalue())
        out["captures"][" ".join(args)] = [code, text]
json.dump(out, sys.stdout)
"""


def _sinks_all(pythonpath: str) -> dict:
    env = {**os.environ, "PYTHONPATH": pythonpath, "PYTHONHASHSEED": "0", "TZ": "UTC"}
    captures = [str(SHARED_PCAPS / name) for name in SINK_CAPTURES]
    proc = subprocess.run([sys.executable, "-c", _SINKS_ALL, *captures], env=env, cwd=REPO,
                          capture_output=True, text=True, check=False, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout)


def test_compiled_and_pure_inventory_and_detect_alike(compiled_tree: Path) -> None:
    """inventory --json and detect --json (plain and learning) are identical, byte for byte."""
    pure = _sinks_all("")
    compiled = _sinks_all(str(compiled_tree))
    assert all(m.endswith(".py") for m in pure["modules"]), pure["modules"]
    assert all(m.endswith(".so") for m in compiled["modules"]), compiled["modules"]
    assert pure["captures"].keys() == compiled["captures"].keys()
    assert sum(text.count("\n") for _code, text in pure["captures"].values()) > 100
    for key, (code, text) in pure["captures"].items():
        assert compiled["captures"][key][0] == code, key
        assert compiled["captures"][key][1] == text, f"compiled and pure differ: {key}"


def test_this_run_uses_the_build_it_names() -> None:
    """Under PYTHONPATH=build/compiled every hot module is the compiled one, else none is."""
    compiled = _running_compiled()
    for name in HOT:
        module = importlib.import_module(f"otsentry.agent.{name}")
        assert str(module.__file__).endswith(".so" if compiled else ".py"), module.__file__


@pytest.mark.parametrize("name", sorted(p.name for p in SHARED_PCAPS.glob("*.pcap")))
def test_json_line_is_the_transaction_record(name: str) -> None:
    """The writer's fast line for each transaction encodes exactly transaction_record()."""
    txs: list = []
    run_pipeline(str(SHARED_PCAPS / name), [lambda _f, _e, t: txs.extend(t)],
                 PipelineConfig(heuristic=False), "never")
    assert txs
    for tx in txs:
        want = json.dumps(transaction_record(tx), separators=(",", ":"), ensure_ascii=False)
        assert transaction_line(tx) == want
