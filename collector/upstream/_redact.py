"""Redaction: internal addresses become the asset's role and vendor, asset names disappear.

Rule: nothing that is not a global (routable) address leaves the site when a
policy redacts.  Text is scanned for every run of characters an address can be
made of; a run that *contains* an internal IPv4 address anywhere (so
``"110.0.0.5"`` hides ``"10.0.0.5"`` and is replaced too), or that could be an
IPv6 address other than one global address, is replaced as a whole.  Labels
built from inventory attributes (which come from devices, so from the wire)
are scrubbed the same way.  Pure code.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["INTERNAL", "AssetInfo", "Redactor", "is_global", "leaked_addresses"]

#: What an internal address becomes when its asset is unknown.
INTERNAL = "internal host"
_V4_RUN = re.compile(r"[0-9.]+")
_V4_ANY = re.compile(r"(?=(\d{1,3}(?:\.\d{1,3}){3}))")
_V6_RUN = re.compile(r"[0-9A-Fa-f:.%]+")


@dataclass(frozen=True, slots=True)
class AssetInfo:
    """What the inventory knows of an address at a site (for labels and stable ids)."""

    role: str = ""
    vendor: str = ""
    name: str = ""
    asset_id: int = 0


def is_global(ip: str) -> bool:
    """True for a routable address (not RFC 1918, ULA, loopback, link-local, CGNAT...)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if addr.version == 6:
        # An IPv4 address inside an IPv6 one (mapped, compatible, 6to4, Teredo) is judged by
        # the IPv4 address; the dotted form is never trusted.
        inner = addr.ipv4_mapped or addr.sixtofour or (addr.teredo or (None, None))[1]
        if "." in ip or int(addr) >> 32 == 0 or (inner is not None and not inner.is_global):
            return False
    return addr.is_global


def _v6_candidate(run: str) -> bool:
    return "::" in run or run.count(":") >= 6


def leaked_addresses(text: str) -> list[str]:
    """Every non-global IPv4 address found anywhere in ``text`` (overlaps included), and every
    IPv6-like run that is not exactly a global address: what must never leave redacted."""
    out = [m.group(1) for m in _V4_ANY.finditer(text) if _is_ip(m.group(1))
           and not is_global(m.group(1))]
    out += [r for r in (m.group(0).strip(".") for m in _V6_RUN.finditer(text))
            if _v6_candidate(r) and not is_global(r)]
    return out


def _is_ip(s: str) -> bool:
    try:
        ipaddress.ip_address(s)
        return True
    except ValueError:
        return False


class Redactor:
    """Rewrites addresses and names for one sharing policy (``on=False``: text is unchanged).

    Args:
        assets: address -> what the inventory knows of it (at the finding's site).
        on: the policy redacts.
    """

    def __init__(self, assets: Mapping[str, AssetInfo], on: bool) -> None:
        self.assets, self.on = assets, on
        names = {a.name for a in assets.values() if len(a.name) >= 3}
        self._names = re.compile("|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
                                 ) if names else None

    def label(self, ip: str) -> str:
        """How ``ip`` is shown: itself when routable or not redacting, else role and vendor."""
        if not self.on or is_global(ip):
            return ip
        a = self.assets.get(ip)
        if a is None or not (a.role or a.vendor):
            return INTERNAL
        text = f"{a.role or 'host'} ({a.vendor})" if a.vendor else a.role
        return _scrub(self._drop_names(text), lambda run: f"[{INTERNAL}]")

    def name(self, ip: str, name: str) -> str:
        """An asset's name, or its label when redacting."""
        return self.label(ip) if self.on else (name or ip)

    def text(self, text: str) -> str:
        """``text`` with internal addresses replaced by labels and asset names removed."""
        if not self.on:
            return text
        return _scrub(self._drop_names(text), self._run_label)

    def _drop_names(self, text: str) -> str:
        return self._names.sub("[asset]", text) if self._names else text

    def _run_label(self, run: str) -> str:
        # In brackets: characters no address contains, so a label never joins the text
        # around it into something that looks like an address.
        return f"[{self.label(run) if run in self.assets else INTERNAL}]"


def _scrub(text: str, replace: object) -> str:
    def v4(m: re.Match[str]) -> str:
        run = m.group(0)
        if run.count(".") < 3 or not any(_is_ip(x) and not is_global(x) for x in
                                         (g.group(1) for g in _V4_ANY.finditer(run))):
            return run
        return replace(run.strip("."))  # type: ignore[operator]

    def v6(m: re.Match[str]) -> str:
        run = m.group(0)
        core = run.strip(".")
        return run if not _v6_candidate(core) or is_global(core) else replace(core)  # type: ignore[operator]

    return _V4_RUN.sub(v4, _V6_RUN.sub(v6, text))


def redactors(assets: Mapping[str, Mapping[str, AssetInfo]], sites: Iterable[tuple[str, bool]]
              ) -> dict[str, Redactor]:
    """site -> its :class:`Redactor`, from site -> (address -> asset) and (site, redact) pairs."""
    return {site: Redactor(assets.get(site, {}), on) for site, on in sites}
