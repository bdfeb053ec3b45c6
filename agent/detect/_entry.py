"""Catalogue entries: what a detector is called, how bad it is, which ATT&CK ids it maps to.

An :class:`Entry` is pure data.  Each detector family module declares its
entries next to its code; :mod:`.catalogue` gathers them into one table and
renders ``docs/detections.md`` from it, so the documentation and the code
never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from otsentry.common.attack import TECHNIQUES
from otsentry.common.finding import Severity

__all__ = ["Entry", "Knob", "TECHNIQUES", "TECHNIQUE_ALIASES", "CONTEXTS"]

#: Old technique id -> current id, for techniques MITRE revoked or renumbered.  Empty in
#: v18.1 (no technique is revoked); findings always carry the current id.
TECHNIQUE_ALIASES: Final[dict[str, str]] = {}

#: The contexts a hit can be seen in, and what they mean (see ``Entry.context``).
CONTEXTS: Final[dict[str, str]] = {
    "learned-master": "the client polls this server in the baseline; while learning, any "
                      "client (what is seen then becomes the baseline); without a baseline, "
                      "the client was seen polling this server before",
    "new-host": "the client is in no baseline and was first seen less than a minute earlier",
}


@dataclass(frozen=True, slots=True)
class Knob:
    """One tunable of a detector: its default and what it changes."""

    default: object
    doc: str


@dataclass(frozen=True, slots=True)
class Entry:
    """One detector in the catalogue.

    Attributes:
        id: stable detector id, also the finding ``kind`` (``family.name``).
        name: short title for people.
        severity: default severity.
        techniques: ATT&CK for ICS technique ids (current ids; see :data:`TECHNIQUES`).
        description: what it detects and why it matters, in plain words.
        knobs: name -> :class:`Knob`; set in the config under ``[detect.knobs."<id>"]``.
        context: severity to use instead of the default in a context of :data:`CONTEXTS`.
        escalate_at: a finding aggregating this many occurrences rises one severity step.
        needs_baseline: fires only when protecting against a learned baseline.
    """

    id: str
    name: str
    severity: Severity
    techniques: tuple[str, ...]
    description: str
    knobs: dict[str, Knob] = field(default_factory=dict)
    context: dict[str, Severity] = field(default_factory=dict)
    escalate_at: int | None = None
    needs_baseline: bool = False
