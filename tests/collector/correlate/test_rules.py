"""Correlation rules from TOML: defaults, every key, and errors that name file, key and line."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from otsentry.collector.correlate import Rules, load_rules
from otsentry.common.errors import ConfigError
from otsentry.common.finding import Severity


def _load(tmp_path: Path, text: str) -> Rules:
    p = tmp_path / "rules.toml"
    p.write_text(text)
    return load_rules(p)


def test_no_file_is_the_defaults() -> None:
    """Without a file every rule has its default."""
    assert load_rules(None) == Rules()


def test_every_key(tmp_path: Path) -> None:
    """Each key read from the file replaces its default and nothing else."""
    r = _load(tmp_path, """
[correlate]
min_severity = "medium"
exclude = ["100.64.0.0/10"]
[correlate.site_source]
window = "30m"
min_detectors = 3
recon_techniques = ["T0846"]
[correlate.cross_site_source]
enabled = false
[correlate.cross_site_timing]
window = 120
min_severity = "high"
[correlate.severity]
per_extra_site = 2
""")
    assert r.min_severity == Severity.MEDIUM
    assert r.exclude == (ipaddress.ip_network("100.64.0.0/10"),)
    assert (r.site_source.window_s, r.site_source.min_detectors) == (1800, 3)
    assert r.site_source.recon_techniques == ("T0846",)
    assert r.site_source.write_techniques == Rules().site_source.write_techniques
    assert not r.cross_site_source.enabled
    assert (r.cross_site_timing.window_s, r.cross_site_timing.min_sites) == (120, 3)
    assert r.cross_site_timing.min_severity == Severity.HIGH
    assert r.severity.per_extra_site == 2 and r.severity.recon_then_write == 1


@pytest.mark.parametrize(("text", "key", "line", "expected"), [
    ('[correlate]\nmin_severity = "bad"\n', "correlate.min_severity", 2, "one of info"),
    ('[correlate]\n\n[correlate.site_source]\nwindow = "soon"\n', "correlate.site_source.window", 4,
     "a duration"),
    ('[correlate.cross_site_source]\nmin_sites = 0\n', "correlate.cross_site_source.min_sites", 2,
     ">= 1"),
    ('[correlate.site_source]\nwindw = "1h"\n', "correlate.site_source.windw", 2, "unknown key"),
    ('[correlate]\nexclude = ["not a net"]\n', "correlate.exclude", 2, "networks"),
    ('[correlate.site_source]\nrecon_techniques = ["scan"]\n',
     "correlate.site_source.recon_techniques", 2, "ATT&CK"),
    ('[correlate]\nsite_source = 3\n', "correlate.site_source", 2, "a table"),
])
def test_errors_name_key_and_line(tmp_path: Path, text: str, key: str, line: int,
                                  expected: str) -> None:
    """A wrong value or unknown key is a ConfigError with the file, dotted key and line."""
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, text)
    assert (err.value.key, err.value.line) == (key, line)
    assert expected in err.value.expected and str(tmp_path / "rules.toml") in str(err.value)


def test_bad_toml_has_its_line(tmp_path: Path) -> None:
    """A file that is not TOML is refused with the line of the mistake."""
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, "[correlate]\nmin_severity = \n")
    assert err.value.line == 2
