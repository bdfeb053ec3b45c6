"""The fault tier's tally: faults injected, findings lost, findings duplicated, printed at the end."""

from __future__ import annotations

from pathlib import Path

import pytest

#: Summed over every fault test of the session.
TALLY: dict[str, int] = {"faults": 0, "findings": 0, "lost": 0, "duplicated": 0}
LINES: list[str] = []


def record(test: str, faults: int, expected: int, lost: int, duplicated: int) -> None:
    """Add one test's outcome to the tally."""
    TALLY["faults"] += faults
    TALLY["findings"] += expected
    TALLY["lost"] += lost
    TALLY["duplicated"] += duplicated
    LINES.append(f"{test:<28} faults {faults:>3}  findings {expected:>5}  lost {lost}  "
                 f"duplicated {duplicated}")


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    if not LINES:
        return
    tr = terminalreporter
    tr.section("fault tally")
    for line in LINES:
        tr.write_line(line)
    tr.write_line(f"{'total':<28} faults {TALLY['faults']:>3}  findings {TALLY['findings']:>5}  "
                  f"lost {TALLY['lost']}  duplicated {TALLY['duplicated']}")


@pytest.fixture(name="plant_root")
def _plant_root(tmp_path: Path) -> Path:
    return tmp_path
