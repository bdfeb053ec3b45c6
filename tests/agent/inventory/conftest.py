"""Fixtures of the inventory tests: read captures through the real pipeline, ask tshark."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from otsentry.agent.decode import run_pipeline
from otsentry.agent.inventory import Inventory
from otsentry.agent.pipeline import Pipeline, PipelineConfig


def read_captures(inv: Inventory, paths: Iterable[Path], config: PipelineConfig | None = None) -> None:
    """Run each capture through its own pipeline into ``inv``, one after another."""
    for path in paths:
        _pipe, error = run_pipeline(str(path), [inv], config or PipelineConfig(), "never")
        assert error is None, error


def feed_frames(inv: Inventory, frames: Iterable[tuple[int, bytes]], ports: tuple[int, ...] = (502,)) -> None:
    """Feed Ethernet frames ``(ts_ns, bytes)`` through a real pipeline into ``inv``."""
    pipe = Pipeline([inv], PipelineConfig(ports=ports))
    for ts, frame in frames:
        pipe.feed(ts, 1, frame)
    pipe.finish()


def tshark_fields(path: Path, fields: list[str], display_filter: str = "mbtcp") -> list[list[str]]:
    """Rows of tshark ``-T fields`` output (every occurrence, comma-separated) for a capture."""
    cmd = ["tshark", "-r", str(path), "-Y", display_filter, "-T", "fields", "-E", "occurrence=a",
           "-E", "aggregator=,", "-E", "separator=\t"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


@pytest.fixture(name="read")
def _read() -> Callable[..., Inventory]:
    """Build an inventory from captures: ``read(path, ...)``."""

    def read(*paths: Path, **kw: object) -> Inventory:
        inv = Inventory(**kw)  # type: ignore[arg-type]
        read_captures(inv, paths)
        return inv

    return read
