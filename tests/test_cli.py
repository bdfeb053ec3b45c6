"""The command-line entry points start and explain themselves."""

from __future__ import annotations

import subprocess
import sys

import pytest

from otsentry import __version__


@pytest.mark.parametrize("prog", ["otsentry.agent.cli", "otsentry.collector.cli"])
def test_help_exits_zero_and_explains(prog: str) -> None:
    """--help prints a description an operator can read, and exits 0."""
    out = subprocess.run([sys.executable, "-m", prog, "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert "usage:" in out
    assert "otsentry" in out


@pytest.mark.parametrize("prog", ["otsentry.agent.cli", "otsentry.collector.cli"])
def test_version(prog: str) -> None:
    """--version names the release."""
    out = subprocess.run([sys.executable, "-m", prog, "--version"], capture_output=True,
                         text=True, check=True).stdout
    assert __version__ in out
