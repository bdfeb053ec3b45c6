"""A known IP address seen with a new MAC address: ARP spoofing, a swapped device.

Only hosts on the same L2 segment as the sensor can be judged: a host behind a
router carries the router's MAC.  A MAC seen for more than ``router_ips``
addresses is taken as a router's and its addresses are not judged.  VRRP
(00:00:5e:00:01:xx) and HSRP (00:00:0c:07:ac:xx, 00:00:0c:9f:fx:xx) virtual
MACs, addresses listed in ``[detect.l2] shared_ips``, addresses outside
``segments`` (when set) and connections whose two ends share one IP
(anonymised captures) are left alone.  MACs are read from the first frame of
each connection.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Final

from otsentry.agent.detect._entry import Entry, Knob
from otsentry.agent.detect._family import Family
from otsentry.common.finding import Severity

__all__ = ["MacChange"]

ENTRIES: Final = (
    Entry("net.mac-change", "Known IP address with a new MAC address", Severity.HIGH, ("T0830",),
          "A host on the sensor's segment answers for an IP address that belonged to another "
          "MAC address: ARP spoofing for a man-in-the-middle, or a replaced device.",
          knobs={"router_ips": Knob(4, "a MAC seen for more addresses than this is a router's")}),
)
_VIRTUAL_PREFIXES: Final = ("00:00:5e:00:01:", "00:00:0c:07:ac:", "00:00:0c:9f:f")


class MacChange(Family):
    """IP -> MAC bindings, checked whenever an end of a connection is first seen sending."""

    ENTRIES = ENTRIES
    NEW_END = "flow"

    def __init__(self, engine: Any) -> None:
        super().__init__(engine)
        self.l2 = engine.config.l2
        self.router_ips = self.knob("net.mac-change", "router_ips")
        self.ip_mac = self.table("ip-mac")
        self.mac_ips = self.table("mac-ips")

    def flow(self, flow: Any, ts: int) -> None:
        if flow.client == flow.server:
            return
        # Only a MAC an end sent from is its own: the destination MAC may be a router's.
        for bit, ip, mac in ((1, flow.client, flow.client_mac), (2, flow.server, flow.server_mac)):
            if mac and flow.seen_ends & bit:
                self._bind(flow, ts, ip, mac)

    def _bind(self, flow: Any, ts: int, ip: str, mac: str) -> None:
        ips = self.mac_ips.get_or_make(mac, set)
        if len(ips) <= self.router_ips:
            ips.add(ip)
        old = self.ip_mac.get(ip)
        if old is None:
            self.ip_mac.get_or_make(ip, lambda: mac)
            return
        if old == mac:
            return
        self.ip_mac[ip] = mac  # the key exists: no growth
        if not self._judged(ip, old, mac):
            return
        self.report("net.mac-change", (ip, mac), ts, flow,
                    f"{ip} moved from MAC {old} to MAC {mac}: check for ARP spoofing or a "
                    "replaced device.", frames=(), details={"ip": ip, "old_mac": old,
                                                            "new_mac": mac})

    def _judged(self, ip: str, old: str, new: str) -> bool:
        if any(len(self.mac_ips.get(m, ())) > self.router_ips for m in (old, new)):
            return False
        if self.l2.allow_vrrp_hsrp and any(m.startswith(_VIRTUAL_PREFIXES) for m in (old, new)):
            return False
        if ip in self.l2.shared_ips or int(new[:2], 16) & 1:
            return False
        if self.l2.segments:
            addr = ipaddress.ip_address(ip)
            return any(addr in n for n in self.l2.segments)
        return True
