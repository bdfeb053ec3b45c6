"""Timing tiers for the test suite, and the no-skip rule in CI.

Every test belongs to one tier, taken from where it lives:

- ``tests/e2e/``     -> e2e      (processes talking over real sockets)
- ``tests/fault/``   -> fault    (kill -9, cut links; fixed fault count)
- ``tests/browser/`` -> browser  (headless Chromium)
- a Hypothesis test anywhere else -> property
- everything else   -> unit

At the end of the run a table gives, per tier, the number of tests and the
seconds they took, against the 30-minute budget of the test command.  With
``CI=true`` a skipped test fails the run: a skip must never hide in CI.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from pathlib import Path

import pytest

TIERS = ("unit", "property", "e2e", "browser", "fault")
BUDGET_S = 30 * 60
_DIR_TIERS = {"e2e": "e2e", "fault": "fault", "browser": "browser"}


def _tier_of(item: pytest.Item) -> str:
    parts = Path(str(item.path)).parts
    if "tests" in parts:
        sub = parts[parts.index("tests") + 1 : -1]
        for name in sub:
            if name in _DIR_TIERS:
                return _DIR_TIERS[name]
    func = getattr(item, "obj", None)
    if getattr(func, "is_hypothesis_test", False):
        return "property"
    return "unit"


class _TierReport:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.outcomes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.skipped_in_ci: list[str] = []
        self.start = time.monotonic()

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            item.add_marker(pytest.mark.tier(_tier_of(item)))
            item.stash[_TIER] = _tier_of(item)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        tier = getattr(report, "otsentry_tier", None) or "unit"
        self.seconds[tier] += report.duration
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            label = "xfailed" if hasattr(report, "wasxfail") and report.skipped else report.outcome
            self.outcomes[tier][label] += 1
            if (report.outcome == "skipped" and not hasattr(report, "wasxfail")
                    and os.environ.get("CI") == "true"):
                self.skipped_in_ci.append(report.nodeid)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo) -> object:
        outcome = yield
        outcome.get_result().otsentry_tier = item.stash.get(_TIER, "unit")  # type: ignore[attr-defined]

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.skipped_in_ci:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:  # type: ignore[no-untyped-def]
        tr = terminalreporter
        tr.section("timing by tier")
        total = 0.0
        for tier in TIERS:
            s = self.seconds.get(tier, 0.0)
            total += s
            counts = self.outcomes.get(tier, {})
            summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no tests"
            tr.write_line(f"{tier:<9} {s:8.1f} s   {summary}")
        wall = time.monotonic() - self.start
        tr.write_line(f"{'total':<9} {total:8.1f} s   (wall {wall:.1f} s; budget {BUDGET_S // 60} min)")
        if self.skipped_in_ci:
            tr.write_line("skips are not allowed with CI=true; skipped:", red=True)
            for nodeid in self.skipped_in_ci:
                tr.write_line(f"  {nodeid}", red=True)


_TIER = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_TierReport(), "otsentry-tiers")
