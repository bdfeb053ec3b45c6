"""MAC vendors from the shipped IEEE table, checked against Debian's ieee-data files."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from otsentry.agent.inventory import mac_kind, oui_vendor

IEEE = Path("/usr/share/ieee-data")


def _registry(name: str, n: int = 200) -> list[tuple[str, str]]:
    path = IEEE / name
    if not path.exists():
        pytest.fail(f"{path} missing: apt-get install ieee-data")
    with path.open(encoding="utf-8", newline="") as fh:
        rows = [(r["Assignment"], " ".join(r["Organization Name"].split()))
                for r in csv.DictReader(fh)]
    return rows[:: max(1, len(rows) // n)]


def _mac(prefix: str, tail: str = "0123456789AB") -> str:
    digits = (prefix + tail)[:12]
    return ":".join(digits[i: i + 2] for i in range(0, 12, 2)).lower()


@pytest.mark.parametrize("name", ["oui.csv", "mam.csv", "oui36.csv"])
def test_vendor_matches_registry(name: str) -> None:
    """The vendor of a MAC is the IEEE registry's organisation for its longest prefix."""
    for prefix, org in _registry(name):
        if org in ("Private", "IEEE Registration Authority"):  # parents of MA-M/MA-S blocks
            continue
        mac = _mac(prefix)
        if mac_kind(mac) != "global":
            continue
        assert oui_vendor(mac) == org, (prefix, org)


def test_special_addresses() -> None:
    """Null, group and locally administered MACs have no vendor."""
    assert mac_kind("00:00:00:00:00:00") == "null" and oui_vendor("00:00:00:00:00:00") is None
    assert mac_kind("ff:ff:ff:ff:ff:ff") == "group" and oui_vendor("01:00:5e:00:00:01") is None
    assert mac_kind("02:42:ac:11:00:02") == "local" and oui_vendor("02:42:ac:11:00:02") is None
    assert mac_kind(None) == "none" and oui_vendor(None) is None


def test_table_is_small() -> None:
    """The shipped table stays compact (gzip'd TSV, well under a megabyte)."""
    table = Path(__file__).resolve().parents[3] / "agent" / "inventory" / "oui.tsv.gz"
    assert table.stat().st_size < 1_000_000
