"""The agent's sub-commands: :data:`COMMANDS` maps a name to its module's parts.

Each command module exposes ``SUMMARY``, ``add_arguments(parser)`` and
``run(args) -> int``.  Adding a command is one line here.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable

#: name -> (summary, add_arguments(parser), run(args) -> exit code)
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None],
                          Callable[[argparse.Namespace], int]]] = {}

_MODULES = {
    "enroll": "otsentry.agent.enroll",
    "decode": "otsentry.agent.decode",
    "detect": "otsentry.agent.detect_cmd",
    "learn": "otsentry.agent.learn_cmd",
    "inventory": "otsentry.agent.inventory_cmd",
    "run": "otsentry.agent.run_cmd",
    "status": "otsentry.agent.status_cmd",
    "export": "otsentry.agent.export",
}

for _name, _module in _MODULES.items():
    _mod = importlib.import_module(_module)
    COMMANDS[_name] = (_mod.SUMMARY, _mod.add_arguments, _mod.run)
