"""Registers the agent's sub-commands in :data:`otsentry.agent.cli.COMMANDS`.

Each command module exposes ``SUMMARY``, ``add_arguments(parser)`` and
``run(args) -> int``.  Adding a command is one line here.
"""

from __future__ import annotations

import importlib

from otsentry.agent.cli import COMMANDS

_MODULES = {
    "decode": "otsentry.agent.decode",
}

for _name, _module in _MODULES.items():
    _mod = importlib.import_module(_module)
    COMMANDS[_name] = (_mod.SUMMARY, _mod.add_arguments, _mod.run)
