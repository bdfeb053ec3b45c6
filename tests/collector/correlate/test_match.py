"""Pure correlation parts: routable addresses, technique sequences, stages, severity."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st
from otsentry.collector.correlate import (
    Rules,
    incident_severity,
    is_routable,
    recon_then_write,
    technique_sequence,
)
from otsentry.common.finding import Severity


def test_private_and_special_addresses_never_routable() -> None:
    """RFC 1918, ULA, loopback, link-local, documentation and junk are never matched across sites."""
    for ip in ("10.1.2.3", "172.31.0.1", "192.168.0.1", "fd12::1", "fc00::1", "127.0.0.1",
               "169.254.1.1", "fe80::1", "192.0.2.1", "", "not-an-ip"):
        assert not is_routable(ip, Rules()), ip
    for ip in ("45.33.32.156", "8.8.8.8", "2a00:1450::1"):
        assert is_routable(ip, Rules()), ip


@given(st.ip_addresses())
def test_rfc1918_and_ula_never_routable(addr) -> None:  # type: ignore[no-untyped-def]
    """Whatever the exclude list, an address in 10/8, 172.16/12, 192.168/16 or fc00::/7 never is."""
    private = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                                                  "fc00::/7")]
    if any(addr in n for n in private if n.version == addr.version):
        assert not is_routable(str(addr), Rules())


def test_sequence_in_order_of_first_sight() -> None:
    """Techniques are listed once each, ordered by when they were first seen."""
    assert technique_sequence([(30, ",T0855,"), (10, ",T0846,"), (20, ",T0846,T0888,")]) == (
        "T0846", "T0888", "T0855")


def test_recon_then_write_needs_the_order() -> None:
    """A write before any reconnaissance is not the recon-then-write stage."""
    assert recon_then_write([(10, ",T0846,"), (20, ",T0855,")], Rules())
    assert not recon_then_write([(30, ",T0846,"), (20, ",T0855,")], Rules())
    assert not recon_then_write([(10, ",T0846,")], Rules())


def test_severity_rises_with_sites_and_caps() -> None:
    """One level per extra site, one for the stage, never above critical."""
    assert incident_severity(Severity.LOW, 1, False, Rules()) == Severity.LOW
    assert incident_severity(Severity.LOW, 3, False, Rules()) == Severity.HIGH
    assert incident_severity(Severity.HIGH, 5, True, Rules()) == Severity.CRITICAL
