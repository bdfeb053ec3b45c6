"""The detector registry: every family, in the order the engine runs them.

Adding a detector family is one line here (and its module); nothing else in
the engine changes.
"""

from __future__ import annotations

from typing import Final

from otsentry.agent.detect._entry import Entry
from otsentry.agent.detect._fc8 import Diagnostics
from otsentry.agent.detect._family import Family
from otsentry.agent.detect._functions import Functions
from otsentry.agent.detect._identity import Identity
from otsentry.agent.detect._l2 import MacChange
from otsentry.agent.detect._learned import Learned
from otsentry.agent.detect._policy import WritePolicy
from otsentry.agent.detect._process import ProcessValues
from otsentry.agent.detect._protocol import Protocol
from otsentry.agent.detect._rates import Rates
from otsentry.agent.detect._recon import Recon
from otsentry.agent.detect._scans import Scans
from otsentry.agent.detect._umas import Umas
from otsentry.common.finding import Severity

__all__ = ["FAMILIES", "ENGINE_ENTRIES", "catalogue"]

FAMILIES: Final[tuple[type[Family], ...]] = (
    Diagnostics, Recon, Umas, Functions, WritePolicy, Protocol, MacChange, Scans, Rates,
    Learned, ProcessValues, Identity,
)

#: Findings the engine itself makes about its own losses (DESIGN principle 4).
ENGINE_ENTRIES: Final = (
    Entry("detect.rate-limited", "Findings rate limited", Severity.LOW, (),
          "A detector opened more new findings than [detect] max_new_per_window allows within "
          "one window; the rest were counted here instead of reported one by one."),
    Entry("detect.state-evicted", "Detector memory full", Severity.LOW, (),
          "A detector's per-key table was full (a scan or flood of new addresses can do this): "
          "the oldest keys were dropped and counted. Raise [detect] max_keys if this is normal "
          "for the plant."),
)


def catalogue() -> dict[str, Entry]:
    """Every detector entry by id, in registry order."""
    out: dict[str, Entry] = {}
    for entry in (e for fam in FAMILIES for e in fam.ENTRIES):
        out[entry.id] = entry
    for entry in ENGINE_ENTRIES:
        out[entry.id] = entry
    return out
