"""MAC address -> vendor, from the IEEE registry table shipped with the package.

The table (``oui.tsv.gz``, built by ``packaging/build-oui-table`` from Debian's
``ieee-data``) maps 24-bit (MA-L), 28-bit (MA-M) and 36-bit (MA-S, IAB)
prefixes to organisation names; the longest matching prefix wins.  It is read
once, on the first lookup (about 46,000 entries, a few MB in memory).
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from importlib import resources
from typing import Final

__all__ = ["oui_vendor", "mac_kind"]

_TABLE_FILE: Final = "oui.tsv.gz"
_PREFIX_LENGTHS: Final = (9, 7, 6)


@lru_cache(maxsize=1)
def _table() -> dict[str, str]:
    data = resources.files(__package__).joinpath(_TABLE_FILE).read_bytes()
    table: dict[str, str] = {}
    for line in gzip.decompress(data).decode("utf-8").splitlines():
        prefix, _, org = line.partition("\t")
        table[prefix] = org
    return table


def mac_kind(mac: str | None) -> str:
    """``none``, ``null`` (all zero, e.g. anonymised), ``group`` (multicast/broadcast),
    ``local`` (locally administered: virtual machines, randomised) or ``global``."""
    if not mac or len(mac) < 2:
        return "none"
    if mac.strip("0:") == "":
        return "null"
    first = int(mac[:2], 16)
    if first & 0x01:
        return "group"
    return "local" if first & 0x02 else "global"


@lru_cache(maxsize=4096)
def oui_vendor(mac: str | None) -> str | None:
    """The registered organisation of a MAC address (``aa:bb:cc:dd:ee:ff``), or None.

    Null, group and locally administered addresses have no vendor.
    """
    if mac_kind(mac) != "global":
        return None
    digits = mac.replace(":", "").replace("-", "").upper()  # type: ignore[union-attr]
    table = _table()
    for n in _PREFIX_LENGTHS:
        org = table.get(digits[:n])
        if org is not None:
            return org
    return None
