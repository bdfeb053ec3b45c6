"""Pure parts of correlation: which addresses may match across sites, sequences, severity.

No database, no clock: the job (:mod:`._job`) reads rows and passes them in.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Sequence

from otsentry.collector.correlate._rules import Rules
from otsentry.common.finding import Severity

__all__ = [
    "PRIVATE",
    "incident_severity",
    "is_routable",
    "pattern_scope",
    "recon_then_write",
    "technique_sequence",
]

#: Never matched across sites: RFC 1918 and ULA (RFC 4193) addresses overlap between
#: utilities, and a match would escalate a false positive on its way upstream.
PRIVATE = tuple(ipaddress.ip_network(n) for n in
                ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"))


def is_routable(ip: str, rules: Rules) -> bool:
    """True when ``ip`` may be matched across sites: a global address, not private, not excluded."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if any(addr in n for n in PRIVATE) or any(addr in n for n in rules.exclude
                                              if n.version == addr.version):
        return False
    return addr.is_global


def technique_sequence(members: Iterable[tuple[int, str]]) -> tuple[str, ...]:
    """Distinct techniques in the order they were first seen; members are (first_seen_ns, marks)."""
    seen: dict[str, int] = {}
    for first, marks in sorted(members):
        for t in marks.split(","):
            if t and t not in seen:
                seen[t] = first
    return tuple(seen)


def recon_then_write(members: Sequence[tuple[int, str]], rules: Rules) -> bool:
    """True when a write technique was first seen at or after a reconnaissance technique."""
    recon = [f for f, marks in members if any(t in rules.site_source.recon_techniques
                                              for t in marks.split(",") if t)]
    writes = [f for f, marks in members if any(t in rules.site_source.write_techniques
                                               for t in marks.split(",") if t)]
    return bool(recon and writes and min(recon) <= max(writes))


def incident_severity(worst: int, sites: int, staged: bool, rules: Rules) -> int:
    """The worst member's severity, raised per extra site and for recon-then-write, capped."""
    rise = rules.severity.per_extra_site * max(0, sites - 1)
    rise += rules.severity.recon_then_write if staged else 0
    return min(int(Severity.CRITICAL), worst + rise)


def pattern_scope(pattern: str) -> str:
    """A short stable scope for a long match pattern (device-id changes)."""
    return hashlib.sha256(pattern.encode()).hexdigest()[:16]
