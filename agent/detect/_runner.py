"""Run frames or a capture file through the pipeline and the engine, in one call."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from otsentry.agent.detect._config import DetectConfig
from otsentry.agent.detect._engine import Engine
from otsentry.agent.pipeline import Pipeline, PipelineConfig
from otsentry.common.finding import Finding, merge_all

__all__ = ["detect_frames", "detect_file", "with_inventory", "RING_FRAMES"]

#: Raw frames kept per flow for evidence pcap slices.
RING_FRAMES = 64


def with_inventory(engine: Engine, inventory: Any) -> list[Any]:
    """The pipeline's sinks for an inventory and an engine, wired to each other.

    Findings then name their assets as the inventory knows them, and the
    inventory's identity changes (FC43/14, FC17, TLS certificate) reach the engine.
    The inventory runs first, so the engine sees this packet's changes.
    """
    engine.asset_name = inventory.asset_name
    inventory.listeners.append(engine.inventory_change)
    return [inventory, engine]


def detect_frames(frames: Iterable[tuple[int, int, bytes]], config: DetectConfig | None = None,
                  baseline: Any = None, learn_ns: int | None = None,
                  pipeline_config: PipelineConfig | None = None) -> tuple[Engine, list[Finding]]:
    """Detect on ``(ts_ns, linktype, frame)`` tuples.

    Returns:
        The engine (for its counters and, after learning, ``engine.baseline``) and the
        final revision of every finding, ordered by first occurrence.
    """
    from otsentry.agent.inventory import Inventory

    engine = Engine(config, baseline=baseline, learn_ns=learn_ns)
    pipe = Pipeline(with_inventory(engine, Inventory()),
                    pipeline_config or PipelineConfig(ring_frames=RING_FRAMES))
    revisions: list[Finding] = []
    feed = pipe.feed
    for ts, linktype, data in frames:
        feed(ts, linktype, data)
    pipe.finish()
    engine.finish()
    revisions.extend(engine.drain())
    final = sorted(merge_all(revisions).values(), key=lambda f: (f.first_seen_ns, f.kind, f.id))
    return engine, final


def detect_file(path: str, **kwargs: Any) -> tuple[Engine, list[Finding]]:
    """:func:`detect_frames` on a capture file (pcap, pcapng, gzip'd or not)."""
    from otsentry.agent.source import open_source

    src = open_source(path)
    try:
        return detect_frames(iter(src), **kwargs)
    finally:
        src.close()
