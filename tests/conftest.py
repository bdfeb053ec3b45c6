"""Shared fixtures and the Hypothesis profiles.

Profiles: ``ci`` (derandomized, bounded examples, used when CI=true), ``dev``
(the default), and ``long`` for soak runs (``HYPOTHESIS_PROFILE=long``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=150,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile("long", max_examples=20_000, deadline=None)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") == "true" else "dev")
)

REPO = Path(__file__).resolve().parent.parent
SHARED_PCAPS = REPO.parent / "shared" / "data" / "pcaps"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-baselines", action="store_true", default=False,
                     help="rewrite the golden baselines under tests/baselines from current output")


@pytest.fixture(name="update_baselines")
def _update_baselines(request: pytest.FixtureRequest) -> bool:
    """True when the run was asked to rewrite golden baselines (never in CI)."""
    return bool(request.config.getoption("--update-baselines"))


@pytest.fixture(name="shared_pcaps")
def _shared_pcaps() -> Path:
    """The folder of public Modbus captures described in shared/data/MANIFEST.md."""
    if not SHARED_PCAPS.is_dir():
        pytest.fail(f"shared captures not found at {SHARED_PCAPS}")
    return SHARED_PCAPS
