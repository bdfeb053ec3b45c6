"""The inventory sink on the shared captures: assets, roles, units, device ids, changes.

Expectations come from tshark run inside the test, or from the captures'
descriptions in shared/data/MANIFEST.md.
"""

from __future__ import annotations

import struct
from collections import defaultdict
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from otsentry.agent.inventory import Inventory, Limits
from otsentry.agent.testing import Conversation, adu

from .conftest import feed_frames, tshark_fields

CLEAN = [
    "coil-poll-write-big.pcap", "coil-read-write-multiple-small.pcap", "device-id-fc43.pcap",
    "fc23-length-mismatch.pcap", "function-code-scan.pcap", "gateway-units-unanswered.pcap",
    "holding-regs-poll-fc3.pcap", "input-regs-poll-write-register.pcap",
    "scada-multi-slave-s7-mixed.pcap", "scada-one-master-13-slaves.pcap",
]


def tshark_inventory(path: Path) -> dict[tuple[str, str], dict]:
    """Assets (ip, mac) with roles and answering units, as tshark sees the Modbus frames.

    A host's MAC is the source MAC of the frames it sends (the destination MAC of
    frames sent to it only when it never sends any).
    """
    rows = tshark_fields(path, ["ip.src", "eth.src", "ip.dst", "eth.dst", "tcp.srcport",
                                "tcp.dstport", "mbtcp.unit_id", "modbus.exception_code"])
    sent = {r[0]: r[1] for r in rows}
    rows = [[src, sent[src], dst, sent.get(dst, dmac), *rest]
            for src, _smac, dst, dmac, *rest in rows]
    assets: dict[tuple[str, str], dict] = defaultdict(
        lambda: {"client": False, "server": False, "ok_units": set(), "units": set(),
                 "gateway_exc": False})
    for src, smac, dst, dmac, sport, dport, units, exc in rows:
        if not sport:
            continue  # not TCP
        to_server = dport == "502"
        client = (src, smac) if to_server else (dst, dmac)
        server = (dst, dmac) if to_server else (src, smac)
        assets[client]["client"] = True
        assets[server]["server"] = True
        if to_server or not units:
            continue
        codes = {int(c) for c in exc.split(",") if c}
        for unit in {int(u) for u in units.split(",")}:
            if codes & {10, 11}:
                assets[server]["gateway_exc"] = True
            else:
                assets[server]["units"].add(unit)
                if not codes:
                    assets[server]["ok_units"].add(unit)
    return assets


def expected_role(a: dict) -> str:
    serving = None
    if a["server"]:
        serving = "gateway" if len(a["ok_units"]) >= 2 or a["gateway_exc"] else "server"
    if a["client"]:
        return "both" if serving else "client"
    return serving or "unknown"


@pytest.mark.parametrize("name", CLEAN)
def test_assets_roles_units_match_tshark(shared_pcaps: Path, read, name: str) -> None:
    """Every (IP, MAC) tshark sees in Modbus frames is an asset with the role and units tshark implies."""
    path = shared_pcaps / name
    want = tshark_inventory(path)
    inv = read(path)
    got = {(a.ip, a.mac): a for a in inv.assets()}
    assert set(got) == set(want)
    for key, a in got.items():
        assert a.current_role() == expected_role(want[key]), key
        assert set(a.devices) == want[key]["units"], key


class TestManifestCases:
    def test_gateway_with_four_units(self, shared_pcaps: Path, read) -> None:
        """input-regs-poll-write-register: one gateway 192.168.0.20 with units 1, 2, 3, 7 and five masters."""
        inv = read(shared_pcaps / "input-regs-poll-write-register.pcap")
        gw = inv.asset("192.168.0.20")
        assert gw is not None and gw.current_role() == "gateway"
        assert sorted(gw.devices) == [1, 2, 3, 7]
        clients = {a.ip for a in inv.assets() if a.current_role() == "client"}
        assert clients == {"192.168.0.112", "192.168.0.133", "192.168.0.144", "192.168.0.156",
                           "192.168.0.21"}
        assert {p.split("|")[0] for p in gw.clients} == clients
        assert 6 in gw.devices[7].functions and gw.devices[7].functions[6].ok > 0

    def test_one_master_thirteen_slaves(self, shared_pcaps: Path, read) -> None:
        """scada-one-master-13-slaves: master 141.81.0.10 polls 13 slaves, each on unit 255."""
        inv = read(shared_pcaps / "scada-one-master-13-slaves.pcap")
        roles = defaultdict(list)
        for a in inv.assets():
            roles[a.current_role()].append(a)
        assert [a.ip for a in roles["client"]] == ["141.81.0.10"]
        assert len(roles["server"]) == 13 and set(roles) == {"client", "server"}
        assert all(sorted(a.devices) == [255] for a in roles["server"])
        master = roles["client"][0]
        assert len(master.servers) == 13

    def test_same_ip_roles_from_ports(self, shared_pcaps: Path, read) -> None:
        """coil-read-write-multiple-small: client and server share one IP, so the asset is both."""
        inv = read(shared_pcaps / "coil-read-write-multiple-small.pcap")
        [a] = inv.assets()
        assert a.ip == "118.189.96.132" and a.current_role() == "both"
        assert a.roles() == ["client", "server"]
        assert sorted(a.devices) == [1]
        fcs = {c["fc"] for c in inv.cycles()}
        assert fcs == {1, 15}
        assert all(c["client"] == c["server"] == a.ip for c in inv.cycles())

    def test_device_identification(self, shared_pcaps: Path, read) -> None:
        """device-id-fc43: unit 0 answers with no objects (conformity per tshark), unit 255 with exception 4."""
        path = shared_pcaps / "device-id-fc43.pcap"
        rows = tshark_fields(path, ["mbtcp.unit_id", "modbus.conformity_level",
                                    "modbus.num_objects", "modbus.exception_code"],
                             "mbtcp && tcp.srcport == 502")
        answers = {int(u): (c, n, e) for u, c, n, e in rows}
        inv = read(path)
        dev_asset = inv.asset("192.168.88.100")
        assert dev_asset is not None
        d0, d255 = dev_asset.devices[0], dev_asset.devices[255]
        assert d0.conformity_level == int(answers[0][0], 16)
        assert len(d0.device_id) == int(answers[0][1]) == 0
        assert d0.functions[43].ok == 1
        assert d255.exceptions == {(43, int(answers[255][2])): 1}
        assert dev_asset.vendor is not None and "HOST ENGINEERING" in dev_asset.vendor.upper()

    def test_changes_in_order(self, shared_pcaps: Path, read) -> None:
        """Each asset is announced once, each unit once, each client/server pair once, and the gateway role change."""
        inv = read(shared_pcaps / "input-regs-poll-write-register.pcap")
        changes = inv.drain_changes()
        assert inv.drain_changes() == []
        kinds = defaultdict(list)
        for c in changes:
            kinds[c.kind].append(c)
        assert sorted(c.ip for c in kinds["new-asset"]) == sorted(a.ip for a in inv.assets())
        assert [c.unit for c in kinds["new-device"]] == [1, 2, 3, 7]
        assert len(kinds["new-client"]) == 5
        assert [(c.detail["old"], c.detail["new"]) for c in kinds["role-change"]] == [
            ("server", "gateway")]
        assert all(c.to_dict()["kind"] == c.kind for c in changes)


def _frames(conv_pairs: list[tuple[bytes, bytes]], sport: int = 40000) -> list[tuple[int, bytes]]:
    """Ethernet frames of one TCP connection carrying the given request/response ADUs."""
    cmac, smac = "02:00:00:00:00:01", "00:07:7c:00:00:02"
    c, s = IP(src="10.0.0.1", dst="10.0.0.2", ttl=128), IP(src="10.0.0.2", dst="10.0.0.1", ttl=64)
    frames = [Ether(src=cmac, dst=smac) / c / TCP(sport=sport, dport=502, flags="S", seq=0),
              Ether(src=smac, dst=cmac) / s / TCP(sport=502, dport=sport, flags="SA", seq=0, ack=1),
              Ether(src=cmac, dst=smac) / c / TCP(sport=sport, dport=502, flags="A", seq=1, ack=1)]
    cseq = sseq = 1
    for req, rsp in conv_pairs:
        frames.append(Ether(src=cmac, dst=smac) / c / TCP(sport=sport, dport=502, flags="PA",
                                                          seq=cseq, ack=sseq) / req)
        cseq += len(req)
        frames.append(Ether(src=smac, dst=cmac) / s / TCP(sport=502, dport=sport, flags="PA",
                                                          seq=sseq, ack=cseq) / rsp)
        sseq += len(rsp)
    return [(1_700_000_000_000_000_000 + i * 10_000_000, bytes(f)) for i, f in enumerate(frames)]


def _device_id_pdu(objects: dict[int, bytes], read_code: int = 3) -> bytes:
    body = b"".join(bytes([oid, len(v)]) + v for oid, v in objects.items())
    return bytes([43, 14, read_code, 0x83, 0, 0, len(objects)]) + body


class TestMessages:
    def test_device_id_objects_and_change(self) -> None:
        """FC43/14 objects (basic, regular, extended) are kept, and a changed revision is a device-id-change."""
        objs = {0: b"Schneider Electric", 1: b"BMX P34 2020", 2: b"v2.70", 5: b"M340",
                0x80: b"line 4 packer"}
        later = {**objs, 2: b"v3.10"}
        pairs = [(adu(1, 1, bytes([43, 14, 3, 0])), adu(1, 1, _device_id_pdu(objs))),
                 (adu(2, 1, bytes([43, 14, 3, 0])), adu(2, 1, _device_id_pdu(later)))]
        inv = Inventory()
        feed_frames(inv, _frames(pairs))
        dev = inv.asset("10.0.0.2").devices[1]
        named = dev.to_dict()["device_id"]
        assert named["VendorName"] == "Schneider Electric"
        assert named["ProductCode"] == "BMX P34 2020" and named["MajorMinorRevision"] == "v3.10"
        assert named["ModelName"] == "M340" and len(named) == 5
        changes = [c for c in inv.drain_changes() if c.kind == "device-id-change"]
        assert [(c.unit, c.detail) for c in changes] == [
            (1, {"field": "MajorMinorRevision", "old": "v2.70", "new": "v3.10"})]

    def test_report_server_id(self) -> None:
        """FC17 server id and run indicator are kept; a different server id is a device-id-change."""
        conv = Conversation(unit=3)
        first = conv.exchange(17, server_id=b"PLC-A", run_indicator=True)
        second = conv.exchange(17, server_id=b"PLC-B", run_indicator=False)
        inv = Inventory()
        feed_frames(inv, _frames([first, second]))
        dev = inv.asset("10.0.0.2").devices[3]
        assert dev.server_id_text == "PLC-B" and dev.run_indicator is False
        [change] = [c for c in inv.drain_changes() if c.kind == "device-id-change"]
        assert change.detail == {"field": "server_id", "old": b"PLC-A".hex(),
                                 "new": b"PLC-B".hex()}

    def test_writes_and_masks_update_values(self) -> None:
        """Confirmed writes (FC6, FC16, FC22, FC23, FC5, FC15) set the register map's values."""
        conv = Conversation(unit=1)
        pairs = [conv.exchange(16, address=10, registers=(1, 2, 3)),
                 conv.exchange(6, address=11, value=0x00F0),
                 conv.exchange(22, address=11, and_mask=0x0F0F, or_mask=0x3000),
                 conv.exchange(23, read_address=10, write_address=12, write_registers=(9,),
                               registers=(1, 0x3000 | (0x00F0 & 0x0F0F), 9)),
                 conv.exchange(5, address=4, value=0xFF00),
                 conv.exchange(15, address=0, values=(1, 0, 1))]
        inv = Inventory()
        feed_frames(inv, _frames(pairs))
        tables = inv.asset("10.0.0.2").devices[1].tables
        regs = tables["holding_registers"].registers
        assert {a: r.last for a, r in regs.items()} == {10: 1, 11: 0x3000, 12: 9}
        coils = tables["coils"].registers
        assert {a: r.last for a, r in coils.items()} == {0: 1, 1: 0, 2: 1, 4: 1}
        kinds = {(k[0], k[1], k[2]) for k in tables["holding_registers"].ranges}
        assert kinds == {(1, 10, 3), (1, 11, 1), (1, 12, 1), (0, 10, 3)}

    def test_gateway_exceptions_make_a_gateway(self) -> None:
        """Exception 10/11 answers mark the server a gateway without creating a device for the unit."""
        conv = Conversation(unit=9)
        pairs = [conv.exception(3, 11, address=0, registers=(0,)),
                 Conversation(unit=1).exchange(3, address=0, registers=(5,))]
        inv = Inventory()
        feed_frames(inv, _frames(pairs))
        a = inv.asset("10.0.0.2")
        assert a.current_role() == "gateway" and sorted(a.devices) == [1]
        assert a.unanswered_units == {9: 1}

    def test_ttl_and_vendor_hints(self) -> None:
        """TTLs of both ends, the client's TCP window and MAC vendors are recorded per asset."""
        inv = Inventory()
        feed_frames(inv, _frames([Conversation(unit=1).exchange(3, address=0, registers=(5,))]))
        client, server = inv.asset("10.0.0.1"), inv.asset("10.0.0.2")
        d = client.to_dict()
        assert d["ttl"] == {"128": 1} and d["initial_ttl_guess"] == 128
        assert d["mac_kind"] == "local" and d["mac_vendor"] is None
        assert server.vendor is not None and "Westermo" in server.vendor


class TestBounds:
    def test_limits_count_what_does_not_fit(self, shared_pcaps: Path, read) -> None:
        """With tiny limits the inventory stays small and counts what it dropped."""
        limits = Limits(max_assets=3, max_cycles=2, max_ranges=1, max_registers=4,
                        max_changes=5)
        inv = read(shared_pcaps / "scada-one-master-13-slaves.pcap", limits=limits)
        assert len(inv.assets()) == 3 and len(inv.cycles()) == 2
        assert inv.dropped["assets"] > 0 and inv.dropped["cycles"] > 0
        assert len(inv.drain_changes()) == 5 and inv.dropped["changes"] > 0
        for a in inv.assets():
            for d in a.devices.values():
                for t in d.tables.values():
                    assert len(t.ranges) <= 1 and len(t.registers) <= 4

    def test_state_does_not_grow_with_packets(self, shared_pcaps: Path, read) -> None:
        """Reading the same capture twice adds counts, not state: same assets, ranges, cycles."""
        path = shared_pcaps / "coil-poll-write-big.pcap"
        once, twice = read(path), read(path, path)
        size = lambda inv: [(a.id, {u: {n: (len(t.ranges), len(t.registers))  # noqa: E731
                                        for n, t in d.tables.items()}
                                    for u, d in a.devices.items()}) for a in inv.assets()]
        assert size(once) == size(twice)
        assert len(once.cycles()) == len(twice.cycles())
        assert [c["count"] * 2 for c in once.cycles()] == [c["count"] for c in twice.cycles()]
