"""The demo behind ``./dev demo``: the agent's main jobs on a capture that ships with the project.

It decodes the sample capture (``samples/plant-small.pcap``, one minute of a
small plant's Modbus/TCP traffic made by our generator), prints the figures and
a few transactions, the asset inventory, and what detection finds after
learning the first 30 seconds.  Every step runs the real ``otsentry-agent``
commands, exactly as an operator would type them.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path

from otsentry.agent.cli import main as agent_main

DEFAULT_CAPTURE = Path(__file__).resolve().parent.parent / "samples" / "plant-small.pcap"


def _section(title: str, command: str) -> None:
    print(f"\n=== {title}\n$ {command}\n", flush=True)


def _run(args: list[str]) -> int:
    rc = agent_main(["--log-level", "warning", *args])
    sys.stdout.flush()
    return rc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="otsentry demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--capture", type=Path, default=DEFAULT_CAPTURE,
                    help="capture to run the demo on (default: the shipped sample)")
    args = ap.parse_args(argv)
    cap = str(args.capture)
    if not args.capture.is_file():
        print(f"demo: capture not found: {cap}", file=sys.stderr)
        return 1
    failures = 0
    _section("Decode: what Modbus is on the wire", f"otsentry-agent decode {cap} --stats")
    failures += _run(["decode", cap, "--stats"]) != 0
    _section("Decode: the first transactions as JSON lines",
             f"otsentry-agent decode {cap} | head -3")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        failures += _run(["decode", cap, "--progress", "never"]) != 0
    for line in buf.getvalue().splitlines()[:3]:
        print(json.dumps(json.loads(line), indent=None))
    _section("Inventory: who is on the network", f"otsentry-agent inventory {cap}")
    failures += _run(["inventory", cap]) != 0
    _section("Detection: learn the first 30 s, then protect",
             f"otsentry-agent detect {cap} --learn 30s --min-severity medium")
    failures += _run(["detect", cap, "--learn", "30s", "--min-severity", "medium"]) != 0
    print("\nDemo finished." if not failures else f"\nDemo finished with {failures} failed step(s).")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
